//! The `mfa-enroll` Lambda function: wiring only; the logic lives in `shared::handlers::mfa_enroll`.

use shared::handlers::{boxed, mfa_enroll};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(mfa_enroll::NEEDS, boxed::mfa_enroll)
}
