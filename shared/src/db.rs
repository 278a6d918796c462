//! The process-wide Postgres pool: created on first use, reused by every warm invocation.
//!
//! A sandbox serves one invocation at a time, so with the default pool of one connection the
//! connection is *kept* between invocations instead of being returned to the pool: sqlx pings a
//! connection when it goes back (always) and when it comes out (`test_before_acquire`), two
//! round trips on every request. A kept connection is pinged only when it has been idle for
//! longer than `DB_PING_AFTER_IDLE_MS` (it may have died while the sandbox was frozen), and is
//! handed back to the pool, closed, when a connectivity error was seen while it was out.
//!
//! Through a transaction pooler (RDS Proxy, PgBouncer in transaction mode:
//! `DB_TRANSACTION_POOLER=true`) consecutive transactions of one client connection may run on
//! different server connections, so nothing may outlive a transaction. sqlx 0.9 prepares every
//! statement of its query macros under a name (`sqlx_s_N`, counted per client connection) and,
//! with its statement cache off, never closes it; and it parses a statement and executes it in
//! two protocol exchanges, each ended by a Sync, between which a pooler may switch server
//! connections. So in that mode each statement runs in a transaction of its own
//! ([`DbConnection::statement`]), which ends by deallocating what it prepared; the statement
//! cache is off and no session setting is sent at connect (`extra_float_digits`).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
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
        let pooler = self.config.as_ref().is_some_and(|config| config.transaction_pooler);
        let Some(kept) = &self.kept else {
            return Ok(DbConnection::new(Checkout::Pooled(self.acquire().await?), pooler));
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
                return Ok(DbConnection::kept(slot, pooler));
            }
            if fresh {
                tracing::info!("the kept connection failed its ping; connecting again");
            }
            held.connection.close_on_drop();
        }
        let connection = self.acquire().await?;
        *slot = Some(Kept { connection, since: Instant::now(), last_used: Instant::now() });
        Ok(DbConnection::kept(slot, pooler))
    }

    /// A connection from the pool. When Postgres rejects the password and the credentials come
    /// from Secrets Manager, the secret is fetched again once and the pool reconnects with it,
    /// so a rotated password costs one retry instead of an outage.
    async fn acquire(&self) -> Result<PoolConnection<Postgres>, ApiError> {
        let pool = self.pool().await?;
        let config = self.config.as_ref();
        match pool.acquire().await {
            Err(error) if is_invalid_password(&error) && self.uses_secret() => {
                tracing::warn!("the database rejected the password; fetching the secret again");
                pool.set_connect_options(self.connect_options(self.config()?).await?);
                pool.acquire().await.map_err(|error| {
                    connect_error(error, config).context("connecting again with the secret fetched anew")
                })
            }
            result => result.map_err(|error| connect_error(error, config).context("connecting")),
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
            DatabaseSource::Secret { arn, host, port, database, ssl_mode } => {
                let secrets = self.secrets.get_or_init(Secrets::from_env).await;
                let secret: DatabaseSecret = secrets.json(arn).await.map_err(|error| {
                    ApiError::Unavailable(error.into()).context("reading the database secret")
                })?;
                let overrides =
                    Overrides { host: host.as_deref(), port: *port, database: database.as_deref() };
                secret_options(&secret, overrides, *ssl_mode, config).map_err(|missing| {
                    ApiError::Unavailable(anyhow::anyhow!("the database secret {arn}: {missing}"))
                })?
            }
        };
        let options = options.application_name(&config.application_name);
        Ok(if config.transaction_pooler { for_transaction_pooler(options) } else { options })
    }
}

/// `options` for a transaction pooler: no statement cache, and no `extra_float_digits` in the
/// startup packet (a session setting PgBouncer refuses unless told to ignore it; the schema
/// has no floating-point column).
fn for_transaction_pooler(options: PgConnectOptions) -> PgConnectOptions {
    options.statement_cache_capacity(0).extra_float_digits(None)
}

/// What the environment says about the database, over the secret's own fields.
#[derive(Debug, Clone, Copy, Default)]
struct Overrides<'a> {
    host: Option<&'a str>,
    port: Option<u16>,
    database: Option<&'a str>,
}

/// Neither the environment nor the secret names the host.
#[derive(Debug, thiserror::Error)]
#[error(
    "no database host: the secret has no \"host\" (a secret RDS manages holds only the \
     username and the password) and DB_HOST is not set (template parameter DbHost, or \
     DbProxyEndpoint)"
)]
pub struct MissingHost;

