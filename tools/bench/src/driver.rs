//! Driving the functions: the bench's database, roles and secrets ([`Setup`]), the emulators
//! serving a template's functions, and the [`Driver`] that calls a function with a filled sample
//! event and checks the answer.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use local_lambda::{Emulator, EmulatorConfig, InvocationReport, InvokeOutcome, Log};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use shared::tokens::{SigningAlgorithm, SigningKey, TokenSigner, generate_private_key_pem, public_key_set};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection, PgPool};
use test_support::samples::{Fixture, SampleRequest};

use crate::functions::Function;
use crate::proxy::CountingProxy;

pub const DATABASE: &str = "auth_bench";
const ROLE: &str = "auth_bench_fn";
pub const REGION: &str = "eu-west-1";
/// The refresh-token HMAC key of the benchmarked signers.
const REFRESH_TOKEN_KEY: &str = "the benchmark's refresh-token key, 32+ bytes";
const ISSUER: &str = "https://auth.bench.test";
const AUDIENCE: &str = "bench";
const KEY_ID: &str = "bench";

/// Everything the functions are configured with, and what fills their sample events.
pub struct Setup {
    /// Postgres behind the counting proxy, as the functions' role.
    pub proxied_url: String,
    /// The bench database as its owner, through the counting proxy: what the migration
    /// connects as.
    owner_url: String,
    pub admin: PgConnection,
    pub proxy: CountingProxy,
    key_pem: SecretString,
    db_secret_arn: String,
    /// The owner's secret, which the migration reads (`DbMigrationSecretArn`).
    migration_secret_arn: String,
    keys_secret_arn: String,
    /// The public half of `key_pem` as a JWK set, for the verifying functions.
    public_keys: String,
    verification_secret_arn: String,
    /// The tests' MFA key ring (`test_support::MFA_KEYS`, which the fixture seals with) as a
    /// secret (`MfaKeysSecretArn`).
    mfa_secret_arn: String,
    secrets_endpoint: String,
    /// Makes the accounts the samples name, in the bench database.
    pub fixture: Arc<Fixture>,
}

/// The signer the functions sign with, for the fixture's access tokens.
pub fn signer(key_pem: &SecretString) -> anyhow::Result<TokenSigner> {
    TokenSigner::new(
        SigningKey::from_pem(KEY_ID, SigningAlgorithm::Rs256, key_pem)?,
        &SecretString::from(REFRESH_TOKEN_KEY),
        ISSUER.into(),
        AUDIENCE.into(),
        Duration::from_secs(900),
    )
}

impl Setup {
    /// A fixture making accounts in the database at `url` (sections 10 and 11: their own).
    pub async fn fixture_for(&self, url: &str) -> anyhow::Result<Arc<Fixture>> {
        let pool = PgPool::connect(url).await.context("connecting the fixture")?;
        Ok(Arc::new(Fixture::new(pool, signer(&self.key_pem)?).await?))
    }
}

