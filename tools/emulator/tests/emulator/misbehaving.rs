//! How the emulator treats functions that time out, crash, fail or answer garbage, and an
//! external extension, with a bash runtime that misbehaves on request (tests/fixtures): the real
//! functions do none of this on demand.

use std::time::Duration;

use crate::helpers::{eventually, fixtures, get_text, reports};
use local_lambda::process::is_stopped;
use local_lambda::{
    EXTERNAL_EXTENSION_DEADLINE, Emulator, EmulatorConfig, InvocationStatus, ShutdownOutcome, ShutdownReason,
};

const FUNCTION: &str = "FixtureFunction";

async fn start(configure: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig::new(fixtures().join("template.yaml"), fixtures());
    // Unthrottled even under E2E_SANDBOX_LIMITS=1: at 128 MB the bash fixture would not be back in
    // /next in time for the next request to find it warm (limits.rs tests the fixture throttled).
    config.sandbox_limits = false;
    configure(&mut config);
    Emulator::start(config).await.expect("the emulator starts")
}

/// GET `path`: (status, body).
async fn get(emulator: &Emulator, path: &str) -> (u16, String) {
    get_text(emulator, path, Duration::from_secs(30)).await
}

async fn statuses(emulator: &Emulator, count: usize) -> Vec<InvocationStatus> {
    reports(emulator, count).await.iter().map(|r| r.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_times_out_is_answered_500_and_its_sandbox_replaced() {
    let emulator = start(|_| {}).await;
    assert_eq!(get(&emulator, "/ok").await, (200, "ok".to_owned()));

    let (status, body) = get(&emulator, "/sleep").await;

    assert_eq!((status, body.as_str()), (500, r#"{"message":"Internal Server Error"}"#));
    assert_eq!(statuses(&emulator, 2).await, [InvocationStatus::Success, InvocationStatus::Timeout]);
    let report = eventually("the timed-out sandbox's shutdown", Duration::from_secs(5), || async {
        emulator.shutdown_reports().into_iter().next()
    })
    .await;
    assert_eq!(report.reason, ShutdownReason::Timeout);
    assert!(!report.graceful, "no extension is registered: SIGKILL at once");
    assert!(matches!(report.outcome, ShutdownOutcome::Killed { .. }), "{report:?}");
    assert_eq!(get(&emulator, "/ok").await.0, 200);
    let reports = reports(&emulator, 3).await;
    assert!(reports[2].is_cold_start(), "a new sandbox served: {reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integration_timeout_is_answered_503() {
    let emulator = start(|config| config.integration_timeout = Duration::from_millis(300)).await;

    let (status, body) = get(&emulator, "/sleep").await;

    assert_eq!((status, body.as_str()), (503, r#"{"message":"Service Unavailable"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_exits_mid_invocation_is_answered_500() {
    let emulator = start(|_| {}).await;

    let (status, body) = get(&emulator, "/crash").await;

    assert_eq!((status, body.as_str()), (500, r#"{"message":"Internal Server Error"}"#));
    assert_eq!(statuses(&emulator, 1).await, [InvocationStatus::RuntimeExit]);
    assert_eq!(get(&emulator, "/ok").await.0, 200, "a new sandbox serves the next request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_and_malformed_responses_are_500_and_the_sandbox_stays_warm() {
    let emulator = start(|_| {}).await;

    let error = get(&emulator, "/error").await;
    let malformed = get(&emulator, "/malformed").await;
    let ok = get(&emulator, "/ok").await;

    assert_eq!(error, (500, r#"{"message":"Internal Server Error"}"#.to_owned()));
    assert_eq!(malformed, (500, r#"{"message":"Internal Server Error"}"#.to_owned()));
    assert_eq!(ok.0, 200);
    let reports = emulator.invocations();
    let statuses: Vec<_> = statuses(&emulator, 3).await;
    assert_eq!(
        statuses,
        [InvocationStatus::FunctionError, InvocationStatus::Success, InvocationStatus::Success]
    );
    assert_eq!(emulator.sandboxes(FUNCTION).unwrap().len(), 1, "one sandbox served all three: {reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_extension_gets_invoke_and_shutdown_and_has_two_seconds() {
    let emulator = start(|config| config.extensions = vec![fixtures().join("extension.sh")]).await;

    assert_eq!(get(&emulator, "/ok").await.0, 200);
    let sandbox = emulator.sandboxes(FUNCTION).unwrap().remove(0);
    assert_eq!(sandbox.extension_pids.len(), 1);
    // Freezing waits for the extension to finish with INVOKE and ask for the next event.
    eventually("the runtime and the extension to freeze", Duration::from_secs(5), || async {
        (is_stopped(sandbox.pid) && is_stopped(sandbox.extension_pids[0])).then_some(())
    })
    .await;

    let reports = emulator.shutdown_all().await;

    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.extensions, ["extension.sh"]);
    assert!(report.graceful);
    assert_eq!(report.deadline, EXTERNAL_EXTENSION_DEADLINE);
    // bash dies of the SIGTERM; the extension exits on SHUTDOWN: both within the deadline.
    assert!(report.exited_by_itself(), "{report:?}");
}
