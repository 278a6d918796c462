//! The SQL of the security events' outbox (migration 17): take a batch of due rows with their
//! events, locked for the sending transaction; delete the rows EventBridge took; put the others
//! off; measure the backlog.

use std::time::Duration;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{DbConnection, one_statement};

/// One queued event, as it goes out.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    pub id: Uuid,
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub kind: String,
    pub at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The event's `detail`, as JSON text.
    pub detail: String,
    /// Sends tried before this one.
    pub attempts: i32,
}

/// Locks up to `batch` due outbox rows, the earliest due first, and returns their events oldest
/// first. Rows another drain holds are skipped (`skip locked`), so two drains at once never take
/// the same row; the locks last until the caller's transaction ends.
pub async fn take_due(connection: &mut PgConnection, batch: i64) -> Result<Vec<QueuedEvent>, sqlx::Error> {
    sqlx::query_as!(
        QueuedEvent,
        r#"
        with due as (
            select o.event_id, o.attempts from security_event_outbox as o
            where o.next_attempt_at <= now()
            order by o.next_attempt_at, o.event_id
            limit $1
            for update skip locked
        )
        select e.id, e.user_id, e.session_id, e.type as kind, e.at, host(e.ip) as ip, e.user_agent,
               e.detail::text as "detail!", due.attempts
        from due join security_events as e on e.id = due.event_id
        order by e.at, e.id
        "#,
        batch,
    )
    .fetch_all(connection)
    .await
}

/// Deletes the outbox rows of `events` (sent).
pub async fn delete(connection: &mut PgConnection, events: &[Uuid]) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!("delete from security_event_outbox where event_id = any($1)", events)
        .execute(connection)
        .await?;
    Ok(deleted.rows_affected())
}

/// Puts each of `events` off after a failed send, with its error: one attempt more, and due again
/// `first_delay` × 2^(attempts before this one) from now, at most `longest_delay`.
pub async fn put_off(
    connection: &mut PgConnection,
    events: &[Uuid],
    errors: &[String],
    first_delay: Duration,
    longest_delay: Duration,
) -> Result<u64, sqlx::Error> {
    let updated = sqlx::query!(
        r#"
        update security_event_outbox as o
        set attempts = o.attempts + 1,
            next_attempt_at = now() + make_interval(secs => least($3 * power(2, least(o.attempts, 30)), $4)),
            last_error = failed.error
        from unnest($1::uuid[], $2::text[]) as failed (event_id, error)
        where o.event_id = failed.event_id
        "#,
        events,
        errors,
        first_delay.as_secs_f64(),
        longest_delay.as_secs_f64(),
    )
    .execute(connection)
    .await?;
    Ok(updated.rows_affected())
}

/// The outbox's backlog: how many events are queued, and how long the oldest has waited.
pub async fn backlog(db: &mut DbConnection) -> Result<(u64, Duration), sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        select count(*) as "queued!",
               coalesce(extract(epoch from now() - min(queued_at)), 0)::float8 as "oldest_seconds!"
        from security_event_outbox
        "#
    )
    .fetch_one(connection))?;
    Ok((row.queued.max(0) as u64, Duration::from_secs_f64(row.oldest_seconds.max(0.0))))
}
