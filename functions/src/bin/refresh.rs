//! The `refresh` Lambda function: wiring only; the logic lives in `shared::handlers::refresh`.

use shared::handlers::{boxed, refresh};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(refresh::NEEDS, boxed::refresh)
}
