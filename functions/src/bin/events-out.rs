//! The `events-out` Lambda function: wiring only; the logic lives in `shared::handlers::events_out`.

use shared::handlers::{boxed, events_out};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main_task(events_out::NEEDS, boxed::events_out)
}
