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

pub mod store;

use std::time::Duration;

use serde_json::Value;
use tracing::field::Empty;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use crate::app::App;
use crate::domain::{Assurance, Device, PasskeyId, SecurityChange, SessionId, UserId};
use crate::error::{ApiError, Context as _};
use crate::mfa::store::{Change, UndoToken};
use crate::sessions::store::{NewSession, mark_authenticated};
use crate::sessions::{Caller, Issued, first_token_ttl};
use crate::tokens::{AccessToken, ChallengeId, MailToken, RefreshToken};
use store::{NewCeremony, NewPasskey, NotAdded, PasskeyView, Use};

/// How long a ceremony may take, from its begin to its finish (also the browser's timeout).
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);

/// The longest name a passkey may be given, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The relying party: the web app at `APP_URL`.
pub struct RelyingParty {
    webauthn: Webauthn,
}

impl RelyingParty {
    /// From `APP_URL`: its host, a domain name (`localhost` locally; browsers refuse an IP
    /// address), is the relying party id, and its origin is the one accepted.
    pub fn new(app_url: &str) -> anyhow::Result<Self> {
        let origin = Url::parse(app_url).map_err(|error| anyhow::anyhow!("APP_URL: {error}"))?;
        let Some(id) = origin.domain() else {
            anyhow::bail!("APP_URL's host must be a domain name (localhost locally), not an IP address");
        };
        let webauthn = WebauthnBuilder::new(id, &origin)
            .and_then(|builder| builder.rp_name(id).timeout(CEREMONY_TTL).build())
            .map_err(|error| anyhow::anyhow!("APP_URL as a WebAuthn relying party: {error}"))?;
        Ok(Self { webauthn })
    }

    /// A registration for `user`: the creation options (a discoverable credential, user
    /// verification required, the credentials `exclude` names refused) and the ceremony's
    /// state, serialised.
    pub fn registration(
        &self,
        user: UserId,
        email: &str,
        exclude: Vec<Vec<u8>>,
    ) -> anyhow::Result<(Value, String)> {
        let exclude = (!exclude.is_empty()).then_some(exclude);
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user.0, email, email, exclude)
            .map_err(|error| anyhow::anyhow!("starting the registration: {error}"))?;
        let mut options = serde_json::to_value(&options.public_key)?;
        // A passkey is a discoverable credential: it signs in without a username.
        if let Some(selection) = options.get_mut("authenticatorSelection").and_then(Value::as_object_mut) {
            selection.insert("residentKey".to_owned(), Value::from("required"));
            selection.insert("requireResidentKey".to_owned(), Value::from(true));
        }
        Ok((options, serde_json::to_string(&state)?))
    }

    /// The authenticator's answer to a registration, verified against the ceremony's `state`:
    /// the credential to store, or `None` when it does not verify.
    pub fn registered(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &str,
    ) -> anyhow::Result<Option<NewCredential>> {
        let state: PasskeyRegistration = serde_json::from_str(state)?;
        let passkey = match self.webauthn.finish_passkey_registration(credential, &state) {
            Ok(passkey) => passkey,
            Err(error) => {
                tracing::info!(%error, "a passkey registration did not verify");
                return Ok(None);
            }
        };
        let stored = serde_json::to_string(&passkey)?;
        let value: Value = serde_json::from_str(&stored)?;
        let inner = &value["cred"];
        let (Some(counter), Some(backup_eligible)) =
            (inner["counter"].as_u64(), inner["backup_eligible"].as_bool())
        else {
            anyhow::bail!("a serialised passkey without its counter or flags");
        };
        Ok(Some(NewCredential {
            id: AsRef::<[u8]>::as_ref(passkey.cred_id()).to_vec(),
            stored,
            counter: u32::try_from(counter).unwrap_or(u32::MAX),
            backup_eligible,
        }))
    }

    /// A sign-in (or step-up): request options naming no credential, and the ceremony's state,
    /// serialised.
    pub fn sign_in(&self) -> anyhow::Result<(Value, String)> {
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|error| anyhow::anyhow!("starting the sign-in: {error}"))?;
        Ok((serde_json::to_value(&options.public_key)?, serde_json::to_string(&state)?))
    }
}

/// A credential a registration made, as it is stored: its id, webauthn-rs's serialised
/// `Passkey`, and what a statement checks of it (kept inside that `Passkey`): its signature
/// counter and whether it is backup-eligible (synced).
pub struct NewCredential {
    pub id: Vec<u8>,
    pub stored: String,
    pub counter: u32,
    pub backup_eligible: bool,
}

/// The relying party of a function that runs ceremonies.
fn relying_party(app: &App) -> Result<&RelyingParty, ApiError> {
    app.passkeys
        .as_ref()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("this function runs no passkey ceremony")))
}

