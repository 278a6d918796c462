//! The `health` Lambda function: wiring only; the logic lives in `shared::handlers::health`.

use shared::handlers::health;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(health::NEEDS, health::handle).await
}
