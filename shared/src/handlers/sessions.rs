//! `GET /auth/sessions`: the caller's live sessions, one per signed-in device.

use serde_json::json;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, Reply, Request};
use crate::sessions;

/// Sessions verifies access tokens and reads the database.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };

/// 200 `{"sessions":[{"id","created_at","last_used_at","user_agent","ip","current"}]}`, the most
/// recently used first; 401 without a live access token.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let sessions = sessions::list(app, &caller).await?;
    Ok(http::json(200, &json!({ "sessions": sessions })))
}
