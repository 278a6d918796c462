//! What the emulator observed, as Lambda-style log lines and as values tests can assert on.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the emulator writes its lines and the functions' output.
#[derive(Debug, Clone, Default)]
pub enum Log {
    /// Standard output (`serve`).
    #[default]
    Stdout,
    /// Standard error, keeping stdout for the response (`invoke`).
    Stderr,
    /// Standard output, and kept in memory for a test to read back.
    Captured(Arc<Mutex<Vec<String>>>),
    /// Nowhere (benchmarks, which read the reports through the API instead). The functions'
    /// output is still read, as Lambda reads it.
    Discard,
    /// Nowhere, but each source's lines and bytes are counted (what a log group would ingest),
    /// read with [`Log::volume`].
    Counted(Arc<Mutex<BTreeMap<String, LogVolume>>>),
}

/// How much one source wrote: lines, and their bytes without the line breaks, and how many of
/// them were `REPORT` lines (one per invocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogVolume {
    pub lines: u64,
    pub bytes: u64,
    pub reports: u64,
}

impl Log {
    /// Standard output plus an in-memory copy, read with [`Log::captured`].
    pub fn captured() -> Self {
        Self::Captured(Arc::default())
    }

    /// Writes one line, prefixed with its source (a function's name, or `api`).
    pub fn line(&self, source: &str, message: impl fmt::Display) {
        // println!, not a write to io::stdout(): the test harness captures only the former.
        match self {
            Self::Stdout => println!("[{source}] {message}"),
            Self::Stderr => eprintln!("[{source}] {message}"),
            Self::Captured(lines) => {
                let line = format!("[{source}] {message}");
                println!("{line}");
                lines.lock().expect("captured log lock").push(line);
            }
            Self::Counted(counts) => {
                let message = message.to_string();
                let mut counts = counts.lock().expect("log counts lock");
                let volume = counts.entry(source.to_owned()).or_default();
                volume.lines += 1;
                volume.bytes += message.len() as u64;
                volume.reports += u64::from(message.starts_with("REPORT RequestId: "));
            }
            Self::Discard => {}
        }
    }

    /// Counts each source's lines instead of writing them (see [`Log::volume`]).
    pub fn counted() -> Self {
        Self::Counted(Arc::default())
    }

    /// What `source` (a function's logical id) wrote so far, when counted.
    pub fn volume(&self, source: &str) -> LogVolume {
        match self {
            Self::Counted(counts) => {
                counts.lock().expect("log counts lock").get(source).copied().unwrap_or_default()
            }
            Self::Stdout | Self::Stderr | Self::Captured(_) | Self::Discard => LogVolume::default(),
        }
    }

    /// The lines written so far, when captured.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Captured(lines) => lines.lock().expect("captured log lock").clone(),
            Self::Stdout | Self::Stderr | Self::Discard | Self::Counted(_) => Vec::new(),
        }
    }
}

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationStatus {
    /// The runtime posted a response.
    Success,
    /// The runtime posted an error (`/invocation/{id}/error`).
    FunctionError,
    /// No response within the function's timeout; the sandbox was shut down.
    Timeout,
    /// The runtime process exited during the invocation (`Runtime.ExitError`).
    RuntimeExit,
    /// The kernel killed the sandbox for exceeding its memory size (`Runtime.OutOfMemory`).
    OutOfMemory,
    /// The sandbox never finished its init phase.
    InitFailure,
}

/// One invocation, as the `REPORT` line describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationReport {
    /// The function's logical id in the template.
    pub function: String,
    pub sandbox_id: u64,
    pub pid: u32,
    pub request_id: String,
    pub status: InvocationStatus,
    /// `Some` on a cold start: from spawning the process to its first `/next`.
    pub init_duration: Option<Duration>,
    /// From delivering the event to the runtime's response.
    pub duration: Duration,
    /// What Lambda would bill: whole milliseconds, including the init phase on a cold start
    /// (OS-only runtimes such as `provided.al2023` bill it).
    pub billed_duration_ms: u64,
    pub memory_size_mb: u32,
    /// Peak resident memory of the sandbox's processes (`VmHWM`).
    pub max_memory_used_mb: Option<u64>,
}

impl InvocationReport {
    /// Whether this invocation paid for a cold start.
    pub fn is_cold_start(&self) -> bool {
        self.init_duration.is_some()
    }

    /// The `REPORT RequestId: ...` line.
    pub fn report_line(&self) -> String {
        let mut line = format!(
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            self.request_id,
            millis(self.duration),
            self.billed_duration_ms,
            self.memory_size_mb,
            self.max_memory_used_mb.map_or_else(|| "?".to_owned(), |mb| mb.to_string()),
        );
        if let Some(init) = self.init_duration {
            line.push_str(&format!("\tInit Duration: {:.2} ms", millis(init)));
        }
        match self.status {
            InvocationStatus::Success | InvocationStatus::FunctionError => {}
            InvocationStatus::Timeout => line.push_str("\tStatus: timeout"),
            InvocationStatus::RuntimeExit => line.push_str("\tStatus: error\tError Type: Runtime.ExitError"),
            InvocationStatus::OutOfMemory => {
                line.push_str("\tStatus: error\tError Type: Runtime.OutOfMemory");
            }
            InvocationStatus::InitFailure => line.push_str("\tStatus: error\tError Type: Runtime.InitError"),
        }
        line
    }
}

