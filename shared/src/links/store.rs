//! The SQL of the mail links, one small function per statement: a mail requested within its
//! limits (its token stored), a verification link consumed, a reset link read and consumed.
//! Each write is a single statement (data-modifying CTEs), atomic by itself and one round trip,
//! run through `db::one_statement!`.

use std::time::Duration;

use crate::accounts::store::{Opening, Started};
use crate::db::{DbConnection, locked_then, one_statement};
use crate::domain::FactorId;
use crate::domain::{Device, MailKind, SessionId, User, UserId};
use crate::sessions::store::lock_user;
use crate::tokens::TokenHash;

/// What asking for a mail decided (see [`request_mail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailRequest {
    /// A new token is stored (the previous one of its kind, if any, no longer matches): send it.
    Issued,
    /// No account has the address, or (for a verification) it is verified already: no mail.
    NoAccount,
    /// The address had a mail of this kind in the last 60 s, or 5 mails this hour: no mail.
    AddressLimited,
    /// The request's source address made its limit of requests this hour: no mail.
    SourceLimited,
    /// The global hourly cap is reached: no mail.
    GlobalLimited,
}

/// How often one address may be mailed: one mail of each kind per 60 s, and 5 in all per hour.
pub const MAIL_KIND_INTERVAL: Duration = Duration::from_secs(60);
pub const MAIL_HOURLY_PER_ADDRESS: i32 = 5;

/// The share of the global hourly cap that only reset links may use: verification mails stop at
/// four fifths of it, so a flood of signups leaves room for users locked out of their accounts.
pub const RESET_RESERVED_DIVISOR: i32 = 5;

/// Decides, in one statement, whether `email` gets a mail of `kind` now, and if so stores its
/// token (`token`, living `kind.lifetime()`), replacing the user's previous one of that kind.
/// `source` is the source address of an anonymous request (signup, forgot) with the requests it
/// may make in an hour, whether or not they send a mail; `None` for a signed-in user's.
///
/// The limits hold across every sandbox, and are checked in order, each only once the one
/// before admitted the request: the source's (every anonymous request counts, whether or not
/// an account has the address), the address's (its row lock makes concurrent requests see each
/// other's counts), then the global count, one row per clock hour, of which verification mails
/// may take only four fifths (a refused source or address spends none of it). A mail a later
/// limit refuses still counts against the earlier ones. Addresses without an account leave no
/// row; an address's row outlives its account (a deleted and re-created account is still
/// limited), until the purge finds its window over.
pub async fn request_mail(
    db: &mut DbConnection,
    email: &str,
    kind: MailKind,
    token: &TokenHash,
    hourly_limit: u32,
    source: Option<(&str, u32)>,
) -> Result<MailRequest, sqlx::Error> {
    let (source, source_limit) = source.unzip();
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with by_source as (
            -- Every anonymous request counts, for an address with an account or without: the
            -- count tells nothing about which, and a source past its limit is refused before it
            -- can spend anyone's own limit.
            insert into mail_sources as s (source, window_started_at, window_count)
            select $8, now(), 1 where $8::text is not null
            on conflict on constraint mail_sources_pkey do update
            set window_started_at = case when s.window_started_at <= now() - interval '1 hour'
                                         then now() else s.window_started_at end,
                window_count = case when s.window_started_at <= now() - interval '1 hour'
                                    then 1 else s.window_count + 1 end
            where s.window_started_at <= now() - interval '1 hour' or s.window_count < $9
            returning s.source
        ), source_admitted as (
            select 1 where $8::text is null or exists (select 1 from by_source)
        ), target as (
            select id, email from users
            where email = $1 and ($2 = 'reset_password' or email_verified_at is null)
              and exists (select 1 from source_admitted)
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
            where h.sent < case when $2 = 'reset_password' then $5::int4
                                else $5::int4 - $5::int4 / $10::int4 end
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
        select exists (select 1 from source_admitted) as "source!",
               exists (select 1 from target) as "known!",
               exists (select 1 from address) as "address!",
               exists (select 1 from global) as "global!"
        "#,
        email,
        kind.as_str(),
        &token.0[..],
        kind.lifetime().as_secs_f64(),
        i32::try_from(hourly_limit).unwrap_or(i32::MAX),
        MAIL_KIND_INTERVAL.as_secs_f64(),
        MAIL_HOURLY_PER_ADDRESS,
        source,
        source_limit.map(|limit| i32::try_from(limit).unwrap_or(i32::MAX)),
        RESET_RESERVED_DIVISOR,
    )
    .fetch_one(connection))?;
    Ok(match (row.source, row.known, row.address, row.global) {
        (false, ..) => MailRequest::SourceLimited,
        (true, false, ..) => MailRequest::NoAccount,
        (true, true, false, _) => MailRequest::AddressLimited,
        (true, true, true, false) => MailRequest::GlobalLimited,
        (true, true, true, true) => MailRequest::Issued,
    })
}

