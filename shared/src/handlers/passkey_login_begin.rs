//! `POST /auth/passkeys/login/begin`: start a sign-in (or a step-up) with a passkey.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{Reply, Request};
use crate::passkeys;

/// Login-begin seals the ceremony with the MFA key ring; it stores nothing and holds no token key.
pub const NEEDS: Needs = Needs { database: false, keys: Keys::None, mail: false, mfa: true, passkeys: true, query: false };

/// 200 `{"challenge_id","publicKey"}`: request options for `navigator.credentials.get`, with
/// no `allowCredentials` (the authenticator offers its own passkeys for this site), good for
/// five minutes, for `login/finish` or `POST /auth/reauthenticate`. The body is not read.
pub async fn handle(app: &App, _request: Request) -> Reply {
    let begun = passkeys::begin_sign_in(app).await?;
    Ok(super::ceremony_response(&begun))
}
