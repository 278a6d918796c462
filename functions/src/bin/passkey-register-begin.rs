//! The `passkey-register-begin` Lambda function: wiring only; the logic lives in `shared::handlers::passkey_register_begin`.

use shared::handlers::{boxed, passkey_register_begin};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(passkey_register_begin::NEEDS, boxed::passkey_register_begin)
}
