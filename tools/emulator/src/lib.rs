//! A local Lambda environment: the functions of a SAM template run as their real executables,
//! each sandbox a child process talking to the Runtime and Extensions APIs, frozen between
//! invocations and shut down the way Lambda does, behind an emulated API Gateway HTTP API.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use local_lambda::{Emulator, EmulatorConfig};
//! let emulator = Emulator::start(EmulatorConfig::new("template.yaml", "target/debug")).await?;
//! println!("serving on {}", emulator.base_url());
//! let reports = emulator.shutdown_all().await;
//! assert!(reports.iter().all(|r| r.exited_by_itself()));
//! # Ok(()) }
//! ```

pub mod front_door;
pub mod gateway;
pub mod iam;
pub mod limits;
mod pages;
mod pool;
pub mod process;
pub mod report;
mod sandbox;
pub mod schedule;
pub mod sigv4;
pub mod template;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use crate::front_door::FrontDoor;
pub use crate::gateway::GatewayResponse;
use crate::gateway::{IncomingRequest, RequestContext, RouteTable};
pub use crate::iam::IamCredentials;
use crate::limits::Limits;
use crate::pages::Pages;
use crate::pool::FunctionPool;
pub use crate::pool::{InvokeOutcome, SandboxInfo};
pub use crate::report::{
    InvocationReport, InvocationStatus, Log, LogVolume, ShutdownOutcome, ShutdownReason, ShutdownReport,
};
use crate::report::{Records, millis};
use crate::sandbox::FunctionRuntime;
pub use crate::sandbox::{EXTERNAL_EXTENSION_DEADLINE, INIT_TIMEOUT, INTERNAL_EXTENSION_DEADLINE};
pub use crate::template::{EnvOverrides, FunctionSpec, RouteSpec, Template};

/// HTTP APIs accept request bodies up to 10 MB.
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// HTTP APIs wait at most 30 seconds for an integration.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run a template.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The SAM template.
    pub template: PathBuf,
    /// Where the functions' executables are (`target/debug`, `target/release`).
    pub binaries_dir: PathBuf,
    /// Values of the template's parameters, over their defaults (`--parameter`), as a deploy
    /// gives them: each function's `!Ref`s to them resolve as they would in the stack.
    pub parameters: BTreeMap<String, String>,
    /// Environment overrides (`--env-vars`), applied after the template's resolved variables.
    pub env_overrides: EnvOverrides,
    /// The address the HTTP API listens on.
    pub host: IpAddr,
    /// The HTTP API's port; 0 picks a free one.
    pub port: u16,
    /// How many sandboxes one function may have at once; further requests queue.
    pub max_sandboxes_per_function: u32,
    /// Idle sandboxes are shut down after this long; `None` keeps them until shutdown.
    pub idle_timeout: Option<Duration>,
    /// Appended to each function's name (`AWS_LAMBDA_FUNCTION_NAME`, and so the Postgres
    /// `application_name`), so that parallel tests can tell their sandboxes apart.
    pub function_name_suffix: String,
    pub region: String,
    /// The integration timeout of the HTTP API (answered 503).
    pub integration_timeout: Duration,
    /// External extensions started in every sandbox, as executables in `/opt/extensions` are.
    pub extensions: Vec<PathBuf>,
    /// A command and its arguments that start every sandbox process, with the executable's path
    /// appended: `["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"]` runs Lambda's arm64
    /// binaries on another architecture. Empty runs the executables directly. The wrapper must
    /// become the process (exec), or forward SIGTERM: the emulator signals the process it spawned,
    /// and reports that process's peak memory (qemu's, which includes the guest's).
    pub wrapper: Vec<String>,
    /// Lambda's resource limits per sandbox (on by default): a CPU quota of MemorySize/1769 of
    /// one core and the memory size, beyond which the sandbox is killed and its invocation
    /// fails (`Runtime.OutOfMemory`). Applied with cgroups (v1 or v2, as root); when the machine
    /// offers none, the emulator says so in one line and runs the sandboxes unthrottled.
    pub sandbox_limits: bool,
    /// Every function's `MemorySize`, in place of the template's (`make bench`'s power tuning).
    pub memory_size_mb: Option<u32>,
    /// The front door whose events the functions receive for the template's routes.
    pub front_door: FrontDoor,
    /// Invocations one sandbox serves at once. 1 (the default) is Lambda's on-demand model;
    /// above 1 plays Lambda Managed Instances: each function runs in one sandbox that gets
    /// `AWS_LAMBDA_MAX_CONCURRENCY` and up to that many invocations at once, never frozen.
    pub max_concurrency: u32,
    /// A folder of pages that stand in for the web app the mail links open (`--static-dir`): a
    /// GET or HEAD that matches no route is answered with `DIR/<path>.html` when that file
    /// exists. Only paths of at most 8 non-empty segments of ASCII letters, digits, `_` and `-`
    /// map to a file (no dot, so no `..` and no hidden file); `/` does not. `None` serves no page.
    pub static_dir: Option<PathBuf>,
    /// The access key that may sign requests to the `AWS_IAM` routes (`--iam-credentials`).
    /// `None` refuses every request to them (403).
    pub iam_credentials: Option<IamCredentials>,
    pub log: Log,
}

