//! The `mfa-recovery-codes` Lambda function: wiring only; the logic lives in `shared::handlers::mfa_recovery_codes`.

use shared::handlers::{boxed, mfa_recovery_codes};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(mfa_recovery_codes::NEEDS, boxed::mfa_recovery_codes)
}
