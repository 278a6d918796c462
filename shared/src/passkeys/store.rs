//! The passkeys' statements: one per decision, each race-safe on its own, through
//! `db::one_statement!` (a registration's state is taken once by `delete ... returning`; a
//! sign-in ceremony, sealed in its id, is spent once by the statement that records its use).

use std::time::Duration;

use serde::Serialize;
use sqlx::PgConnection;

use crate::db::{DbConnection, locked_then, one_statement};
use crate::domain::{Actor, Assurance, Device, PasskeyId, SecurityChange, SessionId, User, UserId};
use crate::mfa::store::{Change, UndoToken, with_undo_link};
use crate::sessions::store::{NewSession, lock_user};
use crate::tokens::TokenHash;

/// The passkeys an account may hold.
pub const MAX_PASSKEYS: i64 = 10;

/// A ceremony about to be stored: its id's hash, its state (JSON) and how long it lives.
#[derive(Clone, Copy)]
pub struct NewCeremony<'a> {
    pub challenge: &'a TokenHash,
    pub state: &'a str,
    pub ttl: Duration,
}

/// Stores a registration ceremony for the caller's live `session`, replacing the one it began
/// before (one at a time per session). Returns whether the session was live.
pub async fn begin_registration(
    db: &mut DbConnection,
    user: UserId,
    session: SessionId,
    ceremony: NewCeremony<'_>,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| {
        sqlx::query_scalar!(
            r#"
        with stored as (
            insert into webauthn_challenges as c (challenge_hash, user_id, session_id, state, expires_at)
            select $3, s.user_id, s.id, $4::text::jsonb, now() + make_interval(secs => $5)
            from sessions as s where s.id = $2 and s.user_id = $1 and s.revoked_at is null
            on conflict on constraint webauthn_challenges_session_id_key do update
            set challenge_hash = excluded.challenge_hash, state = excluded.state, created_at = now(),
                expires_at = excluded.expires_at
            returning 1
        )
        select exists (select 1 from stored) as "stored!"
        "#,
            user as UserId,
            session as SessionId,
            &ceremony.challenge.0[..],
            ceremony.state,
            ceremony.ttl.as_secs_f64(),
        )
        .fetch_one(connection)
    })
}

/// Takes the registration ceremony `challenge` of `user`'s `session` (once: of many requests
/// with one id at once, one), while it is live. Returns its state.
pub async fn take_registration(
    db: &mut DbConnection,
    challenge: &TokenHash,
    user: UserId,
    session: SessionId,
) -> Result<Option<String>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        delete from webauthn_challenges
        where challenge_hash = $1 and user_id = $2 and session_id = $3 and expires_at > now()
        returning state::text as "state!"
        "#,
        &challenge.0[..],
        user as UserId,
        session as SessionId,
    )
    .fetch_optional(connection))
}

/// The credential ids of the user's passkeys (a registration excludes them: an authenticator
/// holding one refuses to make another).
pub async fn credential_ids(db: &mut DbConnection, user: UserId) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        "select credential_id from passkeys where user_id = $1 order by created_at",
        user as UserId,
    )
    .fetch_all(connection))
}

/// A new passkey, as a registration made it.
pub struct NewPasskey<'a> {
    pub id: PasskeyId,
    pub credential_id: &'a [u8],
    /// The credential as webauthn-rs serialises it.
    pub credential: &'a str,
    pub name: &'a str,
    pub backup_eligible: bool,
    pub sign_count: u32,
}

/// Adds the passkey to `user`'s while `session` is live, their credential is not registered to
/// anyone and they hold fewer than [`MAX_PASSKEYS`], in one statement, with its undo link
/// (`mfa::store::with_undo_link`). `Missing` when one of those failed ([`why_not_added`] says
/// which).
pub async fn add_passkey(
    db: &mut DbConnection,
    user: UserId,
    by: Actor<'_>,
    passkey: NewPasskey<'_>,
    undo: UndoToken<'_>,
) -> Result<Change, sqlx::Error> {
    let session = by.session;
    let detail = serde_json::json!({ "passkey_id": passkey.id.0, "name": passkey.name });
    with_undo_link(db, user, SecurityChange::PasskeyAdded, undo, by, detail, async |connection: &mut PgConnection| {
        sqlx::query_scalar!(
            r#"
            with added as (
                insert into passkeys (id, user_id, credential_id, credential, name, backup_eligible, sign_count)
                select $1, $2, $4, $5::text::jsonb, $6, $7, $8
                where exists (select 1 from sessions where id = $3 and user_id = $2 and revoked_at is null)
                  and (select count(*) from passkeys where user_id = $2) < $9
                on conflict on constraint passkeys_credential_id_key do nothing
                returning id
            ), named as (
                -- The link names the passkey it would take back.
                update security_undo_tokens set passkey_id = (select id from added)
                where token_hash = $10 and exists (select 1 from added)
            )
            select exists (select 1 from added) as "added!"
            "#,
            passkey.id as PasskeyId,
            user as UserId,
            session as SessionId,
            passkey.credential_id,
            passkey.credential,
            passkey.name,
            passkey.backup_eligible,
            i64::from(passkey.sign_count),
            MAX_PASSKEYS,
            &undo.token.0[..],
        )
        .fetch_one(connection)
        .await
    })
    .await
}

