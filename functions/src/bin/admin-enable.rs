//! The `admin-enable` Lambda function: wiring only; the logic lives in `shared::handlers::admin_enable`.

use shared::handlers::{admin_enable, boxed};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(admin_enable::NEEDS, boxed::admin_enable)
}
