//! The second factor's statements: one per decision, each race-safe on its own (a row lock and
//! the condition re-checked on the committed row), through `db::one_statement!`.

use serde::Serialize;
use uuid::Uuid;

use super::seal::Sealed;
use std::time::Duration;

use crate::db::{DbConnection, one_statement};
use crate::domain::{Assurance, SessionId, User, UserId};
use crate::tokens::TokenHash;

/// A TOTP factor's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct FactorId(pub Uuid);

impl FactorId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// What a factor's sealed secret is bound to (the associated data): its user and its id.
    pub fn seal_context(self, user: UserId) -> Vec<u8> {
        [user.0.as_bytes().as_slice(), self.0.as_bytes().as_slice()].concat()
    }
}

/// A factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFactor {
    pub id: FactorId,
    pub sealed: Sealed,
    /// The last step whose code was accepted; `None` before the first.
    pub last_used_step: Option<u64>,
}

/// Stores a new pending factor for `user`, replacing any enrolment of theirs still pending (the
/// latest wins, also among concurrent ones). A live factor is left alone.
pub async fn replace_pending_factor(
    db: &mut DbConnection,
    user: UserId,
    id: FactorId,
    sealed: &Sealed,
) -> Result<(), sqlx::Error> {
    one_statement!(db, |connection| sqlx::query!(
        r#"
        insert into mfa_factors as f (id, user_id, secret_key_id, secret_sealed)
        values ($1, $2, $3, $4)
        on conflict (user_id) where confirmed_at is null do update
        set id = excluded.id, secret_key_id = excluded.secret_key_id,
            secret_sealed = excluded.secret_sealed, created_at = now()
        "#,
        id as FactorId,
        user as UserId,
        sealed.key_id,
        &sealed.bytes[..],
    )
    .execute(connection))?;
    Ok(())
}

/// A factor's row, as its lookups read it.
struct FactorRow {
    id: FactorId,
    secret_key_id: String,
    secret_sealed: Vec<u8>,
    last_used_step: Option<i64>,
}

impl From<FactorRow> for StoredFactor {
    fn from(row: FactorRow) -> Self {
        Self {
            id: row.id,
            sealed: Sealed { key_id: row.secret_key_id, bytes: row.secret_sealed },
            last_used_step: row.last_used_step.and_then(|step| u64::try_from(step).ok()),
        }
    }
}

/// The user's live factor.
pub async fn live_factor(db: &mut DbConnection, user: UserId) -> Result<Option<StoredFactor>, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query_as!(
        FactorRow,
        r#"
        select id as "id: FactorId", secret_key_id, secret_sealed, last_used_step
        from mfa_factors
        where user_id = $1 and confirmed_at is not null
        "#,
        user as UserId,
    )
    .fetch_optional(connection))?;
    Ok(row.map(StoredFactor::from))
}

/// The user's enrolment `id`, while it is pending.
pub async fn pending_factor(
    db: &mut DbConnection,
    user: UserId,
    id: FactorId,
) -> Result<Option<StoredFactor>, sqlx::Error> {
    let row = one_statement!(db, |connection| sqlx::query_as!(
        FactorRow,
        r#"
        select id as "id: FactorId", secret_key_id, secret_sealed, last_used_step
        from mfa_factors
        where id = $1 and user_id = $2 and confirmed_at is null
        "#,
        id as FactorId,
        user as UserId,
    )
    .fetch_optional(connection))?;
    Ok(row.map(StoredFactor::from))
}

