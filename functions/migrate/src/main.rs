//! The `migrate` Lambda function: wiring only; the logic lives in `shared::handlers::migrate`.

use shared::handlers::migrate;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(migrate::NEEDS, migrate::handle).await
}
