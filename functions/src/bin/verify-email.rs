//! The `verify-email` Lambda function: wiring only; the logic lives in `shared::handlers::verify_email`.

use shared::handlers::{boxed, verify_email};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(verify_email::NEEDS, boxed::verify_email)
}
