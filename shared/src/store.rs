//! The SQL, one small function per statement. Each write path is a single statement (data-
//! modifying CTEs), atomic by itself and one round trip.
//!
//! The functions take the checked-out [`DbConnection`] rather than any executor: through a
//! transaction pooler (`DB_TRANSACTION_POOLER`) a statement must run in a transaction of its
//! own, which only the connection knows how to open and end ([`DbConnection::statement`]).

use std::time::Duration;

use time::OffsetDateTime;

use crate::db::DbConnection;
use crate::domain::{Device, Email, MailKind, SessionId, User, UserId};
use crate::tokens::TokenHash;

/// Runs `query` (an expression of the connection named by the closure's argument, up to but
/// not including its `.await`) as one statement on `db` (see [`DbConnection::statement`]).
macro_rules! one_statement {
    ($db:ident, |$connection:ident| $query:expr) => {{
        let mut statement = $db.statement().await?;
        let $connection = &mut *statement;
        let result = $query.await;
        statement.end(result).await
    }};
}

/// What admitting a login attempt decided.
pub enum Admission {
    /// The attempt was counted as a failure (a success clears the count) and may go on: here
    /// are the account's user and password hash, if an account has the email.
    Admitted { account: Option<(User, String)> },
    /// The email is throttled: nothing was counted; try again in `retry_after_seconds` (>= 1).
    Throttled { retry_after_seconds: u64 },
}

/// The owner of a refresh token that was just rotated.
pub struct Rotated {
    pub user: User,
    pub session: SessionId,
}

/// A new session's id, its first refresh token, and the device that opened it.
pub struct NewSession<'a> {
    pub id: SessionId,
    pub token: &'a TokenHash,
    pub ttl: Duration,
    pub device: &'a Device,
}

impl NewSession<'_> {
    fn user_agent(&self) -> Option<&str> {
        self.device.user_agent.as_deref()
    }

    fn ip(&self) -> Option<String> {
        self.device.ip.map(|ip| ip.to_string())
    }
}

/// Inserts a user, a session and its first refresh token in one statement. A duplicate email
/// violates `users_email_key`.
pub async fn create_user_with_session(
    db: &mut DbConnection,
    id: UserId,
    email: &Email,
    password_hash: &str,
    session: NewSession<'_>,
) -> Result<User, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        User,
        r#"
        with new_user as (
            insert into users (id, email, password_hash)
            values ($1, $2, $3)
            returning id, email, created_at, email_verified_at
        ), new_session as (
            insert into sessions (id, user_id, user_agent, ip)
            select $4, id, $7, $8::text::inet from new_user
            returning id
        ), first_token as (
            insert into refresh_tokens (token_hash, session_id, expires_at)
            select $5, id, now() + make_interval(secs => $6) from new_session
        )
        select id as "id!: UserId", email as "email!", created_at as "created_at!",
               email_verified_at
        from new_user
        "#,
        id as UserId,
        email.as_str(),
        password_hash,
        session.id as SessionId,
        &session.token.0[..],
        session.ttl.as_secs_f64(),
        session.user_agent(),
        session.ip(),
    )
    .fetch_one(connection))
}

