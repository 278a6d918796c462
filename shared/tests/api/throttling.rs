//! Login throttling: after 5 consecutive failures an email waits 1 s, doubling per failure up
//! to 15 minutes, whether or not an account has it. Waiting is simulated by moving
//! `last_failed_at` into the past.

use std::sync::Arc;

use crate::helpers::{PASSWORD, SOURCE_IP, TestApp};
use serde_json::json;
use sqlx::PgPool;

async fn fail_logins(app: &TestApp, email: &str, times: usize) {
    for _ in 0..times {
        let response = app.post_login(email, "not the password").await;
        assert_eq!(response.status, 401);
    }
}

async fn set_failures(app: &TestApp, email: &str, count: i32) {
    sqlx::query(
        "insert into login_attempts (email, source, failed_count) values ($1, $3, $2)
         on conflict (email, source) do update set failed_count = $2, last_failed_at = now()",
    )
    .bind(email)
    .bind(count)
    .bind(SOURCE_IP)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn the_sixth_attempt_after_five_failures_is_429_even_with_the_right_password(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    fail_logins(&app, "alice@example.com", 5).await;

    let response = app.post_login("alice@example.com", PASSWORD).await;

    assert_eq!((response.status, response.error_code()), (429, "too_many_attempts"));
    assert_eq!(response.header("retry-after"), Some("1"));
    let counted = "select failed_count::int8 from login_attempts where email = 'alice@example.com'";
    assert_eq!(app.count(counted).await, 5, "a throttled attempt is not verified nor counted");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_email_without_an_account_is_throttled_the_same_way(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    fail_logins(&app, "alice@example.com", 5).await;
    fail_logins(&app, "nobody@example.com", 5).await;

    let known = app.post_login("alice@example.com", "guess").await;
    let unknown = app.post_login("nobody@example.com", "guess").await;

    assert_eq!(known.status, 429);
    assert_eq!((known.body.clone(), known.headers.clone()), (unknown.body, unknown.headers));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_wait_doubles_per_failure_up_to_fifteen_minutes(pool: PgPool) {
    let app = TestApp::new(pool);
    for (failures, wait) in [(6, "2"), (8, "8"), (14, "512"), (15, "900"), (40, "900")] {
        set_failures(&app, "alice@example.com", failures).await;

        let response = app.post_login("alice@example.com", PASSWORD).await;

        assert_eq!(
            (response.status, response.header("retry-after")),
            (429, Some(wait)),
            "{failures} failures"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn once_the_wait_is_over_a_success_clears_the_count(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    fail_logins(&app, "alice@example.com", 5).await;
    sqlx::query("update login_attempts set last_failed_at = now() - interval '2 seconds'")
        .execute(&app.pool)
        .await
        .unwrap();

    let response = app.post_login("alice@example.com", PASSWORD).await;

    assert_eq!(response.status, 200);
    assert_eq!(app.count("select count(*) from login_attempts").await, 0);
}

async fn seed_attempts(app: &TestApp, email: &str, count: i32, quiet_for: &str) {
    sqlx::query(
        "insert into login_attempts (email, failed_count, last_failed_at, source)
         values ($1, $2, now() - $3::interval, $4)
         on conflict (email, source) do update set failed_count = $2, last_failed_at = now() - $3::interval",
    )
    .bind(email)
    .bind(count)
    .bind(quiet_for)
    .bind(SOURCE_IP)
    .execute(&app.pool)
    .await
    .unwrap();
}

async fn failed_count(app: &TestApp, email: &str) -> i64 {
    sqlx::query_scalar("select coalesce(max(failed_count), 0)::int8 from login_attempts where email = $1")
        .bind(email)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn fifty_concurrent_wrong_logins_for_one_email_let_at_most_five_through(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;

    let attempts = (0..50).map(|_| app.post_login("alice@example.com", "not the password"));
    let responses = futures_util::future::join_all(attempts).await;

    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    let unauthorized = statuses.iter().filter(|&&s| s == 401).count();
    assert!(unauthorized <= 5, "{unauthorized} guesses were verified: {statuses:?}");
    assert!(statuses.iter().all(|&s| s == 401 || s == 429), "{statuses:?}");
    assert_eq!(failed_count(&app, "alice@example.com").await, unauthorized as i64);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_count_at_the_integer_limit_neither_errors_nor_locks_the_right_password_out(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    // The wait is capped at 15 minutes: 16 minutes after the last failure it is over.
    seed_attempts(&app, "alice@example.com", i32::MAX, "16 minutes").await;

    let wrong = app.post_login("alice@example.com", "not the password").await;
    let throttled = app.post_login("alice@example.com", PASSWORD).await;
    seed_attempts(&app, "alice@example.com", i32::MAX, "16 minutes").await;
    let right = app.post_login("alice@example.com", PASSWORD).await;

    assert_eq!((wrong.status, wrong.error_code()), (401, "invalid_credentials"), "{:?}", wrong.body);
    assert_eq!(failed_count(&app, "alice@example.com").await, 0, "cleared by the success");
    assert_eq!(
        (throttled.status, throttled.header("retry-after")),
        (429, Some("900")),
        "{:?}",
        throttled.body
    );
    assert_eq!(right.status, 200, "{:?}", right.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn every_count_up_to_the_integer_limit_answers_401_or_429_never_500(pool: PgPool) {
    let app = TestApp::new(pool);
    for count in [1_028, 1_029, 1_030, 100_000, i32::MAX - 1, i32::MAX] {
        set_failures(&app, "alice@example.com", count).await;

        let response = app.post_login("alice@example.com", "not the password").await;

        assert_eq!(
            (response.status, response.header("retry-after")),
            (429, Some("900")),
            "{count} failures: {:?}",
            response.body
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_count_quiet_for_a_day_starts_again_from_zero(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    seed_attempts(&app, "alice@example.com", 40, "24 hours 1 minute").await;

    fail_logins(&app, "alice@example.com", 2).await;

    assert_eq!(failed_count(&app, "alice@example.com").await, 2);
    assert_eq!(app.post_login("alice@example.com", PASSWORD).await.status, 200);
}

/// The handlers with `limit` failed logins per source address in 10 minutes.
fn with_source_limit(pool: PgPool, limit: u32) -> TestApp {
    let mut app = TestApp::new(pool);
    Arc::get_mut(&mut app.app).expect("a fresh app").login_source_limit = limit;
    app
}

#[sqlx::test(migrations = "../migrations")]
async fn one_source_trying_a_password_against_many_emails_is_refused_at_its_limit(pool: PgPool) {
    let app = with_source_limit(pool, 10);

    let mut statuses = Vec::new();
    for n in 0..15 {
        let response = app
            .post_login_from("198.51.100.7", &format!("user{n}@example.com"), "one guess", json!({}))
            .await;
        statuses.push((response.status, response.header("retry-after").map(str::to_owned)));
    }
    let other = app.post_login_from("198.51.100.8", "user0@example.com", "one guess", json!({})).await;

    assert!(statuses[..10].iter().all(|(status, _)| *status == 401), "{statuses:?}");
    for (status, retry_after) in &statuses[10..] {
        let seconds: u64 = retry_after.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(*status == 429 && (590..=600).contains(&seconds), "{statuses:?}");
    }
    assert_eq!(other.status, 401, "another address is not held by this one's count");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_owner_gets_in_from_another_address_while_an_attacker_hammers_the_email(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;

    let mut attacker = Vec::new();
    for n in 0..12 {
        // A header names another client each time: the address is the front door's, not the header's.
        let forwarded = json!({ "x-forwarded-for": format!("203.0.113.{n}") });
        attacker.push(
            app.post_login_from("198.51.100.7", "alice@example.com", "a guess", forwarded).await.status,
        );
    }
    let owner = app.post_login_from("192.0.2.44", "alice@example.com", PASSWORD, json!({})).await;

    assert_eq!(attacker[..5], [401; 5], "{attacker:?}");
    assert!(attacker[5..].iter().all(|&status| status == 429), "{attacker:?}");
    assert_eq!(owner.status, 200, "{:?}", owner.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn addresses_of_one_ipv6_64_share_a_backoff(pool: PgPool) {
    let app = TestApp::new(pool);
    for n in 1..=5 {
        let ip = format!("2001:db8:aa:bb::{n}");
        assert_eq!(app.post_login_from(&ip, "alice@example.com", "a guess", json!({})).await.status, 401);
    }

    let same_64 =
        app.post_login_from("2001:db8:aa:bb:ffff::9", "alice@example.com", "a guess", json!({})).await;
    let next_64 = app.post_login_from("2001:db8:aa:bc::1", "alice@example.com", "a guess", json!({})).await;

    assert_eq!(same_64.status, 429);
    assert_eq!(next_64.status, 401);
}

#[sqlx::test(migrations = "../migrations")]
async fn many_sources_at_once_meet_the_emails_ceiling(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    app.set_email_failures("alice@example.com", shared::accounts::store::EMAIL_CEILING - 1, 10).await;

    let last_allowed = app.post_login_from("198.51.100.1", "alice@example.com", "a guess", json!({})).await;
    let over = app.post_login_from("198.51.100.2", "alice@example.com", PASSWORD, json!({})).await;

    assert_eq!(last_allowed.status, 401);
    let seconds: u64 = over.header("retry-after").and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(over.status == 429 && (2990..=3000).contains(&seconds), "{:?} {seconds}", over.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_success_takes_its_attempt_back_from_the_source_and_email_counts(pool: PgPool) {
    let app = with_source_limit(pool, 3);
    app.signed_up("alice@example.com").await;

    for _ in 0..10 {
        assert_eq!(
            app.post_login_from("198.51.100.7", "alice@example.com", PASSWORD, json!({})).await.status,
            200
        );
    }

    let counted: i64 =
        app.count("select coalesce(sum(failed_count), 0)::int8 from login_failure_windows").await;
    assert_eq!(counted, 0, "ten successes from one address, nothing counted against it");
}

#[sqlx::test(migrations = "../migrations")]
async fn attempts_the_emails_ceiling_refuses_leave_the_owners_own_backoff_alone(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    app.set_email_failures("alice@example.com", 100_000, 0).await;

    for _ in 0..10 {
        assert_eq!(app.post_login("alice@example.com", PASSWORD).await.status, 429);
    }

    assert_eq!(failed_count(&app, "alice@example.com").await, 0, "the owner's backoff did not move");
}

#[sqlx::test(migrations = "../migrations")]
async fn rounds_of_five_concurrent_right_logins_from_one_address_all_get_in(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;

    // Five at once: each is counted until it succeeds, and the backoff admits five.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let logins = (0..5).map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.post_login("alice@example.com", PASSWORD).await.status })
        });
        statuses
            .extend(futures_util::future::join_all(logins).await.into_iter().map(|s| s.expect("no panic")));
    }

    assert!(statuses.iter().all(|&status| status == 200), "no deadlock, no 429: {statuses:?}");
    let counted: i64 =
        app.count("select coalesce(sum(failed_count), 0)::int8 from login_failure_windows").await;
    assert_eq!(counted, 0, "every success took its count back");
}

/// Behind CloudFront: every request comes from one edge address; CloudFront adds the origin
/// secret and the viewer's address.
const EDGE: &str = "130.176.0.1";
const ORIGIN_SECRET: &str = "an origin secret CloudFront sends, 32+ characters";

#[sqlx::test(migrations = "../migrations")]
async fn behind_cloudfront_each_viewer_is_counted_and_a_request_around_it_is_refused(pool: PgPool) {
    let mut app = with_source_limit(pool, 3);
    Arc::get_mut(&mut app.app).expect("a fresh app").origin_secrets = vec![ORIGIN_SECRET.to_owned().into()];
    let through_cloudfront = |viewer: &str| json!({ "x-origin-verify": ORIGIN_SECRET, "cloudfront-viewer-address": format!("{viewer}:46532") });

    // One viewer reaches its limit; another viewer through the same edge is not held by it.
    let mut first = Vec::new();
    for n in 0..4 {
        let email = format!("user{n}@example.com");
        first.push(
            app.post_login_from(EDGE, &email, "a guess", through_cloudfront("198.51.100.7")).await.status,
        );
    }
    let second =
        app.post_login_from(EDGE, "user0@example.com", "a guess", through_cloudfront("2001:db8::7")).await;
    // A client calling the API directly, naming a viewer of its own: refused, and counted nowhere.
    let mut direct = Vec::new();
    for secret in ["a wrong secret", ""] {
        let forged = json!({ "x-origin-verify": secret, "cloudfront-viewer-address": "192.0.2.99:1234" });
        let response = app.post_login_from("192.0.2.99", "user0@example.com", "a guess", forged).await;
        direct.push((response.status, response.body["error"].clone()));
    }
    let unheaded = app.post_login_from("192.0.2.99", "user0@example.com", "a guess", json!({})).await;
    let genuine_viewer =
        app.post_login_from(EDGE, "user1@example.com", "a guess", through_cloudfront("192.0.2.99")).await;

    assert_eq!(first, [401, 401, 401, 429], "the first viewer's own limit");
    assert_eq!(second.status, 401, "another viewer behind the same edge");
    assert_eq!(direct, [(403, json!("origin_required")), (403, json!("origin_required"))]);
    assert_eq!((unheaded.status, &unheaded.body["error"]), (403, &json!("origin_required")));
    assert_eq!(
        genuine_viewer.status, 401,
        "the refused requests were never charged to the viewer they named"
    );
}
