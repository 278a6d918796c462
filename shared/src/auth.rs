//! The auth logic: each operation validates nothing (handlers pass parsed types), touches the
//! database in as few atomic statements as it can, and answers with domain results.
//!
//! Each operation runs in a span of its own (`auth.login`, ...; no password, token or email in
//! it) that records the user once known, and each step names itself in a failure's cause chain
//! (`.context(...)`), so the log line of a 500 or a 503 says which step failed and for whom.

use tracing::field::Empty;

use crate::app::App;
use crate::db::DbConnection;
use crate::domain::{Device, Email, MailKind, Password, SessionId, User, UserId};
use crate::error::{ApiError, Context as _};
use crate::mail::Delivery;
use crate::metrics;
use crate::passwords::{self, Verified};
use crate::store::{self, Admission, MailRequest, NewSession, Replay, SessionView};
use crate::tokens::{AccessToken, MailToken, RefreshToken};

/// The unique constraint a duplicate email violates.
const EMAIL_CONSTRAINT: &str = "users_email_key";

/// What signup, login and refresh hand back to the client.
#[derive(Debug)]
pub struct Issued {
    pub user: User,
    pub access: AccessToken,
    pub refresh: RefreshToken,
}

/// Creates the account, its first session and refresh token, atomically. 409 if the email is
/// taken, decided by the unique constraint (no check-then-insert race). Then sends the
/// verification mail; the account stands whatever becomes of the mail.
#[tracing::instrument(name = "auth.signup", skip_all, fields(user = Empty))]
pub async fn signup(
    app: &App,
    email: Email,
    password: Password,
    device: &Device,
) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let password_hash = passwords::hash(password).await.context("hashing the password")?;
    // Acquired after hashing: the connection is not held idle through 30 ms of argon2.
    let mut db = app.connection().await.context("connecting to the database")?;
    let (user_id, session) = (UserId::generate(), SessionId::generate());
    tracing::Span::current().record("user", tracing::field::display(user_id.0));
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app), device };
    let user = store::create_user_with_session(&mut db, user_id, &email, &password_hash, new_session)
        .await
        .map_err(|error| match &error {
        sqlx::Error::Database(db_error) if db_error.constraint() == Some(EMAIL_CONSTRAINT) => {
            ApiError::EmailTaken
        }
        _ => ApiError::from(error).context("creating the user and the session"),
    })?;
    let access = tokens.issue(user.id, session).context("signing the access token")?;
    // The account exists: a failure to record or send the mail is logged, not answered (the
    // user can ask for it again: `POST /auth/verify-email/resend`).
    if let Err(error) = send_link(app, &mut db, MailKind::VerifyEmail, &user.email).await {
        tracing::error!(error = ?error, "the verification mail could not be requested");
    }
    Ok(Issued { user, access, refresh })
}

/// Admits the attempt first, in one statement that also counts it (see [`store::admit_login`]):
/// a throttled email is refused before any argon2 work. Then verifies the password (against a
/// dummy hash for an unknown email, so both failures cost and look the same). A failure is
/// already counted; a success clears the count, upgrades an outdated hash and opens a session,
/// atomically: two round trips on success, one on failure.
#[tracing::instrument(name = "auth.login", skip_all, fields(user = Empty))]
pub async fn login(app: &App, email: Email, password: Password, device: &Device) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let account = match store::admit_login(&mut db, &email).await.context("admitting the attempt")? {
        Admission::Admitted { account } => account,
        Admission::Throttled { retry_after_seconds } => {
            return Err(ApiError::TooManyAttempts { retry_after: retry_after_seconds });
        }
    };
    let (user, stored_hash) = account.unzip();
    let verified = passwords::verify(password, stored_hash).await.context("verifying the password")?;
    let (Some(user), Verified::Yes { rehashed }) = (user, verified) else {
        return Err(ApiError::InvalidCredentials);
    };
    tracing::Span::current().record("user", tracing::field::display(user.id.0));
    // Said only to whoever knows the password. The attempt stays counted, as a failure is.
    if app.require_verified_email && user.email_verified_at.is_none() {
        return Err(ApiError::EmailNotVerified);
    }
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app), device };
    store::start_session(&mut db, user.id, &email, rehashed.as_deref(), new_session)
        .await
        .context("opening the session")?;
    let access = tokens.issue(user.id, session).context("signing the access token")?;
    Ok(Issued { user, access, refresh })
}

