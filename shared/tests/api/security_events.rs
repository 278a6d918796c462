//! Security events (issue 25, first part): written by the statement that makes the change, so a
//! change and its record are one; append-only for the API's role (tests/e2e/migrate.rs).

use crate::helpers::{PASSWORD, TestApp};
use serde_json::json;
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
async fn a_wrong_password_is_recorded_for_an_account_and_an_unknown_address_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("bob@example.com").await;

    let again = app.post_signup("bob@example.com", PASSWORD).await;
    let wrong = app.post_login("bob@example.com", "not the password at all").await;
    let unknown = app.post_login("nobody@example.com", "not the password at all").await;

    assert_eq!((again.status, wrong.status, unknown.status), (409, 401, 401));
    assert_eq!(app.event_types("bob@example.com").await, ["signup", "login_failed"], "nothing for the 409");
    assert_eq!(
        details(&app, "bob@example.com", "login_failed").await,
        [json!({ "reason": "wrong_password" })]
    );
    assert_eq!(app.count("select count(*) from security_events").await, 2, "nothing of the unknown address");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_throttled_account_records_login_throttled_once_a_minute(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("tess@example.com").await;

    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(app.post_login("tess@example.com", "not the password at all").await.status);
        statuses.push(app.post_login("ghost@example.com", "not the password at all").await.status);
    }

    let throttled = statuses.iter().filter(|&&status| status == 429).count();
    assert!(throttled >= 4, "the backoff held some back: {statuses:?}");
    let kinds = app.event_types("tess@example.com").await;
    assert_eq!(kinds.iter().filter(|kind| *kind == "login_throttled").count(), 1, "{kinds:?}");
    let failed = kinds.iter().filter(|kind| *kind == "login_failed").count();
    let tess_refused = statuses.iter().step_by(2).filter(|&&status| status == 401).count();
    assert_eq!(failed, tess_refused, "one login_failed per wrong password checked");
    let strangers: i64 =
        app.count("select count(*) from security_events where user_id not in (select id from users)").await;
    assert_eq!(strangers, 0, "an address without an account is never stored");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_signup_pending_verification_records_signup_without_a_session(pool: PgPool) {
    let app = TestApp::with_mail(pool, |app| app.require_verified_email = true).await;
    let email = crate::helpers::address("pending");

    assert_eq!(app.post_signup(&email, PASSWORD).await.status, 202);
    assert_eq!(app.post_signup(&email, PASSWORD).await.status, 202, "the same answer, no event");

    let written = events(&app, &email).await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!((written[0].0.as_str(), written[0].1), ("signup", None));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_change_whose_event_cannot_be_written_does_not_happen(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("fay@example.com").await;
    let hash_before: String =
        sqlx::query_scalar("select password_hash from users").fetch_one(&app.pool).await.unwrap();
    sqlx::raw_sql(
        "create function fail_injected() returns trigger language plpgsql as \
         $$ begin raise exception 'injected failure'; end $$; \
         create trigger fail_event_insert before insert on security_events \
         for each row execute function fail_injected();",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let body = json!({ "current_password": PASSWORD, "new_password": "violet tractor umbrella sunrise" });
    let request =
        crate::helpers::bearer_json("POST", "/auth/password/change", &signup.access_token(), Some(&body));
    let changed = app.send(crate::helpers::Endpoint::ChangePassword, request).await;
    let login = app.post_login("fay@example.com", PASSWORD).await;
    let other = app.post_signup("gus@example.com", PASSWORD).await;

    assert_eq!((changed.status, login.status, other.status), (500, 500, 500));
    let hash_after: String =
        sqlx::query_scalar("select password_hash from users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(hash_after, hash_before, "the password did not change");
    assert_eq!(app.count("select count(*) from sessions").await, 1, "the login opened no session");
    assert_eq!(app.count("select count(*) from users").await, 1, "the signup made no user");
    sqlx::raw_sql("drop trigger fail_event_insert on security_events").execute(&app.pool).await.unwrap();
    assert_eq!(app.post_login("fay@example.com", PASSWORD).await.status, 200, "the old password still works");
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

/// Every page of the caller's events, `limit` at a time: the events' ids in the order read, and
/// the pages' sizes.
async fn every_page(app: &TestApp, token: &str, limit: usize) -> (Vec<String>, Vec<usize>) {
    let (mut ids, mut sizes) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("limit={limit}&cursor={cursor}"),
            None => format!("limit={limit}"),
        };
        let page = app.security_events(token, &query).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let events = page.body["events"].as_array().unwrap();
        sizes.push(events.len());
        ids.extend(events.iter().map(|event| event["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (ids, sizes),
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_user_reads_their_own_events_newest_first_a_page_at_a_time(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("hal@example.com").await;
    for _ in 0..5 {
        app.post_login("hal@example.com", PASSWORD).await;
    }
    app.post_login("hal@example.com", "not the password at all").await;
    app.signed_up("ida@example.com").await;
    let token = signup.access_token();

    let first = app.security_events(&token, "").await;
    let (ids, sizes) = every_page(&app, &token, 3).await;

    assert_eq!(first.status, 200, "{}", first.body);
    let events = first.body["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|event| event["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "login_failed",
            "login_succeeded",
            "login_succeeded",
            "login_succeeded",
            "login_succeeded",
            "login_succeeded",
            "signup"
        ]
    );
    assert_eq!(first.body["next_cursor"], serde_json::Value::Null, "one page holds them all");
    let newest = &events[0];
    assert_eq!(newest["ip"], crate::helpers::SOURCE_IP);
    assert_eq!(newest["detail"], json!({ "reason": "wrong_password" }));
    assert_eq!(newest["session_id"], serde_json::Value::Null);
    assert!(newest["at"].is_string() && newest["user_agent"].is_null());
    let all: Vec<&str> = events.iter().map(|event| event["id"].as_str().unwrap()).collect();
    assert_eq!(ids, all, "the pages, in order, are the whole list");
    assert_eq!(sizes, [3, 3, 1]);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_bad_limit_or_cursor_is_a_400_and_no_token_a_401(pool: PgPool) {
    let app = TestApp::new(pool);
    let token = app.signed_up("jan@example.com").await.access_token();

    for limit in ["0", "101", "-1", "ten", "1e2"] {
        let page = app.security_events(&token, &format!("limit={limit}")).await;
        assert_eq!((page.status, page.error_code()), (400, "invalid_request"), "limit={limit}");
    }
    for cursor in ["nonsense", "%%%", "AAAA", "\"x\"%20<y>"] {
        let page = app.security_events(&token, &format!("cursor={cursor}")).await;
        assert_eq!((page.status, page.error_code()), (400, "invalid_cursor"), "cursor={cursor}");
    }
    let anonymous = app.security_events("", "").await;
    assert_eq!(anonymous.status, 401);
    let fine = app.security_events(&token, "limit=100&unknown=1").await;
    assert_eq!(fine.status, 200, "an unknown parameter is ignored");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_hundred_thousand_events_page_through_whole_in_order_on_the_index(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("kim@example.com").await;
    app.signed_up("lou@example.com").await;
    // A year of a busy account's events, many sharing one instant (the keyset's tie on id),
    // and a neighbour's beside them.
    sqlx::raw_sql(
        "insert into security_events (id, user_id, type, at)
         select gen_random_uuid(), u.id, 'login_succeeded', now() - make_interval(secs => (n / 3) * 300)
         from users as u, generate_series(1, 100000) as n where u.email = 'kim@example.com';
         insert into security_events (id, user_id, type, at)
         select gen_random_uuid(), u.id, 'login_failed', now() - make_interval(secs => n * 60)
         from users as u, generate_series(1, 20000) as n where u.email = 'lou@example.com';
         analyze security_events;",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let (ids, sizes) = every_page(&app, &signup.access_token(), 100).await;

    assert_eq!(ids.len(), 100_001, "the inserted events and the signup's");
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), ids.len(), "none twice");
    assert_eq!(sizes.len(), 1_001);
    let expected: Vec<String> = sqlx::query_scalar(
        "select e.id::text from security_events as e join users as u on u.id = e.user_id
         where u.email = 'kim@example.com' order by e.at desc, e.id desc",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(ids, expected, "newest first, ties by id");
    let plan: Vec<String> = sqlx::query_scalar(
        "explain select id from security_events
         where user_id = (select id from users where email = 'kim@example.com')
           and (at, id) < (now(), gen_random_uuid()) order by at desc, id desc limit 101",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("security_events_user"), "a range on the user's index: {plan}");
    assert!(!plan.contains("Sort"), "read in index order, not sorted: {plan}");
}
