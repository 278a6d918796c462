//! Login throttling under real concurrency: many warm sandboxes of the real login binary
//! guessing one email's password at once.

use std::time::Instant;

use crate::helpers::{TestApi, email};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_wrong_logins_for_one_email_get_at_most_five_401s_and_the_rest_429() {
    let api = TestApi::start_with(|config| config.max_sandboxes_per_function = 4).await;
    let victim = email();
    assert_eq!(api.post_signup(&victim).await.status, 201);
    // Start the sandboxes first (with another email), so the burst below meets them warm.
    let warm_up = (0..8).map(|_| {
        let body = json!({ "email": "warm-up@example.com", "password": "not the password" });
        let api = &api;
        async move { api.post_json("/auth/login", &body).await }
    });
    futures_util::future::join_all(warm_up).await;
    let sandboxes = api.emulator.sandboxes("LoginFunction").unwrap().len();
    assert!(sandboxes > 1, "several sandboxes serve the burst: {sandboxes}");

    let started = Instant::now();
    let guesses = (0..50).map(|n| {
        let body = json!({ "email": victim, "password": format!("guess number {n}") });
        let api = &api;
        async move { api.post_json("/auth/login", &body).await }
    });
    let responses = futures_util::future::join_all(guesses).await;
    let elapsed = started.elapsed();

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    let verified = statuses.iter().filter(|&&s| s == 401).count();
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    assert!(verified <= 5, "{verified} guesses were checked in {elapsed:?}: {statuses:?}");
    assert_eq!(verified + throttled, 50, "{statuses:?}");
    assert!(responses.iter().filter(|r| r.status == 429).all(|r| r.header("retry-after").is_some()));
}
