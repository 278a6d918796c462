//! The SQL of operations, one small function per statement: the ping of the health check, and
//! the purges of the scheduled maintenance, each deleting one bounded batch of what no request
//! needs any more. Each runs through `db::one_statement!`.

use std::time::Duration;

use time::OffsetDateTime;

use crate::db::{DbConnection, one_statement};

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

/// Deletes up to `batch` login-attempt rows quiet for 24 hours and up to `batch` failure
/// windows that ended over an hour ago (neither throttles any more: see
/// [`admit_login`](crate::accounts::store::admit_login)), and returns how many. A row being
/// counted right now is locked and skipped.
pub async fn purge_login_attempts(db: &mut DbConnection, batch: i64) -> Result<u64, sqlx::Error> {
    let deleted = one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with attempts as (
            delete from login_attempts as a
            using (select email, source from login_attempts
                   where last_failed_at <= now() - interval '24 hours'
                   limit $1 for update skip locked) as doomed
            where a.email = doomed.email and a.source = doomed.source
            returning 1
        ), windows as (
            delete from login_failure_windows as w
            using (select scope, key from login_failure_windows
                   where window_started_at < now() - interval '2 hours'
                   limit $1 for update skip locked) as doomed
            where w.scope = doomed.scope and w.key = doomed.key
            returning 1
        )
        select (select count(*) from attempts) + (select count(*) from windows) as "deleted!"
        "#,
        batch,
    )
    .fetch_one(connection))?;
    Ok(deleted.max(0) as u64)
}

/// Deletes up to `batch` each of: sign-ins whose `mfa_token` expired, expired "this wasn't me"
/// links, expired passkey registrations and spent sign-in ceremonies past their expiry (no
/// finish could take them any more); returns how many. (An enrolment left pending stays: one
/// per user at most, replaced by the next.)
pub async fn purge_second_factor_state(db: &mut DbConnection, batch: i64) -> Result<u64, sqlx::Error> {
    let deleted = one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with tokens as (
            delete from mfa_tokens as t
            using (select token_hash from mfa_tokens where expires_at <= now()
                   limit $1 for update skip locked) as doomed
            where t.token_hash = doomed.token_hash
            returning 1
        ), links as (
            delete from security_undo_tokens as u
            using (select token_hash from security_undo_tokens where expires_at <= now()
                   limit $1 for update skip locked) as doomed
            where u.token_hash = doomed.token_hash
            returning 1
        ), ceremonies as (
            delete from webauthn_challenges as c
            using (select challenge_hash from webauthn_challenges where expires_at <= now()
                   limit $1 for update skip locked) as doomed
            where c.challenge_hash = doomed.challenge_hash
            returning 1
        ), spent as (
            delete from webauthn_used_challenges as u
            using (select challenge_hash from webauthn_used_challenges where expires_at <= now()
                   limit $1 for update skip locked) as doomed
            where u.challenge_hash = doomed.challenge_hash
            returning 1
        )
        select (select count(*) from tokens) + (select count(*) from links)
             + (select count(*) from ceremonies) + (select count(*) from spent) as "deleted!"
        "#,
        batch,
    )
    .fetch_one(connection))?;
    Ok(deleted.max(0) as u64)
}

/// Deletes up to `batch` security events older than `retention`, oldest first, through the
/// owner's `purge_security_events` (the API's role may not delete an event itself), and returns
/// how many.
pub async fn purge_security_events(
    db: &mut DbConnection,
    retention: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = one_statement!(db, |connection| sqlx::query_scalar!(
        r#"select purge_security_events(make_interval(secs => $1), $2::int4) as "deleted!""#,
        retention.as_secs_f64(),
        i32::try_from(batch).unwrap_or(i32::MAX),
    )
    .fetch_one(connection))?;
    Ok(deleted.max(0) as u64)
}

/// Deletes up to `batch` rows of mail state nobody needs any more, and returns how many: link
/// tokens past their expiry, per-address and per-source limits whose window ended over an hour
/// ago (no limit reads them), and global hourly counts older than two hours.
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
        ), sources as (
            delete from mail_sources as s
            using (select source from mail_sources where window_started_at < now() - interval '2 hours'
                   limit $1 for update skip locked) as doomed
            where s.source = doomed.source
            returning 1
        ), hourly as (
            delete from mail_hourly where hour < now() - interval '2 hours'
            returning 1
        )
        select (select count(*) from tokens) + (select count(*) from quota)
               + (select count(*) from sources) + (select count(*) from hourly) as "deleted!"
        "#,
        batch,
    )
    .fetch_one(connection))?;
    Ok(deleted.max(0) as u64)
}
