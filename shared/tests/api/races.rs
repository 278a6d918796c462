//! Concurrent requests with exact expectations: the database decides, never a read-then-write.

use crate::helpers::{PASSWORD, TestApp};
use futures_util::future::join_all;
use sqlx::PgPool;

const CONCURRENCY: usize = 20;

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_signups_with_one_email_create_exactly_one_user(pool: PgPool) {
    let app = TestApp::new(pool);

    let responses = join_all((0..CONCURRENCY).map(|_| {
        let app = app.clone();
        tokio::spawn(async move { app.post_signup("race@example.com", PASSWORD).await })
    }))
    .await;

    let statuses: Vec<u16> = responses.into_iter().map(|r| r.unwrap().status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), CONCURRENCY - 1, "{statuses:?}");
    assert_eq!(app.count("select count(*) from users").await, 1);
    assert_eq!(app.count("select count(*) from sessions").await, 1);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 1);
}

async fn refresh_concurrently(app: &TestApp, token: &str) -> Vec<crate::helpers::Response> {
    let responses = join_all((0..CONCURRENCY).map(|_| {
        let (app, token) = (app.clone(), token.to_owned());
        tokio::spawn(async move { app.post_refresh(&token).await })
    }))
    .await;
    responses.into_iter().map(Result::unwrap).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_refreshes_all_get_the_same_successor_and_leave_one_active_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let token = app.signed_up("race@example.com").await.refresh_token();

    let responses = refresh_concurrently(&app, &token).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let successor = responses[0].refresh_token();
    assert!(responses.iter().all(|r| r.refresh_token() == successor), "one identical successor");
    assert_eq!(app.count("select count(*) from refresh_tokens where revoked_at is null").await, 1);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 2, "the original and one successor");
    assert_eq!(app.post_refresh(&successor).await.status, 200, "the successor works");
}

#[sqlx::test(migrations = "../migrations")]
async fn with_no_grace_window_exactly_one_of_twenty_concurrent_refreshes_succeeds(pool: PgPool) {
    let app = TestApp::with_reuse_grace(pool, std::time::Duration::ZERO);
    let token = app.signed_up("race@example.com").await.refresh_token();

    let responses = refresh_concurrently(&app, &token).await;

    let winners: Vec<_> = responses.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(
        responses
            .iter()
            .filter(|r| r.status != 200)
            .all(|r| r.status == 401 && r.error_code() == "refresh_token_reused"),
        "the others are reuse"
    );
    assert_eq!(app.post_refresh(&winners[0].refresh_token()).await.status, 401, "reuse revoked the session");
    assert_eq!(app.count("select count(*) from refresh_tokens where revoked_at is null").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refresh_racing_a_logout_never_leaves_a_usable_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let token = app.signed_up("race@example.com").await.refresh_token();

    let (refreshed, logged_out) = tokio::join!(app.post_refresh(&token), app.post_logout(&token));

    assert_eq!(logged_out.status, 204);
    if refreshed.status == 200 {
        let again = app.post_refresh(&refreshed.refresh_token()).await;
        assert_eq!(again.status, 401, "the session was logged out");
    } else {
        assert_eq!(refreshed.status, 401);
    }
    assert_eq!(app.count("select count(*) from sessions where revoked_at is null").await, 0);
}