/// Admits a login attempt for an email, in one statement and before any password work.
///
/// The policy, keyed by email whether or not an account has it: 5 consecutive failures are
/// free; after that the email waits 1 s from its last failure, doubling per failure up to 15
/// minutes (the exponent is capped, so no count overflows it). A count quiet for 24 hours
/// starts again from zero. The count saturates at `i32::MAX`.
///
/// The upsert counts the attempt (as a failure, cleared by [`start_session`] on success) under
/// the row lock, and only while the email is not throttled: of many concurrent attempts, each
/// one sees the count the previous one left, so no more than 5 get through at once. The
/// account is read in the same statement, only when admitted.
pub async fn admit_login(db: &mut DbConnection, email: &Email) -> Result<Admission, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with admitted as (
            insert into login_attempts as a (email, failed_count, last_failed_at)
            values ($1, 1, now())
            on conflict on constraint login_attempts_pkey do update
            set failed_count = case
                    when a.last_failed_at <= now() - interval '24 hours' then 1
                    else least(a.failed_count, 2147483646) + 1
                end,
                last_failed_at = now()
            where a.failed_count < 5
               or a.last_failed_at <= now() - interval '24 hours'
               or a.last_failed_at
                  + make_interval(secs => least(900, power(2, least(a.failed_count - 5, 10))))
                  <= now()
            returning a.email
        )
        select exists (select 1 from admitted) as "admitted!",
               u.id as "id?: UserId", u.email as "email?", u.created_at as "created_at?",
               u.email_verified_at as "email_verified_at?", u.password_hash as "password_hash?",
               -- From the statement's snapshot: a concurrent failure committed since may make
               -- the true wait a little longer (the caller answers at least 1 s).
               coalesce(ceil(extract(epoch from
                   w.last_failed_at
                   + make_interval(secs => least(900, power(2, least(w.failed_count - 5, 10))))
                   - now()
               ))::int8, 0) as "retry_after!"
        from (select $1::text as email) as e
        left join users as u on u.email = e.email and exists (select 1 from admitted)
        left join login_attempts as w
               on w.email = e.email and w.failed_count >= 5
              and w.last_failed_at > now() - interval '24 hours'
        "#,
        email.as_str(),
    )
    .fetch_one(connection))?;
    if !row.admitted {
        return Ok(Admission::Throttled { retry_after_seconds: row.retry_after.max(1) as u64 });
    }
    let account = match (row.id, row.email, row.created_at, row.password_hash) {
        (Some(id), Some(email), Some(created_at), Some(hash)) => {
            Some((User { id, email, created_at, email_verified_at: row.email_verified_at }, hash))
        }
        _ => None,
    };
    Ok(Admission::Admitted { account })
}

/// After a successful login: clears the email's failure count, replaces the password hash when
/// `rehashed` (its parameters were out of date), and creates a session with its first refresh
/// token, in one statement.
pub async fn start_session(
    db: &mut DbConnection,
    user: UserId,
    email: &Email,
    rehashed: Option<&str>,
    session: NewSession<'_>,
) -> Result<(), sqlx::Error> {
    one_statement!(db, |connection| sqlx::query!(
        r#"
        with cleared as (
            delete from login_attempts where email = $2
        ), rehashed as (
            update users set password_hash = $6 where id = $1 and $6::text is not null
        ), new_session as (
            insert into sessions (id, user_id, user_agent, ip)
            values ($3, $1, $7, $8::text::inet)
            returning id
        )
        insert into refresh_tokens (token_hash, session_id, expires_at)
        select $4, id, now() + make_interval(secs => $5) from new_session
        "#,
        user as UserId,
        email.as_str(),
        session.id as SessionId,
        &session.token.0[..],
        session.ttl.as_secs_f64(),
        rehashed,
        session.user_agent(),
        session.ip(),
    )
    .execute(connection))?;
    Ok(())
}

/// Revokes a live refresh token of a live session and inserts its successor, in one statement.
/// A session older than `lifetime` is over: its token is not rotated, and a successor never
/// outlives its session.
///
/// Race-safe without a transaction: of many concurrent calls with one token, the first takes the
/// row lock and revokes it; the others wait, re-check `revoked_at is null` against the committed
/// row, match nothing and return `None`.
pub async fn rotate_refresh_token(
    db: &mut DbConnection,
    presented: &TokenHash,
    successor: &TokenHash,
    ttl: Duration,
    lifetime: Duration,
) -> Result<Option<Rotated>, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with rotated as (
            update refresh_tokens as t
            set revoked_at = now()
            from sessions as s
            where t.token_hash = $1
              and t.revoked_at is null
              and t.expires_at > now()
              and s.id = t.session_id
              and s.revoked_at is null
              and s.created_at > now() - make_interval(secs => $4)
            returning t.session_id, s.user_id, s.created_at as session_created_at
        ), successor as (
            insert into refresh_tokens (token_hash, session_id, parent_hash, expires_at)
            select $2, session_id, $1,
                   least(now() + make_interval(secs => $3), session_created_at + make_interval(secs => $4))
            from rotated
        )
        select u.id as "id!: UserId", u.email as "email!", u.created_at as "created_at!",
               u.email_verified_at, r.session_id as "session_id!: SessionId"
        from rotated as r
        join users as u on u.id = r.user_id
        "#,
        &presented.0[..],
        &successor.0[..],
        ttl.as_secs_f64(),
        lifetime.as_secs_f64(),
    )
    .fetch_optional(connection))?;
    Ok(row.map(|row| Rotated {
        user: User {
            id: row.id,
            email: row.email,
            created_at: row.created_at,
            email_verified_at: row.email_verified_at,
        },
        session: row.session_id,
    }))
}