/// A new session's first refresh token lives no longer than the session may.
fn first_token_ttl(app: &App) -> std::time::Duration {
    app.refresh_token_ttl.min(app.session_max_lifetime)
}

/// Exchanges a live refresh token for its successor and a new access token: one statement when
/// the token is live. Otherwise a second statement decides: within the grace window after its
/// rotation, the same successor is handed out again (two tabs, a lost response); any other
/// replay of a rotated token is reuse, and revokes the whole session.
#[tracing::instrument(name = "auth.refresh", skip_all, fields(user = Empty))]
pub async fn refresh(app: &App, presented: RefreshToken) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let successor = tokens.successor_of(&presented);
    let (presented_hash, successor_hash) = (presented.hash(), successor.hash());
    let rotated = match store::rotate_refresh_token(
        &mut db,
        &presented_hash,
        &successor_hash,
        app.refresh_token_ttl,
        app.session_max_lifetime,
    )
    .await
    .context("rotating the refresh token")?
    {
        Some(rotated) => rotated,
        None => match store::replay_refresh_token(
            &mut db,
            &presented_hash,
            &successor_hash,
            app.refresh_reuse_grace,
            app.session_max_lifetime,
        )
        .await
        .context("looking up a replayed refresh token")?
        {
            Replay::Grace(rotated) => rotated,
            Replay::Reused => {
                tracing::warn!("a rotated refresh token was presented again; its session is revoked");
                return Err(ApiError::RefreshTokenReused);
            }
            Replay::Invalid => return Err(ApiError::InvalidRefreshToken),
        },
    };
    tracing::Span::current().record("user", tracing::field::display(rotated.user.id.0));
    let access = tokens.issue(rotated.user.id, rotated.session).context("signing the access token")?;
    Ok(Issued { user: rotated.user, access, refresh: successor })
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The session of the presented token (the default).
    Local,
    /// Every session of the user.
    Global,
    /// Every session of the user but the presented token's.
    Others,
}

impl LogoutScope {
    /// `local` (or absent), `global` or `others`; anything else is a 422 `invalid_scope`.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        match raw {
            None | Some("local") => Ok(Self::Local),
            Some("global") => Ok(Self::Global),
            Some("others") => Ok(Self::Others),
            Some(other) => Err(ApiError::validation(
                "invalid_scope",
                format!("scope {other:?} is not one of local, global, others"),
            )),
        }
    }
}

/// Ends sessions. `Local` accepts any token and ignores unknown or revoked ones (logging out
/// twice is not an error). `Global` and `Others` reach other sessions, so they need a live token
/// (401 otherwise): a stale stolen token cannot log its owner out everywhere.
#[tracing::instrument(name = "auth.logout", skip_all, fields(scope = ?scope))]
pub async fn logout(app: &App, presented: &str, scope: LogoutScope) -> Result<(), ApiError> {
    let token = RefreshToken::parse(presented);
    let mut db = match (&token, scope) {
        (Err(_), LogoutScope::Local) => return Ok(()),
        (Err(_), _) => return Err(ApiError::InvalidRefreshToken),
        (Ok(_), _) => app.connection().await.context("connecting to the database")?,
    };
    let hash = token.expect("checked above").hash();
    match scope {
        LogoutScope::Local => {
            store::revoke_session_of_token(&mut db, &hash).await.context("revoking the session")?
        }
        LogoutScope::Global | LogoutScope::Others => {
            let live = store::revoke_sessions_of_owner(
                &mut db,
                &hash,
                scope == LogoutScope::Global,
                app.session_max_lifetime,
            )
            .await
            .context("revoking the owner's sessions")?;
            if !live {
                return Err(ApiError::InvalidRefreshToken);
            }
        }
    }
    Ok(())
}

/// Whom an access token speaks for: the user, and the session the token was issued in.
#[derive(Debug)]
pub struct Caller {
    pub user: User,
    pub session: SessionId,
}

/// The caller behind an access token, provided its session is still live (neither revoked nor
/// past its absolute lifetime): a deleted account's or a revoked session's token stops working
/// here at once, though its signature stays valid until it expires.
#[tracing::instrument(name = "auth.authenticate", skip_all, fields(user = Empty))]
pub async fn authenticate(app: &App, access_token: &str) -> Result<Caller, ApiError> {
    let claims = app.verify_access_token(access_token).await.context("verifying the access token")?;
    tracing::Span::current().record("user", tracing::field::display(claims.sub));
    let session = SessionId(claims.sid);
    let mut db = app.connection().await.context("connecting to the database")?;
    let user = store::find_session_user(&mut db, UserId(claims.sub), session, app.session_max_lifetime)
        .await
        .context("reading the session's user")?
        .ok_or(ApiError::InvalidToken)?;
    Ok(Caller { user, session })
}

