//! The second factor's parts: TOTP secrets ([`totp`]) sealed at rest under the MFA key ring
//! ([`seal`], held by [`keys`]), recovery codes ([`recovery`]), and their statements ([`store`]).
//! The use-cases that enrol, confirm, prove and remove them are in `second_factor`.

pub mod keys;
pub mod recovery;
pub mod seal;
pub mod store;
pub mod totp;

pub use keys::MfaKeys;
