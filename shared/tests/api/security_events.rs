//! Security events (issue 25, first part): written by the statement that makes the change, so a
//! change and its record are one; append-only for the API's role (tests/e2e/migrate.rs).

use crate::helpers::{PASSWORD, TestApp};
use sqlx::PgPool;

/// The user's events, oldest first: (type, session, ip, user agent).
async fn events(
    app: &TestApp,
    email: &str,
) -> Vec<(String, Option<uuid::Uuid>, Option<String>, Option<String>)> {
    sqlx::query_as(
        "select e.type, e.session_id, host(e.ip), e.user_agent from security_events as e
         join users as u on u.id = e.user_id where u.email = $1 order by e.at, e.id",
    )
    .bind(email)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_signup_and_a_login_each_write_one_event_of_their_session_and_device(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    let login = app.post_login("alice@example.com", PASSWORD).await;

    let written = events(&app, "alice@example.com").await;

    let signup_session = app.claims(&signup.access_token()).await.sid;
    let login_session = app.claims(&login.access_token()).await.sid;
    let source = Some(crate::helpers::SOURCE_IP.to_owned());
    // The test requests send no User-Agent header.
    let agent = None;
    assert_eq!(
        written,
        [
            ("signup".to_owned(), Some(signup_session), source.clone(), agent.clone()),
            ("login_succeeded".to_owned(), Some(login_session), source, agent),
        ]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refused_signup_or_login_writes_no_event(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("bob@example.com").await;

    let again = app.post_signup("bob@example.com", PASSWORD).await;
    let wrong = app.post_login("bob@example.com", "not the password at all").await;

    assert_eq!((again.status, wrong.status), (409, 401));
    assert_eq!(events(&app, "bob@example.com").await.len(), 1, "the first signup's only");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reused_refresh_token_records_one_event_however_many_replay_it(pool: PgPool) {
    // No grace window: every replay of a rotated token is reuse.
    let app = TestApp::with_reuse_grace(pool, std::time::Duration::ZERO);
    let signup = app.signed_up("carol@example.com").await;
    let rotated = app.post_refresh(&signup.refresh_token()).await;
    assert_eq!(rotated.status, 200);

    let statuses = crate::helpers::at_once(&app, 20, |app, _| {
        let token = signup.refresh_token();
        async move { app.post_refresh(&token).await.status }
    })
    .await;

    assert!(statuses.iter().all(|&status| status == 401), "{statuses:?}");
    let reused: Vec<_> = events(&app, "carol@example.com")
        .await
        .into_iter()
        .filter(|event| event.0 == "refresh_reused")
        .collect();
    let session = app.claims(&signup.access_token()).await.sid;
    assert_eq!(reused.len(), 1, "{reused:?}");
    assert_eq!(reused[0].1, Some(session), "the revoked session's");
}

/// The user's events of `kind`, with their details.
async fn details(app: &TestApp, email: &str, kind: &str) -> Vec<serde_json::Value> {
    sqlx::query_scalar(
        "select e.detail from security_events as e join users as u on u.id = e.user_id
         where u.email = $1 and e.type = $2 order by e.at, e.id",
    )
    .bind(email)
    .bind(kind)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn each_logout_that_ends_sessions_records_its_scope_and_count_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = "dave@example.com";
    app.signed_up(email).await;
    let second = app.post_login(email, PASSWORD).await;
    let third = app.post_login(email, PASSWORD).await;

    assert_eq!(app.post_logout(&third.refresh_token()).await.status, 204);
    assert_eq!(app.post_logout(&third.refresh_token()).await.status, 204, "twice is no error");
    let body = serde_json::json!({ "refresh_token": second.refresh_token(), "scope": "global" });
    assert_eq!(app.post_json(crate::helpers::Endpoint::Logout, &body).await.status, 204);

    assert_eq!(
        details(&app, email, "logout").await,
        [
            serde_json::json!({ "scope": "local", "sessions": 1 }),
            serde_json::json!({ "scope": "global", "sessions": 2 })
        ],
        "the second local logout ended nothing and recorded nothing"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn revoking_one_of_ones_sessions_records_which_by_which(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = "erin@example.com";
    let signup = app.signed_up(email).await;
    let other = app.post_login(email, PASSWORD).await;
    let other_session = app.claims(&other.access_token()).await.sid;
    let path = format!("/auth/sessions/{other_session}");

    let request = crate::helpers::bearer_json("DELETE", &path, &signup.access_token(), None);
    assert_eq!(app.send(crate::helpers::Endpoint::RevokeSession, request).await.status, 204);
    let again = crate::helpers::bearer_json("DELETE", &path, &signup.access_token(), None);
    assert_eq!(app.send(crate::helpers::Endpoint::RevokeSession, again).await.status, 404);

    assert_eq!(
        details(&app, email, "session_revoked").await,
        [serde_json::json!({ "revoked_session": other_session })]
    );
    let by: Vec<Option<uuid::Uuid>> = events(&app, email)
        .await
        .into_iter()
        .filter(|event| event.0 == "session_revoked")
        .map(|event| event.1)
        .collect();
    let own = app.claims(&signup.access_token()).await.sid;
    assert_eq!(by, [Some(own)], "the event is the acting session's");
}
