//! Lambda's resource limits in the emulator: each sandbox's processes run in cgroups holding them
//! to their function's CPU share (MemorySize/1769 of a core) and memory size. Read from the
//! kernel's own files: the groups' quota, membership and throttling counters. Needs root (the
//! project's CI runs as root); elsewhere each test says it was skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::{eventually, fixtures, get_text, reports};
use local_lambda::limits::cpu_quota_us;
use local_lambda::{Emulator, EmulatorConfig, InvocationStatus, Log, SandboxInfo};

const FUNCTION: &str = "SmallFunction";
const MEMORY_MB: u32 = 128;

/// False (and says so) when not root: cgroups are then out of reach, and the emulator runs
/// unthrottled, which `limits_can_be_turned_off` covers.
fn root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: the sandbox limits need root to make cgroups");
    }
    root
}

async fn start(configure: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig::new(fixtures().join("limits.yaml"), fixtures());
    config.log = Log::captured();
    configure(&mut config);
    Emulator::start(config).await.expect("the emulator starts")
}

/// GET `path`: (status, body).
async fn get(emulator: &Emulator, path: &str) -> (u16, String) {
    get_text(emulator, path, Duration::from_secs(60)).await
}

fn only_sandbox(emulator: &Emulator) -> SandboxInfo {
    let sandboxes = emulator.sandboxes(FUNCTION).expect("the fixture function");
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    sandboxes.into_iter().next().expect("one sandbox")
}

/// The only sandbox, once back in `/next`: it, not a second sandbox, serves the next request.
async fn idle_sandbox(emulator: &Emulator) -> SandboxInfo {
    eventually("the sandbox to be idle", Duration::from_secs(10), || async {
        Some(only_sandbox(emulator)).filter(|sandbox| !sandbox.busy)
    })
    .await
}

