//! The `passkey-login-finish` Lambda function: wiring only; the logic lives in `shared::handlers::passkey_login_finish`.

use shared::handlers::{boxed, passkey_login_finish};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(passkey_login_finish::NEEDS, boxed::passkey_login_finish)
}
