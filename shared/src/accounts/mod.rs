//! The account, the `users` row and its credentials: signing up, logging in (behind the
//! address's throttle), changing the password and deleting the account, both after confirming
//! the password as login does. Its SQL is in [`store`].
//!
//! Like every use-case module, each operation validates nothing (handlers pass parsed types),
//! touches the database in as few atomic statements as it can, and answers with domain results.
//! Each runs in a span of its own (`auth.login`, ...; no password, token or email in it) that
//! records the user once known, and each step names itself in a failure's cause chain
//! (`.context(...)`), so the log line of a 500 or a 503 says which step failed and for whom.

pub mod store;

use tracing::field::Empty;

use crate::app::App;
use crate::db::DbConnection;
use crate::domain::{Assurance, Device, Email, MailKind, Password, SessionId, UserId};
use crate::error::{ApiError, Context as _};
use crate::links;
use crate::mail::Letter;
use crate::mfa::MFA_TOKEN_TTL;
use crate::passwords::{self, Verified};
use crate::second_factor::{self, Presented};

use crate::sessions::store as sessions_store;
use crate::sessions::store::NewSession;
use crate::sessions::{Caller, Issued, SignIn, first_token_ttl};
use crate::tokens::{AccessToken, MfaToken, RefreshToken};
use store::{Admission, Attempt, Opening, PendingSignIn, Started};

/// The unique constraint a duplicate email violates.
const EMAIL_CONSTRAINT: &str = "users_email_key";

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
    let access =
        tokens.issue(user.id, session, &Assurance::password()).context("signing the access token")?;
    // The account exists: a failure to record or send the mail is logged, not answered (the
    // user can ask for it again: `POST /auth/verify-email/resend`).
    let source = device.source();
    if let Err(error) =
        links::send_link(app, &mut db, MailKind::VerifyEmail, &user.email, source.as_deref()).await
    {
        tracing::error!(error = ?error, "the verification mail could not be requested");
    }
    Ok(Issued { user, access, refresh })
}

/// Signup where an address must be verified before it signs in (`REQUIRE_VERIFIED_EMAIL`): the
/// same answer whether or not the address has an account, so that signup tells nobody who has
/// one. A new address gets its account (no session: the user signs in once verified) and a
/// verification mail; an address with an account gets a mail saying so, with a reset link. Both
/// hash the password, run one write and ask for one mail within the sending limits, paced as
/// forgot-password is ([`links::send_link_paced`]).
#[tracing::instrument(name = "auth.signup_unverified", skip_all, fields(user = Empty))]
pub async fn signup_pending_verification(
    app: &App,
    email: Email,
    password: Password,
    device: &Device,
) -> Result<(), ApiError> {
    let started = std::time::Instant::now();
    let password_hash = passwords::hash(password).await.context("hashing the password")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let user_id = UserId::generate();
    let letter = match store::create_user(&mut db, user_id, &email, &password_hash, device).await {
        Ok(()) => {
            tracing::Span::current().record("user", tracing::field::display(user_id.0));
            Letter::Link(MailKind::VerifyEmail)
        }
        Err(sqlx::Error::Database(error)) if error.constraint() == Some(EMAIL_CONSTRAINT) => {
            Letter::AccountExists
        }
        Err(error) => return Err(ApiError::from(error).context("creating the user")),
    };
    links::send_link_paced(app, &mut db, letter, email.as_str(), device, started).await
}

