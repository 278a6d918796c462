//! `POST /auth/password/change`: change the caller's password.

use serde::Deserialize;

use crate::accounts;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::Password;
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Reply, Request};

/// Change-password verifies access tokens and reads and writes the database.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };

#[derive(Deserialize)]
struct ChangeBody {
    current_password: String,
    new_password: String,
}

/// 204, every other session revoked; 401 without a live access token; 403 `invalid_password`
/// for a wrong current password; 422 `weak_password`; 429 `too_many_attempts` (the login
/// throttle of the address).
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let body: ChangeBody = request.json()?;
    let current = Password::presented(body.current_password).map_err(|_| ApiError::InvalidPassword)?;
    accounts::change_password(app, &caller, current, body.new_password).await?;
    Ok(http::empty(204))
}
