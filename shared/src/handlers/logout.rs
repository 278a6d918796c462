//! `POST /auth/logout`: end the session a refresh token belongs to.

use serde::Deserialize;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::sessions::{self, LogoutScope};

/// Logout writes to the database; it signs and verifies nothing.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

/// `{"refresh_token", "scope"?}`: `local` (default), `global` or `others`.
#[derive(Deserialize)]
struct LogoutBody {
    refresh_token: String,
    #[serde(default)]
    scope: Option<String>,
}

/// Answers 204; with the local scope also for an unknown or already revoked token (logging out
/// twice is not an error), while `global` and `others` need a live token (401 otherwise).
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: LogoutBody = request.json()?;
    let scope = LogoutScope::parse(body.scope.as_deref())?;
    sessions::logout(app, &body.refresh_token, scope, &request.device()).await?;
    Ok(http::empty(204))
}
