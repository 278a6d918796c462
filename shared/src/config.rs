//! Typed configuration, read once per execution environment and validated at init.
//!
//! Each function asks only for the parts it uses ([`Needs`]), so a function that never touches
//! the database needs no database settings, and one that signs nothing needs no private key.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::issuer::Issuer;
use crate::mail::MailConfig;
use crate::tokens::{MIN_REFRESH_TOKEN_KEY_BYTES, SigningAlgorithm};

/// What a function needs from its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Connects to Postgres.
    pub database: bool,
    /// Signs access tokens, verifies them, or neither.
    pub keys: Keys,
    /// Sends mail (`MAIL_FROM`, `APP_URL`, `MAIL_HOURLY_LIMIT`).
    pub mail: bool,
    /// Seals or opens second-factor secrets with the MFA key ring (`MFA_KEYS_SECRET_ARN`, or
    /// `MFA_KEYS` locally).
    pub mfa: bool,
    /// Runs WebAuthn ceremonies for the web app at `APP_URL` (its host is the relying party id,
    /// its origin the one the browser must report).
    pub passkeys: bool,
    /// Reads the request's query string. For every other function it is dropped before the
    /// request is read (`event::sanitize`).
    pub query: bool,
}

/// Where the MFA key ring comes from (see `mfa::seal`).
#[derive(Debug)]
pub enum MfaKeySource {
    /// `MFA_KEYS`: the ring's JSON in the environment (local runs, tests), read here. Static.
    Env(crate::mfa::seal::SealingKeys),
    /// `MFA_KEYS_SECRET_ARN`: a secret holding the ring, read on first use and again on the token
    /// keys' schedule (`JWT_KEYS_TTL_SECONDS`; a sealed value naming a key the ring lacks, at most
    /// every `JWT_KEYS_REFETCH_INTERVAL_SECONDS`).
    Secret { arn: String, refresh_after: Duration, refetch_interval: Duration },
}

/// Which token keys a function holds. A signer needs the public key set only when it also
/// checks its caller's access token, and a verifier never sees a private key nor the
/// refresh-token key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    None,
    /// One private key and the refresh-token key (signup, login, refresh).
    Sign,
    /// The public key set (me, jwks).
    Verify,
    /// Both: a signed-in caller's access token is checked, and a new one signed (a step-up, a
    /// second factor's confirmation).
    SignAndVerify,
}

impl Keys {
    /// Whether the function holds the private key.
    pub fn signs(self) -> bool {
        matches!(self, Self::Sign | Self::SignAndVerify)
    }

    /// Whether the function holds the public key set.
    pub fn verifies(self) -> bool {
        matches!(self, Self::Verify | Self::SignAndVerify)
    }
}

/// A variable that is missing or malformed, named so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the environment variable {0} is not set")]
    Missing(&'static str),
    #[error("the environment variable {name} is malformed: {problem}")]
    Malformed { name: &'static str, problem: String },
}

/// The whole configuration of one function.
#[derive(Debug)]
pub struct Config {
    /// Names the function in logs and in Postgres (`application_name`).
    pub function_name: String,
    pub database: Option<DatabaseConfig>,
    pub keys: Option<KeyConfig>,
    /// The public key set of a function that also signs (`Keys::SignAndVerify`).
    pub verification_keys: Option<KeyConfig>,
    /// How long a refresh token lives; renewed on every rotation.
    pub refresh_token_ttl: Duration,
    /// How long after a rotation the parent token still returns the session's active token
    /// (two tabs refreshing at once, a lost response) instead of counting as reuse.
    pub refresh_reuse_grace: Duration,
    /// How long a session lives at most, counted from its creation, however often it is
    /// refreshed (`SESSION_MAX_LIFETIME_SECONDS`, default 90 days).
    pub session_max_lifetime: Duration,
    /// The CloudWatch namespace of the function's metrics (`METRICS_NAMESPACE`, default
    /// `AuthApi`).
    pub metrics_namespace: String,
    /// How a function that sends mail sends it; `None` when `MAIL_FROM` is not set (nothing is
    /// sent, which the function warns of at start) or the function sends none.
    pub mail: Option<MailConfig>,
    /// Whether login refuses an address not yet verified (`REQUIRE_VERIFIED_EMAIL`, default
    /// false), with a wrong password's 401, and signup answers every address alike (202).
    pub require_verified_email: bool,
    /// Failed logins one source address may make across every email in 10 minutes
    /// (`LOGIN_SOURCE_FAILURE_LIMIT`, default [`DEFAULT_LOGIN_SOURCE_FAILURE_LIMIT`]).
    pub login_source_limit: u32,
    /// Anonymous mail requests (signup, forgot) one source address may make in an hour
    /// (`MAIL_SOURCE_HOURLY_LIMIT`, default [`DEFAULT_MAIL_SOURCE_HOURLY_LIMIT`]).
    pub mail_source_limit: u32,
    /// The values CloudFront may send in its `X-Origin-Verify` header (`ORIGIN_VERIFY_SECRET`:
    /// one, or two separated by a comma while it rotates, each at least
    /// [`MIN_ORIGIN_SECRET_CHARS`] characters; unset without CloudFront). A request carrying one
    /// came through CloudFront, and its `CloudFront-Viewer-Address` is the client's; a request
    /// without one is refused.
    pub origin_secrets: Vec<secrecy::SecretString>,
    /// The MFA key ring, for a function that needs it.
    pub mfa_keys: Option<MfaKeySource>,
    /// The web app's URL (`APP_URL`) of a function that runs passkey ceremonies.
    pub passkey_origin: Option<String>,
}

/// The shortest `ORIGIN_VERIFY_SECRET` accepted: a guessable one would let a client name its
/// own source address.
pub const MIN_ORIGIN_SECRET_CHARS: usize = 32;

/// The default of `MAIL_SOURCE_HOURLY_LIMIT`: 20 anonymous mail requests per source address an hour.
pub const DEFAULT_MAIL_SOURCE_HOURLY_LIMIT: u32 = 20;

/// The default of `LOGIN_SOURCE_FAILURE_LIMIT`: 200 failures per source address in 10 minutes.
pub const DEFAULT_LOGIN_SOURCE_FAILURE_LIMIT: u32 = 200;

/// The default of `SESSION_MAX_LIFETIME_SECONDS`: 90 days.
pub const DEFAULT_SESSION_MAX_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where the database credentials come from.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    /// Ready connection options: from `DATABASE_URL`, or from `DB_HOST`, `DB_USER`, ... parts.
    Direct(Box<PgConnectOptions>),
    /// An RDS-format secret in Secrets Manager (`DB_SECRET_ARN`). `host` (`DB_HOST`), `port`
    /// (`DB_PORT`) and `database` (`DB_NAME`) override or supply the secret's `host`, `port`
    /// and `dbname`: a secret RDS manages holds only the username and the password, and an RDS
    /// Proxy endpoint is connected to instead of the secret's host. `ssl_mode` is `DB_SSLMODE`;
    /// when unset, the host is known only once the secret is read, and [`default_ssl_mode`]
    /// decides then.
    Secret {
        arn: String,
        host: Option<String>,
        port: Option<u16>,
        database: Option<String>,
        ssl_mode: Option<PgSslMode>,
    },
}

