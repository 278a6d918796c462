//! The `undo-change` Lambda function: wiring only; the logic lives in `shared::handlers::undo_change`.

use shared::handlers::{boxed, undo_change};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::main(undo_change::NEEDS, boxed::undo_change)
}
