//! The SQL of the `users` row and its credentials, one small function per statement: the
//! account created with its first session, the login throttle and the session a login opens,
//! the password changed, the account deleted. Each write is a single statement (data-modifying
//! CTEs), atomic by itself and one round trip, run through `db::one_statement!`.

use crate::db::{DbConnection, locked_then, one_statement};
use crate::domain::FactorId;
use crate::domain::{Device, Email, SessionId, User, UserId};
use crate::sessions::store::NewSession;
use crate::sessions::store::lock_user;
use crate::tokens::TokenHash;

/// What admitting a login attempt decided.
pub enum Admission {
    /// The attempt was counted as a failure (a success takes it back) and may go on: here are
    /// the account's user and password hash, if an account has the email, and whether an
    /// operator disabled it.
    Admitted { account: Option<(User, String)>, disabled: bool },
    /// Throttled: try again in `retry_after_seconds` (>= 1). Nothing was counted against the
    /// email; the attempt may have counted against its own source address and backoff.
    Throttled { retry_after_seconds: u64 },
}

/// Who is trying a password, as the throttle keys it (see [`admit_login`]).
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    /// A login: its backoff per (email, source), then the source's failures across every email
    /// within [`SOURCE_WINDOW`] (at most `source_limit`), then the email's across every source
    /// within [`EMAIL_WINDOW`] (at most [`EMAIL_CEILING`]). `source` is `None` when the front
    /// door gave no address: those attempts share one backoff per email and no source count.
    Login { source: Option<&'a str>, source_limit: u32 },
    /// A signed-in user confirming their password (a change, a deletion): the backoff of that
    /// session alone, which nobody else's failures move.
    Confirmation { session: SessionId },
}

/// The window of a source address's failures across emails.
pub const SOURCE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// The window of an email's failures across source addresses, and how many it takes: well above
/// what one source's backoff lets through in the window (about 15 in its first hour, 4 an hour
/// after that), so that only many sources at once can hold an address's owner out.
pub const EMAIL_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);
pub const EMAIL_CEILING: i32 = 100;

impl Attempt<'_> {
    /// The second part of the backoff's key.
    fn backoff_key(&self) -> String {
        match self {
            Attempt::Login { source, .. } => source.unwrap_or_default().to_owned(),
            Attempt::Confirmation { session } => format!("session:{}", session.0),
        }
    }

    /// The source address counted across emails, and its limit: logins from a known address.
    fn source_count(&self) -> (Option<&str>, i32) {
        match self {
            Attempt::Login { source, source_limit } => {
                (*source, i32::try_from(*source_limit).unwrap_or(i32::MAX))
            }
            Attempt::Confirmation { .. } => (None, 0),
        }
    }

    /// Whether the email's ceiling across sources counts this attempt: logins only.
    fn email_count(&self) -> bool {
        matches!(self, Attempt::Login { .. })
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
            returning id, user_id
        ), first_token as (
            insert into refresh_tokens (token_hash, session_id, expires_at)
            select $5, id, now() + make_interval(secs => $6) from new_session
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent)
            select gen_random_uuid(), user_id, id, 'signup', $8::text::inet, $7 from new_session
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

/// Inserts a user without a session (one who signs in once the address is verified). A
/// duplicate email violates `users_email_key`.
pub async fn create_user(
    db: &mut DbConnection,
    id: UserId,
    email: &Email,
    password_hash: &str,
    device: &Device,
) -> Result<(), sqlx::Error> {
    one_statement!(db, |connection| sqlx::query!(
        r#"
        with new_user as (
            insert into users (id, email, password_hash) values ($1, $2, $3)
            returning id
        )
        insert into security_events (id, user_id, type, ip, user_agent)
        select gen_random_uuid(), id, 'signup', $4::text::inet, $5 from new_user
        "#,
        id as UserId,
        email.as_str(),
        password_hash,
        device.ip_text(),
        device.user_agent.as_deref(),
    )
    .execute(connection))?;
    Ok(())
}

