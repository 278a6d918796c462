//! `POST /auth/mfa/totp/confirm`: make an enrolled authenticator app the second factor.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AccessTokenResponse;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::domain::FactorId;
use crate::second_factor;

/// Confirm verifies the caller's access token, opens the pending secret, writes, signs the
/// session's new access token, and mails the owner.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::SignAndVerify, mail: true, mfa: true, passkeys: false, query: false };

#[derive(Deserialize)]
struct ConfirmBody {
    factor_id: String,
    code: String,
}

#[derive(Serialize)]
struct ConfirmResponse<'a> {
    factor_id: FactorId,
    recovery_codes: Vec<&'a str>,
    #[serde(flatten)]
    access: AccessTokenResponse<'a>,
}

/// 200 `{"factor_id","recovery_codes","access_token","token_type","expires_in"}`: the factor is
/// live, the codes are shown this once, the session is at aal2 and every other one ended; 403
/// `invalid_mfa_code`; 404 `factor_not_found`; 409 `mfa_already_enabled`; 429.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let body: ConfirmBody = request.json()?;
    let factor = Uuid::parse_str(&body.factor_id).map(FactorId).map_err(|_| ApiError::FactorNotFound)?;
    let confirmed = second_factor::confirm(app, &caller, factor, &body.code).await?;
    Ok(http::json(
        200,
        &ConfirmResponse {
            factor_id: confirmed.factor,
            recovery_codes: confirmed.recovery_codes.iter().map(|code| code.expose()).collect(),
            access: AccessTokenResponse::of(&confirmed.access),
        },
    ))
}
