//! `DELETE /auth/sessions/{id}`: end one of the caller's sessions.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::SessionId;
use crate::error::ApiError;
use crate::http::{self, Reply, Request};
use crate::sessions;

/// Revoke-session verifies access tokens and writes to the database.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };

/// 204; 401 without a live access token; 404 `session_not_found` for an id that is not one of
/// the caller's live sessions (malformed, unknown, another user's or already ended alike).
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let session = super::path_id(&request).map(SessionId).ok_or(ApiError::SessionNotFound)?;
    sessions::revoke_session(app, &caller, session).await?;
    Ok(http::empty(204))
}
