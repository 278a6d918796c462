//! The process-wide Postgres pool: created on first use, reused by every warm invocation.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::OnceCell;

use crate::config::DatabaseConfig;
use crate::error::ApiError;

/// The migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pool that does not exist until a handler first asks for it, so a function that never
/// touches the database never connects, and a cold start pays for no connection it does not use.
pub struct Database {
    config: Option<DatabaseConfig>,
    pool: OnceCell<PgPool>,
}

impl Database {
    /// A database reached through `config` on first use.
    pub fn lazy(config: DatabaseConfig) -> Self {
        Self {
            config: Some(config),
            pool: OnceCell::new(),
        }
    }

    /// A database around an existing pool (tests, tools).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            config: None,
            pool: OnceCell::new_with(Some(pool)),
        }
    }

    /// The pool, created on the first call.
    pub async fn pool(&self) -> Result<&PgPool, ApiError> {
        self.pool
            .get_or_try_init(|| async {
                let config = self.config.as_ref().ok_or_else(|| {
                    ApiError::Unexpected(anyhow::anyhow!(
                        "the database has neither a pool nor a configuration"
                    ))
                })?;
                Ok(pool_options(config).connect_lazy_with(config.connect.clone()))
            })
            .await
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