/// What presenting a token that could not be rotated means.
pub enum Replay {
    /// The token was rotated within the grace window and its successor is still the session's
    /// active token: hand that successor out again.
    Grace(Rotated),
    /// The token was rotated before (past the window, or an older ancestor): its session and
    /// every token of it are revoked (by this call or an earlier one).
    Reused,
    /// Unknown, expired, or revoked without having been rotated (logout).
    Invalid,
}

/// Decides, in one statement, what a token that [`rotate_refresh_token`] did not match means,
/// and revokes its session when it is reuse. Runs after the rotation attempt, so it sees the
/// rotation that a concurrent request committed.
pub async fn replay_refresh_token(
    db: &mut DbConnection,
    presented: &TokenHash,
    successor: &TokenHash,
    grace: Duration,
    lifetime: Duration,
) -> Result<Replay, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with presented as (
            select t.session_id, t.revoked_at, s.user_id, s.revoked_at as session_revoked_at,
                   s.created_at as session_created_at
            from refresh_tokens as t
            join sessions as s on s.id = t.session_id
            where t.token_hash = $1
        ), grace as (
            select p.session_id, u.id, u.email, u.created_at, u.email_verified_at
            from presented as p
            join users as u on u.id = p.user_id
            where p.revoked_at > now() - make_interval(secs => $3)
              and p.session_revoked_at is null
              and p.session_created_at > now() - make_interval(secs => $4)
              and exists (
                  select 1 from refresh_tokens as c
                  where c.token_hash = $2 and c.parent_hash = $1
                    and c.revoked_at is null and c.expires_at > now()
              )
        ), reused as (
            select p.session_id from presented as p
            where p.revoked_at is not null
              and exists (select 1 from refresh_tokens as c where c.parent_hash = $1)
              and not exists (select 1 from grace)
        ), revoked_session as (
            update sessions set revoked_at = now()
            where id in (select session_id from reused) and revoked_at is null
        ), revoked_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select session_id from reused) and revoked_at is null
        )
        select exists (select 1 from reused) as "reused!",
               g.id as "id?: UserId", g.email as "email?", g.created_at as "created_at?",
               g.email_verified_at as "email_verified_at?", g.session_id as "session_id?: SessionId"
        from (values (1)) as one (x)
        left join grace as g on true
        "#,
        &presented.0[..],
        &successor.0[..],
        grace.as_secs_f64(),
        lifetime.as_secs_f64(),
    )
    .fetch_one(connection))?;
    Ok(match (row.id, row.email, row.created_at, row.session_id) {
        (Some(id), Some(email), Some(created_at), Some(session)) => Replay::Grace(Rotated {
            user: User { id, email, created_at, email_verified_at: row.email_verified_at },
            session,
        }),
        _ if row.reused => Replay::Reused,
        _ => Replay::Invalid,
    })
}

/// Revokes the session a refresh token belongs to, and every token of that session, in one
/// statement. An unknown token changes nothing.
pub async fn revoke_session_of_token(db: &mut DbConnection, token: &TokenHash) -> Result<(), sqlx::Error> {
    one_statement!(db, |connection| sqlx::query!(
        r#"
        with target as (
            select session_id from refresh_tokens where token_hash = $1
        ), revoked_session as (
            update sessions set revoked_at = now()
            where id in (select session_id from target) and revoked_at is null
        )
        update refresh_tokens set revoked_at = now()
        where session_id in (select session_id from target) and revoked_at is null
        "#,
        &token.0[..],
    )
    .execute(connection))?;
    Ok(())
}

