//! `POST /auth/refresh`: rotate a refresh token.

use super::{RefreshTokenBody, token_response};
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{ApiRequest as _, Reply, Request};
use crate::metrics;
use crate::sessions;
use crate::tokens::RefreshToken;

/// Refresh writes to the database and signs tokens.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Sign, mail: false, mfa: false, passkeys: false, query: false };

/// 200 with the token response and a new refresh token; the presented one stops working.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: RefreshTokenBody = request.json()?;
    let presented = RefreshToken::parse(&body.refresh_token)?;
    let refreshed = sessions::refresh(app, presented, &request.device()).await;
    if let Err(ApiError::RefreshTokenReused) = &refreshed {
        app.metrics.count(metrics::REFRESH_REUSED);
    }
    let issued = refreshed?;
    Ok(token_response(200, &issued))
}
