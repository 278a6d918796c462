//! `GET /auth/me`: the user behind a bearer access token.

use crate::app::App;
use crate::auth;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse, respond};

/// Me verifies tokens (public keys only) and reads the database (to refuse revoked sessions).
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify };

/// 200 `{"id","email","created_at"}`; 401 with `WWW-Authenticate: Bearer` otherwise.
pub async fn handle(app: &App, request: HttpRequest) -> HttpResponse {
    app.learn_issuer(&request);
    let result = async {
        let token = request.bearer_token().ok_or(ApiError::MissingToken)?;
        auth::current_user(app, token).await
    };
    respond(200, result.await)
}
