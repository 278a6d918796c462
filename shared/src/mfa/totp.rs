//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits, 30-second
//! steps, the step before and after accepted for clock drift. What authenticator apps implement.

use aws_lc_rs::{constant_time, hmac};
use secrecy::{ExposeSecret as _, SecretBox};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps accepted either side of the current one.
const DRIFT_STEPS: i64 = 1;
/// A secret's length: 160 bits, RFC 4226's recommendation for HMAC-SHA-1.
pub const SECRET_BYTES: usize = 20;

/// A factor's shared secret, as an authenticator app holds it.
pub struct TotpSecret(SecretBox<[u8; SECRET_BYTES]>);

impl TotpSecret {
    /// A fresh random secret.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = Box::new([0u8; SECRET_BYTES]);
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
        Ok(Self(SecretBox::new(bytes)))
    }

    /// The secret from its bytes (after unsealing); `None` unless it is [`SECRET_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; SECRET_BYTES] = bytes.try_into().ok()?;
        Some(Self(SecretBox::new(Box::new(bytes))))
    }

    /// The raw bytes, for sealing.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The secret an app was given as base32 (what an authenticator, or a test, holds); `None`
    /// for anything else.
    pub fn from_base32(text: &str) -> Option<Self> {
        let mut bytes = Vec::with_capacity(SECRET_BYTES);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for c in text.trim_end_matches('=').bytes() {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'2'..=b'7' => c - b'2' + 26,
                _ => return None,
            };
            buffer = (buffer << 5) | u32::from(value);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
                buffer &= (1 << bits) - 1;
            }
        }
        Self::from_bytes(&bytes)
    }

    /// Base32 (RFC 4648, no padding), as apps take it typed in or in an `otpauth://` URI.
    pub fn base32(&self) -> String {
        base32(self.expose())
    }

    /// The code of `step` (`unix time / 30`): HOTP's dynamic truncation, [`DIGITS`] digits.
    pub fn code_at(&self, step: u64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, self.expose());
        let mac = hmac::sign(&key, &step.to_be_bytes());
        let mac = mac.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary =
            u32::from_be_bytes([mac[offset] & 0x7f, mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
        format!("{:0width$}", binary % 10u32.pow(DIGITS as u32), width = DIGITS)
    }

    /// The step whose code `code` is, among those within the drift of `now_step`, and later than
    /// `last_used` (a code is accepted once: whoever saw it cannot use it again, nor an earlier
    /// one). Every candidate is compared, in constant time, so the time taken tells nothing.
    pub fn matching_step(&self, code: &str, now_step: u64, last_used: Option<u64>) -> Option<u64> {
        let code = normalise(code)?;
        let mut matched = None;
        for delta in -DRIFT_STEPS..=DRIFT_STEPS {
            let Some(step) = now_step.checked_add_signed(delta) else { continue };
            let equal =
                constant_time::verify_slices_are_equal(self.code_at(step).as_bytes(), code.as_bytes())
                    .is_ok();
            if equal && last_used.is_none_or(|last| step > last) && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }
}

/// The step of `unix_seconds`.
pub fn step_of(unix_seconds: u64) -> u64 {
    unix_seconds / STEP_SECONDS
}

/// A code as a user types it: digits, with spaces allowed between them (apps show `123 456`).
fn normalise(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// RFC 4648 base32, upper case, no padding.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u16, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 31)]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[usize::from((buffer << (5 - bits)) & 31)]));
    }
    out
}

/// The `otpauth://` URI an authenticator app reads from a QR code (Google Authenticator's Key
/// Uri Format): the label `issuer:account`, the secret, and the parameters spelled out.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        percent_encode(issuer),
        percent_encode(account),
        secret.base32(),
        percent_encode(issuer)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_read_back_from_its_base32_is_the_same_secret() {
        let secret = TotpSecret::generate().unwrap();
        let read = TotpSecret::from_base32(&secret.base32()).expect("its own base32");
        assert_eq!(read.expose(), secret.expose());
        assert!(TotpSecret::from_base32("not base32!").is_none());
        assert!(TotpSecret::from_base32("ABCDEFGH").is_none(), "too short for a secret");
    }

    /// RFC 6238 appendix B's SHA-1 secret.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn codes_match_rfc_6238s_test_vectors() {
        // Appendix B gives 8 digits; 6 digits are their last six.
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(rfc_secret().code_at(step_of(time)), eight[2..], "at {time}");
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_only_after_the_last_used() {
        let secret = rfc_secret();
        let now = step_of(1_234_567_890);
        let code = |step| secret.code_at(step);

        assert_eq!(secret.matching_step(&code(now), now, None), Some(now));
        assert_eq!(secret.matching_step(&code(now - 1), now, None), Some(now - 1));
        assert_eq!(secret.matching_step(&code(now + 1), now, None), Some(now + 1));
        assert_eq!(secret.matching_step(&code(now - 2), now, None), None, "too old");
        assert_eq!(secret.matching_step(&code(now + 2), now, None), None, "too far ahead");
        assert_eq!(secret.matching_step(&code(now), now, Some(now)), None, "used already");
        assert_eq!(secret.matching_step(&code(now - 1), now, Some(now)), None, "older than the last used");
        assert_eq!(secret.matching_step(&code(now + 1), now, Some(now)), Some(now + 1));
    }

    #[test]
    fn codes_are_six_digits_spaces_allowed() {
        let secret = rfc_secret();
        let now = step_of(59);
        let code = secret.code_at(now);
        let spaced = format!("{} {}", &code[..3], &code[3..]);

        assert_eq!(secret.matching_step(&spaced, now, None), Some(now));
        for malformed in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert_eq!(secret.matching_step(malformed, now, None), None, "{malformed:?}");
        }
    }

    #[test]
    fn base32_is_rfc_4648s() {
        // RFC 4648 section 10, without padding.
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(rfc_secret().base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn the_otpauth_uri_names_issuer_account_and_parameters() {
        let uri = otpauth_uri(&rfc_secret(), "Example Auth", "alice+mfa@example.com");

        assert_eq!(
            uri,
            "otpauth://totp/Example%20Auth:alice%2Bmfa%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Example%20Auth&algorithm=SHA1&digits=6&period=30"
        );
    }
}
