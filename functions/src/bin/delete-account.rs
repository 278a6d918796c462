//! The `delete-account` Lambda function: wiring only; the logic lives in `shared::handlers::delete_account`.

use shared::handlers::{boxed, delete_account};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(delete_account::NEEDS, boxed::delete_account)
}
