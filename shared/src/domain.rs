//! Domain types, parsed once at the edge of a handler; everything inside takes these.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;

/// A user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct UserId(pub Uuid);

/// A session's id: one per signup or login, shared by every refresh token of its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct SessionId(pub Uuid);

impl UserId {
    /// A new, time-ordered id (UUIDv7 keeps the primary-key index append-mostly).
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl SessionId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

/// A TOTP factor's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct FactorId(pub Uuid);

impl FactorId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// What a factor's sealed secret is bound to (the associated data): its user and its id.
    pub fn seal_context(self, user: UserId) -> Vec<u8> {
        [user.0.as_bytes().as_slice(), self.0.as_bytes().as_slice()].concat()
    }
}

/// A passkey's id (ours, not the authenticator's credential id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct PasskeyId(pub Uuid);

impl PasskeyId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

/// A session's authenticator assurance level (NIST SP 800-63B): one factor, or two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aal {
    #[default]
    Aal1,
    Aal2,
}

impl Aal {
    /// As the column and the `aal` claim spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aal1 => "aal1",
            Self::Aal2 => "aal2",
        }
    }

    /// The column's value; anything but `aal2` is one factor.
    pub fn parse(stored: &str) -> Self {
        if stored == "aal2" { Self::Aal2 } else { Self::Aal1 }
    }
}

/// How a session was proven: its level and the methods used (RFC 8176 `amr` values), kept on the
/// session and copied into each access token it is issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assurance {
    pub aal: Aal,
    pub amr: Vec<String>,
}

impl Assurance {
    /// A password sign-in (or a reset link's new password): one factor, `["pwd"]`.
    pub fn password() -> Self {
        Self { aal: Aal::Aal1, amr: vec!["pwd".to_owned()] }
    }

    /// A password and then a TOTP code, or a recovery code (the methods name it, `"recovery"`,
    /// beside `"otp"`): two factors.
    pub fn second_factor(method: SecondFactor) -> Self {
        Self { aal: Aal::Aal2, amr: ["pwd"].iter().chain(method.amr()).map(|m| (*m).to_owned()).collect() }
    }

    /// A passkey with user verification: something the user has, unlocked by something they are
    /// or know, so two factors at once. `"hwk"` for a key bound to its device, `"swk"` for a
    /// synced one (backup-eligible: a copy lives in a password manager's cloud), and `"user"`
    /// for the verification.
    pub fn passkey(synced: bool) -> Self {
        Self { aal: Aal::Aal2, amr: Self::passkey_methods(synced).iter().map(|m| (*m).to_owned()).collect() }
    }

    /// [`Assurance::passkey`]'s methods.
    pub fn passkey_methods(synced: bool) -> &'static [&'static str] {
        if synced { &["swk", "user"] } else { &["hwk", "user"] }
    }

    /// As a session row stores it.
    pub fn stored(aal: &str, amr: Vec<String>) -> Self {
        Self { aal: Aal::parse(aal), amr }
    }
}

/// A change to a user's second factor or passkeys, which mails its owner a "this wasn't me"
/// link that undoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityChange {
    FactorAdded,
    FactorRemoved,
    RecoveryCodesRenewed,
    PasskeyAdded,
    PasskeyRemoved,
}

impl SecurityChange {
    /// As `security_undo_tokens.change` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FactorAdded => "factor_added",
            Self::FactorRemoved => "factor_removed",
            Self::RecoveryCodesRenewed => "recovery_codes_renewed",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
        }
    }

    /// The type of the security event that records it.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::FactorAdded => "mfa_enrolled",
            Self::FactorRemoved => "mfa_removed",
            Self::RecoveryCodesRenewed => "recovery_codes_regenerated",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
        }
    }

    /// How long its undo link works.
    pub const UNDO_LIFETIME: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
}

/// How a second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A TOTP code.
    Totp,
    /// One of the user's recovery codes.
    RecoveryCode,
}

impl SecondFactor {
    /// As a security event's detail names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
        }
    }

    /// The methods (RFC 8176 `amr` values) it adds to a session: a one-time password, and for a
    /// recovery code the marker `"recovery"` (not in RFC 8176's registry) beside it.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Self::Totp => &["otp"],
            Self::RecoveryCode => &["otp", "recovery"],
        }
    }
}

/// What a session records of the client that opened it, for the session list: its
/// `User-Agent` (cut to [`MAX_USER_AGENT_CHARS`]) and the source address the front door saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// Who made a change, as its security event records them: the session and where the request
/// came from.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub session: SessionId,
    pub device: &'a Device,
}

