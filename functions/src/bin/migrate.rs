//! The `migrate` Lambda function: wiring only; the logic lives in `shared::handlers::migrate`.
// The future of `runtime::run_task` (the handler inside lambda_runtime's tower layers) is deeper
// than rustc's default query limit allows when it lays the future out in a release build.
#![recursion_limit = "256"]

use shared::handlers::migrate;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    // Not behind the HTTP API: a failed migration is a failed invocation (see `run_task`).
    shared::runtime::run_task(migrate::NEEDS, migrate::handle).await
}
