//! `scripts/smoke`, the operator's check of a deployed API, run against the real binaries
//! behind the emulator: it passes against a working API and fails against a broken one.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::helpers::TestApi;

fn smoke(base_url: &str) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/smoke");
    Command::new(script).arg(base_url).output().expect("running scripts/smoke")
}

#[tokio::test]
async fn the_smoke_test_passes_against_the_local_api() {
    let api = TestApi::start().await;
    let base_url = api.emulator.base_url();

    let output = tokio::task::spawn_blocking(move || smoke(&base_url)).await.unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("smoke: 17 passed, 0 failed"), "{stdout}");
}

#[tokio::test]
async fn the_smoke_test_fails_when_the_functions_cannot_sign() {
    let api = TestApi::start_with(|config| config.env_overrides.remove_for_all("JWT_PRIVATE_KEY")).await;
    let base_url = api.emulator.base_url();

    let output = tokio::task::spawn_blocking(move || smoke(&base_url)).await.unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("FAIL POST /auth/signup"), "{stdout}");
}

/// Writes one metric record (`{"<metric>": 1}` as the functions log it) into the local
/// CloudWatch Logs, in `group`, stamped a minute from now: after the smoke run that follows
/// begins.
fn log_metric(group: &str, metric: &str) {
    let script = r#"
import json, sys, time, boto3
group, metric = sys.argv[1:]
logs = boto3.client("logs")
logs.create_log_group(logGroupName=group)
logs.create_log_stream(logGroupName=group, logStreamName="s")
record = {"FunctionName": "x", metric: 1.0, "_aws": {"Timestamp": 0}}
logs.put_log_events(logGroupName=group, logStreamName="s",
                    logEvents=[{"timestamp": int(time.time() * 1000) + 60_000, "message": json.dumps(record)}])
"#;
    let status = Command::new(venv_python())
        .args(["-c", script, group, metric])
        .env("AWS_ENDPOINT_URL", test_support::moto_endpoint())
        .status()
        .expect("running python");
    assert!(status.success(), "writing the log record");
}

fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// `scripts/smoke BASE_URL --stack NAME`: the mail check, against the stack's logs.
fn smoke_with_stack(base_url: &str, stack: &str) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/smoke");
    Command::new(venv_python())
        .arg(script)
        .args([base_url, "--stack", stack])
        .env("AWS_ENDPOINT_URL", test_support::moto_endpoint())
        .output()
        .expect("running scripts/smoke")
}

#[tokio::test]
async fn with_a_stack_the_smoke_test_fails_when_ses_refused_the_mail_and_passes_when_it_took_it() {
    let api = TestApi::start().await;
    for (metric, passes) in [("MailRejected", false), ("MailSent", true)] {
        let stack = format!("smoke{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        log_metric(&format!("/aws/lambda/{stack}-mailer"), metric);
        let base_url = api.emulator.base_url();

        let output = tokio::task::spawn_blocking(move || smoke_with_stack(&base_url, &stack)).await.unwrap();

        let stdout = String::from_utf8_lossy(&output.stdout);
        let line =
            if passes { "ok   SES accepted the run's mail" } else { "FAIL SES accepted the run's mail" };
        assert_eq!(
            output.status.success(),
            passes,
            "{metric}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(line), "{metric}: {stdout}");
    }
}