impl EmulatorConfig {
    /// Lambda-like defaults: loopback, a free port, 4 sandboxes per function, no idle expiry,
    /// each sandbox held to its function's CPU share and memory size.
    pub fn new(template: impl Into<PathBuf>, binaries_dir: impl Into<PathBuf>) -> Self {
        Self {
            template: template.into(),
            binaries_dir: binaries_dir.into(),
            parameters: BTreeMap::new(),
            env_overrides: EnvOverrides::default(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            max_sandboxes_per_function: 4,
            idle_timeout: None,
            function_name_suffix: String::new(),
            region: "us-east-1".to_owned(),
            integration_timeout: INTEGRATION_TIMEOUT,
            extensions: Vec::new(),
            wrapper: Vec::new(),
            sandbox_limits: true,
            memory_size_mb: None,
            front_door: FrontDoor::HttpApi,
            max_concurrency: 1,
            static_dir: None,
            iam_credentials: None,
            log: Log::Stdout,
        }
    }
}

struct Inner {
    pools: Vec<Arc<FunctionPool>>,
    routes: RouteTable,
    route_list: Vec<(String, String)>,
    records: Arc<Records>,
    integration_timeout: Duration,
    front_door: FrontDoor,
    region: String,
    pages: Option<Pages>,
    iam_credentials: Option<IamCredentials>,
    /// The port requests reach it on: the only one an `AWS_IAM` request's signed host may name.
    port: u16,
    log: Log,
}

/// A running emulator. Dropping it kills every sandbox; [`Emulator::shutdown_all`] shuts them
/// down the way Lambda does.
pub struct Emulator {
    inner: Arc<Inner>,
    limits: Option<Arc<Limits>>,
    address: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Emulator {
    /// Parses the template and starts serving its HttpApi routes. Sandboxes start on demand.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Self> {
        let template = Template::load_with(&config.template, &config.region, &config.parameters)?;
        let binaries_dir =
            std::path::absolute(&config.binaries_dir).context("resolving the binaries directory")?;
        let limits = sandbox_limits(&config);
        let pages = config.static_dir.as_deref().map(|dir| static_pages(dir, &config.log)).transpose()?;
        let records = Arc::new(Records::default());
        let next_id = Arc::new(AtomicU64::new(1));
        let mut routes = RouteTable::default();
        let mut pools = Vec::new();
        let mut route_list = Vec::new();
        let mut iam_routes = Vec::new();
        for mut spec in template.functions {
            config.env_overrides.apply(&mut spec);
            for route in &spec.routes {
                routes.add(route, pools.len(), spec.requires_iam(route));
                route_list.push((route.key(), spec.logical_id.clone()));
            }
            iam_routes.extend(spec.iam_routes.iter().cloned());
            let executable = binaries_dir.join(&spec.binary);
            if !executable.is_file() {
                config.log.line(
                    &spec.logical_id,
                    format!("warning: {} does not exist; build the functions first", executable.display()),
                );
            }
            let name = spec.function_name.clone().unwrap_or_else(|| spec.logical_id.clone());
            let function = FunctionRuntime {
                name: format!("{name}{}", config.function_name_suffix),
                logical_id: spec.logical_id,
                executable,
                task_root: binaries_dir.clone(),
                handler: spec.handler,
                timeout: spec.timeout,
                memory_size_mb: config.memory_size_mb.unwrap_or(spec.memory_size_mb),
                region: config.region.clone(),
                environment: spec.environment,
                extensions: config.extensions.clone(),
                wrapper: config.wrapper.clone(),
                limits: limits.clone(),
                max_concurrency: config.max_concurrency.max(1),
            };
            pools.push(FunctionPool::new(
                function,
                config.max_sandboxes_per_function.max(1),
                config.idle_timeout,
                next_id.clone(),
                records.clone(),
                config.log.clone(),
            ));
        }
        if !iam_routes.is_empty() {
            config
                .log
                .line("emulator", iam_summary(&iam_routes, config.iam_credentials.as_ref(), &config.region));
        }
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .with_context(|| format!("binding {}:{}", config.host, config.port))?;
        let address = listener.local_addr()?;
        let inner = Arc::new(Inner {
            pools,
            routes,
            route_list,
            records,
            integration_timeout: config.integration_timeout,
            front_door: config.front_door,
            region: config.region,
            port: address.port(),
            pages,
            iam_credentials: config.iam_credentials,
            log: config.log,
        });
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, inner.clone(), stopped));
        Ok(Self { inner, limits, address, stop, server })
    }

    /// Where the emulator and the functions write their lines (see [`Log::captured`]).
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// `http://HOST:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address the HTTP API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The served routes: (route key, function logical id).
    pub fn routes(&self) -> &[(String, String)] {
        &self.inner.route_list
    }

    fn pool(&self, function: &str) -> anyhow::Result<&Arc<FunctionPool>> {
        self.inner
            .pools
            .iter()
            .find(|pool| {
                let f = &pool.function;
                f.logical_id == function
                    || f.name == function
                    || f.executable.file_name().is_some_and(|n| n == function)
            })
            .with_context(|| format!("the template has no function {function:?}"))
    }

    /// `AWS_LAMBDA_FUNCTION_NAME` of a function (with the configured suffix).
    pub fn function_name(&self, function: &str) -> anyhow::Result<String> {
        Ok(self.pool(function)?.function.name.clone())
    }

    /// Invokes a function directly with a raw payload, as `sam local invoke` does.
    pub async fn invoke(&self, function: &str, payload: Bytes) -> anyhow::Result<InvokeOutcome> {
        let outcome = self.pool(function)?.invoke(payload);
        outcome.await.context("the invocation was abandoned")
    }

    /// The live sandboxes of a function (logical id, function name or binary name).
    pub fn sandboxes(&self, function: &str) -> anyhow::Result<Vec<SandboxInfo>> {
        Ok(self.pool(function)?.sandboxes())
    }

    /// Every invocation so far, in the order they ended.
    pub fn invocations(&self) -> Vec<InvocationReport> {
        self.inner.records.invocations.lock().expect("records lock").clone()
    }

    /// The invocations that ended after the first `skip` (cheap to poll in a long run).
    pub fn invocations_since(&self, skip: usize) -> Vec<InvocationReport> {
        let invocations = self.inner.records.invocations.lock().expect("records lock");
        invocations.get(skip..).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// Every shutdown phase so far, in the order they ended.
    pub fn shutdown_reports(&self) -> Vec<ShutdownReport> {
        self.inner.records.shutdowns.lock().expect("records lock").clone()
    }

    /// Runs the shutdown phase of a function's sandboxes (after their in-flight invocations).
    /// The function keeps serving, from new sandboxes.
    pub async fn shutdown_sandboxes(&self, function: &str) -> anyhow::Result<Vec<ShutdownReport>> {
        Ok(self.pool(function)?.shutdown_all(false).await)
    }

    /// Stops the HTTP API and runs the shutdown phase of every sandbox.
    pub async fn shutdown_all(&self) -> Vec<ShutdownReport> {
        let _ = self.stop.send(true);
        let mut shutdowns = JoinSet::new();
        for pool in &self.inner.pools {
            let pool = pool.clone();
            shutdowns.spawn(async move { pool.shutdown_all(true).await });
        }
        let mut reports: Vec<ShutdownReport> = shutdowns.join_all().await.into_iter().flatten().collect();
        reports.sort_by_key(|r| r.sandbox_id);
        if let Some(limits) = &self.limits {
            limits.remove();
        }
        reports
    }

    /// Whether sandboxes get Lambda's CPU share and memory limit (see
    /// [`EmulatorConfig::sandbox_limits`]): false when turned off or when the machine offers no
    /// usable cgroup.
    pub fn limits_sandboxes(&self) -> bool {
        self.limits.is_some()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
        // Kills what still runs in the sandboxes' groups, as dropping the emulator promises.
        if let Some(limits) = &self.limits {
            limits.remove();
        }
    }
}

