//! The `verify-email` Lambda function: wiring only; the logic lives in `shared::handlers::verify_email`.
// The future of `runtime::run` (the handler inside lambda_runtime's tower layers) is deeper
// than rustc's default query limit allows when it lays the future out in a release build.
#![recursion_limit = "256"]

use shared::handlers::verify_email;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(verify_email::NEEDS, verify_email::handle).await
}
