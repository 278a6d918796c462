//! `POST /auth/signup`: create an account and its first session.

use super::{Credentials, token_response};
use crate::accounts;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::{Email, Password};
use crate::http::{ApiRequest as _, Reply, Request};

/// Signup writes to the database, signs tokens and sends the verification mail.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign, mail: true };

/// 201 with the token response; the verification mail is sent (or its failure logged).
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: Credentials = request.json()?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password, &email)?;
    let issued = accounts::signup(app, email, password, &request.device()).await?;
    Ok(token_response(201, &issued))
}
