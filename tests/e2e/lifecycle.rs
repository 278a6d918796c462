//! Lambda's execution-environment lifecycle as the real binaries live it: freezing between
//! invocations, connection reuse while warm, and the shutdown phase.

use std::time::Duration;

use crate::helpers::{TestApi, email, eventually};
use local_lambda::process::is_stopped;
use local_lambda::{
    INTERNAL_EXTENSION_DEADLINE, InvocationStatus, InvokeOutcome, ShutdownOutcome, ShutdownReason,
};

const GRACEFUL_SHUTDOWN_HELPER: &str = "_lambda-rust-runtime-no-op-graceful-shutdown-helper";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_phase_closes_the_pool_and_the_function_exits_by_itself() {
    let api = TestApi::start().await;
    assert_eq!(api.get("/health").await.status, 200);
    let application_name = api.function_name("HealthFunction");
    assert_eq!(api.db.backends(&application_name).await.len(), 1, "the warm sandbox holds its connection");

    let reports = api.emulator.shutdown_sandboxes("HealthFunction").await.unwrap();

    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert!(report.graceful, "an extension is registered, so the runtime gets SIGTERM: {report:?}");
    assert_eq!(report.extensions, [GRACEFUL_SHUTDOWN_HELPER]);
    assert_eq!(report.deadline, INTERNAL_EXTENSION_DEADLINE);
    match report.outcome {
        ShutdownOutcome::ExitedByItself { after } => {
            assert!(after < INTERNAL_EXTENSION_DEADLINE, "{after:?}")
        }
        other => panic!("the function had to be killed: {other:?}"),
    }
    assert_eq!(report.exit_code, Some(0));
    eventually("the function's connection to close", Duration::from_secs(2), || async {
        api.db.backends(&application_name).await.is_empty().then_some(())
    })
    .await;
    assert!(api.emulator.sandboxes("HealthFunction").unwrap().is_empty());

    // The function keeps serving, from a new sandbox.
    assert_eq!(api.get("/health").await.status, 200);
    assert_eq!(api.invocations(2).await.iter().filter(|i| i.is_cold_start()).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_emulator_shuts_every_sandbox_down_gracefully() {
    let api = TestApi::start().await;
    let email = email();
    assert_eq!(api.post_signup(&email).await.status, 201);
    assert_eq!(api.post_login(&email).await.status, 200);
    assert_eq!(api.get("/.well-known/jwks.json").await.status, 200);

    let reports = api.emulator.shutdown_all().await;

    let functions: Vec<&str> = reports.iter().map(|r| r.function.as_str()).collect();
    assert_eq!(functions, ["SignupFunction", "LoginFunction", "JwksFunction"]);
    for report in &reports {
        assert!(report.exited_by_itself(), "{report:?}");
        assert_eq!(report.reason, ShutdownReason::Spindown);
    }
    for function in ["SignupFunction", "LoginFunction"] {
        let application_name = api.function_name(function);
        eventually("the connections to close", Duration::from_secs(2), || async {
            api.db.backends(&application_name).await.is_empty().then_some(())
        })
        .await;
    }
    let after = api.emulator.invoke("LoginFunction", bytes::Bytes::from_static(b"{}")).await.unwrap();
    assert!(
        matches!(after, InvokeOutcome::Unavailable(_)),
        "a stopped emulator starts no sandbox: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_sandbox_whose_connection_was_terminated_serves_the_next_request() {
    // A kept connection is pinged before use once it has been idle this long: 0 stands for a
    // freeze longer than the threshold, without waiting for one.
    let api =
        TestApi::start_with(|config| config.env_overrides.set_for_all("DB_PING_AFTER_IDLE_MS", "0")).await;
    let email = email();
    assert_eq!(api.post_signup(&email).await.status, 201);
    assert_eq!(api.post_login(&email).await.status, 200);
    let sandbox = api.only_sandbox("LoginFunction");
    eventually("the sandbox to freeze", Duration::from_secs(2), || async {
        (is_stopped(sandbox.pid) && api.only_sandbox("LoginFunction").frozen).then_some(())
    })
    .await;

    let application_name = api.function_name("LoginFunction");
    assert_eq!(api.db.terminate(&application_name).await, 1, "the frozen sandbox's connection is terminated");
    eventually("the backend to go", Duration::from_secs(2), || async {
        api.db.backends(&application_name).await.is_empty().then_some(())
    })
    .await;

    let login = api.post_login(&email).await;

    assert_eq!(login.status, 200, "the thawed sandbox reconnects: {}", login.text);
    assert_eq!(api.only_sandbox("LoginFunction").pid, sandbox.pid, "the same warm sandbox served");
    let logins: Vec<_> =
        api.settled_invocations().await.into_iter().filter(|i| i.function == "LoginFunction").collect();
    assert_eq!(logins.len(), 2);
    assert!(!logins[1].is_cold_start());
    assert!(logins.iter().all(|i| i.status == InvocationStatus::Success), "{logins:?}");
    eventually("the sandbox to freeze again", Duration::from_secs(2), || async {
        is_stopped(sandbox.pid).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_terminated_between_busy_requests_costs_one_503_then_heals() {
    // A busy sandbox uses its kept connection without a ping (a threshold no request reaches
    // here), so the request that finds it terminated fails, retryable; the next reconnects.
    let api =
        TestApi::start_with(|config| config.env_overrides.set_for_all("DB_PING_AFTER_IDLE_MS", "600000"))
            .await;
    assert_eq!(api.get("/health").await.status, 200);
    let application_name = api.function_name("HealthFunction");
    assert_eq!(api.db.terminate(&application_name).await, 1);
    eventually("the backend to go", Duration::from_secs(2), || async {
        api.db.backends(&application_name).await.is_empty().then_some(())
    })
    .await;

    let failed = api.get("/health").await;
    let healed = api.get("/health").await;

    assert_eq!(
        (failed.status, &failed.body["status"]),
        (503, &serde_json::json!("unhealthy")),
        "{}",
        failed.text
    );
    assert_eq!(healed.status, 200, "{}", healed.text);
    assert_eq!(api.db.backends(&application_name).await.len(), 1, "one new connection");
    let sandboxes = api.emulator.sandboxes("HealthFunction").unwrap();
    assert_eq!(sandboxes.len(), 1, "the same sandbox served all three: {sandboxes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_to_a_warm_sandbox_use_one_database_connection() {
    let api = TestApi::start().await;
    let application_name = api.function_name("HealthFunction");
    assert_eq!(api.get("/health").await.status, 200);
    let connection = api.db.backends(&application_name).await;
    assert_eq!(connection.len(), 1, "{connection:?}");

    for request in 2..=50 {
        let health = api.get("/health").await;
        assert_eq!(health.status, 200, "request {request}: {}", health.text);
        assert_eq!(
            api.db.backends(&application_name).await,
            connection,
            "request {request} opened a connection"
        );
    }

    let invocations = api.invocations(50).await;
    assert_eq!(invocations.len(), 50);
    assert_eq!(invocations.iter().filter(|i| i.is_cold_start()).count(), 1);
    assert!(invocations.iter().all(|i| i.sandbox_id == invocations[0].sandbox_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_sandbox_expires_through_the_shutdown_phase() {
    let api = TestApi::start_with(|config| config.idle_timeout = Some(Duration::from_millis(300))).await;
    assert_eq!(api.get("/health").await.status, 200);
    let first = api.only_sandbox("HealthFunction");

    let report = eventually("the idle sandbox to expire", Duration::from_secs(5), || async {
        api.emulator.shutdown_reports().into_iter().next()
    })
    .await;

    assert_eq!((report.sandbox_id, report.reason), (first.id, ShutdownReason::Spindown));
    assert!(report.exited_by_itself(), "{report:?}");
    assert!(api.emulator.sandboxes("HealthFunction").unwrap().is_empty());
    assert_eq!(api.get("/health").await.status, 200);
    assert_ne!(api.only_sandbox("HealthFunction").pid, first.pid, "a new sandbox cold-started");
}
