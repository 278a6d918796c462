//! The `forgot-password` Lambda function: wiring only; the logic lives in `shared::handlers::forgot_password`.

use shared::handlers::{boxed, forgot_password};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(forgot_password::NEEDS, boxed::forgot_password)
}
