//! argon2id password hashing with OWASP's parameters, always on the blocking pool.

use anyhow::Context as _;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

use crate::domain::Password;

/// OWASP's argon2id minimum: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// A well-formed hash with the current parameters and random salt and output, which no known
/// password matches. Logging in as an unknown email verifies against it, so that answer costs
/// exactly what a wrong password costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$gZiV/M1gPc22ElAH/Jh1Hw$CWOrkoo7oJBQ/iyh7uJ0LO2aLEfrHwTWllSAxT0zRno";

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub async fn hash(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        hasher()
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("argon2 failed: {error}"))
    })
    .await
    .context("the password-hashing task panicked")?
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

/// Checks `password` against `stored`. With no stored hash (unknown email) it still does one
/// full verification, against [`DUMMY_HASH`], and answers [`Verified::No`].
pub async fn verify(password: Password, stored: Option<String>) -> anyhow::Result<Verified> {
    tokio::task::spawn_blocking(move || {
        let phc = stored.as_deref().unwrap_or(DUMMY_HASH);
        let parsed = PasswordHash::new(phc)
            .map_err(|error| anyhow::anyhow!("a stored password hash does not parse: {error}"))?;
        match hasher().verify_password(password.expose().as_bytes(), &parsed) {
            Ok(()) if stored.is_some() => {
                let rehashed = if is_current(&parsed) {
                    None
                } else {
                    let hash = hasher()
                        .hash_password(password.expose().as_bytes())
                        .map_err(|error| anyhow::anyhow!("argon2 failed: {error}"))?;
                    Some(hash.to_string())
                };
                Ok(Verified::Yes { rehashed })
            }
            Ok(()) | Err(argon2::password_hash::Error::PasswordInvalid) => Ok(Verified::No),
            Err(error) => Err(anyhow::anyhow!("argon2 verification failed: {error}")),
        }
    })
    .await
    .context("the password-verification task panicked")?
}

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
    use crate::domain::Email;

    fn password(raw: &str) -> Password {
        Password::parse(raw.to_owned(), &Email::parse("owner@example.com").unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_and_no_other() {
        let stored = hash(password("correct horse battery")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        let matched = verify(password("correct horse battery"), Some(stored.clone())).await.unwrap();
        assert_eq!(matched, Verified::Yes { rehashed: None });
        assert_eq!(verify(password("correct horse battery!"), Some(stored)).await.unwrap(), Verified::No);
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

        assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{upgraded}");
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