/// The connect options of a database secret: the environment's host, port and database name
/// over the secret's (port 5432 and database `postgres` when neither has one). The TLS mode,
/// when `DB_SSLMODE` is unset, is decided here, by the host actually connected to.
fn secret_options(
    secret: &DatabaseSecret,
    overrides: Overrides<'_>,
    ssl_mode: Option<PgSslMode>,
    config: &DatabaseConfig,
) -> Result<PgConnectOptions, MissingHost> {
    let host = overrides
        .host
        .or(secret.host.as_deref())
        .filter(|host| !host.trim().is_empty())
        .ok_or(MissingHost)?;
    let options = PgConnectOptions::new_without_pgpass()
        .host(host)
        .port(overrides.port.or(secret.port).unwrap_or(5432))
        .username(&secret.username)
        .password(secret.password.expose_secret())
        .database(overrides.database.or(secret.dbname.as_deref()).unwrap_or("postgres"))
        .ssl_mode(ssl_mode.unwrap_or_else(|| default_ssl_mode(host)));
    Ok(with_root_cert(options, config.ssl_root_cert.as_ref()))
}

/// A checked-out connection; dereferences to the [`PgConnection`].
pub struct DbConnection {
    checkout: Checkout,
    /// Statements run in transactions of their own (see [`DbConnection::statement`]).
    pooler: bool,
    /// The connection may be broken: a statement failed on a connectivity error (I/O, TLS, a
    /// terminated backend: see [`crate::error::is_connectivity`]) or its transaction was
    /// abandoned half-way. It is then closed, not reused.
    broken: bool,
}

enum Checkout {
    Pooled(PoolConnection<Postgres>),
    /// The kept connection, in its slot (always `Some` while checked out).
    Kept {
        slot: OwnedMutexGuard<Option<Kept>>,
    },
}

impl DbConnection {
    fn new(checkout: Checkout, pooler: bool) -> Self {
        Self { checkout, pooler, broken: false }
    }

    fn kept(slot: OwnedMutexGuard<Option<Kept>>, pooler: bool) -> Self {
        Self::new(Checkout::Kept { slot }, pooler)
    }

    /// The connection for one statement, to be ended with [`Statement::end`]. Directly
    /// connected, that is the connection itself. Through a transaction pooler the statement
    /// runs in a transaction of its own: the statement's two protocol exchanges (parse, then
    /// execute) then reach the same server connection, and the transaction ends by
    /// deallocating the named statement sqlx prepared, so the next client of that server
    /// connection finds no statement of ours (its own `sqlx_s_1` would collide with it).
    pub async fn statement(&mut self) -> Result<Statement<'_>, sqlx::Error> {
        if self.pooler
            && let Err(error) = sqlx::raw_sql("begin").execute(&mut **self).await
        {
            self.broken |= crate::error::is_connectivity(&error);
            return Err(error);
        }
        let open = self.pooler;
        Ok(Statement { db: self, open })
    }

    /// The connection for a few statements in one transaction, ended with [`Statement::end`]
    /// (through a transaction pooler, the end also deallocates what they prepared). Each
    /// statement takes its own snapshot (read committed): one that waits for a row lock taken
    /// by the first sees what the lock's holder committed (see [`locked_then`]).
    pub async fn transaction(&mut self) -> Result<Statement<'_>, sqlx::Error> {
        if let Err(error) = sqlx::raw_sql("begin").execute(&mut **self).await {
            self.broken |= crate::error::is_connectivity(&error);
            return Err(error);
        }
        Ok(Statement { db: self, open: true })
    }

    /// Returns the connection to the pool instead of keeping it, so that something taking
    /// connections from the pool itself (the migrator) finds it there; the next checkout keeps
    /// one again.
    pub fn release(mut self) {
        if let Checkout::Kept { slot, .. } = &mut self.checkout {
            slot.take();
        }
    }

    /// Closes the connection instead of keeping or pooling it (a statement was abandoned
    /// half-way, say by a timeout, and the connection's state is unknown).
    pub fn discard(mut self) {
        match &mut self.checkout {
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
        let kind = match &self.checkout {
            Checkout::Pooled(_) => "pooled",
            Checkout::Kept { .. } => "kept",
        };
        f.debug_tuple("DbConnection").field(&kind).finish()
    }
}

