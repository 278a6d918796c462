//! `POST /auth/reauthenticate`: prove again that it is you (a step-up).

use serde::Deserialize;
use webauthn_rs::prelude::PublicKeyCredential;

use super::AccessTokenResponse;
use crate::accounts::{self, Reauthentication};
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::Password;
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::passkeys;
use crate::second_factor::Presented;

/// Reauthenticate verifies the caller's access token, checks a password, opens the factor's
/// secret to check a code or checks a passkey's assertion, writes, and signs the session's new
/// access token.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::SignAndVerify, mail: false, mfa: true, passkeys: true, query: false };

#[derive(Deserialize)]
struct ReauthenticateBody {
    password: Option<String>,
    code: Option<String>,
    recovery_code: Option<String>,
    challenge_id: Option<String>,
    credential: Option<PublicKeyCredential>,
}

/// 200 with a fresh access token, the session proven now (at aal2 with a code or a passkey);
/// 403 `invalid_password`, `invalid_mfa_code` or `invalid_passkey`; 422 `proof_required` unless
/// exactly one proof is given (a passkey's is `challenge_id` with `credential`, the ceremony
/// begun by `POST /auth/passkeys/login/begin`); 429.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let body: ReauthenticateBody = request.json()?;
    let proof = match (body.password, body.code, body.recovery_code, body.challenge_id, body.credential) {
        (Some(password), None, None, None, None) => Reauthentication::Password(
            Password::presented(password).map_err(|_| ApiError::InvalidPassword)?,
        ),
        (None, Some(code), None, None, None) => Reauthentication::SecondFactor(Presented::Code(code)),
        (None, None, Some(code), None, None) => Reauthentication::SecondFactor(Presented::RecoveryCode(code)),
        (None, None, None, Some(challenge), Some(credential)) => {
            let access = passkeys::reauthenticate(app, &caller, &challenge, credential).await?;
            return Ok(http::json(200, &AccessTokenResponse::of(&access)));
        }
        _ => {
            return Err(ApiError::validation(
                "proof_required",
                "give exactly one of password, code, recovery_code, and challenge_id with credential",
            ));
        }
    };
    let access = accounts::reauthenticate(app, &caller, proof).await?;
    Ok(http::json(200, &AccessTokenResponse::of(&access)))
}
