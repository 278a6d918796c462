//! `POST /auth/login`: verify credentials and open a session.

use super::{Credentials, token_response};
use crate::app::App;
use crate::auth;
use crate::config::{Keys, Needs};
use crate::domain::{Email, Password};
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::metrics;

/// Login reads and writes the database and signs tokens.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign };

/// 200 with the token response; 401 `invalid_credentials` for an unknown email or a wrong
/// password alike.
pub async fn handle(app: &App, request: HttpRequest) -> HttpResponse {
    app.learn_issuer(&request);
    let result = async {
        let body: Credentials = request.json()?;
        // A malformed email cannot belong to an account: the same 401 as any unknown email.
        let email = Email::parse(&body.email).map_err(|_| ApiError::InvalidCredentials)?;
        let password = Password::presented(body.password)?;
        auth::login(app, email, password).await
    };
    match result.await {
        Ok(issued) => token_response(200, &issued),
        Err(error) => {
            // Counted for the credential-stuffing alarms; a client's malformed request is not.
            match error {
                ApiError::InvalidCredentials => app.metrics.count(metrics::LOGIN_FAILED),
                ApiError::TooManyAttempts { .. } => app.metrics.count(metrics::LOGIN_THROTTLED),
                _ => {}
            }
            ApiError::into_response(error)
        }
    }
}