impl Deref for DbConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.checkout {
            Checkout::Pooled(connection) => connection,
            Checkout::Kept { slot, .. } => &slot.as_ref().expect("a checked-out connection").connection,
        }
    }
}

impl DerefMut for DbConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.checkout {
            Checkout::Pooled(connection) => connection,
            Checkout::Kept { slot, .. } => &mut slot.as_mut().expect("a checked-out connection").connection,
        }
    }
}

impl Drop for DbConnection {
    /// Keeps the connection for the next checkout, unless it may be broken (a statement failed
    /// on a connectivity error or was abandoned half-way) or a panic unwound while it was out:
    /// then it is closed, and the next checkout connects anew.
    fn drop(&mut self) {
        let broken = self.broken;
        let slot = match &mut self.checkout {
            Checkout::Kept { slot } => slot,
            Checkout::Pooled(connection) if broken => return connection.close_on_drop(),
            Checkout::Pooled(_) => return,
        };
        let suspect = broken || std::thread::panicking();
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

/// One statement's connection (see [`DbConnection::statement`]); dereferences to the
/// [`PgConnection`].
pub struct Statement<'c> {
    db: &'c mut DbConnection,
    /// In a transaction of its own that [`Statement::end`] has not ended yet.
    open: bool,
}

impl Statement<'_> {
    /// Ends the statement's transaction, if it has one: committed when the statement
    /// succeeded, rolled back when it failed, and in both cases with every prepared statement
    /// deallocated, in one round trip. Hands back the statement's own result (or, after a
    /// success, the commit's failure).
    pub async fn end<T>(self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        let commit = result.is_ok();
        self.finish(result, commit).await
    }

    /// Ends a transaction ([`DbConnection::transaction`]) rolled back though its statements
    /// succeeded (what they wrote is not wanted after all), handing back `value`, or the
    /// rollback's failure.
    pub async fn roll_back<T>(self, value: T) -> Result<T, sqlx::Error> {
        self.finish(Ok(value), false).await
    }

    async fn finish<T>(mut self, result: Result<T, sqlx::Error>, commit: bool) -> Result<T, sqlx::Error> {
        if let Err(error) = &result {
            self.db.broken |= crate::error::is_connectivity(error);
        }
        if !self.open {
            return result;
        }
        let end = match (commit, self.db.pooler) {
            (true, true) => "commit; deallocate all",
            (true, false) => "commit",
            (false, true) => "rollback; deallocate all",
            (false, false) => "rollback",
        };
        let ended = sqlx::raw_sql(end).execute(&mut **self.db).await;
        self.open = ended.is_err();
        match (result, ended) {
            (Ok(_), Err(error)) => Err(error),
            (result, _) => result,
        }
    }
}

impl Drop for Statement<'_> {
    /// A statement dropped with its transaction open (its future was cancelled, or ending it
    /// failed) leaves the connection in an unknown state: it is not reused.
    fn drop(&mut self) {
        if self.open {
            self.db.broken = true;
        }
    }
}

impl Deref for Statement<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.db
    }
}

impl DerefMut for Statement<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.db
    }
}

/// Runs `query` (an expression of the connection named by the closure's argument, up to but
/// not including its `.await`) as one statement on `db` (see [`DbConnection::statement`]).
///
/// The aggregates' SQL functions (each `store` module) take the checked-out [`DbConnection`]
/// rather than any executor, and run their statement through this: through a transaction pooler
/// (`DB_TRANSACTION_POOLER`) a statement must run in a transaction of its own, which only the
/// connection knows how to open and end.
macro_rules! one_statement {
    ($db:ident, |$connection:ident| $query:expr) => {{
        let mut statement = $db.statement().await?;
        let $connection = &mut *statement;
        let result = $query.await;
        statement.end(result).await
    }};
}
// A path the stores import (`crate::db::one_statement`), rather than `#[macro_export]`, which
// would make it part of the crate's public interface.
pub(crate) use one_statement;

