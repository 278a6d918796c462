//! Signals and `/proc` reads for sandbox processes (Linux).

use std::time::Duration;

/// A signal the emulator sends to a sandbox process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Freezes the process between invocations.
    Stop,
    /// Thaws it.
    Continue,
    /// Asks the runtime to shut down (sent when an extension is registered).
    Terminate,
    /// Ends it.
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Self::Stop => libc::SIGSTOP,
            Self::Continue => libc::SIGCONT,
            Self::Terminate => libc::SIGTERM,
            Self::Kill => libc::SIGKILL,
        }
    }
}

/// Sends `signal` to a sandbox process: SIGTERM to the process alone (as Lambda sends it to the
/// runtime), the others to its whole process group (each sandbox process leads its own), so that
/// freezing or killing also reaches any child it spawned. False if the process is gone.
pub fn send(pid: u32, signal: Signal) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    let target = if signal == Signal::Terminate { pid } else { -pid };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The pid is that of a
    // child we have not reaped yet (callers check), so it cannot name a recycled process.
    unsafe { libc::kill(target, signal.number()) == 0 }
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `T` for stopped, `Z`...), if the process
/// exists.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may itself contain spaces and parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

/// Whether the process is stopped (frozen).
pub fn is_stopped(pid: u32) -> bool {
    matches!(state(pid), Some('T' | 't'))
}

/// The process's peak resident set size (`VmHWM`), rounded up to whole MB as Lambda reports it.
pub fn peak_rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.div_ceil(1024))
}

/// Lambda bills in whole milliseconds, rounding up.
pub fn billed_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// Makes a spawned child die with the emulator, even when the emulator is killed outright: a
/// frozen sandbox would otherwise outlive it, stopped forever.
pub fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the calling (child) process and is
    // async-signal-safe, as required between fork and exec.
    let result = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_running_and_has_a_peak_rss() {
        let pid = std::process::id();
        assert!(matches!(state(pid), Some('R' | 'S' | 'D')), "{:?}", state(pid));
        assert!(peak_rss_mb(pid).is_some_and(|mb| mb > 0));
    }

    #[test]
    fn a_stopped_child_reads_as_stopped_and_thaws() {
        use std::os::unix::process::CommandExt as _;
        let mut child =
            std::process::Command::new("sleep").arg("30").process_group(0).spawn().expect("sleep runs");
        assert!(send(child.id(), Signal::Stop));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !is_stopped(child.id()) {
            assert!(std::time::Instant::now() < deadline, "the child never stopped");
            std::thread::yield_now();
        }
        assert!(send(child.id(), Signal::Continue));
        while is_stopped(child.id()) {
            assert!(std::time::Instant::now() < deadline, "the child never thawed");
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn billing_rounds_up_to_the_millisecond() {
        assert_eq!(billed_ms(Duration::from_micros(1)), 1);
        assert_eq!(billed_ms(Duration::from_micros(12_000)), 12);
        assert_eq!(billed_ms(Duration::from_micros(12_001)), 13);
    }
}