/// Admits a login attempt for an email, in one statement and before any password work.
///
/// The backoff, keyed by (email, source) whether or not an account has the email: 5
/// consecutive failures are free; after that the key waits 1 s from its last failure, doubling
/// per failure up to 15 minutes (the exponent is capped, so no count overflows it). A count
/// quiet for 24 hours starts again from zero. The count saturates at `i32::MAX`.
///
/// Then, for a login (see [`Attempt`]), two counts in fixed windows, each refused once full:
/// the source address's failures across every email, and the email's across every source.
/// They are checked in that order, each only once the one before admitted the attempt: the
/// source's count goes first (an attempt its own backoff then refuses still counts against its
/// source), the email's last, so that an attempt refused for its source or its backoff costs the
/// email's owner nothing.
///
/// Each upsert counts the attempt (as a failure, taken back by [`start_session`] on success)
/// under the row's lock, and only while its limit holds: of many concurrent attempts, each one
/// sees the count the previous one left. The account is read in the same statement, only when
/// admitted. A login refused here for the address's sake (its backoff, its ceiling; not its
/// source's limit) records `login_throttled` for its account (none for an address without one),
/// at most once a minute per account: a crowd's refused attempts do not grow the events faster.
pub async fn admit_login(
    db: &mut DbConnection,
    email: &Email,
    attempt: Attempt<'_>,
    device: &Device,
) -> Result<Admission, sqlx::Error> {
    let (source, source_limit) = attempt.source_count();
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with by_source as (
            insert into login_failure_windows as w (scope, key, window_started_at, failed_count)
            select 'source', $3, now(), 1 where $3::text is not null
            on conflict on constraint login_failure_windows_pkey do update
            set window_started_at = case when w.window_started_at <= now() - make_interval(secs => $5)
                                         then now() else w.window_started_at end,
                failed_count = case when w.window_started_at <= now() - make_interval(secs => $5)
                                    then 1 else least(w.failed_count, 2147483646) + 1 end
            where w.window_started_at <= now() - make_interval(secs => $5) or w.failed_count < $4
            returning w.key
        ), source_admitted as (
            -- The email's ceiling is read here and counted last: an attempt it refuses costs
            -- the attempt's own backoff nothing (an owner waiting out a crowd is not pushed back
            -- further by their own tries).
            select 1 where ($3::text is null or exists (select 1 from by_source))
              and not exists (
                  select 1 from login_failure_windows
                  where $6 and scope = 'email' and key = $1 and failed_count >= $7
                    and window_started_at > now() - make_interval(secs => $8))
        ), admitted as (
            insert into login_attempts as a (email, source, failed_count, last_failed_at)
            select $1, $2, 1, now() from source_admitted
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
        ), by_email as (
            insert into login_failure_windows as w (scope, key, window_started_at, failed_count)
            select 'email', $1, now(), 1 from admitted where $6
            on conflict on constraint login_failure_windows_pkey do update
            set window_started_at = case when w.window_started_at <= now() - make_interval(secs => $8)
                                         then now() else w.window_started_at end,
                failed_count = case when w.window_started_at <= now() - make_interval(secs => $8)
                                    then 1 else least(w.failed_count, 2147483646) + 1 end
            where w.window_started_at <= now() - make_interval(secs => $8) or w.failed_count < $7
            returning w.key
        ), passed as (
            select 1 from admitted where not $6 or exists (select 1 from by_email)
        ), throttled as (
            -- Refused for the account's own sake (its backoff or its ceiling), not for the
            -- source's: at most once a minute per account, whatever the sources.
            insert into security_events (id, user_id, type, ip, user_agent)
            select gen_random_uuid(), u.id, 'login_throttled', $9::text::inet, $10
            from users as u
            where $6 and u.email = $1 and not exists (select 1 from passed)
              and ($3::text is null or exists (select 1 from by_source))
              and not exists (
                  select 1 from security_events as e
                  where e.user_id = u.id and e.at > now() - interval '1 minute'
                    and e.type = 'login_throttled')
        )
        select exists (select 1 from passed) as "admitted!",
               u.id as "id?: UserId", u.email as "email?", u.created_at as "created_at?",
               u.email_verified_at as "email_verified_at?", u.password_hash as "password_hash?",
               coalesce(u.disabled_at is not null, false) as "disabled!",
               -- From the statement's snapshot: a concurrent failure committed since may make
               -- the true wait a little longer (the caller answers at least 1 s).
               greatest(
                   coalesce(ceil(extract(epoch from
                       b.last_failed_at
                       + make_interval(secs => least(900, power(2, least(b.failed_count - 5, 10))))
                       - now()
                   )), 0),
                   coalesce(ceil(extract(epoch from
                       s.window_started_at + make_interval(secs => $5) - now()
                   )), 0),
                   coalesce(ceil(extract(epoch from
                       m.window_started_at + make_interval(secs => $8) - now()
                   )), 0)
               )::int8 as "retry_after!"
        from (select $1::text as email) as e
        left join users as u on u.email = e.email and exists (select 1 from passed)
        left join login_attempts as b
               on b.email = e.email and b.source = $2 and b.failed_count >= 5
              and b.last_failed_at > now() - interval '24 hours'
        left join login_failure_windows as s
               on s.scope = 'source' and s.key = $3 and s.failed_count >= $4
              and s.window_started_at > now() - make_interval(secs => $5)
        left join login_failure_windows as m
               on $6 and m.scope = 'email' and m.key = e.email and m.failed_count >= $7
              and m.window_started_at > now() - make_interval(secs => $8)
        "#,
        email.as_str(),
        attempt.backoff_key(),
        source,
        source_limit,
        SOURCE_WINDOW.as_secs_f64(),
        attempt.email_count(),
        EMAIL_CEILING,
        EMAIL_WINDOW.as_secs_f64(),
        device.ip_text(),
        device.user_agent.as_deref(),
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
    Ok(Admission::Admitted { account, disabled: row.disabled })
}

