//! The second factor's statements: one per decision, each race-safe on its own (a row lock and
//! the condition re-checked on the committed row), through `db::one_statement!`.

use serde::Serialize;

use super::seal::Sealed;
use std::time::Duration;

use sqlx::PgConnection;

use crate::db::{DbConnection, locked_then, one_statement};
use crate::domain::{Actor, Assurance, Device, FactorId, SecurityChange, SessionId, User, UserId};
use crate::sessions::store::lock_user;
use crate::tokens::TokenHash;

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

/// The changes to a user's second factor (each mails its owner) allowed in an hour.
pub const CHANGES_PER_HOUR: i64 = 5;

/// What a change to the second factor came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Done,
    /// Nothing to change (no such factor, or no longer pending).
    Missing,
    /// The user made [`CHANGES_PER_HOUR`] changes in the last hour already.
    Capped,
}

/// Whether the user made [`CHANGES_PER_HOUR`] changes to their factor in the last hour: read
/// before a change spends a code on its proof (the change counts again under the user's lock,
/// in [`with_undo_link`]).
pub async fn changes_capped(db: &mut DbConnection, user: UserId) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        select count(*) >= $2 as "capped!" from security_undo_tokens
        where user_id = $1 and created_at > now() - interval '1 hour'
        "#,
        user as UserId,
        CHANGES_PER_HOUR,
    )
    .fetch_one(connection))
}

/// Runs a change to the user's second factor or passkeys in one transaction: the user's row
/// lock first ([`lock_user`]: a login or a verification in flight either opened its session
/// before, and the change sees it, or sees the change), then the change's undo link stored with
/// the factor, the unused recovery codes and the passkeys as they are now (what the link puts
/// back), within [`CHANGES_PER_HOUR`], with the change's security event (its type from
/// `change`, made `by` the caller, with `detail`), then `apply`, the change's own statement (true
/// when it changed something). A capped or missing change is rolled back: it leaves no link and
/// no event.
pub(crate) async fn with_undo_link(
    db: &mut DbConnection,
    user: UserId,
    change: SecurityChange,
    undo: UndoToken<'_>,
    by: Actor<'_>,
    detail: serde_json::Value,
    apply: impl AsyncFnOnce(&mut PgConnection) -> Result<bool, sqlx::Error>,
) -> Result<Change, sqlx::Error> {
    let mut transaction = db.transaction().await?;
    let outcome = async {
        lock_user(&mut transaction, user).await?;
        let stored = sqlx::query_scalar!(
            r#"
            with stored as (
                insert into security_undo_tokens
                    (token_hash, user_id, change, factor_id, factor_key_id, factor_sealed,
                     factor_confirmed_at, factor_last_used_step, code_hashes, passkeys, expires_at)
                select $1, u.id, $3, f.id, f.secret_key_id, f.secret_sealed, f.confirmed_at, f.last_used_step,
                       array(select r.code_hash from recovery_codes as r where r.user_id = u.id and r.used_at is null),
                       coalesce((select jsonb_agg(to_jsonb(p)) from passkeys as p where p.user_id = u.id), '[]'),
                       now() + make_interval(secs => $4)
                from users as u
                left join mfa_factors as f on f.user_id = u.id and f.confirmed_at is not null
                where u.id = $2
                  and (select count(*) from security_undo_tokens
                       where user_id = $2 and created_at > now() - interval '1 hour') < $5
                returning user_id
            ), recorded as (
                insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
                select gen_random_uuid(), user_id, $6, $7, $8::text::inet, $9, $10::text::jsonb from stored
            )
            select 1 as "stored!" from stored
            "#,
            &undo.token.0[..],
            user as UserId,
            change.as_str(),
            undo.ttl.as_secs_f64(),
            CHANGES_PER_HOUR,
            by.session as SessionId,
            change.event_type(),
            by.device.ip_text(),
            by.device.user_agent.as_deref(),
            detail.to_string(),
        )
        .fetch_optional(&mut *transaction)
        .await?;
        if stored.is_none() {
            return Ok(Change::Capped);
        }
        Ok(if apply(&mut transaction).await? { Change::Done } else { Change::Missing })
    }
    .await;
    match outcome {
        Ok(Change::Done) => transaction.end(outcome).await,
        Ok(undone) => transaction.roll_back(undone).await,
        Err(error) => transaction.end(Err(error)).await,
    }
}

