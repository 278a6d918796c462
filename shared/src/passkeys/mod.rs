//! Passkeys (WebAuthn discoverable credentials through `webauthn-rs`): register one while
//! signed in (after a step-up), sign in with one without a username, prove it again for a
//! step-up, list and remove them. The relying party is the web app at `APP_URL`: its host is
//! the relying party id, its origin the only one accepted.
//!
//! A ceremony's state (the challenge among it) is kept in Postgres between its begin and its
//! finish, which run in different invocations and maybe sandboxes; webauthn-rs remembers
//! nothing, so the single use is ours: the finish takes the state with `delete ... returning`.
//! The signature counter and the backup flags are checked by webauthn-rs against the stored
//! credential, and the counter once more by the statement that records the use (two uses at
//! once reporting one counter: one counts).

pub mod relying_party;
pub mod store;

use serde_json::Value;
use time::OffsetDateTime;
use tracing::field::Empty;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PublicKeyCredential, RegisterPublicKeyCredential,
    WebauthnError,
};

use crate::app::App;
use crate::domain::{Assurance, Device, PasskeyId, SecurityChange, SessionId, UserId};
use crate::error::{ApiError, Context as _};
use crate::mfa::store::{Change, UndoToken};
use crate::sessions::store::{NewSession, mark_authenticated};
use crate::sessions::{Caller, Issued, first_token_ttl};
use crate::tokens::{AccessToken, ChallengeId, MailToken, RefreshToken, TokenHash};
use relying_party::{
    CEREMONY_TTL, RelyingParty, SIGN_IN_CONTEXT, SignInCeremony, ceremony_id, sealed_ceremony,
};
use store::{NewCeremony, NewPasskey, NotAdded, PasskeyView, Use};

/// The longest name a passkey may be given, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The relying party of a function that runs ceremonies.
fn relying_party(app: &App) -> Result<&RelyingParty, ApiError> {
    app.passkeys
        .as_ref()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("this function runs no passkey ceremony")))
}

/// A ceremony begun: its id (a registration's names its stored state; a sign-in's is the
/// state, sealed) and the options the browser passes to `navigator.credentials`.
pub struct Begun {
    pub challenge: String,
    pub options: Value,
}

fn to_json<T: serde::Serialize>(value: &T, what: &'static str) -> Result<String, ApiError> {
    serde_json::to_string(value)
        .map_err(|error| ApiError::Unexpected(anyhow::Error::new(error).context(what)))
}

fn from_json<T: serde::de::DeserializeOwned>(json: &str, what: &'static str) -> Result<T, ApiError> {
    serde_json::from_str(json).map_err(|error| ApiError::Unexpected(anyhow::Error::new(error).context(what)))
}

/// Begins registering a passkey for the caller (after a step-up): creation options that ask
/// for a discoverable credential with user verification, excluding the caller's passkeys, and
/// the ceremony stored for this session (replacing one it began before).
#[tracing::instrument(name = "auth.passkey_register_begin", skip_all, fields(user = %caller.user.id.0))]
pub async fn begin_registration(app: &App, caller: &Caller) -> Result<Begun, ApiError> {
    caller.require_step_up()?;
    let party = relying_party(app)?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let existing = store::credential_ids(&mut db, caller.user.id).await.context("reading the passkeys")?;
    let (options, state) = party.registration(caller.user.id, &caller.user.email, existing)?;
    let challenge = ChallengeId::generate().context("generating the challenge id")?;
    let ceremony = NewCeremony { challenge: &challenge.hash(), state: &state, ttl: CEREMONY_TTL };
    if !store::begin_registration(&mut db, caller.user.id, caller.session, ceremony)
        .await
        .context("storing the ceremony")?
    {
        return Err(ApiError::InvalidToken);
    }
    Ok(Begun { challenge: challenge.expose().to_owned(), options })
}