/// Consumes a live verification token and marks its user's address verified, in one statement;
/// returns the user, or `None` for a token that is unknown, expired or used. Of concurrent
/// uses of one token, the first deletes its row; the others wait for the row lock, find it
/// gone, and match nothing.
pub async fn verify_email(
    db: &mut DbConnection,
    token: &TokenHash,
    device: &Device,
) -> Result<Option<User>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        User,
        r#"
        with consumed as (
            delete from mail_tokens
            where token_hash = $1 and kind = 'verify_email' and expires_at > now()
            returning user_id
        ), verified as (
            update users as u set email_verified_at = coalesce(u.email_verified_at, now())
            from consumed
            where u.id = consumed.user_id
            returning u.id, u.email, u.created_at, u.email_verified_at
        ), recorded as (
            insert into security_events (id, user_id, type, ip, user_agent)
            select gen_random_uuid(), id, 'email_verified', $2::text::inet, $3 from verified
        )
        select id as "id!: UserId", email as "email!", created_at as "created_at!", email_verified_at
        from verified
        "#,
        &token.0[..],
        device.ip_text(),
        device.user_agent.as_deref(),
    )
    .fetch_optional(connection))
}

/// Whose a live reset link is: the user, their address, and whether an operator disabled them.
pub struct ResetTarget {
    pub user: UserId,
    pub email: String,
    pub disabled: bool,
}

/// The user a live reset token belongs to (id and address), without consuming it: the new
/// password is checked against the address and hashed before [`reset_password`] consumes it.
pub async fn reset_target(
    db: &mut DbConnection,
    token: &TokenHash,
) -> Result<Option<ResetTarget>, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        select u.id as "id: UserId", u.email, u.disabled_at is not null as "disabled!"
        from mail_tokens as m
        join users as u on u.id = m.user_id
        where m.token_hash = $1 and m.kind = 'reset_password' and m.expires_at > now()
        "#,
        &token.0[..],
    )
    .fetch_optional(connection))?;
    Ok(row.map(|row| ResetTarget { user: row.id, email: row.email, disabled: row.disabled }))
}

/// Consumes a live reset token of `user` and, in the same statement (after the user's row lock:
/// see [`lock_user`]): sets the new password hash, marks the address verified (the link proved
/// it), revokes every session of the user with its tokens, voids every sign-in waiting for its
/// second factor and every passkey registration begun, clears the address's failed logins, and opens the opening's session; or, when
/// the user has a live second factor, stores its `pending` sign-in instead, a sign-in that the factor finishes (a
/// mailbox alone opens no session). `None` when the token is no longer live (used by a
/// concurrent reset, replaced, expired): nothing changed.
pub async fn reset_password(
    db: &mut DbConnection,
    token: &TokenHash,
    user: UserId,
    password_hash: &str,
    opening: Opening<'_>,
) -> Result<Option<(User, Started)>, sqlx::Error> {
    let Opening { session, pending } = opening;
    let row = locked_then!(
        db,
        |connection| lock_user(&mut *connection, user),
        sqlx::query!(
            r#"
        with consumed as (
            delete from mail_tokens
            where token_hash = $1 and kind = 'reset_password' and expires_at > now() and user_id = $2
              and exists (select 1 from users where id = $2 and disabled_at is null)
            returning user_id
        ), factor as (
            select id from mfa_factors
            where user_id in (select user_id from consumed) and confirmed_at is not null
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
        ), voided as (
            delete from mfa_tokens where user_id in (select user_id from consumed)
        ), ceremonies as (
            delete from webauthn_challenges where user_id in (select user_id from consumed)
        ), cleared as (
            delete from login_attempts where email in (select email from updated)
            returning 1
        ), ceiling as (
            -- A new password makes earlier guesses moot; after the backoff rows (admit_login's order).
            delete from login_failure_windows
            where scope = 'email' and key in (select email from updated) and (select count(*) from cleared) >= 0
        ), new_session as (
            insert into sessions (id, user_id, user_agent, ip)
            select $4, user_id, $7, $8::text::inet from consumed where not exists (select 1 from factor)
            returning id
        ), first_token as (
            insert into refresh_tokens (token_hash, session_id, expires_at)
            select $5, id, now() + make_interval(secs => $6) from new_session
        ), pending as (
            insert into mfa_tokens (token_hash, user_id, user_agent, ip, expires_at)
            select $9, user_id, $7, $8::text::inet, now() + make_interval(secs => $10)
            from consumed where exists (select 1 from factor)
        ), recorded as (
            -- The session the reset opened, none when the second factor is due.
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), user_id, (select id from new_session), 'password_reset',
                   $8::text::inet, $7, jsonb_build_object('sessions_revoked', (select count(*) from revoked_sessions))
            from consumed
        )
        select id as "id!: UserId", email as "email!", created_at as "created_at!", email_verified_at,
               (select id from factor) as "factor?: FactorId"
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
            &pending.token.0[..],
            pending.ttl.as_secs_f64(),
        )
        .fetch_optional(&mut *connection)
    )?;
    Ok(row.map(|row| {
        let user = User {
            id: row.id,
            email: row.email,
            created_at: row.created_at,
            email_verified_at: row.email_verified_at,
        };
        (user, row.factor.map_or(Started::Session, |factor| Started::SecondFactorDue { factor }))
    }))
}
