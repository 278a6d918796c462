//! Everything the auth functions share: configuration, the lazily created Postgres pool, the
//! domain types, password hashing, tokens, the transactional auth logic and the Lambda wiring.
//!
//! Each binary under `functions/` hands one module of [`handlers`] to [`runtime::run`].

pub mod app;
pub mod auth;
pub mod config;
pub mod custom_resource;
pub mod db;
pub mod domain;
pub mod error;
pub mod event;
pub mod handlers;
pub mod http;
pub mod issuer;
pub mod keys;
pub mod mail;
pub mod maintenance;
pub mod metrics;
pub mod passwords;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod tokens;
