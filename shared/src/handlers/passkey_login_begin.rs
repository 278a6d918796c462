//! `POST /auth/passkeys/login/begin`: start a sign-in (or a step-up) with a passkey.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{ApiRequest as _, Reply, Request};
use crate::passkeys;

/// Login-begin stores the ceremony; it holds no key.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: true };

/// 200 `{"challenge_id","publicKey"}`: request options for `navigator.credentials.get`, with
/// no `allowCredentials` (the authenticator offers its own passkeys for this site), good for
/// five minutes, for `login/finish` or `POST /auth/reauthenticate`; 429 past the source
/// address's limit.
pub async fn handle(app: &App, request: Request) -> Reply {
    let begun = passkeys::begin_sign_in(app, &request.device()).await?;
    Ok(super::ceremony_response(&begun))
}
