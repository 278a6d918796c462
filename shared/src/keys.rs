//! Token keys held while a sandbox is warm, and kept current without a redeploy.
//!
//! Keys from the environment are loaded once, at init. Keys from Secrets Manager are read on
//! first use and read again once they are older than `JWT_KEYS_TTL_SECONDS`; a verifier that
//! meets a token naming an unknown `kid` also reads its secret again, at most once per
//! `JWT_KEYS_REFETCH_INTERVAL_SECONDS`, in case a key was published after it last looked. A
//! failed re-read keeps the keys read before (and is tried again later): a Secrets Manager
//! hiccup never turns a warm sandbox into a 503.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::Mutex;

use crate::config::{KeyConfig, KeySource};
use crate::db::SharedSecrets;
use crate::error::ApiError;
use crate::issuer::Issuer;
use crate::secrets::{KeyEntry, Secrets, SigningKeySecret};
use crate::tokens::{Claims, Rejection, SigningAlgorithm, SigningKey, TokenSigner, TokenVerifier};

/// A value read from a secret, with when to read it again (`None`: never, it is static).
struct Loaded<T> {
    value: Arc<T>,
    refresh_at: Option<Instant>,
}

/// One key set and the policy for reading it again. The hot path is an uncontended read lock
/// and a clock read; fetches are serialised by an async mutex no reader waits on while the
/// keys are fresh.
pub struct KeyCache<T> {
    slot: RwLock<Option<Loaded<T>>>,
    /// Held while fetching; holds when an unknown key last caused a re-read.
    fetching: Mutex<Option<Instant>>,
    refresh_after: Duration,
    refetch_interval: Duration,
}

impl<T> KeyCache<T> {
    /// Keys read from a secret on first use.
    pub fn refreshing(refresh_after: Duration, refetch_interval: Duration) -> Self {
        Self { slot: RwLock::new(None), fetching: Mutex::new(None), refresh_after, refetch_interval }
    }

    /// Keys that never change (from the environment, or a test's).
    pub fn fixed(value: T) -> Self {
        Self {
            slot: RwLock::new(Some(Loaded { value: Arc::new(value), refresh_at: None })),
            fetching: Mutex::new(None),
            refresh_after: Duration::MAX,
            refetch_interval: Duration::MAX,
        }
    }

    fn is_fixed(&self) -> bool {
        self.slot.read().expect("the key slot").as_ref().is_some_and(|loaded| loaded.refresh_at.is_none())
    }

    /// The keys if they need no re-read.
    fn fresh(&self) -> Option<Arc<T>> {
        let slot = self.slot.read().expect("the key slot");
        let loaded = slot.as_ref()?;
        match loaded.refresh_at {
            Some(at) if Instant::now() >= at => None,
            _ => Some(Arc::clone(&loaded.value)),
        }
    }

    /// The keys held, fresh or not.
    fn held(&self) -> Option<Arc<T>> {
        self.slot.read().expect("the key slot").as_ref().map(|loaded| Arc::clone(&loaded.value))
    }

    fn store(&self, value: T) -> Arc<T> {
        let value = Arc::new(value);
        let refresh_at = Instant::now().checked_add(self.refresh_after);
        *self.slot.write().expect("the key slot") = Some(Loaded { value: Arc::clone(&value), refresh_at });
        value
    }

    fn postpone(&self, delay: Duration) {
        if let Some(loaded) = self.slot.write().expect("the key slot").as_mut() {
            loaded.refresh_at = Instant::now().checked_add(delay);
        }
    }