/// Revokes every live session of the user who owns `token` (or every one but the token's own
/// when `include_own` is false), with their tokens, in one statement. Only a live token may do
/// this (of a session younger than `lifetime`); returns whether it was one.
pub async fn revoke_sessions_of_owner(
    db: &mut DbConnection,
    token: &TokenHash,
    include_own: bool,
    lifetime: Duration,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with owner as (
            select t.session_id, s.user_id
            from refresh_tokens as t
            join sessions as s on s.id = t.session_id
            where t.token_hash = $1 and t.revoked_at is null and t.expires_at > now()
              and s.revoked_at is null and s.created_at > now() - make_interval(secs => $3)
        ), doomed as (
            update sessions as s set revoked_at = now()
            from owner
            where s.user_id = owner.user_id and s.revoked_at is null
              and ($2 or s.id <> owner.session_id)
            returning s.id
        ), revoked_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from doomed) and revoked_at is null
        )
        select exists (select 1 from owner) as "live!"
        "#,
        &token.0[..],
        include_own,
        lifetime.as_secs_f64(),
    )
    .fetch_one(connection))
}

/// The user of a session, if the session is theirs, not revoked and younger than `lifetime`.
pub async fn find_session_user(
    db: &mut DbConnection,
    user: UserId,
    session: SessionId,
    lifetime: Duration,
) -> Result<Option<User>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        User,
        r#"
        select u.id as "id: UserId", u.email, u.created_at, u.email_verified_at
        from sessions as s
        join users as u on u.id = s.user_id
        where s.id = $1 and s.user_id = $2 and s.revoked_at is null
          and s.created_at > now() - make_interval(secs => $3)
        "#,
        session as SessionId,
        user as UserId,
        lifetime.as_secs_f64(),
    )
    .fetch_optional(connection))
}

/// What asking for a mail decided (see [`request_mail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailRequest {
    /// A new token is stored (the previous one of its kind, if any, no longer matches): send it.
    Issued,
    /// No account has the address, or (for a verification) it is verified already: no mail.
    NoAccount,
    /// The address had a mail of this kind in the last 60 s, or 5 mails this hour: no mail.
    AddressLimited,
    /// The global hourly cap is reached: no mail.
    GlobalLimited,
}

/// How often one address may be mailed: one mail of each kind per 60 s, and 5 in all per hour.
pub const MAIL_KIND_INTERVAL: Duration = Duration::from_secs(60);
pub const MAIL_HOURLY_PER_ADDRESS: i32 = 5;

/// Decides, in one statement, whether `email` gets a mail of `kind` now, and if so stores its
/// token (`token`, living `kind.lifetime()`), replacing the user's previous one of that kind.
///
/// The limits hold across every sandbox: the per-address upsert takes the address's row lock,
/// so of concurrent requests each sees what the previous one counted, and the global count is
/// one row per clock hour, taken only once the address is admitted (a refused address spends
/// none of it). A mail the global cap refuses still counts against its address. Addresses
/// without an account leave no row.
pub async fn request_mail(
    db: &mut DbConnection,
    email: &str,
    kind: MailKind,
    token: &TokenHash,
    hourly_limit: u32,
) -> Result<MailRequest, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with target as (
            select id, email from users
            where email = $1 and ($2 = 'reset_password' or email_verified_at is null)
        ), address as (
            insert into mail_quota as q
                (email, verify_email_sent_at, reset_password_sent_at, window_started_at, window_count)
            select email,
                   case when $2 = 'verify_email' then now() end,
                   case when $2 = 'reset_password' then now() end,
                   now(), 1
            from target
            on conflict on constraint mail_quota_pkey do update
            set verify_email_sent_at =
                    case when $2 = 'verify_email' then now() else q.verify_email_sent_at end,
                reset_password_sent_at =
                    case when $2 = 'reset_password' then now() else q.reset_password_sent_at end,
                window_started_at = case when q.window_started_at <= now() - interval '1 hour'
                                         then now() else q.window_started_at end,
                window_count = case when q.window_started_at <= now() - interval '1 hour'
                                    then 1 else q.window_count + 1 end
            where coalesce(case when $2 = 'verify_email' then q.verify_email_sent_at
                                else q.reset_password_sent_at end, '-infinity')
                  <= now() - make_interval(secs => $6)
              and (q.window_started_at <= now() - interval '1 hour' or q.window_count < $7)
            returning q.email
        ), global as (
            insert into mail_hourly as h (hour, sent)
            select date_trunc('hour', now()), 1 from address
            on conflict on constraint mail_hourly_pkey do update set sent = h.sent + 1
            where h.sent < $5
            returning h.hour
        ), token as (
            insert into mail_tokens as m (user_id, kind, token_hash, expires_at)
            select t.id, $2, $3, now() + make_interval(secs => $4)
            from target as t
            where exists (select 1 from global)
            on conflict on constraint mail_tokens_pkey do update
            set token_hash = excluded.token_hash, created_at = now(), expires_at = excluded.expires_at
            returning m.user_id
        )
        select exists (select 1 from target) as "known!",
               exists (select 1 from address) as "address!",
               exists (select 1 from global) as "global!",
               exists (select 1 from token) as "issued!"
        "#,
        email,
        kind.as_str(),
        &token.0[..],
        kind.lifetime().as_secs_f64(),
        i32::try_from(hourly_limit).unwrap_or(i32::MAX),
        MAIL_KIND_INTERVAL.as_secs_f64(),
        MAIL_HOURLY_PER_ADDRESS,
    )
    .fetch_one(connection))?;
    Ok(match (row.known, row.address, row.global, row.issued) {
        (false, ..) => MailRequest::NoAccount,
        (true, false, ..) => MailRequest::AddressLimited,
        (true, true, false, _) => MailRequest::GlobalLimited,
        (true, true, true, _) => MailRequest::Issued,
    })
}

