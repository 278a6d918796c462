//! `POST /auth/mfa/recovery-codes`: a new set of recovery codes.

use serde::Serialize;

use super::SecondFactorBody;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::second_factor;

/// It verifies access tokens, opens the factor's secret to check a code, writes, and mails the owner.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: true, mfa: true, passkeys: false, query: false };

#[derive(Serialize)]
struct CodesResponse<'a> {
    recovery_codes: Vec<&'a str>,
}

/// 200 `{"recovery_codes"}`, shown this once, the old ones dead; 403 `step_up_required` or
/// `invalid_mfa_code`; 404 `factor_not_found` without a live factor; 429.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let body: SecondFactorBody = request.json()?;
    let codes = second_factor::regenerate_recovery_codes(app, &caller, body.presented()?).await?;
    Ok(http::json(200, &CodesResponse { recovery_codes: codes.iter().map(|code| code.expose()).collect() }))
}