/// Admits the attempt first, in one statement that also counts it (see [`store::admit_login`]):
/// a throttled email is refused before any argon2 work. Then verifies the password (against a
/// dummy hash for an unknown email, so both failures cost and look the same). A failure is
/// already counted; a success clears the count, upgrades an outdated hash and opens a session,
/// atomically, provided the hash is still the one the password matched (a reset or change that
/// landed meanwhile wins): two round trips on success, one on failure.
#[tracing::instrument(name = "auth.login", skip_all, fields(user = Empty))]
pub async fn login(app: &App, email: Email, password: Password, device: &Device) -> Result<SignIn, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let source = device.source();
    let attempt = Attempt::Login { source: source.as_deref(), source_limit: app.login_source_limit };
    let (account, disabled) =
        match store::admit_login(&mut db, &email, attempt, device).await.context("admitting the attempt")? {
            Admission::Admitted { account, disabled } => (account, disabled),
            Admission::Throttled { retry_after_seconds } => {
                return Err(ApiError::TooManyAttempts { retry_after: retry_after_seconds });
            }
        };
    let (user, stored_hash) = account.unzip();
    let verified =
        passwords::verify(password, stored_hash.clone()).await.context("verifying the password")?;
    // Every refusal runs the same statement, with or without an account (one round trip, one
    // committed write), so that its timing tells next to nothing of the address. An address without an account is counted
    // (the function's LoginFailed metric), never stored: credential stuffing does not grow the
    // events.
    let refused = async |db: &mut DbConnection, reason: &str| {
        let detail = serde_json::json!({ "reason": reason });
        match store::record_refused_login(db, &email, attempt, device, &detail).await {
            Ok(()) => ApiError::InvalidCredentials,
            Err(error) => ApiError::from(error).context("recording the refused login"),
        }
    };
    let (Some(user), Some(stored_hash), Verified::Yes { rehashed }) = (user, stored_hash, verified) else {
        return Err(refused(&mut db, "wrong_password").await);
    };
    tracing::Span::current().record("user", tracing::field::display(user.id.0));
    // Not even to whoever knows the password: with signup answering every address alike, the
    // password of an unverified account may be one a prober chose at a signup of their own, and
    // a distinct answer would tell that their signup made the account. A wrong password's answer
    // (the verification mail told the owner what to do). The attempt stays counted. Checked
    // before the operator's hold, whose answer would tell the same.
    if app.require_verified_email && user.email_verified_at.is_none() {
        return Err(refused(&mut db, "email_not_verified").await);
    }
    // Said only to whoever knows the password, as an operator's hold is no secret from the owner.
    if disabled {
        return Err(match refused(&mut db, "account_disabled").await {
            ApiError::InvalidCredentials => ApiError::AccountDisabled,
            failed => failed,
        });
    }
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app), device };
    let mfa_token = MfaToken::generate().context("generating the mfa token")?;
    let pending = PendingSignIn { token: &mfa_token.hash(), ttl: MFA_TOKEN_TTL };
    let started = store::start_session(
        &mut db,
        user.id,
        &email,
        attempt,
        &stored_hash,
        rehashed.as_deref(),
        Opening { session: new_session, pending },
    )
    .await
    .context("opening the session")?;
    match started {
        // The password was reset or changed (or the account deleted) while it was being
        // checked: it is no longer the password, and the answer is a wrong password's.
        Started::No => Err(ApiError::InvalidCredentials),
        Started::SecondFactorDue { factor } => Ok(SignIn::SecondFactorDue { token: mfa_token, factor }),
        Started::Session => {
            let access =
                tokens.issue(user.id, session, &Assurance::password()).context("signing the access token")?;
            Ok(SignIn::Session(Issued { user, access, refresh }))
        }
    }
}