/// How to reach Postgres and how to size the pool.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub source: DatabaseSource,
    /// Names this function's connections in `pg_stat_activity`.
    pub application_name: String,
    /// The pool's size: `DB_MAX_CONNECTIONS` (default 1), raised to the invocations the
    /// environment runs at once (`AWS_LAMBDA_MAX_CONCURRENCY`, Lambda Managed Instances) so
    /// that none of them waits for another's connection. At 1 the connection is kept between
    /// invocations (see [`crate::db`]).
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// A kept connection idle for longer than this is pinged before use (it may have died
    /// while the sandbox was frozen); a busier one is used as it is.
    pub ping_after_idle: Duration,
    /// The CA bundle the server's certificate is checked against (`DB_SSL_ROOT_CERT`), for
    /// `verify-ca` and `verify-full`; the built-in web roots when unset.
    pub ssl_root_cert: Option<PathBuf>,
    /// Connecting through a pooler that hands out server connections per transaction (RDS
    /// Proxy, PgBouncer in transaction mode; `DB_TRANSACTION_POOLER=true`): no statement
    /// survives its transaction and no session state is set (see [`crate::db`]).
    pub transaction_pooler: bool,
}

/// The TLS mode when none is configured: `require` (encrypted, as a deployed function must
/// be), except towards this machine (a loopback address, `localhost` or a Unix socket), where
/// a local server without TLS is the norm and `prefer` keeps `make run` working.
pub fn default_ssl_mode(host: &str) -> PgSslMode {
    if is_local_host(host) { PgSslMode::Prefer } else { PgSslMode::Require }
}

fn is_local_host(host: &str) -> bool {
    let host = host.trim();
    let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || unbracketed.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where the token keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// A signer's key from `JWT_PRIVATE_KEY`, `JWT_KEY_ID`, `JWT_ALGORITHM` and
    /// `REFRESH_TOKEN_HMAC_KEY`. Static: never refreshed.
    SigningEnv {
        algorithm: SigningAlgorithm,
        key_id: String,
        private_key: SecretString,
        refresh_token_key: SecretString,
    },
    /// A signer's secret (`JWT_SIGNING_KEY_SECRET_ARN`):
    /// `{"current": {"kid","algorithm","private_key"}, "refresh_token_key"}`.
    SigningSecret { arn: String },
    /// A verifier's public JWK set from `JWT_PUBLIC_KEYS`. Static: never refreshed.
    PublicKeysEnv { jwks: String },
    /// A verifier's secret holding the public JWK set (`JWT_VERIFICATION_KEYS_SECRET_ARN`).
    VerificationSecret { arn: String },
}