pub async fn setup() -> anyhow::Result<Setup> {
    let server_url = std::env::var("DATABASE_URL").context("DATABASE_URL (run through make bench)")?;
    let secrets_endpoint = std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .context("AWS_ENDPOINT_URL_SECRETS_MANAGER (run through make bench)")?;
    let server = PgConnectOptions::from_str(&server_url)?;
    let mut admin = PgConnection::connect(&server_url).await.context("connecting to DATABASE_URL")?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    for statement in [
        format!("drop database if exists {DATABASE}"),
        format!("create database {DATABASE}"),
        format!("drop role if exists {ROLE}"),
        format!("create role {ROLE} login password '{password}'"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await?;
    }
    admin.close().await.ok();
    let admin_url = format!(
        "postgres://{}@{}:{}/{DATABASE}",
        server.get_username(),
        server.get_host(),
        server.get_port()
    );
    let mut admin = PgConnection::connect(&admin_url).await?;
    shared::db::MIGRATOR.run(&mut admin).await.context("migrations")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create extension if not exists pg_stat_statements;
         grant select, insert, update, delete on all tables in schema public to {ROLE};"
    )))
    .execute(&mut admin)
    .await
    .context("pg_stat_statements must be preloaded (make bench starts Postgres so)")?;

    let upstream = tokio::net::lookup_host((server.get_host(), server.get_port()))
        .await?
        .next()
        .context("the server's address")?;
    let proxy = CountingProxy::start(upstream).await?;
    let proxied_url = format!("postgres://{ROLE}:{password}@{}/{DATABASE}", proxy.address);
    let owner_url = format!("postgres://{}@{}/{DATABASE}", server.get_username(), proxy.address);

    let key_pem = generate_private_key_pem(SigningAlgorithm::Rs256)?;
    let secrets = aws_sdk_secretsmanager::Client::new(
        &aws_config::from_env().region(aws_sdk_secretsmanager::config::Region::new(REGION)).load().await,
    );
    let create = |name: String, value: Value| {
        let secrets = secrets.clone();
        async move {
            let created = secrets.create_secret().name(name).secret_string(value.to_string()).send().await?;
            anyhow::Ok(created.arn().context("an ARN")?.to_owned())
        }
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let db_secret_arn = create(
        format!("bench/{run}/db"),
        json!({"engine": "postgres", "username": ROLE, "password": password,
               "host": proxy.address.ip().to_string(), "port": proxy.address.port(), "dbname": DATABASE}),
    )
    .await?;
    let migration_secret_arn = create(
        format!("bench/{run}/db-migration"),
        json!({"engine": "postgres", "username": server.get_username(), "password": "",
               "host": proxy.address.ip().to_string(), "port": proxy.address.port(), "dbname": DATABASE}),
    )
    .await?;
    let keys_secret_arn = create(
        format!("bench/{run}/keys"),
        json!({"current": {"kid": KEY_ID, "algorithm": "RS256", "private_key": key_pem.expose_secret()},
               "refresh_token_key": REFRESH_TOKEN_KEY}),
    )
    .await?;
    let public_keys =
        public_key_set(&[&SigningKey::from_pem(KEY_ID, SigningAlgorithm::Rs256, &key_pem)?]).to_string();
    let verification_secret_arn =
        create(format!("bench/{run}/verification"), serde_json::from_str(&public_keys)?).await?;
    let mfa_secret_arn =
        create(format!("bench/{run}/mfa-keys"), serde_json::from_str(test_support::MFA_KEYS)?).await?;
    let pool = PgPool::connect(&admin_url).await.context("connecting the fixture")?;
    let fixture = Arc::new(Fixture::new(pool, signer(&key_pem)?).await?);
    Ok(Setup {
        proxied_url,
        owner_url,
        admin,
        proxy,
        key_pem,
        db_secret_arn,
        migration_secret_arn,
        keys_secret_arn,
        public_keys,
        verification_secret_arn,
        mfa_secret_arn,
        secrets_endpoint,
        fixture,
    })
}

/// Where the functions' database settings and keys come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// DATABASE_URL and the keys in the environment.
    Environment,
    /// As `Environment`, with this DATABASE_URL (sections 10 and 11: their own databases).
    Database(String),
    /// DB_SECRET_ARN, JWT_SIGNING_KEY_SECRET_ARN and JWT_VERIFICATION_KEYS_SECRET_ARN, fetched
    /// from the local Secrets Manager.
    Secrets,
}

/// How an emulator serves its template.
pub struct Serve<'a> {
    pub template: &'a Path,
    pub binaries: &'a Path,
    pub source: Source,
    pub sandboxes: u32,
    /// Every function at this size, each sandbox held to its CPU share and memory (power
    /// tuning); `None`: unthrottled, the code's own cost on this machine.
    pub memory_mb: Option<u32>,
}