/// The longest `User-Agent` a session keeps; the rest is cut.
pub const MAX_USER_AGENT_CHARS: usize = 512;

impl Device {
    /// A device from what the request said; a blank user agent is none.
    pub fn new(user_agent: Option<&str>, ip: Option<std::net::IpAddr>) -> Self {
        let user_agent = user_agent
            .map(str::trim)
            .filter(|agent| !agent.is_empty())
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
        Self { user_agent, ip }
    }

    /// The address, as text for a statement's `$n::text::inet` (a session's, a security event's).
    pub fn ip_text(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }

    /// The source address as the throttles count it: an IPv4 address (an IPv4-mapped IPv6 one
    /// as IPv4), or the /64 of an IPv6 address, the block one subscriber or host is given.
    pub fn source(&self) -> Option<String> {
        match self.ip? {
            std::net::IpAddr::V4(v4) => Some(v4.to_string()),
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Some(v4.to_string()),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    Some(format!("{}/64", std::net::Ipv6Addr::from(network)))
                }
            },
        }
    }
}

/// What a link sent by mail is for. Each kind has its own token per user (a newer one replaces
/// the older) and its own lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// Proves the address: `POST /auth/verify-email`. Lives 24 hours.
    VerifyEmail,
    /// Sets a new password: `POST /auth/password/reset`. Lives 1 hour.
    ResetPassword,
}

impl MailKind {
    /// The kind as the database stores it (`mail_tokens.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }

    /// How long the link works.
    pub fn lifetime(self) -> std::time::Duration {
        match self {
            Self::VerifyEmail => std::time::Duration::from_secs(24 * 3600),
            Self::ResetPassword => std::time::Duration::from_secs(3600),
        }
    }
}