/// Runs `$lock` (a statement that takes row locks), then `$query`, both with `$connection`, in
/// one transaction ([`DbConnection::transaction`]): `$query` runs only once the locks are held,
/// with a snapshot taken after whatever held them committed. For a write that must see rows
/// another statement inserted under the same lock (a password reset and the session a login in
/// flight opens), which a single statement, whose snapshot predates its first lock wait, may
/// not. Three round trips more than [`one_statement`].
macro_rules! locked_then {
    ($db:ident, |$connection:ident| $lock:expr, $query:expr) => {{
        let mut transaction = $db.transaction().await?;
        let $connection = &mut *transaction;
        let result = match $lock.await {
            Ok(_) => $query.await,
            Err(error) => Err(error),
        };
        transaction.end(result).await
    }};
}
pub(crate) use locked_then;

/// A failure to connect as an [`ApiError`], saying so plainly when it is the server's
/// certificate that was refused: rustls' own words, which sqlx reports as an I/O error
/// (`error communicating with database: invalid peer certificate: UnknownIssuer`), do not tell
/// an operator which setting to look at.
fn connect_error(error: sqlx::Error, config: Option<&DatabaseConfig>) -> ApiError {
    let certificate = matches!(&error, sqlx::Error::Tls(_) | sqlx::Error::Io(_))
        && error.to_string().contains("certificate");
    match ApiError::from(error) {
        ApiError::Unavailable(cause) if certificate => {
            let roots = match config.and_then(|config| config.ssl_root_cert.as_ref()) {
                Some(path) => format!("the CA bundle DB_SSL_ROOT_CERT={}", path.display()),
                None => "the built-in roots (DB_SSL_ROOT_CERT is unset)".to_owned(),
            };
            ApiError::Unavailable(cause.context(format!(
                "the database server's certificate is not trusted: checked against {roots}, for the \
                 host connected to (DB_HOST, or the secret's host)"
            )))
        }
        other => other,
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
        Config::from_lookup(
            Needs {
                database: true,
                keys: Keys::None,
                mail: false,
                mfa: false,
                passkeys: false,
                query: false,
            },
            lookup,
        )
        .unwrap()
        .database
        .unwrap()
    }

    fn ssl_mode_of(secret_host: &str, host_override: Option<&str>, pairs: &[(&str, &str)]) -> PgSslMode {
        let config = config(&[&[("DB_SECRET_ARN", "arn:db")], pairs].concat());
        let DatabaseSource::Secret { ssl_mode, .. } = &config.source else { panic!("a secret source") };
        let overrides = Overrides { host: host_override, ..Overrides::default() };
        secret_options(&secret(secret_host), overrides, *ssl_mode, &config).unwrap().get_ssl_mode()
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

    #[test]
    fn a_secret_with_only_a_username_and_password_takes_host_port_and_database_from_the_environment() {
        let managed: DatabaseSecret =
            serde_json::from_value(serde_json::json!({"username": "postgres", "password": "p"})).unwrap();
        let config = config(&[("DB_SECRET_ARN", "arn:db")]);
        let overrides = Overrides {
            host: Some("auth.cluster-x.rds.amazonaws.com"),
            port: Some(6432),
            database: Some("auth"),
        };

        let options = secret_options(&managed, overrides, None, &config).unwrap();
        let only_host =
            secret_options(&managed, Overrides { host: Some("db"), ..Overrides::default() }, None, &config)
                .unwrap();
        let missing = secret_options(&managed, Overrides::default(), None, &config).unwrap_err().to_string();

        assert_eq!(
            (options.get_host(), options.get_port(), options.get_database()),
            ("auth.cluster-x.rds.amazonaws.com", 6432, Some("auth"))
        );
        assert_eq!((only_host.get_port(), only_host.get_database()), (5432, Some("postgres")));
        assert!(missing.contains("DB_HOST") && missing.contains("\"host\""), "{missing}");
    }

    #[test]
    fn the_environment_overrides_the_secrets_host_port_and_database() {
        let config = config(&[("DB_SECRET_ARN", "arn:db")]);
        let overrides = Overrides { host: Some("proxy"), port: Some(6432), database: Some("other") };

        let options = secret_options(&secret("db"), overrides, None, &config).unwrap();
        let secrets_own = secret_options(&secret("db"), Overrides::default(), None, &config).unwrap();

        assert_eq!(
            (options.get_host(), options.get_port(), options.get_database()),
            ("proxy", 6432, Some("other"))
        );
        assert_eq!(
            (secrets_own.get_host(), secrets_own.get_port(), secrets_own.get_database()),
            ("db", 5432, Some("auth"))
        );
    }
}
