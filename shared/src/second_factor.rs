//! The second factor's use-cases: enrol and confirm a TOTP factor, finish a sign-in with it (a
//! code or a recovery code), prove it again for a sensitive action, remove it, renew the
//! recovery codes. Its parts (secrets, sealing, codes, statements) are in `mfa`.
//!
//! Every code is checked the same way ([`prove`]): admitted first, in one statement that counts
//! it as a wrong one (the `mfa_token`'s tries, the user's backoff), then compared in constant
//! time, then accepted once by the statement that advances the factor's last step (or spends the
//! recovery code), which takes the count back.
//!
//! Like every use-case module, each operation validates nothing (handlers pass parsed types),
//! touches the database in as few atomic statements as it can, and answers with domain results.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::Empty;

use crate::app::App;
use crate::db::DbConnection;
use crate::domain::FactorId;
use crate::domain::{Assurance, Device, SecondFactor, SecurityChange, SessionId, UserId};
use crate::error::{ApiError, Context as _};
use crate::mail::Letter;
use crate::mfa::recovery::{self, RecoveryCode};
use crate::mfa::store::{self, Change, CodeAdmission, NewSessionAt, Presenter, StoredFactor, UndoToken};
use crate::mfa::totp::{self, TotpSecret};
use crate::security_events;
use crate::sessions::{Caller, Issued, first_token_ttl};
use crate::tokens::{AccessToken, MailToken, MfaToken, RefreshToken};

/// The issuer an authenticator app shows beside the account.
const TOTP_ISSUER: &str = "Auth";

/// A second factor as a client presents it.
#[derive(Debug)]
pub enum Presented {
    /// A TOTP code from the authenticator app.
    Code(String),
    /// One of the user's recovery codes.
    RecoveryCode(String),
}

impl Presented {
    /// From a body's `code` and `recovery_code` fields: exactly one of them, else a 422
    /// `mfa_code_required`.
    pub fn from_fields(code: Option<String>, recovery_code: Option<String>) -> Result<Self, ApiError> {
        match (code, recovery_code) {
            (Some(code), None) => Ok(Self::Code(code)),
            (None, Some(code)) => Ok(Self::RecoveryCode(code)),
            _ => Err(ApiError::validation("mfa_code_required", "give exactly one of code and recovery_code")),
        }
    }
}

/// The current TOTP step.
fn now_step() -> u64 {
    totp::step_of(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()))
}

/// The factor's secret, unsealed.
async fn open_secret(app: &App, user: UserId, factor: &StoredFactor) -> Result<TotpSecret, ApiError> {
    let bytes = app.mfa_ring()?.open(&factor.sealed, &factor.id.seal_context(user)).await?;
    TotpSecret::from_bytes(&bytes)
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("a sealed TOTP secret of the wrong length")))
}

/// What a proof established.
struct Proven {
    user: UserId,
    method: SecondFactor,
}

/// Checks a second factor, for a sign-in's `mfa_token` or a signed-in caller (see the module's
/// doc). A wrong or reused code is `wrong` (401 at sign-in, 403 for a signed-in caller), as is
/// any code of a user without a live factor. With `expected`, the live factor must be that one
/// (404 `factor_not_found` before any code is spent).
async fn prove(
    app: &App,
    db: &mut DbConnection,
    presenter: Presenter<'_>,
    device: &Device,
    presented: &Presented,
    expected: Option<FactorId>,
    wrong: fn() -> ApiError,
) -> Result<Proven, ApiError> {
    let (user, factor) = match store::admit_code(db, presenter, None).await.context("admitting the code")? {
        // A signed-in caller's user is gone (deleted meanwhile): their token is no good.
        CodeAdmission::DeadToken if matches!(presenter, Presenter::Session { .. }) => {
            return Err(ApiError::InvalidToken);
        }
        CodeAdmission::DeadToken => return Err(ApiError::InvalidMfaToken),
        CodeAdmission::Throttled { retry_after_seconds } => {
            return Err(ApiError::TooManyAttempts { retry_after: retry_after_seconds });
        }
        CodeAdmission::Admitted { user, factor } => (user, factor),
    };
    tracing::Span::current().record("user", tracing::field::display(user.0));
    let Some(factor) = factor else { return Err(wrong()) };
    if expected.is_some_and(|expected| expected != factor.id) {
        return Err(ApiError::FactorNotFound);
    }
    let method = match presented {
        Presented::Code(_) => SecondFactor::Totp,
        Presented::RecoveryCode(_) => SecondFactor::RecoveryCode,
    };
    let accepted = match presented {
        Presented::Code(code) => {
            let secret = open_secret(app, user, &factor).await?;
            match secret.matching_step(code, now_step(), factor.last_used_step) {
                Some(step) => store::accept_step(db, factor.id, step, presenter, device)
                    .await
                    .context("accepting the code")?,
                None => false,
            }
        }
        Presented::RecoveryCode(code) => match recovery::hash_presented(code) {
            Some(hash) => store::use_recovery_code(db, user, &hash, presenter, device)
                .await
                .context("spending the recovery code")?,
            None => false,
        },
    };
    if !accepted {
        app.metrics.count(crate::metrics::MFA_FAILED);
        let detail = serde_json::json!({ "method": method.as_str(), "purpose": presenter.purpose() });
        security_events::store::record_refusal(db, user, presenter.session(), "mfa_failed", device, &detail)
            .await
            .context("recording the refused code")?;
        return Err(wrong());
    }
    Ok(Proven { user, method })
}

