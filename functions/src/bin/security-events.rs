//! The `security-events` Lambda function: wiring only; the logic lives in `shared::handlers::security_events`.

use shared::handlers::{boxed, security_events};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(security_events::NEEDS, boxed::security_events)
}
