//! The `login` Lambda function: wiring only; the logic lives in `shared::handlers::login`.

use shared::handlers::login;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::init_tracing();
    shared::runtime::run(login::NEEDS, login::handle).await
}
