//! The migrate function: applies the embedded migrations when invoked (once after a deploy),
//! never at a cold start. Same settings as the other functions (`DB_SECRET_ARN`, ...).

use serde_json::{Value, json};

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::db::MIGRATOR;
use crate::error::ApiError;
use crate::http::HttpResponse;

/// Migrating needs the database only.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None };

/// Applies every pending migration; answers 200 `{"migrations": N}` with the number known.
/// Takes any event: `aws lambda invoke` sends `{}`.
pub async fn handle(app: &App, _event: Value) -> HttpResponse {
    let result = async {
        // A first connection through `connection()` picks up rotated credentials. With the
        // template's `DB_MAX_CONNECTIONS=1` it is the pool's only one and is kept between
        // invocations, so it goes back to the pool for the migrator to take (the migrator on a
        // borrowed connection makes a future rustc cannot prove `Send`).
        app.connection().await?.release();
        MIGRATOR.run(app.db().await?).await.map_err(|error| ApiError::Unexpected(error.into()))?;
        Ok::<_, ApiError>(MIGRATOR.iter().count())
    };
    match result.await {
        Ok(count) => {
            tracing::info!(migrations = count, "migrations applied");
            HttpResponse::json(200, &json!({ "migrations": count }))
        }
        Err(error) => error.into_response(),
    }
}
