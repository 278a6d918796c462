//! Lambda's resource limits for each sandbox, applied with Linux cgroups (v1 or v2): a CPU quota
//! in proportion to the function's memory (one vCPU at 1,769 MB, as Lambda allots it) and the
//! memory size itself, beyond which the sandbox is killed (`Runtime.OutOfMemory`).
//!
//! Each emulator makes one group per hierarchy below its own (`local-lambda-PID-N`), and one
//! group per sandbox below that (`sandbox-ID`). Every sandbox process enters its group between
//! fork and exec, so the init phase runs under the quota too. Groups are removed when their
//! sandbox has shut down and when the emulator stops; groups left by an emulator that was
//! killed outright are removed by the next one that starts.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Lambda gives a function one vCPU at this memory size, and CPU in proportion to memory.
pub const MB_PER_VCPU: u64 = 1769;
/// The CFS period the quota is a share of, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The kernel refuses quotas below 1 ms.
const MIN_CPU_QUOTA_US: u64 = 1000;
const RUN_PREFIX: &str = "local-lambda-";
const V2_ROOT: &str = "/sys/fs/cgroup";

/// The CPU time per [`CPU_PERIOD_US`] that Lambda's share gives a function of `memory_mb`: more
/// than the period (more than one core) above 1,769 MB.
pub fn cpu_quota_us(memory_mb: u32) -> u64 {
    (CPU_PERIOD_US * u64::from(memory_mb) / MB_PER_VCPU).max(MIN_CPU_QUOTA_US)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The groups of one emulator: where its sandboxes' groups are made.
#[derive(Debug)]
pub(crate) struct Limits {
    version: Version,
    /// The run's group in the hierarchy holding the cpu controller (with v2, the only one).
    cpu: Option<PathBuf>,
    /// The same for the memory controller (the same directory with v2).
    memory: Option<PathBuf>,
}

/// Numbers the runs of one process apart (tests start many emulators in one process).
static RUNS: AtomicU64 = AtomicU64::new(0);

impl Limits {
    /// Makes this run's groups. `Err` says why no limit can be applied (not root, no cgroup
    /// controller mounted...): the sandboxes then run unthrottled. The `String` describes what
    /// is applied, for the one line the emulator prints.
    pub fn start() -> anyhow::Result<(Self, String)> {
        let run_name = format!("{RUN_PREFIX}{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
        if Path::new(V2_ROOT).join("cgroup.controllers").is_file() {
            return Self::start_v2(&run_name);
        }
        let cpu = own_v1_group("cpu").and_then(|parent| make_run_group(&parent, &run_name, &[]));
        let memory = own_v1_group("memory").and_then(|parent| make_run_group(&parent, &run_name, &[]));
        let describe = |controller: &str, applied: &str, result: &anyhow::Result<PathBuf>| match result {
            Ok(_) => applied.to_owned(),
            Err(error) => format!("no {controller} limit ({error:#})"),
        };
        let description = format!(
            "cgroup v1: {}; {}",
            describe("CPU", "CPU share MemorySize/1769 of a core (cpu.cfs_quota_us)", &cpu),
            describe("memory", "memory limit MemorySize (memory.limit_in_bytes, killed beyond)", &memory),
        );
        match (cpu, memory) {
            (Err(cpu), Err(memory)) => bail!("cgroup v1: cpu: {cpu:#}; memory: {memory:#}"),
            (cpu, memory) => {
                Ok((Self { version: Version::V1, cpu: cpu.ok(), memory: memory.ok() }, description))
            }
        }
    }

    fn start_v2(run_name: &str) -> anyhow::Result<(Self, String)> {
        let parent = own_v2_group()?;
        let available = std::fs::read_to_string(parent.join("cgroup.controllers"))
            .with_context(|| format!("reading {}", parent.join("cgroup.controllers").display()))?;
        let wanted: Vec<&str> =
            ["cpu", "memory"].into_iter().filter(|c| available.split_whitespace().any(|a| a == *c)).collect();
        if wanted.is_empty() {
            bail!("cgroup v2: {} offers neither the cpu nor the memory controller", parent.display());
        }
        // The controllers must be enabled for the children of our group and of the run's group.
        // A non-root group that holds processes (ours holds the emulator) cannot enable them:
        // run the emulator in a group of its own (e.g. `systemd-run --scope -p Delegate=yes`).
        enable_controllers(&parent, &wanted)?;
        let run = make_run_group(&parent, run_name, &wanted)?;
        let has = |controller: &str| wanted.contains(&controller).then(|| run.clone());
        let description = format!(
            "cgroup v2: {}; {}",
            if wanted.contains(&"cpu") {
                "CPU share MemorySize/1769 of a core (cpu.max)"
            } else {
                "no CPU limit (no cpu controller)"
            },
            if wanted.contains(&"memory") {
                "memory limit MemorySize (memory.max, killed beyond)"
            } else {
                "no memory limit (no memory controller)"
            },
        );
        Ok((Self { version: Version::V2, cpu: has("cpu"), memory: has("memory") }, description))
    }

    fn run_dirs(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = self.cpu.iter().chain(&self.memory).map(PathBuf::as_path).collect();
        dirs.dedup();
        dirs
    }

    /// Makes the group of one sandbox, with its function's CPU quota and memory limit.
    pub fn sandbox_group(&self, sandbox_id: u64, memory_mb: u32) -> anyhow::Result<SandboxGroup> {
        let name = format!("sandbox-{sandbox_id}");
        let cpu = self.cpu.as_ref().map(|run| run.join(&name));
        let memory = self.memory.as_ref().map(|run| run.join(&name));
        let group = SandboxGroup { version: self.version, cpu, memory };
        match self.configure(&group, memory_mb) {
            Ok(()) => Ok(group),
            Err(error) => {
                for dir in group.dirs() {
                    let _ = std::fs::remove_dir(dir);
                }
                Err(error)
            }
        }
    }

    fn configure(&self, group: &SandboxGroup, memory_mb: u32) -> anyhow::Result<()> {
        for dir in group.dirs() {
            std::fs::create_dir(&dir).with_context(|| format!("creating the cgroup {}", dir.display()))?;
        }
        let quota = cpu_quota_us(memory_mb);
        let bytes = u64::from(memory_mb) * 1024 * 1024;
        match (self.version, &group.cpu, &group.memory) {
            (Version::V1, cpu, memory) => {
                if let Some(cpu) = cpu {
                    write(cpu, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    write(cpu, "cpu.cfs_quota_us", &quota.to_string())?;
                }
                if let Some(memory) = memory {
                    write(memory, "memory.limit_in_bytes", &bytes.to_string())?;
                    // Memory plus swap, when the kernel accounts swap: swapping is no way out.
                    if memory.join("memory.memsw.limit_in_bytes").exists() {
                        write(memory, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
                    }
                }
            }
            (Version::V2, cpu, memory) => {
                if let Some(cpu) = cpu {
                    write(cpu, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
                }
                if let Some(memory) = memory {
                    write(memory, "memory.max", &bytes.to_string())?;
                    if memory.join("memory.swap.max").exists() {
                        write(memory, "memory.swap.max", "0")?;
                    }
                    // An out-of-memory kill ends the whole sandbox, as in Lambda.
                    write(memory, "memory.oom.group", "1")?;
                }
            }
        }
        Ok(())
    }

    /// Removes the run's groups, killing whatever still runs in them. Idempotent.
    pub fn remove(&self) {
        for run in self.run_dirs() {
            remove_run_group(run, Duration::from_secs(2));
        }
    }
}

impl Drop for Limits {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The groups of one sandbox (one per hierarchy with v1, a single one with v2).
#[derive(Debug)]
pub(crate) struct SandboxGroup {
    version: Version,
    cpu: Option<PathBuf>,
    memory: Option<PathBuf>,
}

impl SandboxGroup {
    /// Its directories.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.cpu.iter().chain(&self.memory).cloned().collect();
        dirs.dedup();
        dirs
    }

    /// The `cgroup.procs` files to write in the child, prepared before fork: the child may not
    /// allocate between fork and exec.
    pub fn procs_files(&self) -> anyhow::Result<Vec<CString>> {
        self.dirs()
            .iter()
            .map(|dir| {
                CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
                    .context("a cgroup path with a NUL byte")
            })
            .collect()
    }

    /// How many processes of the sandbox the kernel killed for exceeding its memory.
    pub fn oom_kills(&self) -> u64 {
        let Some(memory) = &self.memory else { return 0 };
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        std::fs::read_to_string(memory.join(file)).ok().and_then(|text| field(&text, "oom_kill")).unwrap_or(0)
    }

    /// Whether the kernel killed a process of the sandbox for exceeding its memory. The kernel
    /// counts the kill just after sending SIGKILL: a process seen dead of SIGKILL may be seen
    /// before its count, so that case waits a moment for it.
    pub async fn killed_out_of_memory(&self, killed_by_sigkill: bool) -> bool {
        let deadline = Instant::now() + Duration::from_millis(if killed_by_sigkill { 200 } else { 0 });
        loop {
            if self.oom_kills() > 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Removes the groups once their processes are gone, killing any left behind (a child the
    /// runtime spawned). False if a group could not be removed (left for the run's removal).
    pub async fn remove(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut removed = true;
        for dir in self.dirs() {
            loop {
                kill_members(&dir);
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    Err(_) => {
                        removed = false;
                        break;
                    }
                }
            }
        }
        removed
    }
}

/// Moves the calling process into the groups whose `cgroup.procs` files are given. Runs in the
/// child between fork and exec: only async-signal-safe calls (open, write, close).
pub(crate) fn enter(procs_files: &[CString]) -> std::io::Result<()> {
    for path in procs_files {
        // SAFETY: open/write/close on a NUL-terminated path prepared before fork; "0" names the
        // writing process.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// `name N` in a cgroup key-value file.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

fn write(dir: &Path, file: &str, value: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

/// SIGKILL to every process in a group (they are sandbox processes of this emulator, or of one
/// that is gone).
fn kill_members(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else { return };
    for pid in procs.lines().filter_map(|line| line.trim().parse::<libc::pid_t>().ok()) {
        // SAFETY: kill(2) with plain integers; the pid was read from the group just now.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Removes a run's group and its sandboxes' groups, waiting up to `patience` for killed
/// processes to go.
fn remove_run_group(run: &Path, patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        let children: Vec<PathBuf> = std::fs::read_dir(run)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        for child in &children {
            kill_members(child);
            let _ = std::fs::remove_dir(child);
        }
        kill_members(run);
        match std::fs::remove_dir(run) {
            Ok(()) => return,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return,
        }
    }
}

/// Makes the run's group below `parent`, first removing the groups of runs whose emulator is
/// gone. With v2, `controllers` are enabled for the run's children.
fn make_run_group(parent: &Path, name: &str, controllers: &[&str]) -> anyhow::Result<PathBuf> {
    remove_leftovers(parent);
    let run = parent.join(name);
    std::fs::create_dir(&run).with_context(|| format!("creating the cgroup {}", run.display()))?;
    if !controllers.is_empty()
        && let Err(error) = enable_controllers(&run, controllers)
    {
        let _ = std::fs::remove_dir(&run);
        return Err(error);
    }
    Ok(run)
}

/// Removes `local-lambda-PID-N` groups below `parent` whose process is gone.
fn remove_leftovers(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(RUN_PREFIX).and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        remove_run_group(&entry.path(), Duration::from_millis(500));
    }
}

fn enable_controllers(group: &Path, controllers: &[&str]) -> anyhow::Result<()> {
    let file = group.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&file).unwrap_or_default();
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::write(&file, missing.join(" ")).with_context(|| {
        format!(
            "enabling {} in {} (a group holding processes cannot; run the emulator in a \
             delegated group of its own)",
            missing.join(" "),
            file.display()
        )
    })
}

/// Our own group in the v1 hierarchy of `controller`, as a directory.
fn own_v1_group(controller: &str) -> anyhow::Result<PathBuf> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let (mount_root, mount_point) = v1_mount(&mountinfo, controller)
        .with_context(|| format!("no cgroup v1 hierarchy with the {controller} controller is mounted"))?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let own = cgroups
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == controller).then(|| path.to_owned())
        })
        .with_context(|| format!("/proc/self/cgroup lists no {controller} group"))?;
    Ok(group_dir(&mount_point, &mount_root, &own))
}

/// Our own v2 group, as a directory.
fn own_v2_group() -> anyhow::Result<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let own = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .context("/proc/self/cgroup lists no cgroup v2 group")?;
    Ok(group_dir(Path::new(V2_ROOT), "/", own))
}

/// The directory of the group at `path` (as /proc/self/cgroup names it) in a hierarchy mounted
/// at `mount_point`, whose root is `mount_root` (below `/` in a container).
fn group_dir(mount_point: &Path, mount_root: &str, path: &str) -> PathBuf {
    let relative = path.strip_prefix(mount_root).unwrap_or(path).trim_start_matches('/');
    mount_point.join(relative)
}

/// (root, mount point) of the cgroup v1 hierarchy holding `controller`, from mountinfo.
fn v1_mount(mountinfo: &str, controller: &str) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mut after = after.split_whitespace();
        let (fstype, _source, options) = (after.next()?, after.next()?, after.next()?);
        if fstype != "cgroup" || !options.split(',').any(|o| o == controller) {
            return None;
        }
        let fields: Vec<&str> = before.split_whitespace().collect();
        Some((fields.get(3)?.to_string(), PathBuf::from(fields.get(4)?)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_quota_is_the_memory_share_of_one_core() {
        assert_eq!(cpu_quota_us(1769), CPU_PERIOD_US);
        assert_eq!(cpu_quota_us(128), 7235);
        assert_eq!(cpu_quota_us(3008), 170_039, "above 1,769 MB, more than a core");
        assert_eq!(cpu_quota_us(1), MIN_CPU_QUOTA_US);
    }

    #[test]
    fn the_cpu_hierarchy_is_found_in_mountinfo_even_when_co_mounted() {
        let mountinfo = "\
25 30 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
27 25 0:24 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset";

        let cpu = v1_mount(mountinfo, "cpu").unwrap();
        let memory = v1_mount(mountinfo, "memory").unwrap();

        assert_eq!(cpu, ("/".to_owned(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(memory, ("/docker/abc".to_owned(), PathBuf::from("/sys/fs/cgroup/memory")));
        assert_eq!(v1_mount(mountinfo, "pids"), None);
        assert_eq!(
            group_dir(&memory.1, &memory.0, "/docker/abc/job"),
            PathBuf::from("/sys/fs/cgroup/memory/job")
        );
        assert_eq!(group_dir(&cpu.1, &cpu.0, "/"), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
    }

    #[test]
    fn oom_kills_are_read_from_v1_oom_control_and_v2_events() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 1\n";

        assert_eq!(field(v1, "oom_kill"), Some(2));
        assert_eq!(field(v2, "oom_kill"), Some(1));
        assert_eq!(field(v2, "oom"), Some(1));
        assert_eq!(field(v2, "missing"), None);
    }
}
