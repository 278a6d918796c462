//! `make bench`: the release function binaries through the local emulator, against a local
//! Postgres (behind a round-trip-counting proxy) and a local Secrets Manager, each figure beside
//! its floor, written to `BENCHMARKS.md`.
//!
//! Usage: auth-bench [--quick] [--power-tuning] [--out FILE] [--binaries DIR] [--cold-starts N]
//! [--warm N] [--memory N] [--load-seconds N]; auth-bench --memory-probe VARIANT (a child of
//! its own, section 7)
//! Needs DATABASE_URL (a server with pg_stat_statements loaded) and
//! AWS_ENDPOINT_URL_SECRETS_MANAGER: `make bench` runs it under scripts/with-postgres and
//! scripts/with-moto.

mod memory;
mod proxy;
mod signing;
mod stats;
mod tuning;
mod volume;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use clap::Parser;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use local_lambda::{Emulator, EmulatorConfig, InvocationReport, Log};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use shared::tokens::{SigningAlgorithm, SigningKey, generate_private_key_pem, public_key_set};

/// The refresh-token HMAC key of the benchmarked signers.
const BENCH_REFRESH_TOKEN_KEY: &str = "the benchmark's refresh-token key, 32+ bytes";
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::{Mutex, mpsc};

use crate::proxy::CountingProxy;
use crate::stats::{Samples, ms};

const PASSWORD: &str = "correct horse battery staple";
const DATABASE: &str = "auth_bench";
const ROLE: &str = "auth_bench_fn";
const REGION: &str = "eu-west-1";

/// What one run measures; `--quick` is a smoke run of the whole pipeline.
#[derive(Clone, Copy)]
struct Plan {
    cold_starts: usize,
    warm_up: usize,
    warm: usize,
    memory: usize,
    load: Duration,
    clients: usize,
    sandboxes: u32,
    /// Power tuning, per function and size: cold starts, warm-up and warm invocations.
    tuning: (usize, usize, usize),
}

impl Plan {
    const FULL: Self = Self {
        cold_starts: 10,
        warm_up: 20,
        warm: 1000,
        memory: 10_000,
        load: Duration::from_secs(10),
        clients: 8,
        sandboxes: 4,
        tuning: (5, 5, 100),
    };
    const QUICK: Self = Self {
        cold_starts: 2,
        warm_up: 5,
        warm: 50,
        memory: 200,
        load: Duration::from_secs(2),
        clients: 4,
        sandboxes: 2,
        tuning: (1, 2, 5),
    };
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Endpoint {
    Signup,
    Login,
    Refresh,
    Me,
    Logout,
    Health,
    Jwks,
    Hello,
}

impl Endpoint {
    const FUNCTIONS: [Self; 7] =
        [Self::Signup, Self::Login, Self::Refresh, Self::Me, Self::Logout, Self::Health, Self::Jwks];

    fn logical_id(self) -> &'static str {
        match self {
            Self::Signup => "SignupFunction",
            Self::Login => "LoginFunction",
            Self::Refresh => "RefreshFunction",
            Self::Me => "MeFunction",
            Self::Logout => "LogoutFunction",
            Self::Health => "HealthFunction",
            Self::Jwks => "JwksFunction",
            Self::Hello => "HelloFunction",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::Refresh => "refresh",
            Self::Me => "me",
            Self::Logout => "logout",
            Self::Health => "health",
            Self::Jwks => "jwks",
            Self::Hello => "hello (floor)",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Self::Signup => "POST /auth/signup",
            Self::Login => "POST /auth/login",
            Self::Refresh => "POST /auth/refresh",
            Self::Me => "GET /auth/me",
            Self::Logout => "POST /auth/logout",
            Self::Health => "GET /health",
            Self::Jwks => "GET /.well-known/jwks.json",
            Self::Hello => "GET /hello",
        }
    }

    fn expected_status(self) -> u16 {
        match self {
            Self::Signup => 201,
            Self::Logout => 204,
            _ => 200,
        }
    }

    /// The most database round trips the endpoint should need, when warm.
    fn round_trip_target(self) -> Option<u64> {
        match self {
            Self::Refresh | Self::Logout | Self::Me | Self::Health => Some(1),
            Self::Signup | Self::Login => Some(2),
            Self::Jwks | Self::Hello => None,
        }
    }
}

/// Refresh tokens not used yet, produced by signups, logins and refreshes; consumed by
/// refreshes and logouts (which wait for one when none is left).
struct Spares {
    sender: mpsc::UnboundedSender<String>,
    receiver: Mutex<mpsc::UnboundedReceiver<String>>,
}

impl Spares {
    fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self { sender, receiver: Mutex::new(receiver) }
    }

    fn put(&self, token: String) {
        self.sender.send(token).ok();
    }

    async fn take(&self) -> anyhow::Result<String> {
        self.receiver.lock().await.recv().await.context("no refresh token will come")
    }
}

/// Drives one emulator's HTTP API and keeps the tokens its answers hand out.
struct Driver {
    emulator: Emulator,
    client: Client<HttpConnector, Full<Bytes>>,
    email: String,
    access_token: Mutex<String>,
    spares: Arc<Spares>,
}

/// One answered request.
struct Answer {
    elapsed: Duration,
}

impl Driver {
    async fn new(emulator: Emulator, email: &str, spares: Arc<Spares>) -> Self {
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http();
        Self { emulator, client, email: email.to_owned(), access_token: Mutex::new(String::new()), spares }
    }

    async fn send(
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

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value, Duration)> {
        self.send(Method::POST, path, &[("content-type", "application/json")], body.to_string()).await
    }

