//! The sandboxes of one function: one invocation at a time per sandbox, more sandboxes for
//! concurrent requests up to a limit (queueing beyond it), warm reuse, idle expiry. Or, as
//! Lambda Managed Instances run a function, one sandbox serving up to `max_concurrency`
//! invocations at once (queueing beyond it), never frozen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::process;
use crate::report::{
    InvocationReport, InvocationStatus, Log, Records, ShutdownReason, ShutdownReport, millis,
};
use crate::sandbox::{FunctionRuntime, INIT_TIMEOUT, NotReady, RuntimeAnswer, Sandbox};

/// How an invocation ended, as the invoker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The runtime's response payload.
    Response(Bytes),
    /// The runtime reported an error (`errorType`, and the error document it posted).
    FunctionError { error_type: String, body: Bytes },
    /// The function's timeout passed; the sandbox was shut down.
    Timeout,
    /// The runtime process exited during the invocation.
    RuntimeExit(String),
    /// The sandbox failed its init phase.
    InitFailure(String),
    /// No sandbox could run it (missing executable, the emulator stopping).
    Unavailable(String),
}

/// What a test can see of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub function: String,
    pub id: u64,
    /// The runtime process.
    pub pid: u32,
    pub extension_pids: Vec<u32>,
    /// Frozen (SIGSTOP) between invocations.
    pub frozen: bool,
    /// Serving an invocation (or finishing one) rather than idle.
    pub busy: bool,
    pub invocations: u64,
    /// Its cgroups' directories (CPU share, memory limit); empty when it runs unthrottled.
    pub cgroups: Vec<std::path::PathBuf>,
}

/// How long a request waits for a sandbox that has answered but is not back in `/next` yet,
/// before starting another.
const FINISHING_GRACE: Duration = Duration::from_millis(100);

struct Idle {
    sandbox: Arc<Sandbox>,
    since: Instant,
}

pub(crate) struct FunctionPool {
    pub function: Arc<FunctionRuntime>,
    /// One permit per sandbox that may exist; every use of a sandbox holds one. Under Managed
    /// Instances (`max_concurrency` > 1): one permit per invocation the one sandbox may serve.
    permits: Arc<Semaphore>,
    max_sandboxes: u32,
    idle: Mutex<Vec<Idle>>,
    /// Sandboxes that have answered but are not back in `/next` yet.
    finishing: AtomicUsize,
    /// Signalled whenever a finishing sandbox becomes idle or is discarded.
    returned: Notify,
    live: Mutex<BTreeMap<u64, Arc<Sandbox>>>,
    /// Managed Instances: the sandbox every invocation goes to (started by the first).
    concurrent: tokio::sync::Mutex<Option<Arc<Sandbox>>>,
    next_id: Arc<AtomicU64>,
    records: Arc<Records>,
    log: Log,
}

impl FunctionPool {
    pub fn new(
        function: FunctionRuntime,
        max_sandboxes: u32,
        idle_timeout: Option<Duration>,
        next_id: Arc<AtomicU64>,
        records: Arc<Records>,
        log: Log,
    ) -> Arc<Self> {
        let max_sandboxes =
            if function.max_concurrency > 1 { function.max_concurrency } else { max_sandboxes };
        let pool = Arc::new(Self {
            function: Arc::new(function),
            permits: Arc::new(Semaphore::new(max_sandboxes as usize)),
            max_sandboxes,
            idle: Mutex::new(Vec::new()),
            finishing: AtomicUsize::new(0),
            returned: Notify::new(),
            live: Mutex::new(BTreeMap::new()),
            concurrent: tokio::sync::Mutex::new(None),
            next_id,
            records,
            log,
        });
        if let Some(idle_timeout) = idle_timeout {
            tokio::spawn(reap_idle(Arc::downgrade(&pool), idle_timeout));
        }
        pool
    }

    fn logical_id(&self) -> &str {
        &self.function.logical_id
    }

    /// Starts an invocation; the receiver yields its outcome as soon as the runtime answers
    /// (the sandbox is frozen and returned to the pool afterwards, in the background).
    pub fn invoke(self: &Arc<Self>, payload: Bytes) -> oneshot::Receiver<InvokeOutcome> {
        let (reply, outcome) = oneshot::channel();
        let pool = self.clone();
        tokio::spawn(async move { pool.run_invocation(payload, reply).await });
        outcome
    }

