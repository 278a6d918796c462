//! The `admin-user` Lambda function: wiring only; the logic lives in `shared::handlers::admin_user`.

use shared::handlers::{admin_user, boxed};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(admin_user::NEEDS, boxed::admin_user)
}
