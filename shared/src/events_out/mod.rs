//! Security events out to EventBridge: the drain of the transactional outbox that migration 17's
//! trigger fills, one row per event, in the statement that writes the event. Each pass takes
//! batches of due rows, [`BATCH`] at a time (`PutEvents`' limit), in a transaction of their own
//! that holds their locks while they are sent: the rows EventBridge took are deleted, the others
//! put off with a backoff and their error. Delivery is at least once: a drain that dies between
//! the send and the commit leaves its rows queued, and the next pass sends them again, so a
//! consumer de-duplicates by the detail's `id`. The events-out function runs a pass on its
//! schedule; this module knows nothing of events or responses.

pub mod bus;
pub mod store;

use std::time::{Duration, Instant};

use sqlx::PgConnection;
use uuid::Uuid;

pub use bus::{Bus, DETAIL_TYPE, SOURCE};

use crate::app::App;
use crate::error::ApiError;
use crate::metrics::{
    Metrics, SECURITY_EVENTS_FAILED, SECURITY_EVENTS_OLDEST_QUEUED, SECURITY_EVENTS_QUEUED,
    SECURITY_EVENTS_SENT,
};

/// Events per `PutEvents` call and per transaction: EventBridge's maximum.
pub const BATCH: i64 = 10;

/// No batch starts with less than this left before the invocation's deadline: room for one
/// `PutEvents` call at its SDK timeout, the commit and the metric line.
pub const MARGIN: Duration = Duration::from_secs(5);

/// How long an event waits after its first failed send; each further failure doubles it.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The longest wait between two sends of an event: however long an outage lasts, its events go
/// out within this of its end.
pub const LONGEST_RETRY_DELAY: Duration = Duration::from_secs(15 * 60);

/// What one pass did, and the backlog it left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Events EventBridge took (their rows deleted).
    pub sent: u64,
    /// Events whose send failed (put off, to be sent again).
    pub failed: u64,
    /// Events still queued after the pass, due or not.
    pub queued: u64,
    /// How long the oldest of those has waited.
    pub oldest_queued: Duration,
}

/// What one batch did.
#[derive(Debug, Default)]
struct Batch {
    taken: usize,
    sent: u64,
    failed: u64,
    /// The call itself failed: the bus is not reachable, and the pass stops.
    unreachable: bool,
}

/// Sends queued events until none is due, the bus fails a call, or `deadline` − [`MARGIN`] is
/// near; then measures the backlog and prints the metric line the template's alarms watch.
pub async fn drain(app: &App, bus: &Bus, deadline: Instant) -> Result<Pass, ApiError> {
    let mut db = app.connection().await?;
    let mut pass = Pass::default();
    loop {
        if deadline.saturating_duration_since(Instant::now()) < MARGIN {
            tracing::info!("events out: stopping before the invocation's deadline; the next run goes on");
            break;
        }
        let mut transaction = db.transaction().await?;
        let result = send_batch(&mut transaction, bus).await;
        let batch = transaction.end(result).await?;
        pass.sent += batch.sent;
        pass.failed += batch.failed;
        if batch.unreachable || batch.taken < BATCH as usize {
            break;
        }
    }
    (pass.queued, pass.oldest_queued) = store::backlog(&mut db).await?;
    println!("{}", metrics_line(&app.metrics, &pass));
    tracing::info!(
        sent = pass.sent,
        failed = pass.failed,
        queued = pass.queued,
        oldest_queued_seconds = pass.oldest_queued.as_secs(),
        bus = bus.name(),
        "events out"
    );
    Ok(pass)
}

/// Takes one batch of due events, sends it, and deletes or puts off each row by its outcome, on
/// the batch's transaction.
async fn send_batch(connection: &mut PgConnection, bus: &Bus) -> Result<Batch, sqlx::Error> {
    let queued = store::take_due(connection, BATCH).await?;
    if queued.is_empty() {
        return Ok(Batch::default());
    }
    let (outcomes, unreachable) = match bus.put(&queued).await {
        Ok(outcomes) => (outcomes, false),
        Err(error) => {
            tracing::warn!(error = %error, events = queued.len(), "events out: PutEvents failed; put off");
            (vec![Some(error); queued.len()], true)
        }
    };
    let mut sent: Vec<Uuid> = Vec::new();
    let (mut failed, mut errors): (Vec<Uuid>, Vec<String>) = (Vec::new(), Vec::new());
    for (event, outcome) in queued.iter().zip(outcomes) {
        match outcome {
            None => sent.push(event.id),
            Some(error) => {
                if !unreachable {
                    tracing::warn!(event = %event.id, attempts = event.attempts + 1, error = %error, "events out: EventBridge refused an event; put off");
                }
                failed.push(event.id);
                errors.push(error);
            }
        }
    }
    store::delete(connection, &sent).await?;
    store::put_off(connection, &failed, &errors, FIRST_RETRY_DELAY, LONGEST_RETRY_DELAY).await?;
    Ok(Batch { taken: queued.len(), sent: sent.len() as u64, failed: failed.len() as u64, unreachable })
}

/// One Embedded Metric Format line: events sent and failed in the pass (`Count`), the events
/// still queued (`Count`) and the oldest one's wait (`Seconds`).
pub fn metrics_line(metrics: &Metrics, pass: &Pass) -> String {
    metrics.line(&[
        (SECURITY_EVENTS_SENT, "Count", pass.sent as f64),
        (SECURITY_EVENTS_FAILED, "Count", pass.failed as f64),
        (SECURITY_EVENTS_QUEUED, "Count", pass.queued as f64),
        (SECURITY_EVENTS_OLDEST_QUEUED, "Seconds", pass.oldest_queued.as_secs_f64()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_metrics_line_counts_the_pass_and_its_backlog() {
        let pass = Pass { sent: 12, failed: 3, queued: 5, oldest_queued: Duration::from_secs(90) };

        let line: Value =
            serde_json::from_str(&metrics_line(&Metrics::new("AuthApi", "auth-events-out"), &pass)).unwrap();

        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|metric| metric["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "SecurityEventsSent",
                "SecurityEventsFailed",
                "SecurityEventsQueued",
                "SecurityEventsOldestQueuedAge"
            ]
        );
        assert_eq!(
            [&line["SecurityEventsSent"], &line["SecurityEventsFailed"], &line["SecurityEventsQueued"]],
            [12.0, 3.0, 5.0]
        );
        assert_eq!(line["SecurityEventsOldestQueuedAge"], 90.0);
    }
}