/// Makes the pending factor `id` live with the step its first code was for, replaces the
/// user's recovery codes with `code_hashes`, raises `session` to two factors proven now
/// (`["pwd","otp"]`), ends every other session of the user, voids their sign-ins waiting for a
/// factor and clears their backoff of wrong codes, in one statement, with its undo link
/// ([`with_undo_link`]); only while the enrolment is pending, the user has no live factor and the
/// session is live.
pub async fn confirm_factor(
    db: &mut DbConnection,
    user: UserId,
    id: FactorId,
    step: u64,
    code_hashes: &[Vec<u8>],
    by: Actor<'_>,
    undo: UndoToken<'_>,
) -> Result<Change, sqlx::Error> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    let session = by.session;
    let detail = serde_json::json!({ "factor_id": id.0 });
    with_undo_link(
        db,
        user,
        SecurityChange::FactorAdded,
        undo,
        by,
        detail,
        async |connection: &mut PgConnection| {
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
                where source = 'mfa:session:' || $5::text
                  and email in (select email from users where id in (select user_id from confirmed))
            )
            select exists (select 1 from confirmed) as "done!"
            "#,
                id as FactorId,
                user as UserId,
                step,
                code_hashes,
                session as SessionId,
            )
            .fetch_one(connection)
            .await
        },
    )
    .await
}

/// Removes the user's live factor `id` with their recovery codes and voids their sign-ins
/// waiting for it and their passkey registrations begun, in one statement, with its undo link ([`with_undo_link`]).
pub async fn remove_factor(
    db: &mut DbConnection,
    user: UserId,
    id: FactorId,
    by: Actor<'_>,
    undo: UndoToken<'_>,
) -> Result<Change, sqlx::Error> {
    let detail = serde_json::json!({ "factor_id": id.0 });
    with_undo_link(
        db,
        user,
        SecurityChange::FactorRemoved,
        undo,
        by,
        detail,
        async |connection: &mut PgConnection| {
            sqlx::query_scalar!(
                r#"
            with removed as (
                delete from mfa_factors where id = $1 and user_id = $2 and confirmed_at is not null
                returning user_id
            ), codes as (
                delete from recovery_codes where user_id in (select user_id from removed)
            ), voided as (
                delete from mfa_tokens where user_id in (select user_id from removed)
            ), ceremonies as (
                delete from webauthn_challenges where user_id in (select user_id from removed)
            )
            select exists (select 1 from removed) as "done!"
            "#,
                id as FactorId,
                user as UserId,
            )
            .fetch_one(connection)
            .await
        },
    )
    .await
}

/// Replaces the user's recovery codes with `code_hashes` while they have a live factor, in one
/// statement, with its undo link ([`with_undo_link`]).
pub async fn replace_recovery_codes(
    db: &mut DbConnection,
    user: UserId,
    code_hashes: &[Vec<u8>],
    by: Actor<'_>,
    undo: UndoToken<'_>,
) -> Result<Change, sqlx::Error> {
    with_undo_link(
        db,
        user,
        SecurityChange::RecoveryCodesRenewed,
        undo,
        by,
        serde_json::json!({}),
        async |connection: &mut PgConnection| {
            sqlx::query_scalar!(
                r#"
            with owner as (
                select user_id from mfa_factors where user_id = $1 and confirmed_at is not null
            ), old_codes as (
                delete from recovery_codes where user_id in (select user_id from owner)
            ), new_codes as (
                insert into recovery_codes (user_id, code_hash)
                select o.user_id, h.hash from owner as o, unnest($2::bytea[]) as h (hash)
            )
            select exists (select 1 from owner) as "done!"
            "#,
                user as UserId,
                code_hashes,
            )
            .fetch_one(connection)
            .await
        },
    )
    .await
}

