//! The absolute session lifetime: a session ends `SESSION_MAX_LIFETIME_SECONDS` after its
//! creation however often it is refreshed. Age is simulated by moving `created_at` into the past.

use crate::helpers::TestApp;
use sqlx::PgPool;

async fn age_sessions(app: &TestApp, by: &str) {
    sqlx::query("update sessions set created_at = created_at - $1::interval")
        .bind(by)
        .execute(&app.pool)
        .await
        .unwrap();
}

/// Seconds from now until the session's one usable refresh token expires, and until the
/// session itself ends (the default 90 days).
async fn token_and_session_end(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "select extract(epoch from t.expires_at - now())::int8,
                extract(epoch from s.created_at + interval '90 days' - now())::int8
         from refresh_tokens as t join sessions as s on s.id = t.session_id
         where t.revoked_at is null",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refresh_past_the_default_ninety_days_is_invalid(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    age_sessions(&app, "90 days 1 minute").await;

    let response = app.post_refresh(&signup.refresh_token()).await;

    assert_eq!(
        (response.status, response.error_code()),
        (401, "invalid_refresh_token"),
        "{:?}",
        response.body
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_session_refreshed_within_every_token_lifetime_still_ends_at_its_lifetime(pool: PgPool) {
    let app = TestApp::new(pool);
    let mut refresh = app.signed_up("alice@example.com").await.refresh_token();
    for _ in 0..3 {
        age_sessions(&app, "29 days").await;
        let response = app.post_refresh(&refresh).await;
        assert_eq!(response.status, 200, "{:?}", response.body);
        refresh = response.refresh_token();
    }

    age_sessions(&app, "3 days 1 minute").await;
    let response = app.post_refresh(&refresh).await;

    assert_eq!(
        (response.status, response.error_code()),
        (401, "invalid_refresh_token"),
        "{:?}",
        response.body
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refresh_token_never_outlives_its_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.signed_up("alice@example.com").await.refresh_token();
    let (first_token, first_session) = token_and_session_end(&app).await;
    age_sessions(&app, "89 days").await;

    let rotated = app.post_refresh(&first).await;
    let (successor_token, successor_session) = token_and_session_end(&app).await;

    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    assert!(first_token <= first_session, "first token {first_token} s, session {first_session} s");
    assert!(
        successor_token <= successor_session && successor_session <= 24 * 3600,
        "successor {successor_token} s, session {successor_session} s"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn me_refuses_an_access_token_of_an_ended_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    assert_eq!(app.get_me(&signup.access_token()).await.status, 200);
    age_sessions(&app, "90 days 1 minute").await;

    let response = app.get_me(&signup.access_token()).await;

    assert_eq!((response.status, response.error_code()), (401, "invalid_token"), "{:?}", response.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_grace_window_hands_out_no_successor_once_the_session_ended(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.signed_up("alice@example.com").await.refresh_token();
    let rotated = app.post_refresh(&first).await;
    assert_eq!(rotated.status, 200);
    age_sessions(&app, "90 days 1 minute").await;

    let replayed = app.post_refresh(&first).await;

    assert_eq!(replayed.status, 401, "{:?}", replayed.body);
}