/// Checks the caller's password as login does: the same backoff, kept for the caller's session
/// (a stolen access token buys no faster guessing, and nobody else's failures lock the owner out
/// of their own change or deletion), the same argon2 verification. Returns the stored hash the
/// password matched, for the write that follows to be conditional on it. A wrong password is a
/// 403 `invalid_password` (the access token itself is fine).
async fn confirm_password(
    db: &mut DbConnection,
    caller: &Caller,
    password: Password,
) -> Result<String, ApiError> {
    let email = Email::stored(&caller.user.email)?;
    let attempt = Attempt::Confirmation { session: caller.session };
    let account = match store::admit_login(db, &email, attempt, &caller.device)
        .await
        .context("admitting the attempt")?
    {
        Admission::Admitted { account, .. } => account,
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

/// What a re-authentication presents: the password, or the second factor.
#[derive(Debug)]
pub enum Reauthentication {
    Password(Password),
    SecondFactor(Presented),
}

/// Re-authentication, a step-up: the caller proves it is them again, and the session counts as
/// proven now (`authenticated_at`); a code or a recovery code also proves the second factor and
/// raises the session to aal2. A fresh access token carries the session's assurance; the
/// refresh token is unchanged. The password is checked as a password change checks it (the
/// session's own backoff, then argon2: 403 `invalid_password`), a code as any code (403
/// `invalid_mfa_code`); a session that ended meanwhile is a 401.
#[tracing::instrument(name = "auth.reauthenticate", skip_all, fields(user = %caller.user.id.0))]
pub async fn reauthenticate(
    app: &App,
    caller: &Caller,
    proof: Reauthentication,
) -> Result<AccessToken, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let (second_factor, amr) = match proof {
        Reauthentication::Password(password) => {
            confirm_password(&mut db, caller, password).await?;
            (false, &["pwd"][..])
        }
        Reauthentication::SecondFactor(presented) => {
            (true, second_factor::prove_signed_in(app, &mut db, caller, &presented).await?.amr())
        }
    };
    let assurance = sessions_store::mark_authenticated(
        &mut db,
        caller.user.id,
        caller.session,
        second_factor,
        amr,
        app.session_max_lifetime,
    )
    .await
    .context("marking the session re-authenticated")?
    .ok_or(ApiError::InvalidToken)?;
    tokens.issue(caller.user.id, caller.session, &assurance).context("signing the access token")
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
    caller.require_second_factor()?;
    let new_password = Password::parse(new_password, &Email::stored(&caller.user.email)?)?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let stored_hash = confirm_password(&mut db, caller, current.clone()).await?;
    let new_hash = passwords::hash(new_password).await.context("hashing the password")?;
    write_confirmed(&mut db, caller, current, stored_hash, ConfirmedWrite::Change { new_hash: &new_hash })
        .await
}

/// A write a confirmed password allows, conditional on the hash it was confirmed against.
#[derive(Clone, Copy)]
enum ConfirmedWrite<'a> {
    Change { new_hash: &'a str },
    Delete,
}

/// Runs `write`, conditional on `stored_hash` (the hash `password` was confirmed against), and
/// when it finds that hash replaced, confirms the password once more and writes again: the hash
/// was replaced by a change, and the password is no longer the current one (the check says so),
/// or by a login that upgraded its parameters, and the same password matches the new hash. A
/// second miss is a 403 `invalid_password`.
async fn write_confirmed(
    db: &mut DbConnection,
    caller: &Caller,
    password: Password,
    stored_hash: String,
    write: ConfirmedWrite<'_>,
) -> Result<(), ApiError> {
    let run = async |db: &mut DbConnection, stored_hash: &str| match write {
        ConfirmedWrite::Change { new_hash } => {
            store::change_password(db, caller.user.id, stored_hash, new_hash, caller.session, &caller.device)
                .await
                .context("changing the password")
        }
        ConfirmedWrite::Delete => {
            store::delete_user(db, caller.user.id, stored_hash, caller.session, &caller.device)
                .await
                .context("deleting the user")
        }
    };
    if run(db, &stored_hash).await? {
        return Ok(());
    }
    let stored_hash = confirm_password(db, caller, password).await?;
    if run(db, &stored_hash).await? { Ok(()) } else { Err(ApiError::InvalidPassword) }
}

/// Deletes the caller's account once their password is confirmed: the user and everything of
/// theirs, in one statement; every token of theirs stops working at once.
#[tracing::instrument(name = "auth.delete_account", skip_all, fields(user = %caller.user.id.0))]
pub async fn delete_account(app: &App, caller: &Caller, password: Password) -> Result<(), ApiError> {
    caller.require_second_factor()?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let stored_hash = confirm_password(&mut db, caller, password.clone()).await?;
    write_confirmed(&mut db, caller, password, stored_hash, ConfirmedWrite::Delete).await?;
    tracing::info!("account deleted");
    Ok(())
}
