//! The SQL of `security_events` that is not a change's own: a refusal's record (its decision was
//! made outside the database, by a password or a code that did not match) and the user's view.
//! Every other event is written by the statement that makes its change.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{DbConnection, one_statement};
use crate::domain::{Device, SessionId, UserId};

/// Records a refusal of `user`'s decided outside the database (`mfa_failed`: a code that did
/// not match), in one statement. `None` for the
/// session of a sign-in, which has none yet. A user deleted meanwhile gets no event.
pub async fn record_refusal(
    db: &mut DbConnection,
    user: UserId,
    session: Option<SessionId>,
    kind: &str,
    device: &Device,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    one_statement!(db, |connection| sqlx::query!(
        r#"
        insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
        select gen_random_uuid(), id, $2, $3, $4::text::inet, $5, $6::text::jsonb
        from users where id = $1
        "#,
        user as UserId,
        session as Option<SessionId>,
        kind,
        device.ip_text(),
        device.user_agent.as_deref(),
        detail.to_string(),
    )
    .execute(connection))?;
    Ok(())
}

/// An event as its user and the operator read it.
#[derive(Debug, serde::Serialize)]
pub struct EventView {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub session_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// Where a page of events starts: after the event at (`at`, `id`), newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

/// `user`'s events, newest first, `limit` of them after `after` (keyset, on the index of
/// (user, time, id): without a cursor the bound is the end of time, so that one plan serves
/// every page). For the user's own view (`owner_view`), an operator's action keeps its type and
/// time but not who acted nor from where (the principal's ARN names the operator's account and
/// role).
pub async fn list(
    db: &mut DbConnection,
    user: UserId,
    after: Option<After>,
    limit: i64,
    owner_view: bool,
) -> Result<Vec<EventView>, sqlx::Error> {
    let (at, id) = after.map_or((None, None), |after| (Some(after.at), Some(after.id)));
    one_statement!(db, |connection| sqlx::query_as!(
        EventView,
        r#"
        select id, type as kind, at,
               case when $5 and detail ? 'by' then null else host(ip) end as ip,
               case when $5 and detail ? 'by' then null else user_agent end as user_agent,
               session_id,
               case when $5 then detail - 'by' else detail end as "detail!"
        from security_events
        where user_id = $1
          and (at, id) < (coalesce($2, 'infinity'::timestamptz),
                          coalesce($3::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
        order by at desc, id desc
        limit $4
        "#,
        user as UserId,
        at,
        id,
        limit,
        owner_view,
    )
    .fetch_all(connection))
}
