//! The MFA key ring a function holds while warm.

use std::sync::Arc;

use anyhow::Context as _;

use super::seal::{Sealed, SealingKeys};
use crate::config::MfaKeySource;
use crate::db::SharedSecrets;
use crate::error::ApiError;
use crate::keys::KeyCache;
use crate::secrets::Secrets;

/// The MFA key ring a function holds while warm: from the environment once, or from its secret
/// on first use and again on the token keys' TTL. A sealed value naming a key the ring lacks
/// (another sandbox read a rotated ring first) makes it read the secret again, rate-limited.
pub struct MfaKeys {
    cache: KeyCache<SealingKeys>,
    arn: Option<String>,
    secrets: SharedSecrets,
}

impl MfaKeys {
    /// From the configuration, which read a ring in the environment already.
    pub fn from_config(source: MfaKeySource, secrets: SharedSecrets) -> Self {
        match source {
            MfaKeySource::Env(keys) => Self::fixed(keys),
            MfaKeySource::Secret { arn, refresh_after, refetch_interval } => {
                Self { cache: KeyCache::refreshing(refresh_after, refetch_interval), arn: Some(arn), secrets }
            }
        }
    }

    /// A ring that never changes (tests, tools).
    pub fn fixed(keys: SealingKeys) -> Self {
        Self { cache: KeyCache::fixed(keys), arn: None, secrets: SharedSecrets::default() }
    }

    async fn read(&self) -> Result<SealingKeys, ApiError> {
        let arn =
            self.arn.as_deref().context("a fixed ring is never read again").map_err(ApiError::Unexpected)?;
        let secrets = self.secrets.get_or_init(Secrets::from_env).await;
        let text = secrets.text(arn).await.map_err(|error| ApiError::Unavailable(error.into()))?;
        SealingKeys::from_json(&text).with_context(|| format!("secret {arn}")).map_err(ApiError::Unexpected)
    }

    /// The current ring.
    pub async fn current(&self) -> Result<Arc<SealingKeys>, ApiError> {
        self.cache.get(|| self.read()).await
    }

    /// Seals `plaintext` for the row `context` names.
    pub async fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, ApiError> {
        Ok(self.current().await?.seal(plaintext, context)?)
    }

    /// Opens a sealed value; one naming a key this ring lacks reads the ring again first.
    pub async fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, ApiError> {
        let keys = self.current().await?;
        if keys.has(&sealed.key_id) {
            return Ok(keys.open(sealed, context)?);
        }
        let newer = self.cache.refetch_for_unknown_key(&keys, || self.read()).await.unwrap_or(keys);
        Ok(newer.open(sealed, context)?)
    }
}
