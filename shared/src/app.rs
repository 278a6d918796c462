//! The state a function builds once per execution environment and every invocation shares.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::config::{Config, KeyConfig, KeySource, Needs};
use crate::db::{Database, DbConnection, SharedSecrets};
use crate::error::ApiError;
use crate::secrets::{Secrets, SigningKeysSecret};
use crate::tokens::{SigningAlgorithm, SigningKey, TokenIssuer};

/// How long the shutdown hook may spend closing the pool: Lambda sends SIGKILL 500 ms after
/// SIGTERM when only internal extensions are registered.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(300);

/// Configuration, the lazy pool and the token keys of one function.
pub struct App {
    pub function_name: String,
    /// How long a refresh token lives.
    pub refresh_token_ttl: Duration,
    /// How long a just-rotated token still returns its successor instead of counting as reuse.
    pub refresh_reuse_grace: Duration,
    /// How long a session lives at most, from its creation (`SESSION_MAX_LIFETIME_SECONDS`).
    pub session_max_lifetime: Duration,
    db: Option<Database>,
    keys: Option<KeyConfig>,
    tokens: OnceCell<TokenIssuer>,
    secrets: SharedSecrets,
}

impl App {
    /// Reads and validates the environment for what the function `needs`. Connects to nothing
    /// and fetches nothing: see [`App::warm_up`].
    pub fn from_env(needs: Needs) -> anyhow::Result<Self> {
        let config = Config::from_env(needs).context("invalid configuration")?;
        Self::from_config(config)
    }

    /// Builds the state from a parsed configuration. Keys given in the environment are loaded
    /// (and so validated) here; keys in Secrets Manager on first use.
    pub fn from_config(config: Config) -> anyhow::Result<Self> {
        let secrets = SharedSecrets::default();
        let tokens = OnceCell::new();
        if let Some(keys) = &config.keys
            && let KeySource::Env { algorithm, key_id, private_key } = &keys.source
        {
            let key = SigningKey::from_pem(key_id, *algorithm, private_key).context("JWT_PRIVATE_KEY")?;
            let issuer = TokenIssuer::new(
                key,
                Vec::new(),
                keys.issuer.clone(),
                keys.audience.clone(),
                keys.access_token_ttl,
            );
            tokens.set(with_successor_secret(issuer, keys.successor_secret.as_ref())).ok();
        }
        Ok(Self {
            function_name: config.function_name,
            refresh_token_ttl: config.refresh_token_ttl,
            refresh_reuse_grace: config.refresh_reuse_grace,
            session_max_lifetime: config.session_max_lifetime,
            db: config.database.map(|db| Database::lazy(db, secrets.clone())),
            keys: config.keys,
            tokens,
            secrets,
        })
    }

    /// State around an existing pool and token issuer (tests and tools).
    pub fn with_pool(
        pool: PgPool,
        tokens: TokenIssuer,
        refresh_token_ttl: Duration,
        refresh_reuse_grace: Duration,
    ) -> Self {
        Self {
            function_name: "auth-test".to_owned(),
            refresh_token_ttl,
            refresh_reuse_grace,
            session_max_lifetime: crate::config::DEFAULT_SESSION_MAX_LIFETIME,
            db: Some(Database::from_pool(pool)),
            keys: None,
            tokens: OnceCell::new_with(Some(tokens)),
            secrets: SharedSecrets::default(),
        }
    }

    /// Fetches the secrets this function needs and opens its database connection, concurrently,
    /// so the first request waits for neither. A failure is logged, not fatal: the next request
    /// tries again and, if it fails too, answers 503 (a failed init would be a 502 at API
    /// Gateway).
    pub async fn warm_up(&self) {
        let database = async {
            match &self.db {
                Some(db) => db.warm_up().await,
                None => Ok(()),
            }
        };
        let keys = async {
            match &self.keys {
                Some(_) => self.tokens().await.map(|_| ()),
                None => Ok(()),
            }
        };
        let (database, keys) = tokio::join!(database, keys);
        for error in [database.err(), keys.err()].into_iter().flatten() {
            tracing::error!(error = ?error, "warm-up failed; requests will retry");
        }
    }

    /// The pool, created on first use.
    pub async fn db(&self) -> Result<&PgPool, ApiError> {
        self.database()?.pool().await
    }

    /// A connection, reconnecting once with fresh credentials if the password was rotated.
    pub async fn connection(&self) -> Result<DbConnection, ApiError> {
        self.database()?.connection().await
    }

    fn database(&self) -> Result<&Database, ApiError> {
        self.db
            .as_ref()
            .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("this function has no database configured")))
    }

    /// Whether the pool has been created yet.
    pub fn database_initialised(&self) -> bool {
        self.db.as_ref().is_some_and(Database::is_initialised)
    }

    /// The access-token keys, fetched from Secrets Manager on first use when they live there.
    pub async fn tokens(&self) -> Result<&TokenIssuer, ApiError> {
        self.tokens
            .get_or_try_init(|| async {
                let keys = self.keys.as_ref().ok_or_else(|| {
                    ApiError::Unexpected(anyhow::anyhow!("this function has no signing keys configured"))
                })?;
                let KeySource::Secret { arn } = &keys.source else {
                    unreachable!("keys from the environment are loaded at construction");
                };
                let secrets = self.secrets.get_or_init(Secrets::from_env).await;
                let secret: SigningKeysSecret =
                    secrets.json(arn).await.map_err(|error| ApiError::Unavailable(error.into()))?;
                key_set(arn, secret, keys).map_err(ApiError::Unexpected)
            })
            .await
    }

    /// Closes the pool (if it was created) within the shutdown budget.
    pub async fn shutdown(&self) {
        if let Some(db) = &self.db
            && tokio::time::timeout(SHUTDOWN_BUDGET, db.close()).await.is_err()
        {
            tracing::warn!("the pool did not close within {SHUTDOWN_BUDGET:?}");
        }
    }
}

fn key_set(arn: &str, secret: SigningKeysSecret, keys: &KeyConfig) -> anyhow::Result<TokenIssuer> {
    let load = |entry: &crate::secrets::KeyEntry| -> anyhow::Result<SigningKey> {
        let name = entry.algorithm.as_deref().unwrap_or("RS256");
        let algorithm = SigningAlgorithm::parse(name)
            .with_context(|| format!("secret {arn}: key {} has unknown algorithm {name:?}", entry.kid))?;
        SigningKey::from_pem(&entry.kid, algorithm, &entry.private_key)
            .with_context(|| format!("secret {arn}"))
    };
    let current = load(&secret.current)?;
    let previous = secret.previous.iter().map(load).collect::<anyhow::Result<Vec<_>>>()?;
    let issuer = TokenIssuer::new(
        current,
        previous,
        keys.issuer.clone(),
        keys.audience.clone(),
        keys.access_token_ttl,
    );
    Ok(with_successor_secret(issuer, secret.refresh_token_key.as_ref().or(keys.successor_secret.as_ref())))
}

fn with_successor_secret(issuer: TokenIssuer, secret: Option<&secrecy::SecretString>) -> TokenIssuer {
    match secret {
        Some(secret) => issuer.with_successor_secret(secret),
        None => issuer,
    }
}