/// Makes the pending factor `id` live with the step its first code was for, replaces the
/// user's recovery codes with `code_hashes`, raises `session` to two factors proven now
/// (`["pwd","otp"]`), ends every other session of the user, voids their sign-ins waiting for a
/// factor and clears their backoff of wrong codes, in one statement; only while the enrolment
/// is pending, the user has no live factor (of two confirmations at once, one) and the session
/// is live. Returns whether it did.
pub async fn confirm_factor(
    db: &mut DbConnection,
    user: UserId,
    id: FactorId,
    step: u64,
    code_hashes: &[Vec<u8>],
    session: SessionId,
    undo: UndoToken<'_>,
) -> Result<bool, sqlx::Error> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    one_statement!(db, |connection| {
        sqlx::query_scalar!(
        r#"
        with live_session as (
            select id from sessions where id = $5 and user_id = $2 and revoked_at is null
        ), confirmed as (
            update mfa_factors set confirmed_at = now(), last_used_step = $3, last_used_at = now()
            where id = $1 and user_id = $2 and confirmed_at is null
              and exists (select 1 from live_session)
              and not exists (select 1 from mfa_factors where user_id = $2 and confirmed_at is not null)
            returning user_id
        ), old_codes as (
            delete from recovery_codes where user_id in (select user_id from confirmed)
        ), new_codes as (
            insert into recovery_codes (user_id, code_hash)
            select c.user_id, h.hash from confirmed as c, unnest($4::bytea[]) as h (hash)
        ), raised as (
            update sessions
            set aal = 'aal2', amr = '{pwd,otp}', authenticated_at = now(), second_factor_at = now()
            where id = $5 and exists (select 1 from confirmed)
        ), others as (
            update sessions set revoked_at = now()
            where user_id in (select user_id from confirmed) and id <> $5 and revoked_at is null
            returning id
        ), others_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from others) and revoked_at is null
        ), voided as (
            delete from mfa_tokens where user_id in (select user_id from confirmed)
        ), cleared as (
            delete from login_attempts
            where source = 'mfa' and email in (select email from users where id in (select user_id from confirmed))
        ), undo as (
            insert into security_undo_tokens
                (token_hash, user_id, change, factor_id, factor_key_id, factor_sealed,
                 factor_confirmed_at, factor_last_used_step, code_hashes, expires_at)
            select $6, c.user_id, 'factor_added', f.id, f.secret_key_id, f.secret_sealed,
                   f.confirmed_at, f.last_used_step,
                   array(select r.code_hash from recovery_codes as r
                         where r.user_id = c.user_id and r.used_at is null),
                   now() + make_interval(secs => $7)
            from confirmed as c
            left join mfa_factors as f on f.user_id = c.user_id and f.confirmed_at is not null
        )
        select exists (select 1 from confirmed) as "confirmed!"
        "#,
        id as FactorId,
        user as UserId,
        step,
        code_hashes,
        session as SessionId,
        &undo.token.0[..],
        undo.ttl.as_secs_f64(),
    )
    .fetch_one(connection)
    })
}

/// Removes the user's live factor `id` with their recovery codes, and voids their sign-ins
/// waiting for it, in one statement. Returns whether there was such a factor.
pub async fn remove_factor(
    db: &mut DbConnection,
    user: UserId,
    id: FactorId,
    undo: UndoToken<'_>,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with removed as (
            delete from mfa_factors where id = $1 and user_id = $2 and confirmed_at is not null
            returning user_id
        ), codes as (
            delete from recovery_codes where user_id in (select user_id from removed)
        ), voided as (
            delete from mfa_tokens where user_id in (select user_id from removed)
        ), undo as (
            insert into security_undo_tokens
                (token_hash, user_id, change, factor_id, factor_key_id, factor_sealed,
                 factor_confirmed_at, factor_last_used_step, code_hashes, expires_at)
            select $3, c.user_id, 'factor_removed', f.id, f.secret_key_id, f.secret_sealed,
                   f.confirmed_at, f.last_used_step,
                   array(select r.code_hash from recovery_codes as r
                         where r.user_id = c.user_id and r.used_at is null),
                   now() + make_interval(secs => $4)
            from removed as c
            left join mfa_factors as f on f.user_id = c.user_id and f.confirmed_at is not null
        )
        select exists (select 1 from removed) as "removed!"
        "#,
        id as FactorId,
        user as UserId,
        &undo.token.0[..],
        undo.ttl.as_secs_f64(),
    )
    .fetch_one(connection))
}