/// Records a mail request of `kind` for `email` (see [`store::request_mail`]) and, when the
/// limits allow, sends its link. A limit is logged and counted, never told to the client.
/// Returns whether a mail was attempted.
async fn send_link(app: &App, db: &mut DbConnection, kind: MailKind, email: &str) -> Result<bool, ApiError> {
    let token = MailToken::generate().context("generating the link token")?;
    let decision = store::request_mail(db, email, kind, &token.hash(), app.mailer.hourly_limit())
        .await
        .context("recording the mail request")?;
    match decision {
        MailRequest::Issued => {
            deliver(app, kind, email, &token).await;
            Ok(true)
        }
        MailRequest::AddressLimited | MailRequest::GlobalLimited => {
            tracing::info!(kind = kind.as_str(), limit = ?decision, "a mail was held back by a sending limit");
            app.metrics.count(metrics::MAIL_LIMITED);
            Ok(false)
        }
        MailRequest::NoAccount => Ok(false),
    }
}

/// Sends a stored link. SES's refusal loses nothing (the token is stored; the user may ask
/// again) and is not the client's business: it is logged with SES's code and counted.
async fn deliver(app: &App, kind: MailKind, email: &str, token: &MailToken) {
    match app.mailer.send(kind, email, token.expose()).await {
        Delivery::Sent => app.metrics.count(metrics::MAIL_SENT),
        Delivery::NotConfigured => {
            tracing::warn!(kind = kind.as_str(), "no mail sent: MAIL_FROM is not set");
        }
        Delivery::Failed { code } => {
            tracing::error!(kind = kind.as_str(), ses_error = %code, "SES did not send the mail; its link is stored");
            app.metrics.count(metrics::MAIL_REJECTED);
        }
    }
}

/// Consumes a verification link and marks the address verified; 400 `invalid_token` for a
/// link that is unknown, expired or used.
#[tracing::instrument(name = "auth.verify_email", skip_all)]
pub async fn verify_email(app: &App, token: MailToken) -> Result<User, ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    store::verify_email(&mut db, &token.hash())
        .await
        .context("consuming the verification token")?
        .ok_or(ApiError::InvalidLinkToken)
}

/// Sends the caller a new verification link (replacing the previous one), unless the address
/// is verified already or a sending limit holds it back: the answer is the same either way.
#[tracing::instrument(name = "auth.resend_verification", skip_all, fields(user = %caller.user.id.0))]
pub async fn resend_verification(app: &App, caller: &Caller) -> Result<(), ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    send_link(app, &mut db, MailKind::VerifyEmail, &caller.user.email).await?;
    Ok(())
}

/// Sends a reset link to `email` if an account has it and the limits allow. Whatever the case,
/// the same statement runs and the answer is the same; a request that sends nothing lasts as
/// long as a recent one that sent ([`crate::mail::Mailer::pace_from`]), so its timing tells
/// nothing.
#[tracing::instrument(name = "auth.forgot_password", skip_all)]
pub async fn forgot_password(app: &App, email: &Email) -> Result<(), ApiError> {
    let started = std::time::Instant::now();
    let mut db = app.connection().await.context("connecting to the database")?;
    if send_link(app, &mut db, MailKind::ResetPassword, email.as_str()).await? {
        app.mailer.record_sending_request(started);
    } else {
        app.mailer.pace_from(started).await;
    }
    Ok(())
}

/// Sets a new password through a reset link and signs the user in: the link is consumed, every
/// other session is revoked, the address counts as verified, and a new session opens, in one
/// statement. 400 `invalid_token` for a dead link (checked before the password, which is held
/// to the signup policy: 422 `weak_password`).
#[tracing::instrument(name = "auth.reset_password", skip_all, fields(user = Empty))]
pub async fn reset_password(
    app: &App,
    token: MailToken,
    password: String,
    device: &Device,
) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let hash = token.hash();
    // The connection is given back before argon2's work, and taken again after it.
    let (user_id, email) = {
        let mut db = app.connection().await.context("connecting to the database")?;
        store::reset_target(&mut db, &hash).await.context("reading the reset token")?
    }
    .ok_or(ApiError::InvalidLinkToken)?;
    tracing::Span::current().record("user", tracing::field::display(user_id.0));
    let email = stored_email(&email)?;
    let password = Password::parse(password, &email)?;
    let password_hash = passwords::hash(password).await.context("hashing the password")?;
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app), device };
    let mut db = app.connection().await.context("connecting to the database")?;
    let user = store::reset_password(&mut db, &hash, user_id, &password_hash, new_session)
        .await
        .context("resetting the password")?
        .ok_or(ApiError::InvalidLinkToken)?;
    let access = tokens.issue(user.id, session).context("signing the access token")?;
    Ok(Issued { user, access, refresh })
}

