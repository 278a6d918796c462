//! The process-wide Postgres pool: created on first use, reused by every warm invocation.

use std::sync::Arc;

use secrecy::ExposeSecret as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::OnceCell;

use crate::config::{DatabaseConfig, DatabaseSource};
use crate::error::ApiError;
use crate::secrets::{DatabaseSecret, Secrets};

/// The migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// SQLSTATE `invalid_password`: the credentials were rotated under us.
const INVALID_PASSWORD: &str = "28P01";

/// The Secrets Manager client, built on first use and shared by everything that reads a secret.
pub type SharedSecrets = Arc<OnceCell<Secrets>>;

/// A pool that does not exist until a handler first asks for it, so a function that never
/// touches the database never connects, and a cold start pays for no connection it does not use.
pub struct Database {
    config: Option<DatabaseConfig>,
    secrets: SharedSecrets,
    pool: OnceCell<PgPool>,
}

impl Database {
    /// A database reached through `config` on first use.
    pub fn lazy(config: DatabaseConfig, secrets: SharedSecrets) -> Self {
        Self { config: Some(config), secrets, pool: OnceCell::new() }
    }

    /// A database around an existing pool (tests, tools).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { config: None, secrets: SharedSecrets::default(), pool: OnceCell::new_with(Some(pool)) }
    }

    /// The pool, created on the first call (which, for credentials in Secrets Manager, fetches
    /// them; it connects nothing).
    pub async fn pool(&self) -> Result<&PgPool, ApiError> {
        self.pool
            .get_or_try_init(|| async {
                let config = self.config()?;
                let options = self.connect_options(config).await?;
                Ok(pool_options(config).connect_lazy_with(options))
            })
            .await
    }

    /// A connection from the pool. When Postgres rejects the password and the credentials come
    /// from Secrets Manager, the secret is fetched again once and the pool reconnects with it,
    /// so a rotated password costs one retry instead of an outage.
    pub async fn connection(&self) -> Result<PoolConnection<Postgres>, ApiError> {
        let pool = self.pool().await?;
        match pool.acquire().await {
            Err(error) if is_invalid_password(&error) && self.uses_secret() => {
                tracing::warn!("the database rejected the password; fetching the secret again");
                pool.set_connect_options(self.connect_options(self.config()?).await?);
                Ok(pool.acquire().await?)
            }
            result => Ok(result?),
        }
    }

    /// Resolves the credentials now (fetching the secret if there is one) without connecting,
    /// so the first request does not pay for it.
    pub async fn warm_up(&self) -> Result<(), ApiError> {
        self.pool().await.map(|_| ())
    }

    /// Whether the pool has been created (tests of laziness).
    pub fn is_initialised(&self) -> bool {
        self.pool.initialized()
    }

    /// Closes the pool if it was ever created, waiting for its connections to be closed.
    pub async fn close(&self) {
        if let Some(pool) = self.pool.get() {
            pool.close().await;
        }
    }

    fn config(&self) -> Result<&DatabaseConfig, ApiError> {
        self.config.as_ref().ok_or_else(|| {
            ApiError::Unexpected(anyhow::anyhow!("the database has neither a pool nor a configuration"))
        })
    }

    fn uses_secret(&self) -> bool {
        matches!(self.config.as_ref().map(|config| &config.source), Some(DatabaseSource::Secret { .. }))
    }

    async fn connect_options(&self, config: &DatabaseConfig) -> Result<PgConnectOptions, ApiError> {
        let options = match &config.source {
            DatabaseSource::Direct(options) => (**options).clone(),
            DatabaseSource::Secret { arn, host, database, ssl_mode } => {
                let secrets = self.secrets.get_or_init(Secrets::from_env).await;
                let secret: DatabaseSecret =
                    secrets.json(arn).await.map_err(|error| ApiError::Unavailable(error.into()))?;
                PgConnectOptions::new_without_pgpass()
                    .host(host.as_deref().unwrap_or(&secret.host))
                    .port(secret.port.unwrap_or(5432))
                    .username(&secret.username)
                    .password(secret.password.expose_secret())
                    .database(database.as_deref().or(secret.dbname.as_deref()).unwrap_or("postgres"))
                    .ssl_mode(*ssl_mode)
            }
        };
        Ok(options.application_name(&config.application_name))
    }
}

fn is_invalid_password(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(INVALID_PASSWORD))
}

/// Lambda-sized pool settings. One connection serves a sandbox (one invocation at a time);
/// testing it before use catches a connection that died while the sandbox was frozen; short
/// idle and lifetime limits keep few server connections behind sandboxes that went cold.
fn pool_options(config: &DatabaseConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(true)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(config.max_lifetime)
}
