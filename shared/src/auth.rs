//! The auth logic: each operation validates nothing (handlers pass parsed types), touches the
//! database in as few atomic statements as it can, and answers with domain results.

use crate::app::App;
use crate::domain::{Email, Password, SessionId, User, UserId};
use crate::error::ApiError;
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
pub async fn signup(app: &App, email: Email, password: Password) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await?;
    let password_hash = passwords::hash(password).await.map_err(ApiError::Unexpected)?;
    // Acquired after hashing: the connection is not held idle through 30 ms of argon2.
    let mut db = app.connection().await?;
    let (user_id, session) = (UserId::generate(), SessionId::generate());
    let refresh = RefreshToken::generate().map_err(ApiError::Unexpected)?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app) };
    let user = store::create_user_with_session(&mut db, user_id, &email, &password_hash, new_session)
        .await
        .map_err(|error| match &error {
        sqlx::Error::Database(db_error) if db_error.constraint() == Some(EMAIL_CONSTRAINT) => {
            ApiError::EmailTaken
        }
        _ => error.into(),
    })?;
    let access = tokens.issue(user.id, session).map_err(ApiError::Unexpected)?;
    Ok(Issued { user, access, refresh })
}

/// Admits the attempt first, in one statement that also counts it (see [`store::admit_login`]):
/// a throttled email is refused before any argon2 work. Then verifies the password (against a
/// dummy hash for an unknown email, so both failures cost and look the same). A failure is
/// already counted; a success clears the count, upgrades an outdated hash and opens a session,
/// atomically: two round trips on success, one on failure.
pub async fn login(app: &App, email: Email, password: Password) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await?;
    let mut db = app.connection().await?;
    let account = match store::admit_login(&mut db, &email).await? {
        Admission::Admitted { account } => account,
        Admission::Throttled { retry_after_seconds } => {
            return Err(ApiError::TooManyAttempts { retry_after: retry_after_seconds });
        }
    };
    let (user, stored_hash) = account.unzip();
    let verified = passwords::verify(password, stored_hash).await.map_err(ApiError::Unexpected)?;
    let (Some(user), Verified::Yes { rehashed }) = (user, verified) else {
        return Err(ApiError::InvalidCredentials);
    };
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().map_err(ApiError::Unexpected)?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app) };
    store::start_session(&mut db, user.id, &email, rehashed.as_deref(), new_session).await?;
    let access = tokens.issue(user.id, session).map_err(ApiError::Unexpected)?;
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
pub async fn refresh(app: &App, presented: RefreshToken) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await?;
    let mut db = app.connection().await?;
    let successor = tokens.successor_of(&presented);
    let (presented_hash, successor_hash) = (presented.hash(), successor.hash());
    let rotated = match store::rotate_refresh_token(
        &mut db,
        &presented_hash,
        &successor_hash,
        app.refresh_token_ttl,
        app.session_max_lifetime,
    )
    .await?
    {
        Some(rotated) => rotated,
        None => match store::replay_refresh_token(
            &mut db,
            &presented_hash,
            &successor_hash,
            app.refresh_reuse_grace,
            app.session_max_lifetime,
        )
        .await?
        {
            Replay::Grace(rotated) => rotated,
            Replay::Reused => {
                tracing::warn!("a rotated refresh token was presented again; its session is revoked");
                return Err(ApiError::RefreshTokenReused);
            }
            Replay::Invalid => return Err(ApiError::InvalidRefreshToken),
        },
    };
    let access = tokens.issue(rotated.user.id, rotated.session).map_err(ApiError::Unexpected)?;
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
pub async fn logout(app: &App, presented: &str, scope: LogoutScope) -> Result<(), ApiError> {
    let token = RefreshToken::parse(presented);
    let mut db = match (&token, scope) {
        (Err(_), LogoutScope::Local) => return Ok(()),
        (Err(_), _) => return Err(ApiError::InvalidRefreshToken),
        (Ok(_), _) => app.connection().await?,
    };
    let hash = token.expect("checked above").hash();
    match scope {
        LogoutScope::Local => store::revoke_session_of_token(&mut db, &hash).await?,
        LogoutScope::Global | LogoutScope::Others => {
            let live = store::revoke_sessions_of_owner(
                &mut db,
                &hash,
                scope == LogoutScope::Global,
                app.session_max_lifetime,
            )
            .await?;
            if !live {
                return Err(ApiError::InvalidRefreshToken);
            }
        }
    }
    Ok(())
}

/// The user behind an access token, provided its session is still live (neither revoked nor
/// past its absolute lifetime).
pub async fn current_user(app: &App, access_token: &str) -> Result<User, ApiError> {
    let claims = app.verify_access_token(access_token).await?;
    let mut db = app.connection().await?;
    store::find_session_user(&mut db, UserId(claims.sub), SessionId(claims.sid), app.session_max_lifetime)
        .await?
        .ok_or(ApiError::InvalidToken)
}
