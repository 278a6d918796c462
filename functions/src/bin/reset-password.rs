//! The `reset-password` Lambda function: wiring only; the logic lives in `shared::handlers::reset_password`.

use shared::handlers::{boxed, reset_password};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(reset_password::NEEDS, boxed::reset_password)
}
