//! `POST /auth/logout`: end the session a refresh token belongs to.

use super::RefreshTokenBody;
use crate::app::App;
use crate::auth;
use crate::config::Needs;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};

/// Logout writes to the database; it signs and verifies nothing.
pub const NEEDS: Needs = Needs { database: true, keys: false };

/// 204, also for an unknown or already revoked token (logging out twice is not an error).
pub async fn handle(app: &App, request: HttpRequest) -> HttpResponse {
    let result = async {
        let body: RefreshTokenBody = request.json()?;
        auth::logout(app, &body.refresh_token).await
    };
    match result.await {
        Ok(()) => HttpResponse::empty(204),
        Err(error) => ApiError::into_response(error),
    }
}
