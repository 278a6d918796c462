//! The `admin-revoke-sessions` Lambda function: wiring only; the logic lives in `shared::handlers::admin_revoke_sessions`.

use shared::handlers::{admin_revoke_sessions, boxed};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(admin_revoke_sessions::NEEDS, boxed::admin_revoke_sessions)
}
