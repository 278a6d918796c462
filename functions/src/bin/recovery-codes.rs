//! The `recovery-codes` Lambda function: wiring only; the logic lives in `shared::handlers::recovery_codes`.

use shared::handlers::{boxed, recovery_codes};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(recovery_codes::NEEDS, boxed::recovery_codes)
}
