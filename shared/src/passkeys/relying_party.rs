//! The relying party of the passkeys: the web app at `APP_URL`, and the WebAuthn ceremonies'
//! options, states and checks (webauthn-rs), without a database or the app's state.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use webauthn_rs::prelude::{
    PasskeyRegistration, RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use crate::domain::UserId;
use crate::mfa::seal::Sealed;

/// How long a ceremony may take, from its begin to its finish (also the browser's timeout).
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);

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

    /// The webauthn-rs instance, for the checks that need the stored credential.
    pub fn webauthn(&self) -> &Webauthn {
        &self.webauthn
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

/// What a sign-in ceremony's state is sealed with (the associated data): a sealed TOTP secret,
/// bound to its own user and factor, cannot pass for one, nor one for it.
pub const SIGN_IN_CONTEXT: &[u8] = b"passkey sign-in ceremony";

/// The longest sealed ceremony id read; a longer one is refused without opening it.
const MAX_CEREMONY_ID_CHARS: usize = 4096;

/// A sign-in ceremony as it travels, sealed in its id: webauthn-rs's state and when it expires.
#[derive(Serialize, Deserialize)]
pub struct SignInCeremony {
    pub state: String,
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
}

impl SignInCeremony {
    /// What is sealed.
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    /// What was opened, when it is a ceremony not yet expired.
    pub fn from_bytes(bytes: &[u8], now: OffsetDateTime) -> Option<Self> {
        let ceremony: Self = serde_json::from_slice(bytes).ok()?;
        (ceremony.expires_at > now).then_some(ceremony)
    }
}

/// A sealed ceremony as its `challenge_id`: base64url of the key id's length (one byte), the
/// key id, and the sealed bytes.
pub fn ceremony_id(sealed: &Sealed) -> anyhow::Result<String> {
    let key_id = sealed.key_id.as_bytes();
    let length = u8::try_from(key_id.len()).map_err(|_| anyhow::anyhow!("a key id longer than 255 bytes"))?;
    Ok(URL_SAFE_NO_PAD.encode([&[length][..], key_id, &sealed.bytes].concat()))
}

/// A `challenge_id` read back as a sealed value; `None` for one without that shape.
pub fn sealed_ceremony(id: &str) -> Option<Sealed> {
    if id.len() > MAX_CEREMONY_ID_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let (&length, rest) = bytes.split_first()?;
    let (key_id, sealed) = rest.split_at_checked(usize::from(length))?;
    Some(Sealed { key_id: String::from_utf8(key_id.to_vec()).ok()?, bytes: sealed.to_vec() })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_ceremony_travels_in_its_id_and_expires() {
        let keys = crate::mfa::seal::SealingKeys::from_json(
            r#"{"current":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#,
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let ceremony = SignInCeremony { state: "{}".to_owned(), expires_at: now + CEREMONY_TTL };
        let id = ceremony_id(&keys.seal(&ceremony.to_bytes().unwrap(), SIGN_IN_CONTEXT).unwrap()).unwrap();

        let opened = keys.open(&sealed_ceremony(&id).unwrap(), SIGN_IN_CONTEXT).unwrap();
        assert_eq!(SignInCeremony::from_bytes(&opened, now).unwrap().state, "{}");
        assert!(SignInCeremony::from_bytes(&opened, now + CEREMONY_TTL).is_none(), "expired");
        assert!(keys.open(&sealed_ceremony(&id).unwrap(), b"another context").is_err());
        let mut tampered = sealed_ceremony(&id).unwrap();
        *tampered.bytes.last_mut().unwrap() ^= 1;
        assert!(keys.open(&tampered, SIGN_IN_CONTEXT).is_err());
        for bad in ["", "!!", "AA", &"A".repeat(5000)] {
            assert!(
                sealed_ceremony(bad).is_none_or(|sealed| keys.open(&sealed, SIGN_IN_CONTEXT).is_err()),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_relying_party_is_the_app_urls_host_which_must_be_a_name() {
        assert!(RelyingParty::new("https://app.example.com").is_ok());
        assert!(RelyingParty::new("http://localhost:3000").is_ok());
        let error = RelyingParty::new("http://127.0.0.1:3000").err().unwrap();
        assert!(error.to_string().contains("domain name"), "{error}");
    }
}