/// Why [`add_passkey`] added nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAdded {
    SessionEnded,
    CredentialTaken,
    TooMany,
}

/// Reads why [`add_passkey`] added nothing (after it: the answer only names the refusal).
pub async fn why_not_added(
    db: &mut DbConnection,
    user: UserId,
    session: SessionId,
    credential_id: &[u8],
) -> Result<NotAdded, sqlx::Error> {
    let row = one_statement!(db, |connection| {
        sqlx::query!(
        r#"
        select exists (select 1 from sessions where id = $2 and user_id = $1 and revoked_at is null) as "live!",
               exists (select 1 from passkeys where credential_id = $3) as "taken!"
        "#,
        user as UserId,
        session as SessionId,
        credential_id,
    )
    .fetch_one(connection)
    })?;
    Ok(match (row.live, row.taken) {
        (false, _) => NotAdded::SessionEnded,
        (true, true) => NotAdded::CredentialTaken,
        (true, false) => NotAdded::TooMany,
    })
}

/// Removes the user's passkey `id`, in one statement, with its undo link.
pub async fn remove_passkey(
    db: &mut DbConnection,
    user: UserId,
    id: PasskeyId,
    by: Actor<'_>,
    undo: UndoToken<'_>,
) -> Result<Change, sqlx::Error> {
    let detail = serde_json::json!({ "passkey_id": id.0 });
    with_undo_link(
        db,
        user,
        SecurityChange::PasskeyRemoved,
        undo,
        by,
        detail,
        async |connection: &mut PgConnection| {
            sqlx::query_scalar!(
                r#"
            with removed as (
                delete from passkeys where id = $1 and user_id = $2 returning 1
            )
            select exists (select 1 from removed) as "removed!"
            "#,
                id as PasskeyId,
                user as UserId,
            )
            .fetch_one(connection)
            .await
        },
    )
    .await
}

/// A passkey as a sign-in reads it.
pub struct StoredPasskey {
    pub id: PasskeyId,
    /// The credential as webauthn-rs serialises it.
    pub credential: String,
    /// Whether an operator disabled its user.
    pub disabled: bool,
}

/// The passkey of `user` with this credential id.
pub async fn find_passkey(
    db: &mut DbConnection,
    user: UserId,
    credential_id: &[u8],
) -> Result<Option<StoredPasskey>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        StoredPasskey,
        r#"
        select p.id as "id: PasskeyId", p.credential::text as "credential!",
               u.disabled_at is not null as "disabled!"
        from passkeys as p join users as u on u.id = p.user_id
        where p.user_id = $1 and p.credential_id = $2
        "#,
        user as UserId,
        credential_id,
    )
    .fetch_optional(connection))
}

/// A passkey's verified use: the sign-in ceremony it answered (the hash of its sealed bytes,
/// and when it expires), the credential as it now is (its counter and backup state updated) and the counter
/// the authenticator reported.
#[derive(Clone, Copy)]
pub struct Use<'a> {
    pub ceremony: &'a TokenHash,
    pub ceremony_expires_at: time::OffsetDateTime,
    pub id: PasskeyId,
    pub credential: &'a str,
    pub sign_count: u32,
}

/// Records a use of the passkey for a step-up, in one statement: spends the ceremony (once: of
/// many requests with one, one; only while it is live by the database's clock, which the purge
/// of spent ceremonies reads), then stores the updated credential, only while the passkey
/// exists and its counter moves forward past the stored one (or both stay zero, an
/// authenticator without a counter), so that of two uses reporting one counter, one counts.
/// Returns whether it did.
pub async fn use_passkey(db: &mut DbConnection, user: UserId, used: Use<'_>) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with spent as (
            -- Live by the database's clock too, the one the purge of spent ceremonies reads.
            insert into webauthn_used_challenges (challenge_hash, expires_at)
            select $5, $6 where $6 > now()
            on conflict do nothing
            returning 1
        ), used as (
            update passkeys set credential = $3::text::jsonb, sign_count = $4, last_used_at = now()
            where id = $1 and user_id = $2 and (sign_count < $4 or ($4 = 0 and sign_count = 0))
              and exists (select 1 from spent)
            returning 1
        )
        select exists (select 1 from used) as "used!"
        "#,
        used.id as PasskeyId,
        user as UserId,
        used.credential,
        i64::from(used.sign_count),
        &used.ceremony.0[..],
        used.ceremony_expires_at,
    )
    .fetch_one(connection))
}

