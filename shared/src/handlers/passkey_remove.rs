//! `DELETE /auth/passkeys/{id}`: remove one of the caller's passkeys.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::PasskeyId;
use crate::error::ApiError;
use crate::http::{self, Reply, Request};
use crate::passkeys;

/// Remove verifies access tokens, writes, and mails the owner.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: true, mfa: false, passkeys: false, query: false };

/// 204; 403 `step_up_required` without a recent proof; 404 `passkey_not_found` for an id that
/// is not one of the caller's; 429 past the hourly cap of changes.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let id = super::path_id(&request).map(PasskeyId).ok_or(ApiError::PasskeyNotFound)?;
    passkeys::remove(app, &caller, id).await?;
    Ok(http::empty(204))
}