    /// One request to `endpoint`, checked; `chain` is the caller's refresh-token chain.
    async fn call(&self, endpoint: Endpoint, chain: &mut Option<String>) -> anyhow::Result<Answer> {
        let (status, body, elapsed) = match endpoint {
            Endpoint::Signup => {
                let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
                self.post("/auth/signup", json!({"email": email, "password": PASSWORD})).await?
            }
            Endpoint::Login => {
                self.post("/auth/login", json!({"email": self.email, "password": PASSWORD})).await?
            }
            Endpoint::Refresh => {
                let parent = match chain.take() {
                    Some(token) => token,
                    None => self.spares.take().await?,
                };
                let answer = self.post("/auth/refresh", json!({"refresh_token": parent})).await?;
                *chain = answer.1["refresh_token"].as_str().map(str::to_owned);
                answer
            }
            Endpoint::Me => {
                let authorization = format!("Bearer {}", self.access_token.lock().await);
                self.send(Method::GET, "/auth/me", &[("authorization", &authorization)], String::new())
                    .await?
            }
            Endpoint::Logout => {
                let token = self.spares.take().await?;
                self.post("/auth/logout", json!({"refresh_token": token})).await?
            }
            Endpoint::Health => self.send(Method::GET, "/health", &[], String::new()).await?,
            Endpoint::Jwks => self.send(Method::GET, "/.well-known/jwks.json", &[], String::new()).await?,
            Endpoint::Hello => self.send(Method::GET, "/hello", &[], String::new()).await?,
        };
        ensure!(
            status == endpoint.expected_status(),
            "{} answered {status}, not {}: {body}",
            endpoint.route(),
            endpoint.expected_status()
        );
        if matches!(endpoint, Endpoint::Signup | Endpoint::Login)
            && let Some(token) = body["refresh_token"].as_str()
        {
            self.spares.put(token.to_owned());
        }
        Ok(Answer { elapsed })
    }

    /// Creates the user that logins use, and takes an access token for `me`.
    async fn sign_up_bench_user(&self) -> anyhow::Result<()> {
        let (status, body, _) =
            self.post("/auth/signup", json!({"email": self.email, "password": PASSWORD})).await?;
        ensure!(status == 201, "creating the bench user: {status} {body}");
        self.renew_access_token().await
    }

    /// A fresh access token for `me` (the bench outlives one).
    async fn renew_access_token(&self) -> anyhow::Result<()> {
        let (status, body, _) =
            self.post("/auth/login", json!({"email": self.email, "password": PASSWORD})).await?;
        ensure!(status == 200, "login for an access token: {status} {body}");
        // Its refresh token is not a spare: a logout of it would end the session `me` uses.
        *self.access_token.lock().await =
            body["access_token"].as_str().context("an access token")?.to_owned();
        Ok(())
    }

    /// The reports of invocations of `endpoint` that ended after the first `skip`, once
    /// `count` of them exist.
    async fn reports(
        &self,
        endpoint: Endpoint,
        skip: usize,
        count: usize,
    ) -> anyhow::Result<Vec<InvocationReport>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reports: Vec<_> = self
                .emulator
                .invocations_since(skip)
                .into_iter()
                .filter(|report| report.function == endpoint.logical_id())
                .collect();
            if reports.len() >= count {
                return Ok(reports);
            }
            ensure!(Instant::now() < deadline, "{count} reports of {} did not come", endpoint.name());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Everything the functions are configured with.
struct Setup {
    /// Postgres behind the counting proxy, as the functions' role.
    proxied_url: String,
    admin: PgConnection,
    proxy: CountingProxy,
    key_pem: SecretString,
    db_secret_arn: String,
    keys_secret_arn: String,
    /// The public half of `key_pem` as a JWK set, for me and jwks.
    public_keys: String,
    verification_secret_arn: String,
    secrets_endpoint: String,
    email: String,
}

async fn setup() -> anyhow::Result<Setup> {
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
    let keys_secret_arn = create(
        format!("bench/{run}/keys"),
        json!({"current": {"kid": "bench", "algorithm": "RS256", "private_key": key_pem.expose_secret()},
               "refresh_token_key": BENCH_REFRESH_TOKEN_KEY}),
    )
    .await?;
    let public_keys =
        public_key_set(&[&SigningKey::from_pem("bench", SigningAlgorithm::Rs256, &key_pem)?]).to_string();
    let verification_secret_arn =
        create(format!("bench/{run}/verification"), serde_json::from_str(&public_keys)?).await?;
    let email = format!("bench-{run}@example.com");
    Ok(Setup {
        proxied_url,
        admin,
        proxy,
        key_pem,
        db_secret_arn,
        keys_secret_arn,
        public_keys,
        verification_secret_arn,
        secrets_endpoint,
        email,
    })
}

#[derive(Clone, PartialEq, Eq)]
enum Source {
    /// DATABASE_URL and JWT_PRIVATE_KEY in the environment.
    Environment,
    /// As `Environment`, with this DATABASE_URL (sections 10 and 11: their own databases).
    Database(String),
    /// DB_SECRET_ARN, JWT_SIGNING_KEY_SECRET_ARN and JWT_VERIFICATION_KEYS_SECRET_ARN, fetched
    /// from the local Secrets Manager.
    Secrets,
}

/// The template's functions. `memory_mb`: every function at that size, each sandbox held to its
/// CPU share and memory (power tuning); `None`: unthrottled, the code's own cost on this
/// machine (sections 1 to 8).
async fn emulator(
    setup: &Setup,
    binaries: &Path,
    source: Source,
    sandboxes: u32,
    memory_mb: Option<u32>,
) -> anyhow::Result<Emulator> {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let mut config = EmulatorConfig::new(template, binaries);
    config.max_sandboxes_per_function = sandboxes;
    config.sandbox_limits = memory_mb.is_some();
    config.memory_size_mb = memory_mb;
    config.region = REGION.to_owned();
    config.log = Log::Discard;
    let env = &mut config.env_overrides;
    env.set_for_all("JWT_ISSUER", "https://auth.bench.test");
    env.set_for_all("JWT_AUDIENCE", "bench");
    // The template's DB_SSLMODE (require) is for AWS; the bench server is plaintext on loopback.
    env.remove_for_all("DB_SSLMODE");
    match source {
        Source::Environment | Source::Database(_) => {
            let url =
                if let Source::Database(url) = &source { url.clone() } else { setup.proxied_url.clone() };
            env.set_for_all("DATABASE_URL", url);
            env.set_for_all("JWT_PRIVATE_KEY", setup.key_pem.expose_secret());
            env.set_for_all("JWT_KEY_ID", "bench");
            env.set_for_all("REFRESH_TOKEN_HMAC_KEY", BENCH_REFRESH_TOKEN_KEY);
            env.set_for_all("JWT_PUBLIC_KEYS", setup.public_keys.clone());
        }
        Source::Secrets => {
            env.set_for_all("DB_SECRET_ARN", setup.db_secret_arn.clone());
            env.set_for_all("JWT_SIGNING_KEY_SECRET_ARN", setup.keys_secret_arn.clone());
            env.set_for_all("JWT_VERIFICATION_KEYS_SECRET_ARN", setup.verification_secret_arn.clone());
            env.set_for_all("AWS_ENDPOINT_URL_SECRETS_MANAGER", setup.secrets_endpoint.clone());
            for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                env.set_for_all(name, std::env::var(name).unwrap_or_else(|_| "bench".to_owned()));
            }
        }
    }
    Emulator::start(config).await
}

