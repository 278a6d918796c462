//! Applies the embedded migrations to the database the environment names, with the same
//! settings as the functions (`DATABASE_URL`; `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`,
//! `DB_NAME`; or `DB_SECRET_ARN`), as the schema owner, then grants the application role
//! (`DB_APPLICATION_ROLE` or `DB_APPLICATION_SECRET_ARN`) its privileges, and turns the security
//! events' outbox on or off (`EVENTS_OUT`, default true): `make migrate`. In AWS
//! the `migrate` function does the same.

use shared::app::App;
use shared::handlers::migrate;
use shared::ops::migration::{self, ApplicationRole, EventsOut};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let app = App::from_env(migrate::NEEDS)?;
    let done = migration::run(&app, &ApplicationRole::from_env(), EventsOut::from_env()).await?;
    println!("migrations applied: {done}");
    Ok(())
}
