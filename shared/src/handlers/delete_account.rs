//! `DELETE /auth/me`: delete the caller's account and everything of theirs.

use serde::Deserialize;

use crate::accounts;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::Password;
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Reply, Request};

/// Delete-account verifies access tokens and writes to the database.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };

#[derive(Deserialize)]
struct DeleteBody {
    password: String,
}

/// 204: the user, their sessions, tokens and links are gone, and their access tokens stop
/// working at once; 401 without a live access token; 403 `invalid_password`; 429
/// `too_many_attempts`.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let body: DeleteBody = request.json()?;
    let password = Password::presented(body.password).map_err(|_| ApiError::InvalidPassword)?;
    accounts::delete_account(app, &caller, password).await?;
    Ok(http::empty(204))
}
