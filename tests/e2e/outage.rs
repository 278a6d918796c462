//! A database outage while sandboxes are warm. This binary stops the shared Postgres server, so
//! it holds the server lock exclusively and has this one test.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::helpers::{TestApi, email, eventually, server_lock};
use local_lambda::InvocationStatus;

/// The acquire timeout the functions get here; a 503 must come well within it plus the request.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_503_and_the_same_warm_sandboxes_recover() {
    let Some(data_dir) = std::env::var_os("PG_DATA_DIR").map(PathBuf::from) else {
        eprintln!(
            "skipped: PG_DATA_DIR is unset (DATABASE_URL was supplied, so this test may not stop that server)"
        );
        return;
    };
    let api = TestApi::start_locked(server_lock(true), |config| {
        config.env_overrides.set_for_all("DB_ACQUIRE_TIMEOUT_MS", ACQUIRE_TIMEOUT.as_millis().to_string());
    })
    .await;
    let email = email();
    assert_eq!(api.post_signup(&email).await.status, 201);
    assert_eq!(api.post_login(&email).await.status, 200);
    assert_eq!(api.get("/health").await.status, 200);
    let health_pid = api.only_sandbox("HealthFunction").pid;
    let login_pid = api.only_sandbox("LoginFunction").pid;

    let server = StoppedServer::stop(data_dir);

    let health = api.get("/health").await;
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(
        (health.body["status"].as_str(), health.body["database"].as_str()),
        (Some("unhealthy"), Some("disconnected"))
    );
    assert!(
        health.elapsed < shared::ops::maintenance::PING_TIMEOUT + Duration::from_secs(1),
        "{:?}",
        health.elapsed
    );
    let login = api.post_login(&email).await;
    assert_eq!(login.status, 503, "{}", login.text);
    assert_eq!(login.body["error"], "service_unavailable");
    assert!(login.elapsed < ACQUIRE_TIMEOUT + Duration::from_secs(1), "waited {:?}", login.elapsed);

    server.start();
    let health = eventually("/health to recover", Duration::from_secs(10), || async {
        let health = api.get("/health").await;
        assert!(matches!(health.status, 200 | 503), "{}: {}", health.status, health.text);
        (health.status == 200).then_some(health)
    })
    .await;
    assert_eq!(health.body["database"], "connected");
    let login = api.post_login(&email).await;
    assert_eq!(login.status, 200, "{}", login.text);

    assert_eq!(api.only_sandbox("HealthFunction").pid, health_pid, "the warm health sandbox recovered");
    assert_eq!(api.only_sandbox("LoginFunction").pid, login_pid, "the warm login sandbox recovered");
    let failures: Vec<_> = api
        .settled_invocations()
        .await
        .into_iter()
        .filter(|i| i.status != InvocationStatus::Success)
        .collect();
    assert!(failures.is_empty(), "every outage answer came from the function itself: {failures:?}");
}

/// The test cluster, stopped; started again on `start` or, if the test fails first, on drop, so
/// the tests that run later find it up.
struct StoppedServer {
    data_dir: PathBuf,
    started: bool,
}

impl StoppedServer {
    fn stop(data_dir: PathBuf) -> Self {
        pg_ctl(&data_dir, "stop -m fast");
        Self { data_dir, started: false }
    }

    fn start(mut self) {
        self.started = true;
        // `restart` of a stopped cluster starts it with the options it last ran with (its
        // port and socket directory), kept in postmaster.opts.
        pg_ctl(&self.data_dir, "restart -l \"$data/restart.log\"");
    }
}

impl Drop for StoppedServer {
    fn drop(&mut self) {
        if !self.started {
            pg_ctl(&self.data_dir, "restart -l \"$data/restart.log\"");
        }
    }
}

/// Runs pg_ctl through the project's helpers, as the cluster's owner.
fn pg_ctl(data_dir: &std::path::Path, arguments: &str) {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-lib.sh");
    let script =
        format!("source \"$lib\" && pg_as_owner \"$(pg_bin pg_ctl)\" -D \"$data\" -w -t 60 {arguments}");
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("lib", lib)
        .env("data", data_dir)
        .status()
        .expect("running pg_ctl");
    assert!(status.success(), "pg_ctl {arguments} failed: {status}");
}
