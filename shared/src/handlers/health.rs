//! The health function: `GET /health` through API Gateway, and a scheduled check through
//! EventBridge that also purges old refresh tokens. Only the scheduled check writes the
//! CloudWatch Embedded Metric Format line the template's alarm watches: public `GET /health`
//! calls would otherwise feed the metric (anyone can call it, as often as they like), and hide
//! a schedule that stopped running, which the alarm treats as breaching.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::LambdaEvent;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::{metrics, store};

/// Health pings the database; it needs no keys.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None };

/// How long the database has to answer before the service is reported unhealthy.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Tokens expired or revoked longer ago than this are purged (reuse of a rotated token stays
/// detectable for this long), and so are sessions that ended longer ago than this.
pub const PURGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Rows per purge statement, and rounds (one statement per table) per scheduled run: no long
/// locks, bounded work; a backlog is worked off over the following runs.
pub const PURGE_BATCH: i64 = 1_000;
pub const PURGE_MAX_BATCHES: usize = 20;

/// No purge round starts with less than this left before the invocation's deadline, so a run
/// ends by itself, answered and logged, whatever the backlog or the database's speed.
pub const PURGE_MARGIN: Duration = Duration::from_secs(2);

/// The deadline [`handle`] assumes: the template's Timeout for the health function.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the health function is invoked with.
#[derive(Debug)]
pub enum HealthEvent {
    /// An API Gateway HTTP API request.
    Http(Box<HttpRequest>),
    /// An EventBridge (CloudWatch Events) schedule.
    Scheduled,
    /// Anything else, summarised for the log line that rejects it.
    Other(String),
}

impl<'de> Deserialize<'de> for HealthEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if value["source"] == "aws.events" && value["detail-type"] == "Scheduled Event" {
            return Ok(Self::Scheduled);
        }
        if value.get("requestContext").is_some() {
            return serde_json::from_value(value)
                .map(|request| Self::Http(Box::new(request)))
                .map_err(serde::de::Error::custom);
        }
        let keys: Vec<&str> =
            value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        Ok(Self::Other(format!(
            "source={} detail-type={} keys={keys:?}",
            value["source"], value["detail-type"]
        )))
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
}

/// The function's entry point: [`handle_until`] with the invocation's own deadline.
pub async fn invoked(app: &App, event: LambdaEvent<HealthEvent>) -> HttpResponse {
    let now = SystemTime::now();
    let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
    let left = deadline.duration_since(now).unwrap_or(Duration::ZERO);
    handle_until(app, event.payload, Instant::now() + left).await
}

/// [`handle_until`] with the template's timeout from now (tests, tools).
pub async fn handle(app: &App, event: HealthEvent) -> HttpResponse {
    handle_until(app, event, Instant::now() + DEFAULT_TIMEOUT).await
}

/// API Gateway: 200 `healthy`/`connected`, or 503 `unhealthy`/`disconnected`. Schedule: the same
/// check, then the purge, which starts no round after `deadline` − [`PURGE_MARGIN`]. Any other
/// event is refused with a log line saying what it was.
pub async fn handle_until(app: &App, event: HealthEvent, deadline: Instant) -> HttpResponse {
    let scheduled = match event {
        HealthEvent::Http(_) => false,
        HealthEvent::Scheduled => true,
        HealthEvent::Other(summary) => {
            tracing::error!(event = %summary, "health: refused an event that is neither an API Gateway request nor an EventBridge schedule");
            return ApiError::InvalidRequest(
                "the health function accepts API Gateway requests and EventBridge schedules".into(),
            )
            .into_response();
        }
    };
    let started = Instant::now();
    let healthy = check(app).await;
    if scheduled {
        println!("{}", metrics_line(&app.function_name, healthy, started.elapsed()));
        if healthy {
            purge(app, deadline).await;
        }
    }
    let timestamp = OffsetDateTime::now_utc();
    if healthy {
        HttpResponse::json(200, &Health { status: "healthy", database: "connected", timestamp })
    } else {
        HttpResponse::json(503, &Health { status: "unhealthy", database: "disconnected", timestamp })
    }
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
/// revoked refresh tokens, then login-attempt counts that went quiet, in rounds of one bounded
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
            deleted += tokens + sessions + attempts;
            if [tokens, sessions, attempts].iter().all(|&rows| rows < PURGE_BATCH as u64) {
                break;
            }
        }
        Ok::<_, ApiError>(deleted)
    };
    match result.await {
        Ok(deleted) => {
            tracing::info!(deleted, "purged old refresh tokens, ended sessions and quiet login attempts");
            deleted
        }
        Err(error) => {
            tracing::warn!(error = ?error, "the purge failed; the next schedule retries");
            0
        }
    }
}

/// One CloudWatch Embedded Metric Format line: `DatabaseHealthy` (0/1) and `DatabaseLatency`
/// (ms), with the function name as the dimension.
pub fn metrics_line(function_name: &str, healthy: bool, latency: Duration) -> String {
    metrics::line(
        function_name,
        &[
            ("DatabaseHealthy", "None", f64::from(u8::from(healthy))),
            ("DatabaseLatency", "Milliseconds", latency.as_secs_f64() * 1000.0),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schedule_an_http_request_and_anything_else_are_told_apart() {
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert!(matches!(serde_json::from_value(scheduled).unwrap(), HealthEvent::Scheduled));
        let http =
            json!({"version": "2.0", "rawPath": "/health", "requestContext": {"http": {"method": "GET"}}});
        assert!(matches!(serde_json::from_value(http).unwrap(), HealthEvent::Http(_)));
        let s3 = json!({"Records": [{"eventSource": "aws:s3"}]});
        let HealthEvent::Other(summary) = serde_json::from_value(s3).unwrap() else { panic!("not other") };
        assert!(summary.contains("Records"), "{summary}");
    }

    #[test]
    fn the_metrics_line_is_embedded_metric_format() {
        let line: Value =
            serde_json::from_str(&metrics_line("auth-health", true, Duration::from_millis(3))).unwrap();
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
