//! `POST /auth/passkeys/register/finish`: add the passkey the authenticator made.

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::PasskeyId;
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::passkeys;
use crate::tokens::ChallengeId;

/// Register-finish verifies access tokens, checks the authenticator's answer, writes, and mails
/// the owner.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: true, mfa: false, passkeys: true, query: false };

#[derive(Deserialize)]
struct FinishBody {
    challenge_id: String,
    credential: RegisterPublicKeyCredential,
    name: Option<String>,
}

#[derive(Serialize)]
struct Registered<'a> {
    id: PasskeyId,
    name: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
}

/// 201 `{"id","name","created_at"}`; 400 `invalid_challenge` (not this session's live
/// ceremony) or `invalid_credential` (the answer did not verify); 409
/// `passkey_already_registered` or `too_many_passkeys`; 422 `invalid_name`; 429.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let body: FinishBody = request.json()?;
    let name = passkeys::parse_name(body.name)?;
    let challenge = ChallengeId::parse(&body.challenge_id).ok_or(ApiError::InvalidChallenge)?;
    let passkey = passkeys::finish_registration(app, &caller, challenge, body.credential, name).await?;
    Ok(http::json(201, &Registered { id: passkey.id, name: &passkey.name, created_at: passkey.created_at }))
}
