//! The second factor's statements: one per decision, each race-safe on its own (a row lock and
//! the condition re-checked on the committed row), through `db::one_statement!`.

use serde::Serialize;
use uuid::Uuid;

use super::seal::Sealed;
use crate::db::{DbConnection, one_statement};
use crate::domain::UserId;

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

/// Makes the pending factor `id` live with the step its first code was for, and replaces the
/// user's recovery codes with `code_hashes`, in one statement; only while it is pending and the
/// user has no live factor (of two confirmations at once, one). Returns whether it did.
pub async fn confirm_factor(
    db: &mut DbConnection,
    user: UserId,
    id: FactorId,
    step: u64,
    code_hashes: &[Vec<u8>],
) -> Result<bool, sqlx::Error> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with confirmed as (
            update mfa_factors set confirmed_at = now(), last_used_step = $3, last_used_at = now()
            where id = $1 and user_id = $2 and confirmed_at is null
              and not exists (select 1 from mfa_factors where user_id = $2 and confirmed_at is not null)
            returning user_id
        ), old_codes as (
            delete from recovery_codes where user_id in (select user_id from confirmed)
        ), new_codes as (
            insert into recovery_codes (user_id, code_hash)
            select c.user_id, h.hash from confirmed as c, unnest($4::bytea[]) as h (hash)
        )
        select exists (select 1 from confirmed) as "confirmed!"
        "#,
        id as FactorId,
        user as UserId,
        step,
        code_hashes,
    )
    .fetch_one(connection))
}

/// Accepts a code of the live factor `id` for `step`: advances its last used step, only past the
/// one stored (of many requests with one code at once, one). Returns whether it did.
pub async fn accept_step(db: &mut DbConnection, id: FactorId, step: u64) -> Result<bool, sqlx::Error> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    let accepted = one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        update mfa_factors set last_used_step = $2, last_used_at = now()
        where id = $1 and confirmed_at is not null and (last_used_step is null or last_used_step < $2)
        returning id as "id: FactorId"
        "#,
        id as FactorId,
        step,
    )
    .fetch_optional(connection))?;
    Ok(accepted.is_some())
}

/// Spends one of `user`'s recovery codes, by its hash: once (of many requests with one code at
/// once, one). Returns whether it was an unused code of theirs.
pub async fn use_recovery_code(
    db: &mut DbConnection,
    user: UserId,
    code_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let used = one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        update recovery_codes set used_at = now()
        where user_id = $1 and code_hash = $2 and used_at is null
        returning 1 as "one!"
        "#,
        user as UserId,
        code_hash,
    )
    .fetch_optional(connection))?;
    Ok(used.is_some())
}
