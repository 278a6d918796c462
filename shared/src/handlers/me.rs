//! `GET /auth/me`: the user behind a bearer access token.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, Reply, Request};

/// Me verifies tokens (public keys only) and reads the database (to refuse revoked sessions).
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false };

/// 200 `{"id","email","created_at","email_verified_at"}`; 401 with `WWW-Authenticate: Bearer` otherwise.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    Ok(http::json(200, &caller.user))
}