    /// The keys: fresh ones as they are, otherwise read again with `fetch`. Without keys yet, a
    /// failed read is the caller's error; with stale keys it is logged and the stale keys serve
    /// until the next attempt, one refetch interval later.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Arc<T>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have read them while this one waited.
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        match (fetch().await, self.held()) {
            (Ok(value), _) => Ok(self.store(value)),
            (Err(error), Some(stale)) => {
                tracing::warn!(error = ?error, "re-reading the token keys failed; keeping the keys read before");
                self.postpone(self.refetch_interval);
                Ok(stale)
            }
            (Err(error), None) => Err(error),
        }
    }

    /// Reads the keys again because a token named a key that `seen` lacks, unless an unknown key
    /// already caused a read within the refetch interval. Returns keys newer than `seen`, if any.
    pub async fn refetch_for_unknown_key<F, Fut>(&self, seen: &Arc<T>, fetch: F) -> Option<Arc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        if self.is_fixed() {
            return None;
        }
        let mut last_refetch = self.fetching.lock().await;
        let newer = || self.held().filter(|held| !Arc::ptr_eq(held, seen));
        if last_refetch.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return newer();
        }
        *last_refetch = Some(Instant::now());
        match fetch().await {
            Ok(value) => Some(self.store(value)),
            Err(error) => {
                tracing::warn!(error = ?error, "re-reading the token keys for an unknown kid failed");
                newer()
            }
        }
    }
}

/// Where a key set comes from when it lives in Secrets Manager.
struct SecretSource {
    arn: String,
    secrets: SharedSecrets,
    issuer: Issuer,
    audience: String,
    access_token_ttl: Duration,
}

impl SecretSource {
    fn new(arn: &str, config: &KeyConfig, secrets: SharedSecrets) -> Self {
        Self {
            arn: arn.to_owned(),
            secrets,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_token_ttl: config.access_token_ttl,
        }
    }

    async fn text(&self) -> Result<String, ApiError> {
        let secrets = self.secrets.get_or_init(Secrets::from_env).await;
        secrets.text(&self.arn).await.map_err(|error| ApiError::Unavailable(error.into()))
    }

    async fn signer(&self) -> Result<TokenSigner, ApiError> {
        let secret: SigningKeySecret = crate::secrets::parse(&self.arn, &self.text().await?)
            .map_err(|error| ApiError::Unavailable(error.into()))?;
        let key = signing_key(&secret.current)
            .with_context(|| format!("secret {}", self.arn))
            .map_err(ApiError::Unexpected)?;
        TokenSigner::new(
            key,
            &secret.refresh_token_key,
            self.issuer.clone(),
            self.audience.clone(),
            self.access_token_ttl,
        )
        .with_context(|| format!("secret {}: refresh_token_key", self.arn))
        .map_err(ApiError::Unexpected)
    }

    async fn verifier(&self) -> Result<TokenVerifier, ApiError> {
        TokenVerifier::from_jwks_json(&self.text().await?, self.issuer.clone(), self.audience.clone())
            .with_context(|| format!("secret {}", self.arn))
            .map_err(ApiError::Unexpected)
    }
}

fn signing_key(entry: &KeyEntry) -> anyhow::Result<SigningKey> {
    let name = entry.algorithm.as_deref().unwrap_or("RS256");
    let algorithm = SigningAlgorithm::parse(name)
        .with_context(|| format!("key {} has unknown algorithm {name:?}", entry.kid))?;
    SigningKey::from_pem(&entry.kid, algorithm, &entry.private_key)
}

/// The signing functions' key: one private key and the refresh-token key.
pub struct Signer {
    cache: KeyCache<TokenSigner>,
    source: Option<SecretSource>,
}

impl Signer {
    /// From the configuration: keys in the environment are loaded (and so validated) now, keys
    /// in a secret on first use.
    pub fn from_config(config: &KeyConfig, secrets: SharedSecrets) -> anyhow::Result<Self> {
        match &config.source {
            KeySource::SigningEnv { algorithm, key_id, private_key, refresh_token_key } => {
                let key = SigningKey::from_pem(key_id, *algorithm, private_key).context("JWT_PRIVATE_KEY")?;
                let signer = TokenSigner::new(
                    key,
                    refresh_token_key,
                    config.issuer.clone(),
                    config.audience.clone(),
                    config.access_token_ttl,
                )
                .context("REFRESH_TOKEN_HMAC_KEY")?;
                Ok(Self::fixed(signer))
            }
            KeySource::SigningSecret { arn } => Ok(Self {
                cache: KeyCache::refreshing(config.refresh_after, config.refetch_interval),
                source: Some(SecretSource::new(arn, config, secrets)),
            }),
            KeySource::PublicKeysEnv { .. } | KeySource::VerificationSecret { .. } => {
                anyhow::bail!("a signing function was configured with verification keys")
            }
        }
    }