/// The functions of a template, configured by `setup`; `configure` adjusts the configuration last.
pub async fn emulator(
    setup: &Setup,
    serve: Serve<'_>,
    configure: impl FnOnce(&mut EmulatorConfig),
) -> anyhow::Result<Emulator> {
    let mut config = EmulatorConfig::new(serve.template, serve.binaries);
    config.max_sandboxes_per_function = serve.sandboxes;
    config.sandbox_limits = serve.memory_mb.is_some();
    config.memory_size_mb = serve.memory_mb;
    config.region = REGION.to_owned();
    config.log = Log::Discard;
    let env = &mut config.env_overrides;
    env.set_for_all("JWT_ISSUER", ISSUER);
    env.set_for_all("JWT_AUDIENCE", AUDIENCE);
    // The passkeys' relying party, which the fixture registers its passkeys for (and the mail
    // links' base, where a section sends mail).
    env.set_for_all("APP_URL", test_support::APP_URL);
    // The bench is one client (127.0.0.1) standing for many: the limits per source address would
    // refuse it long before it has measured anything.
    env.set_for_all("LOGIN_SOURCE_FAILURE_LIMIT", i32::MAX.to_string());
    env.set_for_all("MAIL_SOURCE_HOURLY_LIMIT", i32::MAX.to_string());
    // The template's DB_SSLMODE (require) is for AWS; the bench server is plaintext on loopback.
    env.remove_for_all("DB_SSLMODE");
    // The function the stack's custom resource invokes (the migration) connects as the
    // database's owner, as deployed.
    let migrations: Vec<String> = local_lambda::Template::load(serve.template, REGION)?
        .functions
        .into_iter()
        .filter(|function| function.custom_resource)
        .map(|function| function.logical_id)
        .collect();
    match serve.source {
        Source::Environment | Source::Database(_) => {
            let (url, owner) = match &serve.source {
                Source::Database(url) => (url.clone(), url.clone()),
                _ => (setup.proxied_url.clone(), setup.owner_url.clone()),
            };
            // Each function reads only the part of these its configuration asks for.
            env.set_for_all("DATABASE_URL", url);
            for migration in &migrations {
                env.set_for(migration, "DATABASE_URL", owner.clone());
            }
            env.set_for_all("JWT_PRIVATE_KEY", setup.key_pem.expose_secret());
            env.set_for_all("JWT_KEY_ID", KEY_ID);
            env.set_for_all("REFRESH_TOKEN_HMAC_KEY", REFRESH_TOKEN_KEY);
            env.set_for_all("JWT_PUBLIC_KEYS", setup.public_keys.clone());
            env.set_for_all("MFA_KEYS", test_support::MFA_KEYS);
        }
        Source::Secrets => {
            // The template's own variables, as a deploy fills them in.
            config.parameters.extend([
                ("DbSecretArn".to_owned(), setup.db_secret_arn.clone()),
                ("DbMigrationSecretArn".to_owned(), setup.migration_secret_arn.clone()),
                ("SigningKeySecretArn".to_owned(), setup.keys_secret_arn.clone()),
                ("VerificationKeysSecretArn".to_owned(), setup.verification_secret_arn.clone()),
                ("MfaKeysSecretArn".to_owned(), setup.mfa_secret_arn.clone()),
            ]);
            let env = &mut config.env_overrides;
            env.set_for_all("AWS_ENDPOINT_URL_SECRETS_MANAGER", setup.secrets_endpoint.clone());
            for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                env.set_for_all(name, std::env::var(name).unwrap_or_else(|_| "bench".to_owned()));
            }
        }
    }
    // Security events go to the local EventBridge (make bench runs under scripts/with-moto): no
    // function's SDK ever looks for AWS.
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE") {
        let env = &mut config.env_overrides;
        env.set_for_all("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint);
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            env.set_for_all(name, std::env::var(name).unwrap_or_else(|_| "bench".to_owned()));
        }
    }
    configure(&mut config);
    Emulator::start(config).await
}

/// A sample filled for one call, ready to send.
pub enum Call {
    /// Through the front door.
    Http(SampleRequest),
    /// Straight to the function (a custom resource's or a schedule's event).
    Invoke(String),
}

/// Calls one emulator's functions and checks their answers.
pub struct Driver {
    pub emulator: Emulator,
    client: Client<HttpConnector, Full<Bytes>>,
    pub fixture: Arc<Fixture>,
}

impl Driver {
    pub fn new(emulator: Emulator, fixture: Arc<Fixture>) -> Self {
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http();
        Self { emulator, client, fixture }
    }

    /// `function`'s sample, filled with a fresh account: the work a call needs before it is sent.
    pub async fn prepare(&self, function: &Function) -> anyhow::Result<Call> {
        let filled = self.fixture.fill(&function.sample).await?;
        Ok(match function.request(&filled)? {
            Some(request) => Call::Http(request),
            None => Call::Invoke(filled),
        })
    }

    /// Sends a prepared call to `function` and checks that it succeeded (a 2xx, or a response
    /// rather than a function error); the time the client waited.
    pub async fn send(&self, function: &Function, call: Call) -> anyhow::Result<Duration> {
        match call {
            Call::Http(request) => {
                let method = Method::from_bytes(request.method.as_bytes())?;
                let headers: Vec<(&str, &str)> =
                    request.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
                let (status, body, elapsed) =
                    self.request(method, &request.path, &headers, request.body).await?;
                ensure!((200..300).contains(&status), "{} answered {status}: {body}", function.label);
                Ok(elapsed)
            }
            Call::Invoke(event) => {
                let started = Instant::now();
                let outcome = self.emulator.invoke(&function.logical_id, Bytes::from(event)).await?;
                let elapsed = started.elapsed();
                match outcome {
                    InvokeOutcome::Response(_) => Ok(elapsed),
                    other => bail!("{} failed: {other:?}", function.label),
                }
            }
        }
    }

    /// [`prepare`](Self::prepare), then [`send`](Self::send).
    pub async fn call(&self, function: &Function) -> anyhow::Result<Duration> {
        let call = self.prepare(function).await?;
        self.send(function, call).await
    }

