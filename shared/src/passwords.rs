//! argon2id password hashing with OWASP's parameters, always on the blocking pool.
//!
//! argon2's 9 MiB of working memory is allocated once and reused: allocating it per hash left
//! glibc holding up to 120 MB across the blocking pool's threads (measured by `make bench`),
//! more than a 128 MB function can spare. Under Lambda Managed Instances an environment serves
//! many invocations at once, so hashes also queue for one of [`hashers`] slots, each with its
//! buffer: the process never holds more than `hashers() × 9 MiB` of argon2 memory, whatever
//! the concurrency.

use std::sync::{LazyLock, Mutex, PoisonError};

use tokio::sync::Semaphore;

use anyhow::Context as _;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};

use crate::domain::Password;

/// argon2id with 9 MiB of memory, 4 passes, 1 lane: one of the five configurations OWASP's
/// Password Storage Cheat Sheet gives as equal in strength (from 46 MiB and 1 pass to 7 MiB and
/// 5 passes; the previous one was 19 MiB and 2 passes). Each trades memory for passes at about
/// the same CPU time; this one keeps the signup function under 32 MB (`make bench`, section 7).
pub const MEMORY_KIB: u32 = 9_216;
pub const ITERATIONS: u32 = 4;
pub const PARALLELISM: u32 = 1;
const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

/// A well-formed hash with the current parameters and random salt and output, which no known
/// password matches. Logging in as an unknown email verifies against it, so that answer costs
/// exactly what a wrong password costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=9216,t=4,p=1$9z6Sds3+IsRvNVBBtKFc0Q$UQj9/lcpC6YSrnAT4lATbx1lpfdwg3eupQ7wm0QGMCE";

/// Working memory: a buffer per hash in progress at most, each kept for the next hash.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// One permit per hash that may run at once.
static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(hashers()));

/// How many hashes run at once: one per core the environment has (argon2 is CPU-bound: more
/// would finish no sooner, and each holds its 9 MiB).
pub fn hashers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `work` on the blocking pool once a hashing slot is free.
async fn in_a_slot<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let _slot = SLOTS.acquire().await.context("the hashing slots are closed")?;
    tokio::task::spawn_blocking(work).await.with_context(|| format!("the {what} task panicked"))?
}

fn params() -> Params {
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(OUTPUT_BYTES))
        .expect("the OWASP argon2 parameters are valid")
}

/// Runs argon2 with `params` in a buffer of [`MEMORY`] (a new one when every kept buffer is in
/// use; at most one per slot), then puts the buffer back.
fn argon2(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    let hasher = Argon2::new(algorithm, version, params);
    let mut memory = MEMORY.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let hashed = hasher.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks]);
    // A hash with older, larger parameters (verified once, then upgraded) does not leave the
    // process holding its memory from then on.
    let current = self::params().block_count();
    if memory.len() > current {
        memory.truncate(current);
        memory.shrink_to_fit();
    }
    MEMORY.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
    hashed
}

