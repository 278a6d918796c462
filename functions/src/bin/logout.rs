//! The `logout` Lambda function: wiring only; the logic lives in `shared::handlers::logout`.

use shared::handlers::{boxed, logout};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(logout::NEEDS, boxed::logout)
}
