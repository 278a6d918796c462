//! `POST /auth/verify-email/resend`: mail the caller a new verification link.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, Reply, Request};
use crate::links;

/// Resend verifies access tokens, reads and writes the database, and sends mail.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: true, mfa: false, passkeys: false, query: false };

/// 202, also when the address is verified already or a sending limit holds the mail back; 401
/// without a live access token.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    links::resend_verification(app, &caller).await?;
    Ok(http::empty(202))
}