/// The sandbox group holding the cpu controller's files (v1 `cpu.cfs_quota_us`, v2 `cpu.max`).
fn cpu_group(sandbox: &SandboxInfo) -> &Path {
    sandbox
        .cgroups
        .iter()
        .find(|dir| dir.join("cpu.cfs_quota_us").exists() || dir.join("cpu.max").exists())
        .unwrap_or_else(|| panic!("no cpu group among {:?}", sandbox.cgroups))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// `nr_throttled` of a group's `cpu.stat`: periods in which it used up its quota and waited.
fn periods_throttled(group: &Path) -> u64 {
    read(&group.join("cpu.stat"))
        .lines()
        .find_map(|line| line.strip_prefix("nr_throttled "))
        .and_then(|n| n.trim().parse().ok())
        .expect("nr_throttled in cpu.stat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_invocation_at_128_mb_is_throttled_to_its_share_of_a_core() {
    if !root() {
        return;
    }
    let emulator = start(|_| {}).await;
    assert!(
        emulator.limits_sandboxes(),
        "as root the emulator applies the limits: {:?}",
        emulator.log().lines()
    );
    assert_eq!(get(&emulator, "/ok").await.0, 200);
    let sandbox = idle_sandbox(&emulator).await;
    let group = cpu_group(&sandbox).to_path_buf();
    let quota = match std::fs::read_to_string(group.join("cpu.cfs_quota_us")) {
        Ok(v1) => v1.trim().to_owned(),
        Err(_) => read(&group.join("cpu.max")).split_whitespace().next().unwrap_or_default().to_owned(),
    };
    assert_eq!(quota, cpu_quota_us(MEMORY_MB).to_string(), "128/1769 of a 100 ms period");
    assert!(
        read(&group.join("cgroup.procs")).lines().any(|pid| pid == sandbox.pid.to_string()),
        "the runtime process is in its sandbox's group"
    );
    let before = periods_throttled(&group);

    let (status, body) = get(&emulator, "/spin").await;

    assert_eq!((status, body.as_str()), (200, "spun"));
    assert_eq!(only_sandbox(&emulator).id, sandbox.id, "the same sandbox spun");
    let after = periods_throttled(&group);
    assert!(
        after > before,
        "about 50 ms of CPU at 7.2 ms per period must wait for the quota: {before} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_process_is_in_its_group_from_its_first_instruction() {
    if !root() {
        return;
    }
    let emulator = start(|config| config.env_overrides.set_for_all("PRINT_INIT_CGROUP", "1")).await;

    assert_eq!(get(&emulator, "/ok").await.0, 200);

    let sandbox = only_sandbox(&emulator);
    let group_name = cpu_group(&sandbox).file_name().expect("a group name").to_string_lossy().into_owned();
    let lines = emulator.log().lines();
    let init = lines.iter().find(|line| line.contains("init cgroups:")).expect("the runtime's first line");
    assert!(
        init.contains(&format!("/{group_name} ")) || init.ends_with(&format!("/{group_name}")),
        "the init phase ran in {group_name} (entered before exec): {init}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_over_its_memory_is_killed_its_invocation_fails_and_the_next_gets_a_new_sandbox() {
    if !root() {
        return;
    }
    let emulator = start(|_| {}).await;
    assert_eq!(get(&emulator, "/ok").await.0, 200);
    let first = idle_sandbox(&emulator).await;

    let (status, body) = get(&emulator, "/allocate").await;

    assert_eq!(
        (status, body.as_str()),
        (500, r#"{"message":"Internal Server Error"}"#),
        "API Gateway's answer to a failed function"
    );
    let failed = reports(&emulator, 2).await.remove(1);
    assert_eq!(failed.sandbox_id, first.id);
    assert_eq!(failed.status, InvocationStatus::OutOfMemory, "{failed:?}");
    assert_eq!(failed.max_memory_used_mb, Some(u64::from(MEMORY_MB)));
    let lines = emulator.log().lines();
    assert!(
        lines.iter().any(|line| line.contains("Runtime.OutOfMemory") && line.contains("out of memory")),
        "the log says why, as Lambda does: {lines:#?}"
    );
    eventually("the killed sandbox's groups to be removed", Duration::from_secs(5), || async {
        first.cgroups.iter().all(|dir| !dir.exists()).then_some(())
    })
    .await;
    assert_eq!(get(&emulator, "/ok").await, (200, "ok".to_owned()));
    let next = reports(&emulator, 3).await.remove(2);
    assert!(next.is_cold_start(), "a new sandbox served: {next:?}");
    assert_ne!(only_sandbox(&emulator).id, first.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_groups_are_removed_at_shutdown_and_leftovers_of_a_killed_run_at_the_next_start() {
    if !root() {
        return;
    }
    let emulator = start(|_| {}).await;
    assert_eq!(get(&emulator, "/ok").await.0, 200);
    let sandbox = only_sandbox(&emulator);
    let runs: Vec<PathBuf> =
        sandbox.cgroups.iter().map(|dir| dir.parent().expect("the run's group").to_path_buf()).collect();
    // What an emulator killed outright leaves: its run's group, with a sandbox's group inside.
    // No process has a pid above the kernel's maximum (2^22).
    let leftovers: Vec<PathBuf> = runs
        .iter()
        .map(|run| run.parent().expect("the emulator's own group").join("local-lambda-9999999-0"))
        .collect();
    for leftover in &leftovers {
        std::fs::create_dir_all(leftover.join("sandbox-1")).expect("a leftover group");
    }

    emulator.shutdown_all().await;

    for dir in sandbox.cgroups.iter().chain(&runs) {
        assert!(!dir.exists(), "{} removed at shutdown", dir.display());
    }
    let next = start(|_| {}).await;
    assert!(next.limits_sandboxes());
    for leftover in &leftovers {
        assert!(!leftover.exists(), "{} removed by the next start", leftover.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_can_be_turned_off() {
    let emulator = start(|config| config.sandbox_limits = false).await;

    assert_eq!(get(&emulator, "/ok").await.0, 200);

    assert!(!emulator.limits_sandboxes());
    assert_eq!(only_sandbox(&emulator).cgroups, Vec::<PathBuf>::new());
    let lines = emulator.log().lines();
    assert!(lines.iter().any(|line| line.contains("unthrottled")), "one line says so: {lines:#?}");
}