/// Records a refused login of `email` (a wrong password, or the right one of an address that
/// may not sign in): `login_failed` with `detail`, for the account with the address, in one
/// statement that also touches the attempt's backoff row (which `admit_login` wrote), so that a
/// refusal is one round trip and one committed write whether or not an account has the address
/// (the account's adds the event's row and its outbox row to that write: a fraction of a
/// millisecond beside argon2's verification).
pub async fn record_refused_login(
    db: &mut DbConnection,
    email: &Email,
    attempt: Attempt<'_>,
    device: &Device,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    one_statement!(db, |connection| sqlx::query!(
        r#"
        with touched as (
            update login_attempts set last_failed_at = last_failed_at
            where email = $1 and source = $2
            returning 1
        )
        insert into security_events (id, user_id, type, ip, user_agent, detail)
        select gen_random_uuid(), id, 'login_failed', $3::text::inet, $4, $5::text::jsonb
        from users where email = $1 and (select count(*) from touched) >= 0
        "#,
        email.as_str(),
        attempt.backoff_key(),
        device.ip_text(),
        device.user_agent.as_deref(),
        detail.to_string(),
    )
    .execute(connection))?;
    Ok(())
}

/// After a successful login: opens a session with its first refresh token, clears the
/// attempt's backoff, takes back what its admission counted against its source and its email
/// (see [`admit_login`]) and replaces the password hash when `rehashed` (its parameters were out of
/// date), in one statement, and only while the account's hash is still `verified`, the one the
/// password matched. The statement locks the user's row first, as a password reset or change
/// does before its write ([`lock_user`]): one that commits while the login hashes leaves no row
/// here (no session, and the old password is not written back); one that waits for this lock
/// sees the session this opened, and ends it.
///
/// A user with a live second factor gets no session: the opening's `pending` (an `mfa_token`'s
/// hash, stored for its lifetime with the device) is stored instead, and the session opens once the factor is
/// proven ([`crate::mfa::store::open_session_with_token`]).
pub async fn start_session(
    db: &mut DbConnection,
    user: UserId,
    email: &Email,
    attempt: Attempt<'_>,
    verified: &str,
    rehashed: Option<&str>,
    opening: Opening<'_>,
) -> Result<Started, sqlx::Error> {
    let Opening { session, pending } = opening;
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with verified as (
            select id from users where id = $1 and password_hash = $9 and disabled_at is null
            for no key update
        ), factors as (
            -- Locked, and so read as committed once the lock is granted: a confirmation that
            -- held the user's row while this waited for it made its factor live, and the login
            -- must then ask for it.
            select id, confirmed_at from mfa_factors where user_id in (select id from verified) for share
        ), factor as (
            select id from factors where confirmed_at is not null
        ), source_back as (
            update login_failure_windows set failed_count = greatest(failed_count - 1, 0)
            where scope = 'source' and key = $11 and exists (select 1 from verified)
            returning 1
        ), cleared as (
            -- Each step waits for the one before (the count of its rows), so that the rows are
            -- locked in admit_login's order (source, backoff, email): two logins of one email
            -- and address at once queue, never deadlock.
            delete from login_attempts
            where email = $2 and source = $10 and exists (select 1 from verified)
              and (select count(*) from source_back) >= 0
            returning 1
        ), email_back as (
            update login_failure_windows set failed_count = greatest(failed_count - 1, 0)
            where scope = 'email' and key = $2 and $12 and exists (select 1 from verified)
              and (select count(*) from cleared) >= 0
        ), rehashed as (
            update users set password_hash = $6
            where id in (select id from verified) and $6::text is not null
        ), new_session as (
            insert into sessions (id, user_id, user_agent, ip)
            select $3, id, $7, $8::text::inet from verified where not exists (select 1 from factor)
            returning id, user_id
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), user_id, id, 'login_succeeded', $8::text::inet, $7,
                   jsonb_build_object('method', 'password', 'aal', 'aal1')
            from new_session
        ), first_token as (
            insert into refresh_tokens (token_hash, session_id, expires_at)
            select $4, id, now() + make_interval(secs => $5) from new_session
        ), pending as (
            insert into mfa_tokens (token_hash, user_id, user_agent, ip, expires_at)
            select $13, id, $7, $8::text::inet, now() + make_interval(secs => $14)
            from verified where exists (select 1 from factor)
        )
        select exists (select 1 from verified) as "opened!",
               (select id from factor) as "factor?: FactorId"
        "#,
        user as UserId,
        email.as_str(),
        session.id as SessionId,
        &session.token.0[..],
        session.ttl.as_secs_f64(),
        rehashed,
        session.user_agent(),
        session.ip(),
        verified,
        attempt.backoff_key(),
        attempt.source_count().0,
        attempt.email_count(),
        &pending.token.0[..],
        pending.ttl.as_secs_f64(),
    )
    .fetch_one(connection))?;
    Ok(match (row.opened, row.factor) {
        (false, _) => Started::No,
        (true, None) => Started::Session,
        (true, Some(factor)) => Started::SecondFactorDue { factor },
    })
}

