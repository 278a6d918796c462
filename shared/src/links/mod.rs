//! The mail links: a link sent within the sending limits, the address verified through one, a
//! verification sent again, a reset link asked for and a password reset through it (which signs
//! the user in). Its SQL is in [`store`].
//!
//! Like every use-case module, each operation validates nothing (handlers pass parsed types),
//! touches the database in as few atomic statements as it can, and answers with domain results.
//! Each runs in a span of its own (`auth.forgot_password`, ...; no password, token or email in
//! it) that records the user once known, and each step names itself in a failure's cause chain
//! (`.context(...)`), so the log line of a 500 or a 503 says which step failed and for whom.

pub mod store;

use tracing::field::Empty;

use crate::accounts::store::{Opening, PendingSignIn, Started};
use crate::app::App;
use crate::db::DbConnection;
use crate::domain::{Assurance, Device, Email, MailKind, Password, SessionId, User};
use crate::error::{ApiError, Context as _};
use crate::mail::{Delivery, Letter};
use crate::metrics;
use crate::mfa::MFA_TOKEN_TTL;
use crate::passwords;
use crate::sessions::store::NewSession;
use crate::sessions::{Caller, Issued, SignIn, first_token_ttl};
use crate::tokens::{MailToken, MfaToken, RefreshToken};
use store::MailRequest;

/// Records a mail request for `email` of the kind of link `letter` carries (see
/// [`store::request_mail`]) and, when the limits allow, sends it. A limit is logged and counted,
/// never told to the client. Returns whether a mail was attempted.
pub(crate) async fn send_link(
    app: &App,
    db: &mut DbConnection,
    letter: impl Into<Letter>,
    email: &str,
    source: Option<&str>,
) -> Result<bool, ApiError> {
    let letter = letter.into();
    let kind = letter
        .kind()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("a security notice is not a mail link")))?;
    let token = MailToken::generate().context("generating the link token")?;
    let source = source.map(|source| (source, app.mail_source_limit));
    let decision = store::request_mail(db, email, kind, &token.hash(), app.mailer.hourly_limit(), source)
        .await
        .context("recording the mail request")?;
    match decision {
        MailRequest::Issued => {
            deliver(app, letter, email, &token).await;
            Ok(true)
        }
        MailRequest::AddressLimited | MailRequest::SourceLimited | MailRequest::GlobalLimited => {
            tracing::info!(kind = kind.as_str(), limit = ?decision, "a mail was held back by a sending limit");
            app.metrics.count(metrics::MAIL_LIMITED);
            Ok(false)
        }
        MailRequest::NoAccount => Ok(false),
    }
}

/// [`send_link`] for an anonymous request that answers the same whether or not it sends: one
/// that sends records how long it took from `started`; one that sends nothing (no account, a
/// limit) lasts as long as a recent one that sent ([`crate::mail::Mailer::pace_from`]), so its
/// timing tells nothing.
pub(crate) async fn send_link_paced(
    app: &App,
    db: &mut DbConnection,
    letter: impl Into<Letter>,
    email: &str,
    device: &Device,
    started: std::time::Instant,
) -> Result<(), ApiError> {
    let source = device.source();
    if send_link(app, db, letter, email, source.as_deref()).await? {
        app.mailer.record_sending_request(started);
    } else {
        app.mailer.pace_from(started).await;
    }
    Ok(())
}

/// Sends a stored link. SES's refusal loses nothing (the token is stored; the user may ask
/// again) and is not the client's business: it is logged with SES's code and counted.
pub(crate) async fn deliver(app: &App, letter: Letter, email: &str, token: &MailToken) {
    let kind = letter.name();
    match app.mailer.send(letter, email, token.expose()).await {
        Delivery::Sent => app.metrics.count(metrics::MAIL_SENT),
        Delivery::NotConfigured => {
            tracing::warn!(kind, "no mail sent: MAIL_FROM is not set");
        }
        Delivery::Failed { code } => {
            tracing::error!(kind, ses_error = %code, "SES did not send the mail; its link is stored");
            app.metrics.count(metrics::MAIL_REJECTED);
        }
    }
}

/// Consumes a verification link and marks the address verified; 400 `invalid_token` for a
/// link that is unknown, expired or used.
#[tracing::instrument(name = "auth.verify_email", skip_all)]
pub async fn verify_email(app: &App, token: MailToken, device: &Device) -> Result<User, ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    store::verify_email(&mut db, &token.hash(), device)
        .await
        .context("consuming the verification token")?
        .ok_or(ApiError::InvalidLinkToken)
}

/// Sends the caller a new verification link (replacing the previous one), unless the address
/// is verified already or a sending limit holds it back: the answer is the same either way.
#[tracing::instrument(name = "auth.resend_verification", skip_all, fields(user = %caller.user.id.0))]
pub async fn resend_verification(app: &App, caller: &Caller) -> Result<(), ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    send_link(app, &mut db, MailKind::VerifyEmail, &caller.user.email, None).await?;
    Ok(())
}

/// Sends a reset link to `email` if an account has it and the limits allow. Whatever the case,
/// the same statement runs and the answer is the same, in the same time ([`send_link_paced`]).
#[tracing::instrument(name = "auth.forgot_password", skip_all)]
pub async fn forgot_password(app: &App, email: &Email, device: &Device) -> Result<(), ApiError> {
    let started = std::time::Instant::now();
    let mut db = app.connection().await.context("connecting to the database")?;
    send_link_paced(app, &mut db, MailKind::ResetPassword, email.as_str(), device, started).await
}

/// Sets a new password through a reset link and signs the user in: the link is consumed, every
/// other session is revoked, the address counts as verified, and a new session opens, in one
/// statement; for a user with a live second factor, a sign-in that waits for it instead. 400 `invalid_token` for a dead link (checked before the password, which is held
/// to the signup policy: 422 `weak_password`).
#[tracing::instrument(name = "auth.reset_password", skip_all, fields(user = Empty))]
pub async fn reset_password(
    app: &App,
    token: MailToken,
    password: String,
    device: &Device,
) -> Result<SignIn, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let hash = token.hash();
    // The connection is given back before argon2's work, and taken again after it.
    let target = {
        let mut db = app.connection().await.context("connecting to the database")?;
        store::reset_target(&mut db, &hash).await.context("reading the reset token")?
    }
    .ok_or(ApiError::InvalidLinkToken)?;
    let (user_id, email) = (target.user, target.email);
    tracing::Span::current().record("user", tracing::field::display(user_id.0));
    // The link stays live: it works once an operator enables the account again.
    if target.disabled {
        return Err(ApiError::AccountDisabled);
    }
    let email = Email::stored(&email)?;
    let password = Password::parse(password, &email)?;
    let password_hash = passwords::hash(password).await.context("hashing the password")?;
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app), device };
    let mfa_token = MfaToken::generate().context("generating the mfa token")?;
    let pending = PendingSignIn { token: &mfa_token.hash(), ttl: MFA_TOKEN_TTL };
    let mut db = app.connection().await.context("connecting to the database")?;
    let (user, started) = store::reset_password(
        &mut db,
        &hash,
        user_id,
        &password_hash,
        Opening { session: new_session, pending },
    )
    .await
    .context("resetting the password")?
    .ok_or(ApiError::InvalidLinkToken)?;
    if let Started::SecondFactorDue { factor } = started {
        return Ok(SignIn::SecondFactorDue { token: mfa_token, factor });
    }
    let access =
        tokens.issue(user.id, session, &Assurance::password()).context("signing the access token")?;
    Ok(SignIn::Session(Issued { user, access, refresh }))
}