/// The longest email address SMTP can carry (RFC 5321's path limit less the brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// A normalised email address: trimmed, lower-cased, one `@` between non-empty parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises and checks `raw`; a 422 `invalid_email` names what is wrong.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let email = raw.trim().to_lowercase();
        let invalid = |why: &str| ApiError::validation("invalid_email", why.to_owned());
        if email.is_empty() {
            return Err(invalid("the email is empty"));
        }
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(invalid("the email is longer than 254 characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("the email contains whitespace or control characters"));
        }
        let mut parts = email.split('@');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty() => Ok(Self(email)),
            _ => Err(invalid("the email must have exactly one @ between a name and a domain")),
        }
    }

    /// An address read back from `users`, which holds only normalised ones: one that does not
    /// parse is the database's fault, not the client's (a 500).
    pub(crate) fn stored(raw: &str) -> Result<Self, ApiError> {
        Self::parse(raw).map_err(|_| ApiError::Unexpected(anyhow::anyhow!("a stored email does not parse")))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 256;

/// A candidate password for a new account (NIST SP 800-63B): 8 to 256 characters, no
/// composition rules, not the email or its local part, and not guessable: zxcvbn, with its
/// bundled frequency lists (30,000 common passwords, matched case-insensitively and through
/// l33t substitutions), must estimate at least 10^6 guesses (score 2 of 4). Held as a secret
/// so it cannot be logged.
#[derive(Clone)]
pub struct Password(SecretString);

/// How much of a new password zxcvbn reads. Its cost grows with the input's length times the
/// l33t readings it tries: one per way of reading the input's l33t symbols as letters, the
/// product over letters of the symbols that may stand for each (`c` has four: `(`, `{`, `[`,
/// `<`). An input holding all twenty symbols costs hundreds of argon2 runs, on an anonymous
/// request (BENCHMARKS.md, section 7). So zxcvbn reads the first 64 characters (a password
/// whose first 64 are guessable is guessable), with the l33t symbols kept in order of first
/// appearance while their readings stay within [`L33T_READINGS`]. A symbol that would take them
/// past it stands in as a character of its own that no dictionary, keyboard, sequence or
/// substitution knows: it still counts as a character, but opens no reading. Digits alone never
/// pass the limit (only `6`/`9` for `g` and `1`/`7` for `l` multiply), so dates, years and
/// digit runs are always read as such.
const STRENGTH_CHECKED_CHARS: usize = 64;

/// The most l33t readings zxcvbn is given of a new password.
const L33T_READINGS: usize = 4;

/// zxcvbn 3's l33t table (`matching::L33T_TABLE`): each letter, and the symbols read as it.
/// Should zxcvbn's table change, only the bound on its work would be off, not the policy.
const L33T_TABLE: [(char, &str); 12] = [
    ('a', "4@"),
    ('b', "8"),
    ('c', "({[<"),
    ('e', "3"),
    ('g', "69"),
    ('i', "1!|"),
    ('l', "1|7"),
    ('o', "0"),
    ('s', "$5"),
    ('t', "+7"),
    ('x', "%"),
    ('z', "2"),
];

/// How many l33t readings zxcvbn tries of an input holding `symbols`.
fn l33t_readings(symbols: &[char]) -> usize {
    L33T_TABLE
        .iter()
        .map(|(_, read_as)| read_as.chars().filter(|c| symbols.contains(c)).count().max(1))
        .product()
}

/// What zxcvbn reads of `password` (see [`STRENGTH_CHECKED_CHARS`]).
fn strength_checked(password: &str) -> String {
    let is_l33t = |c: char| L33T_TABLE.iter().any(|(_, read_as)| read_as.contains(c));
    let (mut kept, mut stand_ins) = (Vec::new(), Vec::new());
    password
        .chars()
        .take(STRENGTH_CHECKED_CHARS)
        .map(|c| {
            if !is_l33t(c) || kept.contains(&c) {
                return c;
            }
            if !stand_ins.contains(&c) {
                kept.push(c);
                if l33t_readings(&kept) <= L33T_READINGS {
                    return c;
                }
                kept.pop();
                stand_ins.push(c);
            }
            // Private-use characters, 16 apart: no two of them make a sequence either.
            let index = stand_ins.iter().position(|&s| s == c).unwrap_or_default() as u32;
            char::from_u32(0xE000 + 16 * index).unwrap_or('\u{E000}')
        })
        .collect()
}

/// The lowest zxcvbn score accepted: 2, "somewhat guessable", at least 10^6 guesses.
const MIN_STRENGTH: zxcvbn::Score = zxcvbn::Score::Two;

impl Password {
    /// Checks a new password against the policy; a 422 `weak_password` names the rule.
    pub fn parse(raw: String, email: &Email) -> Result<Self, ApiError> {
        let raw = SecretString::from(raw);
        let chars = raw.expose_secret().chars().count();
        let invalid = |why: String| ApiError::validation("weak_password", why);
        if chars < MIN_PASSWORD_CHARS {
            return Err(invalid(format!("the password must be at least {MIN_PASSWORD_CHARS} characters")));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(invalid(format!("the password must be at most {MAX_PASSWORD_CHARS} characters")));
        }
        let folded = raw.expose_secret().trim().to_lowercase();
        let local_part = email.as_str().split('@').next().unwrap_or_default();
        if folded == email.as_str() || folded == local_part {
            return Err(invalid("the password must not be the email address or its name part".to_owned()));
        }
        if zxcvbn::zxcvbn(&strength_checked(raw.expose_secret()), &[email.as_str(), local_part]).score()
            < MIN_STRENGTH
        {
            return Err(invalid(
                "the password is too easy to guess: it is a common password or close to one".to_owned(),
            ));
        }
        Ok(Self(raw))
    }

    /// A password presented at login. It is not held to the policy (the policy may have changed
    /// since the account was made), only bounded so a huge body cannot buy a long hash.
    pub fn presented(raw: String) -> Result<Self, ApiError> {
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::InvalidCredentials);
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// The password itself, for the hasher only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the user proved they hold the address (a verification link, or a password reset);
    /// `null` until then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub email_verified_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(raw: &str) -> Email {
        Email::parse(raw).expect("valid email")
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(email("  Alice@Example.COM ").as_str(), "alice@example.com");
    }

    #[test]
    fn emails_need_exactly_one_at_between_non_empty_parts() {
        for raw in ["", "   ", "alice", "@example.com", "alice@", "a@b@c", "al ice@example.com"] {
            let error = Email::parse(raw).expect_err(raw);
            assert_eq!(error.code(), "invalid_email", "{raw}");
        }
    }

    #[test]
    fn emails_longer_than_254_characters_are_rejected() {
        let at_limit = format!("{}@example.com", "a".repeat(254 - 12));
        assert!(Email::parse(&at_limit).is_ok());
        let over = format!("{}@example.com", "a".repeat(255 - 12));
        assert!(Email::parse(&over).is_err());
    }

    #[test]
    fn passwords_are_counted_in_characters_between_8_and_256() {
        let owner = email("a@example.com");
        assert!(Password::parse("ñ7Ωq€z2".into(), &owner).is_err(), "7 characters, 13 bytes");
        assert!(Password::parse("ñ7Ωq€z2ß".into(), &owner).is_ok());
        let long: String = "correct horse battery staple ".repeat(9).chars().take(256).collect();
        assert!(Password::parse(long.clone(), &owner).is_ok());
        let error = Password::parse(format!("{long}x"), &owner).unwrap_err();
        assert_eq!(error.code(), "weak_password");
        assert!(error.to_string().contains("at most 256"), "{error}");
    }

    #[test]
    fn a_source_address_counts_per_ipv4_address_and_per_ipv6_64() {
        let source = |ip: &str| Device::new(None, Some(ip.parse().unwrap())).source();
        assert_eq!(source("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(source("::ffff:203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(source("2001:db8:1:2:aaaa::1").as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(source("2001:db8:1:2:ffff:ffff:ffff:ffff"), source("2001:db8:1:2::9"), "one /64");
        assert_ne!(source("2001:db8:1:2::1"), source("2001:db8:1:3::1"), "another /64");
        assert_eq!(Device::new(None, None).source(), None);
    }

    #[test]
    fn the_strength_of_a_long_password_is_judged_on_its_first_64_characters() {
        let owner = email("a@example.com");
        let strong_tail = "violet tractor umbrella sunrise ".repeat(5);
        // Guessable for 64 characters (one word repeated), then strong: the tail is not read.
        let guessable_head = "password".repeat(8);
        let error = Password::parse(format!("{guessable_head}{strong_tail}"), &owner).unwrap_err();
        assert_eq!(error.code(), "weak_password");
        // Strong within its first 64 characters: accepted, whatever follows.
        let strong_head: String = strong_tail.chars().take(64).collect();
        assert!(Password::parse(format!("{strong_head}{}", "a".repeat(150)), &owner).is_ok());
        assert_eq!(strength_checked("ñ".repeat(120).as_str()).chars().count(), 64, "characters, not bytes");
    }

    #[test]
    fn l33t_symbols_are_read_while_their_readings_stay_few() {
        // Every l33t symbol zxcvbn knows, over and over: it is given at most four readings.
        let all: String = L33T_TABLE.iter().map(|(_, read_as)| *read_as).collect();
        let checked = strength_checked(&all.repeat(4));
        let symbols: Vec<char> = checked.chars().filter(|c| all.contains(*c)).collect();
        assert!(l33t_readings(&symbols) <= L33T_READINGS, "{checked:?}");
        assert_eq!(checked.chars().count(), 64);
        let distinct: std::collections::BTreeSet<char> = checked.chars().collect();
        assert_eq!(
            distinct.len(),
            all.chars().collect::<std::collections::BTreeSet<_>>().len(),
            "one stand-in per symbol"
        );
        // Digits, and the symbols people dress a word in, are read as they are.
        for kept in ["1234567890", "01/02/1985", "p@$$w0rd", "P4@ssw0rd!", "!@#$%^&*"] {
            assert_eq!(strength_checked(kept), kept);
        }
    }

    #[test]
    fn guessable_passwords_full_of_digits_and_symbols_are_still_rejected() {
        let owner = email("a@example.com");
        for guessable in [
            "12345678",
            "123456789",
            "1234567890",
            "87654321",
            "01/02/1985",
            "1234p@$$w0rd",
            "!@#$%^&*",
            "P@$$w0rd",
            "p4ssw0rd!",
            "1etme1n",
        ] {
            assert_eq!(
                Password::parse(guessable.into(), &owner).expect_err(guessable).code(),
                "weak_password"
            );
        }
    }

    #[test]
    fn common_passwords_are_rejected_in_any_case() {
        let owner = email("alice@example.com");
        for common in ["password", "PASSWORD1", "Iloveyou", "qwertyuiop", "P@ssw0rd", "11111111", "abcd1234"]
        {
            let error = Password::parse(common.into(), &owner).expect_err(common);
            assert_eq!(error.code(), "weak_password", "{common}");
            assert!(error.to_string().contains("too easy to guess"), "{common}: {error}");
        }
        assert!(Password::parse("violet tractor umbrella".into(), &owner).is_ok());
    }

    #[test]
    fn a_password_equal_to_the_email_name_part_is_rejected() {
        let owner = email("zanzibar.quokka@example.com");
        let error = Password::parse("Zanzibar.Quokka".into(), &owner).unwrap_err();
        assert!(error.to_string().contains("name part"), "{error}");
    }

    #[test]
    fn a_password_equal_to_the_email_is_rejected_in_any_case() {
        let owner = email("alice@example.com");
        assert!(Password::parse("Alice@Example.com".into(), &owner).is_err());
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let password = Password::parse("correct horse battery".into(), &email("a@b.c")).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