/// Consumes a live verification token and marks its user's address verified, in one statement;
/// returns the user, or `None` for a token that is unknown, expired or used. Of concurrent
/// uses of one token, the first deletes its row; the others wait for the row lock, find it
/// gone, and match nothing.
pub async fn verify_email(db: &mut DbConnection, token: &TokenHash) -> Result<Option<User>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        User,
        r#"
        with consumed as (
            delete from mail_tokens
            where token_hash = $1 and kind = 'verify_email' and expires_at > now()
            returning user_id
        )
        update users as u set email_verified_at = coalesce(u.email_verified_at, now())
        from consumed
        where u.id = consumed.user_id
        returning u.id as "id: UserId", u.email, u.created_at, u.email_verified_at
        "#,
        &token.0[..],
    )
    .fetch_optional(connection))
}

/// The user a live reset token belongs to (id and address), without consuming it: the new
/// password is checked against the address and hashed before [`reset_password`] consumes it.
pub async fn reset_target(
    db: &mut DbConnection,
    token: &TokenHash,
) -> Result<Option<(UserId, String)>, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        select u.id as "id: UserId", u.email
        from mail_tokens as m
        join users as u on u.id = m.user_id
        where m.token_hash = $1 and m.kind = 'reset_password' and m.expires_at > now()
        "#,
        &token.0[..],
    )
    .fetch_optional(connection))?;
    Ok(row.map(|row| (row.id, row.email)))
}

/// Consumes a live reset token of `user` and, in the same statement: sets the new password
/// hash, marks the address verified (the link proved it), revokes every session of the user
/// with its tokens, clears the address's failed logins, and opens `session`. `None` when the
/// token is no longer live (used by a concurrent reset, replaced, expired): nothing changed.
pub async fn reset_password(
    db: &mut DbConnection,
    token: &TokenHash,
    user: UserId,
    password_hash: &str,
    session: NewSession<'_>,
) -> Result<Option<User>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        User,
        r#"
        with consumed as (
            delete from mail_tokens
            where token_hash = $1 and kind = 'reset_password' and expires_at > now() and user_id = $2
            returning user_id
        ), updated as (
            update users as u
            set password_hash = $3, email_verified_at = coalesce(u.email_verified_at, now())
            from consumed
            where u.id = consumed.user_id
            returning u.id, u.email, u.created_at, u.email_verified_at
        ), revoked_sessions as (
            update sessions set revoked_at = now()
            where user_id in (select user_id from consumed) and revoked_at is null
            returning id
        ), revoked_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from revoked_sessions) and revoked_at is null
        ), cleared as (
            delete from login_attempts where email in (select email from updated)
        ), new_session as (
            insert into sessions (id, user_id, user_agent, ip)
            select $4, user_id, $7, $8::text::inet from consumed
            returning id
        ), first_token as (
            insert into refresh_tokens (token_hash, session_id, expires_at)
            select $5, id, now() + make_interval(secs => $6) from new_session
        )
        select id as "id!: UserId", email as "email!", created_at as "created_at!", email_verified_at
        from updated
        "#,
        &token.0[..],
        user as UserId,
        password_hash,
        session.id as SessionId,
        &session.token.0[..],
        session.ttl.as_secs_f64(),
        session.user_agent(),
        session.ip(),
    )
    .fetch_optional(connection))
}

