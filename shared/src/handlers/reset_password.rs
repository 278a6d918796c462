//! `POST /auth/password/reset`: set a new password through a reset link, and sign in.

use serde::Deserialize;

use super::token_response;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{ApiRequest as _, Reply, Request};
use crate::links;
use crate::tokens::MailToken;

/// Reset writes to the database and signs tokens (it opens a session).
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign, mail: false, mfa: false };

#[derive(Deserialize)]
struct ResetBody {
    token: String,
    password: String,
}

/// 200 with the token response of a new session, every other session of the user revoked; 400
/// `invalid_token` for a dead link; 422 `weak_password`.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: ResetBody = request.json()?;
    let token = MailToken::parse(&body.token)?;
    let issued = links::reset_password(app, token, body.password, &request.device()).await?;
    Ok(token_response(200, &issued))
}
