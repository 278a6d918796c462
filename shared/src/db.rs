//! The process-wide Postgres pool: created on first use, reused by every warm invocation.
//!
//! A sandbox serves one invocation at a time, so with the default pool of one connection the
//! connection is *kept* between invocations instead of being returned to the pool: sqlx pings a
//! connection when it goes back (always) and when it comes out (`test_before_acquire`), two
//! round trips on every request. A kept connection is pinged only when it has been idle for
//! longer than `DB_PING_AFTER_IDLE_MS` (it may have died while the sandbox was frozen), and is
//! handed back to the pool, closed, when a connectivity error was seen while it was out.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres};
use tokio::sync::{Mutex, OnceCell, OwnedMutexGuard};

use crate::config::{DatabaseConfig, DatabaseSource, default_ssl_mode, with_root_cert};
use crate::error::ApiError;
use crate::secrets::{DatabaseSecret, Secrets};

/// The migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How long init waits for the first connection (see [`Database::warm_up`]).
const WARM_UP_CONNECT_BUDGET: Duration = Duration::from_secs(1);

/// SQLSTATE `invalid_password`: the credentials were rotated under us.
const INVALID_PASSWORD: &str = "28P01";

/// The Secrets Manager client, built on first use and shared by everything that reads a secret.
pub type SharedSecrets = Arc<OnceCell<Secrets>>;

/// Connectivity errors seen by this process (I/O, TLS, a terminated backend, ...): a kept
/// connection that was out while one happened is not kept.
static CONNECTIVITY_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Records a connectivity error (see [`crate::error::is_connectivity`]).
pub fn note_connectivity_error() {
    CONNECTIVITY_ERRORS.fetch_add(1, Ordering::SeqCst);
}

/// The connection kept between invocations.
struct Kept {
    connection: PoolConnection<Postgres>,
    since: Instant,
    last_used: Instant,
}

/// A pool that does not exist until a handler first asks for it, so a function that never
/// touches the database never connects, and a cold start pays for no connection it does not use.
pub struct Database {
    config: Option<DatabaseConfig>,
    secrets: SharedSecrets,
    pool: OnceCell<PgPool>,
    /// `Some` when the pool has one connection: the slot it is kept in between checkouts.
    kept: Option<Arc<Mutex<Option<Kept>>>>,
}

impl Database {
    /// A database reached through `config` on first use.
    pub fn lazy(config: DatabaseConfig, secrets: SharedSecrets) -> Self {
        let kept = (config.max_connections == 1).then(Arc::default);
        Self { config: Some(config), secrets, pool: OnceCell::new(), kept }
    }

