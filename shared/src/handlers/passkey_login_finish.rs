//! `POST /auth/passkeys/login/finish`: sign in with the passkey's answer.

use serde::Deserialize;
use webauthn_rs::prelude::PublicKeyCredential;

use super::token_response;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{ApiRequest as _, Reply, Request};
use crate::metrics;
use crate::passkeys;

/// Login-finish opens the sealed ceremony, checks the assertion, writes the session and signs
/// its tokens.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign, mail: false, mfa: true, passkeys: true, query: false };

#[derive(Deserialize)]
struct FinishBody {
    challenge_id: String,
    credential: PublicKeyCredential,
}

/// 200 with the token response of a session at aal2; 401 `invalid_credentials` for any
/// failure (a used or expired ceremony, an unknown passkey, a bad signature); 403
/// `account_disabled` once the passkey verified, for an account an operator disabled.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: FinishBody = request.json()?;
    let signed_in = passkeys::finish_sign_in(app, &body.challenge_id, body.credential, &request.device()).await;
    if let Err(ApiError::AccountDisabled) = &signed_in {
        app.metrics.count(metrics::DISABLED_SIGN_IN);
    }
    Ok(token_response(200, &signed_in?))
}
