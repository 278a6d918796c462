//! The state a function builds once per execution environment and every invocation shares.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;

use crate::config::{Config, KeySource};
use crate::db::{Database, DbConnection, SharedSecrets};
use crate::error::ApiError;
use crate::http::{ApiRequest as _, Origin, Request};
use crate::issuer::Issuer;
use crate::keys::{Signer, Verifier};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::tokens::{Claims, TokenSigner, TokenVerifier};

/// How long the shutdown hook may spend closing the pool: Lambda sends SIGKILL 500 ms after
/// SIGTERM when only internal extensions are registered.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(300);

/// Configuration, the lazy pool and the token keys of one function.
pub struct App {
    pub function_name: String,
    /// Where the function's metrics go (namespace and `FunctionName`).
    pub metrics: Metrics,
    /// How long a refresh token lives.
    pub refresh_token_ttl: Duration,
    /// How long a just-rotated token still returns its successor instead of counting as reuse.
    pub refresh_reuse_grace: Duration,
    /// How long a session lives at most, from its creation (`SESSION_MAX_LIFETIME_SECONDS`).
    pub session_max_lifetime: Duration,
    /// Sends the verification and reset links (sends nothing without `MAIL_FROM`).
    pub mailer: Mailer,
    /// Whether login refuses an unverified address (`REQUIRE_VERIFIED_EMAIL`).
    pub require_verified_email: bool,
    /// Failed logins a source address may make across emails in 10 minutes.
    pub login_source_limit: u32,
    /// Anonymous mail requests a source address may make in an hour.
    pub mail_source_limit: u32,
    /// CloudFront's origin secrets, when it fronts the API (see [`crate::http::through_origin`]).
    pub origin_secrets: Vec<secrecy::SecretString>,
    /// The MFA key ring, for a function that seals or opens second-factor secrets.
    pub mfa: Option<crate::mfa::MfaKeys>,
    /// The WebAuthn relying party (`APP_URL`), for a function that runs passkey ceremonies.
    pub passkeys: Option<crate::passkeys::relying_party::RelyingParty>,
    db: Option<Database>,
    signer: Option<Signer>,
    verifier: Option<Verifier>,
    issuer: Option<Issuer>,
}

impl App {
    /// Reads and validates the environment for what the function `needs`. Connects to nothing
    /// and fetches nothing: see [`App::warm_up`].
    pub fn from_env(needs: crate::config::Needs) -> anyhow::Result<Self> {
        let config = Config::from_env(needs).context("invalid configuration")?;
        if needs.mail && config.mail.is_none() {
            tracing::warn!(
                "MAIL_FROM is not set: this function sends no mail (its links are stored, not sent)"
            );
        }
        Self::from_config(config)
    }

    /// Builds the state from a parsed configuration. Keys given in the environment are loaded
    /// (and so validated) here; keys in Secrets Manager on first use.
    pub fn from_config(config: Config) -> anyhow::Result<Self> {
        let secrets = SharedSecrets::default();
        let (mut signer, mut verifier) = (None, None);
        if let Some(keys) = &config.keys {
            match keys.source {
                KeySource::SigningEnv { .. } | KeySource::SigningSecret { .. } => {
                    signer = Some(Signer::from_config(keys, secrets.clone())?);
                }
                KeySource::PublicKeysEnv { .. } | KeySource::VerificationSecret { .. } => {
                    verifier = Some(Verifier::from_config(keys, secrets.clone())?);
                }
            }
        }
        if let Some(keys) = &config.verification_keys {
            verifier = Some(Verifier::from_config(keys, secrets.clone())?);
        }
        let mfa = config.mfa_keys.map(|source| crate::mfa::MfaKeys::from_config(source, secrets.clone()));
        let passkeys = config
            .passkey_origin
            .as_deref()
            .map(crate::passkeys::relying_party::RelyingParty::new)
            .transpose()?;
        Ok(Self {
            metrics: Metrics::new(config.metrics_namespace, config.function_name.clone()),
            function_name: config.function_name,
            refresh_token_ttl: config.refresh_token_ttl,
            refresh_reuse_grace: config.refresh_reuse_grace,
            session_max_lifetime: config.session_max_lifetime,
            mailer: Mailer::new(config.mail),
            require_verified_email: config.require_verified_email,
            login_source_limit: config.login_source_limit,
            mail_source_limit: config.mail_source_limit,
            origin_secrets: config.origin_secrets,
            mfa,
            passkeys,
            db: config.database.map(|db| Database::lazy(db, secrets.clone())),
            signer,
            verifier,
            issuer: config.keys.map(|keys| keys.issuer),
        })
    }

