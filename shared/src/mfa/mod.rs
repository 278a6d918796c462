//! The second factor's parts: TOTP secrets ([`totp`]) sealed at rest under the MFA key ring
//! ([`seal`], held by [`keys`]), recovery codes ([`recovery`]), and their statements ([`store`]).
//! The use-cases that enrol, confirm, prove and remove them are in `second_factor`.

pub mod keys;
pub mod recovery;
pub mod seal;
pub mod store;
pub mod totp;

pub use keys::MfaKeys;

/// How long a sign-in waits for its second factor (an `mfa_token`'s life).
pub const MFA_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(300);
