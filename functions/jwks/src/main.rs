//! The `jwks` Lambda function: wiring only; the logic lives in `shared::handlers::jwks`.

use shared::handlers::jwks;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(jwks::NEEDS, jwks::handle).await
}
