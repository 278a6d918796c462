//! The `health` Lambda function: wiring only; the logic lives in `shared::handlers::health`.

use shared::handlers::{boxed, health};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main_with_events(health::NEEDS, boxed::health)
}
