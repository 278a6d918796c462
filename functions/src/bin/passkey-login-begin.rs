//! The `passkey-login-begin` Lambda function: wiring only; the logic lives in `shared::handlers::passkey_login_begin`.

use shared::handlers::{boxed, passkey_login_begin};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(passkey_login_begin::NEEDS, boxed::passkey_login_begin)
}
