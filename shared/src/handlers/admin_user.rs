//! `GET /admin/users/{id}` (admin API, IAM): one user, their sessions, factors and recent events.

use crate::admin;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::UserId;
use crate::error::ApiError;
use crate::http::{self, Reply, Request};

/// Reads the database.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

/// 200 `{"user","sessions","factors","passkeys","events"}` (the 20 latest events, newest
/// first); 404 `user_not_found`.
pub async fn handle(app: &App, request: Request) -> Reply {
    super::operator_principal(&request)?;
    let id = super::path_id(&request).map(UserId).ok_or(ApiError::UserNotFound)?;
    let detail = admin::user(app, id).await?;
    Ok(http::json(200, &detail))
}
