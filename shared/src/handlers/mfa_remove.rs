//! `DELETE /auth/mfa/totp/{id}`: remove the caller's authenticator app.

use super::SecondFactorBody;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::domain::FactorId;
use crate::second_factor;

/// Remove verifies access tokens, opens the factor's secret to check a code, writes, and mails
/// the owner.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: true, mfa: true, passkeys: false, query: false };

/// 204, the recovery codes gone with the factor; 403 `step_up_required` (a recent proof of the
/// second factor: `POST /auth/reauthenticate` with a code first) or `invalid_mfa_code`; 404
/// `factor_not_found`; 429.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let factor = super::path_id(&request).map(FactorId).ok_or(ApiError::FactorNotFound)?;
    let body: SecondFactorBody = request.json()?;
    second_factor::remove(app, &caller, factor, body.presented()?).await?;
    Ok(http::empty(204))
}
