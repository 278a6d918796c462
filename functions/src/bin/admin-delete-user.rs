//! The `admin-delete-user` Lambda function: wiring only; the logic lives in `shared::handlers::admin_delete_user`.

use shared::handlers::{admin_delete_user, boxed};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(admin_delete_user::NEEDS, boxed::admin_delete_user)
}
