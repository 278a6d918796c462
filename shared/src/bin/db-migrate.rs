//! Applies the embedded migrations to the database the environment names, with the same
//! settings as the functions (`DATABASE_URL`; `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`,
//! `DB_NAME`; or `DB_SECRET_ARN`): `make migrate`. In AWS the `migrate` function does the same.

use anyhow::Context as _;
use shared::app::App;
use shared::config::{Keys, Needs};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let app = App::from_env(Needs { database: true, keys: Keys::None })?;
    let mut connection = app.connection().await.context("connecting to the database")?;
    shared::db::MIGRATOR.run(&mut *connection).await.context("applying the migrations")?;
    println!("migrations applied: {}", shared::db::MIGRATOR.iter().count());
    Ok(())
}
