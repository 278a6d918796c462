//! `POST /auth/login`: verify credentials and open a session.

use super::{Credentials, sign_in_response};
use crate::accounts;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::{Email, Password};
use crate::error::ApiError;
use crate::http::{ApiRequest as _, Reply, Request};
use crate::metrics;

/// Login reads and writes the database and signs tokens.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign, mail: false, mfa: false, passkeys: false, query: false };

/// 200 with the token response, or `mfa_required` with an `mfa_token` for a user with a live
/// second factor; 401 `invalid_credentials` for an unknown email or a wrong
/// password alike, and, when `REQUIRE_VERIFIED_EMAIL` holds, for an address not verified yet.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: Credentials = request.json()?;
    // A malformed email cannot belong to an account: the same 401 as any unknown email.
    let email = Email::parse(&body.email).map_err(|_| ApiError::InvalidCredentials);
    let result = match (email, Password::presented(body.password)) {
        (Ok(email), Ok(password)) => accounts::login(app, email, password, &request.device()).await,
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    // Counted for the credential-stuffing alarms; a client's malformed request is not.
    match &result {
        Err(ApiError::InvalidCredentials) => app.metrics.count(metrics::LOGIN_FAILED),
        Err(ApiError::TooManyAttempts { .. }) => app.metrics.count(metrics::LOGIN_THROTTLED),
        Err(ApiError::AccountDisabled) => app.metrics.count(metrics::DISABLED_SIGN_IN),
        _ => {}
    }
    Ok(sign_in_response(&result?))
}
