//! `POST /auth/reauthenticate`: prove again that it is you (a step-up).

use serde::Deserialize;

use super::AccessTokenResponse;
use crate::accounts::{self, Reauthentication};
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::Password;
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::second_factor::Presented;

/// Reauthenticate verifies the caller's access token, checks a password or opens the factor's
/// secret to check a code, writes, and signs the session's new access token.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::SignAndVerify, mail: false, mfa: true };

#[derive(Deserialize)]
struct ReauthenticateBody {
    password: Option<String>,
    code: Option<String>,
    recovery_code: Option<String>,
}

/// 200 with a fresh access token, the session proven now (at aal2 with a code); 403
/// `invalid_password` or `invalid_mfa_code`; 422 `proof_required` unless exactly one proof is
/// given; 429.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let body: ReauthenticateBody = request.json()?;
    let proof = match (body.password, body.code, body.recovery_code) {
        (Some(password), None, None) => Reauthentication::Password(
            Password::presented(password).map_err(|_| ApiError::InvalidPassword)?,
        ),
        (None, Some(code), None) => Reauthentication::SecondFactor(Presented::Code(code)),
        (None, None, Some(code)) => Reauthentication::SecondFactor(Presented::RecoveryCode(code)),
        _ => {
            return Err(ApiError::validation(
                "proof_required",
                "give exactly one of password, code and recovery_code",
            ));
        }
    };
    let access = accounts::reauthenticate(app, &caller, proof).await?;
    Ok(http::json(200, &AccessTokenResponse::of(&access)))
}
