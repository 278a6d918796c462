//! The `logout` Lambda function: wiring only; the logic lives in `shared::handlers::logout`.

use shared::handlers::logout;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(logout::NEEDS, logout::handle).await
}
