//! `GET /.well-known/jwks.json`, the public keys that verify access tokens, and
//! `GET /.well-known/openid-configuration`, the discovery document that points at them.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::error::ApiError;
use crate::http::{self, Reply, Request};
use ::http::header::CACHE_CONTROL;
use lambda_http::RequestExt as _;

/// The JWKS needs the public keys and nothing else: no private key, no database.
pub const NEEDS: Needs = Needs { database: false, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };

/// The discovery document's path; every other path this function is routed is the JWKS.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// 200 with the key set (`{"keys":[...]}`, public parameters only) or the discovery document,
/// cacheable for five minutes.
pub async fn handle(app: &App, request: Request) -> Reply {
    let keys = app.verification_keys().await?;
    // A REST API's path may carry its stage (`/Prod/.well-known/...`).
    let response = if request.raw_http_path().ends_with(OPENID_CONFIGURATION_PATH) {
        http::json(200, &keys.openid_configuration().map_err(ApiError::Unexpected)?)
    } else {
        http::json(200, &keys.jwks())
    };
    Ok(http::with_header(response, CACHE_CONTROL, "public, max-age=300"))
}