/// The answer to a change the hourly cap refused: retry within the hour.
fn capped() -> ApiError {
    ApiError::TooManyAttempts { retry_after: 3600 }
}

/// Refuses a change past the hourly cap before its proof spends a code.
async fn within_the_cap(db: &mut DbConnection, user: UserId) -> Result<(), ApiError> {
    if store::changes_capped(db, user).await.context("counting the factor's changes")? {
        return Err(capped());
    }
    Ok(())
}

/// Finishes a sign-in that waits for its second factor: the `mfa_token` (checked first: 401
/// `invalid_mfa_token`), then the code (401 `invalid_mfa_code`; 429 once the user's backoff
/// holds), then the token consumed and the session opened at aal2, in one statement.
#[tracing::instrument(name = "auth.mfa_verify", skip_all, fields(user = Empty))]
pub async fn verify(
    app: &App,
    token: MfaToken,
    presented: Presented,
    device: &Device,
) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let hash = token.hash();
    let proven =
        prove(app, &mut db, Presenter::Token(&hash), device, &presented, None, || ApiError::InvalidMfaCode)
            .await?;
    let assurance = Assurance::second_factor(proven.method);
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSessionAt { id: session, refresh: &refresh.hash(), ttl: first_token_ttl(app) };
    let user = store::open_session_with_token(&mut db, proven.user, &hash, new_session, &assurance)
        .await
        .context("opening the session")?
        // The token was used by a concurrent verification (with another code) or voided meanwhile.
        .ok_or(ApiError::InvalidMfaToken)?;
    let access = tokens.issue(proven.user, session, &assurance).context("signing the access token")?;
    Ok(Issued { user, access, refresh })
}

/// A new TOTP enrolment, shown once.
pub struct Enrolment {
    pub factor: FactorId,
    pub secret: TotpSecret,
    pub uri: String,
}

/// Starts an enrolment (after a step-up): a new secret, sealed and stored pending, replacing
/// any earlier pending one. 409 `mfa_already_enabled` when the user has a live factor.
#[tracing::instrument(name = "auth.mfa_enroll", skip_all, fields(user = %caller.user.id.0))]
pub async fn enroll(app: &App, caller: &Caller) -> Result<Enrolment, ApiError> {
    caller.require_step_up()?;
    if caller.mfa {
        return Err(ApiError::MfaAlreadyEnabled);
    }
    let secret = TotpSecret::generate().context("generating the secret")?;
    let factor = FactorId::generate();
    let sealed = app.mfa_ring()?.seal(secret.expose(), &factor.seal_context(caller.user.id)).await?;
    let mut db = app.connection().await.context("connecting to the database")?;
    store::replace_pending_factor(&mut db, caller.user.id, factor, &sealed)
        .await
        .context("storing the enrolment")?;
    let uri = totp::otpauth_uri(&secret, TOTP_ISSUER, &caller.user.email);
    Ok(Enrolment { factor, secret, uri })
}

