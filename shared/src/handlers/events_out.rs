//! The events-out function: on its EventBridge schedule (or any direct invocation), one pass of
//! the security events' drain to the configured bus ([`events_out::drain`](crate::events_out::drain)),
//! answered `{"sent","failed","queued","oldest_queued_seconds"}`. A pass that cannot reach the
//! database is a failed invocation (the function's `Errors` metric); EventBridge's failures are
//! not: their events stay queued and are counted (`SecurityEventsFailed`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::events_out::{self, Bus};

/// The drain needs the database; the bus comes from its own variables (`EVENT_BUS_NAME`).
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

/// The `errorType` of a failed pass.
const ERROR_TYPE: &str = "EventsOutFailed";

/// The bus and its client, built on first use and kept while the sandbox is warm.
static BUS: OnceCell<Bus> = OnceCell::const_new();

/// Runs one pass until the invocation's deadline (less the drain's margin).
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let left = (UNIX_EPOCH + Duration::from_millis(event.context.deadline))
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let bus = BUS.get_or_init(Bus::from_env).await;
    match events_out::drain(app, bus, Instant::now() + left).await {
        Ok(pass) => Ok(json!({
            "sent": pass.sent,
            "failed": pass.failed,
            "queued": pass.queued,
            "oldest_queued_seconds": pass.oldest_queued.as_secs(),
        })),
        Err(error) => {
            tracing::error!(error = ?error, "events out: the pass failed; the next schedule retries");
            Err(Diagnostic { error_type: ERROR_TYPE.to_owned(), error_message: error.to_string() })
        }
    }
}
