//! `POST /auth/verify-email`: consume a verification link's token.

use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::links;
use crate::tokens::MailToken;

/// Verify-email writes to the database; it signs and verifies nothing.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

/// `{"token"}`: the token of the verification link.
#[derive(Deserialize)]
struct LinkTokenBody {
    token: String,
}

/// 200 `{"user"}` with `email_verified_at` set; 400 `invalid_token` for a token that is
/// malformed, unknown, expired or already used.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: LinkTokenBody = request.json()?;
    let token = MailToken::parse(&body.token)?;
    let user = links::verify_email(app, token, &request.device()).await?;
    Ok(http::json(200, &json!({ "user": user })))
}
