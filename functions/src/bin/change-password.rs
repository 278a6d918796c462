//! The `change-password` Lambda function: wiring only; the logic lives in `shared::handlers::change_password`.

use shared::handlers::{boxed, change_password};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(change_password::NEEDS, boxed::change_password)
}
