//! The state a function builds once per execution environment and every invocation shares.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;

use crate::config::{Config, Needs};
use crate::db::Database;
use crate::error::ApiError;
use crate::tokens::{SigningKey, TokenIssuer};

/// How long the shutdown hook may spend closing the pool: Lambda sends SIGKILL 500 ms after
/// SIGTERM when only internal extensions are registered.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(300);

/// Configuration, the lazy pool and the token keys of one function.
pub struct App {
    pub function_name: String,
    /// How long a refresh token lives.
    pub refresh_token_ttl: Duration,
    db: Option<Database>,
    tokens: Option<TokenIssuer>,
}

impl App {
    /// Reads and validates the environment for what the function `needs`. Connects to nothing.
    pub fn from_env(needs: Needs) -> anyhow::Result<Self> {
        let config = Config::from_env(needs).context("invalid configuration")?;
        Self::from_config(config)
    }

    /// Builds the state from a parsed configuration.
    pub fn from_config(config: Config) -> anyhow::Result<Self> {
        let tokens = config
            .keys
            .map(|keys| -> anyhow::Result<TokenIssuer> {
                let key = SigningKey::from_pem(&keys.key_id, keys.algorithm, &keys.private_key)
                    .context("JWT_PRIVATE_KEY")?;
                Ok(TokenIssuer::new(
                    key,
                    Vec::new(),
                    keys.issuer,
                    keys.audience,
                    keys.access_token_ttl,
                ))
            })
            .transpose()?;
        Ok(Self {
            function_name: config.function_name,
            refresh_token_ttl: config.refresh_token_ttl,
            db: config.database.map(Database::lazy),
            tokens,
        })
    }

    /// State around an existing pool and token issuer (tests and tools).
    pub fn with_pool(pool: PgPool, tokens: TokenIssuer, refresh_token_ttl: Duration) -> Self {
        Self {
            function_name: "auth-test".to_owned(),
            refresh_token_ttl,
            db: Some(Database::from_pool(pool)),
            tokens: Some(tokens),
        }
    }

    /// The pool, created on first use.
    pub async fn db(&self) -> Result<&PgPool, ApiError> {
        match &self.db {
            Some(db) => db.pool().await,
            None => Err(ApiError::Unexpected(anyhow::anyhow!(
                "this function has no database configured"
            ))),
        }
    }

    /// Whether the pool has been created yet.
    pub fn database_initialised(&self) -> bool {
        self.db.as_ref().is_some_and(Database::is_initialised)
    }

    /// The access-token keys.
    pub fn tokens(&self) -> Result<&TokenIssuer, ApiError> {
        self.tokens.as_ref().ok_or_else(|| {
            ApiError::Unexpected(anyhow::anyhow!(
                "this function has no signing keys configured"
            ))
        })
    }

    /// Closes the pool (if it was created) within the shutdown budget.
    pub async fn shutdown(&self) {
        if let Some(db) = &self.db
            && tokio::time::timeout(SHUTDOWN_BUDGET, db.close())
                .await
                .is_err()
        {
            tracing::warn!("the pool did not close within {SHUTDOWN_BUDGET:?}");
        }
    }
}
