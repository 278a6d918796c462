//! `POST /auth/password/forgot`: mail a password-reset link.

use serde::Deserialize;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::Email;
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::links;

/// Forgot-password reads and writes the database and sends mail.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: true, mfa: false, passkeys: false, query: false };

#[derive(Deserialize)]
struct ForgotBody {
    email: String,
}

/// 202 with no body, the same for an address with an account and one without (and in the same
/// time class), and whether or not a sending limit held the mail back. 422 `invalid_email`
/// only for a malformed address, which no account can have.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: ForgotBody = request.json()?;
    let email = Email::parse(&body.email)?;
    links::forgot_password(app, &email, &request.device()).await?;
    Ok(http::empty(202))
}
