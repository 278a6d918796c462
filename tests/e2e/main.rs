//! The app end to end, one binary: the real function binaries behind the local Lambda emulator
//! (`tools/emulator`), a database of each test's own on the server `scripts/with-postgres`
//! starts, the local Secrets Manager and SES of `scripts/with-moto`; and the house rules that
//! keep template.yaml the one list of functions (`house`).

mod helpers;

mod account;
mod admin;
mod browser;
mod contract;
mod events_out;
mod house;
mod idle_session;
mod issuer;
mod keys_script;
mod lifecycle;
mod managed_instances;
mod metrics;
mod migrate;
mod outage;
mod passkeys;
mod password_races;
mod pooler;
mod rotation;
mod samples;
mod second_factor;
mod secrets;
mod smoke;
mod throttling;
mod tls;
mod trace_logging;
mod unreachable_aws;
mod wrapper;
