//! The auth logic: each operation validates nothing (handlers pass parsed types), touches the
//! database in as few atomic statements as it can, and answers with domain results.
//!
//! Each operation runs in a span of its own (`auth.login`, ...; no password, token or email in
//! it) that records the user once known, and each step names itself in a failure's cause chain
//! (`.context(...)`), so the log line of a 500 or a 503 says which step failed and for whom.

use tracing::field::Empty;

use crate::app::App;
use crate::domain::{Email, Password, SessionId, User, UserId};
use crate::error::{ApiError, Context as _};
use crate::passwords::{self, Verified};
use crate::store::{self, Admission, NewSession, Replay};
use crate::tokens::{AccessToken, RefreshToken};

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
/// taken, decided by the unique constraint (no check-then-insert race).
#[tracing::instrument(name = "auth.signup", skip_all, fields(user = Empty))]
pub async fn signup(app: &App, email: Email, password: Password) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let password_hash = passwords::hash(password).await.context("hashing the password")?;
    // Acquired after hashing: the connection is not held idle through 30 ms of argon2.
    let mut db = app.connection().await.context("connecting to the database")?;
    let (user_id, session) = (UserId::generate(), SessionId::generate());
    tracing::Span::current().record("user", tracing::field::display(user_id.0));
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app) };
    let user = store::create_user_with_session(&mut db, user_id, &email, &password_hash, new_session)
        .await
        .map_err(|error| match &error {
        sqlx::Error::Database(db_error) if db_error.constraint() == Some(EMAIL_CONSTRAINT) => {
            ApiError::EmailTaken
        }
        _ => ApiError::from(error).context("creating the user and the session"),
    })?;
    let access = tokens.issue(user.id, session).context("signing the access token")?;
    Ok(Issued { user, access, refresh })
}

/// Admits the attempt first, in one statement that also counts it (see [`store::admit_login`]):
/// a throttled email is refused before any argon2 work. Then verifies the password (against a
/// dummy hash for an unknown email, so both failures cost and look the same). A failure is
/// already counted; a success clears the count, upgrades an outdated hash and opens a session,
/// atomically: two round trips on success, one on failure.
#[tracing::instrument(name = "auth.login", skip_all, fields(user = Empty))]
pub async fn login(app: &App, email: Email, password: Password) -> Result<Issued, ApiError> {
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
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app) };
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

/// The user behind an access token, provided its session is still live (neither revoked nor
/// past its absolute lifetime).
#[tracing::instrument(name = "auth.current_user", skip_all, fields(user = Empty))]
pub async fn current_user(app: &App, access_token: &str) -> Result<User, ApiError> {
    let claims = app.verify_access_token(access_token).await.context("verifying the access token")?;
    tracing::Span::current().record("user", tracing::field::display(claims.sub));
    let mut db = app.connection().await.context("connecting to the database")?;
    store::find_session_user(&mut db, UserId(claims.sub), SessionId(claims.sid), app.session_max_lifetime)
        .await
        .context("reading the session's user")?
        .ok_or(ApiError::InvalidToken)
}
