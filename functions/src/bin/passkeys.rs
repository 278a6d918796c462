//! The `passkeys` Lambda function: wiring only; the logic lives in `shared::handlers::passkeys`.

use shared::handlers::{boxed, passkeys};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(passkeys::NEEDS, boxed::passkeys)
}