    /// One request through the front door: (status, JSON body or null, client time).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> anyhow::Result<(u16, Value, Duration)> {
        let mut builder =
            Request::builder().method(method).uri(format!("{}{path}", self.emulator.base_url()));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(Bytes::from(body)))?;
        let started = Instant::now();
        let response = self.client.request(request).await.with_context(|| format!("{path}: no answer"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let elapsed = started.elapsed();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, body, elapsed))
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value, Duration)> {
        self.request(Method::POST, path, &[("content-type", "application/json")], body.to_string()).await
    }

    /// The reports of `function`'s invocations that ended after the first `skip`, once `count`
    /// of them exist.
    pub async fn reports(
        &self,
        function: &Function,
        skip: usize,
        count: usize,
    ) -> anyhow::Result<Vec<InvocationReport>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reports: Vec<_> = self
                .emulator
                .invocations_since(skip)
                .into_iter()
                .filter(|report| report.function == function.logical_id)
                .collect();
            if reports.len() >= count {
                return Ok(reports);
            }
            ensure!(Instant::now() < deadline, "{count} reports of {} did not come", function.label);
            // The emulator's reports have no notification to wait on: poll them.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Login taken apart, in this process (section 4): each part's time, and the whole use-case.
pub struct LoginParts {
    /// `accounts::login`, the use-case the function runs (no runtime, event or emulator).
    pub whole: crate::stats::Samples,
    /// The admission statement (`store::admit_login`), one round trip.
    pub admit: crate::stats::Samples,
    /// argon2 verification on the blocking pool (`passwords::verify`).
    pub verify: crate::stats::Samples,
    /// The session statement (`store::start_session`), one round trip.
    pub open: crate::stats::Samples,
    /// The access token's RS256 signature.
    pub sign: crate::stats::Samples,
}

impl Setup {
    /// Times login's parts as the login function runs them, on the functions' role through the
    /// counting proxy, one account, `runs` rounds of each.
    pub async fn login_parts(&self, runs: usize) -> anyhow::Result<LoginParts> {
        use shared::accounts::{self, store};
        use shared::domain::{Device, Email, Password, SessionId};
        use shared::sessions::store::NewSession;
        use shared::tokens::{RefreshToken, TokenVerifier};

        let pool = PgPool::connect(&self.proxied_url).await.context("connecting as the functions")?;
        let verifier = TokenVerifier::from_jwks_json(&self.public_keys, ISSUER.into(), AUDIENCE.into())?;
        let app = shared::app::App::with_pool(
            pool,
            signer(&self.key_pem)?,
            verifier,
            Duration::from_secs(86_400),
            Duration::from_secs(10),
        );
        let email = Email::parse(&format!("parts-{}@example.com", uuid::Uuid::new_v4()))?;
        let password = || Password::presented(test_support::PASSWORD.to_owned());
        let device = Device::new(Some("auth-bench"), Some([192, 0, 2, 1].into()));
        let source = device.source();
        let attempt = store::Attempt::Login { source: source.as_deref(), source_limit: u32::MAX };
        accounts::signup(
            &app,
            email.clone(),
            Password::parse(test_support::PASSWORD.into(), &email)?,
            &device,
        )
        .await?;
        let tokens = app.tokens().await?;
        let (mut whole, mut admit, mut verify, mut open, mut sign) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            let started = Instant::now();
            accounts::login(&app, email.clone(), password()?, &device).await?;
            whole.push(started.elapsed());

            let mut db = app.connection().await?;
            let started = Instant::now();
            let admission = store::admit_login(&mut db, &email, attempt, &device).await?;
            admit.push(started.elapsed());
            let store::Admission::Admitted { account: Some((user, stored)), .. } = admission else {
                bail!("the bench's login was not admitted");
            };
            let started = Instant::now();
            let verified = shared::passwords::verify(password()?, Some(stored.clone())).await?;
            verify.push(started.elapsed());
            ensure!(matches!(verified, shared::passwords::Verified::Yes { .. }), "the password verifies");
            let (session, refresh) = (SessionId::generate(), RefreshToken::generate()?);
            let new_session = NewSession {
                id: session,
                token: &refresh.hash(),
                ttl: Duration::from_secs(86_400),
                device: &device,
            };
            let unused = shared::tokens::MfaToken::generate()?.hash();
            let pending = store::PendingSignIn { token: &unused, ttl: Duration::from_secs(300) };
            let started = Instant::now();
            let opened = store::start_session(
                &mut db,
                user.id,
                &email,
                attempt,
                &stored,
                None,
                store::Opening { session: new_session, pending },
            )
            .await?;
            open.push(started.elapsed());
            ensure!(opened == store::Started::Session, "the session opens");
            let started = Instant::now();
            tokens.issue(user.id, session, &shared::domain::Assurance::password())?;
            sign.push(started.elapsed());
        }
        use crate::stats::Samples;
        Ok(LoginParts {
            whole: Samples::new(whole),
            admit: Samples::new(admit),
            verify: Samples::new(verify),
            open: Samples::new(open),
            sign: Samples::new(sign),
        })
    }
}
