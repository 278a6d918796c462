//! Applies the embedded migrations to the database the environment names (`DATABASE_URL`, or
//! `DB_HOST`/`DB_PORT`/`DB_USER`/`DB_PASSWORD`/`DB_NAME`): `make migrate`.

use anyhow::Context as _;
use shared::config::{Config, Needs};
use sqlx::ConnectOptions as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env(Needs {
        database: true,
        keys: false,
    })?;
    let database = config.database.context("no database configured")?;
    let mut connection = database
        .connect
        .connect()
        .await
        .context("connecting to the database")?;
    shared::db::MIGRATOR
        .run(&mut connection)
        .await
        .context("applying the migrations")?;
    println!(
        "migrations applied: {}",
        shared::db::MIGRATOR.iter().count()
    );
    Ok(())
}
