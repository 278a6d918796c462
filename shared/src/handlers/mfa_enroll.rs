//! `POST /auth/mfa/totp/enroll`: start enrolling an authenticator app.

use serde::Serialize;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, Reply, Request};
use crate::domain::FactorId;
use crate::second_factor;

/// Enroll verifies access tokens, seals the new secret and writes it.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: true, passkeys: false, query: false };

#[derive(Serialize)]
struct EnrolmentResponse<'a> {
    factor_id: FactorId,
    secret: &'a str,
    otpauth_uri: &'a str,
}

/// 200 `{"factor_id","secret","otpauth_uri"}`, a pending factor (a later enrolment replaces
/// it); 403 `step_up_required` without a recent sign-in or re-authentication; 409
/// `mfa_already_enabled`.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let enrolment = second_factor::enroll(app, &caller).await?;
    let secret = enrolment.secret.base32();
    Ok(http::json(
        200,
        &EnrolmentResponse { factor_id: enrolment.factor, secret: &secret, otpauth_uri: &enrolment.uri },
    ))
}
