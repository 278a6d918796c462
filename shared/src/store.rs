//! The SQL, one small function per statement. Each write path is a single statement (data-
//! modifying CTEs), atomic by itself and one round trip.
//!
//! The functions take the checked-out [`DbConnection`] rather than any executor: through a
//! transaction pooler (`DB_TRANSACTION_POOLER`) a statement must run in a transaction of its
//! own, which only the connection knows how to open and end ([`DbConnection::statement`]).

use std::time::Duration;

use time::OffsetDateTime;

use crate::db::DbConnection;
use crate::domain::{Email, SessionId, User, UserId};
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

/// A new session's id and its first refresh token.
pub struct NewSession<'a> {
    pub id: SessionId,
    pub token: &'a TokenHash,
    pub ttl: Duration,
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
            returning id, email, created_at
        ), new_session as (
            insert into sessions (id, user_id)
            select $4, id from new_user
            returning id
        ), first_token as (
            insert into refresh_tokens (token_hash, session_id, expires_at)
            select $5, id, now() + make_interval(secs => $6) from new_session
        )
        select id as "id!: UserId", email as "email!", created_at as "created_at!"
        from new_user
        "#,
        id as UserId,
        email.as_str(),
        password_hash,
        session.id as SessionId,
        &session.token.0[..],
        session.ttl.as_secs_f64(),
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
               u.password_hash as "password_hash?",
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
        (Some(id), Some(email), Some(created_at), Some(hash)) => Some((User { id, email, created_at }, hash)),
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
            insert into sessions (id, user_id)
            values ($3, $1)
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
               r.session_id as "session_id!: SessionId"
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
        user: User { id: row.id, email: row.email, created_at: row.created_at },
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
            select p.session_id, u.id, u.email, u.created_at
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
               g.session_id as "session_id?: SessionId"
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
        (Some(id), Some(email), Some(created_at), Some(session)) => {
            Replay::Grace(Rotated { user: User { id, email, created_at }, session })
        }
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
        select u.id as "id: UserId", u.email, u.created_at
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