/// Replaces the password hash of `user`, provided it is still `current_hash` (a concurrent
/// change wins once), and in the same statement revokes every other session than `keep` with
/// its tokens, voids a pending reset link, and clears the address's failed logins. Returns
/// whether the password changed.
pub async fn change_password(
    db: &mut DbConnection,
    user: UserId,
    current_hash: &str,
    new_hash: &str,
    keep: SessionId,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with changed as (
            update users set password_hash = $3
            where id = $1 and password_hash = $2
            returning id, email
        ), doomed as (
            update sessions set revoked_at = now()
            where user_id in (select id from changed) and id <> $4 and revoked_at is null
            returning id
        ), revoked_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from doomed) and revoked_at is null
        ), voided as (
            delete from mail_tokens
            where user_id in (select id from changed) and kind = 'reset_password'
        ), cleared as (
            delete from login_attempts where email in (select email from changed)
        )
        select exists (select 1 from changed) as "changed!"
        "#,
        user as UserId,
        current_hash,
        new_hash,
        keep as SessionId,
    )
    .fetch_one(connection))
}

/// Deletes `user`, provided the password hash is still `current_hash`: their sessions, refresh
/// tokens and mail tokens go with them (foreign keys, `on delete cascade`), and their address's
/// failed-login count and sending limits in the same statement. Returns whether it was deleted.
pub async fn delete_user(
    db: &mut DbConnection,
    user: UserId,
    current_hash: &str,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with gone as (
            delete from users where id = $1 and password_hash = $2
            returning email
        ), attempts as (
            delete from login_attempts where email in (select email from gone)
        ), quota as (
            delete from mail_quota where email in (select email from gone)
        )
        select exists (select 1 from gone) as "deleted!"
        "#,
        user as UserId,
        current_hash,
    )
    .fetch_one(connection))
}

/// A live session as the session list shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionView {
    pub id: SessionId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its refresh token was last rotated (its live token's creation), else its sign-in.
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether it is the session of the access token that asked.
    pub current: bool,
}

/// The user's live sessions (not revoked, younger than `lifetime`, with an unexpired refresh
/// token), most recently used first. A session's last use is its live token's creation: each
/// rotation inserts the successor, so the refresh path records it without a write of its own.
pub async fn list_sessions(
    db: &mut DbConnection,
    user: UserId,
    current: SessionId,
    lifetime: Duration,
) -> Result<Vec<SessionView>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        SessionView,
        r#"
        select s.id as "id: SessionId", s.created_at, t.created_at as last_used_at,
               s.user_agent, host(s.ip) as ip, s.id = $2 as "current!"
        from sessions as s
        join refresh_tokens as t
          on t.session_id = s.id and t.revoked_at is null and t.expires_at > now()
        where s.user_id = $1 and s.revoked_at is null
          and s.created_at > now() - make_interval(secs => $3)
        order by t.created_at desc, s.id desc
        "#,
        user as UserId,
        current as SessionId,
        lifetime.as_secs_f64(),
    )
    .fetch_all(connection))
}

/// Revokes one session of `user` with its tokens; returns whether the user had it unrevoked
/// (another user's session id matches nothing).
pub async fn revoke_session(
    db: &mut DbConnection,
    user: UserId,
    session: SessionId,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with doomed as (
            update sessions set revoked_at = now()
            where id = $1 and user_id = $2 and revoked_at is null
            returning id
        ), revoked_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from doomed) and revoked_at is null
        )
        select exists (select 1 from doomed) as "revoked!"
        "#,
        session as SessionId,
        user as UserId,
    )
    .fetch_one(connection))
}

