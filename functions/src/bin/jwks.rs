//! The `jwks` Lambda function: wiring only; the logic lives in `shared::handlers::jwks`.

use shared::handlers::{boxed, jwks};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(jwks::NEEDS, boxed::jwks)
}
