//! `POST /auth/signup`: create an account and its first session.

use super::{Credentials, token_response};
use crate::app::App;
use crate::auth;
use crate::config::{Keys, Needs};
use crate::domain::{Email, Password};
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};

/// Signup writes to the database and signs tokens.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign };

/// 201 with the token response.
pub async fn handle(app: &App, request: HttpRequest) -> HttpResponse {
    app.learn_issuer(&request);
    let result = async {
        let body: Credentials = request.json()?;
        let email = Email::parse(&body.email)?;
        let password = Password::parse(body.password, &email)?;
        auth::signup(app, email, password).await
    };
    match result.await {
        Ok(issued) => token_response(201, &issued),
        Err(error) => ApiError::into_response(error),
    }
}
