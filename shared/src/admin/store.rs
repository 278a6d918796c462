//! The SQL of the admin API: the users an operator searches and reads, and the actions on one
//! (disable, enable, end every session, delete). Each action is one statement, after the user's
//! row lock where a sign-in could race it ([`lock_user`]), with its security event naming the
//! operator.

use time::OffsetDateTime;

use crate::db::{DbConnection, locked_then, one_statement};
use crate::domain::{Device, UserId};
use crate::sessions::store::lock_user;

/// A user as the operator sees them.
#[derive(Debug, serde::Serialize)]
pub struct AdminUser {
    pub id: UserId,
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub email_verified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

/// Users whose address starts with `prefix` (every user with the empty one), in the addresses'
/// byte order, `limit` of them after the address `after` (the empty one: from the start): a
/// range on `users_email_bytes_idx`, bounded on both sides whatever the prefix, in one plan.
pub async fn list_users(
    db: &mut DbConnection,
    prefix: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<AdminUser>, sqlx::Error> {
    // Past every address that starts with the prefix: the prefix and the last code point.
    let beyond = format!("{prefix}{}", char::MAX);
    one_statement!(db, |connection| sqlx::query_as!(
        AdminUser,
        r#"
        select id as "id: UserId", email, created_at, email_verified_at, disabled_at
        from users
        where email collate "C" >= $1 and email collate "C" < $2 and email collate "C" > $3
          and starts_with(email, $1)
        order by email collate "C"
        limit $4
        "#,
        prefix,
        beyond,
        after,
        limit,
    )
    .fetch_all(connection))
}

/// One user, if any has this id.
pub async fn find_user(db: &mut DbConnection, user: UserId) -> Result<Option<AdminUser>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        AdminUser,
        r#"
        select id as "id: UserId", email, created_at, email_verified_at, disabled_at
        from users where id = $1
        "#,
        user as UserId,
    )
    .fetch_optional(connection))
}

/// Who acts through the admin API: the IAM principal the gateway verified, and where the request
/// came from.
#[derive(Debug, Clone, Copy)]
pub struct Operator<'a> {
    pub principal: &'a str,
    pub device: &'a Device,
}

/// Ends every session of `user` with its refresh tokens, voids every sign-in waiting for a
/// second factor and every passkey registration begun, after the user's row lock (a sign-in in
/// flight opened its session before, and it ends here, or after, and sees the change); with
/// `hold`, disables the account too (once: a disabled user stays disabled since then). Records
/// `account_disabled` when it disabled, else `admin_revoke_sessions` (every time when not
/// holding; when holding an account disabled already, only if it ended sessions), each with the
/// sessions ended. `None` for no such user; else the sessions it ended.
pub async fn end_sessions(
    db: &mut DbConnection,
    user: UserId,
    hold: bool,
    by: Operator<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    locked_then!(
        db,
        |connection| lock_user(&mut *connection, user),
        sqlx::query_scalar!(
            r#"
        with target as (
            select id from users where id = $1
        ), disabled as (
            update users set disabled_at = now() where id = $1 and disabled_at is null and $5
            returning id
        ), doomed as (
            update sessions set revoked_at = now()
            where user_id in (select id from target) and revoked_at is null
            returning id
        ), revoked_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from doomed) and revoked_at is null
        ), second_factor_due as (
            delete from mfa_tokens where user_id in (select id from target)
        ), ceremonies as (
            delete from webauthn_challenges where user_id in (select id from target)
        ), recorded as (
            insert into security_events (id, user_id, type, ip, user_agent, detail)
            select gen_random_uuid(), id,
                   case when exists (select 1 from disabled) then 'account_disabled' else 'admin_revoke_sessions' end,
                   $3::text::inet, $4,
                   jsonb_build_object('by', $2::text, 'sessions_revoked', (select count(*) from doomed))
            from target
            where not $5 or exists (select 1 from disabled) or exists (select 1 from doomed)
        )
        select (select count(*) from doomed) as "ended!"
        from target
        "#,
            user as UserId,
            by.principal,
            by.device.ip_text(),
            by.device.user_agent.as_deref(),
            hold,
        )
        .fetch_optional(&mut *connection)
    )
}

/// Enables `user` again, recording `account_enabled` when it was disabled, after the user's row
/// lock (a deletion in flight either went first, and there is no user, or waits). Whether the
/// user exists.
pub async fn enable(db: &mut DbConnection, user: UserId, by: Operator<'_>) -> Result<bool, sqlx::Error> {
    locked_then!(
        db,
        |connection| lock_user(&mut *connection, user),
        sqlx::query_scalar!(
            r#"
        with target as (
            select id from users where id = $1
        ), enabled as (
            update users set disabled_at = null where id = $1 and disabled_at is not null
            returning id
        ), recorded as (
            insert into security_events (id, user_id, type, ip, user_agent, detail)
            select gen_random_uuid(), id, 'account_enabled', $3::text::inet, $4,
                   jsonb_build_object('by', $2::text)
            from enabled
        )
        select exists (select 1 from target) as "found!"
        "#,
            user as UserId,
            by.principal,
            by.device.ip_text(),
            by.device.user_agent.as_deref(),
        )
        .fetch_one(&mut *connection)
    )
}

/// Deletes `user` (their sessions, tokens, factors and passkeys go with them: foreign keys) and
/// their address's failed-login backoff, recording `admin_delete_user`. Whether there was one.
pub async fn delete_user(db: &mut DbConnection, user: UserId, by: Operator<'_>) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with gone as (
            delete from users where id = $1
            returning id, email
        ), attempts as (
            delete from login_attempts where email in (select email from gone)
        ), recorded as (
            insert into security_events (id, user_id, type, ip, user_agent, detail)
            select gen_random_uuid(), id, 'admin_delete_user', $3::text::inet, $4,
                   jsonb_build_object('by', $2::text)
            from gone
        )
        select exists (select 1 from gone) as "deleted!"
        "#,
        user as UserId,
        by.principal,
        by.device.ip_text(),
        by.device.user_agent.as_deref(),
    )
    .fetch_one(connection))
}

/// Records the operator's reset link for `user` (`admin_send_reset`): whether it was sent, or a
/// sending limit held it back.
pub async fn record_reset_sent(
    db: &mut DbConnection,
    user: UserId,
    by: Operator<'_>,
    sent: bool,
) -> Result<(), sqlx::Error> {
    one_statement!(db, |connection| sqlx::query!(
        r#"
        insert into security_events (id, user_id, type, ip, user_agent, detail)
        values (gen_random_uuid(), $1, 'admin_send_reset', $3::text::inet, $4,
                jsonb_build_object('by', $2::text, 'sent', $5::bool))
        "#,
        user as UserId,
        by.principal,
        by.device.ip_text(),
        by.device.user_agent.as_deref(),
        sent,
    )
    .execute(connection))?;
    Ok(())
}
