//! The `migrate` Lambda function: wiring only; the logic lives in `shared::handlers::migrate`.

use shared::handlers::{boxed, migrate};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main_task(migrate::NEEDS, boxed::migrate)
}
