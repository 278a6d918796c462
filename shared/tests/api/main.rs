//! The in-process tests of `shared`, one binary: the handlers called as the runtime calls them,
//! against a real PostgreSQL (a database of each test's own), the local Secrets Manager and SES
//! (`scripts/with-postgres scripts/with-moto`, as `make test` and `make quick` run them).
// The handlers' futures, instrumented and nested, are deeper than rustc's default query limit
// allows when it lays the tests' futures out (as in the functions' mains).
#![recursion_limit = "256"]

mod helpers;

mod account;
mod admin;
mod atomicity;
mod endpoints;
mod events_out;
mod layers;
mod lifecycle;
mod mfa;
mod passkeys;
mod plans;
mod races;
mod reuse;
mod scheduled;
mod second_factor;
mod secrets;
mod security_events;
mod session_lifetime;
mod signatures;
mod socket;
mod throttling;