    /// A database around an existing pool (tests, tools); connections go back to it after use.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            config: None,
            secrets: SharedSecrets::default(),
            pool: OnceCell::new_with(Some(pool)),
            kept: None,
        }
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

    /// A connection: the kept one when there is one (pinged first if it has been idle for a
    /// while), otherwise one from the pool.
    pub async fn connection(&self) -> Result<DbConnection, ApiError> {
        let Some(kept) = &self.kept else {
            return Ok(DbConnection(Checkout::Pooled(self.acquire().await?)));
        };
        let config = self.config()?;
        // Waiting for another checkout of the one connection is bounded as the pool's wait is.
        let mut slot = tokio::time::timeout(config.acquire_timeout, kept.clone().lock_owned())
            .await
            .map_err(|_| ApiError::Unavailable(anyhow::anyhow!("the kept connection stayed busy")))?;
        if let Some(mut held) = slot.take() {
            let fresh = held.since.elapsed() < config.max_lifetime;
            let alive = fresh
                && (held.last_used.elapsed() < config.ping_after_idle
                    || matches!(
                        tokio::time::timeout(config.acquire_timeout, held.connection.ping()).await,
                        Ok(Ok(()))
                    ));
            if alive {
                *slot = Some(held);
                return Ok(DbConnection::kept(slot));
            }
            if fresh {
                tracing::info!("the kept connection failed its ping; connecting again");
            }
            held.connection.close_on_drop();
        }
        let connection = self.acquire().await?;
        *slot = Some(Kept { connection, since: Instant::now(), last_used: Instant::now() });
        Ok(DbConnection::kept(slot))
    }

    /// A connection from the pool. When Postgres rejects the password and the credentials come
    /// from Secrets Manager, the secret is fetched again once and the pool reconnects with it,
    /// so a rotated password costs one retry instead of an outage.
    async fn acquire(&self) -> Result<PoolConnection<Postgres>, ApiError> {
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

    /// Resolves the credentials (fetching the secret if there is one) and opens the connection
    /// now, during init, so the first request pays for neither and the connection is set up
    /// while the signing keys are fetched. Connecting gets [`WARM_UP_CONNECT_BUDGET`]: when the
    /// database is down, init goes on and the request's own attempt answers 503.
    pub async fn warm_up(&self) -> Result<(), ApiError> {
        self.pool().await?;
        match tokio::time::timeout(WARM_UP_CONNECT_BUDGET, self.connection()).await {
            Ok(connection) => connection.map(drop),
            Err(_) => Err(ApiError::Unavailable(anyhow::anyhow!(
                "no connection within {WARM_UP_CONNECT_BUDGET:?} at init"
            ))),
        }
    }

    /// Whether the pool has been created (tests of laziness).
    pub fn is_initialised(&self) -> bool {
        self.pool.initialized()
    }

    /// Closes the pool if it was ever created, waiting for its connections to be closed.
    pub async fn close(&self) {
        if let Some(kept) = &self.kept
            && let Some(held) = kept.lock().await.take()
        {
            held.connection.close().await.ok();
        }
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
                secret_options(&secret, host.as_deref(), database.as_deref(), *ssl_mode, config)
            }
        };
        Ok(options.application_name(&config.application_name))
    }
}

/// The connect options of a database secret. The TLS mode, when `DB_SSLMODE` is unset, is
/// decided here, by the host actually connected to (the override or the secret's).
fn secret_options(
    secret: &DatabaseSecret,
    host: Option<&str>,
    database: Option<&str>,
    ssl_mode: Option<PgSslMode>,
    config: &DatabaseConfig,
) -> PgConnectOptions {
    let host = host.unwrap_or(&secret.host);
    let options = PgConnectOptions::new_without_pgpass()
        .host(host)
        .port(secret.port.unwrap_or(5432))
        .username(&secret.username)
        .password(secret.password.expose_secret())
        .database(database.or(secret.dbname.as_deref()).unwrap_or("postgres"))
        .ssl_mode(ssl_mode.unwrap_or_else(|| default_ssl_mode(host)));
    with_root_cert(options, config.ssl_root_cert.as_ref())
}

/// A checked-out connection; dereferences to the [`PgConnection`].
pub struct DbConnection(Checkout);

enum Checkout {
    Pooled(PoolConnection<Postgres>),
    /// The kept connection, in its slot (always `Some` while checked out).
    Kept {
        slot: OwnedMutexGuard<Option<Kept>>,
        errors_before: u64,
    },
}

impl DbConnection {
    fn kept(slot: OwnedMutexGuard<Option<Kept>>) -> Self {
        Self(Checkout::Kept { slot, errors_before: CONNECTIVITY_ERRORS.load(Ordering::SeqCst) })
    }

    /// Returns the connection to the pool instead of keeping it, so that something taking
    /// connections from the pool itself (the migrator) finds it there; the next checkout keeps
    /// one again.
    pub fn release(mut self) {
        if let Checkout::Kept { slot, .. } = &mut self.0 {
            slot.take();
        }
    }

