//! Sandboxes started through a wrapper command, as `make rehearse` starts Lambda's arm64 binaries
//! under qemu-user: the wrapper runs with the sandbox's environment, and freezing and the
//! shutdown phase still reach the function.

use std::time::Duration;

use crate::helpers::{TestApi, eventually};
use local_lambda::Log;
use local_lambda::process::is_stopped;

/// A wrapper that announces itself and then becomes the function, as qemu-user runs it in its
/// own process.
fn announcing_wrapper() -> Vec<String> {
    let script = r#"echo "wrapper starts $(basename "$0") for $AWS_LAMBDA_FUNCTION_NAME"; exec "$0" "$@""#;
    vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_started_through_a_wrapper_serves_freezes_and_exits_by_itself() {
    let api = TestApi::start_with(|config| {
        config.wrapper = announcing_wrapper();
        config.log = Log::captured();
    })
    .await;
    let function_name = api.function_name("HealthFunction");

    let health = api.get("/health").await;

    assert_eq!(health.status, 200, "{}", health.text);
    let started = format!("wrapper starts health for {function_name}");
    assert!(
        api.emulator.log().lines().iter().any(|line| line.ends_with(&started)),
        "the sandbox did not start through the wrapper: {:?}",
        api.emulator.log().lines()
    );
    let sandbox = api.only_sandbox("HealthFunction");
    eventually("the sandbox to freeze", Duration::from_secs(5), || async {
        is_stopped(sandbox.pid).then_some(())
    })
    .await;
    assert_eq!(api.get("/health").await.status, 200, "the frozen sandbox thaws for the next request");

    let reports = api.emulator.shutdown_all().await;

    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].exited_by_itself(), "SIGTERM did not reach the function: {:?}", reports[0]);
    assert_eq!(reports[0].exit_code, Some(0));
}
