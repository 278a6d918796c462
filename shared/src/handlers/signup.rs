//! `POST /auth/signup`: create an account and its first session.

use super::{Credentials, token_response};
use crate::accounts;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::{Email, Password};
use crate::http::{self, ApiRequest as _, Reply, Request};

/// Signup writes to the database, signs tokens and sends the verification mail.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign, mail: true, mfa: false, passkeys: false, query: false };

/// 201 with the token response; the verification mail is sent (or its failure logged); 409
/// `email_taken` when an account has the address. Where `REQUIRE_VERIFIED_EMAIL` holds, 202
/// with no body for an address with an account and one without alike: the mail says which
/// (see [`accounts::signup_pending_verification`]).
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: Credentials = request.json()?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password, &email)?;
    if app.require_verified_email {
        accounts::signup_pending_verification(app, email, password, &request.device()).await?;
        return Ok(http::empty(202));
    }
    let issued = accounts::signup(app, email, password, &request.device()).await?;
    Ok(token_response(201, &issued))
}