/// A ceremony begun: its id and the options the browser passes to `navigator.credentials`.
pub struct Begun {
    pub challenge: ChallengeId,
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
    Ok(Begun { challenge, options })
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
    match store::add_passkey(&mut db, user, caller.session, new_passkey, undo_token)
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
/// authenticator offers the user's own; nothing about any account is said), the ceremony stored
/// for anyone who holds its id. 429 past [`store::SIGN_INS_PER_SOURCE`] from the caller's
/// address.
#[tracing::instrument(name = "auth.passkey_login_begin", skip_all)]
pub async fn begin_sign_in(app: &App, device: &Device) -> Result<Begun, ApiError> {
    let (options, state) = relying_party(app)?.sign_in()?;
    let challenge = ChallengeId::generate().context("generating the challenge id")?;
    let ceremony = NewCeremony { challenge: &challenge.hash(), state: &state, ttl: CEREMONY_TTL };
    let mut db = app.connection().await.context("connecting to the database")?;
    if !store::begin_sign_in(&mut db, ceremony, device.source().as_deref())
        .await
        .context("storing the ceremony")?
    {
        return Err(ApiError::TooManyAttempts { retry_after: 600 });
    }
    Ok(Begun { challenge, options })
}

/// A passkey's assertion, verified against its stored credential.
struct Asserted {
    user: UserId,
    passkey: PasskeyId,
    credential: String,
    counter: u32,
    synced: bool,
}

/// Takes the sign-in ceremony (once), reads whose passkey answered and verifies the assertion
/// against it. `refused` is the answer to every failure (a dead ceremony, an unknown credential,
/// a bad signature, a counter that went back): one answer, which tells nothing of which.
async fn assert(
    app: &App,
    db: &mut crate::db::DbConnection,
    challenge: &ChallengeId,
    credential: &PublicKeyCredential,
    refused: fn() -> ApiError,
) -> Result<Asserted, ApiError> {
    let webauthn = &relying_party(app)?.webauthn;
    let state = store::take_sign_in(db, &challenge.hash())
        .await
        .context("taking the ceremony")?
        .ok_or_else(refused)?;
    let state: DiscoverableAuthentication = from_json(&state, "the stored sign-in state")?;
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
            tracing::info!(%error, "a passkey assertion did not verify");
            refused()
        })?;
    passkey.update_credential(&result);
    Ok(Asserted {
        user,
        passkey: stored.id,
        credential: to_json(&passkey, "the passkey")?,
        counter: result.counter(),
        synced: result.backup_eligible(),
    })
}

/// Signs in with a passkey: the assertion verified ([`assert`]; 401 `invalid_credentials` for
/// any failure), then the use recorded and the session opened at aal2 (`["hwk","user"]`, or
/// `["swk","user"]` for a synced passkey), in one statement.
#[tracing::instrument(name = "auth.passkey_login_finish", skip_all, fields(user = Empty))]
pub async fn finish_sign_in(
    app: &App,
    challenge: ChallengeId,
    credential: PublicKeyCredential,
    device: &Device,
) -> Result<Issued, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let asserted = assert(app, &mut db, &challenge, &credential, || ApiError::InvalidCredentials).await?;
    let assurance = Assurance::passkey(asserted.synced);
    let session = SessionId::generate();
    let refresh = RefreshToken::generate().context("generating the refresh token")?;
    let new_session = NewSession { id: session, token: &refresh.hash(), ttl: first_token_ttl(app), device };
    let used = Use { id: asserted.passkey, credential: &asserted.credential, sign_count: asserted.counter };
    let user = store::open_session_with_passkey(&mut db, asserted.user, used, new_session, &assurance)
        .await
        .context("opening the session")?
        // Removed meanwhile, or another use reported the same counter first.
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
    challenge: ChallengeId,
    credential: PublicKeyCredential,
) -> Result<AccessToken, ApiError> {
    let tokens = app.tokens().await.context("loading the signing key")?;
    let mut db = app.connection().await.context("connecting to the database")?;
    let asserted = assert(app, &mut db, &challenge, &credential, || ApiError::WrongPasskey).await?;
    if asserted.user != caller.user.id {
        return Err(ApiError::WrongPasskey);
    }
    let used = Use { id: asserted.passkey, credential: &asserted.credential, sign_count: asserted.counter };
    if !store::use_passkey(&mut db, caller.user.id, used).await.context("recording the passkey's use")? {
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
    match store::remove_passkey(&mut db, caller.user.id, id, undo_token)
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
    fn the_relying_party_is_the_app_urls_host_which_must_be_a_name() {
        assert!(RelyingParty::new("https://app.example.com").is_ok());
        assert!(RelyingParty::new("http://localhost:3000").is_ok());
        let error = RelyingParty::new("http://127.0.0.1:3000").err().unwrap();
        assert!(error.to_string().contains("domain name"), "{error}");
    }

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
