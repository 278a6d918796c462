//! Everything the auth functions share: configuration, the lazily created Postgres pool, the
//! domain types, password hashing, tokens, the use-cases of each aggregate (accounts, sessions,
//! mail links) with their SQL, the operations (migration, health, maintenance), the security
//! events' way out to EventBridge and the Lambda wiring.
//!
//! Each binary under `functions/` hands one module of [`handlers`] to [`runtime::run`].

pub mod accounts;
pub mod admin;
pub mod app;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod event;
pub mod events_out;
pub mod handlers;
pub mod http;
pub mod issuer;
pub mod keys;
pub mod links;
pub mod mail;
pub mod metrics;
pub mod mfa;
pub mod ops;
pub mod passkeys;
pub mod passwords;
pub mod runtime;
pub mod second_factor;
pub mod secrets;
pub mod security_events;
pub mod sessions;
pub mod tokens;
