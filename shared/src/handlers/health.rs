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
use crate::maintenance::{check, purge};
use crate::metrics::Metrics;

/// Health pings the database; it needs no keys.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None };

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
/// check, then the purge, which starts no round after `deadline` − [`PURGE_MARGIN`](crate::maintenance::PURGE_MARGIN). Any other
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
        println!("{}", metrics_line(&app.metrics, healthy, started.elapsed()));
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

/// One CloudWatch Embedded Metric Format line: `DatabaseHealthy` (0/1) and `DatabaseLatency`
/// (ms), with the function name as the dimension.
pub fn metrics_line(metrics: &Metrics, healthy: bool, latency: Duration) -> String {
    metrics.line(&[
        ("DatabaseHealthy", "None", f64::from(u8::from(healthy))),
        ("DatabaseLatency", "Milliseconds", latency.as_secs_f64() * 1000.0),
    ])
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
