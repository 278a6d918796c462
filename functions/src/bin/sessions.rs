//! The `sessions` Lambda function: wiring only; the logic lives in `shared::handlers::sessions`.

use shared::handlers::{boxed, sessions};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(sessions::NEEDS, boxed::sessions)
}