/// A passkey's name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters; none
/// given is "Passkey".
pub fn parse_name(name: Option<String>) -> Result<String, ApiError> {
    let Some(name) = name else { return Ok("Passkey".to_owned()) };
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "invalid_name",
            format!("a passkey's name is 1 to {MAX_NAME_CHARS} characters, without control characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Finishes a registration begun by this session: the ceremony taken once (400
/// `invalid_challenge` when it is not this session's live one), the authenticator's answer
/// verified (400 `invalid_credential`), then the passkey stored with its undo link, and the
/// owner told. 409 `passkey_already_registered` for a credential registered already, 409
/// `too_many_passkeys` past [`store::MAX_PASSKEYS`], 429 past the changes' hourly cap.
#[tracing::instrument(name = "auth.passkey_register_finish", skip_all, fields(user = %caller.user.id.0))]
pub async fn finish_registration(
    app: &App,
    caller: &Caller,
    challenge: ChallengeId,
    credential: RegisterPublicKeyCredential,
    name: String,
) -> Result<PasskeyView, ApiError> {
    let party = relying_party(app)?;
    let user = caller.user.id;
    let mut db = app.connection().await.context("connecting to the database")?;
    let state = store::take_registration(&mut db, &challenge.hash(), user, caller.session)
        .await
        .context("taking the ceremony")?
        .ok_or(ApiError::InvalidChallenge)?;
    let credential = party.registered(&credential, &state)?.ok_or(ApiError::InvalidPasskeyCredential)?;
    let id = PasskeyId::generate();
    let undo = MailToken::generate().context("generating the undo link")?;
    let undo_token = UndoToken { token: &undo.hash(), ttl: SecurityChange::UNDO_LIFETIME };
    let new_passkey = NewPasskey {
        id,
        credential_id: &credential.id,
        credential: &credential.stored,
        name: &name,
        backup_eligible: credential.backup_eligible,
        sign_count: credential.counter,
    };
    match store::add_passkey(&mut db, user, caller.actor(), new_passkey, undo_token)
        .await
        .context("storing the passkey")?
    {
        Change::Done => {}
        Change::Capped => return Err(ApiError::TooManyAttempts { retry_after: 3600 }),
        Change::Missing => {
            return Err(
                match store::why_not_added(&mut db, user, caller.session, &credential.id)
                    .await
                    .context("reading why the passkey was refused")?
                {
                    NotAdded::SessionEnded => ApiError::InvalidToken,
                    NotAdded::CredentialTaken => ApiError::PasskeyAlreadyRegistered,
                    NotAdded::TooMany => ApiError::TooManyPasskeys,
                },
            );
        }
    }
    crate::second_factor::tell_owner(app, caller, SecurityChange::PasskeyAdded, &undo).await;
    let created_at = time::OffsetDateTime::now_utc();
    Ok(PasskeyView { id, name, synced: credential.backup_eligible, created_at, last_used_at: None })
}

/// Begins a sign-in (or a step-up) with a passkey: request options naming no credential (the
/// authenticator offers the user's own; nothing about any account is said). Anyone may begin
/// one, so nothing is stored: the ceremony's state and expiry travel sealed (AES-256-GCM under
/// the MFA key ring) in its `challenge_id`, and its single use is recorded when an answer to it
/// verified.
#[tracing::instrument(name = "auth.passkey_login_begin", skip_all)]
pub async fn begin_sign_in(app: &App) -> Result<Begun, ApiError> {
    let (options, state) = relying_party(app)?.sign_in()?;
    let ceremony = SignInCeremony { state, expires_at: OffsetDateTime::now_utc() + CEREMONY_TTL };
    let sealed = app.mfa_ring()?.seal(&ceremony.to_bytes()?, SIGN_IN_CONTEXT).await?;
    Ok(Begun { challenge: ceremony_id(&sealed)?, options })
}

/// A passkey's assertion, verified against its stored credential.
struct Asserted {
    ceremony: TokenHash,
    ceremony_expires_at: OffsetDateTime,
    user: UserId,
    passkey: PasskeyId,
    credential: String,
    counter: u32,
    synced: bool,
    /// Whether an operator disabled its user (a sign-in is refused after the assertion verified).
    disabled: bool,
}

impl Asserted {
    fn used(&self) -> Use<'_> {
        Use {
            ceremony: &self.ceremony,
            ceremony_expires_at: self.ceremony_expires_at,
            id: self.passkey,
            credential: &self.credential,
            sign_count: self.counter,
        }
    }
}

/// Opens the sign-in ceremony sealed in `challenge` (unexpired), reads whose passkey answered
/// and verifies the assertion against it; the ceremony is spent by the statement that records
/// the use. `refused` is the answer to every failure (a forged, expired or spent ceremony, an
/// unknown credential, a bad signature, a counter that went back): one answer, which tells
/// nothing of which.
async fn assert(
    app: &App,
    db: &mut crate::db::DbConnection,
    challenge: &str,
    credential: &PublicKeyCredential,
    refused: fn() -> ApiError,
) -> Result<Asserted, ApiError> {
    let webauthn = relying_party(app)?.webauthn();
    let sealed = sealed_ceremony(challenge).ok_or_else(refused)?;
    let opened = match app.mfa_ring()?.open(&sealed, SIGN_IN_CONTEXT).await {
        Ok(opened) => opened,
        // The ring cannot be read: the client may retry.
        Err(unavailable @ ApiError::Unavailable(_)) => return Err(unavailable),
        Err(_) => return Err(refused()),
    };
    let ceremony = SignInCeremony::from_bytes(&opened, OffsetDateTime::now_utc()).ok_or_else(refused)?;
    let state: DiscoverableAuthentication = from_json(&ceremony.state, "the sealed sign-in state")?;
    let (user, credential_id) =
        webauthn.identify_discoverable_authentication(credential).map_err(|_| refused())?;
    let user = UserId(user);
    tracing::Span::current().record("user", tracing::field::display(user.0));
    let stored = store::find_passkey(db, user, credential_id)
        .await
        .context("reading the passkey")?
        .ok_or_else(refused)?;
    let mut passkey: Passkey = from_json(&stored.credential, "the stored passkey")?;
    let result = webauthn
        .finish_discoverable_authentication_v2(credential, state, DiscoverableKey::from(&passkey))
        .map_err(|error| {
            if matches!(error, WebauthnError::CredentialPossibleCompromise) {
                // The counter went back: a copy of the authenticator may be in use.
                tracing::warn!(passkey = %stored.id.0, "a passkey's signature counter went back; refused");
            } else {
                tracing::info!(%error, "a passkey assertion did not verify");
            }
            refused()
        })?;
    passkey.update_credential(&result);
    Ok(Asserted {
        // The sealed bytes, not the id's text: the same ciphertext under two key ids (one key
        // listed twice in the ring) is one ceremony.
        ceremony: TokenHash::of(&sealed.bytes),
        ceremony_expires_at: ceremony.expires_at,
        user,
        passkey: stored.id,
        credential: to_json(&passkey, "the passkey")?,
        counter: result.counter(),
        synced: result.backup_eligible(),
        disabled: stored.disabled,
    })
}

/// Signs in with a passkey: the assertion verified ([`assert`]; 401 `invalid_credentials` for
/// any failure), then the use recorded and the session opened at aal2 (`["hwk","user"]`, or
/// `["swk","user"]` for a synced passkey), in one statement.
#[tracing::instrument(name = "auth.passkey_login_finish", skip_all, fields(user = Empty))]
pub async fn finish_sign_in(
    app: &App,
    challenge: &str,
    credential: PublicKeyCredential,
    device: &Device,
) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let asserted = assert(app, &mut db, challenge, &credential, || ApiError::InvalidCredentials).await?;
    // Said only to whoever holds the passkey, as login says it after the right password.
    if asserted.disabled {
        let detail = serde_json::json!({ "reason": "account_disabled", "method": "passkey" });
        let spent = store::refuse_sign_in(
            &mut db,
            asserted.user,
            &asserted.ceremony,
            asserted.ceremony_expires_at,
            device,
            &detail,
        )
        .await
        .context("recording the refused sign-in")?;
        // A replayed answer is a spent ceremony's: the same 401 as any.
        return Err(if spent { ApiError::AccountDisabled } else { ApiError::InvalidCredentials });
    }
    let assurance = Assurance::passkey(asserted.synced);
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app), device };
    let user =
        store::open_session_with_passkey(&mut db, asserted.user, asserted.used(), new_session, &assurance)
            .await
            .context("opening the session")?
            // Spent by a concurrent finish, removed meanwhile, or another use reported the same
            // counter first.
            .ok_or(ApiError::InvalidCredentials)?;
    let access = tokens.issue(asserted.user, session, &assurance).context("signing the access token")?;
    Ok(Issued { user, access, refresh })
}