/// Replaces the user's recovery codes with `code_hashes`, while they have a live factor.
/// Returns whether it did.
pub async fn replace_recovery_codes(
    db: &mut DbConnection,
    user: UserId,
    code_hashes: &[Vec<u8>],
    undo: UndoToken<'_>,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with owner as (
            select user_id from mfa_factors where user_id = $1 and confirmed_at is not null
        ), old_codes as (
            delete from recovery_codes where user_id in (select user_id from owner)
        ), new_codes as (
            insert into recovery_codes (user_id, code_hash)
            select o.user_id, h.hash from owner as o, unnest($2::bytea[]) as h (hash)
        ), undo as (
            insert into security_undo_tokens
                (token_hash, user_id, change, factor_id, factor_key_id, factor_sealed,
                 factor_confirmed_at, factor_last_used_step, code_hashes, expires_at)
            select $3, c.user_id, 'recovery_codes_renewed', f.id, f.secret_key_id, f.secret_sealed,
                   f.confirmed_at, f.last_used_step,
                   array(select r.code_hash from recovery_codes as r
                         where r.user_id = c.user_id and r.used_at is null),
                   now() + make_interval(secs => $4)
            from owner as c
            left join mfa_factors as f on f.user_id = c.user_id and f.confirmed_at is not null
        )
        select exists (select 1 from owner) as "replaced!"
        "#,
        user as UserId,
        code_hashes,
        &undo.token.0[..],
        undo.ttl.as_secs_f64(),
    )
    .fetch_one(connection))
}

/// The "this wasn't me" link a change to the second factor stores (see
/// [`undo_security_change`]): its token's hash and how long it works.
#[derive(Clone, Copy)]
pub struct UndoToken<'a> {
    pub token: &'a TokenHash,
    pub ttl: Duration,
}

/// Undoes the change a live "this wasn't me" token was mailed for, in one statement: the
/// token is consumed (once), with every later one of the user (each would put back a state the
/// attacker made); the user's factor and unused recovery codes become what they were before the
/// change; every session of theirs ends and every sign-in waiting for a factor is voided.
/// Returns the user, or `None` for a dead token.
pub async fn undo_security_change(
    db: &mut DbConnection,
    token: &TokenHash,
) -> Result<Option<UserId>, sqlx::Error> {
    one_statement!(db, |connection| {
        sqlx::query_scalar!(
        r#"
        with consumed as (
            delete from security_undo_tokens where token_hash = $1 and expires_at > now()
            returning *
        ), later as (
            delete from security_undo_tokens as t using consumed as c
            where t.user_id = c.user_id and t.created_at >= c.created_at
        ), replaced as (
            update mfa_factors as f
            set id = c.factor_id, secret_key_id = c.factor_key_id, secret_sealed = c.factor_sealed,
                created_at = c.factor_confirmed_at, confirmed_at = c.factor_confirmed_at,
                last_used_step = c.factor_last_used_step
            from consumed as c
            where f.user_id = c.user_id and f.confirmed_at is not null and c.factor_id is not null
        ), restored as (
            insert into mfa_factors (id, user_id, secret_key_id, secret_sealed, created_at, confirmed_at, last_used_step)
            select c.factor_id, c.user_id, c.factor_key_id, c.factor_sealed, c.factor_confirmed_at,
                   c.factor_confirmed_at, c.factor_last_used_step
            from consumed as c
            where c.factor_id is not null
              and not exists (select 1 from mfa_factors as f where f.user_id = c.user_id and f.confirmed_at is not null)
        ), removed as (
            delete from mfa_factors as f using consumed as c
            where f.user_id = c.user_id and f.confirmed_at is not null and c.factor_id is null
        ), old_codes as (
            delete from recovery_codes where user_id in (select user_id from consumed)
        ), codes as (
            insert into recovery_codes (user_id, code_hash)
            select c.user_id, h.hash from consumed as c, unnest(c.code_hashes) as h (hash)
            on conflict do nothing
        ), ended as (
            update sessions set revoked_at = now()
            where user_id in (select user_id from consumed) and revoked_at is null
            returning id
        ), ended_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from ended) and revoked_at is null
        ), voided as (
            delete from mfa_tokens where user_id in (select user_id from consumed)
        )
        select user_id as "user_id: UserId" from consumed
        "#,
        &token.0[..],
    )
    .fetch_optional(connection)
    })
}

