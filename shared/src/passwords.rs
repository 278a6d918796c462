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

/// Whether `password` matches `stored`. With no stored hash (unknown email) it still does one
/// full verification, against [`DUMMY_HASH`], and answers `false`.
pub async fn verify(password: Password, stored: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let phc = stored.as_deref().unwrap_or(DUMMY_HASH);
        let parsed = PasswordHash::new(phc)
            .map_err(|error| anyhow::anyhow!("a stored password hash does not parse: {error}"))?;
        match hasher().verify_password(password.expose().as_bytes(), &parsed) {
            Ok(()) => Ok(stored.is_some()),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(error) => Err(anyhow::anyhow!("argon2 verification failed: {error}")),
        }
    })
    .await
    .context("the password-verification task panicked")?
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
        assert!(verify(password("correct horse battery"), Some(stored.clone())).await.unwrap());
        assert!(!verify(password("correct horse battery!"), Some(stored)).await.unwrap());
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let first = hash(password("correct horse battery")).await.unwrap();
        let second = hash(password("correct horse battery")).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(!verify(password("correct horse battery"), None).await.unwrap());
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
