//! The real function binaries behind the emulator, a database of their own per test, and a typed
//! HTTP client.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use local_lambda::{Emulator, EmulatorConfig, InvocationReport, SandboxInfo};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _, PgConnection, PgPool};

pub use test_support::{PASSWORD, REFRESH_TOKEN_KEY, REGION, create_secret, moto_endpoint, secrets_client};
pub const AUDIENCE: &str = "auth-e2e";
pub const ISSUER: &str = "http://local-lambda.test";

/// The `kid` of the key the signing functions use by default.
pub const KEY_ID: &str = "e2e-key";

/// The directory holding the function binaries: the `target/debug` this test binary was built
/// into (`target/debug/deps/<test>`), checked to hold every binary the template names.
pub fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir =
        exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>").to_path_buf();
    let functions = local_lambda::Template::load(&template(), REGION).expect("template.yaml").functions;
    for binary in functions.iter().map(|function| dir.join(&function.binary)) {
        assert!(
            binary.is_file(),
            "{} is missing: build the functions first (`cargo build -p functions`, or `make test`)",
            binary.display()
        );
    }
    dir
}

pub fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// Whether the tests hold sandboxes to Lambda's CPU share and memory size: not by default, since
/// many tests wait on timings and `make test` runs them in parallel on a few cores (the limits
/// have their own tests, in limits.rs). `E2E_SANDBOX_LIMITS=1` runs the suites as deployed.
pub fn sandbox_limits() -> bool {
    std::env::var("E2E_SANDBOX_LIMITS").is_ok_and(|value| value == "1")
}

/// The server every test database lives on.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL names a Postgres server (run under scripts/with-postgres)")
}

/// Holds a lock shared by the tests that use the database server, which the outage test takes
/// exclusively (it stops the server). Blocks until granted.
pub fn server_lock(exclusive: bool) -> File {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in server_url().bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let path = std::env::temp_dir().join(format!("local-lambda-e2e-{hash:016x}.lock"));
    let file = File::options().create(true).truncate(false).write(true).open(&path).expect("the lock file");
    let operation = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    // SAFETY: flock(2) on a descriptor we own; the lock lives as long as the returned File.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), operation) };
    assert_eq!(locked, 0, "flock {}: {}", path.display(), std::io::Error::last_os_error());
    file
}

/// A new login role with a password, allowed DML on the test database's tables, as an
/// application role is: `(role, password)`, the role named `<prefix>_<random>`.
pub async fn login_role(db: &TestDb, prefix: &str) -> (String, String) {
    let password = uuid::Uuid::new_v4().simple().to_string();
    (test_support::login_role(&db.pool, prefix, &password, true).await, password)
}

/// A database of the test's own (migrated, unless made by [`TestDb::create_empty`]).
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> Self {
        let db = Self::create_empty().await;
        shared::db::MIGRATOR.run(&db.pool).await.expect("migrations");
        db
    }

    /// A database of the test's own with nothing in it, as a fresh deploy finds it.
    pub async fn create_empty() -> Self {
        let server = server_url();
        let name = format!("ll_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let mut admin = PgConnection::connect(&server).await.expect("connecting to DATABASE_URL");
        // The name is ours (letters and hex digits), not input: safe to splice.
        let create = sqlx::AssertSqlSafe(format!("create database {name}"));
        admin.execute(sqlx::raw_sql(create)).await.expect("create database");
        admin.close().await.ok();
        let url = with_database(&server, &name);
        let pool = PgPool::connect(&url).await.expect("connecting to the test database");
        Self { name, url, pool }
    }

    /// The server process ids of the connections named `application_name`.
    pub async fn backends(&self, application_name: &str) -> Vec<i32> {
        sqlx::query_scalar("select pid from pg_stat_activity where application_name = $1 order by pid")
            .bind(application_name)
            .fetch_all(&self.pool)
            .await
            .expect("reading pg_stat_activity")
    }

    /// Terminates, server-side, every connection named `application_name`; returns how many.
    pub async fn terminate(&self, application_name: &str) -> usize {
        let terminated: Vec<bool> = sqlx::query_scalar(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
        )
        .bind(application_name)
        .fetch_all(&self.pool)
        .await
        .expect("pg_terminate_backend");
        terminated.into_iter().filter(|t| *t).count()
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A response as a client sees it.
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body parsed as JSON (`Null` when empty).
    pub body: Value,
    pub elapsed: Duration,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn access_token(&self) -> String {
        self.body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token in {}", self.text))
            .to_owned()
    }

    pub fn refresh_token(&self) -> String {
        self.body["refresh_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no refresh token in {}", self.text))
            .to_owned()
    }
}