/// A live factor as `me` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FactorView {
    pub id: FactorId,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<time::OffsetDateTime>,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i64,
}

/// The user's live factors (one TOTP factor at most).
pub async fn list_factors(db: &mut DbConnection, user: UserId) -> Result<Vec<FactorView>, sqlx::Error> {
    let rows = one_statement!(db, |connection| sqlx::query!(
        r#"
        select f.id as "id: FactorId", f.confirmed_at as "created_at!", f.last_used_at,
               (select count(*) from recovery_codes as r where r.user_id = f.user_id and r.used_at is null)
                   as "recovery_codes_left!"
        from mfa_factors as f
        where f.user_id = $1 and f.confirmed_at is not null
        "#,
        user as UserId,
    )
    .fetch_all(connection))?;
    Ok(rows
        .into_iter()
        .map(|row| FactorView {
            id: row.id,
            kind: "totp",
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            recovery_codes_left: row.recovery_codes_left,
        })
        .collect())
}

/// Accepts a code of the live factor `id` for `step`: advances its last used step, only past the
/// one stored (of many requests with one code at once, one), and clears the user's backoff of
/// wrong codes. Returns whether it did.
pub async fn accept_step(db: &mut DbConnection, id: FactorId, step: u64) -> Result<bool, sqlx::Error> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    one_statement!(db, |connection| {
        sqlx::query_scalar!(
        r#"
        with accepted as (
            update mfa_factors set last_used_step = $2, last_used_at = now()
            where id = $1 and confirmed_at is not null and (last_used_step is null or last_used_step < $2)
            returning user_id
        ), cleared as (
            delete from login_attempts
            where source = 'mfa' and email in (select email from users where id in (select user_id from accepted))
        )
        select exists (select 1 from accepted) as "accepted!"
        "#,
        id as FactorId,
        step,
    )
    .fetch_one(connection)
    })
}

/// Spends one of `user`'s recovery codes, by its hash: once (of many requests with one code at
/// once, one), and clears the user's backoff of wrong codes. Returns whether it was an unused
/// code of theirs.
pub async fn use_recovery_code(
    db: &mut DbConnection,
    user: UserId,
    code_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with used as (
            update recovery_codes set used_at = now()
            where user_id = $1 and code_hash = $2 and used_at is null
            returning user_id
        ), cleared as (
            delete from login_attempts
            where source = 'mfa' and email in (select email from users where id in (select user_id from used))
        )
        select exists (select 1 from used) as "used!"
        "#,
        user as UserId,
        code_hash,
    )
    .fetch_one(connection))
}

/// Whose code is being checked: a sign-in's, by its `mfa_token`, or a signed-in user's.
#[derive(Debug, Clone, Copy)]
pub enum Presenter<'a> {
    Token(&'a TokenHash),
    User(UserId),
}

/// What admitting a code decided.
pub enum CodeAdmission {
    /// The `mfa_token` is unknown, expired, used or out of tries.
    DeadToken,
    /// The user's backoff holds: try again in `retry_after_seconds` (>= 1).
    Throttled { retry_after_seconds: u64 },
    /// Counted as a wrong code (a right one takes it back): the user, and the factor to check
    /// the code against (`None` when there is none).
    Admitted { user: UserId, factor: Option<StoredFactor> },
}

/// The tries an `mfa_token` allows.
pub const TOKEN_TRIES: i32 = 5;