/// A confirmed factor: its recovery codes (shown once) and the session's new access token.
pub struct Confirmed {
    pub factor: FactorId,
    pub recovery_codes: Vec<RecoveryCode>,
    pub access: AccessToken,
}

/// Confirms a pending enrolment with its first code, within a step-up (as the enrolment was) and
/// the enrolment's 15 minutes (throttled as any code; 403 `invalid_mfa_code` when wrong): the
/// factor goes live with new recovery codes, this session is raised to aal2 and every other
/// session of the user ends. 404 `factor_not_found` for an id that is not the caller's pending,
/// recent enrolment; 409 when a factor is live already; 429 past the changes' hourly cap.
#[tracing::instrument(name = "auth.mfa_confirm", skip_all, fields(user = %caller.user.id.0))]
pub async fn confirm(
    app: &App,
    caller: &Caller,
    factor: FactorId,
    code: &str,
) -> Result<Confirmed, ApiError> {
    if caller.mfa {
        return Err(ApiError::MfaAlreadyEnabled);
    }
    caller.require_step_up()?;
    let tokens = app.tokens().await.context("loading the signing key")?;
    let user = caller.user.id;
    let mut db = app.connection().await.context("connecting to the database")?;
    within_the_cap(&mut db, user).await?;
    let presenter = Presenter::Session { user, session: caller.session };
    let pending =
        match store::admit_code(&mut db, presenter, Some(factor)).await.context("admitting the code")? {
            CodeAdmission::DeadToken => return Err(ApiError::InvalidToken),
            CodeAdmission::Throttled { retry_after_seconds } => {
                return Err(ApiError::TooManyAttempts { retry_after: retry_after_seconds });
            }
            CodeAdmission::Admitted { factor, .. } => factor.ok_or(ApiError::FactorNotFound)?,
        };
    let secret = open_secret(app, user, &pending).await?;
    let step = secret.matching_step(code, now_step(), None).ok_or(ApiError::WrongMfaCode)?;
    let codes = recovery::generate_set().context("generating the recovery codes")?;
    let hashes: Vec<Vec<u8>> = codes.iter().map(RecoveryCode::hash).collect();
    let undo = MailToken::generate().context("generating the undo link")?;
    let undo_token = UndoToken { token: &undo.hash(), ttl: SecurityChange::UNDO_LIFETIME };
    match store::confirm_factor(&mut db, user, factor, step, &hashes, caller.actor(), undo_token)
        .await
        .context("confirming the factor")?
    {
        Change::Done => {}
        Change::Capped => return Err(capped()),
        // A concurrent confirmation won, or a later enrolment replaced this one.
        Change::Missing => return Err(ApiError::FactorNotFound),
    }
    tell_owner(app, caller, SecurityChange::FactorAdded, &undo).await;
    let access = tokens
        .issue(user, caller.session, &Assurance::second_factor(SecondFactor::Totp))
        .context("signing the access token")?;
    Ok(Confirmed { factor, recovery_codes: codes, access })
}

/// A signed-in user's proof of their second factor, for a step-up or a sensitive action on the
/// factor itself: 403 `invalid_mfa_code` when wrong (or when they have none to prove).
pub(crate) async fn prove_signed_in(
    app: &App,
    db: &mut DbConnection,
    caller: &Caller,
    presented: &Presented,
) -> Result<SecondFactor, ApiError> {
    prove_signed_in_factor(app, db, caller, presented, None).await
}

/// [`prove_signed_in`], of the live factor `expected` when given.
async fn prove_signed_in_factor(
    app: &App,
    db: &mut DbConnection,
    caller: &Caller,
    presented: &Presented,
    expected: Option<FactorId>,
) -> Result<SecondFactor, ApiError> {
    let presenter = Presenter::Session { user: caller.user.id, session: caller.session };
    let proven =
        prove(app, db, presenter, &caller.device, presented, expected, || ApiError::WrongMfaCode).await?;
    Ok(proven.method)
}

