//! Refresh-token reuse detection and its grace window. Time passing is simulated by moving
//! `revoked_at` into the past, not by sleeping.

use crate::helpers::TestApp;
use sqlx::PgPool;

/// Moves every rotation back by `seconds`, as if that much time had passed since.
async fn age_rotations(app: &TestApp, seconds: i32) {
    sqlx::query("update refresh_tokens set revoked_at = revoked_at - make_interval(secs => $1) where revoked_at is not null")
        .bind(f64::from(seconds))
        .execute(&app.pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn within_the_grace_window_the_parent_returns_the_active_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let parent = app.signed_up("alice@example.com").await.refresh_token();
    let first = app.post_refresh(&parent).await;

    let again = app.post_refresh(&parent).await;

    assert_eq!(again.status, 200);
    assert_eq!(again.refresh_token(), first.refresh_token());
    let me = app.get_me(&again.access_token()).await;
    assert_eq!(me.status, 200, "the access token that comes with it is valid: {:?}", me.body);
    assert_eq!(me.body["email"], "alice@example.com");
    assert_eq!(app.count("select count(*) from refresh_tokens where revoked_at is null").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replay_after_the_window_revokes_the_session_and_its_active_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    let parent = signup.refresh_token();
    let active = app.post_refresh(&parent).await.refresh_token();
    age_rotations(&app, 11).await;

    let replay = app.post_refresh(&parent).await;

    assert_eq!((replay.status, replay.error_code()), (401, "refresh_token_reused"));
    let after = app.post_refresh(&active).await;
    assert_eq!(after.status, 401, "the thief and the owner cannot both keep going");
    assert_eq!(app.get_me(&signup.access_token()).await.status, 401, "the session is revoked");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_older_ancestor_is_reuse_even_inside_the_window(pool: PgPool) {
    let app = TestApp::new(pool);
    let grandparent = app.signed_up("alice@example.com").await.refresh_token();
    let parent = app.post_refresh(&grandparent).await.refresh_token();
    let active = app.post_refresh(&parent).await.refresh_token();

    let replay = app.post_refresh(&grandparent).await;

    assert_eq!((replay.status, replay.error_code()), (401, "refresh_token_reused"));
    assert_eq!(app.post_refresh(&active).await.status, 401);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_token_of_a_logged_out_session_is_invalid_not_reuse(pool: PgPool) {
    let app = TestApp::new(pool);
    let token = app.signed_up("alice@example.com").await.refresh_token();
    assert_eq!(app.post_logout(&token).await.status, 204);

    let response = app.post_refresh(&token).await;

    assert_eq!((response.status, response.error_code()), (401, "invalid_refresh_token"));
}
