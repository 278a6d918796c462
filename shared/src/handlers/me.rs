//! `GET /auth/me`: the user behind a bearer access token.

use crate::app::App;
use crate::auth;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Reply, Request};

/// Me verifies tokens (public keys only) and reads the database (to refuse revoked sessions).
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false };

/// 200 `{"id","email","created_at","email_verified_at"}`; 401 with `WWW-Authenticate: Bearer` otherwise.
pub async fn handle(app: &App, request: Request) -> Reply {
    app.learn_issuer(&request);
    let token = request.bearer_token().ok_or(ApiError::MissingToken)?;
    let caller = auth::authenticate(app, token).await?;
    Ok(http::json(200, &caller.user))
}
