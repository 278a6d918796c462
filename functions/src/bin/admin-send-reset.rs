//! The `admin-send-reset` Lambda function: wiring only; the logic lives in `shared::handlers::admin_send_reset`.

use shared::handlers::{admin_send_reset, boxed};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(admin_send_reset::NEEDS, boxed::admin_send_reset)
}