/// The token keys, what the tokens they sign say, and how often keys from a secret refresh.
#[derive(Debug)]
pub struct KeyConfig {
    pub source: KeySource,
    /// `JWT_ISSUER`; when it is empty, derived from the first request's API id and
    /// `AWS_REGION` (see `issuer`).
    pub issuer: Issuer,
    pub audience: String,
    pub access_token_ttl: Duration,
    /// Keys from a secret are read again once they are older than this
    /// (`JWT_KEYS_TTL_SECONDS`, default 300).
    pub refresh_after: Duration,
    /// A verifier meeting an unknown `kid` reads its secret again at most this often
    /// (`JWT_KEYS_REFETCH_INTERVAL_SECONDS`, default 30).
    pub refetch_interval: Duration,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(needs: Needs) -> Result<Self, ConfigError> {
        Self::from_lookup(needs, |name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests can pass a map.
    pub fn from_lookup(needs: Needs, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let function_name =
            vars.optional("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "auth-local".to_owned());
        let database = needs.database.then(|| database_config(&vars, &function_name)).transpose()?;
        let keys = match needs.keys {
            Keys::None => None,
            Keys::SignAndVerify => Some(key_config(&vars, Keys::Sign)?),
            role => Some(key_config(&vars, role)?),
        };
        // One issuer for both halves: a derived one is learnt once, from the first request.
        let verification_keys = match (needs.keys, &keys) {
            (Keys::SignAndVerify, Some(signing)) => {
                Some(KeyConfig { issuer: signing.issuer.clone(), ..key_config(&vars, Keys::Verify)? })
            }
            _ => None,
        };
        Ok(Self {
            function_name,
            database,
            keys,
            verification_keys,
            refresh_token_ttl: vars.seconds("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600)?,
            refresh_reuse_grace: vars.seconds("REFRESH_REUSE_GRACE_SECONDS", 10)?,
            session_max_lifetime: session_max_lifetime(&vars)?,
            metrics_namespace: vars.optional("METRICS_NAMESPACE").unwrap_or_else(|| "AuthApi".to_owned()),
            mail: if needs.mail { mail_config(&vars)? } else { None },
            require_verified_email: vars.parsed("REQUIRE_VERIFIED_EMAIL", false)?,
            login_source_limit: at_least_one(
                &vars,
                "LOGIN_SOURCE_FAILURE_LIMIT",
                DEFAULT_LOGIN_SOURCE_FAILURE_LIMIT,
            )?,
            mail_source_limit: at_least_one(
                &vars,
                "MAIL_SOURCE_HOURLY_LIMIT",
                DEFAULT_MAIL_SOURCE_HOURLY_LIMIT,
            )?,
            origin_secrets: origin_secrets(&vars)?,
            mfa_keys: if needs.mfa { Some(mfa_key_source(&vars)?) } else { None },
            passkey_origin: if needs.passkeys { Some(app_url(&vars)?) } else { None },
        })
    }
}

/// `MFA_KEYS_SECRET_ARN`, else `MFA_KEYS`, whose ring is read (and so validated) here.
fn mfa_key_source(vars: &Vars<'_>) -> Result<MfaKeySource, ConfigError> {
    if let Some(arn) = vars.optional("MFA_KEYS_SECRET_ARN") {
        let (refresh_after, refetch_interval) = reading_schedule(vars)?;
        return Ok(MfaKeySource::Secret { arn, refresh_after, refetch_interval });
    }
    let ring = vars.required("MFA_KEYS")?;
    let keys = crate::mfa::seal::SealingKeys::from_json(&ring)
        .map_err(|error| ConfigError::Malformed { name: "MFA_KEYS", problem: format!("{error:#}") })?;
    Ok(MfaKeySource::Env(keys))
}

/// `ORIGIN_VERIFY_SECRET`, when set: one or two values (the current and, while it rotates, the
/// previous), each long enough not to be guessed.
fn origin_secrets(vars: &Vars<'_>) -> Result<Vec<secrecy::SecretString>, ConfigError> {
    const NAME: &str = "ORIGIN_VERIFY_SECRET";
    let Some(value) = vars.optional(NAME) else { return Ok(Vec::new()) };
    let secrets: Vec<&str> = value.split(',').map(str::trim).collect();
    let malformed = |problem: String| ConfigError::Malformed { name: NAME, problem };
    if secrets.len() > 2 {
        return Err(malformed("at most two values (the current and the previous)".into()));
    }
    if secrets.iter().any(|secret| secret.chars().count() < MIN_ORIGIN_SECRET_CHARS) {
        return Err(malformed(format!("each value must be at least {MIN_ORIGIN_SECRET_CHARS} characters")));
    }
    Ok(secrets.into_iter().map(|secret| secret.to_owned().into()).collect())
}

/// A count limit from `name`: at least 1 (`default` when unset).
fn at_least_one(vars: &Vars<'_>, name: &'static str, default: u32) -> Result<u32, ConfigError> {
    let limit = vars.parsed(name, default)?;
    if limit == 0 {
        return Err(ConfigError::Malformed { name, problem: "must be at least 1".to_owned() });
    }
    Ok(limit)
}

/// `APP_URL`, the web app's base URL: an absolute http(s) URL, without a trailing slash.
fn app_url(vars: &Vars<'_>) -> Result<String, ConfigError> {
    let app_url = vars.required("APP_URL")?;
    let malformed = |problem: &str| ConfigError::Malformed { name: "APP_URL", problem: problem.to_owned() };
    let app_url = app_url.trim().trim_end_matches('/').to_owned();
    let Some((scheme, rest)) = app_url.split_once("://") else {
        return Err(malformed("not an absolute URL (https://app.example.com)"));
    };
    if !["http", "https"].contains(&scheme) || rest.is_empty() {
        return Err(malformed("not an http or https URL"));
    }
    if !app_url.is_ascii() || app_url.contains(['?', '#']) || app_url.chars().any(char::is_whitespace) {
        return Err(malformed("must be ASCII, without spaces, a query or a fragment"));
    }
    Ok(app_url)
}

/// The mail settings, when `MAIL_FROM` is set: then `APP_URL` must be an absolute http(s) URL.
fn mail_config(vars: &Vars<'_>) -> Result<Option<MailConfig>, ConfigError> {
    let Some(from) = vars.optional("MAIL_FROM") else { return Ok(None) };
    let app_url = app_url(vars)?;
    if !from.contains('@') || from.contains(['\r', '\n']) {
        return Err(ConfigError::Malformed { name: "MAIL_FROM", problem: "not an address".into() });
    }
    let hourly_limit = vars.parsed("MAIL_HOURLY_LIMIT", crate::mail::DEFAULT_HOURLY_LIMIT)?;
    if hourly_limit == 0 {
        return Err(ConfigError::Malformed {
            name: "MAIL_HOURLY_LIMIT",
            problem: "must be at least 1".into(),
        });
    }
    Ok(Some(MailConfig {
        from,
        app_url,
        hourly_limit,
        outbox: vars.optional("MAIL_OUTBOX_DIR").map(PathBuf::from),
    }))
}

fn session_max_lifetime(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    let lifetime = vars.seconds("SESSION_MAX_LIFETIME_SECONDS", DEFAULT_SESSION_MAX_LIFETIME.as_secs())?;
    if lifetime.is_zero() {
        return Err(ConfigError::Malformed {
            name: "SESSION_MAX_LIFETIME_SECONDS",
            problem: "must be at least 1".into(),
        });
    }
    Ok(lifetime)
}

fn database_config(vars: &Vars<'_>, function_name: &str) -> Result<DatabaseConfig, ConfigError> {
    let ssl_mode = vars
        .optional("DB_SSLMODE")
        .map(|mode| {
            PgSslMode::from_str(&mode)
                .map_err(|error| ConfigError::Malformed { name: "DB_SSLMODE", problem: error.to_string() })
        })
        .transpose()?;
    let ssl_root_cert = vars.optional("DB_SSL_ROOT_CERT").map(PathBuf::from);
    let source = if let Some(url) = vars.optional("DATABASE_URL") {
        let options = PgConnectOptions::from_str(&url)
            .map_err(|error| ConfigError::Malformed { name: "DATABASE_URL", problem: error.to_string() })?;
        // The URL's own `sslmode` is the operator's explicit choice and wins.
        let options = if url_names_ssl_mode(&url) {
            options
        } else {
            let host =
                options.get_socket().map_or(options.get_host().to_owned(), |s| s.display().to_string());
            options.ssl_mode(ssl_mode.unwrap_or_else(|| default_ssl_mode(&host)))
        };
        DatabaseSource::Direct(Box::new(with_root_cert(options, ssl_root_cert.as_ref())))
    } else if let Some(arn) = vars.optional("DB_SECRET_ARN") {
        DatabaseSource::Secret {
            arn,
            host: vars.optional("DB_HOST"),
            port: vars.optional("DB_PORT").map(|_| vars.parsed("DB_PORT", 5432)).transpose()?,
            database: vars.optional("DB_NAME"),
            ssl_mode,
        }
    } else {
        // Built from parts: a password never has to be escaped into a URL.
        let host = vars.required("DB_HOST")?;
        let options = PgConnectOptions::new_without_pgpass()
            .host(&host)
            .port(vars.parsed("DB_PORT", 5432)?)
            .username(&vars.required("DB_USER")?)
            .password(&vars.required("DB_PASSWORD")?)
            .database(&vars.required("DB_NAME")?)
            .ssl_mode(ssl_mode.unwrap_or_else(|| default_ssl_mode(&host)));
        DatabaseSource::Direct(Box::new(with_root_cert(options, ssl_root_cert.as_ref())))
    };
    let max_connections: u32 = vars.parsed("DB_MAX_CONNECTIONS", 1)?;
    if max_connections == 0 {
        return Err(ConfigError::Malformed {
            name: "DB_MAX_CONNECTIONS",
            problem: "must be at least 1".into(),
        });
    }
    let concurrency: u32 = vars.parsed("AWS_LAMBDA_MAX_CONCURRENCY", 1)?;
    let max_connections = max_connections.max(concurrency);
    Ok(DatabaseConfig {
        source,
        application_name: function_name.to_owned(),
        max_connections,
        acquire_timeout: Duration::from_millis(vars.parsed("DB_ACQUIRE_TIMEOUT_MS", 3_000)?),
        idle_timeout: vars.seconds("DB_IDLE_TIMEOUT_SECONDS", 60)?,
        max_lifetime: vars.seconds("DB_MAX_LIFETIME_SECONDS", 300)?,
        ping_after_idle: Duration::from_millis(vars.parsed("DB_PING_AFTER_IDLE_MS", 1_000)?),
        ssl_root_cert,
        transaction_pooler: vars.parsed("DB_TRANSACTION_POOLER", false)?,
    })
}

/// `options` checking the server's certificate against `root_cert`, when there is one.
pub fn with_root_cert(options: PgConnectOptions, root_cert: Option<&PathBuf>) -> PgConnectOptions {
    match root_cert {
        Some(path) => options.ssl_root_cert(path),
        None => options,
    }
}

/// Whether a connection URL sets its own TLS mode (`sslmode`, or sqlx's `ssl-mode`).
fn url_names_ssl_mode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| matches!(pair.split('=').next(), Some("sslmode" | "ssl-mode")))
    })
}

