//! Sessions and their refresh tokens: the tokens a new session is issued, refresh (rotation,
//! and a replay's grace or reuse), logout in its three scopes, the caller of an access token,
//! and the caller's session list and the revocation of one. Its SQL is in [`store`].
//!
//! Like every use-case module, each operation validates nothing (handlers pass parsed types),
//! touches the database in as few atomic statements as it can, and answers with domain results.
//! Each runs in a span of its own (`auth.refresh`, ...; no password, token or email in it) that
//! records the user once known, and each step names itself in a failure's cause chain
//! (`.context(...)`), so the log line of a 500 or a 503 says which step failed and for whom.

pub mod store;

use tracing::field::Empty;

use crate::app::App;
use crate::domain::FactorId;
use crate::domain::{Actor, Device, SessionId, User, UserId};
use crate::error::{ApiError, Context as _, StepUp};
use crate::tokens::{AccessToken, MfaToken, RefreshToken};
use store::{Replay, SessionView};

/// What signup, login and refresh hand back to the client.
#[derive(Debug)]
pub struct Issued {
    pub user: User,
    pub access: AccessToken,
    pub refresh: RefreshToken,
}

/// What a proven password leads to: a session, or, for a user with a live second factor, a
/// sign-in that waits for it (`mfa_token`, see [`crate::second_factor::verify`]).
#[derive(Debug)]
pub enum SignIn {
    Session(Issued),
    SecondFactorDue { token: MfaToken, factor: FactorId },
}

/// A new session's first refresh token lives no longer than the session may.
pub(crate) fn first_token_ttl(app: &App) -> std::time::Duration {
    app.refresh_token_ttl.min(app.session_max_lifetime)
}

/// Exchanges a live refresh token for its successor and a new access token: one statement when
/// the token is live. Otherwise a second statement decides: within the grace window after its
/// rotation, the same successor is handed out again (two tabs, a lost response); any other
/// replay of a rotated token is reuse, and revokes the whole session (a `refresh_reused`
/// security event, with the replaying `device`, in the same statement).
#[tracing::instrument(name = "auth.refresh", skip_all, fields(user = Empty))]
pub async fn refresh(app: &App, presented: RefreshToken, device: &Device) -> Result<Issued, ApiError> {
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
            device,
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
    let access = tokens
        .issue(rotated.user.id, rotated.session, &rotated.assurance)
        .context("signing the access token")?;
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
    /// As a `logout` security event's detail names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Global => "global",
            Self::Others => "others",
        }
    }

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
/// (401 otherwise): a stale stolen token cannot log its owner out everywhere. A logout that
/// ended a session records a `logout` security event (its scope and how many sessions ended),
/// with the `device`, in the same statement.
#[tracing::instrument(name = "auth.logout", skip_all, fields(scope = ?scope))]
pub async fn logout(app: &App, presented: &str, scope: LogoutScope, device: &Device) -> Result<(), ApiError> {
    let token = RefreshToken::parse(presented);
    let mut db = match (&token, scope) {
        (Err(_), LogoutScope::Local) => return Ok(()),
        (Err(_), _) => return Err(ApiError::InvalidRefreshToken),
        (Ok(_), _) => app.connection().await.context("connecting to the database")?,
    };
    let hash = token.expect("checked above").hash();
    match scope {
        LogoutScope::Local => {
            store::revoke_session_of_token(&mut db, &hash, device).await.context("revoking the session")?
        }
        LogoutScope::Global | LogoutScope::Others => {
            let include_own = scope == LogoutScope::Global;
            let lifetime = app.session_max_lifetime;
            let live = store::revoke_sessions_of_owner(
                &mut db,
                &hash,
                include_own,
                scope.as_str(),
                lifetime,
                device,
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

/// How long a sign-in or a re-authentication counts as recent for a sensitive action.
pub const STEP_UP_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

/// Whom an access token speaks for: the user, the session the token was issued in, and where
/// the session's proofs stand for a sensitive action.
#[derive(Debug)]
pub struct Caller {
    pub user: User,
    pub session: SessionId,
    /// A proof of any kind within [`STEP_UP_WINDOW`].
    pub recent: bool,
    /// A proof of the second factor within it.
    pub recent_second_factor: bool,
    /// Whether the user has a live second factor.
    pub mfa: bool,
    /// Where this request came from, for the security events its changes record.
    pub device: Device,
}

impl Caller {
    /// The caller as the security events of their changes name them.
    pub fn actor(&self) -> Actor<'_> {
        Actor { session: self.session, device: &self.device }
    }

    /// For a sensitive action (enrolling or removing a factor, new recovery codes, ...): a
    /// proof within the last five minutes, of the second factor when the user has one; otherwise
    /// 403 `step_up_required`, naming what to prove.
    pub fn require_step_up(&self) -> Result<(), ApiError> {
        self.require_second_factor()?;
        if self.recent {
            Ok(())
        } else {
            Err(ApiError::StepUpRequired { required: StepUp::RecentAuthentication })
        }
    }

    /// For an action whose body proves the password again (a password change, the account's
    /// deletion): a recent proof of the second factor, when the user has one.
    pub fn require_second_factor(&self) -> Result<(), ApiError> {
        if self.mfa && !self.recent_second_factor {
            return Err(ApiError::StepUpRequired { required: StepUp::Aal2 });
        }
        Ok(())
    }
}

/// The caller behind an access token, provided its session is still live (neither revoked nor
/// past its absolute lifetime): a deleted account's or a revoked session's token stops working
/// here at once, though its signature stays valid until it expires.
#[tracing::instrument(name = "auth.authenticate", skip_all, fields(user = Empty))]
pub async fn authenticate(app: &App, access_token: &str, device: Device) -> Result<Caller, ApiError> {
    let claims = app.verify_access_token(access_token).await.context("verifying the access token")?;
    tracing::Span::current().record("user", tracing::field::display(claims.sub));
    let session = SessionId(claims.sid);
    let mut db = app.connection().await.context("connecting to the database")?;
    let found = store::find_session_user(
        &mut db,
        UserId(claims.sub),
        session,
        app.session_max_lifetime,
        STEP_UP_WINDOW,
    )
    .await
    .context("reading the session's user")?
    .ok_or(ApiError::InvalidToken)?;
    Ok(Caller {
        user: found.user,
        session,
        recent: found.recent,
        recent_second_factor: found.recent_second_factor,
        mfa: found.mfa,
        device,
    })
}

/// The caller's live sessions, most recently used first.
#[tracing::instrument(name = "auth.sessions", skip_all, fields(user = %caller.user.id.0))]
pub async fn list(app: &App, caller: &Caller) -> Result<Vec<SessionView>, ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    store::list_sessions(&mut db, caller.user.id, caller.session, app.session_max_lifetime)
        .await
        .context("listing the sessions")
}

/// Ends one of the caller's sessions; 404 `session_not_found` for an id that is not one of
/// theirs (unknown, another user's, or already ended), so no one learns of others' sessions. It
/// records a `session_revoked` security event of the caller's session and device (the ended
/// session in its detail), in the same statement.
#[tracing::instrument(name = "auth.revoke_session", skip_all, fields(user = %caller.user.id.0))]
pub async fn revoke_session(app: &App, caller: &Caller, session: SessionId) -> Result<(), ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    let revoked = store::revoke_session(&mut db, caller.user.id, session, caller.session, &caller.device)
        .await
        .context("revoking the session")?;
    if !revoked {
        return Err(ApiError::SessionNotFound);
    }
    Ok(())
}
