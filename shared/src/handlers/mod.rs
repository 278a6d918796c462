//! One module per endpoint. Each exposes `NEEDS` (what the function reads from its environment)
//! and `handle`, an `async fn(&App, lambda_http::Request) -> Reply`. A handler's `Err` is an
//! [`ApiError`](crate::error::ApiError) that the runtime wiring (`runtime::answer`) answers with
//! its status and code, so no error reaches the front door as a bare 502.

pub mod health;
pub mod jwks;
pub mod login;
pub mod logout;
pub mod me;
pub mod migrate;
pub mod refresh;
pub mod signup;

use serde::{Deserialize, Serialize};

use crate::auth::Issued;
use crate::domain::User;
use crate::http::{self, Response};

/// `{"email","password"}`, the body of signup and login.
#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

/// `{"refresh_token"}`, the body of refresh and logout.
#[derive(Deserialize)]
struct RefreshTokenBody {
    refresh_token: String,
}

/// The token response of signup, login and refresh.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: &'a str,
    user: &'a User,
}

fn token_response(status: u16, issued: &Issued) -> Response {
    http::json(
        status,
        &TokenResponse {
            access_token: &issued.access.token,
            token_type: "Bearer",
            expires_in: issued.access.expires_in,
            refresh_token: issued.refresh.expose(),
            user: &issued.user,
        },
    )
}
