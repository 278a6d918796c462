//! The admin API's use-cases: an operator, authorised by IAM at the gateway (never by this API's
//! tokens), finds users, reads one (sessions, factors, recent events) and acts on them. Every
//! action names the operator's principal in its security event and is idempotent: repeating one
//! changes nothing more (a repeated deletion finds no user: 404).

pub mod store;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::app::App;
use crate::domain::{MAX_EMAIL_CHARS, MailKind, SessionId, UserId};
use crate::error::{ApiError, Context as _};
use crate::links;
use crate::metrics;
use crate::mfa::store::FactorView;
use crate::passkeys::store::PasskeyView;
use crate::security_events::store::EventView;
use crate::sessions::store::SessionView;
use store::{AdminUser, Operator};

/// The recent events the user's page shows.
pub const RECENT_EVENTS: i64 = 20;

/// A page of users and where the next starts (`None` after the last).
pub struct UserPage {
    pub users: Vec<AdminUser>,
    pub next_cursor: Option<String>,
}

/// Users whose address starts with `prefix` (lower-cased, as addresses are stored), in byte
/// order, `limit` after `cursor` (the previous page's `next_cursor`: its last address,
/// base64url; anything else 400 `invalid_cursor`).
pub async fn users(app: &App, prefix: &str, limit: i64, cursor: Option<&str>) -> Result<UserPage, ApiError> {
    // Text Postgres holds (no NUL), no longer than an address.
    // A prefix or cursor no longer than an address may be.
    let storable = |text: &str| !text.contains('\0') && text.chars().count() <= MAX_EMAIL_CHARS;
    let after = cursor
        .map(|cursor| {
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|email| !email.is_empty() && storable(email))
                .ok_or(ApiError::InvalidCursor)
        })
        .transpose()?;
    if !storable(prefix) {
        return Err(ApiError::InvalidRequest(format!(
            "email_prefix must be at most {MAX_EMAIL_CHARS} characters, without NUL"
        )));
    }
    let prefix = prefix.to_lowercase();
    let mut db = app.connection().await.context("connecting to the database")?;
    let mut users = store::list_users(&mut db, &prefix, after.as_deref().unwrap_or_default(), limit + 1)
        .await
        .context("listing the users")?;
    let more = users.len() > limit as usize;
    users.truncate(limit as usize);
    let next_cursor = more.then(|| users.last().map(|last| URL_SAFE_NO_PAD.encode(&last.email))).flatten();
    Ok(UserPage { users, next_cursor })
}

/// One user as the operator reads them.
#[derive(Serialize)]
pub struct UserDetail {
    pub user: AdminUser,
    pub sessions: Vec<SessionView>,
    pub factors: Vec<FactorView>,
    pub passkeys: Vec<PasskeyView>,
    pub events: Vec<EventView>,
}

/// The user `id` with their live sessions, second factor, passkeys and [`RECENT_EVENTS`] latest
/// events; 404 `user_not_found`.
pub async fn user(app: &App, id: UserId) -> Result<UserDetail, ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    let user =
        store::find_user(&mut db, id).await.context("reading the user")?.ok_or(ApiError::UserNotFound)?;
    // No session is the operator's own: none is `current`.
    let nobody = SessionId(uuid::Uuid::nil());
    let sessions = crate::sessions::store::list_sessions(&mut db, id, nobody, app.session_max_lifetime)
        .await
        .context("listing the sessions")?;
    let factors = crate::mfa::store::list_factors(&mut db, id).await.context("listing the factors")?;
    let passkeys =
        crate::passkeys::store::list_passkeys(&mut db, id).await.context("listing the passkeys")?;
    let events = crate::security_events::store::list(&mut db, id, None, RECENT_EVENTS, false)
        .await
        .context("reading the events")?;
    Ok(UserDetail { user, sessions, factors, passkeys, events })
}

/// An action of the admin API on one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Disable,
    Enable,
    RevokeSessions,
    SendReset,
    Delete,
}

/// Runs `action` on user `id` as `by`; 404 `user_not_found` for no such user.
#[tracing::instrument(name = "auth.admin", skip_all, fields(user = %id.0, action = ?action, principal = by.principal))]
pub async fn act(app: &App, id: UserId, action: Action, by: Operator<'_>) -> Result<(), ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    let found = match action {
        Action::Disable => {
            store::end_sessions(&mut db, id, true, by).await.context("disabling the user")?.is_some()
        }
        Action::Enable => store::enable(&mut db, id, by).await.context("enabling the user")?,
        Action::RevokeSessions => {
            store::end_sessions(&mut db, id, false, by).await.context("ending the sessions")?.is_some()
        }
        Action::Delete => store::delete_user(&mut db, id, by).await.context("deleting the user")?,
        Action::SendReset => {
            let user = store::find_user(&mut db, id)
                .await
                .context("reading the user")?
                .ok_or(ApiError::UserNotFound)?;
            // Within the address's and the hourly sending limits, as any reset link.
            let sent = links::send_link(app, &mut db, MailKind::ResetPassword, &user.email, None).await?;
            store::record_reset_sent(&mut db, id, by, sent).await.context("recording the reset link")?;
            true
        }
    };
    if !found {
        return Err(ApiError::UserNotFound);
    }
    app.metrics.count(metrics::ADMIN_ACTION);
    Ok(())
}
