//! `GET /health`: whether the database answers within two seconds.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::app::App;
use crate::config::Needs;
use crate::http::{HttpRequest, HttpResponse};
use crate::store;

/// Health pings the database; it needs no keys.
pub const NEEDS: Needs = Needs {
    database: true,
    keys: false,
};

/// How long the database has to answer before the service is reported unhealthy.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
}

/// 200 `healthy`/`connected`, or 503 `unhealthy`/`disconnected`.
pub async fn handle(app: &App, _request: HttpRequest) -> HttpResponse {
    let healthy = check(app).await;
    let (status, body) = if healthy {
        (
            200,
            Health {
                status: "healthy",
                database: "connected",
                timestamp: OffsetDateTime::now_utc(),
            },
        )
    } else {
        (
            503,
            Health {
                status: "unhealthy",
                database: "disconnected",
                timestamp: OffsetDateTime::now_utc(),
            },
        )
    };
    HttpResponse::json(status, &body)
}

/// One round trip to the database, bounded by [`PING_TIMEOUT`] including the wait for a
/// connection.
pub async fn check(app: &App) -> bool {
    let ping = async {
        let db = app.db().await.map_err(|error| anyhow::anyhow!(error))?;
        store::ping(db).await.map_err(anyhow::Error::from)
    };
    match tokio::time::timeout(PING_TIMEOUT, ping).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::warn!(error = ?error, "health check: the database failed");
            false
        }
        Err(_) => {
            tracing::warn!("health check: the database did not answer within {PING_TIMEOUT:?}");
            false
        }
    }
}