fn key_config(vars: &Vars<'_>, role: Keys) -> Result<KeyConfig, ConfigError> {
    let source = match role {
        Keys::Sign | Keys::SignAndVerify => signing_source(vars)?,
        Keys::Verify | Keys::None => match vars.optional("JWT_VERIFICATION_KEYS_SECRET_ARN") {
            Some(arn) => KeySource::VerificationSecret { arn },
            None => KeySource::PublicKeysEnv { jwks: vars.required("JWT_PUBLIC_KEYS")? },
        },
    };
    let (refresh_after, refetch_interval) = reading_schedule(vars)?;
    Ok(KeyConfig {
        source,
        issuer: match vars.optional("JWT_ISSUER") {
            Some(url) => Issuer::fixed(url),
            None => Issuer::derived(
                vars.optional("AWS_REGION")
                    .ok_or(ConfigError::Missing("JWT_ISSUER (or AWS_REGION, to derive it)"))?,
            ),
        },
        audience: vars.required("JWT_AUDIENCE")?,
        access_token_ttl: vars.seconds("ACCESS_TOKEN_TTL_SECONDS", 15 * 60)?,
        refresh_after,
        refetch_interval,
    })
}

/// How often keys from a secret are read again: once older than `JWT_KEYS_TTL_SECONDS` (default
/// 300, at least 1), and at most every `JWT_KEYS_REFETCH_INTERVAL_SECONDS` (default 30) for a key
/// a token or a sealed value names and the keys held lack.
fn reading_schedule(vars: &Vars<'_>) -> Result<(Duration, Duration), ConfigError> {
    let refresh_after = vars.seconds("JWT_KEYS_TTL_SECONDS", 300)?;
    if refresh_after.is_zero() {
        return Err(ConfigError::Malformed {
            name: "JWT_KEYS_TTL_SECONDS",
            problem: "must be at least 1".into(),
        });
    }
    Ok((refresh_after, vars.seconds("JWT_KEYS_REFETCH_INTERVAL_SECONDS", 30)?))
}

