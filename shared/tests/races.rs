//! Concurrent requests with exact expectations: the database decides, never a read-then-write.

mod common;

use common::{PASSWORD, TestApp};
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

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_refreshes_of_one_token_leave_exactly_one_active_successor(pool: PgPool) {
    let app = TestApp::new(pool);
    let token = app.signed_up("race@example.com").await.refresh_token();

    let responses = join_all((0..CONCURRENCY).map(|_| {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { app.post_refresh(&token).await })
    }))
    .await;

    let responses: Vec<_> = responses.into_iter().map(Result::unwrap).collect();
    let winners: Vec<_> = responses.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(responses.iter().all(|r| r.status == 200 || r.status == 401), "no 5xx");
    assert_eq!(app.count("select count(*) from refresh_tokens where revoked_at is null").await, 1);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 2, "the original and one successor");
    assert_eq!(app.post_refresh(&winners[0].refresh_token()).await.status, 200, "the successor works");
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