async fn hello_emulator(binaries: &Path) -> anyhow::Result<Emulator> {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("hello/template.yaml");
    let mut config = EmulatorConfig::new(template, binaries);
    config.max_sandboxes_per_function = 1;
    config.sandbox_limits = false;
    config.log = Log::Discard;
    Emulator::start(config).await
}

/// Cold starts of one endpoint: (init durations, first invocations, spawn-to-answer as the
/// client saw it).
struct ColdStarts {
    init: Samples,
    first: Samples,
    client: Samples,
}

async fn cold_starts(driver: &Driver, endpoint: Endpoint, count: usize) -> anyhow::Result<ColdStarts> {
    let (mut init, mut first, mut client) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..count {
        driver.emulator.shutdown_sandboxes(endpoint.logical_id()).await?;
        let skip = driver.emulator.invocations_since(0).len();
        let mut chain = None;
        let answer = driver.call(endpoint, &mut chain).await?;
        if let Some(token) = chain {
            driver.spares.put(token);
        }
        let report = driver.reports(endpoint, skip, 1).await?.remove(0);
        let init_duration =
            report.init_duration.context("the first invocation of a new sandbox is a cold start")?;
        init.push(init_duration);
        first.push(report.duration);
        client.push(answer.elapsed);
    }
    driver.emulator.shutdown_sandboxes(endpoint.logical_id()).await?;
    Ok(ColdStarts { init: Samples::new(init), first: Samples::new(first), client: Samples::new(client) })
}

/// A warm series through one sandbox.
struct Warm {
    client: Samples,
    function: Samples,
    round_trips: f64,
    connections: u64,
    statements: f64,
    rss_after: (u64, Option<u64>),
}

async fn statements_so_far(setup: &mut Setup) -> anyhow::Result<i64> {
    let calls: i64 = sqlx::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_statements s join pg_database d on d.oid = s.dbid
         where d.datname = $1 and s.query not like '%pg_stat_statements%'",
    )
    .bind(DATABASE)
    .fetch_one(&mut setup.admin)
    .await?;
    Ok(calls)
}

async fn warm(driver: &Driver, setup: &mut Setup, endpoint: Endpoint, plan: Plan) -> anyhow::Result<Warm> {
    let mut chain = None;
    for _ in 0..plan.warm_up {
        driver.call(endpoint, &mut chain).await?;
    }
    let skip = driver.emulator.invocations_since(0).len();
    let (trips_before, connections_before) = setup.proxy.counters.read();
    let statements_before = statements_so_far(setup).await?;
    let mut client = Vec::with_capacity(plan.warm);
    for _ in 0..plan.warm {
        client.push(driver.call(endpoint, &mut chain).await?.elapsed);
    }
    let reports = driver.reports(endpoint, skip, plan.warm).await?;
    let (trips_after, connections_after) = setup.proxy.counters.read();
    let statements_after = statements_so_far(setup).await?;
    if let Some(token) = chain {
        driver.spares.put(token);
    }
    let sandboxes = driver.emulator.sandboxes(endpoint.logical_id())?;
    ensure!(sandboxes.len() == 1, "{} should have kept one sandbox: {sandboxes:?}", endpoint.name());
    let invocations = sandboxes[0].invocations;
    let rss = reports.last().and_then(|report| report.max_memory_used_mb);
    Ok(Warm {
        client: Samples::new(client),
        function: Samples::new(reports.iter().map(|report| report.duration)),
        round_trips: (trips_after - trips_before) as f64 / plan.warm as f64,
        connections: connections_after - connections_before,
        statements: (statements_after - statements_before) as f64 / plan.warm as f64,
        rss_after: (invocations, rss),
    })
}

