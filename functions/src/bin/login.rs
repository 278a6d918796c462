//! The `login` Lambda function: wiring only; the logic lives in `shared::handlers::login`.

use shared::handlers::{boxed, login};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(login::NEEDS, boxed::login)
}
