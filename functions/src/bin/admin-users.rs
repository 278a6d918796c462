//! The `admin-users` Lambda function: wiring only; the logic lives in `shared::handlers::admin_users`.

use shared::handlers::{admin_users, boxed};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(admin_users::NEEDS, boxed::admin_users)
}
