//! The `signup` Lambda function: wiring only; the logic lives in `shared::handlers::signup`.

use shared::handlers::signup;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(signup::NEEDS, signup::handle).await
}