/// Keeps calling `endpoint` until its sandbox has served `total` invocations; its peak RSS then.
async fn soak(driver: &Driver, endpoint: Endpoint, total: usize) -> anyhow::Result<(u64, Option<u64>)> {
    let served = |driver: &Driver| -> anyhow::Result<u64> {
        Ok(driver.emulator.sandboxes(endpoint.logical_id())?.first().map_or(0, |sandbox| sandbox.invocations))
    };
    let mut chain = None;
    let mut count = served(driver)?;
    while count < total as u64 {
        driver.call(endpoint, &mut chain).await?;
        count += 1;
    }
    if let Some(token) = chain {
        driver.spares.put(token);
    }
    let skip = driver.emulator.invocations_since(0).len().saturating_sub(64);
    let last = driver.reports(endpoint, skip, 1).await?.pop();
    Ok((served(driver)?, last.and_then(|report| report.max_memory_used_mb)))
}

/// Concurrent clients for a while: (requests per second, latencies, sandboxes used).
async fn load(
    driver: &Arc<Driver>,
    endpoint: Endpoint,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Samples, usize)> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let driver = driver.clone();
        tasks.push(tokio::spawn(async move {
            let mut chain = None;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                latencies.push(driver.call(endpoint, &mut chain).await?.elapsed);
            }
            if let Some(token) = chain {
                driver.spares.put(token);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sandboxes = driver.emulator.sandboxes(endpoint.logical_id())?.len();
    Ok((latencies.len() as f64 / elapsed, Samples::new(latencies), sandboxes))
}

/// One argon2id verification with the functions' parameters, in this (release) process. With
/// `evict`, 64 MiB are written before each run, so that argon2's memory starts out of the CPU
/// caches, as in a function whose sandbox was frozen while other processes ran.
async fn argon2_alone(samples: usize, evict: bool) -> anyhow::Result<Samples> {
    let email = shared::domain::Email::parse("bench@example.com")?;
    let password = || shared::domain::Password::parse(PASSWORD.to_owned(), &email);
    let stored = shared::passwords::hash(password()?).await?;
    let mut times = Vec::new();
    let mut scratch = vec![0u8; if evict { 64 << 20 } else { 0 }];
    for round in 0..samples {
        for byte in scratch.iter_mut().step_by(64) {
            *byte = byte.wrapping_add(round as u8);
        }
        std::hint::black_box(&mut scratch);
        let started = Instant::now();
        let verified = shared::passwords::verify(password()?, Some(stored.clone())).await?;
        times.push(started.elapsed());
        ensure!(matches!(verified, shared::passwords::Verified::Yes { .. }), "the password verifies");
    }
    Ok(Samples::new(times))
}

/// Criterion's median for one benchmark, if `cargo bench` wrote it.
fn criterion_median_ns(root: &Path, group: &str, function: &str) -> Option<f64> {
    let path = root.join(group).join(function).join("new/estimates.json");
    let estimates: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|metadata| metadata.len())
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .map(|line| line.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "{cores} cores ({cpu}), Linux {}, {}, PostgreSQL {}",
        command_output("uname", &["-r"]),
        command_output("rustc", &["-V"]),
        command_output("postgres", &["-V"]).trim_start_matches("postgres (PostgreSQL) "),
    )
}

/// Size, cold start and warm latency of `me` built with each profile, written to `--out`
/// (`scripts/bench-profiles` writes `bench/profiles.md`, which `make bench` includes).
async fn compare_profiles(args: &Args, setup: &mut Setup, spares: Arc<Spares>) -> anyhow::Result<()> {
    let started = Instant::now();
    // The user and its access token come from the complete build in target/release: a variant
    // directory holds `me` alone.
    let complete = Driver::new(
        emulator(setup, &args.binaries, Source::Environment, 1, None).await?,
        &setup.email,
        spares.clone(),
    )
    .await;
    complete.sign_up_bench_user().await?;
    let access_token = complete.access_token.lock().await.clone();
    drop(complete);
    let mut rows = String::new();
    for (label, dir) in &args.profiles {
        progress(format!("profile {label}: {}", dir.display()));
        let driver = Driver::new(
            emulator(setup, dir, Source::Environment, 1, None).await?,
            &setup.email,
            spares.clone(),
        )
        .await;
        *driver.access_token.lock().await = access_token.clone();
        let cold = cold_starts(&driver, Endpoint::Me, args.plan.cold_starts).await?;
        let warm = warm(&driver, setup, Endpoint::Me, args.plan).await?;
        writeln!(
            rows,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            file_size(&dir.join("me")).map_or("–".to_owned(), mib),
            cold.init.summary(),
            cold.first.summary(),
            cold.client.summary(),
            ms(warm.function.median()),
            ms(warm.client.median()),
        )?;
    }
    let mut report = String::new();
    writeln!(report, "### Release profile options\n")?;
    writeln!(
        report,
        "The `me` function built with each profile (x86_64, `scripts/bench-profiles` on {}, {:.0} s): \
         its stripped binary, {} cold starts (environment configuration) and {} warm invocations.\n",
        time::OffsetDateTime::now_utc().date(),
        started.elapsed().as_secs_f64(),
        args.plan.cold_starts,
        args.plan.warm
    )?;
    writeln!(
        report,
        "| profile | binary | init | first invocation | client: spawn to answer | warm function p50 | warm client p50 |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    report.push_str(&rows);
    std::fs::write(&args.out, report).with_context(|| format!("writing {}", args.out.display()))?;
    progress(format!("wrote {}", args.out.display()));
    Ok(())
}

/// Section 9: every function at every size in [`tuning::SIZES`], under the CPU share and memory
/// limit of that size. `standalone`: the bench user is not signed up yet.
async fn power_tuning(
    args: &Args,
    setup: &mut Setup,
    spares: Arc<Spares>,
    standalone: bool,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let (cold, warm_up, warm_count) = args.plan.tuning;
    let plan = Plan { warm_up, warm: warm_count, ..args.plan };
    let mut results: Vec<(&str, Vec<tuning::Measurement>)> =
        Endpoint::FUNCTIONS.iter().map(|e| (e.name(), Vec::new())).collect();
    for (index, memory_mb) in tuning::SIZES.into_iter().enumerate() {
        progress(format!("power tuning at {memory_mb} MB ({cold} cold, {warm_count} warm per function)"));
        let emulator = emulator(setup, &args.binaries, Source::Environment, 1, Some(memory_mb)).await?;
        if !emulator.limits_sandboxes() {
            return Ok(
                "## 9. Power tuning\n\nNot measured: the emulator could not apply the sandbox limits \
                       here (it needs root and cgroups; see its first line).\n"
                    .to_owned(),
            );
        }
        let driver = Driver::new(emulator, &setup.email, spares.clone()).await;
        if standalone && index == 0 {
            driver.sign_up_bench_user().await?;
        } else {
            driver.renew_access_token().await?;
        }
        for (endpoint, (_, sizes)) in Endpoint::FUNCTIONS.into_iter().zip(results.iter_mut()) {
            let cold = cold_starts(&driver, endpoint, cold).await?;
            let warm = warm(&driver, setup, endpoint, plan).await?;
            sizes.push(tuning::Measurement {
                memory_mb,
                init: cold.init,
                first: cold.first,
                warm: warm.function,
            });
        }
        driver.emulator.shutdown_all().await;
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    for (name, sizes) in &results {
        if let Some(chosen) = tuning::choose(sizes) {
            progress(format!(
                "{name}: MemorySize {} (warm p50 {})",
                chosen.memory_mb,
                ms(chosen.warm.median())
            ));
        }
    }
    tuning::section(&results, cold, warm_up, warm_count, minutes)
}

struct Args {
    plan: Plan,
    quick: bool,
    /// `--power-tuning`: only section 9, replacing it in `--out`.
    power_tuning_only: bool,
    /// `--volume`: only sections 10 and 11, replacing them in `--out`.
    volume_only: bool,
    volume: volume::VolumePlan,
    /// `--profiles LABEL=DIR ...`: only compare builds of `me` made with other profiles.
    profiles: Vec<(String, PathBuf)>,
    out: PathBuf,
    binaries: PathBuf,
    root: PathBuf,
}

/// `auth-bench`: measures the functions through the emulator and writes BENCHMARKS.md (run it
/// through `make bench`, which builds and packages first).
#[derive(Parser)]
#[command(name = "auth-bench")]
struct Cli {
    /// A one-minute smoke run: fewer samples, 10,000 users at volume.
    #[arg(long)]
    quick: bool,
    /// Only section 9 (power tuning), replacing it in --out.
    #[arg(long)]
    power_tuning: bool,
    /// Only sections 10 and 11 (at volume, the purge), replacing them in --out.
    #[arg(long)]
    volume: bool,
    /// Users seeded at volume (and expired tokens in the purge's backlog).
    #[arg(long, value_name = "N")]
    volume_users: Option<i64>,
    /// The report to write (default: BENCHMARKS.md at the repository's root).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The function binaries (default: target/release).
    #[arg(long, value_name = "DIR")]
    binaries: Option<PathBuf>,
    #[arg(long, value_name = "N")]
    cold_starts: Option<usize>,
    #[arg(long, value_name = "N")]
    warm: Option<usize>,
    #[arg(long, value_name = "N")]
    memory: Option<usize>,
    #[arg(long, value_name = "SECONDS")]
    load_seconds: Option<u64>,
    /// Only compare builds of `me` made with other profiles (scripts/bench-profiles).
    #[arg(long, value_name = "LABEL=DIR", num_args = 1..)]
    profiles: Vec<String>,
    /// Measure one password-work variant in this process and print it (section 7's probe).
    #[arg(long, value_name = "VARIANT")]
    memory_probe: Option<String>,
}

fn args(cli: Cli) -> anyhow::Result<Args> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (mut plan, mut volume) = if cli.quick {
        (Plan::QUICK, volume::VolumePlan::QUICK)
    } else {
        (Plan::FULL, volume::VolumePlan::FULL)
    };
    if let Some(users) = cli.volume_users {
        (volume.users, volume.backlog) = (users, users);
    }
    plan.cold_starts = cli.cold_starts.unwrap_or(plan.cold_starts);
    plan.warm = cli.warm.unwrap_or(plan.warm);
    plan.memory = cli.memory.unwrap_or(plan.memory);
    plan.load = cli.load_seconds.map_or(plan.load, Duration::from_secs);
    let profiles = cli
        .profiles
        .iter()
        .map(|variant| {
            let (label, dir) = variant.split_once('=').context("--profiles LABEL=DIR ...")?;
            Ok((label.to_owned(), PathBuf::from(dir)))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Args {
        plan,
        quick: cli.quick,
        power_tuning_only: cli.power_tuning,
        volume_only: cli.volume,
        volume,
        profiles,
        out: cli.out.unwrap_or_else(|| root.join("BENCHMARKS.md")),
        binaries: cli.binaries.unwrap_or_else(|| root.join("target/release")),
        root,
    })
}

fn progress(message: impl std::fmt::Display) {
    eprintln!("[bench] {message}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(variant) = &cli.memory_probe {
        return memory::probe(variant);
    }
    let args = args(cli)?;
    let plan = args.plan;
    let started = Instant::now();
    let mut setup = setup().await?;
    let spares = Arc::new(Spares::new());
    if !args.profiles.is_empty() {
        return compare_profiles(&args, &mut setup, spares).await;
    }
    if args.power_tuning_only || args.volume_only {
        let (section, from, to) = if args.power_tuning_only {
            (power_tuning(&args, &mut setup, spares, true).await?, "\n## 9. ", Some("\n## 10. "))
        } else {
            (volume::sections(&setup, &args.binaries, args.volume).await?, "\n## 10. ", None)
        };
        // The rest of the report stays as the last full run wrote it.
        let previous = std::fs::read_to_string(&args.out).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
        let before = previous.split(from).next().unwrap_or_default().trim_end();
        let after = to.and_then(|to| previous.find(to).map(|at| &previous[at..])).unwrap_or_default();
        std::fs::write(&args.out, format!("{before}\n\n{}\n{after}", section.trim_end()))
            .with_context(|| format!("writing {}", args.out.display()))?;
        progress(format!(
            "wrote {} in {:.1} min",
            args.out.display(),
            started.elapsed().as_secs_f64() / 60.0
        ));
        return Ok(());
    }
    let mut report = String::new();

    // The fixed user that logins use.
    let env_driver = Driver::new(
        emulator(&setup, &args.binaries, Source::Environment, 1, None).await?,
        &setup.email,
        spares.clone(),
    )
    .await;
    env_driver.sign_up_bench_user().await?;
    let hello = Driver::new(hello_emulator(&args.binaries).await?, &setup.email, spares.clone()).await;

    // 1. Cold starts, configured from the environment and from Secrets Manager.
    progress(format!("cold starts ({} per function and source)", plan.cold_starts));
    let secrets_driver = Driver::new(
        emulator(&setup, &args.binaries, Source::Secrets, 1, None).await?,
        &setup.email,
        spares.clone(),
    )
    .await;
    *secrets_driver.access_token.lock().await = env_driver.access_token.lock().await.clone();
    let mut cold = BTreeMap::new();
    for endpoint in Endpoint::FUNCTIONS {
        let from_env = cold_starts(&env_driver, endpoint, plan.cold_starts).await?;
        let from_secrets = cold_starts(&secrets_driver, endpoint, plan.cold_starts).await?;
        cold.insert(endpoint, (from_env, Some(from_secrets)));
    }
    cold.insert(Endpoint::Hello, (cold_starts(&hello, Endpoint::Hello, plan.cold_starts).await?, None));
    drop(secrets_driver);

    // 2, 3. Warm latency and database work, one sandbox per function.
    progress(format!("warm latency ({} invocations per endpoint)", plan.warm));
    let mut warm_results = BTreeMap::new();
    for endpoint in Endpoint::FUNCTIONS {
        env_driver.renew_access_token().await?;
        warm_results.insert(endpoint, warm(&env_driver, &mut setup, endpoint, plan).await?);
    }
    warm_results.insert(Endpoint::Hello, warm(&hello, &mut setup, Endpoint::Hello, plan).await?);

    // 4. argon2 alone.
    progress("argon2 verification alone");
    let runs = if args.quick { 5 } else { 50 };
    let argon2 = argon2_alone(runs, false).await?;
    let argon2_evicted = argon2_alone(runs, true).await?;

    // 7. Memory: every function's sandbox carried on to `memory` invocations, all at once.
    progress(format!("memory soak ({} invocations per function)", plan.memory));
    env_driver.renew_access_token().await?;
    let env_driver = Arc::new(env_driver);
    let hello = Arc::new(hello);
    let mut soaks = Vec::new();
    for endpoint in Endpoint::FUNCTIONS.into_iter().chain([Endpoint::Hello]) {
        let driver = if endpoint == Endpoint::Hello { hello.clone() } else { env_driver.clone() };
        soaks.push((endpoint, tokio::spawn(async move { soak(&driver, endpoint, plan.memory).await })));
    }
    let mut memory = BTreeMap::new();
    for (endpoint, task) in soaks {
        memory.insert(endpoint, task.await??);
    }

    // 6. Throughput: several sandboxes per function, concurrent clients.
    progress(format!("throughput ({} clients, {} sandboxes per function)", plan.clients, plan.sandboxes));
    let load_driver = Arc::new(
        Driver::new(
            emulator(&setup, &args.binaries, Source::Environment, plan.sandboxes, None).await?,
            &setup.email,
            spares.clone(),
        )
        .await,
    );
    load_driver.renew_access_token().await?;
    let mut throughput = Vec::new();
    for (endpoint, clients) in [
        (Endpoint::Refresh, plan.clients),
        (Endpoint::Me, plan.clients),
        (Endpoint::Login, plan.sandboxes as usize),
    ] {
        // Warm every sandbox first, so the figure is the steady state.
        load(&load_driver, endpoint, clients, Duration::from_millis(500)).await?;
        throughput.push((endpoint, clients, load(&load_driver, endpoint, clients, plan.load).await?));
    }
    // Refresh with the signer that parses its key once against the one that parsed it per
    // signature, in turns, so that both see the same machine.
    let mut signer_rates: Option<(Vec<f64>, Vec<f64>)> = None;
    if let Some(dir) = signing::reparsing_binaries(&args.binaries)? {
        progress("refresh throughput, today's signer against the reparsing one");
        let reparsing = Arc::new(
            Driver::new(
                emulator(&setup, &dir, Source::Environment, plan.sandboxes, None).await?,
                &setup.email,
                spares.clone(),
            )
            .await,
        );
        let (mut today, mut before) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            for (driver, rates) in [(&load_driver, &mut today), (&reparsing, &mut before)] {
                load(driver, Endpoint::Refresh, plan.clients, Duration::from_millis(500)).await?;
                rates.push(load(driver, Endpoint::Refresh, plan.clients, plan.load).await?.0);
            }
        }
        signer_rates = Some((today, before));
    }

    progress("memory of the password work, each alternative in its own process");
    let memory_alternatives = memory::alternatives()?;

    // 9. Power tuning, each function at each size.
    let tuning = power_tuning(&args, &mut setup, spares.clone(), false).await?;

    // 10, 11. At volume, and the purge against a backlog.
    let volume = volume::sections(&setup, &args.binaries, args.volume).await?;

    // 5, 8: from `cargo bench` and `make package`, when they ran.
    let criterion = args.root.join("target/criterion");
    let zips: BTreeMap<&str, Option<u64>> =
        ["signup", "login", "refresh", "me", "logout", "health", "jwks", "migrate", "hello"]
            .into_iter()
            .map(|name| (name, file_size(&args.root.join(format!("target/lambda/{name}/bootstrap.zip")))))
            .collect();

    // The report.
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    writeln!(report, "# Benchmarks\n")?;
    writeln!(
        report,
        "Written by `make bench` on {} in {:.1} min{}. Machine: {}.\n",
        time::OffsetDateTime::now_utc().date(),
        started.elapsed().as_secs_f64() / 60.0,
        if args.quick { " (**--quick: a smoke run, not the figures**)" } else { "" },
        machine()
    )?;
    writeln!(
        report,
        "Release build (`[profile.release]`: opt-level 3, fat LTO, 1 codegen unit, stripped), x86_64 here \
         (Lambda runs the arm64 build). Every request goes through the local emulator \
         (`emulator/`: the HTTP API, the Runtime API, a real process per sandbox) to a local \
         PostgreSQL with durable commits, through a TCP proxy that counts round trips. \
         Sections 1 to 8 run unthrottled (the code's own cost on this machine's cores); section 9 \
         holds each sandbox to Lambda's CPU share of its memory size, as deployed. \
         Times are milliseconds; \"median (min–max)\" over repeated runs. \
         Reproduce with `make bench` (`make bench-quick` for a smoke run).\n"
    )?;

    writeln!(report, "## 1. Cold start\n")?;
    writeln!(
        report,
        "{} cold starts per function and configuration. *Init* is process spawn to the runtime's first \
         `/next` (our init: configuration, keys, and the warm-up that fetches secrets and opens the \
         database connection); *first* is the first invocation; *client* is the whole request as the \
         HTTP client saw it, spawn included. *Environment*: `DATABASE_URL` and `JWT_PRIVATE_KEY` \
         set; *secrets*: both fetched from Secrets Manager (moto on loopback) during init. Floor: \
         the `hello` lambda_http binary (`bench/hello`), same profile, same emulator.\n",
        plan.cold_starts
    )?;
    writeln!(
        report,
        "| function | init (environment) | init (secrets) | first invocation (environment) | client: spawn to answer (environment) | client (secrets) |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, (from_env, from_secrets)) in &cold {
        let secrets = from_secrets.as_ref();
        writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} |",
            endpoint.name(),
            from_env.init.summary(),
            secrets.map_or("–".to_owned(), |s| s.init.summary()),
            from_env.first.summary(),
            from_env.client.summary(),
            secrets.map_or("–".to_owned(), |s| s.client.summary()),
        )?;
    }

    writeln!(report, "\n## 2. Warm latency\n")?;
    writeln!(
        report,
        "{} sequential invocations per endpoint through one warm sandbox, after {} to warm it. *Client*: \
         the HTTP round trip through the emulator; *function*: the REPORT line's duration (event \
         delivered to response posted). The hello row is the floor: the emulator's and the runtime's \
         own cost.\n",
        plan.warm, plan.warm_up
    )?;
    writeln!(report, "| endpoint | client p50 | client p95 | client p99 | function p50 | function p99 |")?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, result) in &warm_results {
        writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} |",
            endpoint.route(),
            ms(result.client.median()),
            ms(result.client.percentile(0.95)),
            ms(result.client.percentile(0.99)),
            ms(result.function.median()),
            ms(result.function.percentile(0.99)),
        )?;
    }

    writeln!(report, "\n## 3. Database round trips\n")?;
    writeln!(
        report,
        "Counted during the {} warm invocations above: *round trips* by the proxy (each time the \
         function starts sending after Postgres answered: statements, pings and protocol messages \
         alike), *statements* by `pg_stat_statements`. New connections opened during the series are \
         listed apart (0 means the warm pool served every request).\n",
        plan.warm
    )?;
    writeln!(
        report,
        "| endpoint | round trips per request | statements per request | new connections | target | met |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, result) in &warm_results {
        let Some(target) = endpoint.round_trip_target() else { continue };
        writeln!(
            report,
            "| {} | {:.2} | {:.2} | {} | ≤ {target} | {} |",
            endpoint.route(),
            result.round_trips,
            result.statements,
            result.connections,
            if result.round_trips <= target as f64 { "yes" } else { "**no**" },
        )?;
    }

    let login = &warm_results[&Endpoint::Login];
    writeln!(report, "\n## 4. argon2's share of login\n")?;
    writeln!(
        report,
        "argon2id verification alone (m={}, t={}, p={}), {} runs in this process: in a hot loop, and with 64 MiB \
         written before each run so its working memory starts out of the CPU caches (as in a sandbox that was \
         frozen while other processes ran). Login's function p50 is {} (client {}).\n",
        shared::passwords::MEMORY_KIB,
        shared::passwords::ITERATIONS,
        shared::passwords::PARALLELISM,
        argon2.len(),
        ms(login.function.median()),
        ms(login.client.median()),
    )?;
    writeln!(report, "| argon2 alone | time | login − argon2 | (login − argon2) / argon2 |")?;
    writeln!(report, "|---|---|---|---|")?;
    for (label, alone) in [("hot loop", &argon2), ("caches evicted first", &argon2_evicted)] {
        let rest = login.function.median() - alone.median();
        writeln!(
            report,
            "| {label} | {} | {} | {:.1} % |",
            alone.summary(),
            ms(rest),
            100.0 * rest / alone.median()
        )?;
    }

    writeln!(report, "\n## 5. Access-token signing (criterion)\n")?;
    writeln!(
        report,
        "`cargo bench -p shared --bench tokens`, aws-lc-rs. *Sign*: `SigningKey::sign`, the key parsed \
         once per execution environment; *sign, reparsing*: `jsonwebtoken::encode`, which parses \
         the private key (DER) on every signature, as the functions did before. Medians:\n"
    )?;
    writeln!(report, "| algorithm | sign | sign, reparsing | verify |")?;
    writeln!(report, "|---|---|---|---|")?;
    for algorithm in ["RS256", "ES256", "EdDSA"] {
        let cell = |group| {
            criterion_median_ns(&criterion, group, algorithm)
                .map_or("not run".to_owned(), |ns| format!("{:.1} µs", ns / 1000.0))
        };
        writeln!(
            report,
            "| {algorithm} | {} | {} | {} |",
            cell("access_token_sign"),
            cell("access_token_sign_reparsing"),
            cell("access_token_verify")
        )?;
    }
    let refresh = &warm_results[&Endpoint::Refresh];
    if let Some(sign) = criterion_median_ns(&criterion, "access_token_sign", "RS256") {
        writeln!(
            report,
            "\nGoals (issue 12): RS256 sign ≤ 0.7 ms, measured {:.3} ms; refresh function p50 ≤ 2.5 ms, \
             measured {} (section 2). Refresh signs one RS256 token: {:.1} % of its function p50.",
            sign / 1e6,
            ms(refresh.function.median()),
            100.0 * sign / 1e6 / refresh.function.median(),
        )?;
    }

    writeln!(report, "\n## 6. Throughput\n")?;
    writeln!(
        report,
        "Up to {} sandboxes per function, concurrent clients for {} s after 0.5 s to warm them. The \
         login bound is cores ÷ one verification: {cores:.0} ÷ {} ms = {:.0} logins/s.\n",
        plan.sandboxes,
        plan.load.as_secs(),
        ms(argon2.median()),
        cores * 1000.0 / argon2.median()
    )?;
    writeln!(report, "| endpoint | clients | requests/s | p50 | p99 | sandboxes used |")?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, clients, (rps, latencies, sandboxes)) in &throughput {
        writeln!(
            report,
            "| {} | {clients} | {rps:.0} | {} | {} | {sandboxes} |",
            endpoint.route(),
            ms(latencies.median()),
            ms(latencies.percentile(0.99))
        )?;
    }
    if let Some((today, before)) = &signer_rates {
        let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len() as f64;
        let show = |rates: &[f64]| rates.iter().map(|rps| format!("{rps:.0}")).collect::<Vec<_>>().join(", ");
        writeln!(
            report,
            "\nRefresh, {} clients on {} sandboxes, three turns each: today's signer {} requests/s \
             (mean {:.0}); the reparsing signer {} (mean {:.0}). Ratio {:.2}× (goal ≥ 1.8×).",
            plan.clients,
            plan.sandboxes,
            show(today),
            mean(today),
            show(before),
            mean(before),
            mean(today) / mean(before)
        )?;
    }

    writeln!(report, "\n## 7. Memory\n")?;
    writeln!(
        report,
        "Peak RSS of one sandbox (the REPORT line's Max Memory Used, `VmHWM`) after the warm series \
         and after the soak, where every function's sandbox carried on to {} invocations, all at once.\n",
        plan.memory
    )?;
    writeln!(report, "| function | invocations | max RSS | invocations | max RSS | growth |")?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, result) in &warm_results {
        let (early_count, early) = result.rss_after;
        let (late_count, late) = memory.get(endpoint).copied().unwrap_or((0, None));
        let show = |rss: Option<u64>| rss.map_or("–".to_owned(), |mb| format!("{mb} MB"));
        let growth = match (early, late) {
            (Some(a), Some(b)) => format!("{:+} MB", b as i64 - a as i64),
            _ => "–".to_owned(),
        };
        writeln!(
            report,
            "| {} | {early_count} | {} | {late_count} | {} | {growth} |",
            endpoint.name(),
            show(early),
            show(late)
        )?;
    }

    writeln!(report, "\n{}", memory_alternatives.trim_end())?;

    writeln!(report, "\n## 8. Artifact size\n")?;
    writeln!(
        report,
        "arm64 `bootstrap.zip` per function from `make package` (cargo-lambda, zig), and the x86_64 binary measured here:\n"
    )?;
    writeln!(report, "| function | arm64 zip | x86_64 binary |")?;
    writeln!(report, "|---|---|---|")?;
    for (name, zip) in &zips {
        let binary = file_size(&args.binaries.join(name));
        writeln!(
            report,
            "| {name} | {} | {} |",
            zip.map_or("not packaged".to_owned(), mib),
            binary.map_or("–".to_owned(), mib)
        )?;
    }
    let profiles = args.root.join("bench/profiles.md");
    if let Ok(text) = std::fs::read_to_string(&profiles) {
        writeln!(report, "\n{}", text.trim_end())?;
    }
    writeln!(report, "\n{}", tuning.trim_end())?;
    writeln!(report, "\n{}", volume.trim_end())?;

    std::fs::write(&args.out, &report).with_context(|| format!("writing {}", args.out.display()))?;
    progress(format!("wrote {} in {:.1} min", args.out.display(), started.elapsed().as_secs_f64() / 60.0));
    Ok(())
}
