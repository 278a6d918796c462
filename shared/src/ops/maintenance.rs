//! The health check of the database (one bounded round trip) and its scheduled maintenance: the
//! metric line the alarm watches, and the purge of what no request needs any more (ended
//! sessions, old revoked refresh tokens, login-attempt counts gone quiet), in bounded batches
//! that stop before the invocation's deadline. The health function runs them; this module knows
//! nothing of events or responses.

use std::time::{Duration, Instant};

use crate::app::App;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ops::store;

/// How long the database has to answer before the service is reported unhealthy.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Tokens expired or revoked longer ago than this are purged (reuse of a rotated token stays
/// detectable for this long), and so are sessions that ended longer ago than this.
pub const PURGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Rows per purge statement, and rounds (one statement per table) per scheduled run: no long
/// locks, bounded work; a backlog is worked off over the following runs.
pub const PURGE_BATCH: i64 = 1_000;

/// How long a security event is kept.
pub const SECURITY_EVENT_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);
pub const PURGE_MAX_BATCHES: usize = 20;

/// No purge round starts with less than this left before the invocation's deadline, so a run
/// ends by itself, answered and logged, whatever the backlog or the database's speed.
pub const PURGE_MARGIN: Duration = Duration::from_secs(2);

/// The health function's work: the [`check`] and, on a schedule, the metric line the template's
/// alarm watches (only then: public `GET /health` calls would otherwise feed the metric, and
/// hide a schedule that stopped running) and, when the database answered, the [`purge`] until
/// `deadline`. Returns whether the database answered.
pub async fn health(app: &App, scheduled: bool, deadline: Instant) -> bool {
    let started = Instant::now();
    let healthy = check(app).await;
    if scheduled {
        println!("{}", metrics_line(&app.metrics, healthy, started.elapsed()));
        if healthy {
            purge(app, deadline).await;
        }
    }
    healthy
}

/// One CloudWatch Embedded Metric Format line: `DatabaseHealthy` (0/1) and `DatabaseLatency`
/// (ms), with the function name as the dimension.
pub fn metrics_line(metrics: &Metrics, healthy: bool, latency: Duration) -> String {
    metrics.line(&[
        ("DatabaseHealthy", "None", f64::from(u8::from(healthy))),
        ("DatabaseLatency", "Milliseconds", latency.as_secs_f64() * 1000.0),
    ])
}

/// One round trip to the database, bounded by [`PING_TIMEOUT`] including the wait for a
/// connection.
pub async fn check(app: &App) -> bool {
    let deadline = tokio::time::Instant::now() + PING_TIMEOUT;
    let mut db = match tokio::time::timeout_at(deadline, app.connection()).await {
        Ok(Ok(db)) => db,
        Ok(Err(error)) => {
            tracing::warn!(error = ?error, "health check: no database connection");
            return false;
        }
        Err(_) => {
            tracing::warn!("health check: no database connection within {PING_TIMEOUT:?}");
            return false;
        }
    };
    match tokio::time::timeout_at(deadline, store::ping(&mut db)).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            // A connectivity error has marked the connection broken: it is closed, not kept.
            tracing::warn!(error = ?error, "health check: the database failed");
            false
        }
        Err(_) => {
            tracing::warn!("health check: the database did not answer within {PING_TIMEOUT:?}");
            // The ping was abandoned half-way: the connection's state is unknown.
            db.discard();
            false
        }
    }
}

/// Deletes sessions that ended (revoked, expired or abandoned) with their tokens, then old
/// revoked refresh tokens, then login-attempt counts that went quiet, then expired mail links
/// and mail limits no longer read, in rounds of one bounded
/// batch per table: at most [`PURGE_MAX_BATCHES`] rounds, and none started after `deadline` −
/// [`PURGE_MARGIN`]. Returns the rows deleted (a session's tokens deleted with it are not
/// counted); what is left waits for the next run.
pub async fn purge(app: &App, deadline: Instant) -> u64 {
    let result = async {
        let mut db = app.connection().await?;
        let mut deleted = 0;
        for _ in 0..PURGE_MAX_BATCHES {
            if deadline.saturating_duration_since(Instant::now()) < PURGE_MARGIN {
                tracing::info!("purge: stopping before the invocation's deadline; the next run goes on");
                break;
            }
            let sessions =
                store::purge_sessions(&mut db, PURGE_RETENTION, app.session_max_lifetime, PURGE_BATCH)
                    .await?;
            let tokens = store::purge_refresh_tokens(&mut db, PURGE_RETENTION, PURGE_BATCH).await?;
            let attempts = store::purge_login_attempts(&mut db, PURGE_BATCH).await?;
            let mail = store::purge_mail_state(&mut db, PURGE_BATCH).await?;
            let second_factor = store::purge_second_factor_state(&mut db, PURGE_BATCH).await?;
            let events = store::purge_security_events(&mut db, SECURITY_EVENT_RETENTION, PURGE_BATCH).await?;
            deleted += tokens + sessions + attempts + mail + second_factor + events;
            if [tokens, sessions, attempts, mail, second_factor, events]
                .iter()
                .all(|&rows| rows < PURGE_BATCH as u64)
            {
                break;
            }
        }
        Ok::<_, ApiError>(deleted)
    };
    match result.await {
        Ok(deleted) => {
            tracing::info!(
                deleted,
                "purged ended sessions, old refresh tokens, quiet login attempts, mail and second-factor state"
            );
            deleted
        }
        Err(error) => {
            tracing::warn!(error = ?error, "the purge failed; the next schedule retries");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_metrics_line_is_embedded_metric_format() {
        let line: Value = serde_json::from_str(&metrics_line(
            &Metrics::new("AuthApi", "auth-health"),
            true,
            Duration::from_millis(3),
        ))
        .unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        let names: Vec<&str> =
            directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
        assert_eq!(names, ["DatabaseHealthy", "DatabaseLatency"]);
        assert_eq!(
            (line["FunctionName"].as_str(), line["DatabaseHealthy"].as_f64()),
            (Some("auth-health"), Some(1.0))
        );
        assert_eq!(line["DatabaseLatency"].as_f64(), Some(3.0));
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    }
}