/// The emulator serving the template with the real binaries, against the test's database.
pub struct TestApi {
    pub emulator: Emulator,
    pub db: TestDb,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Requests sent so far.
    sent: AtomicUsize,
    _server_lock: File,
}

impl TestApi {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the emulator after `configure` adjusted its configuration.
    pub async fn start_with(configure: impl FnOnce(&mut EmulatorConfig)) -> Self {
        Self::start_locked(server_lock(false), configure).await
    }

    pub async fn start_locked(lock: File, configure: impl FnOnce(&mut EmulatorConfig)) -> Self {
        Self::start_on(TestDb::create().await, lock, configure).await
    }

    /// Starts the emulator against a database the test prepared.
    pub async fn start_on(db: TestDb, lock: File, configure: impl FnOnce(&mut EmulatorConfig)) -> Self {
        let mut config = EmulatorConfig::new(template(), binaries_dir());
        config.sandbox_limits = sandbox_limits();
        // A suffix per test: the sandboxes' application_name is theirs alone.
        config.function_name_suffix = format!("-{}", &db.name[3..11]);
        let env = &mut config.env_overrides;
        env.set_for_all("DATABASE_URL", db.url.clone());
        // Signers read the private key and the refresh-token key, verifiers the public keys: each
        // function takes only its own part.
        env.set_for_all("JWT_PRIVATE_KEY", test_support::key_pem().expose_secret());
        env.set_for_all("JWT_KEY_ID", KEY_ID);
        env.set_for_all("REFRESH_TOKEN_HMAC_KEY", REFRESH_TOKEN_KEY);
        env.set_for_all("JWT_PUBLIC_KEYS", test_support::public_keys(KEY_ID));
        // The second-factor functions seal and open TOTP secrets with the tests' ring. Like the
        // other secrets' ARNs, the template's MFA_KEYS_SECRET_ARN is left out: its parameter
        // (MfaKeysSecretArn) has no default and no test gives it, so MFA_KEYS is what they read.
        env.set_for_all("MFA_KEYS", test_support::MFA_KEYS);
        // The passkeys' relying party (and the mail links' base, where a test sends mail).
        env.set_for_all("APP_URL", test_support::APP_URL);
        env.set_for_all("JWT_ISSUER", ISSUER);
        env.set_for_all("JWT_AUDIENCE", AUDIENCE);
        env.set_for_all("AWS_LAMBDA_LOG_FORMAT", "Text");
        // The template's DB_SSLMODE (require) is for AWS; the test server is plaintext on loopback.
        env.remove_for_all("DB_SSLMODE");
        // A function that sends to EventBridge (the security events' drain) reaches the local
        // one (scripts/with-moto), else a closed loopback port: never AWS.
        let eventbridge =
            std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE").unwrap_or_else(|_| "http://127.0.0.1:9".to_owned());
        let functions = local_lambda::Template::load(&template(), REGION).expect("template.yaml").functions;
        for function in functions.iter().filter(|f| f.environment.contains_key("EVENT_BUS_NAME")) {
            env.set_for(&function.logical_id, "AWS_ENDPOINT_URL_EVENTBRIDGE", eventbridge.clone());
            env.set_for(&function.logical_id, "AWS_ACCESS_KEY_ID", "moto");
            env.set_for(&function.logical_id, "AWS_SECRET_ACCESS_KEY", "moto");
        }
        // FUNCTION_RUST_LOG=debug cargo test ... shows what the functions do when a test fails.
        if let Ok(filter) = std::env::var("FUNCTION_RUST_LOG") {
            config.env_overrides.set_for_all("RUST_LOG", filter);
        }
        configure(&mut config);
        let emulator = Emulator::start(config).await.expect("the emulator starts");
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { emulator, db, client, sent: AtomicUsize::new(0), _server_lock: lock }
    }

    pub fn function_name(&self, function: &str) -> String {
        self.emulator.function_name(function).expect("a function of the template")
    }

