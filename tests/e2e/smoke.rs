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