/// Opens a session with a verified passkey, in one statement after the user's row lock (a
/// removal of the passkey, a reset or a deletion either happened before, and nothing opens, or
/// sees the session): records the use as [`use_passkey`] does (the ceremony spent once), and
/// only then opens the session at `assurance`, proven now, with its first refresh token. `None`
/// when the ceremony was spent already, the passkey is gone or its counter did not move forward.
pub async fn open_session_with_passkey(
    db: &mut DbConnection,
    user: UserId,
    used: Use<'_>,
    session: NewSession<'_>,
    assurance: &Assurance,
) -> Result<Option<User>, sqlx::Error> {
    let user_agent = session.user_agent();
    let ip = session.ip();
    locked_then!(
        db,
        |connection| lock_user(&mut *connection, user),
        sqlx::query_as!(
            User,
            r#"
        with spent as (
            insert into webauthn_used_challenges (challenge_hash, expires_at)
            select $12, $13 where $13 > now()
            on conflict do nothing
            returning 1
        ), used as (
            update passkeys set credential = $3::text::jsonb, sign_count = $4, last_used_at = now()
            where id = $1 and user_id = $2 and (sign_count < $4 or ($4 = 0 and sign_count = 0))
              and exists (select 1 from spent)
              and exists (select 1 from users where id = $2 and disabled_at is null)
            returning user_id
        ), new_session as (
            insert into sessions (id, user_id, user_agent, ip, aal, amr, second_factor_at)
            select $5, user_id, $6, $7::text::inet, $8, $9, now() from used
            returning id
        ), first_token as (
            insert into refresh_tokens (token_hash, session_id, expires_at)
            select $10, id, now() + make_interval(secs => $11) from new_session
        ), recorded as (
            insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
            select gen_random_uuid(), user_id, $5, 'login_succeeded', $7::text::inet, $6,
                   jsonb_build_object('method', 'passkey', 'passkey_id', $1::uuid, 'aal', $8::text)
            from used
        )
        select u.id as "id!: UserId", u.email as "email!", u.created_at as "created_at!",
               u.email_verified_at
        from users as u join used on used.user_id = u.id
        "#,
            used.id as PasskeyId,
            user as UserId,
            used.credential,
            i64::from(used.sign_count),
            session.id as SessionId,
            user_agent,
            ip,
            assurance.aal.as_str(),
            &assurance.amr,
            &session.token.0[..],
            session.ttl.as_secs_f64(),
            &used.ceremony.0[..],
            used.ceremony_expires_at,
        )
        .fetch_optional(&mut *connection)
    )
}

/// Refuses a verified passkey sign-in of a disabled account: spends its ceremony (once, while
/// live, as a sign-in would) and records `login_failed` with `detail`, in one statement. False
/// when the ceremony was spent already (a replay of the same answer records nothing more).
pub async fn refuse_sign_in(
    db: &mut DbConnection,
    user: UserId,
    ceremony: &TokenHash,
    ceremony_expires_at: time::OffsetDateTime,
    device: &Device,
    detail: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_scalar!(
        r#"
        with spent as (
            insert into webauthn_used_challenges (challenge_hash, expires_at)
            select $2, $3 where $3 > now()
            on conflict do nothing
            returning 1
        ), recorded as (
            insert into security_events (id, user_id, type, ip, user_agent, detail)
            select gen_random_uuid(), id, 'login_failed', $4::text::inet, $5, $6::text::jsonb
            from users where id = $1 and exists (select 1 from spent)
        )
        select exists (select 1 from spent) as "spent!"
        "#,
        user as UserId,
        &ceremony.0[..],
        ceremony_expires_at,
        device.ip_text(),
        device.user_agent.as_deref(),
        detail.to_string(),
    )
    .fetch_one(connection))
}

/// A passkey as its owner sees it (the list, `me`).
#[derive(Debug, Clone, Serialize)]
pub struct PasskeyView {
    pub id: PasskeyId,
    pub name: String,
    /// Whether it is synced (backup-eligible: a copy in a password manager's cloud).
    pub synced: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<time::OffsetDateTime>,
}

/// The user's passkeys, oldest first.
pub async fn list_passkeys(db: &mut DbConnection, user: UserId) -> Result<Vec<PasskeyView>, sqlx::Error> {
    one_statement!(db, |connection| sqlx::query_as!(
        PasskeyView,
        r#"
        select id as "id: PasskeyId", name, backup_eligible as synced, created_at, last_used_at
        from passkeys where user_id = $1 order by created_at, id
        "#,
        user as UserId,
    )
    .fetch_all(connection))
}
