//! The `me` Lambda function: wiring only; the logic lives in `shared::handlers::me`.

use shared::handlers::{boxed, me};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(me::NEEDS, boxed::me)
}
