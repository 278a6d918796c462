//! `POST /auth/password/reset`: set a new password through a reset link, and sign in.

use serde::Deserialize;

use super::sign_in_response;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{ApiRequest as _, Reply, Request};
use crate::links;
use crate::tokens::MailToken;

/// Reset writes to the database and signs tokens (it opens a session).
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign, mail: false, mfa: false, passkeys: false, query: false };

#[derive(Deserialize)]
struct ResetBody {
    token: String,
    password: String,
}

/// 200 with the token response of a new session (or `mfa_required` with an `mfa_token`, for a
/// user with a live second factor), every other session of the user revoked; 400
/// `invalid_token` for a dead link; 422 `weak_password`.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: ResetBody = request.json()?;
    let token = MailToken::parse(&body.token)?;
    let signed_in = links::reset_password(app, token, body.password, &request.device()).await?;
    Ok(sign_in_response(&signed_in))
}
