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

/// One client (127.0.0.1) trying one password against many addresses, as a credential-stuffing
/// run does: the source address's count refuses it once full, whatever the emails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_trying_a_password_against_four_hundred_emails_is_refused_after_its_limit() {
    let limit = shared::config::DEFAULT_LOGIN_SOURCE_FAILURE_LIMIT as usize;
    let api = TestApi::start_with(|config| config.max_sandboxes_per_function = 2).await;
    let client: std::net::IpAddr = "127.0.0.1".parse().unwrap();

    let mut statuses = Vec::new();
    for n in 0..2 * limit {
        let body = json!({ "email": format!("stuffed-{n}@example.com"), "password": "Summer2026!" });
        statuses.push(api.post_json_from(client, "/auth/login", &body).await.status);
    }
    let elsewhere = api
        .post_json_from(
            "127.0.0.2".parse().unwrap(),
            "/auth/login",
            &json!({ "email": email(), "password": "x" }),
        )
        .await;

    assert!(statuses[..limit].iter().all(|&s| s == 401), "{:?}", &statuses[..limit]);
    assert!(statuses[limit..].iter().all(|&s| s == 429), "{:?}", &statuses[limit..]);
    assert_eq!(elsewhere.status, 401, "another address keeps its own count");
}

/// An attacker at one address keeps failing at the owner's email; the owner, at another, gets
/// in: the backoff holds the attacker's (email, address) alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_gets_in_from_another_address_while_an_attacker_hammers_the_email() {
    let api = TestApi::start().await;
    let owner = email();
    assert_eq!(api.post_signup(&owner).await.status, 201);
    let attacker: std::net::IpAddr = "127.0.0.3".parse().unwrap();

    let mut statuses = Vec::new();
    for n in 0..10 {
        let body = json!({ "email": owner, "password": format!("guess number {n}") });
        statuses.push(api.post_json_from(attacker, "/auth/login", &body).await.status);
    }
    let body = json!({ "email": owner, "password": crate::helpers::PASSWORD });
    let signed_in = api.post_json_from("127.0.0.4".parse().unwrap(), "/auth/login", &body).await;

    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|&s| s == 429), "{statuses:?}");
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
}