/// Admits a code, in one statement, before it is checked: the `mfa_token` (when it is a
/// sign-in's) must be live, and has a try counted, at most [`TOKEN_TRIES`]; then the user's
/// backoff of wrong codes (`login_attempts` under the source `mfa`, the login's rule: 5 free,
/// then 1 s doubling up to 15 minutes) admits it and counts it, under the row's lock. Reads the
/// factor the code is for: the live one, or the pending enrolment `pending`.
pub async fn admit_code(
    db: &mut DbConnection,
    presenter: Presenter<'_>,
    pending: Option<FactorId>,
) -> Result<CodeAdmission, sqlx::Error> {
    let (token, user) = match presenter {
        Presenter::Token(hash) => (Some(&hash.0[..]), None),
        Presenter::User(user) => (None, Some(user)),
    };
    let row = one_statement!(db, |connection| sqlx::query!(
        r#"
        with token as (
            update mfa_tokens set failed_count = failed_count + 1
            where token_hash = $1 and expires_at > now() and failed_count < $4
            returning user_id
        ), target as (
            select id, email from users where id = coalesce((select user_id from token), $2)
        ), admitted as (
            insert into login_attempts as a (email, source, failed_count, last_failed_at)
            select email, 'mfa', 1, now() from target
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
            returning 1
        )
        select t.id as "user?: UserId",
               exists (select 1 from admitted) as "admitted!",
               coalesce(ceil(extract(epoch from
                   b.last_failed_at
                   + make_interval(secs => least(900, power(2, least(b.failed_count - 5, 10))))
                   - now()
               )), 1)::int8 as "retry_after!",
               f.id as "factor_id?: FactorId", f.secret_key_id as "secret_key_id?",
               f.secret_sealed as "secret_sealed?", f.last_used_step
        from (select 1) as one
        left join target as t on true
        left join login_attempts as b on b.email = t.email and b.source = 'mfa'
        left join mfa_factors as f
               on f.user_id = t.id
              and (case when $3::uuid is null then f.confirmed_at is not null
                        else f.id = $3 and f.confirmed_at is null end)
        "#,
        token,
        user as Option<UserId>,
        pending as Option<FactorId>,
        TOKEN_TRIES,
    )
    .fetch_one(connection))?;
    let Some(user) = row.user else { return Ok(CodeAdmission::DeadToken) };
    if !row.admitted {
        return Ok(CodeAdmission::Throttled { retry_after_seconds: row.retry_after.max(1) as u64 });
    }
    let factor = match (row.factor_id, row.secret_key_id, row.secret_sealed) {
        (Some(id), Some(secret_key_id), Some(secret_sealed)) => Some(StoredFactor::from(FactorRow {
            id,
            secret_key_id,
            secret_sealed,
            last_used_step: row.last_used_step,
        })),
        _ => None,
    };
    Ok(CodeAdmission::Admitted { user, factor })
}

/// After the second factor of a sign-in was accepted: consumes its `mfa_token` (once: of many
/// requests with one token at once, one) and opens the session it was for, at `assurance`,
/// proven now, with its first refresh token, in one statement. `None` when the token was no
/// longer live (used, voided, expired): no session.
pub async fn open_session_with_token(
    db: &mut DbConnection,
    token: &TokenHash,
    session: SessionId,
    refresh: &TokenHash,
    ttl: Duration,
    assurance: &Assurance,
) -> Result<Option<User>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        User,
        r#"
        with consumed as (
            delete from mfa_tokens where token_hash = $1 and expires_at > now()
            returning user_id, user_agent, ip
        ), new_session as (
            insert into sessions (id, user_id, user_agent, ip, aal, amr, second_factor_at)
            select $2, user_id, user_agent, ip, $5, $6, now() from consumed
            returning id
        ), first_token as (
            insert into refresh_tokens (token_hash, session_id, expires_at)
            select $3, id, now() + make_interval(secs => $4) from new_session
        )
        select u.id as "id!: UserId", u.email as "email!", u.created_at as "created_at!",
               u.email_verified_at
        from users as u join consumed as c on c.user_id = u.id
        "#,
        &token.0[..],
        session as SessionId,
        &refresh.0[..],
        ttl.as_secs_f64(),
        assurance.aal.as_str(),
        &assurance.amr,
    )
    .fetch_optional(connection))
}