/// A step-up with a passkey of the caller's: the assertion verified as at sign-in (403
/// `invalid_passkey` for any failure, or another account's passkey), the use recorded, then the
/// session marked proven now and raised to aal2 with the passkey's methods added. A fresh access
/// token carries its assurance.
#[tracing::instrument(name = "auth.reauthenticate_passkey", skip_all, fields(user = %caller.user.id.0))]
pub async fn reauthenticate(
    app: &App,
    caller: &Caller,
    challenge: &str,
    credential: PublicKeyCredential,
) -> Result<AccessToken, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let asserted = assert(app, &mut db, challenge, &credential, || ApiError::WrongPasskey).await?;
    if asserted.user != caller.user.id {
        return Err(ApiError::WrongPasskey);
    }
    if !store::use_passkey(&mut db, caller.user.id, asserted.used())
        .await
        .context("recording the passkey's use")?
    {
        return Err(ApiError::WrongPasskey);
    }
    let assurance = mark_authenticated(
        &mut db,
        caller.user.id,
        caller.session,
        true,
        Assurance::passkey_methods(asserted.synced),
        app.session_max_lifetime,
    )
    .await
    .context("marking the session re-authenticated")?
    .ok_or(ApiError::InvalidToken)?;
    tokens.issue(caller.user.id, caller.session, &assurance).context("signing the access token")
}

