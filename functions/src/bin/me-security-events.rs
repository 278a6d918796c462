//! The `me-security-events` Lambda function: wiring only; the logic lives in `shared::handlers::me_security_events`.

use shared::handlers::{boxed, me_security_events};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(me_security_events::NEEDS, boxed::me_security_events)
}