fn signing_source(vars: &Vars<'_>) -> Result<KeySource, ConfigError> {
    if let Some(arn) = vars.optional("JWT_SIGNING_KEY_SECRET_ARN") {
        // The secret carries its own refresh-token key; one in the environment as well would
        // leave two candidates, and the one not used would be trusted by nobody.
        if vars.optional("REFRESH_TOKEN_HMAC_KEY").is_some() {
            return Err(ConfigError::Malformed {
                name: "REFRESH_TOKEN_HMAC_KEY",
                problem: "set together with JWT_SIGNING_KEY_SECRET_ARN, whose secret holds the \
                          refresh_token_key; unset one of them"
                    .into(),
            });
        }
        return Ok(KeySource::SigningSecret { arn });
    }
    let algorithm_name = vars.optional("JWT_ALGORITHM").unwrap_or_else(|| "RS256".to_owned());
    let algorithm = SigningAlgorithm::parse(&algorithm_name).ok_or_else(|| ConfigError::Malformed {
        name: "JWT_ALGORITHM",
        problem: format!("{algorithm_name:?} is not one of RS256, ES256, EdDSA"),
    })?;
    let refresh_token_key = vars.required("REFRESH_TOKEN_HMAC_KEY")?;
    if refresh_token_key.len() < MIN_REFRESH_TOKEN_KEY_BYTES {
        return Err(ConfigError::Malformed {
            name: "REFRESH_TOKEN_HMAC_KEY",
            problem: format!("shorter than {MIN_REFRESH_TOKEN_KEY_BYTES} bytes"),
        });
    }
    Ok(KeySource::SigningEnv {
        algorithm,
        key_id: vars.required("JWT_KEY_ID")?,
        private_key: SecretString::from(vars.required("JWT_PRIVATE_KEY")?),
        refresh_token_key: SecretString::from(refresh_token_key),
    })
}

struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// A set, non-blank variable.
    fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    fn parsed<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|error: T::Err| ConfigError::Malformed {
                name,
                problem: format!("{raw:?}: {error}"),
            }),
        }
    }

    fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parsed(name, default).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ALL: Needs =
        Needs { database: true, keys: Keys::Sign, mail: false, mfa: false, passkeys: false, query: false };
    const VERIFIER: Needs =
        Needs { database: false, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };
    const DATABASE: Needs =
        Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };
    const MAILER: Needs =
        Needs { database: true, keys: Keys::None, mail: true, mfa: false, passkeys: false, query: false };
    const REFRESH_KEY: &str = "0123456789abcdef0123456789abcdef";

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DATABASE_URL", "postgres://app@localhost:5432/auth"),
            ("JWT_KEY_ID", "k1"),
            ("JWT_PRIVATE_KEY", "pem"),
            ("REFRESH_TOKEN_HMAC_KEY", REFRESH_KEY),
            ("JWT_ISSUER", "https://auth.example.com"),
            ("JWT_AUDIENCE", "example-api"),
            ("AWS_LAMBDA_FUNCTION_NAME", "auth-login"),
        ]
    }

    #[test]
    fn defaults_are_lambda_sized() {
        let config = Config::from_lookup(ALL, lookup(&complete())).unwrap();
        let db = config.database.unwrap();
        assert_eq!(db.max_connections, 1);
        assert_eq!(db.acquire_timeout, Duration::from_secs(3));
        assert_eq!(db.ping_after_idle, Duration::from_secs(1));
        assert_eq!(db.application_name, "auth-login");
        let keys = config.keys.unwrap();
        assert!(matches!(keys.source, KeySource::SigningEnv { algorithm: SigningAlgorithm::Rs256, .. }));
        assert_eq!(keys.access_token_ttl, Duration::from_secs(900));
        assert_eq!(keys.refresh_after, Duration::from_secs(300));
        assert_eq!(keys.refetch_interval, Duration::from_secs(30));
        assert_eq!(config.refresh_token_ttl, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(config.refresh_reuse_grace, Duration::from_secs(10));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let mut vars = complete();
        vars.retain(|(name, _)| *name != "JWT_AUDIENCE");
        let error = Config::from_lookup(ALL, lookup(&vars)).unwrap_err();
        assert_eq!(error.to_string(), "the environment variable JWT_AUDIENCE is not set");
    }

    #[test]
    fn without_jwt_issuer_the_issuer_is_derived_in_the_functions_region() {
        let mut vars = complete();
        vars.retain(|(name, _)| *name != "JWT_ISSUER");
        vars.push(("JWT_ISSUER", " "));
        let without_region = Config::from_lookup(ALL, lookup(&vars)).unwrap_err();
        vars.push(("AWS_REGION", "eu-west-1"));
        let issuer = Config::from_lookup(ALL, lookup(&vars)).unwrap().keys.unwrap().issuer;
        issuer.learn("a1b2c3d4e5", "$default");

        assert!(without_region.to_string().contains("JWT_ISSUER"), "{without_region}");
        assert_eq!(issuer.get(), Some("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"));
    }

    #[test]
    fn under_managed_instances_the_pool_has_a_connection_per_concurrent_invocation() {
        let pool_size = |extra: &[(&'static str, &'static str)]| {
            let mut vars = complete();
            vars.extend_from_slice(extra);
            Config::from_lookup(ALL, lookup(&vars)).unwrap().database.unwrap().max_connections
        };
        assert_eq!(pool_size(&[("AWS_LAMBDA_MAX_CONCURRENCY", "8")]), 8);
        assert_eq!(pool_size(&[("AWS_LAMBDA_MAX_CONCURRENCY", "8"), ("DB_MAX_CONNECTIONS", "12")]), 12);
        assert_eq!(pool_size(&[("AWS_LAMBDA_MAX_CONCURRENCY", "1"), ("DB_MAX_CONNECTIONS", "2")]), 2);
    }

    #[test]
    fn a_malformed_variable_is_named() {
        let mut vars = complete();
        vars.push(("DB_MAX_CONNECTIONS", "many"));
        let error = Config::from_lookup(ALL, lookup(&vars)).unwrap_err();
        assert!(error.to_string().contains("DB_MAX_CONNECTIONS"), "{error}");
    }

    #[test]
    fn a_function_without_a_database_needs_no_database_settings() {
        let vars = lookup(&[
            ("JWT_KEY_ID", "k"),
            ("JWT_PRIVATE_KEY", "p"),
            ("REFRESH_TOKEN_HMAC_KEY", REFRESH_KEY),
            ("JWT_ISSUER", "i"),
            ("JWT_AUDIENCE", "a"),
        ]);
        let config = Config::from_lookup(
            Needs {
                database: false,
                keys: Keys::Sign,
                mail: false,
                mfa: false,
                passkeys: false,
                query: false,
            },
            vars,
        )
        .unwrap();
        assert!(config.database.is_none());
    }

    #[test]
    fn a_function_that_signs_and_verifies_reads_both_key_sources() {
        const BOTH: Needs = Needs {
            database: false,
            keys: Keys::SignAndVerify,
            mail: false,
            mfa: false,
            passkeys: false,
            query: false,
        };
        let signing =
            [("JWT_SIGNING_KEY_SECRET_ARN", "arn:signing"), ("JWT_ISSUER", "i"), ("JWT_AUDIENCE", "a")];
        let mut both = signing.to_vec();
        both.push(("JWT_VERIFICATION_KEYS_SECRET_ARN", "arn:verification"));

        let missing = Config::from_lookup(BOTH, lookup(&signing)).unwrap_err();
        let config = Config::from_lookup(BOTH, lookup(&both)).unwrap();
        let signer_only = Config::from_lookup(Needs { keys: Keys::Sign, ..BOTH }, lookup(&both)).unwrap();

        assert_eq!(missing.to_string(), "the environment variable JWT_PUBLIC_KEYS is not set");
        assert!(matches!(config.keys.unwrap().source, KeySource::SigningSecret { .. }));
        assert!(matches!(config.verification_keys.unwrap().source, KeySource::VerificationSecret { .. }));
        assert!(signer_only.verification_keys.is_none());
    }

    #[test]
    fn database_parts_are_used_when_there_is_no_url() {
        let vars = lookup(&[
            ("DB_HOST", "db.internal"),
            ("DB_USER", "app"),
            ("DB_PASSWORD", "p@ss/word"),
            ("DB_NAME", "auth"),
        ]);
        let config = Config::from_lookup(DATABASE, vars).unwrap();
        let DatabaseSource::Direct(connect) = config.database.unwrap().source else {
            panic!("parts make direct options");
        };
        assert_eq!(
            (connect.get_host(), connect.get_port(), connect.get_username()),
            ("db.internal", 5432, "app")
        );
        let missing = lookup(&[("DB_HOST", "db.internal")]);
        let error = Config::from_lookup(DATABASE, missing).unwrap_err();
        assert_eq!(error.to_string(), "the environment variable DB_USER is not set");
    }

    #[test]
    fn secret_arns_select_secrets_manager_and_db_host_overrides_the_secret_host() {
        let vars = lookup(&[
            ("DB_SECRET_ARN", "arn:db"),
            ("DB_HOST", "proxy.internal"),
            ("JWT_SIGNING_KEY_SECRET_ARN", "arn:signing"),
            ("JWT_VERIFICATION_KEYS_SECRET_ARN", "arn:verification"),
            ("JWT_ISSUER", "i"),
            ("JWT_AUDIENCE", "a"),
        ]);
        let config = Config::from_lookup(ALL, &vars).unwrap();
        let DatabaseSource::Secret { arn, host, .. } = config.database.unwrap().source else {
            panic!("a secret ARN selects Secrets Manager");
        };
        assert_eq!((arn.as_str(), host.as_deref()), ("arn:db", Some("proxy.internal")));
        assert!(
            matches!(config.keys.unwrap().source, KeySource::SigningSecret { arn } if arn == "arn:signing")
        );
        let verifier = Config::from_lookup(VERIFIER, &vars).unwrap();
        assert!(
            matches!(verifier.keys.unwrap().source, KeySource::VerificationSecret { arn } if arn == "arn:verification")
        );
    }

    #[test]
    fn db_port_and_db_name_supply_what_a_managed_secret_lacks_and_db_transaction_pooler_is_read() {
        let secret =
            [("DB_SECRET_ARN", "arn:db"), ("DB_HOST", "db"), ("DB_PORT", "6432"), ("DB_NAME", "auth")];
        let config = database_only(&[&secret[..], &[("DB_TRANSACTION_POOLER", "true")]].concat());
        let bad_port =
            Config::from_lookup(DATABASE, lookup(&[("DB_SECRET_ARN", "arn:db"), ("DB_PORT", "five")]))
                .unwrap_err();

        let DatabaseSource::Secret { host, port, database, .. } = &config.source else { panic!("a secret") };
        assert_eq!((host.as_deref(), *port, database.as_deref()), (Some("db"), Some(6432), Some("auth")));
        assert!(config.transaction_pooler);
        assert!(!database_only(&secret).transaction_pooler, "off unless set");
        assert!(bad_port.to_string().contains("DB_PORT"), "{bad_port}");
    }

    #[test]
    fn signing_requires_a_refresh_token_key_of_at_least_32_bytes() {
        let mut vars = complete();
        vars.retain(|(name, _)| *name != "REFRESH_TOKEN_HMAC_KEY");
        let missing = Config::from_lookup(ALL, lookup(&vars)).unwrap_err();
        vars.push(("REFRESH_TOKEN_HMAC_KEY", "0123456789abcdef0123456789abcde"));
        let short = Config::from_lookup(ALL, lookup(&vars)).unwrap_err();

        assert_eq!(missing.to_string(), "the environment variable REFRESH_TOKEN_HMAC_KEY is not set");
        assert!(
            short.to_string().contains("REFRESH_TOKEN_HMAC_KEY") && short.to_string().contains("32 bytes"),
            "{short}"
        );
    }

    #[test]
    fn a_verifier_reads_public_keys_only() {
        let jwks = r#"{"keys":[]}"#;
        // A verifier's environment that also holds a signer's settings: it takes none of them.
        let mut vars = complete();
        vars.push(("JWT_PUBLIC_KEYS", jwks));
        let config = Config::from_lookup(VERIFIER, lookup(&vars)).unwrap();
        assert!(
            matches!(config.keys.unwrap().source, KeySource::PublicKeysEnv { jwks: found } if found == jwks)
        );

        vars.retain(|(name, _)| *name != "JWT_PUBLIC_KEYS");
        let error = Config::from_lookup(VERIFIER, lookup(&vars)).unwrap_err();
        assert_eq!(error.to_string(), "the environment variable JWT_PUBLIC_KEYS is not set");
    }

    #[test]
    fn a_signing_secret_and_a_refresh_key_in_the_environment_are_refused_together() {
        let mut vars = complete();
        vars.push(("JWT_SIGNING_KEY_SECRET_ARN", "arn:signing"));
        let error = Config::from_lookup(ALL, lookup(&vars)).unwrap_err();
        assert!(error.to_string().contains("REFRESH_TOKEN_HMAC_KEY"), "{error}");
    }

    fn database_only(pairs: &[(&str, &str)]) -> DatabaseConfig {
        Config::from_lookup(DATABASE, lookup(pairs)).unwrap().database.unwrap()
    }

    fn direct_ssl_mode(pairs: &[(&str, &str)]) -> PgSslMode {
        let DatabaseSource::Direct(options) = database_only(pairs).source else { panic!("direct options") };
        options.get_ssl_mode()
    }

    const PARTS: [(&str, &str); 3] = [("DB_USER", "app"), ("DB_PASSWORD", "p"), ("DB_NAME", "auth")];

    #[test]
    fn without_db_sslmode_a_remote_database_requires_tls() {
        let remote_url = direct_ssl_mode(&[("DATABASE_URL", "postgres://app@db.internal:5432/auth")]);
        let remote_parts = direct_ssl_mode(&[&PARTS[..], &[("DB_HOST", "10.0.3.7")]].concat());

        assert!(matches!(remote_url, PgSslMode::Require), "{remote_url:?}");
        assert!(matches!(remote_parts, PgSslMode::Require), "{remote_parts:?}");
    }

    #[test]
    fn without_db_sslmode_a_loopback_database_prefers_tls() {
        for host in
            ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LocalHost", "/var/run/postgresql"]
        {
            assert!(matches!(default_ssl_mode(host), PgSslMode::Prefer), "{host}");
        }
        for host in ["db.internal", "10.0.0.1", "128.0.0.1", "::2", "localhost.example.com", "[2001:db8::1]"]
        {
            assert!(matches!(default_ssl_mode(host), PgSslMode::Require), "{host}");
        }
        let url = direct_ssl_mode(&[("DATABASE_URL", "postgres://app@127.0.0.1:5432/auth")]);
        assert!(matches!(url, PgSslMode::Prefer), "{url:?}");
        let socket = direct_ssl_mode(&[("DATABASE_URL", "postgres:///auth?host=/var/run/postgresql")]);
        assert!(matches!(socket, PgSslMode::Prefer), "{socket:?}");
    }

    #[test]
    fn db_sslmode_overrides_the_default_and_a_url_sslmode_overrides_both() {
        let parts = direct_ssl_mode(
            &[&PARTS[..], &[("DB_HOST", "localhost"), ("DB_SSLMODE", "verify-full")]].concat(),
        );
        let url = direct_ssl_mode(&[
            ("DATABASE_URL", "postgres://app@db.internal/auth"),
            ("DB_SSLMODE", "verify-ca"),
        ]);
        let own = direct_ssl_mode(&[
            ("DATABASE_URL", "postgres://app@db.internal/auth?sslmode=disable"),
            ("DB_SSLMODE", "verify-full"),
        ]);

        assert!(matches!(parts, PgSslMode::VerifyFull), "{parts:?}");
        assert!(matches!(url, PgSslMode::VerifyCa), "{url:?}");
        assert!(matches!(own, PgSslMode::Disable), "{own:?}");
    }

    #[test]
    fn a_secret_source_decides_the_tls_mode_once_the_host_is_known_unless_it_is_set() {
        let unset = database_only(&[("DB_SECRET_ARN", "arn:db")]).source;
        let set = database_only(&[("DB_SECRET_ARN", "arn:db"), ("DB_SSLMODE", "verify-full")]).source;

        assert!(matches!(unset, DatabaseSource::Secret { ssl_mode: None, .. }), "{unset:?}");
        assert!(
            matches!(set, DatabaseSource::Secret { ssl_mode: Some(PgSslMode::VerifyFull), .. }),
            "{set:?}"
        );
    }

    #[test]
    fn db_ssl_root_cert_names_the_ca_bundle() {
        let config = database_only(&[
            ("DATABASE_URL", "postgres://app@db.internal/auth"),
            ("DB_SSL_ROOT_CERT", "/opt/rds/global-bundle.pem"),
        ]);

        assert_eq!(config.ssl_root_cert, Some(PathBuf::from("/opt/rds/global-bundle.pem")));
        assert!(
            database_only(&[("DATABASE_URL", "postgres://app@db.internal/auth")]).ssl_root_cert.is_none()
        );
    }

    #[test]
    fn a_session_lives_ninety_days_unless_configured() {
        let url = ("DATABASE_URL", "postgres://app@localhost/auth");
        let default = Config::from_lookup(DATABASE, lookup(&[url])).unwrap();
        let set =
            Config::from_lookup(DATABASE, lookup(&[url, ("SESSION_MAX_LIFETIME_SECONDS", "3600")])).unwrap();
        let zero =
            Config::from_lookup(DATABASE, lookup(&[url, ("SESSION_MAX_LIFETIME_SECONDS", "0")])).unwrap_err();

        assert_eq!(default.session_max_lifetime, Duration::from_secs(7_776_000));
        assert_eq!(set.session_max_lifetime, Duration::from_secs(3600));
        assert!(zero.to_string().contains("SESSION_MAX_LIFETIME_SECONDS"), "{zero}");
    }

    #[test]
    fn mail_is_sent_only_with_mail_from_and_then_needs_an_app_url() {
        let url = ("DATABASE_URL", "postgres://app@localhost/auth");
        let unset = Config::from_lookup(MAILER, lookup(&[url])).unwrap();
        let missing = Config::from_lookup(MAILER, lookup(&[url, ("MAIL_FROM", "Auth <a@example.com>")]));
        let set = Config::from_lookup(
            MAILER,
            lookup(&[url, ("MAIL_FROM", "a@example.com"), ("APP_URL", "https://app.example.com/")]),
        )
        .unwrap();
        let not_a_sender =
            Config::from_lookup(DATABASE, lookup(&[url, ("MAIL_FROM", "a@example.com")])).unwrap();

        assert!(unset.mail.is_none());
        assert_eq!(missing.unwrap_err().to_string(), "the environment variable APP_URL is not set");
        let mail = set.mail.unwrap();
        assert_eq!((mail.app_url.as_str(), mail.hourly_limit), ("https://app.example.com", 1_000));
        assert!(not_a_sender.mail.is_none(), "only a function that sends reads the mail settings");
        for bad in ["app.example.com", "ftp://x", "https://app.example.com/?a=1", "https://"] {
            let error =
                Config::from_lookup(MAILER, lookup(&[url, ("MAIL_FROM", "a@example.com"), ("APP_URL", bad)]))
                    .unwrap_err();
            assert!(error.to_string().contains("APP_URL"), "{bad}: {error}");
        }
    }

    #[test]
    fn unverified_addresses_may_log_in_unless_configured() {
        let url = ("DATABASE_URL", "postgres://app@localhost/auth");
        let default = Config::from_lookup(DATABASE, lookup(&[url])).unwrap();
        let set = Config::from_lookup(DATABASE, lookup(&[url, ("REQUIRE_VERIFIED_EMAIL", "true")])).unwrap();
        let bad =
            Config::from_lookup(DATABASE, lookup(&[url, ("REQUIRE_VERIFIED_EMAIL", "yes")])).unwrap_err();

        assert!(!default.require_verified_email);
        assert!(set.require_verified_email);
        assert!(bad.to_string().contains("REQUIRE_VERIFIED_EMAIL"), "{bad}");
    }

    #[test]
    fn an_origin_secret_is_optional_and_never_short() {
        let url = ("DATABASE_URL", "postgres://app@localhost/auth");
        let with =
            |secret: &str| Config::from_lookup(DATABASE, lookup(&[url, ("ORIGIN_VERIFY_SECRET", secret)]));

        let (long, short) = ("s".repeat(MIN_ORIGIN_SECRET_CHARS), "s".repeat(MIN_ORIGIN_SECRET_CHARS - 1));

        assert!(Config::from_lookup(DATABASE, lookup(&[url])).unwrap().origin_secrets.is_empty());
        assert!(with("").unwrap().origin_secrets.is_empty(), "empty: no CloudFront (the template's default)");
        assert_eq!(with(&long).unwrap().origin_secrets.len(), 1);
        assert_eq!(with(&format!("{long}, {long}t")).unwrap().origin_secrets.len(), 2, "while rotating");
        for bad in [short.clone(), format!("{long},{short}"), format!("{long},{long},{long}")] {
            let error = with(&bad).unwrap_err();
            assert!(
                error.to_string().contains("ORIGIN_VERIFY_SECRET") && !error.to_string().contains(&long),
                "{error}"
            );
        }
    }

    #[test]
    fn only_a_function_that_needs_the_mfa_ring_reads_it_and_a_bad_ring_fails_at_init() {
        const SEALER: Needs =
            Needs { database: true, keys: Keys::None, mail: false, mfa: true, passkeys: false, query: false };
        let url = ("DATABASE_URL", "postgres://app@localhost/auth");
        let ring =
            serde_json::json!({"current": "k1", "keys": {"k1": crate::mfa::seal::generate_key().unwrap()}})
                .to_string();

        assert!(
            Config::from_lookup(DATABASE, lookup(&[url, ("MFA_KEYS", "not json")]))
                .unwrap()
                .mfa_keys
                .is_none()
        );
        let missing = Config::from_lookup(SEALER, lookup(&[url])).unwrap_err();
        assert_eq!(missing.to_string(), "the environment variable MFA_KEYS is not set");
        let from_env = Config::from_lookup(SEALER, lookup(&[url, ("MFA_KEYS", &ring)])).unwrap();
        assert!(matches!(from_env.mfa_keys, Some(MfaKeySource::Env(_))));
        let from_secret =
            Config::from_lookup(SEALER, lookup(&[url, ("MFA_KEYS_SECRET_ARN", "arn:aws:secretsmanager:x")]))
                .unwrap();
        assert!(matches!(from_secret.mfa_keys, Some(MfaKeySource::Secret { .. })));
        let bad = Config::from_lookup(SEALER, lookup(&[url, ("MFA_KEYS", r#"{"current":"k1","keys":{}}"#)]));
        assert!(bad.unwrap_err().to_string().contains("MFA_KEYS"));
    }
}
