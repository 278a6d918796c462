//! The health function: `GET /health` through any front door, and a scheduled check through
//! EventBridge that also writes the metric line the template's alarm watches and purges what no
//! request needs any more ([`ops::maintenance::health`](crate::ops::maintenance::health)).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::RequestExt as _;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Origin, Reply, Request};
use crate::ops::maintenance;

/// Health pings the database; it needs no keys.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

/// The deadline [`handle`] assumes when the request carries no invocation context (tests,
/// tools): the template's Timeout for the health function.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the health function is invoked with.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// An HTTP request, from any front door.
    Http,
    /// An EventBridge (CloudWatch Events) schedule.
    Scheduled,
    /// Anything else, summarised for the log line that refuses it.
    Other(String),
}

impl Invocation {
    /// Tells them apart: lambda_http hands an event that is no front door's (`pass_through`)
    /// over as a request whose body is the event.
    pub fn of(request: &Request) -> Self {
        if request.origin() != Origin::Event {
            return Self::Http;
        }
        let event: Value = serde_json::from_slice(request.body().as_ref()).unwrap_or_default();
        if event["source"] == "aws.events" && event["detail-type"] == "Scheduled Event" {
            return Self::Scheduled;
        }
        let keys: Vec<&str> =
            event.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        Self::Other(format!("source={} detail-type={} keys={keys:?}", event["source"], event["detail-type"]))
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
pub async fn handle(app: &App, request: Request) -> Reply {
    let left = match request.lambda_context_ref() {
        Some(context) => (UNIX_EPOCH + Duration::from_millis(context.deadline))
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
        None => DEFAULT_TIMEOUT,
    };
    handle_until(app, Invocation::of(&request), Instant::now() + left).await
}

/// HTTP: 200 `healthy`/`connected`, or 503 `unhealthy`/`disconnected`. Schedule: the same
/// check, then the purge, which starts no round after `deadline` − [`PURGE_MARGIN`](crate::ops::maintenance::PURGE_MARGIN). Any other
/// event is refused with a log line saying what it was.
pub async fn handle_until(app: &App, invocation: Invocation, deadline: Instant) -> Reply {
    let scheduled = match invocation {
        Invocation::Http => false,
        Invocation::Scheduled => true,
        Invocation::Other(summary) => {
            tracing::error!(event = %summary, "health: refused an event that is neither an HTTP request nor an EventBridge schedule");
            return Err(ApiError::InvalidRequest(
                "the health function accepts HTTP requests and EventBridge schedules".into(),
            ));
        }
    };
    let healthy = maintenance::health(app, scheduled, deadline).await;
    let timestamp = OffsetDateTime::now_utc();
    Ok(if healthy {
        http::json(200, &Health { status: "healthy", database: "connected", timestamp })
    } else {
        http::json(503, &Health { status: "unhealthy", database: "disconnected", timestamp })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invocation(event: Value) -> Invocation {
        Invocation::of(&lambda_http::request::from_str(&event.to_string()).unwrap())
    }

    #[test]
    fn a_schedule_an_http_request_and_anything_else_are_told_apart() {
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(invocation(scheduled), Invocation::Scheduled);
        let http = json!({"version": "2.0", "rawPath": "/health",
                          "requestContext": {"apiId": "a1", "http": {"method": "GET"}}});
        assert_eq!(invocation(http), Invocation::Http);
        let rest = json!({"resource": "/health", "path": "/health", "httpMethod": "GET",
                          "requestContext": {"apiId": "a1", "stage": "Prod", "httpMethod": "GET"}});
        assert_eq!(invocation(rest), Invocation::Http);
        let Invocation::Other(summary) = invocation(json!({"Records": [{"eventSource": "aws:s3"}]})) else {
            panic!("not other")
        };
        assert!(summary.contains("Records"), "{summary}");
    }
}
