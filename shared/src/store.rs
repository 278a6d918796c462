//! The SQL, one small function per statement. Each write path is a single statement (data-
//! modifying CTEs), atomic by itself and one round trip.

use std::time::Duration;

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{Email, SessionId, User, UserId};
use crate::tokens::TokenHash;

/// What login needs to know about an email: its user and password hash (if an account has
/// it), and how long it must still wait after repeated failures (whether or not it has one).
pub struct LoginState {
    pub account: Option<(User, String)>,
    pub retry_after_seconds: u64,
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
    db: impl PgExecutor<'_>,
    id: UserId,
    email: &Email,
    password_hash: &str,
    session: NewSession<'_>,
) -> Result<User, sqlx::Error> {
    sqlx::query_as!(
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
    .fetch_one(db)
    .await
}

/// The login state of an email, in one round trip. After 5 consecutive failures the email
/// waits 1 s, doubling with each further failure up to 15 minutes, counted from the last one.
pub async fn login_state(db: impl PgExecutor<'_>, email: &Email) -> Result<LoginState, sqlx::Error> {
    let row = sqlx::query!(
        r#"
        select u.id as "id?: UserId", u.email as "email?", u.created_at as "created_at?",
               u.password_hash as "password_hash?",
               coalesce(ceil(extract(epoch from
                   a.last_failed_at
                   + make_interval(secs => least(900, power(2, a.failed_count - 5)))
                   - now()
               ))::int8, 0) as "retry_after!"
        from (select $1::text as email) as e
        left join users as u on u.email = e.email
        left join login_attempts as a on a.email = e.email and a.failed_count >= 5
        "#,
        email.as_str(),
    )
    .fetch_one(db)
    .await?;
    let account = match (row.id, row.email, row.created_at, row.password_hash) {
        (Some(id), Some(email), Some(created_at), Some(hash)) => Some((User { id, email, created_at }, hash)),
        _ => None,
    };
    Ok(LoginState { account, retry_after_seconds: row.retry_after.max(0) as u64 })
}

/// After a successful login: clears the email's failure count, replaces the password hash when
/// `rehashed` (its parameters were out of date), and creates a session with its first refresh
/// token, in one statement.
pub async fn start_session(
    db: impl PgExecutor<'_>,
    user: UserId,
    email: &Email,
    rehashed: Option<&str>,
    session: NewSession<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
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
    .execute(db)
    .await?;
    Ok(())
}

/// Counts a failed login for an email, whether or not an account has it.
pub async fn record_failed_login(db: impl PgExecutor<'_>, email: &Email) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"
        insert into login_attempts (email, failed_count)
        values ($1, 1)
        on conflict on constraint login_attempts_pkey
        do update set failed_count = login_attempts.failed_count + 1, last_failed_at = now()
        "#,
        email.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes a live refresh token of a live session and inserts its successor, in one statement.
///
/// Race-safe without a transaction: of many concurrent calls with one token, the first takes the
/// row lock and revokes it; the others wait, re-check `revoked_at is null` against the committed
/// row, match nothing and return `None`.
pub async fn rotate_refresh_token(
    db: impl PgExecutor<'_>,
    presented: &TokenHash,
    successor: &TokenHash,
    ttl: Duration,
) -> Result<Option<Rotated>, sqlx::Error> {
    let row = sqlx::query!(
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
            returning t.session_id, s.user_id
        ), successor as (
            insert into refresh_tokens (token_hash, session_id, parent_hash, expires_at)
            select $2, session_id, $1, now() + make_interval(secs => $3) from rotated
        )
        select u.id as "id!: UserId", u.email as "email!", u.created_at as "created_at!",
               r.session_id as "session_id!: SessionId"
        from rotated as r
        join users as u on u.id = r.user_id
        "#,
        &presented.0[..],
        &successor.0[..],
        ttl.as_secs_f64(),
    )
    .fetch_optional(db)
    .await?;
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
    db: impl PgExecutor<'_>,
    presented: &TokenHash,
    successor: &TokenHash,
    grace: Duration,
) -> Result<Replay, sqlx::Error> {
    let row = sqlx::query!(
        r#"
        with presented as (
            select t.session_id, t.revoked_at, s.user_id, s.revoked_at as session_revoked_at
            from refresh_tokens as t
            join sessions as s on s.id = t.session_id
            where t.token_hash = $1
        ), grace as (
            select p.session_id, u.id, u.email, u.created_at
            from presented as p
            join users as u on u.id = p.user_id
            where p.revoked_at > now() - make_interval(secs => $3)
              and p.session_revoked_at is null
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
    )
    .fetch_one(db)
    .await?;
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
pub async fn revoke_session_of_token(db: impl PgExecutor<'_>, token: &TokenHash) -> Result<(), sqlx::Error> {
    sqlx::query!(
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
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes every live session of the user who owns `token` (or every one but the token's own
/// when `include_own` is false), with their tokens, in one statement. Only a live token may do
/// this; returns whether it was one.
pub async fn revoke_sessions_of_owner(
    db: impl PgExecutor<'_>,
    token: &TokenHash,
    include_own: bool,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"
        with owner as (
            select t.session_id, s.user_id
            from refresh_tokens as t
            join sessions as s on s.id = t.session_id
            where t.token_hash = $1 and t.revoked_at is null and t.expires_at > now()
              and s.revoked_at is null
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
    )
    .fetch_one(db)
    .await
}

/// The user of a live session, if the session is live and theirs.
pub async fn find_session_user(
    db: impl PgExecutor<'_>,
    user: UserId,
    session: SessionId,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        r#"
        select u.id as "id: UserId", u.email, u.created_at
        from sessions as s
        join users as u on u.id = s.user_id
        where s.id = $1 and s.user_id = $2 and s.revoked_at is null
        "#,
        session as SessionId,
        user as UserId,
    )
    .fetch_optional(db)
    .await
}

/// One round trip that proves the database answers; returns the server's clock.
pub async fn ping(db: impl PgExecutor<'_>) -> Result<OffsetDateTime, sqlx::Error> {
    sqlx::query_scalar!(r#"select now() as "now!""#).fetch_one(db).await
}

/// Deletes up to `batch` refresh tokens that expired or were revoked more than `retention`
/// ago, and returns how many. `skip locked` keeps each batch short and lets two purges run at
/// once without waiting on each other or on live traffic.
pub async fn purge_refresh_tokens(
    db: impl PgExecutor<'_>,
    retention: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        r#"
        with doomed as (
            select token_hash from refresh_tokens
            where expires_at < now() - make_interval(secs => $1)
               or revoked_at < now() - make_interval(secs => $1)
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
    .execute(db)
    .await?;
    Ok(deleted.rows_affected())
}

/// Deletes up to `batch` sessions revoked more than `retention` ago that hold no tokens any
/// more, and returns how many.
pub async fn purge_sessions(
    db: impl PgExecutor<'_>,
    retention: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        r#"
        with doomed as (
            select s.id from sessions as s
            where s.revoked_at < now() - make_interval(secs => $1)
              and not exists (select 1 from refresh_tokens as t where t.session_id = s.id)
            limit $2
            for update skip locked
        )
        delete from sessions as s
        using doomed
        where s.id = doomed.id
        "#,
        retention.as_secs_f64(),
        batch,
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected())
}
