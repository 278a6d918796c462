//! Recovery codes: [`COUNT`] per user, each 80 random bits shown as 16 base32 characters in four
//! groups (`ABCD-EFGH-IJKL-MNOP`), stored only as SHA-256 hashes and accepted once. 80 bits of
//! randomness need no slow hash: nobody enumerates 2^80 candidates against a leaked table.

use aws_lc_rs::digest;
use secrecy::{ExposeSecret as _, SecretString};

use super::totp::base32;

/// Codes per set.
pub const COUNT: usize = 10;
/// Random bytes per code: 80 bits.
const CODE_BYTES: usize = 10;
/// Characters per code, without its dashes.
const CODE_CHARS: usize = 16;

/// One recovery code, as shown to its user once.
pub struct RecoveryCode(SecretString);

impl RecoveryCode {
    /// A fresh code.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; CODE_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
        let plain = base32(&bytes);
        let grouped: Vec<&str> = (0..CODE_CHARS).step_by(4).map(|at| &plain[at..at + 4]).collect();
        Ok(Self(grouped.join("-").into()))
    }

    /// The code as shown.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Its stored hash.
    pub fn hash(&self) -> Vec<u8> {
        hash_presented(self.expose()).expect("a generated code is well formed")
    }
}

/// The hash of a code as a user typed it (any case, dashes and spaces anywhere), or `None` for
/// what cannot be a code.
pub fn hash_presented(code: &str) -> Option<Vec<u8>> {
    let plain: String =
        code.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
    let well_formed = plain.len() == CODE_CHARS
        && plain.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
    well_formed.then(|| digest::digest(&digest::SHA256, plain.as_bytes()).as_ref().to_vec())
}

/// A fresh set of [`COUNT`] codes.
pub fn generate_set() -> anyhow::Result<Vec<RecoveryCode>> {
    (0..COUNT).map(|_| RecoveryCode::generate()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_four_groups_of_base32_and_matches_however_it_is_typed() {
        let code = RecoveryCode::generate().unwrap();
        let shown = code.expose();

        assert_eq!(shown.len(), 19);
        assert_eq!(shown.matches('-').count(), 3);
        let typed = shown.replace('-', " ").to_lowercase();
        assert_eq!(hash_presented(&typed), Some(code.hash()));
        assert_eq!(hash_presented(&shown.replace('-', "")), Some(code.hash()));
    }

    #[test]
    fn what_cannot_be_a_code_has_no_hash() {
        for bad in
            ["", "ABCD-EFGH-IJKL", "ABCD-EFGH-IJKL-MNOP-QRST", "ABCD-EFGH-IJKL-MNO1", "ÄBCD-EFGH-IJKL-MNOP"]
        {
            assert_eq!(hash_presented(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_set_is_ten_distinct_codes() {
        let set = generate_set().unwrap();
        let hashes: std::collections::BTreeSet<_> = set.iter().map(RecoveryCode::hash).collect();
        assert_eq!(hashes.len(), COUNT);
    }
}