    /// State around an existing pool, a signer and a verifier (tests and tools).
    pub fn with_pool(
        pool: PgPool,
        signer: TokenSigner,
        verifier: TokenVerifier,
        refresh_token_ttl: Duration,
        refresh_reuse_grace: Duration,
    ) -> Self {
        Self {
            function_name: "auth-test".to_owned(),
            metrics: Metrics::new("AuthApi", "auth-test"),
            refresh_token_ttl,
            refresh_reuse_grace,
            session_max_lifetime: crate::config::DEFAULT_SESSION_MAX_LIFETIME,
            mailer: Mailer::new(None),
            require_verified_email: false,
            login_source_limit: crate::config::DEFAULT_LOGIN_SOURCE_FAILURE_LIMIT,
            mail_source_limit: crate::config::DEFAULT_MAIL_SOURCE_HOURLY_LIMIT,
            origin_secrets: Vec::new(),
            mfa: None,
            passkeys: None,
            db: Some(Database::from_pool(pool)),
            signer: Some(Signer::fixed(signer)),
            verifier: Some(Verifier::fixed(verifier)),
            issuer: None,
        }
    }

    /// Lets a derived issuer learn the API from a request's context (see `issuer`); the runtime
    /// calls it with every request before its handler ([`crate::runtime::handle`]).
    pub fn learn_issuer(&self, request: &Request) {
        if let (Some(issuer), Origin::ApiGateway { api_id, stage }) = (&self.issuer, request.origin()) {
            issuer.learn(api_id, stage);
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
        let signing = async {
            match &self.signer {
                Some(signer) => signer.current().await.map(|_| ()),
                None => Ok(()),
            }
        };
        let verification = async {
            match &self.verifier {
                Some(verifier) => verifier.current().await.map(|_| ()),
                None => Ok(()),
            }
        };
        let (database, signing, verification) = tokio::join!(database, signing, verification);
        for error in [database.err(), signing.err(), verification.err()].into_iter().flatten() {
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

    /// The MFA key ring of a function that seals or opens with it (second-factor secrets,
    /// passkey sign-in ceremonies); a function without one is misconfigured (500).
    pub fn mfa_ring(&self) -> Result<&crate::mfa::MfaKeys, ApiError> {
        self.mfa
            .as_ref()
            .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("this function holds no MFA key ring")))
    }

    /// The signing key and the refresh-token key, read from Secrets Manager on first use (and
    /// again once older than `JWT_KEYS_TTL_SECONDS`) when they live there.
    pub async fn tokens(&self) -> Result<Arc<TokenSigner>, ApiError> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            ApiError::Unexpected(anyhow::anyhow!("this function has no signing key configured"))
        })?;
        signer.current().await
    }

    fn verifier(&self) -> Result<&Verifier, ApiError> {
        self.verifier.as_ref().ok_or_else(|| {
            ApiError::Unexpected(anyhow::anyhow!("this function has no verification keys configured"))
        })
    }

    /// The public key set that verifies access tokens (what the JWKS serves).
    pub async fn verification_keys(&self) -> Result<Arc<TokenVerifier>, ApiError> {
        self.verifier()?.current().await
    }

    /// Verifies an access token; an unknown `kid` makes the key set be read again first
    /// (at most once per `JWT_KEYS_REFETCH_INTERVAL_SECONDS`).
    pub async fn verify_access_token(&self, token: &str) -> Result<Claims, ApiError> {
        self.verifier()?.verify(token).await
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
