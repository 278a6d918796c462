//! The SQL of sessions and their refresh tokens, one small function per statement: rotation
//! and its replays, revocation (of a token's session, of an owner's sessions, of one session),
//! the caller's live session, the session list; and [`NewSession`], what the statements of the
//! other aggregates that open a session insert. Each write is a single statement (data-modifying
//! CTEs), atomic by itself and one round trip, run through `db::one_statement!`.

use std::time::Duration;

use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::db::{DbConnection, one_statement};
use crate::domain::{Assurance, Device, SessionId, User, UserId};
use crate::tokens::TokenHash;

/// A new session's id, its first refresh token, and the device that opened it.
#[derive(Clone, Copy)]
pub struct NewSession<'a> {
    pub id: SessionId,
    pub token: &'a TokenHash,
    pub ttl: Duration,
    pub device: &'a Device,
}

impl NewSession<'_> {
    /// The device's `User-Agent`, if it sent one.
    pub(crate) fn user_agent(&self) -> Option<&str> {
        self.device.user_agent.as_deref()
    }

    /// The device's address, as text for the statement's `$n::text::inet`.
    pub(crate) fn ip(&self) -> Option<String> {
        self.device.ip_text()
    }
}

/// The owner of a refresh token that was just rotated.
pub struct Rotated {
    pub user: User,
    pub session: SessionId,
    /// How the session was proven, for the access token.
    pub assurance: Assurance,
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
            returning t.session_id, s.user_id, s.created_at as session_created_at, s.aal, s.amr
        ), successor as (
            insert into refresh_tokens (token_hash, session_id, parent_hash, expires_at)
            select $2, session_id, $1,
                   least(now() + make_interval(secs => $3), session_created_at + make_interval(secs => $4))
            from rotated
        )
        select u.id as "id!: UserId", u.email as "email!", u.created_at as "created_at!",
               u.email_verified_at, r.session_id as "session_id!: SessionId", r.aal as "aal!",
               r.amr as "amr!"
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
        assurance: Assurance::stored(&row.aal, row.amr),
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
/// and revokes its session when it is reuse, recording a `refresh_reused` security event with
/// the replaying `device` (once: only the call that revokes the session records it). Runs after
/// the rotation attempt, so it sees the rotation that a concurrent request committed.
pub async fn replay_refresh_token(
    db: &mut DbConnection,
    presented: &TokenHash,
    successor: &TokenHash,
    grace: Duration,
    lifetime: Duration,
    device: &Device,
) -> Result<Replay, sqlx::Error> {
    let ip = device.ip_text();
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with presented as (
            select t.session_id, t.revoked_at, s.user_id, s.revoked_at as session_revoked_at,
                   s.created_at as session_created_at, s.aal, s.amr
            from refresh_tokens as t
            join sessions as s on s.id = t.session_id
            where t.token_hash = $1
        ), grace as (
            select p.session_id, p.aal, p.amr, u.id, u.email, u.created_at, u.email_verified_at
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
            returning id, user_id
        ), revoked_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select session_id from reused) and revoked_at is null
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent)
            select gen_random_uuid(), user_id, id, 'refresh_reused', $5::text::inet, $6 from revoked_session
        )
        select exists (select 1 from reused) as "reused!",
               g.id as "id?: UserId", g.email as "email?", g.created_at as "created_at?",
               g.email_verified_at as "email_verified_at?", g.session_id as "session_id?: SessionId",
               g.aal as "aal?", g.amr as "amr?"
        from (values (1)) as one (x)
        left join grace as g on true
        "#,
        &presented.0[..],
        &successor.0[..],
        grace.as_secs_f64(),
        lifetime.as_secs_f64(),
        ip,
        device.user_agent.as_deref(),
    )
    .fetch_one(connection))?;
    Ok(match (row.id, row.email, row.created_at, row.session_id, row.aal, row.amr) {
        (Some(id), Some(email), Some(created_at), Some(session), Some(aal), Some(amr)) => {
            Replay::Grace(Rotated {
                user: User { id, email, created_at, email_verified_at: row.email_verified_at },
                session,
                assurance: Assurance::stored(&aal, amr),
            })
        }
        _ if row.reused => Replay::Reused,
        _ => Replay::Invalid,
    })
}

/// Revokes the session a refresh token belongs to, and every token of that session, in one
/// statement, recording a `logout` security event (scope `local`) with the `device` when it
/// ended the session. An unknown token, or one of an ended session, changes nothing.
pub async fn revoke_session_of_token(
    db: &mut DbConnection,
    token: &TokenHash,
    device: &Device,
) -> Result<(), sqlx::Error> {
    let ip = device.ip_text();
    one_statement!(db, |connection| sqlx::query!(
        r#"
        with target as (
            select session_id from refresh_tokens where token_hash = $1
        ), revoked_session as (
            update sessions set revoked_at = now()
            where id in (select session_id from target) and revoked_at is null
            returning id, user_id
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), user_id, id, 'logout', $2::text::inet, $3,
                   jsonb_build_object('scope', 'local', 'sessions', 1)
            from revoked_session
        )
        update refresh_tokens set revoked_at = now()
        where session_id in (select session_id from target) and revoked_at is null
        "#,
        &token.0[..],
        ip,
        device.user_agent.as_deref(),
    )
    .execute(connection))?;
    Ok(())
}

