//! The `revoke-session` Lambda function: wiring only; the logic lives in `shared::handlers::revoke_session`.

use shared::handlers::{boxed, revoke_session};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(revoke_session::NEEDS, boxed::revoke_session)
}