/// Why a sandbox was shut down; `shutdownReason` of the SHUTDOWN event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Idle expiry, an explicit request, or the emulator stopping.
    Spindown,
    /// An invocation passed the function's timeout.
    Timeout,
    /// The runtime crashed or failed to initialise.
    Failure,
}

impl ShutdownReason {
    /// The lower-case name Lambda uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spindown => "spindown",
            Self::Timeout => "timeout",
            Self::Failure => "failure",
        }
    }
}

/// How the runtime process ended in the shutdown phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// It exited before the deadline, `after` the shutdown began.
    ExitedByItself { after: Duration },
    /// It was still running at the deadline (or no extension was registered, so Lambda sends
    /// SIGKILL at once) and was killed.
    Killed { after: Duration },
    /// It had exited before the shutdown began.
    AlreadyExited,
}

/// One sandbox's shutdown phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ShutdownReport {
    pub function: String,
    pub sandbox_id: u64,
    pub pid: u32,
    pub reason: ShutdownReason,
    /// Whether the runtime got SIGTERM (an extension was registered) or SIGKILL at once.
    pub graceful: bool,
    /// How long the processes had between SIGTERM and SIGKILL.
    pub deadline: Duration,
    pub outcome: ShutdownOutcome,
    /// The exit code, when the process exited rather than died of a signal.
    pub exit_code: Option<i32>,
    /// The extensions registered in the sandbox, by name.
    pub extensions: Vec<String>,
}

impl ShutdownReport {
    /// Whether the runtime exited on its own within the deadline.
    pub fn exited_by_itself(&self) -> bool {
        matches!(self.outcome, ShutdownOutcome::ExitedByItself { .. })
    }

    /// The log line describing the outcome.
    pub fn summary(&self) -> String {
        let signal = if self.graceful { "SIGTERM" } else { "SIGKILL (no extension registered)" };
        let outcome = match self.outcome {
            ShutdownOutcome::ExitedByItself { after } => {
                format!("exited by itself after {:.1} ms (exit code {:?})", millis(after), self.exit_code)
            }
            ShutdownOutcome::Killed { after } if self.graceful => {
                format!(
                    "did not exit within {} ms: killed with SIGKILL after {:.1} ms",
                    self.deadline.as_millis(),
                    millis(after)
                )
            }
            ShutdownOutcome::Killed { after } => format!("killed after {:.1} ms", millis(after)),
            ShutdownOutcome::AlreadyExited => {
                return format!(
                    "SHUTDOWN sandbox {} (pid {}, reason {}): the runtime had already exited",
                    self.sandbox_id,
                    self.pid,
                    self.reason.as_str()
                );
            }
        };
        format!(
            "SHUTDOWN sandbox {} (pid {}, reason {}, {}): {}",
            self.sandbox_id,
            self.pid,
            self.reason.as_str(),
            signal,
            outcome
        )
    }
}

/// Everything observed so far, for tests and benchmarks.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub invocations: Mutex<Vec<InvocationReport>>,
    pub shutdowns: Mutex<Vec<ShutdownReport>>,
}

impl Records {
    pub fn invocation(&self, report: InvocationReport) {
        self.invocations.lock().expect("records lock").push(report);
    }

    pub fn shutdown(&self, report: ShutdownReport) {
        self.shutdowns.lock().expect("records lock").push(report);
    }
}

/// A duration in fractional milliseconds, for log lines.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_log_counts_each_sources_lines_bytes_and_reports() {
        let log = Log::counted();
        log.line("GreetFunction", "START RequestId: abc Version: $LATEST");
        log.line("GreetFunction", r#"{"level":"INFO"}"#);
        log.line("GreetFunction", report(None, InvocationStatus::Success).report_line());
        log.line("api", "POST /greet 200 3.1 ms");

        let volume = log.volume("GreetFunction");
        let report_bytes = report(None, InvocationStatus::Success).report_line().len() as u64;
        assert_eq!(volume, LogVolume { lines: 3, bytes: 37 + 16 + report_bytes, reports: 1 });
        assert_eq!(log.volume("api").reports, 0);
        assert_eq!(log.volume("nobody"), LogVolume::default());
        assert!(log.lines().is_empty(), "counted, not kept");
    }

    fn report(init: Option<Duration>, status: InvocationStatus) -> InvocationReport {
        InvocationReport {
            function: "GreetFunction".into(),
            sandbox_id: 1,
            pid: 42,
            request_id: "abc".into(),
            status,
            init_duration: init,
            duration: Duration::from_micros(12_345),
            billed_duration_ms: 13,
            memory_size_mb: 128,
            max_memory_used_mb: Some(9),
        }
    }

    #[test]
    fn report_lines_look_like_lambdas() {
        let warm = report(None, InvocationStatus::Success).report_line();
        assert_eq!(
            warm,
            "REPORT RequestId: abc\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 9 MB"
        );
        let cold = report(Some(Duration::from_millis(40)), InvocationStatus::Timeout).report_line();
        assert!(cold.ends_with("\tInit Duration: 40.00 ms\tStatus: timeout"), "{cold}");
    }
}
