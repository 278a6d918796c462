//! `POST /auth/mfa/verify`: finish a sign-in with its second factor.

use serde::Deserialize;

use super::token_response;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{ApiRequest as _, Reply, Request};
use crate::second_factor::{self, Presented};
use crate::tokens::MfaToken;

/// Verify reads and writes the database, opens the factor's sealed secret and signs tokens.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign, mail: false, mfa: true, passkeys: false, query: false };

#[derive(Deserialize)]
struct VerifyBody {
    mfa_token: String,
    code: Option<String>,
    recovery_code: Option<String>,
}

/// 200 with the token response of a session at aal2; 401 `invalid_mfa_token` for a used,
/// expired or unknown token (checked first), 401 `invalid_mfa_code` for a wrong or reused code;
/// 429 `too_many_attempts` once the user's wrong codes hold them back.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: VerifyBody = request.json()?;
    let token = MfaToken::parse(&body.mfa_token)?;
    let presented = Presented::from_fields(body.code, body.recovery_code)?;
    let issued = second_factor::verify(app, token, presented, &request.device()).await?;
    Ok(token_response(200, &issued))
}