/// What a proven password opens: the session, or, when the user has a live second factor, the
/// sign-in that waits for it.
#[derive(Clone, Copy)]
pub struct Opening<'a> {
    pub session: NewSession<'a>,
    pub pending: PendingSignIn<'a>,
}

/// A sign-in's `mfa_token`, stored instead of a session when the user has a second factor.
#[derive(Clone, Copy)]
pub struct PendingSignIn<'a> {
    pub token: &'a TokenHash,
    pub ttl: std::time::Duration,
}

/// What a proven password started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Nothing: the password was replaced (or the account deleted) meanwhile.
    No,
    /// The session.
    Session,
    /// A sign-in waiting for the second factor `factor` (the `mfa_token` was stored).
    SecondFactorDue { factor: FactorId },
}

/// Replaces the password hash of `user`, provided it is still `current_hash` (a concurrent
/// change wins once), and in the same statement (after [`lock_user`]: a login in flight either
/// opened its session before, and it is revoked here, or opens none) revokes every other
/// session than `keep` with its tokens, voids a pending reset link, every sign-in waiting
/// for its second factor and every passkey registration begun in another session, and clears the address's failed logins. Returns whether the password
/// changed.
pub async fn change_password(
    db: &mut DbConnection,
    user: UserId,
    current_hash: &str,
    new_hash: &str,
    keep: SessionId,
    device: &Device,
) -> Result<bool, sqlx::Error> {
    locked_then!(
        db,
        |connection| lock_user(&mut *connection, user),
        sqlx::query_scalar!(
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
        ), second_factor_due as (
            -- A sign-in that proved the old password is not finished by its second factor.
            delete from mfa_tokens where user_id in (select id from changed)
        ), ceremonies as (
            -- A passkey registration begun in a session the change ends.
            delete from webauthn_challenges where user_id in (select id from changed) and session_id <> $4
        ), cleared as (
            delete from login_attempts where email in (select email from changed)
            returning 1
        ), ceiling as (
            -- A new password makes earlier guesses moot; after the backoff rows (admit_login's order).
            delete from login_failure_windows
            where scope = 'email' and key in (select email from changed) and (select count(*) from cleared) >= 0
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), id, $4, 'password_changed', $5::text::inet, $6,
                   jsonb_build_object('sessions_revoked', (select count(*) from doomed))
            from changed
        )
        select exists (select 1 from changed) as "changed!"
        "#,
            user as UserId,
            current_hash,
            new_hash,
            keep as SessionId,
            device.ip_text(),
            device.user_agent.as_deref(),
        )
        .fetch_one(&mut *connection)
    )
}

/// Deletes `user`, provided the password hash is still `current_hash`: their sessions, refresh
/// tokens and mail tokens go with them (foreign keys, `on delete cascade`), and their address's
/// failed-login backoff in the same statement. The address's sending limits stay (a new
/// account of the address is still limited; the purge expires them). Returns whether it was
/// deleted.
pub async fn delete_user(
    db: &mut DbConnection,
    user: UserId,
    current_hash: &str,
    session: SessionId,
    device: &Device,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with gone as (
            delete from users where id = $1 and password_hash = $2
            returning id, email
        ), attempts as (
            delete from login_attempts where email in (select email from gone)
        ), recorded as (
            -- Kept after the account: an event has no foreign key to its user.
            insert into security_events (id, user_id, session_id, type, ip, user_agent)
            select gen_random_uuid(), id, $3, 'account_deleted', $4::text::inet, $5 from gone
        )
        select exists (select 1 from gone) as "deleted!"
        "#,
        user as UserId,
        current_hash,
        session as SessionId,
        device.ip_text(),
        device.user_agent.as_deref(),
    )
    .fetch_one(connection))
}