/// Removes the caller's factor (after a step-up, and with a code of it or a recovery code):
/// their recovery codes and sign-ins waiting for it go with it. 404 `factor_not_found` for an
/// id that is not the caller's live factor.
#[tracing::instrument(name = "auth.mfa_remove", skip_all, fields(user = %caller.user.id.0))]
pub async fn remove(
    app: &App,
    caller: &Caller,
    factor: FactorId,
    presented: Presented,
) -> Result<(), ApiError> {
    if !caller.mfa {
        return Err(ApiError::FactorNotFound);
    }
    caller.require_step_up()?;
    let mut db = app.connection().await.context("connecting to the database")?;
    within_the_cap(&mut db, caller.user.id).await?;
    prove_signed_in_factor(app, &mut db, caller, &presented, Some(factor)).await?;
    let undo = MailToken::generate().context("generating the undo link")?;
    let undo_token = UndoToken { token: &undo.hash(), ttl: SecurityChange::UNDO_LIFETIME };
    match store::remove_factor(&mut db, caller.user.id, factor, caller.actor(), undo_token)
        .await
        .context("removing the factor")?
    {
        Change::Done => {}
        Change::Capped => return Err(capped()),
        Change::Missing => return Err(ApiError::FactorNotFound),
    }
    tell_owner(app, caller, SecurityChange::FactorRemoved, &undo).await;
    tracing::info!("second factor removed");
    Ok(())
}

/// A new set of recovery codes (after a step-up, and with a code or a recovery code): the old
/// ones stop working. 404 `factor_not_found` when the caller has no live factor.
#[tracing::instrument(name = "auth.mfa_recovery_codes", skip_all, fields(user = %caller.user.id.0))]
pub async fn regenerate_recovery_codes(
    app: &App,
    caller: &Caller,
    presented: Presented,
) -> Result<Vec<RecoveryCode>, ApiError> {
    if !caller.mfa {
        return Err(ApiError::FactorNotFound);
    }
    caller.require_step_up()?;
    let mut db = app.connection().await.context("connecting to the database")?;
    within_the_cap(&mut db, caller.user.id).await?;
    prove_signed_in(app, &mut db, caller, &presented).await?;
    let codes = recovery::generate_set().context("generating the recovery codes")?;
    let hashes: Vec<Vec<u8>> = codes.iter().map(RecoveryCode::hash).collect();
    let undo = MailToken::generate().context("generating the undo link")?;
    let undo_token = UndoToken { token: &undo.hash(), ttl: SecurityChange::UNDO_LIFETIME };
    match store::replace_recovery_codes(&mut db, caller.user.id, &hashes, caller.actor(), undo_token)
        .await
        .context("replacing the codes")?
    {
        Change::Done => {}
        Change::Capped => return Err(capped()),
        Change::Missing => return Err(ApiError::FactorNotFound),
    }
    tell_owner(app, caller, SecurityChange::RecoveryCodesRenewed, &undo).await;
    Ok(codes)
}

/// The caller's live factors, as `me` shows them.
pub async fn factors(app: &App, caller: &Caller) -> Result<Vec<store::FactorView>, ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    store::list_factors(&mut db, caller.user.id).await.context("listing the factors")
}

/// Mails the owner that their second factor changed, with the link that undoes it. The change
/// stands whatever becomes of the mail (SES's refusal is logged and counted); the mail is not
/// held back by the address's sending limits: whoever made the change had to prove the account's
/// factors first, and the owner must hear of every change.
pub(crate) async fn tell_owner(app: &App, caller: &Caller, change: SecurityChange, undo: &MailToken) {
    crate::links::deliver(app, Letter::SecurityChange(change), &caller.user.email, undo).await;
}

/// "This wasn't me": undoes the change a live undo link was mailed for (see
/// [`store::undo_security_change`]): the factor and recovery codes as they were, every session
/// ended. 400 `invalid_token` for a dead link.
#[tracing::instrument(name = "auth.undo_change", skip_all, fields(user = Empty))]
pub async fn undo(app: &App, token: MailToken) -> Result<(), ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    let user = store::undo_security_change(&mut db, &token.hash())
        .await
        .context("undoing the change")?
        .ok_or(ApiError::InvalidLinkToken)?;
    tracing::Span::current().record("user", tracing::field::display(user.0));
    tracing::warn!("a second-factor change was undone by its owner's link; every session ended");
    Ok(())
}