/// The "this wasn't me" link a change to the second factor stores (see
/// [`undo_security_change`]): its token's hash and how long it works.
#[derive(Clone, Copy)]
pub struct UndoToken<'a> {
    pub token: &'a TokenHash,
    pub ttl: Duration,
}

/// The password hash an undo leaves: no password matches it (see `passwords::UNUSABLE`), so the
/// next sign-in goes through a reset.
const UNUSABLE_PASSWORD: &str = "!reset-required";

/// Undoes the change a live "this wasn't me" token was mailed for, in one statement after the
/// user's row lock: the token is consumed (once), with every later one of the user (each would
/// put back a state the change's author made); the user's factor, unused recovery codes and
/// passkeys become what they were before the change (a passkey still there keeps its counter),
/// except that every passkey added under a link still live, an earlier one's too, goes (it
/// signs in without the password, which the undo stops: an intruder's passkey added before the
/// change undone would stay otherwise),
/// and a pending enrolment goes; every session ends, every sign-in waiting for a factor and
/// every passkey registration is voided, and the password stops working (whoever made
/// the change proved it: the owner sets a new one through a reset link). Returns the user, or
/// `None` for a dead token.
pub async fn undo_security_change(
    db: &mut DbConnection,
    token: &TokenHash,
) -> Result<Option<UserId>, sqlx::Error> {
    locked_then!(
        db,
        |connection| sqlx::query_scalar!(
            r#"
            select 1 as "locked!" from users
            where id = (select user_id from security_undo_tokens where token_hash = $1)
            for no key update
            "#,
            &token.0[..],
        )
        .fetch_optional(&mut *connection),
        sqlx::query_scalar!(
        r#"
        with consumed as (
            delete from security_undo_tokens where token_hash = $1 and expires_at > now()
            returning *
        ), later as (
            delete from security_undo_tokens as t using consumed as c
            where t.user_id = c.user_id and t.created_at >= c.created_at
        ), intruding as (
            -- Every passkey added under a link still live, this one's or an earlier one's: a
            -- passkey signs in without the password, so none of them outlives an undo.
            select t.passkey_id from security_undo_tokens as t join consumed as c on c.user_id = t.user_id
            where t.passkey_id is not null and t.expires_at > now()
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
        ), pending as (
            delete from mfa_factors as f using consumed as c
            where f.user_id = c.user_id and f.confirmed_at is null
        ), old_codes as (
            delete from recovery_codes where user_id in (select user_id from consumed)
        ), codes as (
            insert into recovery_codes (user_id, code_hash)
            select c.user_id, h.hash from consumed as c, unnest(c.code_hashes) as h (hash)
            on conflict do nothing
        ), password as (
            update users set password_hash = $2 where id in (select user_id from consumed)
        ), ended as (
            update sessions set revoked_at = now()
            where user_id in (select user_id from consumed) and revoked_at is null
            returning id
        ), ended_tokens as (
            update refresh_tokens set revoked_at = now()
            where session_id in (select id from ended) and revoked_at is null
        ), voided as (
            delete from mfa_tokens where user_id in (select user_id from consumed)
        ), ceremonies as (
            delete from webauthn_challenges where user_id in (select user_id from consumed)
        ), passkeys_gone as (
            delete from passkeys as p using consumed as c
            where p.user_id = c.user_id
              and (p.id not in (select (e ->> 'id')::uuid from jsonb_array_elements(c.passkeys) as e)
                   or p.id in (select passkey_id from intruding))
        ), passkeys_back as (
            insert into passkeys
                (id, user_id, credential_id, credential, name, backup_eligible, sign_count, created_at, last_used_at)
            select r.id, r.user_id, r.credential_id, r.credential, r.name, r.backup_eligible, r.sign_count,
                   r.created_at, r.last_used_at
            from consumed as c, jsonb_populate_recordset(null::passkeys, c.passkeys) as r
            where r.id not in (select passkey_id from intruding)
            on conflict do nothing
        )
        select user_id as "user_id: UserId" from consumed
        "#,
        &token.0[..],
        UNUSABLE_PASSWORD,
    )
    .fetch_optional(&mut *connection)
    )
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
pub async fn accept_step(
    db: &mut DbConnection,
    id: FactorId,
    step: u64,
    presenter: Presenter<'_>,
    device: &Device,
) -> Result<bool, sqlx::Error> {
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
            where source = $3 and email in (select email from users where id in (select user_id from accepted))
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), user_id, $4, 'mfa_passed', $5::text::inet, $6,
                   jsonb_build_object('method', 'totp', 'purpose', $7::text)
            from accepted
        )
        select exists (select 1 from accepted) as "accepted!"
        "#,
        id as FactorId,
        step,
        presenter.backoff_key(),
        presenter.session() as Option<SessionId>,
        device.ip_text(),
        device.user_agent.as_deref(),
        presenter.purpose(),
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
    presenter: Presenter<'_>,
    device: &Device,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| {
        sqlx::query_scalar!(
        r#"
        with used as (
            update recovery_codes set used_at = now()
            where user_id = $1 and code_hash = $2 and used_at is null
            returning user_id
        ), cleared as (
            delete from login_attempts
            where source = $3 and email in (select email from users where id in (select user_id from used))
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), $1, $4, 'mfa_passed', $5::text::inet, $6,
                   jsonb_build_object('method', 'recovery_code', 'purpose', $7::text,
                                      'recovery_codes_left',
                                      (select count(*) - 1 from recovery_codes where user_id = $1 and used_at is null))
            where exists (select 1 from used)
        )
        select exists (select 1 from used) as "used!"
        "#,
        user as UserId,
        code_hash,
        presenter.backoff_key(),
        presenter.session() as Option<SessionId>,
        device.ip_text(),
        device.user_agent.as_deref(),
        presenter.purpose(),
    )
    .fetch_one(connection)
    })
}