    /// Closes the connection instead of keeping or pooling it (a statement was abandoned
    /// half-way, say by a timeout, and the connection's state is unknown).
    pub fn discard(mut self) {
        match &mut self.0 {
            Checkout::Pooled(connection) => connection.close_on_drop(),
            Checkout::Kept { slot, .. } => {
                if let Some(mut held) = slot.take() {
                    held.connection.close_on_drop();
                }
            }
        }
    }
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Checkout::Pooled(_) => "pooled",
            Checkout::Kept { .. } => "kept",
        };
        f.debug_tuple("DbConnection").field(&kind).finish()
    }
}

impl Deref for DbConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.0 {
            Checkout::Pooled(connection) => connection,
            Checkout::Kept { slot, .. } => &slot.as_ref().expect("a checked-out connection").connection,
        }
    }
}

impl DerefMut for DbConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.0 {
            Checkout::Pooled(connection) => connection,
            Checkout::Kept { slot, .. } => &mut slot.as_mut().expect("a checked-out connection").connection,
        }
    }
}

impl Drop for DbConnection {
    /// Keeps the connection for the next checkout, unless a connectivity error was seen (or a
    /// panic unwound) while it was out: then it is closed, and the next checkout connects anew.
    fn drop(&mut self) {
        let Checkout::Kept { slot, errors_before } = &mut self.0 else { return };
        let suspect =
            CONNECTIVITY_ERRORS.load(Ordering::SeqCst) != *errors_before || std::thread::panicking();
        match slot.as_mut() {
            Some(held) if suspect => {
                held.connection.close_on_drop();
                slot.take();
            }
            Some(held) => held.last_used = Instant::now(),
            None => {}
        }
    }
}

fn is_invalid_password(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(INVALID_PASSWORD))
}

/// Lambda-sized pool settings. One connection serves a sandbox (one invocation at a time) and
/// is kept between invocations (see [`Database::connection`]); a connection taken from the pool
/// is tested first; short idle and lifetime limits keep few server connections behind
/// sandboxes that went cold.
fn pool_options(config: &DatabaseConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(true)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(config.max_lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Keys, Needs};

    fn secret(host: &str) -> DatabaseSecret {
        serde_json::from_value(serde_json::json!({
            "username": "app", "password": "p", "host": host, "port": 5432, "dbname": "auth"
        }))
        .unwrap()
    }

    fn config(pairs: &[(&str, &str)]) -> DatabaseConfig {
        let lookup = |name: &str| pairs.iter().find(|(key, _)| *key == name).map(|(_, v)| v.to_string());
        Config::from_lookup(Needs { database: true, keys: Keys::None }, lookup).unwrap().database.unwrap()
    }

    fn ssl_mode_of(secret_host: &str, host_override: Option<&str>, pairs: &[(&str, &str)]) -> PgSslMode {
        let config = config(&[&[("DB_SECRET_ARN", "arn:db")], pairs].concat());
        let DatabaseSource::Secret { ssl_mode, .. } = &config.source else { panic!("a secret source") };
        secret_options(&secret(secret_host), host_override, None, *ssl_mode, &config).get_ssl_mode()
    }

    #[test]
    fn a_secret_naming_a_remote_host_requires_tls_unless_db_sslmode_says_otherwise() {
        let remote = ssl_mode_of("auth.cluster-x.eu-west-1.rds.amazonaws.com", None, &[]);
        let proxy = ssl_mode_of("127.0.0.1", Some("auth-proxy.proxy-x.eu-west-1.rds.amazonaws.com"), &[]);
        let loopback = ssl_mode_of("127.0.0.1", None, &[]);
        let set =
            ssl_mode_of("auth.cluster-x.eu-west-1.rds.amazonaws.com", None, &[("DB_SSLMODE", "verify-full")]);

        assert!(matches!(remote, PgSslMode::Require), "{remote:?}");
        assert!(matches!(proxy, PgSslMode::Require), "the override is the host connected to: {proxy:?}");
        assert!(matches!(loopback, PgSslMode::Prefer), "{loopback:?}");
        assert!(matches!(set, PgSslMode::VerifyFull), "{set:?}");
    }
}
