//! The `mfa-verify` Lambda function: wiring only; the logic lives in `shared::handlers::mfa_verify`.

use shared::handlers::{boxed, mfa_verify};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(mfa_verify::NEEDS, boxed::mfa_verify)
}