/// Whose code is being checked: a sign-in's, by its `mfa_token`, or a signed-in caller's.
#[derive(Debug, Clone, Copy)]
pub enum Presenter<'a> {
    Token(&'a TokenHash),
    Session { user: UserId, session: SessionId },
}

impl Presenter<'_> {
    /// The backoff's key (`login_attempts.source`) under the user's address: one per user for
    /// sign-ins (an `mfa_token` is only had with the password), one per session for a signed-in
    /// caller (a stolen session's guesses hold back no one else).
    fn backoff_key(&self) -> String {
        match self {
            Self::Token(_) => "mfa".to_owned(),
            Self::Session { session, .. } => format!("mfa:session:{}", session.0),
        }
    }

    /// The session a proof is made in: none yet for a sign-in's.
    pub fn session(&self) -> Option<SessionId> {
        match self {
            Self::Token(_) => None,
            Self::Session { session, .. } => Some(*session),
        }
    }

    /// What a proof is for, as its security event says: a sign-in, or a signed-in step-up.
    pub fn purpose(&self) -> &'static str {
        match self {
            Self::Token(_) => "sign_in",
            Self::Session { .. } => "step_up",
        }
    }
}

/// What admitting a code decided.
pub enum CodeAdmission {
    /// The `mfa_token` is unknown, expired, used or out of tries (or the caller's user is gone).
    DeadToken,
    /// The backoff holds: try again in `retry_after_seconds` (>= 1).
    Throttled { retry_after_seconds: u64 },
    /// Counted as a wrong code (a right one takes it back): the user, and the factor to check
    /// the code against (`None` when there is none).
    Admitted { user: UserId, factor: Option<StoredFactor> },
}

/// The tries an `mfa_token` allows.
pub const TOKEN_TRIES: i32 = 5;

/// How long an enrolment may stay pending before its confirmation is refused.
pub const ENROLMENT_TTL: Duration = Duration::from_secs(900);

