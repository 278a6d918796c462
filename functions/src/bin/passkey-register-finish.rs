//! The `passkey-register-finish` Lambda function: wiring only; the logic lives in `shared::handlers::passkey_register_finish`.

use shared::handlers::{boxed, passkey_register_finish};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(passkey_register_finish::NEEDS, boxed::passkey_register_finish)
}
