//! The `signup` Lambda function: wiring only; the logic lives in `shared::handlers::signup`.

use shared::handlers::{boxed, signup};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(signup::NEEDS, boxed::signup)
}
