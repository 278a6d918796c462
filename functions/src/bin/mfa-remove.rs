//! The `mfa-remove` Lambda function: wiring only; the logic lives in `shared::handlers::mfa_remove`.

use shared::handlers::{boxed, mfa_remove};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(mfa_remove::NEEDS, boxed::mfa_remove)
}