/// This run's cgroups, when limits are wanted and the machine offers them; says which, in one
/// line.
fn sandbox_limits(config: &EmulatorConfig) -> Option<Arc<Limits>> {
    if !config.sandbox_limits {
        config.log.line("emulator", "sandbox limits off (--unthrottled): the sandboxes run unthrottled");
        return None;
    }
    match Limits::start() {
        Ok((limits, description)) => {
            config.log.line("emulator", format!("sandbox limits: {description}"));
            Some(Arc::new(limits))
        }
        Err(error) => {
            config.log.line(
                "emulator",
                format!(
                    "no usable cgroup ({error:#}): the sandboxes run unthrottled, without Lambda's CPU \
                     share or memory limit"
                ),
            );
            None
        }
    }
}

/// One line on the `AWS_IAM` routes: who may sign requests to them, or that none may.
fn iam_summary(routes: &[String], credentials: Option<&IamCredentials>, region: &str) -> String {
    let routes = routes.join(", ");
    match credentials {
        Some(credentials) => format!(
            "AWS_IAM routes ({routes}): requests signed (SigV4, {region}/{}) with access key {} reach \
             their function as {}",
            iam::SERVICE,
            credentials.access_key_id,
            credentials.user_arn
        ),
        None => format!(
            "AWS_IAM routes ({routes}): no --iam-credentials, so every request to them is refused 403"
        ),
    }
}

