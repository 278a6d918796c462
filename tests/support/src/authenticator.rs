//! A software passkey authenticator for the tests: passkey-rs's client and authenticator, one
//! discoverable credential kept in memory, the user always present and verified. It takes the
//! options the API's `begin` endpoints answer and gives back the credential JSON their `finish`
//! endpoints take, as a browser's `PublicKeyCredential.toJSON()` would.

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::types::Passkey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use serde_json::Value;
use url::Url;

/// A user who is always there and always verified (a fingerprint that always matches).
struct Verified;

#[async_trait::async_trait]
impl UserValidationMethod for Verified {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck { presence, verification })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

type PasskeyClient = Client<Option<Passkey>, Verified, public_suffix::PublicSuffixList, ()>;

/// One authenticator holding at most one passkey, for the web app at `origin`.
pub struct SoftwareAuthenticator {
    client: PasskeyClient,
    origin: Url,
}

impl SoftwareAuthenticator {
    /// An authenticator without a passkey, for pages at `origin` (`http://localhost:...` too).
    /// `counter`: whether its passkeys count their signatures (a device-bound key does; a synced
    /// one does not).
    pub fn new(origin: &str, counter: bool) -> Self {
        let mut authenticator = Authenticator::new(Aaguid::new_empty(), None, Verified);
        authenticator.set_make_credentials_with_signature_counter(counter);
        let client = Client::new(authenticator).allows_insecure_localhost(true);
        Self { client, origin: Url::parse(origin).expect("an origin") }
    }

    /// Makes a passkey from a registration's `publicKey` options; returns the `credential` to
    /// finish it with.
    pub async fn register(&mut self, public_key: &Value) -> anyhow::Result<Value> {
        let request: CredentialCreationOptions =
            serde_json::from_value(serde_json::json!({ "publicKey": public_key }))?;
        let created = self
            .client
            .register(&self.origin, request, DefaultClientData)
            .await
            .map_err(|error| anyhow::anyhow!("the authenticator refused to register: {error:?}"))?;
        Ok(serde_json::to_value(created)?)
    }

    /// Signs a sign-in's `publicKey` options with the passkey; returns the `credential`.
    pub async fn sign(&mut self, public_key: &Value) -> anyhow::Result<Value> {
        let request: CredentialRequestOptions =
            serde_json::from_value(serde_json::json!({ "publicKey": public_key }))?;
        let asserted = self
            .client
            .authenticate(&self.origin, request, DefaultClientData)
            .await
            .map_err(|error| anyhow::anyhow!("the authenticator refused to sign: {error:?}"))?;
        Ok(serde_json::to_value(asserted)?)
    }

    /// The passkey as the authenticator holds it now (its counter among it), to put back later:
    /// a clone of the device made at this moment.
    pub fn snapshot(&self) -> Option<Passkey> {
        self.client.authenticator().store().clone()
    }

    /// Puts a [`snapshot`](Self::snapshot) back.
    pub fn restore(&mut self, passkey: Option<Passkey>) {
        *self.client.authenticator_mut().store_mut() = passkey;
    }
}