/// The caller's passkeys.
pub async fn list(app: &App, caller: &Caller) -> Result<Vec<PasskeyView>, ApiError> {
    let mut db = app.connection().await.context("connecting to the database")?;
    store::list_passkeys(&mut db, caller.user.id).await.context("listing the passkeys")
}

/// Removes one of the caller's passkeys (after a step-up), with its undo link, and tells the
/// owner. 404 `passkey_not_found` for an id that is not one of theirs; 429 past the changes'
/// hourly cap.
#[tracing::instrument(name = "auth.passkey_remove", skip_all, fields(user = %caller.user.id.0))]
pub async fn remove(app: &App, caller: &Caller, id: PasskeyId) -> Result<(), ApiError> {
    caller.require_step_up()?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let undo = MailToken::generate().context("generating the undo link")?;
    let undo_token = UndoToken { token: &undo.hash(), ttl: SecurityChange::UNDO_LIFETIME };
    match store::remove_passkey(&mut db, caller.user.id, id, caller.actor(), undo_token)
        .await
        .context("removing the passkey")?
    {
        Change::Done => {}
        Change::Capped => return Err(ApiError::TooManyAttempts { retry_after: 3600 }),
        Change::Missing => return Err(ApiError::PasskeyNotFound),
    }
    crate::second_factor::tell_owner(app, caller, SecurityChange::PasskeyRemoved, &undo).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed_bounded_and_printable() {
        assert_eq!(parse_name(None).unwrap(), "Passkey");
        assert_eq!(parse_name(Some("  Laptop ".into())).unwrap(), "Laptop");
        for bad in ["", "   ", "a\nb", &"x".repeat(65)] {
            assert_eq!(parse_name(Some(bad.to_owned())).unwrap_err().code(), "invalid_name", "{bad:?}");
        }
        assert!(parse_name(Some("é".repeat(64))).is_ok());
    }
}
