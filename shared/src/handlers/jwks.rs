//! `GET /.well-known/jwks.json`, the public keys that verify access tokens, and
//! `GET /.well-known/openid-configuration`, the discovery document that points at them.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};

/// The JWKS needs the public keys and nothing else: no private key, no database.
pub const NEEDS: Needs = Needs { database: false, keys: Keys::Verify };

/// The discovery document's path; every other path this function is routed is the JWKS.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// 200 with the key set (`{"keys":[...]}`, public parameters only) or the discovery document,
/// cacheable for five minutes.
pub async fn handle(app: &App, request: HttpRequest) -> HttpResponse {
    app.learn_issuer(&request);
    let keys = match app.verification_keys().await {
        Ok(keys) => keys,
        Err(error) => return error.into_response(),
    };
    let response = if request.raw_path == OPENID_CONFIGURATION_PATH {
        match keys.openid_configuration() {
            Ok(document) => HttpResponse::json(200, &document),
            Err(error) => return ApiError::Unexpected(error).into_response(),
        }
    } else {
        HttpResponse::json(200, &keys.jwks())
    };
    response.with_header("cache-control", "public, max-age=300".to_owned())
}
