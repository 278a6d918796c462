//! The `mfa-confirm` Lambda function: wiring only; the logic lives in `shared::handlers::mfa_confirm`.

use shared::handlers::{boxed, mfa_confirm};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(mfa_confirm::NEEDS, boxed::mfa_confirm)
}
