//! Secrets at rest: a factor's TOTP secret is stored sealed with AES-256-GCM under a key of the
//! MFA key ring, never in the clear. Each sealed value names its key, so the ring can rotate: a
//! new key becomes `current` and seals from then on, the old ones stay to open what they sealed.
//! The associated data binds a ciphertext to its row (user and factor), so a sealed secret copied
//! into another row does not open.
//!
//! The ring (`MFA_KEYS`, or the secret `MFA_KEYS_SECRET_ARN` names):
//! `{"current": "2026-12", "keys": {"2026-12": "<32 bytes, base64>"}}`.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context as _;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// A key's length: AES-256.
pub const KEY_BYTES: usize = 32;

/// The MFA key ring: the key that seals, and every key that may still have to open.
pub struct SealingKeys {
    current: String,
    keys: BTreeMap<String, LessSafeKey>,
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys())
            .finish()
    }
}

/// A sealed value as stored: the key's id, then the nonce followed by the ciphertext and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ring {
    current: String,
    keys: BTreeMap<String, SecretString>,
}

impl SealingKeys {
    /// Reads a ring. Refuses a `current` the ring lacks and a key that is not 32 bytes of base64;
    /// errors name the key, never a value.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let ring: Ring = serde_json::from_str(text).map_err(|error| {
            anyhow::anyhow!(
                "the MFA key ring is not {{\"current\", \"keys\"}} ({})",
                crate::secrets::describe_json_error(&error)
            )
        })?;
        let mut keys = BTreeMap::new();
        for (id, encoded) in &ring.keys {
            let bytes = STANDARD
                .decode(encoded.expose_secret().trim())
                .ok()
                .filter(|bytes| bytes.len() == KEY_BYTES)
                .with_context(|| format!("MFA key {id:?} is not {KEY_BYTES} bytes of base64"))?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| anyhow::anyhow!("MFA key {id:?}"))?;
            keys.insert(id.clone(), LessSafeKey::new(key));
        }
        anyhow::ensure!(
            keys.contains_key(&ring.current),
            "the MFA key ring has no key {:?} (its current)",
            ring.current
        );
        Ok(Self { current: ring.current, keys })
    }

    /// Seals `plaintext` under the current key, with a random nonce, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> anyhow::Result<Sealed> {
        let key = &self.keys[&self.current];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
        let mut sealed = plaintext.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut sealed)
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut bytes = nonce.to_vec();
        bytes.append(&mut sealed);
        Ok(Sealed { key_id: self.current.clone(), bytes })
    }

    /// Opens what [`SealingKeys::seal`] sealed with the same `context`. Fails for a key the ring
    /// no longer has, a different context, or any altered byte.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> anyhow::Result<Vec<u8>> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .with_context(|| format!("the MFA key ring has no key {:?}", sealed.key_id))?;
        anyhow::ensure!(sealed.bytes.len() > NONCE_LEN, "a sealed value too short to hold its nonce");
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("a malformed nonce"))?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = key
            .open_in_place(nonce, Aad::from(context), &mut buffer)
            .map_err(|_| anyhow::anyhow!("a sealed value did not open under key {:?}", sealed.key_id))?;
        Ok(plaintext.to_vec())
    }

    /// Whether the ring holds the key `key_id`.
    pub fn has(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        &self.current
    }
}

/// A fresh key, base64, for a ring (`scripts/keys`, tests).
pub fn generate_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; KEY_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
    Ok(STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(current: &str, ids: &[(&str, &str)]) -> anyhow::Result<SealingKeys> {
        let keys: serde_json::Map<_, _> =
            ids.iter().map(|(id, key)| ((*id).to_owned(), (*key).into())).collect();
        SealingKeys::from_json(&serde_json::json!({ "current": current, "keys": keys }).to_string())
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_context_and_intact() {
        let key = generate_key().unwrap();
        let keys = ring("k1", &[("k1", &key)]).unwrap();
        let sealed = keys.seal(b"a totp secret", b"user 1 factor 1").unwrap();

        assert_eq!(keys.open(&sealed, b"user 1 factor 1").unwrap(), b"a totp secret");
        assert!(keys.open(&sealed, b"user 2 factor 1").is_err(), "moved to another row");
        let mut altered = sealed.clone();
        *altered.bytes.last_mut().unwrap() ^= 1;
        assert!(keys.open(&altered, b"user 1 factor 1").is_err());
        assert_ne!(
            keys.seal(b"a totp secret", b"x").unwrap().bytes,
            keys.seal(b"a totp secret", b"x").unwrap().bytes,
            "fresh nonces"
        );
        assert!(!sealed.bytes.windows(13).any(|window| window == b"a totp secret"), "no plaintext at rest");
    }

    #[test]
    fn after_a_rotation_the_new_key_seals_and_the_old_one_still_opens() {
        let (old, new) = (generate_key().unwrap(), generate_key().unwrap());
        let before = ring("old", &[("old", &old)]).unwrap();
        let sealed_before = before.seal(b"secret", b"row").unwrap();
        let after = ring("new", &[("old", &old), ("new", &new)]).unwrap();
        let sealed_after = after.seal(b"secret", b"row").unwrap();
        let retired = ring("new", &[("new", &new)]).unwrap();

        assert_eq!(sealed_before.key_id, "old");
        assert_eq!(sealed_after.key_id, "new");
        assert_eq!(after.open(&sealed_before, b"row").unwrap(), b"secret");
        assert!(retired.open(&sealed_before, b"row").unwrap_err().to_string().contains("no key \"old\""));
    }

    #[test]
    fn a_malformed_ring_is_refused_naming_the_key_not_its_value() {
        let short = STANDARD.encode([7u8; 16]);
        let error = ring("k1", &[("k1", &short)]).unwrap_err().to_string();
        assert!(error.contains("\"k1\"") && !error.contains(&short), "{error}");
        assert!(ring("k2", &[("k1", &generate_key().unwrap())]).is_err(), "current not in the ring");
        assert!(SealingKeys::from_json("{\"current\":\"k1\"}").is_err());
    }
}
