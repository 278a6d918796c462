//! Driving the API: the endpoints measured, the HTTP driver of one emulator (with the refresh
//! tokens its answers hand out), the bench's database, roles and secrets, and the emulators.

use crate::*;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Endpoint {
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
    pub(crate) const FUNCTIONS: [Self; 7] =
        [Self::Signup, Self::Login, Self::Refresh, Self::Me, Self::Logout, Self::Health, Self::Jwks];

    pub(crate) fn logical_id(self) -> &'static str {
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

    pub(crate) fn name(self) -> &'static str {
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

    pub(crate) fn route(self) -> &'static str {
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

    pub(crate) fn expected_status(self) -> u16 {
        match self {
            Self::Signup => 201,
            Self::Logout => 204,
            _ => 200,
        }
    }

    /// The most database round trips the endpoint should need, when warm.
    pub(crate) fn round_trip_target(self) -> Option<u64> {
        match self {
            Self::Refresh | Self::Logout | Self::Me | Self::Health => Some(1),
            Self::Signup | Self::Login => Some(2),
            Self::Jwks | Self::Hello => None,
        }
    }
}

/// Refresh tokens not used yet, produced by signups, logins and refreshes; consumed by
/// refreshes and logouts (which wait for one when none is left).
pub(crate) struct Spares {
    pub(crate) sender: mpsc::UnboundedSender<String>,
    pub(crate) receiver: Mutex<mpsc::UnboundedReceiver<String>>,
}

impl Spares {
    pub(crate) fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self { sender, receiver: Mutex::new(receiver) }
    }

    pub(crate) fn put(&self, token: String) {
        self.sender.send(token).ok();
    }

    pub(crate) async fn take(&self) -> anyhow::Result<String> {
        self.receiver.lock().await.recv().await.context("no refresh token will come")
    }
}

/// Drives one emulator's HTTP API and keeps the tokens its answers hand out.
pub(crate) struct Driver {
    pub(crate) emulator: Emulator,
    pub(crate) client: Client<HttpConnector, Full<Bytes>>,
    pub(crate) email: String,
    pub(crate) access_token: Mutex<String>,
    pub(crate) spares: Arc<Spares>,
    /// Who logins log in as, in turn: the bench user, or several (so that many concurrent
    /// logins do not trip one email's throttle, which admits 5 at once).
    logins: std::sync::Mutex<Vec<String>>,
    next_login: std::sync::atomic::AtomicUsize,
}

/// One answered request.
pub(crate) struct Answer {
    pub(crate) elapsed: Duration,
}

impl Driver {
    pub(crate) async fn new(emulator: Emulator, email: &str, spares: Arc<Spares>) -> Self {
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http();
        Self {
            emulator,
            client,
            email: email.to_owned(),
            access_token: Mutex::new(String::new()),
            spares,
            logins: std::sync::Mutex::new(vec![email.to_owned()]),
            next_login: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Signs up `count` users and has logins take them in turn.
    pub(crate) async fn log_in_as_many(&self, count: usize) -> anyhow::Result<()> {
        let mut emails = Vec::new();
        for _ in 0..count {
            let email = format!("bench-login-{}@example.com", uuid::Uuid::new_v4().simple());
            let (status, body, _) =
                self.post("/auth/signup", json!({"email": email, "password": PASSWORD})).await?;
            ensure!(status == 201, "creating a login user: {status} {body}");
            emails.push(email);
        }
        *self.logins.lock().expect("logins lock") = emails;
        Ok(())
    }

    pub(crate) async fn send(
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

    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value, Duration)> {
        self.send(Method::POST, path, &[("content-type", "application/json")], body.to_string()).await
    }

    /// One request to `endpoint`, checked; `chain` is the caller's refresh-token chain.
    pub(crate) async fn call(
        &self,
        endpoint: Endpoint,
        chain: &mut Option<String>,
    ) -> anyhow::Result<Answer> {
        let (status, body, elapsed) = match endpoint {
            Endpoint::Signup => {
                let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
                self.post("/auth/signup", json!({"email": email, "password": PASSWORD})).await?
            }
            Endpoint::Login => {
                let email = {
                    let logins = self.logins.lock().expect("logins lock");
                    let turn = self.next_login.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    logins[turn % logins.len()].clone()
                };
                self.post("/auth/login", json!({"email": email, "password": PASSWORD})).await?
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
    pub(crate) async fn sign_up_bench_user(&self) -> anyhow::Result<()> {
        let (status, body, _) =
            self.post("/auth/signup", json!({"email": self.email, "password": PASSWORD})).await?;
        ensure!(status == 201, "creating the bench user: {status} {body}");
        self.renew_access_token().await
    }

    /// A fresh access token for `me` (the bench outlives one).
    pub(crate) async fn renew_access_token(&self) -> anyhow::Result<()> {
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
    pub(crate) async fn reports(
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
pub(crate) struct Setup {
    /// Postgres behind the counting proxy, as the functions' role.
    pub(crate) proxied_url: String,
    pub(crate) admin: PgConnection,
    pub(crate) proxy: CountingProxy,
    pub(crate) key_pem: SecretString,
    pub(crate) db_secret_arn: String,
    pub(crate) keys_secret_arn: String,
    /// The public half of `key_pem` as a JWK set, for me and jwks.
    pub(crate) public_keys: String,
    pub(crate) verification_secret_arn: String,
    pub(crate) secrets_endpoint: String,
    pub(crate) email: String,
}

pub(crate) async fn setup() -> anyhow::Result<Setup> {
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
pub(crate) enum Source {
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
pub(crate) async fn emulator(
    setup: &Setup,
    binaries: &Path,
    source: Source,
    sandboxes: u32,
    memory_mb: Option<u32>,
) -> anyhow::Result<Emulator> {
    emulator_with(setup, binaries, source, sandboxes, memory_mb, |_| {}).await
}

/// [`emulator`], with `configure` adjusting the configuration last.
pub(crate) async fn emulator_with(
    setup: &Setup,
    binaries: &Path,
    source: Source,
    sandboxes: u32,
    memory_mb: Option<u32>,
    configure: impl FnOnce(&mut EmulatorConfig),
) -> anyhow::Result<Emulator> {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
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
    configure(&mut config);
    Emulator::start(config).await
}

pub(crate) async fn hello_emulator(binaries: &Path) -> anyhow::Result<Emulator> {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("hello/template.yaml");
    let mut config = EmulatorConfig::new(template, binaries);
    config.max_sandboxes_per_function = 1;
    config.sandbox_limits = false;
    config.log = Log::Discard;
    Emulator::start(config).await
}
