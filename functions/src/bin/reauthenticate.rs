//! The `reauthenticate` Lambda function: wiring only; the logic lives in `shared::handlers::reauthenticate`.

use shared::handlers::{boxed, reauthenticate};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(reauthenticate::NEEDS, boxed::reauthenticate)
}
