//! The `refresh` Lambda function: wiring only; the logic lives in `shared::handlers::refresh`.

use shared::handlers::refresh;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(refresh::NEEDS, refresh::handle).await
}