/// An address read back from `users`, which holds only normalised ones.
fn stored_email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|_| ApiError::Unexpected(anyhow::anyhow!("a stored email does not parse")))
}

/// Checks the caller's password as login does: the same throttle per address (a stolen access
/// token buys no faster guessing), the same argon2 verification. Returns the stored hash the
/// password matched, for the write that follows to be conditional on it. A wrong password is a
/// 403 `invalid_password` (the access token itself is fine).
async fn confirm_password(
    db: &mut DbConnection,
    caller: &Caller,
    password: Password,
) -> Result<String, ApiError> {
    let email = stored_email(&caller.user.email)?;
    let account = match store::admit_login(db, &email).await.context("admitting the attempt")? {
        Admission::Admitted { account } => account,
        Admission::Throttled { retry_after_seconds } => {
            return Err(ApiError::TooManyAttempts { retry_after: retry_after_seconds });
        }
    };
    // The account went away after the token was checked (deleted meanwhile).
    let Some((_, stored_hash)) = account else { return Err(ApiError::InvalidToken) };
    match passwords::verify(password, Some(stored_hash.clone())).await.context("verifying the password")? {
        Verified::Yes { .. } => Ok(stored_hash),
        Verified::No => Err(ApiError::InvalidPassword),
    }
}

/// Changes the caller's password: the new one is held to the signup policy (422 first, before
/// any guess is counted), the current one confirmed, then, in one statement, the hash replaced,
/// every other session revoked and a pending reset link voided.
#[tracing::instrument(name = "auth.change_password", skip_all, fields(user = %caller.user.id.0))]
pub async fn change_password(
    app: &App,
    caller: &Caller,
    current: Password,
    new_password: String,
) -> Result<(), ApiError> {
    let new_password = Password::parse(new_password, &stored_email(&caller.user.email)?)?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let stored_hash = confirm_password(&mut db, caller, current).await?;
    let new_hash = passwords::hash(new_password).await.context("hashing the password")?;
    let changed = store::change_password(&mut db, caller.user.id, &stored_hash, &new_hash, caller.session)
        .await
        .context("changing the password")?;
    // A concurrent change replaced the hash the current password matched: it is no longer it.
    if !changed {
        return Err(ApiError::InvalidPassword);
    }
    Ok(())
}

/// Deletes the caller's account once their password is confirmed: the user and everything of
/// theirs, in one statement; every token of theirs stops working at once.
#[tracing::instrument(name = "auth.delete_account", skip_all, fields(user = %caller.user.id.0))]
pub async fn delete_account(app: &App, caller: &Caller, password: Password) -> Result<(), ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    let stored_hash = confirm_password(&mut db, caller, password).await?;
    let deleted =
        store::delete_user(&mut db, caller.user.id, &stored_hash).await.context("deleting the user")?;
    if !deleted {
        return Err(ApiError::InvalidPassword);
    }
    tracing::info!("account deleted");
    Ok(())
}

/// The caller's live sessions, most recently used first.
#[tracing::instrument(name = "auth.sessions", skip_all, fields(user = %caller.user.id.0))]
pub async fn sessions(app: &App, caller: &Caller) -> Result<Vec<SessionView>, ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    store::list_sessions(&mut db, caller.user.id, caller.session, app.session_max_lifetime)
        .await
        .context("listing the sessions")
}

/// Ends one of the caller's sessions; 404 `session_not_found` for an id that is not one of
/// theirs (unknown, another user's, or already ended), so no one learns of others' sessions.
#[tracing::instrument(name = "auth.revoke_session", skip_all, fields(user = %caller.user.id.0))]
pub async fn revoke_session(app: &App, caller: &Caller, session: SessionId) -> Result<(), ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    let revoked =
        store::revoke_session(&mut db, caller.user.id, session).await.context("revoking the session")?;
    if !revoked {
        return Err(ApiError::SessionNotFound);
    }
    Ok(())
}