/// The pages of `--static-dir`, from an absolute path; warns when the folder does not exist.
fn static_pages(dir: &Path, log: &Log) -> anyhow::Result<Pages> {
    let dir = std::path::absolute(dir).context("resolving the static pages' directory")?;
    if !dir.is_dir() {
        log.line("emulator", format!("warning: {} is not a directory; no page is served", dir.display()));
    }
    Ok(Pages::new(dir))
}

async fn serve(listener: TcpListener, inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let inner = inner.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let inner = inner.clone();
                        async move { Ok::<_, Infallible>(handle(&inner, request, peer).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn handle(inner: &Inner, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let request_id = apigw_request_id();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let response = route(inner, request, peer, &request_id).await;
    inner.log.line("api", format!("{method} {path} {} {:.1} ms", response.status, millis(started.elapsed())));
    let mut builder = Response::builder().status(response.status).header("apigw-requestid", &request_id);
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Full::new(response.body)).unwrap_or_else(|error| {
        inner.log.line("api", format!("the function's headers are not valid HTTP: {error}"));
        let fallback = GatewayResponse::internal_server_error();
        Response::builder()
            .status(fallback.status)
            .header("content-type", "application/json")
            .body(Full::new(fallback.body))
            .expect("a valid response")
    })
}

async fn route(
    inner: &Inner,
    request: Request<Incoming>,
    peer: SocketAddr,
    request_id: &str,
) -> GatewayResponse {
    let Some(route) = inner.routes.find(request.method().as_str(), request.uri().path()) else {
        if inner.pages.is_some()
            && request.method() == http::Method::POST
            && request.uri().path() == pages::QR_PATH
        {
            let Ok(text) = Limited::new(request.into_body(), MAX_REQUEST_BYTES).collect().await else {
                return GatewayResponse::payload_too_large();
            };
            return pages::qr_code(&text.to_bytes());
        }
        let page = match &inner.pages {
            Some(pages) => pages.answer(request.method(), request.uri().path(), &inner.log).await,
            None => None,
        };
        return page.unwrap_or_else(GatewayResponse::not_found);
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = Limited::new(body, MAX_REQUEST_BYTES).collect().await.map(|b| b.to_bytes()) else {
        return GatewayResponse::payload_too_large();
    };
    let protocol = format!("{:?}", parts.version);
    let incoming = IncomingRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
        source_ip: peer.ip().to_string(),
        protocol: &protocol,
    };
    let now = OffsetDateTime::now_utc();
    let caller = if route.iam {
        match iam::authorize_here(&incoming, inner.iam_credentials.as_ref(), &inner.region, inner.port, now) {
            Ok(caller) => Some(caller),
            Err(refusal) => {
                inner.log.line("api", format!("{}: refused: {}", route.route_key, refusal.0));
                return refusal.response();
            }
        }
    } else {
        None
    };
    let context =
        RequestContext { api_id: "local", request_id, region: &inner.region, now, caller: caller.as_ref() };
    let event = inner.front_door.event(&incoming, &route, &context);
    let pool = &inner.pools[route.function];
    let outcome = pool.invoke(Bytes::from(event.to_string()));
    match tokio::time::timeout(inner.integration_timeout, outcome).await {
        Err(_) => inner.front_door.timed_out(),
        Ok(Ok(InvokeOutcome::Response(payload))) => {
            inner.front_door.map_response(&payload).unwrap_or_else(|malformed| {
                inner.log.line("api", format!("malformed Lambda proxy response: {}", malformed.0));
                inner.front_door.function_failed()
            })
        }
        Ok(Ok(InvokeOutcome::Unavailable(why))) => {
            inner.log.line("api", format!("the function could not run: {why}"));
            inner.front_door.function_failed()
        }
        Ok(_) => inner.front_door.function_failed(),
    }
}

/// A request id shaped like API Gateway's (`apigw-requestid`): 16 base64 characters.
fn apigw_request_id() -> String {
    use base64::Engine as _;
    let random = uuid::Uuid::new_v4();
    let mut id = base64::engine::general_purpose::STANDARD.encode(&random.as_bytes()[..12]);
    id.truncate(15);
    id.push('=');
    id
}