    /// The invocation reports once `count` invocations have ended (a report is written when
    /// the sandbox is back in `/next`, just after the client got its response).
    pub async fn invocations(&self, count: usize) -> Vec<InvocationReport> {
        eventually(&format!("{count} invocation reports"), Duration::from_secs(5), || async {
            let reports = self.emulator.invocations();
            (reports.len() >= count).then_some(reports)
        })
        .await
    }

    /// The invocation reports of every request sent so far (all of which matched a route).
    pub async fn settled_invocations(&self) -> Vec<InvocationReport> {
        self.invocations(self.sent.load(Ordering::SeqCst)).await
    }

    /// The function's single live sandbox.
    pub fn only_sandbox(&self, function: &str) -> SandboxInfo {
        let sandboxes = self.emulator.sandboxes(function).expect("a function of the template");
        assert_eq!(sandboxes.len(), 1, "{function} should have exactly one sandbox: {sandboxes:?}");
        sandboxes.into_iter().next().expect("one sandbox")
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> TestResponse {
        self.request_on(&self.client, method, path, headers, body).await
    }

    /// `post_json` from the local address `ip` (a loopback address, 127.0.0.2 say), which the
    /// emulator's front door gives the function as the request's source address.
    pub async fn post_json_from(&self, ip: std::net::IpAddr, path: &str, body: &Value) -> TestResponse {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(ip));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let headers = [("content-type", "application/json")];
        self.request_on(&client, Method::POST, path, &headers, Some(&body.to_string())).await
    }

    async fn request_on(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> TestResponse {
        let mut builder =
            Request::builder().method(method).uri(format!("{}{path}", self.emulator.base_url()));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request =
            builder.body(Full::new(Bytes::from(body.unwrap_or_default().to_owned()))).expect("a request");
        let started = Instant::now();
        self.sent.fetch_add(1, Ordering::SeqCst);
        let response = tokio::time::timeout(Duration::from_secs(60), client.request(request))
            .await
            .unwrap_or_else(|_| panic!("{path} did not answer within 60 s"))
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("the response body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} answered a non-JSON body: {text}"))
        };
        TestResponse { status, headers, text, body, elapsed: started.elapsed() }
    }

    /// A request with a bearer access token and, when given, a JSON body.
    pub async fn bearer(
        &self,
        method: Method,
        path: &str,
        access: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let authorization = format!("Bearer {access}");
        let mut headers = vec![("authorization", authorization.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.request(method, path, &headers, body.map(|body| body.to_string()).as_deref()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.request(Method::POST, path, &[("content-type", "application/json")], Some(&body.to_string()))
            .await
    }

    pub async fn post_signup(&self, email: &str) -> TestResponse {
        self.post_json("/auth/signup", &json!({ "email": email, "password": PASSWORD })).await
    }

    pub async fn post_login(&self, email: &str) -> TestResponse {
        self.post_json("/auth/login", &json!({ "email": email, "password": PASSWORD })).await
    }

    pub async fn post_refresh(&self, refresh_token: &str) -> TestResponse {
        self.post_json("/auth/refresh", &json!({ "refresh_token": refresh_token })).await
    }

    pub async fn post_logout(&self, refresh_token: &str) -> TestResponse {
        self.post_json("/auth/logout", &json!({ "refresh_token": refresh_token })).await
    }

    pub async fn get_me(&self, access_token: &str) -> TestResponse {
        let authorization = format!("Bearer {access_token}");
        self.request(Method::GET, "/auth/me", &[("authorization", &authorization)], None).await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path, &[], None).await
    }
}

/// A unique email address.
pub fn email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it yields `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Points the functions' SDK at the local Secrets Manager `endpoint` with the given credentials.
pub fn use_local_secrets_manager(
    config: &mut EmulatorConfig,
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
) {
    config.region = REGION.to_owned();
    let env = &mut config.env_overrides;
    env.set_for_all("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint);
    env.set_for_all("AWS_ACCESS_KEY_ID", access_key);
    env.set_for_all("AWS_SECRET_ACCESS_KEY", secret_key);
}

/// The `kid` in a JWT's header.
pub fn key_id(token: &str) -> String {
    jwt_part(token, 0)["kid"].as_str().expect("a kid").to_owned()
}

/// A JWT's header (`index` 0) or claims (1), decoded.
pub fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("a JSON part")
}
