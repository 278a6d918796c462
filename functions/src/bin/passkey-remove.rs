//! The `passkey-remove` Lambda function: wiring only; the logic lives in `shared::handlers::passkey_remove`.

use shared::handlers::{boxed, passkey_remove};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(passkey_remove::NEEDS, boxed::passkey_remove)
}
