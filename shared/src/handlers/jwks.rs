//! `GET /.well-known/jwks.json`: the public keys that verify access tokens.

use crate::app::App;
use crate::config::Needs;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};

/// The JWKS needs the keys and nothing else: it never connects to the database.
pub const NEEDS: Needs = Needs { database: false, keys: true };

/// 200 `{"keys":[...]}`, public parameters only, cacheable for five minutes.
pub async fn handle(app: &App, _request: HttpRequest) -> HttpResponse {
    match app.tokens().await {
        Ok(tokens) => HttpResponse::json(200, &tokens.jwks())
            .with_header("cache-control", "public, max-age=300".to_owned()),
        Err(error) => ApiError::into_response(error),
    }
}
