//! Signup, login and refresh are atomic: when a later write fails, nothing of the earlier ones
//! remains. A test-only trigger makes the refresh-token insert (the last write of each) fail.

use crate::helpers::{PASSWORD, TestApp};
use sqlx::PgPool;

async fn break_refresh_token_inserts(pool: &PgPool) {
    sqlx::raw_sql(
        "create function fail_injected() returns trigger language plpgsql as \
         $$ begin raise exception 'injected failure'; end $$; \
         create trigger fail_refresh_token_insert before insert on refresh_tokens \
         for each row execute function fail_injected();",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn repair_refresh_token_inserts(pool: &PgPool) {
    sqlx::raw_sql("drop trigger fail_refresh_token_insert on refresh_tokens").execute(pool).await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failed_signup_leaves_no_user_and_no_session(pool: PgPool) {
    let app = TestApp::new(pool);
    break_refresh_token_inserts(&app.pool).await;

    let response = app.post_signup("alice@example.com", PASSWORD).await;

    assert_eq!((response.status, response.error_code()), (500, "internal_error"));
    assert!(!response.body.to_string().contains("injected"), "no internals leak");
    assert_eq!(app.count("select count(*) from users").await, 0);
    assert_eq!(app.count("select count(*) from sessions").await, 0);
    repair_refresh_token_inserts(&app.pool).await;
    assert_eq!(app.post_signup("alice@example.com", PASSWORD).await.status, 201, "the email is still free");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failed_login_leaves_no_session_and_keeps_the_failure_count(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    app.post_login("alice@example.com", "a wrong password").await;
    break_refresh_token_inserts(&app.pool).await;

    let response = app.post_login("alice@example.com", PASSWORD).await;

    assert_eq!(response.status, 500);
    assert_eq!(app.count("select count(*) from sessions").await, 1, "only signup's session");
    assert_eq!(app.count("select count(*) from login_attempts").await, 1, "the reset was rolled back");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failed_refresh_leaves_the_presented_token_usable(pool: PgPool) {
    let app = TestApp::new(pool);
    let token = app.signed_up("alice@example.com").await.refresh_token();
    break_refresh_token_inserts(&app.pool).await;

    let failed = app.post_refresh(&token).await;

    assert_eq!(failed.status, 500);
    assert_eq!(app.count("select count(*) from refresh_tokens where revoked_at is null").await, 1);
    repair_refresh_token_inserts(&app.pool).await;
    assert_eq!(app.post_refresh(&token).await.status, 200, "the token was not revoked");
}
