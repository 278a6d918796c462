//! The `admin-disable` Lambda function: wiring only; the logic lives in `shared::handlers::admin_disable`.

use shared::handlers::{admin_disable, boxed};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(admin_disable::NEEDS, boxed::admin_disable)
}
