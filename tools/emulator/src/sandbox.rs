//! One execution environment: the function's process (and any external extensions), the Runtime
//! and Extensions APIs it talks to on its own loopback port, freezing between invocations, and
//! the shutdown phase.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::ffi::CString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::limits::{self, Limits, SandboxGroup};
use crate::process::{self, Signal};
use crate::report::{Log, ShutdownOutcome, ShutdownReason, ShutdownReport};
use crate::template::ACCOUNT_ID;

mod runtime_api;

use runtime_api::serve;

/// Lambda's limit on the init phase.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the runtime has between SIGTERM and SIGKILL when only internal extensions are
/// registered.
pub const INTERNAL_EXTENSION_DEADLINE: Duration = Duration::from_millis(500);
/// The same when at least one external extension is registered.
pub const EXTERNAL_EXTENSION_DEADLINE: Duration = Duration::from_millis(2000);

/// What a sandbox runs: a function from the template, with its final environment.
#[derive(Debug, Clone)]
pub struct FunctionRuntime {
    /// The logical id in the template.
    pub logical_id: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`, also the Postgres `application_name` of the functions.
    pub name: String,
    pub executable: PathBuf,
    /// `LAMBDA_TASK_ROOT` and the working directory.
    pub task_root: PathBuf,
    pub handler: String,
    pub timeout: Duration,
    pub memory_size_mb: u32,
    pub region: String,
    /// The template's variables with overrides applied.
    pub environment: BTreeMap<String, String>,
    /// External extensions started beside the runtime (like executables in `/opt/extensions`).
    pub extensions: Vec<PathBuf>,
    /// The command (and arguments) that starts each process, the executable's path appended;
    /// empty to run it directly (see `EmulatorConfig::wrapper`).
    pub wrapper: Vec<String>,
    /// Where each sandbox gets its CPU share and memory limit; `None` runs them unthrottled.
    pub limits: Option<Arc<Limits>>,
    /// Invocations one sandbox serves at once: 1 as in Lambda's on-demand sandboxes; more as
    /// Lambda Managed Instances do (`AWS_LAMBDA_MAX_CONCURRENCY`).
    pub max_concurrency: u32,
}

impl FunctionRuntime {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
    pub fn arn(&self) -> String {
        format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{}", self.region, self.name)
    }

    /// The environment Lambda gives a process of this function.
    fn process_environment(&self, runtime_api: &str) -> BTreeMap<String, String> {
        let log_stream = format!("{}/[$LATEST]{}", log_stream_date(), Uuid::new_v4().simple());
        let mut env = BTreeMap::from([
            ("AWS_LAMBDA_RUNTIME_API".to_owned(), runtime_api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), self.name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(), self.memory_size_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION".to_owned(), "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME".to_owned(), format!("/aws/lambda/{}", self.name)),
            ("AWS_LAMBDA_LOG_STREAM_NAME".to_owned(), log_stream),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".to_owned(), "on-demand".to_owned()),
            ("AWS_REGION".to_owned(), self.region.clone()),
            ("AWS_DEFAULT_REGION".to_owned(), self.region.clone()),
            ("_HANDLER".to_owned(), self.handler.clone()),
            ("LAMBDA_TASK_ROOT".to_owned(), self.task_root.display().to_string()),
            ("LAMBDA_RUNTIME_DIR".to_owned(), self.task_root.display().to_string()),
            ("TZ".to_owned(), ":UTC".to_owned()),
            ("LANG".to_owned(), "en_US.UTF-8".to_owned()),
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ]);
        if self.max_concurrency > 1 {
            env.insert("AWS_LAMBDA_MAX_CONCURRENCY".to_owned(), self.max_concurrency.to_string());
        }
        env.extend(self.environment.clone());
        env
    }
}

/// What the runtime answered for an invocation.
#[derive(Debug)]
pub enum RuntimeAnswer {
    Response(Bytes),
    Error { error_type: String, body: Bytes },
}

/// Why a sandbox did not reach the point where it waits for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The runtime process exited (with this status).
    Exited(String),
    /// The runtime reported an init error.
    InitError(String),
    TimedOut,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "the runtime exited ({status})"),
            Self::InitError(error) => write!(f, "the runtime reported an init error: {error}"),
            Self::TimedOut => f.write_str("timed out"),
        }
    }
}

/// A running sandbox.
pub struct Sandbox {
    pub id: u64,
    pub function: Arc<FunctionRuntime>,
    /// The runtime process.
    pub pid: u32,
    /// The external extension processes.
    pub extension_pids: Vec<u32>,
    pub spawned_at: Instant,
    /// Invocations served so far.
    pub invocations: AtomicU64,
    shared: Arc<Shared>,
    runtime_exit: watch::Receiver<Option<ExitStatus>>,
    extension_exits: Vec<watch::Receiver<Option<ExitStatus>>>,
    server: JoinHandle<()>,
    /// The sandbox's cgroups (CPU share, memory limit), when limits apply.
    group: Option<SandboxGroup>,
    log: Log,
}

struct Shared {
    function: Arc<FunctionRuntime>,
    state: Mutex<State>,
    changed: Notify,
    log: Log,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("sandbox state lock")
    }
}

#[derive(Default)]
struct State {
    first_next_at: Option<Instant>,
    init_error: Option<String>,
    /// The runtime's pending `GET /next`s: one at a time, or one per concurrent worker under
    /// Managed Instances.
    next: Vec<oneshot::Sender<Delivery>>,
    /// The invocations the runtime is serving.
    current: Vec<Current>,
    extensions: Vec<Extension>,
    /// Extensions may register only during init, before the runtime's first `/next`.
    registration_closed: bool,
    frozen: bool,
    shutting_down: bool,
}

impl State {
    /// The runtime waits for an event and every extension waits in `/event/next`.
    fn ready(&self) -> bool {
        self.waiting()
            && self.current.is_empty()
            && self
                .extensions
                .iter()
                .all(|e| e.queue.is_empty() && e.waiting.as_ref().is_some_and(|w| !w.is_closed()))
    }

    /// The runtime waits in `/next` (one of its workers does).
    fn waiting(&self) -> bool {
        self.next.iter().any(|next| !next.is_closed())
    }
}

struct Current {
    request_id: String,
    reply: oneshot::Sender<RuntimeAnswer>,
}

struct Extension {
    id: String,
    name: String,
    external: bool,
    invoke: bool,
    shutdown: bool,
    waiting: Option<oneshot::Sender<Value>>,
    queue: VecDeque<Value>,
}

impl Extension {
    fn push(&mut self, event: Value) {
        match self.waiting.take() {
            Some(waiting) => {
                if let Err(event) = waiting.send(event) {
                    self.queue.push_back(event);
                }
            }
            None => self.queue.push_back(event),
        }
    }
}

struct Delivery {
    request_id: String,
    deadline_ms: u128,
    trace_id: String,
    payload: Bytes,
}

impl Sandbox {
    /// Starts the Runtime API on a free loopback port, the external extensions (waiting for them
    /// to register, as Lambda does), then the runtime process. Returns as soon as the runtime is
    /// spawned; [`Sandbox::wait_until_ready`] waits for the init phase to end.
    pub async fn start(function: Arc<FunctionRuntime>, id: u64, log: Log) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("binding the Runtime API")?;
        let runtime_api = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared {
            function: function.clone(),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            log: log.clone(),
        });
        let group = match &function.limits {
            Some(limits) => Some(
                limits.sandbox_group(id, function.memory_size_mb).context("making the sandbox's cgroup")?,
            ),
            None => None,
        };
        let procs_files = group.as_ref().map(SandboxGroup::procs_files).transpose()?.unwrap_or_default();
        let server = tokio::spawn(serve(listener, shared.clone()));
        let env = function.process_environment(&runtime_api);
        let spawned_at = Instant::now();
        let mut extension_pids = Vec::new();
        let mut extension_exits = Vec::new();
        for path in &function.extensions {
            let name = file_name(path);
            let label = format!("{} {name}", function.logical_id);
            let spawned =
                spawn_process(&function.wrapper, path, &env, &function.task_root, &label, &log, &procs_files)
                    .with_context(|| format!("starting the extension {}", path.display()));
            let (pid, exit) = match spawned {
                Ok(spawned) => spawned,
                Err(error) => {
                    abandon(&server, &extension_pids, group).await;
                    return Err(error);
                }
            };
            extension_pids.push(pid);
            extension_exits.push(exit);
        }
        if !function.extensions.is_empty() {
            let expected = function.extensions.len();
            let registered = wait_for(&shared, None, spawned_at + INIT_TIMEOUT, |state| {
                state.extensions.iter().filter(|e| e.external).count() >= expected
            });
            if let Err(why) = registered.await {
                abandon(&server, &extension_pids, group).await;
                anyhow::bail!("the external extensions did not register: {why}");
            }
        }
        let runtime = spawn_process(
            &function.wrapper,
            &function.executable,
            &env,
            &function.task_root,
            &function.logical_id,
            &log,
            &procs_files,
        )
        .with_context(|| format!("starting {}", function.executable.display()));
        let (pid, runtime_exit) = match runtime {
            Ok(spawned) => spawned,
            Err(error) => {
                abandon(&server, &extension_pids, group).await;
                return Err(error);
            }
        };
        Ok(Self {
            id,
            function,
            pid,
            extension_pids,
            spawned_at,
            invocations: AtomicU64::new(0),
            shared,
            runtime_exit,
            extension_exits,
            server,
            group,
            log,
        })
    }

    /// The directories of the sandbox's cgroups (empty when it runs unthrottled).
    pub fn cgroups(&self) -> Vec<PathBuf> {
        self.group.as_ref().map(SandboxGroup::dirs).unwrap_or_default()
    }

    /// Whether the kernel killed the sandbox (a process of it) for exceeding its memory size.
    pub async fn killed_out_of_memory(&self) -> bool {
        let Some(group) = &self.group else { return false };
        let sigkill = self.runtime_exit.borrow().is_some_and(|status| {
            std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL)
        });
        group.killed_out_of_memory(sigkill).await
    }

    /// Every process of the sandbox.
    fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.pid).chain(self.extension_pids.iter().copied())
    }

    /// Spawn to the runtime's first `/next`, once it happened.
    pub fn init_duration(&self) -> Option<Duration> {
        self.shared.lock().first_next_at.map(|at| at.duration_since(self.spawned_at))
    }

    /// Whether the sandbox is frozen between invocations.
    pub fn is_frozen(&self) -> bool {
        self.shared.lock().frozen
    }

    /// Whether the runtime process has exited.
    pub fn has_exited(&self) -> bool {
        self.runtime_exit.borrow().is_some()
    }

    /// Waits until the runtime waits in `/next` and every extension in `/event/next`: the end of
    /// the init phase, or of an invocation.
    pub async fn wait_until_ready(&self, deadline: Instant) -> Result<(), NotReady> {
        wait_for(&self.shared, Some(&self.runtime_exit), deadline, State::ready).await
    }

    /// Waits until one of the runtime's workers waits in `/next`, whatever the others serve
    /// (Managed Instances).
    pub async fn wait_until_waiting(&self, deadline: Instant) -> Result<(), NotReady> {
        wait_for(&self.shared, Some(&self.runtime_exit), deadline, State::waiting).await
    }

    /// The invocations the runtime is serving now.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().current.len()
    }

    /// Resolves when the runtime process exits, with its exit status.
    pub async fn wait_until_exit(&self) -> String {
        let mut exit = self.runtime_exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(status) => status.map(|s| s.to_string()).unwrap_or_default(),
            Err(_) => "the process is no longer observed".to_owned(),
        }
    }

    /// Thaws the sandbox and hands an event to the runtime's pending `/next` (and INVOKE to the
    /// extensions that subscribed). The receiver yields the runtime's answer.
    pub fn deliver(
        &self,
        request_id: &str,
        payload: Bytes,
        deadline: SystemTime,
    ) -> anyhow::Result<oneshot::Receiver<RuntimeAnswer>> {
        let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let trace_id = trace_id();
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.frozen {
                self.signal_all(Signal::Continue);
                state.frozen = false;
            }
            state.next.retain(|next| !next.is_closed());
            let next = state.next.pop().context("the runtime is not waiting for an event")?;
            // Sent under the lock, and recorded only once sent: the runtime's answer (which
            // takes the lock) always finds it, and a failed send leaves nothing behind.
            let delivery = Delivery {
                request_id: request_id.to_owned(),
                deadline_ms,
                trace_id: trace_id.clone(),
                payload,
            };
            next.send(delivery).map_err(|_| anyhow::anyhow!("the runtime stopped waiting for the event"))?;
            state.current.push(Current { request_id: request_id.to_owned(), reply });
            let invoke = json!({
                "eventType": "INVOKE",
                "deadlineMs": deadline_ms,
                "requestId": request_id,
                "invokedFunctionArn": self.function.arn(),
                "tracing": { "type": "X-Amzn-Trace-Id", "value": trace_id },
            });
            for extension in state.extensions.iter_mut().filter(|e| e.invoke) {
                extension.push(invoke.clone());
            }
        }
        self.invocations.fetch_add(1, Ordering::Relaxed);
        Ok(answer)
    }

    /// Freezes the sandbox (SIGSTOP to each process) if it is idle, as Lambda does between
    /// invocations. Returns whether it froze.
    pub fn freeze(&self) -> bool {
        let mut state = self.shared.lock();
        if state.frozen || state.shutting_down || !state.ready() || self.has_exited() {
            return false;
        }
        self.signal_all(Signal::Stop);
        state.frozen = true;
        true
    }

    /// Peak memory of the sandbox's processes, in MB.
    pub fn max_memory_used_mb(&self) -> Option<u64> {
        self.pids().filter_map(process::peak_rss_mb).reduce(|a, b| a + b)
    }

    fn signal_all(&self, signal: Signal) {
        if !self.has_exited() {
            process::send(self.pid, signal);
        }
        for (pid, exit) in self.extension_pids.iter().zip(&self.extension_exits) {
            if exit.borrow().is_none() {
                process::send(*pid, signal);
            }
        }
    }

    /// The shutdown phase: thaw; SIGTERM to the runtime and SHUTDOWN to subscribed extensions
    /// when any extension is registered (else SIGKILL at once); SIGKILL whatever still runs at
    /// the deadline.
    pub async fn shutdown(&self, reason: ShutdownReason) -> ShutdownReport {
        let started = Instant::now();
        let (graceful, deadline, extensions) = {
            let mut state = self.shared.lock();
            state.shutting_down = true;
            state.frozen = false;
            let external = state.extensions.iter().any(|e| e.external);
            let deadline = if external {
                EXTERNAL_EXTENSION_DEADLINE
            } else if state.extensions.is_empty() {
                Duration::ZERO
            } else {
                INTERNAL_EXTENSION_DEADLINE
            };
            let deadline_ms =
                (SystemTime::now() + deadline).duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
            let event = json!({ "eventType": "SHUTDOWN", "shutdownReason": reason.as_str(), "deadlineMs": deadline_ms });
            for extension in state.extensions.iter_mut().filter(|e| e.shutdown) {
                extension.push(event.clone());
            }
            (
                !state.extensions.is_empty(),
                deadline,
                state.extensions.iter().map(|e| e.name.clone()).collect(),
            )
        };
        let already_exited = self.has_exited();
        self.signal_all(Signal::Continue);
        let outcome = if already_exited {
            ShutdownOutcome::AlreadyExited
        } else {
            if graceful {
                process::send(self.pid, Signal::Terminate);
            } else {
                self.signal_all(Signal::Kill);
            }
            if graceful && self.wait_for_exits(started + deadline).await {
                ShutdownOutcome::ExitedByItself { after: started.elapsed() }
            } else {
                self.signal_all(Signal::Kill);
                self.wait_for_exits(started + deadline + Duration::from_secs(5)).await;
                ShutdownOutcome::Killed { after: started.elapsed() }
            }
        };
        self.server.abort();
        if let Some(group) = &self.group
            && !group.remove().await
        {
            self.log.line(
                &self.function.logical_id,
                format!(
                    "warning: could not remove the cgroups {:?}; the emulator removes them when it stops",
                    group.dirs()
                ),
            );
        }
        let exit_code = self.runtime_exit.borrow().and_then(|status| status.code());
        let report = ShutdownReport {
            function: self.function.logical_id.clone(),
            sandbox_id: self.id,
            pid: self.pid,
            reason,
            graceful,
            deadline,
            outcome,
            exit_code,
            extensions,
        };
        self.log.line(&self.function.logical_id, report.summary());
        report
    }

    /// Waits until every process of the sandbox has exited; false at the deadline.
    async fn wait_for_exits(&self, deadline: Instant) -> bool {
        let all = async {
            for exit in std::iter::once(&self.runtime_exit).chain(&self.extension_exits) {
                let mut exit = exit.clone();
                // An error means the waiter is gone, which happens only after it saw the exit.
                let _ = exit.wait_for(Option::is_some).await;
            }
        };
        tokio::time::timeout_at(deadline.into(), all).await.is_ok()
    }
}

/// Waits until `condition` holds for the sandbox's state; fails early if the runtime (when
/// given) exits or reports an init error.
async fn wait_for(
    shared: &Shared,
    runtime_exit: Option<&watch::Receiver<Option<ExitStatus>>>,
    deadline: Instant,
    condition: impl Fn(&State) -> bool,
) -> Result<(), NotReady> {
    let mut exit = runtime_exit.cloned();
    loop {
        let notified = shared.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let state = shared.lock();
            if let Some(error) = &state.init_error {
                return Err(NotReady::InitError(error.clone()));
            }
            if condition(&state) {
                return Ok(());
            }
        }
        if let Some(status) = exit.as_mut().and_then(|exit| *exit.borrow_and_update()) {
            return Err(NotReady::Exited(status.to_string()));
        }
        let exited = async {
            match exit.as_mut() {
                // An error means the waiter is gone without reporting: treat it as an exit.
                Some(exit) => drop(exit.changed().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut notified => {}
            () = exited => {
                if exit.as_ref().is_some_and(|exit| exit.borrow().is_none()) {
                    return Err(NotReady::Exited("unknown".to_owned()));
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => return Err(NotReady::TimedOut),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Spawns a process of the sandbox with Lambda's environment (through `wrapper` when it names a
/// command), forwarding its output line by line. The receiver reports its exit.
fn spawn_process(
    wrapper: &[String],
    path: &std::path::Path,
    env: &BTreeMap<String, String>,
    cwd: &std::path::Path,
    label: &str,
    log: &Log,
    cgroup_procs_files: &[CString],
) -> anyhow::Result<(u32, watch::Receiver<Option<ExitStatus>>)> {
    let mut command = match wrapper.split_first() {
        Some((program, arguments)) => {
            let mut command = tokio::process::Command::new(program);
            command.args(arguments).arg(path);
            command
        }
        None => tokio::process::Command::new(path),
    };
    command
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: Ctrl-C in the terminal reaches the emulator only, which then
        // runs the shutdown phase as Lambda would.
        .process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(process::die_with_parent);
    }
    if !cgroup_procs_files.is_empty() {
        // Into the sandbox's groups before exec: the init phase runs under the CPU quota too.
        let files = cgroup_procs_files.to_vec();
        // SAFETY: `limits::enter` only calls open, write and close (async-signal-safe) on paths
        // allocated before fork.
        unsafe {
            command.pre_exec(move || limits::enter(&files));
        }
    }
    let mut child = command.spawn()?;
    let pid = child.id().context("the child has no pid")?;
    if let Some(stdout) = child.stdout.take() {
        forward(stdout, label.to_owned(), log.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        forward(stderr, label.to_owned(), log.clone());
    }
    let (exit_tx, exit_rx) = watch::channel(None);
    tokio::spawn(async move {
        if let Ok(status) = child.wait().await {
            let _ = exit_tx.send(Some(status));
        }
    });
    Ok((pid, exit_rx))
}

fn forward(stream: impl AsyncRead + Unpin + Send + 'static, label: String, log: Log) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.line(&label, line);
        }
    });
}

/// Undoes a start that failed half-way: stops the Runtime API, kills the extensions already
/// spawned and removes the sandbox's cgroup.
async fn abandon(server: &tokio::task::JoinHandle<()>, extension_pids: &[u32], group: Option<SandboxGroup>) {
    server.abort();
    kill_all(extension_pids);
    if let Some(group) = group {
        group.remove().await;
    }
}

fn kill_all(pids: &[u32]) {
    for pid in pids {
        process::send(*pid, Signal::Kill);
    }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn log_stream_date() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{}/{:02}/{:02}", now.year(), u8::from(now.month()), now.day())
}

/// An X-Ray trace header: `Root=1-{epoch hex}-{24 hex};Parent={16 hex};Sampled=1`.
fn trace_id() -> String {
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let random = Uuid::new_v4().simple().to_string();
    let parent = Uuid::new_v4().simple().to_string();
    format!("Root=1-{epoch:08x}-{};Parent={};Sampled=1", &random[..24], &parent[..16])
}