/// Revokes every live session of the user who owns `token` (or every one but the token's own
/// when `include_own` is false), with their tokens, in one statement, recording one `logout`
/// security event (`scope` as the logout named it, how many sessions ended) with the `device`.
/// Only a live token may do this (of a session younger than `lifetime`); returns whether it was
/// one.
pub async fn revoke_sessions_of_owner(
    db: &mut DbConnection,
    token: &TokenHash,
    include_own: bool,
    scope: &str,
    lifetime: Duration,
    device: &Device,
) -> Result<bool, sqlx::Error> {
    let ip = device.ip_text();
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
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), user_id, session_id, 'logout', $5::text::inet, $6,
                   jsonb_build_object('scope', $4::text, 'sessions', (select count(*) from doomed))
            from owner
        )
        select exists (select 1 from owner) as "live!"
        "#,
        &token.0[..],
        include_own,
        lifetime.as_secs_f64(),
        scope,
        ip,
        device.user_agent.as_deref(),
    )
    .fetch_one(connection))
}

/// A session's user and where its proofs stand, as [`find_session_user`] reads them.
pub struct SessionUser {
    pub user: User,
    /// Whether the session's user proved anything (a sign-in, a re-authentication) within the
    /// step-up window, and whether they proved their second factor within it.
    pub recent: bool,
    pub recent_second_factor: bool,
    /// Whether the user has a live second factor.
    pub mfa: bool,
}

/// The user of a session, if the session is theirs, not revoked and younger than `lifetime`,
/// with where its proofs stand against a step-up `window`.
pub async fn find_session_user(
    db: &mut DbConnection,
    user: UserId,
    session: SessionId,
    lifetime: Duration,
    window: Duration,
) -> Result<Option<SessionUser>, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        select u.id as "id: UserId", u.email, u.created_at, u.email_verified_at,
               coalesce(s.authenticated_at > now() - make_interval(secs => $4), false) as "recent!",
               coalesce(s.second_factor_at > now() - make_interval(secs => $4), false)
                   as "recent_second_factor!",
               exists (select 1 from mfa_factors as f where f.user_id = u.id and f.confirmed_at is not null)
                   as "mfa!"
        from sessions as s
        join users as u on u.id = s.user_id
        where s.id = $1 and s.user_id = $2 and s.revoked_at is null
          and s.created_at > now() - make_interval(secs => $3)
        "#,
        session as SessionId,
        user as UserId,
        lifetime.as_secs_f64(),
        window.as_secs_f64(),
    )
    .fetch_optional(connection))?;
    Ok(row.map(|row| SessionUser {
        user: User {
            id: row.id,
            email: row.email,
            created_at: row.created_at,
            email_verified_at: row.email_verified_at,
        },
        recent: row.recent,
        recent_second_factor: row.recent_second_factor,
        mfa: row.mfa,
    }))
}

/// Marks the session re-authenticated now (and its second factor proven now, with `amr` added
/// to its methods and the session raised to aal2, when `second_factor`), while it is live, and
/// clears the session's backoff of password confirmations. Returns its assurance for a new
/// access token; `None` when it ended meanwhile.
pub async fn mark_authenticated(
    db: &mut DbConnection,
    user: UserId,
    session: SessionId,
    second_factor: bool,
    amr: &[&str],
    lifetime: Duration,
) -> Result<Option<Assurance>, sqlx::Error> {
    let amr: Vec<String> = amr.iter().map(|method| (*method).to_owned()).collect();
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with marked as (
            update sessions as s
            set authenticated_at = now(),
                second_factor_at = case when $3 then now() else s.second_factor_at end,
                aal = case when $3 then 'aal2' else s.aal end,
                amr = array(select m from unnest(s.amr || $4::text[]) with ordinality as a (m, i)
                            group by m order by min(i))
            where s.id = $1 and s.user_id = $2 and s.revoked_at is null
              and s.created_at > now() - make_interval(secs => $5)
            returning s.aal, s.amr
        ), cleared as (
            delete from login_attempts
            where source = 'session:' || $1::text and email in (select email from users where id = $2)
              and exists (select 1 from marked)
        )
        select aal as "aal!", amr as "amr!" from marked
        "#,
        session as SessionId,
        user as UserId,
        second_factor,
        &amr,
        lifetime.as_secs_f64(),
    )
    .fetch_optional(connection))?;
    Ok(row.map(|row| Assurance::stored(&row.aal, row.amr)))
}

/// Locks the user's row, as a login opening a session does (`accounts::store::start_session`),
/// for the write after it, in the same transaction (`db::locked_then`): a write that ends
/// sessions or voids sign-ins then sees every session a login or a second factor opened before
/// the lock was granted, and one that opens a session sees what such a write committed.
pub(crate) async fn lock_user(connection: &mut PgConnection, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("select 1 as \"locked!\" from users where id = $1 for no key update", user as UserId)
        .fetch_optional(connection)
        .await?;
    Ok(())
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

/// Revokes one session of `user` with its tokens, recording a `session_revoked` security event
/// of the session `by` and its `device`; returns whether the user had it unrevoked (another
/// user's session id matches nothing).
pub async fn revoke_session(
    db: &mut DbConnection,
    user: UserId,
    session: SessionId,
    by: SessionId,
    device: &Device,
) -> Result<bool, sqlx::Error> {
    let ip = device.ip_text();
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with doomed as (
            update sessions set revoked_at = now()
            where id = $1 and user_id = $2 and revoked_at is null
            returning id
        ), revoked_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from doomed) and revoked_at is null
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), $2, $3, 'session_revoked', $4::text::inet, $5,
                   jsonb_build_object('revoked_session', id)
            from doomed
        )
        select exists (select 1 from doomed) as "revoked!"
        "#,
        session as SessionId,
        user as UserId,
        by as SessionId,
        ip,
        device.user_agent.as_deref(),
    )
    .fetch_one(connection))
}