    /// A signer that never changes.
    pub fn fixed(signer: TokenSigner) -> Self {
        Self { cache: KeyCache::fixed(signer), source: None }
    }

    /// The current signer, read again from its secret when older than the TTL.
    pub async fn current(&self) -> Result<Arc<TokenSigner>, ApiError> {
        self.cache.get(|| load(self.source.as_ref(), SecretSource::signer)).await
    }
}

/// The verifying functions' public key set.
pub struct Verifier {
    cache: KeyCache<TokenVerifier>,
    source: Option<SecretSource>,
}

impl Verifier {
    /// From the configuration: a key set in the environment is read (and so validated) now, one
    /// in a secret on first use.
    pub fn from_config(config: &KeyConfig, secrets: SharedSecrets) -> anyhow::Result<Self> {
        match &config.source {
            KeySource::PublicKeysEnv { jwks } => {
                let verifier =
                    TokenVerifier::from_jwks_json(jwks, config.issuer.clone(), config.audience.clone())
                        .context("JWT_PUBLIC_KEYS")?;
                Ok(Self::fixed(verifier))
            }
            KeySource::VerificationSecret { arn } => Ok(Self {
                cache: KeyCache::refreshing(config.refresh_after, config.refetch_interval),
                source: Some(SecretSource::new(arn, config, secrets)),
            }),
            KeySource::SigningEnv { .. } | KeySource::SigningSecret { .. } => {
                anyhow::bail!("a verifying function was configured with a signing key")
            }
        }
    }

    /// A verifier that never changes.
    pub fn fixed(verifier: TokenVerifier) -> Self {
        Self { cache: KeyCache::fixed(verifier), source: None }
    }

    /// The current key set (for the JWKS and the discovery document).
    pub async fn current(&self) -> Result<Arc<TokenVerifier>, ApiError> {
        self.cache.get(|| load(self.source.as_ref(), SecretSource::verifier)).await
    }

    /// Verifies an access token; a token naming a key this set lacks makes the set be read
    /// again (rate-limited) and the token checked once more.
    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let keys = self.current().await?;
        match keys.verify(token) {
            Err(Rejection::UnknownKey) => {
                let fetch = || load(self.source.as_ref(), SecretSource::verifier);
                let newer = self.cache.refetch_for_unknown_key(&keys, fetch).await;
                Ok(newer.ok_or(ApiError::InvalidToken)?.verify(token)?)
            }
            verified => Ok(verified?),
        }
    }
}