    async fn run_invocation(self: Arc<Self>, payload: Bytes, reply: oneshot::Sender<InvokeOutcome>) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            let _ = reply.send(InvokeOutcome::Unavailable("the emulator is shutting down".to_owned()));
            return;
        };
        if self.is_concurrent() {
            let mut slot = self.concurrent.lock().await;
            // A sandbox whose runtime exited is shut down by whoever takes it out of the slot.
            if let Some(dead) = slot.take_if(|sandbox| sandbox.has_exited()) {
                let pool = self.clone();
                tokio::spawn(async move { pool.discard(&dead, ShutdownReason::Failure).await });
            }
            let (sandbox, init_duration) = match &*slot {
                Some(sandbox) => (sandbox.clone(), None),
                None => match self.cold_start().await {
                    Ok(started) => {
                        *slot = Some(started.0.clone());
                        started
                    }
                    Err(outcome) => {
                        let _ = reply.send(outcome);
                        return;
                    }
                },
            };
            drop(slot);
            return self.invoke_on(sandbox, init_duration, payload, reply, permit).await;
        }
        let idle = self.take_idle().await;
        let (sandbox, init_duration) = match idle {
            Some(idle) => (idle.sandbox, None),
            None => match self.cold_start().await {
                Ok(started) => started,
                Err(outcome) => {
                    let _ = reply.send(outcome);
                    return;
                }
            },
        };
        self.invoke_on(sandbox, init_duration, payload, reply, permit).await;
    }

    /// Whether one sandbox serves several invocations at once (Managed Instances).
    fn is_concurrent(&self) -> bool {
        self.function.max_concurrency > 1
    }

    /// Hands the event to a worker of the runtime waiting in `/next` (Managed Instances: the
    /// runtime's workers come back to `/next` on their own time; another invocation may take
    /// the one that was waiting).
    async fn deliver_to_a_worker(
        sandbox: &Sandbox,
        request_id: &str,
        payload: Bytes,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<RuntimeAnswer>, NotReady> {
        loop {
            sandbox.wait_until_waiting(deadline).await?;
            match sandbox.deliver(request_id, payload.clone(), SystemTime::now() + timeout) {
                Ok(answer) => return Ok(answer),
                Err(_) if !sandbox.has_exited() => continue,
                Err(error) => return Err(NotReady::Exited(format!("{error:#}"))),
            }
        }
    }

    /// The most recently used idle sandbox. When none is idle but one has just answered and is
    /// on its way back to `/next`, waits a moment for it rather than cold-starting another: a
    /// client sending requests one after another is served by one warm sandbox, as in Lambda.
    async fn take_idle(&self) -> Option<Idle> {
        let deadline = tokio::time::Instant::now() + FINISHING_GRACE;
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(idle) = self.idle.lock().expect("idle lock").pop() {
                return Some(idle);
            }
            if self.finishing.load(Ordering::SeqCst) == 0 {
                return None;
            }
            if tokio::time::timeout_at(deadline, returned).await.is_err() {
                return None;
            }
        }
    }

    /// Spawns a sandbox and waits for its init phase to end.
    async fn cold_start(&self) -> Result<(Arc<Sandbox>, Option<Duration>), InvokeOutcome> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.log.line(
            self.logical_id(),
            format!("INIT_START Runtime Version: {} (local-lambda) Sandbox: {id}", "provided.al2023"),
        );
        let sandbox = match Sandbox::start(self.function.clone(), id, self.log.clone()).await {
            Ok(sandbox) => Arc::new(sandbox),
            Err(error) => {
                let message = format!("{error:#}");
                self.log.line(self.logical_id(), format!("INIT_REPORT Status: error Error: {message}"));
                return Err(InvokeOutcome::Unavailable(message));
            }
        };
        self.live.lock().expect("live lock").insert(id, sandbox.clone());
        match sandbox.wait_until_ready(sandbox.spawned_at + INIT_TIMEOUT).await {
            Ok(()) => Ok((sandbox.clone(), sandbox.init_duration())),
            Err(why) => {
                let duration = sandbox.spawned_at.elapsed();
                let why = if sandbox.killed_out_of_memory().await {
                    format!(
                        "{why}: out of memory (MemorySize {} MB)\tError Type: Runtime.OutOfMemory",
                        self.function.memory_size_mb
                    )
                } else {
                    why.to_string()
                };
                self.log.line(
                    self.logical_id(),
                    format!(
                        "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\tStatus: error\tError: {why}",
                        millis(duration)
                    ),
                );
                self.records.invocation(InvocationReport {
                    function: self.logical_id().to_owned(),
                    sandbox_id: sandbox.id,
                    pid: sandbox.pid,
                    request_id: String::new(),
                    status: InvocationStatus::InitFailure,
                    init_duration: Some(duration),
                    duration: Duration::ZERO,
                    billed_duration_ms: process::billed_ms(duration),
                    memory_size_mb: self.function.memory_size_mb,
                    max_memory_used_mb: sandbox.max_memory_used_mb(),
                });
                self.discard(&sandbox, ShutdownReason::Failure).await;
                Err(InvokeOutcome::InitFailure(why))
            }
        }
    }

    async fn invoke_on(
        &self,
        sandbox: Arc<Sandbox>,
        init_duration: Option<Duration>,
        payload: Bytes,
        reply: oneshot::Sender<InvokeOutcome>,
        permit: OwnedSemaphorePermit,
    ) {
        let request_id = Uuid::new_v4().to_string();
        let timeout = self.function.timeout;
        let started = Instant::now();
        let deadline = started + timeout;
        self.log.line(self.logical_id(), format!("START RequestId: {request_id} Version: $LATEST"));
        let answer = if self.is_concurrent() {
            Self::deliver_to_a_worker(&sandbox, &request_id, payload, timeout, deadline).await
        } else {
            sandbox
                .deliver(&request_id, payload, SystemTime::now() + timeout)
                .map_err(|error| NotReady::Exited(format!("{error:#}")))
        };
        let answered = match answer {
            Err(why) => Err(why),
            Ok(answer) => {
                let exited = sandbox.wait_until_exit();
                tokio::select! {
                    answer = answer => answer.map_err(|_| NotReady::Exited("the sandbox went away".to_owned())),
                    status = exited => Err(NotReady::Exited(status)),
                    () = tokio::time::sleep_until(deadline.into()) => Err(NotReady::TimedOut),
                }
            }
        };
        let duration = started.elapsed();
        let (status, outcome) = match answered {
            Ok(RuntimeAnswer::Response(body)) => (InvocationStatus::Success, InvokeOutcome::Response(body)),
            Ok(RuntimeAnswer::Error { error_type, body }) => {
                (InvocationStatus::FunctionError, InvokeOutcome::FunctionError { error_type, body })
            }
            Err(NotReady::TimedOut) => (InvocationStatus::Timeout, InvokeOutcome::Timeout),
            Err(why) => (InvocationStatus::RuntimeExit, InvokeOutcome::RuntimeExit(why.to_string())),
        };
        let (status, outcome) = match (status, outcome) {
            (InvocationStatus::RuntimeExit, InvokeOutcome::RuntimeExit(why))
                if sandbox.killed_out_of_memory().await =>
            {
                let why = format!("{why}: out of memory (MemorySize {} MB)", self.function.memory_size_mb);
                (InvocationStatus::OutOfMemory, InvokeOutcome::RuntimeExit(why))
            }
            other => other,
        };
        let mut failure = match &outcome {
            InvokeOutcome::RuntimeExit(why) => Some(why.clone()),
            _ => None,
        };
        // The caller gets the answer now; the sandbox finishes its invocation in the background.
        self.finishing.fetch_add(1, Ordering::SeqCst);
        let _ = reply.send(outcome);

        let (status, keep) = match status {
            // The other invocations it serves go on; it is never frozen, and a timed-out
            // invocation does not end it (Managed Instances let a late invocation run on).
            InvocationStatus::Success | InvocationStatus::FunctionError | InvocationStatus::Timeout
                if self.is_concurrent() =>
            {
                (status, !sandbox.has_exited())
            }
            InvocationStatus::Success | InvocationStatus::FunctionError => {
                match sandbox.wait_until_ready(deadline).await {
                    Ok(()) => (status, true),
                    Err(NotReady::TimedOut) => (InvocationStatus::Timeout, false),
                    Err(why) if sandbox.killed_out_of_memory().await => {
                        failure = Some(format!("{why}: out of memory"));
                        (InvocationStatus::OutOfMemory, false)
                    }
                    Err(why) => {
                        failure = Some(why.to_string());
                        (InvocationStatus::RuntimeExit, false)
                    }
                }
            }
            other => (other, false),
        };
        match status {
            InvocationStatus::Timeout => self.log.line(
                self.logical_id(),
                format!("{request_id} Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            ),
            InvocationStatus::RuntimeExit => self.log.line(
                self.logical_id(),
                format!(
                    "RequestId: {request_id} Error: {}\tRuntime.ExitError",
                    failure.as_deref().unwrap_or("the runtime exited")
                ),
            ),
            InvocationStatus::OutOfMemory => self.log.line(
                self.logical_id(),
                format!(
                    "RequestId: {request_id} Error: {}\tRuntime.OutOfMemory",
                    failure.as_deref().unwrap_or("out of memory")
                ),
            ),
            _ => {}
        }
        let billed = duration + init_duration.unwrap_or_default();
        let report = InvocationReport {
            function: self.logical_id().to_owned(),
            sandbox_id: sandbox.id,
            pid: sandbox.pid,
            request_id: request_id.clone(),
            status,
            init_duration,
            duration,
            billed_duration_ms: process::billed_ms(billed),
            memory_size_mb: self.function.memory_size_mb,
            // The killed process's peak is gone with it; Lambda reports the whole size.
            max_memory_used_mb: if status == InvocationStatus::OutOfMemory {
                Some(u64::from(self.function.memory_size_mb))
            } else {
                sandbox.max_memory_used_mb()
            },
        };
        if keep && !self.is_concurrent() {
            sandbox.freeze();
        }
        self.log.line(self.logical_id(), format!("END RequestId: {request_id}"));
        self.log.line(self.logical_id(), report.report_line());
        self.records.invocation(report);
        if keep && self.is_concurrent() {
            self.finishing.fetch_sub(1, Ordering::SeqCst);
        } else if keep {
            self.idle.lock().expect("idle lock").push(Idle { sandbox, since: Instant::now() });
            self.finishing.fetch_sub(1, Ordering::SeqCst);
            self.returned.notify_waiters();
        } else if self.is_concurrent() {
            self.finishing.fetch_sub(1, Ordering::SeqCst);
            // Of the invocations that saw it fail, the one that takes it out of the slot shuts
            // it down; the others leave it to that one (or to the next invocation's check).
            let taken = self.concurrent.lock().await.take_if(|current| current.id == sandbox.id);
            if let Some(sandbox) = taken {
                self.discard(&sandbox, ShutdownReason::Failure).await;
            }
        } else {
            self.finishing.fetch_sub(1, Ordering::SeqCst);
            self.returned.notify_waiters();
            let reason = if status == InvocationStatus::Timeout {
                ShutdownReason::Timeout
            } else {
                ShutdownReason::Failure
            };
            self.discard(&sandbox, reason).await;
        }
        drop(permit);
    }

    /// Runs a sandbox's shutdown phase and forgets it.
    async fn discard(&self, sandbox: &Sandbox, reason: ShutdownReason) -> ShutdownReport {
        let report = sandbox.shutdown(reason).await;
        self.live.lock().expect("live lock").remove(&sandbox.id);
        self.records.shutdown(report.clone());
        report
    }

    /// Shuts down every sandbox of the function once in-flight invocations have finished. With
    /// `close`, the function takes no further invocations.
    pub async fn shutdown_all(self: &Arc<Self>, close: bool) -> Vec<ShutdownReport> {
        let Ok(permits) = self.permits.clone().acquire_many_owned(self.max_sandboxes).await else {
            return Vec::new();
        };
        let mut idle: Vec<Idle> = std::mem::take(&mut *self.idle.lock().expect("idle lock"));
        if let Some(sandbox) = self.concurrent.lock().await.take() {
            idle.push(Idle { sandbox, since: Instant::now() });
        }
        let mut shutdowns = JoinSet::new();
        for Idle { sandbox, .. } in idle {
            let pool = self.clone();
            shutdowns.spawn(async move { pool.discard(&sandbox, ShutdownReason::Spindown).await });
        }
        let mut reports: Vec<ShutdownReport> = shutdowns.join_all().await;
        reports.sort_by_key(|r| r.sandbox_id);
        if close {
            self.permits.close();
        }
        drop(permits);
        reports
    }

    /// The live sandboxes.
    pub fn sandboxes(&self) -> Vec<SandboxInfo> {
        let idle: Vec<u64> = self.idle.lock().expect("idle lock").iter().map(|i| i.sandbox.id).collect();
        self.live
            .lock()
            .expect("live lock")
            .values()
            .map(|sandbox| SandboxInfo {
                function: self.logical_id().to_owned(),
                id: sandbox.id,
                pid: sandbox.pid,
                extension_pids: sandbox.extension_pids.clone(),
                frozen: sandbox.is_frozen(),
                busy: if self.is_concurrent() {
                    sandbox.in_flight() > 0
                } else {
                    !idle.contains(&sandbox.id)
                },
                invocations: sandbox.invocations.load(Ordering::Relaxed),
                cgroups: sandbox.cgroups(),
            })
            .collect()
    }
}

/// Shuts down sandboxes idle for longer than `idle_timeout`, like Lambda reclaiming idle
/// execution environments.
async fn reap_idle(pool: Weak<FunctionPool>, idle_timeout: Duration) {
    let period = (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut interval = tokio::time::interval(period);
    loop {
        interval.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        loop {
            let Ok(permit) = pool.permits.clone().try_acquire_owned() else { break };
            let expired = {
                let mut idle = pool.idle.lock().expect("idle lock");
                let position = idle.iter().position(|i| i.since.elapsed() >= idle_timeout);
                position.map(|index| idle.remove(index))
            };
            let Some(expired) = expired else { break };
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.discard(&expired.sandbox, ShutdownReason::Spindown).await;
                drop(permit);
            });
        }
    }
}
