//! `GET /auth/me`: the user behind a bearer access token, with their second factors and
//! passkeys.

use serde::Serialize;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::domain::User;
use crate::http::{self, Reply, Request};
use crate::mfa::store::FactorView;
use crate::passkeys::{self, store::PasskeyView};
use crate::second_factor;

/// Me verifies tokens (public keys only) and reads the database (to refuse revoked sessions).
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };

#[derive(Serialize)]
struct MeResponse<'a> {
    #[serde(flatten)]
    user: &'a User,
    factors: Vec<FactorView>,
    passkeys: Vec<PasskeyView>,
}

/// 200 `{"id","email","created_at","email_verified_at","factors","passkeys"}`; 401 with
/// `WWW-Authenticate: Bearer` otherwise.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let factors = if caller.mfa { second_factor::factors(app, &caller).await? } else { Vec::new() };
    let passkeys = passkeys::list(app, &caller).await?;
    Ok(http::json(200, &MeResponse { user: &caller.user, factors, passkeys }))
}
