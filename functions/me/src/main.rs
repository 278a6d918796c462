//! The `me` Lambda function: wiring only; the logic lives in `shared::handlers::me`.

use shared::handlers::me;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(me::NEEDS, me::handle).await
}