/// A PHC string (`$argon2id$v=19$m=9216,t=4,p=1$salt$hash`) of `password` with today's
/// parameters and a fresh random salt.
fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    let mut salt = [0u8; SALT_BYTES];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let mut out = [0u8; OUTPUT_BYTES];
    argon2(Algorithm::Argon2id, Version::V0x13, params(), password, &salt, &mut out)
        .map_err(|error| anyhow::anyhow!("argon2 failed: {error}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params())
            .map_err(|error| anyhow::anyhow!("argon2 parameters: {error}"))?,
        salt: Some(Salt::new(&salt).map_err(|error| anyhow::anyhow!("argon2 salt: {error}"))?),
        hash: Some(Output::new(&out).map_err(|error| anyhow::anyhow!("argon2 output: {error}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the stored PHC string (compared in constant time).
fn matches(password: &[u8], stored: &PasswordHash) -> anyhow::Result<bool> {
    let malformed = |what: &str| anyhow::anyhow!("a stored password hash has no usable {what}");
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).map_err(|_| malformed("algorithm"))?;
    let version = stored.version.map(Version::try_from).transpose().map_err(|_| malformed("version"))?;
    let params = Params::try_from(stored).map_err(|_| malformed("parameters"))?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(malformed("salt or output"));
    };
    let mut out = vec![0u8; expected.len()];
    argon2(algorithm, version.unwrap_or_default(), params, password, salt, &mut out)
        .map_err(|error| anyhow::anyhow!("argon2 failed: {error}"))?;
    Ok(Output::new(&out).map_err(|error| anyhow::anyhow!("argon2 output: {error}"))? == *expected)
}

/// Hashes a new password into a PHC string (`$argon2id$v=19$m=9216,t=4,p=1$...`).
pub async fn hash(password: Password) -> anyhow::Result<String> {
    in_a_slot("password-hashing", move || hash_now(password.expose().as_bytes())).await
}

/// The outcome of checking a password at login.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password, or no account (verified against [`DUMMY_HASH`] all the same).
    No,
    /// A match; `rehashed` holds a new hash when the stored one used older parameters, so
    /// changing the policy never locks anyone out and upgrades hashes as users log in.
    Yes { rehashed: Option<String> },
}

/// Checks `password` against `stored`. With no stored hash (unknown email), or an unusable one
/// ([`UNUSABLE`]), it still does one full verification, against [`DUMMY_HASH`], and answers
/// [`Verified::No`].
pub async fn verify(password: Password, stored: Option<String>) -> anyhow::Result<Verified> {
    // An unusable password (an undone second-factor change's) matches nothing: checked against
    // the dummy hash, so that it costs what a wrong password does.
    let stored = stored.filter(|hash| !hash.starts_with(UNUSABLE));
    in_a_slot("password-verification", move || {
        let phc = stored.as_deref().unwrap_or(DUMMY_HASH);
        let parsed = PasswordHash::new(phc)
            .map_err(|error| anyhow::anyhow!("a stored password hash does not parse: {error}"))?;
        let matched = matches(password.expose().as_bytes(), &parsed)?;
        if !matched || stored.is_none() {
            return Ok(Verified::No);
        }
        let rehashed = if is_current(&parsed) { None } else { Some(hash_now(password.expose().as_bytes())?) };
        Ok(Verified::Yes { rehashed })
    })
    .await
}

/// How a stored password hash that nothing matches begins (no PHC string does): the account
/// signs in again only through a reset link.
pub const UNUSABLE: &str = "!";

/// Whether a stored hash uses today's algorithm, version and parameters.
fn is_current(hash: &PasswordHash) -> bool {
    let params = Params::try_from(hash);
    hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(Version::V0x13 as u32)
        && params.is_ok_and(|p| (p.m_cost(), p.t_cost(), p.p_cost()) == (MEMORY_KIB, ITERATIONS, PARALLELISM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unusable_hash_matches_no_password() {
        let password = Password::presented("correct horse battery staple".to_owned()).unwrap();
        let verified = verify(password, Some(format!("{UNUSABLE}reset-required"))).await.unwrap();
        assert!(matches!(verified, Verified::No));
    }
    use crate::domain::Email;
    use argon2::PasswordHasher as _;

    fn password(raw: &str) -> Password {
        Password::parse(raw.to_owned(), &Email::parse("owner@example.com").unwrap()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_hashes_share_a_buffer_per_slot_and_no_more() {
        let hashes: Vec<_> =
            (0..4 * hashers() + 3).map(|_| tokio::spawn(hash(password("correct horse battery")))).collect();
        for hash in hashes {
            hash.await.unwrap().unwrap();
        }
        // Other tests hash in this process too, through the same slots: whatever they hold,
        // no more buffers than slots exist.
        let buffers = MEMORY.lock().unwrap().len();
        assert!(buffers <= hashers(), "{buffers} buffers for {} slots", hashers());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_and_no_other() {
        let stored = hash(password("correct horse battery")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=9216,t=4,p=1$"), "{stored}");
        let matched = verify(password("correct horse battery"), Some(stored.clone())).await.unwrap();
        assert_eq!(matched, Verified::Yes { rehashed: None });
        assert_eq!(verify(password("correct horse battery!"), Some(stored)).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_that_the_argon2_crate_verifies() {
        let stored = hash(password("correct horse battery")).await.unwrap();
        let parsed = PasswordHash::new(&stored).unwrap();
        let standard = Argon2::default();
        assert!(
            argon2::PasswordVerifier::verify_password(&standard, b"correct horse battery", &parsed).is_ok()
        );
        assert!(
            argon2::PasswordVerifier::verify_password(&standard, b"correct horse battery!", &parsed).is_err()
        );
    }

    #[tokio::test]
    async fn concurrent_hashes_share_nothing_but_their_answers() {
        let passwords = ["correct horse battery", "battery staple horse", "staple correct horse"];
        let hashes = futures_util::future::join_all(passwords.map(|p| hash(password(p)))).await;
        let checks = hashes
            .iter()
            .zip(passwords)
            .map(|(stored, p)| verify(password(p), Some(stored.as_ref().unwrap().clone())));
        for verified in futures_util::future::join_all(checks).await {
            assert_eq!(verified.unwrap(), Verified::Yes { rehashed: None });
        }
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let first = hash(password("correct horse battery")).await.unwrap();
        let second = hash(password("correct horse battery")).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert_eq!(verify(password("correct horse battery"), None).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn a_hash_with_older_parameters_verifies_and_is_upgraded() {
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8_192, 3, 1, None).unwrap())
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();

        let Verified::Yes { rehashed: Some(upgraded) } =
            verify(password("correct horse battery"), Some(old)).await.unwrap()
        else {
            panic!("an old hash still verifies and is replaced");
        };

        assert!(upgraded.starts_with("$argon2id$v=19$m=9216,t=4,p=1$"), "{upgraded}");
        let again = verify(password("correct horse battery"), Some(upgraded)).await.unwrap();
        assert_eq!(again, Verified::Yes { rehashed: None });
    }

    #[test]
    fn the_dummy_hash_uses_the_current_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (MEMORY_KIB, ITERATIONS, PARALLELISM)
        );
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
    }
}