/// One round trip that proves the database answers; returns the server's clock.
pub async fn ping(db: &mut DbConnection) -> Result<OffsetDateTime, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(r#"select now() as "now!""#).fetch_one(connection))
}

/// Deletes up to `batch` refresh tokens revoked more than `retention` ago, and returns how
/// many. A session's one unrevoked token is left to [`purge_sessions`], which finds abandoned
/// sessions by it. `skip locked` keeps each batch short and lets two purges run at once
/// without waiting on each other or on live traffic.
pub async fn purge_refresh_tokens(
    db: &mut DbConnection,
    retention: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = one_statement!(db, |connection| sqlx::query!(
        r#"
        with doomed as (
            select token_hash from refresh_tokens
            where revoked_at < now() - make_interval(secs => $1)
            order by revoked_at
            limit $2
            for update skip locked
        )
        delete from refresh_tokens as t
        using doomed
        where t.token_hash = doomed.token_hash
        "#,
        retention.as_secs_f64(),
        batch,
    )
    .execute(connection))?;
    Ok(deleted.rows_affected())
}

/// Deletes up to `batch` sessions that ended more than `retention` ago, with their tokens, and
/// returns how many. A session ends when it is revoked, when it reaches its absolute
/// `lifetime`, or when it is abandoned: its one usable token expired unused. Each way of ending
/// is found through an index of its own (a scan of every session would take seconds at 10^6).
pub async fn purge_sessions(
    db: &mut DbConnection,
    retention: Duration,
    lifetime: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = one_statement!(db, |connection| sqlx::query!(
        r#"
        with ended as (
            (select id from sessions
             where revoked_at < now() - make_interval(secs => $1)
             limit $3)
            union all
            (select id from sessions
             where created_at < now() - make_interval(secs => $1) - make_interval(secs => $2)
             limit $3)
            union all
            (select session_id from refresh_tokens
             where revoked_at is null and expires_at < now() - make_interval(secs => $1)
             limit $3)
        ), doomed as (
            select s.id from sessions as s
            where s.id in (select id from ended)
            limit $3
            for update of s skip locked
        )
        delete from sessions as s
        using doomed
        where s.id = doomed.id
        "#,
        retention.as_secs_f64(),
        lifetime.as_secs_f64(),
        batch,
    )
    .execute(connection))?;
    Ok(deleted.rows_affected())
}

/// Deletes up to `batch` login-attempt rows quiet for 24 hours (they no longer throttle: see
/// [`admit_login`]), and returns how many. A row being counted right now is locked and skipped.
pub async fn purge_login_attempts(db: &mut DbConnection, batch: i64) -> Result<u64, sqlx::Error> {
    let deleted = one_statement!(db, |connection| sqlx::query!(
        r#"
        with doomed as (
            select email from login_attempts
            where last_failed_at <= now() - interval '24 hours'
            limit $1
            for update skip locked
        )
        delete from login_attempts as a
        using doomed
        where a.email = doomed.email
        "#,
        batch,
    )
    .execute(connection))?;
    Ok(deleted.rows_affected())
}

/// Deletes up to `batch` rows of mail state nobody needs any more, and returns how many: link
/// tokens past their expiry, per-address limits whose window ended over an hour ago (no limit
/// reads them), and global hourly counts older than two hours.
pub async fn purge_mail_state(db: &mut DbConnection, batch: i64) -> Result<u64, sqlx::Error> {
    let deleted = one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with tokens as (
            delete from mail_tokens as m
            using (select user_id, kind from mail_tokens where expires_at < now()
                   limit $1 for update skip locked) as doomed
            where m.user_id = doomed.user_id and m.kind = doomed.kind
            returning 1
        ), quota as (
            delete from mail_quota as q
            using (select email from mail_quota where window_started_at < now() - interval '2 hours'
                   limit $1 for update skip locked) as doomed
            where q.email = doomed.email
            returning 1
        ), hourly as (
            delete from mail_hourly where hour < now() - interval '2 hours'
            returning 1
        )
        select (select count(*) from tokens) + (select count(*) from quota)
               + (select count(*) from hourly) as "deleted!"
        "#,
        batch,
    )
    .fetch_one(connection))?;
    Ok(deleted.max(0) as u64)
}