async fn load<'a, T, Fut>(
    source: Option<&'a SecretSource>,
    read: impl FnOnce(&'a SecretSource) -> Fut,
) -> Result<T, ApiError>
where
    Fut: Future<Output = Result<T, ApiError>>,
{
    match source {
        Some(source) => read(source).await,
        None => Err(ApiError::Unexpected(anyhow::anyhow!("fixed keys are never read again"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use jsonwebtoken::jwk::JwkSet;
    use secrecy::SecretString;

    use crate::domain::{SessionId, UserId};
    use crate::tokens::generate_private_key_pem;

    const HOUR: Duration = Duration::from_secs(3600);

    fn key(kid: &str) -> SigningKey {
        let pem = generate_private_key_pem(SigningAlgorithm::EdDsa).unwrap();
        SigningKey::from_pem(kid, SigningAlgorithm::EdDsa, &pem).unwrap()
    }

    fn verifier_of(keys: &[&SigningKey]) -> TokenVerifier {
        let set = JwkSet { keys: keys.iter().map(|key| key.public_jwk().clone()).collect() };
        TokenVerifier::new(set, "iss".into(), "aud".into()).unwrap()
    }

    fn token_of(key: SigningKey) -> String {
        let refresh_key = SecretString::from("r".repeat(32));
        let signer = TokenSigner::new(key, &refresh_key, "iss".into(), "aud".into(), HOUR).unwrap();
        signer
            .issue(UserId::generate(), SessionId::generate(), &crate::domain::Assurance::password())
            .unwrap()
            .token
    }

    /// Verifies `token` as [`Verifier::verify`] does, reading the key set through `fetch`.
    async fn verify_with<F, Fut>(
        cache: &KeyCache<TokenVerifier>,
        token: &str,
        fetch: F,
    ) -> Result<Claims, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<TokenVerifier, ApiError>>,
    {
        let keys = cache.get(&fetch).await?;
        match keys.verify(token) {
            Err(Rejection::UnknownKey) => {
                let newer = cache.refetch_for_unknown_key(&keys, &fetch).await;
                Ok(newer.ok_or(ApiError::InvalidToken)?.verify(token)?)
            }
            verified => Ok(verified?),
        }
    }

    #[tokio::test]
    async fn an_unknown_kid_causes_one_reread_per_refetch_interval() {
        let (k1, k2, k3) = (key("k1"), key("k2"), key("k3"));
        let (published_first, published_later) =
            (verifier_of(&[&k1]), JwkSet { keys: vec![k1.public_jwk().clone(), k2.public_jwk().clone()] });
        let reads = AtomicUsize::new(0);
        let published_first = std::sync::Mutex::new(Some(published_first));
        let fetch = || {
            reads.fetch_add(1, Ordering::SeqCst);
            let first = published_first.lock().unwrap().take();
            let later = published_later.clone();
            async move {
                Ok(first.unwrap_or_else(|| TokenVerifier::new(later, "iss".into(), "aud".into()).unwrap()))
            }
        };
        let cache = KeyCache::refreshing(HOUR, HOUR);
        let (k2_token, k3_token) = (token_of(k2), token_of(k3));

        let first = verify_with(&cache, &token_of(k1), &fetch).await;
        let after_reads = reads.load(Ordering::SeqCst);
        let new_kid = verify_with(&cache, &k2_token, &fetch).await;
        let after_new_kid = reads.load(Ordering::SeqCst);
        let unknown = verify_with(&cache, &k3_token, &fetch).await;
        let unknown_again = verify_with(&cache, &k3_token, &fetch).await;

        assert!(first.is_ok());
        assert_eq!(after_reads, 1, "the first use reads the key set");
        assert!(new_kid.is_ok(), "a key published after the last read is found by reading again");
        assert_eq!(after_new_kid, 2);
        assert!(
            matches!(unknown, Err(ApiError::InvalidToken))
                && matches!(unknown_again, Err(ApiError::InvalidToken))
        );
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "within the refetch interval an unknown kid reads nothing"
        );
    }

    #[tokio::test]
    async fn stale_keys_are_read_again_and_a_failed_read_keeps_them_until_a_later_retry() {
        let reads = AtomicUsize::new(0);
        let fetch = || {
            let read = reads.fetch_add(1, Ordering::SeqCst);
            async move {
                match read {
                    0 => Ok(1),
                    1 => Err(ApiError::Unavailable(anyhow::anyhow!("Secrets Manager is down"))),
                    _ => Ok(3),
                }
            }
        };
        // Stale at once; after a failure, retried after the refetch interval (an hour).
        let stale_at_once = KeyCache::refreshing(Duration::ZERO, HOUR);

        let first = stale_at_once.get(&fetch).await.unwrap();
        let after_failure = stale_at_once.get(&fetch).await.unwrap();
        let before_retry = stale_at_once.get(&fetch).await.unwrap();

        assert_eq!((*first, *after_failure, *before_retry), (1, 1, 1));
        assert_eq!(reads.load(Ordering::SeqCst), 2, "a failed re-read is not retried on every request");
        let retried = KeyCache::refreshing(Duration::ZERO, Duration::ZERO);
        let values = [retried.get(&fetch).await.unwrap(), retried.get(&fetch).await.unwrap()];
        assert_eq!((*values[0], *values[1]), (3, 3));
    }

    #[tokio::test]
    async fn a_failed_first_read_is_an_error_and_fixed_keys_are_never_read() {
        let failing = || async { Err::<u8, _>(ApiError::Unavailable(anyhow::anyhow!("down"))) };
        let cache = KeyCache::refreshing(HOUR, HOUR);
        assert!(matches!(cache.get(failing).await, Err(ApiError::Unavailable(_))));
        let fixed = KeyCache::fixed(7u8);
        let seen = fixed.get(failing).await.unwrap();
        assert_eq!(*seen, 7);
        assert!(fixed.refetch_for_unknown_key(&seen, failing).await.is_none());
    }
}
