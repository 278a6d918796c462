//! Login throttling: after 5 consecutive failures an email waits 1 s, doubling per failure up
//! to 15 minutes, whether or not an account has it. Waiting is simulated by moving
//! `last_failed_at` into the past.

mod common;

use common::{PASSWORD, TestApp};
use sqlx::PgPool;

async fn fail_logins(app: &TestApp, email: &str, times: usize) {
    for _ in 0..times {
        let response = app.post_login(email, "not the password").await;
        assert_eq!(response.status, 401);
    }
}

async fn set_failures(app: &TestApp, email: &str, count: i32) {
    sqlx::query(
        "insert into login_attempts (email, failed_count) values ($1, $2)
         on conflict (email) do update set failed_count = $2, last_failed_at = now()",
    )
    .bind(email)
    .bind(count)
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
