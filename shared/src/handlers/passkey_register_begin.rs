//! `POST /auth/passkeys/register/begin`: start adding a passkey to the caller's account.

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{Reply, Request};
use crate::passkeys;

/// Register-begin verifies access tokens, reads the caller's passkeys and stores the ceremony.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false, passkeys: true, query: false };

/// 200 `{"challenge_id","publicKey"}`: creation options for `navigator.credentials.create`
/// (a discoverable credential, user verification required, the caller's passkeys excluded),
/// good for five minutes and this session; 403 `step_up_required` without a recent proof.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let begun = passkeys::begin_registration(app, &caller).await?;
    Ok(super::ceremony_response(&begun))
}