/// Admits a code, in one statement, before it is checked: the `mfa_token` (when it is a
/// sign-in's) must be live with tries left; then the backoff of wrong codes ([`Presenter`]'s
/// key; the login's rule: 5 free, then 1 s doubling up to 15 minutes) admits it and counts it,
/// under the row's lock; then, only when admitted, the token's try is counted (at most
/// [`TOKEN_TRIES`], re-checked under its row's lock). Reads the factor the code is for: the live
/// one, or the enrolment `pending` while it is pending and younger than [`ENROLMENT_TTL`].
pub async fn admit_code(
    db: &mut DbConnection,
    presenter: Presenter<'_>,
    pending: Option<FactorId>,
) -> Result<CodeAdmission, sqlx::Error> {
    let (token, user) = match presenter {
        Presenter::Token(hash) => (Some(&hash.0[..]), None),
        Presenter::Session { user, .. } => (None, Some(user)),
    };
    let row = one_statement!(db, |connection| {
        sqlx::query!(
        r#"
        with target as (
            select id, email from users
            where id = coalesce(
                (select user_id from mfa_tokens where token_hash = $1 and expires_at > now() and failed_count < $4),
                $2)
        ), admitted as (
            insert into login_attempts as a (email, source, failed_count, last_failed_at)
            select email, $5, 1, now() from target
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
        ), tried as (
            update mfa_tokens set failed_count = failed_count + 1
            where token_hash = $1 and expires_at > now() and failed_count < $4
              and exists (select 1 from admitted)
            returning 1
        )
        select t.id as "user?: UserId",
               exists (select 1 from admitted) and ($1::bytea is null or exists (select 1 from tried))
                   as "admitted!",
               exists (select 1 from admitted) as "backoff_admitted!",
               coalesce(ceil(extract(epoch from
                   b.last_failed_at
                   + make_interval(secs => least(900, power(2, least(b.failed_count - 5, 10))))
                   - now()
               )), 1)::int8 as "retry_after!",
               f.id as "factor_id?: FactorId", f.secret_key_id as "secret_key_id?",
               f.secret_sealed as "secret_sealed?", f.last_used_step
        from (select 1) as one
        left join target as t on true
        left join login_attempts as b on b.email = t.email and b.source = $5
        left join mfa_factors as f
               on f.user_id = t.id
              and (case when $3::uuid is null then f.confirmed_at is not null
                        else f.id = $3 and f.confirmed_at is null
                             and f.created_at > now() - make_interval(secs => $6) end)
        "#,
        token,
        user as Option<UserId>,
        pending as Option<FactorId>,
        TOKEN_TRIES,
        presenter.backoff_key(),
        ENROLMENT_TTL.as_secs_f64(),
    )
    .fetch_one(connection)
    })?;
    let Some(user) = row.user else { return Ok(CodeAdmission::DeadToken) };
    if !row.backoff_admitted {
        return Ok(CodeAdmission::Throttled { retry_after_seconds: row.retry_after.max(1) as u64 });
    }
    // The token ran out of tries between the read and the count (concurrent tries).
    if !row.admitted {
        return Ok(CodeAdmission::DeadToken);
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
/// proven now, with its first refresh token, in one statement after the user's row lock (a
/// reset, a password change or a factor's removal either voided the token before, or ends the
/// session after). `None` when the token was no longer live (used, voided, expired): no
/// session.
pub async fn open_session_with_token(
    db: &mut DbConnection,
    user: UserId,
    token: &TokenHash,
    session: NewSessionAt<'_>,
    assurance: &Assurance,
) -> Result<Option<User>, sqlx::Error> {
    let NewSessionAt { id: session, refresh, ttl } = session;
    locked_then!(
        db,
        |connection| lock_user(&mut *connection, user),
        sqlx::query_as!(
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
        ), recorded as (
            -- From the device the sign-in began on, as the session's own.
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), c.user_id, $2, 'login_succeeded', c.ip, c.user_agent,
                   jsonb_build_object('method', 'password', 'aal', $5::text, 'amr', to_jsonb($6::text[]))
            from consumed as c
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
        .fetch_optional(&mut *connection)
    )
}

/// A session a verified second factor opens: its id, its first refresh token's hash and how
/// long that token lives.
#[derive(Clone, Copy)]
pub struct NewSessionAt<'a> {
    pub id: SessionId,
    pub refresh: &'a TokenHash,
    pub ttl: Duration,
}
