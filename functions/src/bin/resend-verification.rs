//! The `resend-verification` Lambda function: wiring only; the logic lives in `shared::handlers::resend_verification`.

use shared::handlers::{boxed, resend_verification};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(resend_verification::NEEDS, boxed::resend_verification)
}
