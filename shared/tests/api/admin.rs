//! The admin API's handlers, as an HTTP API with `AWS_IAM` authorization delivers their requests
//! (the verified principal in `requestContext.authorizer.iam`): finding and reading users, and
//! each action's effect, idempotence and security event.

use crate::helpers::{Endpoint, PASSWORD, Response, TestApp, address, call};
use serde_json::{Value, json};
use shared::handlers;
use sqlx::PgPool;
use test_support::{link_token, sent_mail};

const OPERATOR: &str = "arn:aws:iam::123456789012:user/oncall";

/// An admin request `method path?query` signed by [`OPERATOR`] (or by no one: `iam` false).
fn admin_request(method: &str, path: &str, query: &str, iam: bool) -> shared::http::Request {
    let id =
        path.trim_start_matches("/admin/users").trim_start_matches('/').split('/').next().unwrap_or_default();
    let mut event = json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path, "rawQueryString": query,
        "headers": { "user-agent": "scripts/admin" }, "isBase64Encoded": false,
        "requestContext": {
            "apiId": "adminapi", "stage": "$default", "requestId": "test",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7",
                     "userAgent": "scripts/admin"},
        },
    });
    if !id.is_empty() {
        event["pathParameters"] = json!({ "id": id });
    }
    if iam {
        event["requestContext"]["authorizer"] = json!({ "iam": {
            "accessKey": "AKIAEXAMPLE", "accountId": "123456789012", "callerId": "AIDAEXAMPLE",
            "cognitoIdentity": null, "principalOrgId": null, "userArn": OPERATOR, "userId": "AIDAEXAMPLE",
        }});
    }
    shared::event::sanitize(&mut event, true);
    lambda_http::request::from_str(&event.to_string()).expect("a payload 2.0 event")
}

impl TestApp {
    async fn admin(&self, method: &str, path: &str, query: &str) -> Response {
        self.admin_as(method, path, query, true).await
    }

    async fn admin_as(&self, method: &str, path: &str, query: &str, iam: bool) -> Response {
        let request = admin_request(method, path, query, iam);
        let app = &*self.app;
        let action = path.rsplit('/').next().unwrap_or_default();
        match (method, action) {
            ("GET", "users") => call(app, handlers::admin_users::handle, request).await,
            ("GET", _) => call(app, handlers::admin_user::handle, request).await,
            ("POST", "disable") => call(app, handlers::admin_disable::handle, request).await,
            ("POST", "enable") => call(app, handlers::admin_enable::handle, request).await,
            ("POST", "revoke-sessions") => call(app, handlers::admin_revoke_sessions::handle, request).await,
            ("POST", "send-reset") => call(app, handlers::admin_send_reset::handle, request).await,
            ("DELETE", _) => call(app, handlers::admin_delete_user::handle, request).await,
            _ => panic!("no admin route {method} {path}"),
        }
    }

    /// The detail of each of the user's events of `kind`.
    async fn admin_events(&self, user: uuid::Uuid, kind: &str) -> Vec<Value> {
        self.events_of(user).await.into_iter().filter(|(k, _)| k == kind).map(|(_, detail)| detail).collect()
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn users_are_found_by_address_prefix_a_page_at_a_time(pool: PgPool) {
    let app = TestApp::new(pool);
    for name in ["ann", "anna", "annie", "bob", "anders", "an_x", "an%y"] {
        app.signed_up(&format!("{name}@example.com")).await;
    }

    let mut found = Vec::new();
    let mut query = "email_prefix=An&limit=2".to_owned();
    loop {
        let page = app.admin("GET", "/admin/users", &query).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let users = page.body["users"].as_array().unwrap();
        found.extend(users.iter().map(|user| user["email"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("email_prefix=An&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let literal = app.admin("GET", "/admin/users", "email_prefix=an_").await;
    let everyone = app.admin("GET", "/admin/users", "").await;
    let bad = app.admin("GET", "/admin/users", "cursor=%%%").await;
    let nul_prefix = app.admin("GET", "/admin/users", "email_prefix=a%00b").await;
    let nul_cursor = app.admin("GET", "/admin/users", "cursor=YQBi").await;
    let long = app.admin("GET", "/admin/users", &format!("email_prefix={}", "a".repeat(255))).await;

    assert_eq!(
        found,
        [
            "an%y@example.com",
            "an_x@example.com",
            "anders@example.com",
            "ann@example.com",
            "anna@example.com",
            "annie@example.com"
        ],
        "byte order, case folded, every page"
    );
    let literal: Vec<&str> =
        literal.body["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(literal, ["an_x@example.com"], "_ and % are the characters they are");
    assert_eq!(everyone.body["users"].as_array().unwrap().len(), 7);
    assert_eq!((bad.status, bad.error_code()), (400, "invalid_cursor"));
    assert_eq!((nul_prefix.status, nul_prefix.error_code()), (400, "invalid_request"));
    assert_eq!((nul_cursor.status, nul_cursor.error_code()), (400, "invalid_cursor"), "a\\0b, base64url");
    assert_eq!((long.status, long.error_code()), (400, "invalid_request"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_user_reads_with_sessions_factors_and_recent_events_and_an_unknown_id_is_404(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("cat@example.com").await;
    app.post_login("cat@example.com", "not the password at all").await;
    let id = app.user_id("cat@example.com").await;

    let read = app.admin("GET", &format!("/admin/users/{id}"), "").await;
    let unknown = app.admin("GET", &format!("/admin/users/{}", uuid::Uuid::new_v4()), "").await;
    let malformed = app.admin("GET", "/admin/users/not-an-id", "").await;
    let unsigned = app.admin_as("GET", &format!("/admin/users/{id}"), "", false).await;

    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["user"]["email"], "cat@example.com");
    assert_eq!(read.body["user"]["disabled_at"], Value::Null);
    assert_eq!(read.body["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(read.body["factors"], json!([]));
    assert_eq!(read.body["passkeys"], json!([]));
    let kinds: Vec<&str> =
        read.body["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["login_failed", "signup"]);
    for missing in [&unknown, &malformed] {
        assert_eq!((missing.status, missing.error_code()), (404, "user_not_found"));
    }
    assert_eq!((unsigned.status, unsigned.error_code()), (403, "iam_required"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_disabled_user_signs_in_nowhere_until_enabled_and_each_change_is_recorded_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("dan@example.com").await;
    let other = app.post_login("dan@example.com", PASSWORD).await;
    let id = app.user_id("dan@example.com").await;
    let path = format!("/admin/users/{id}/disable");

    let disabled = app.admin("POST", &path, "").await;
    let again = app.admin("POST", &path, "").await;
    let right = app.post_login("dan@example.com", PASSWORD).await;
    let wrong = app.post_login("dan@example.com", "not the password at all").await;
    let refreshed = app.post_refresh(&other.refresh_token()).await;
    let me = app.get_me(&signup.access_token()).await;
    let read = app.admin("GET", &format!("/admin/users/{id}"), "").await;

    assert_eq!((disabled.status, again.status), (204, 204), "repeating it is no error");
    assert_eq!(
        (right.status, right.error_code()),
        (403, "account_disabled"),
        "said after the right password"
    );
    assert_eq!((wrong.status, wrong.error_code()), (401, "invalid_credentials"), "and only then");
    assert_eq!((refreshed.status, me.status), (401, 401), "every session ended in the disabling statement");
    assert!(read.body["user"]["disabled_at"].is_string());
    assert_eq!(read.body["sessions"], json!([]));

    let enabled = app.admin("POST", &format!("/admin/users/{id}/enable"), "").await;
    let enabled_again = app.admin("POST", &format!("/admin/users/{id}/enable"), "").await;
    let back = app.post_login("dan@example.com", PASSWORD).await;

    assert_eq!((enabled.status, enabled_again.status, back.status), (204, 204, 200));
    assert_eq!(
        app.admin_events(id, "account_disabled").await,
        [json!({ "by": OPERATOR, "sessions_revoked": 2 })],
        "the repeat changed nothing and recorded nothing"
    );
    assert_eq!(app.admin_events(id, "account_enabled").await, [json!({ "by": OPERATOR })]);
    let reasons: Vec<Value> = app.admin_events(id, "login_failed").await;
    assert_eq!(reasons, [json!({ "reason": "account_disabled" }), json!({ "reason": "wrong_password" })]);
    let view = app.security_events(&back.access_token(), "limit=100").await;
    let own = view.body["events"].as_array().unwrap().clone();
    let disabled_seen =
        own.iter().find(|event| event["type"] == "account_disabled").expect("in the user's view");
    assert_eq!(disabled_seen["detail"], json!({ "sessions_revoked": 2 }), "not who acted");
    assert_eq!(
        (&disabled_seen["ip"], &disabled_seen["user_agent"]),
        (&Value::Null, &Value::Null),
        "nor from where"
    );
    let (ip, agent): (Option<String>, Option<String>) =
        sqlx::query_as("select host(ip), user_agent from security_events where type = 'account_disabled'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((ip.as_deref(), agent.as_deref()), (Some("198.51.100.7"), Some("scripts/admin")));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_disable_racing_refreshes_leaves_no_live_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("eve@example.com").await;
    let id = app.user_id("eve@example.com").await;
    let token = signup.refresh_token();

    let tasks = (0..21).map(|n| {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move {
            if n == 0 {
                (app.admin("POST", &format!("/admin/users/{id}/disable"), "").await.status, None, None)
            } else {
                let refreshed = app.post_refresh(&token).await;
                let tokens =
                    (refreshed.status == 200).then(|| (refreshed.refresh_token(), refreshed.access_token()));
                (refreshed.status, tokens.as_ref().map(|t| t.0.clone()), tokens.map(|t| t.1))
            }
        })
    });
    let outcomes: Vec<_> =
        futures_util::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();

    assert_eq!(outcomes[0].0, 204);
    for (status, refresh, access) in outcomes.into_iter().skip(1) {
        assert!(matches!(status, 200 | 401), "{status}");
        if let (Some(refresh), Some(access)) = (refresh, access) {
            assert_eq!(
                app.post_refresh(&refresh).await.status,
                401,
                "a refresh that won the race lost it after"
            );
            assert_eq!(app.get_me(&access).await.status, 401);
        }
    }
    assert_eq!(app.post_refresh(&token).await.status, 401);
    let live: i64 = app.count("select count(*) from sessions where revoked_at is null").await;
    assert_eq!(live, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn revoking_sessions_ends_each_and_records_the_count_every_time(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("fox@example.com").await;
    app.post_login("fox@example.com", PASSWORD).await;
    let id = app.user_id("fox@example.com").await;
    let path = format!("/admin/users/{id}/revoke-sessions");

    let first = app.admin("POST", &path, "").await;
    let second = app.admin("POST", &path, "").await;
    let unknown =
        app.admin("POST", &format!("/admin/users/{}/revoke-sessions", uuid::Uuid::new_v4()), "").await;

    assert_eq!((first.status, second.status), (204, 204));
    assert_eq!((unknown.status, unknown.error_code()), (404, "user_not_found"));
    assert_eq!(app.get_me(&signup.access_token()).await.status, 401);
    assert_eq!(app.post_login("fox@example.com", PASSWORD).await.status, 200, "not disabled");
    assert_eq!(
        app.admin_events(id, "admin_revoke_sessions").await,
        [json!({ "by": OPERATOR, "sessions_revoked": 2 }), json!({ "by": OPERATOR, "sessions_revoked": 0 })]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reset_link_is_mailed_on_request_and_works_only_while_enabled(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("reset-by-admin");
    app.signed_up(&email).await;
    let id = app.user_id(&email).await;

    assert_eq!(app.admin("POST", &format!("/admin/users/{id}/send-reset"), "").await.status, 204);
    assert_eq!(app.admin("POST", &format!("/admin/users/{id}/disable"), "").await.status, 204);
    let mail = sent_mail(&email).await;
    let token = link_token(mail.last().unwrap());
    let body = json!({ "token": token, "password": "violet tractor umbrella sunrise" });
    let refused = app.post_json(Endpoint::ResetPassword, &body).await;
    assert_eq!(app.admin("POST", &format!("/admin/users/{id}/enable"), "").await.status, 204);
    let reset = app.post_json(Endpoint::ResetPassword, &body).await;

    assert_eq!(mail.len(), 2, "the verification and the reset link");
    assert_eq!((refused.status, refused.error_code()), (403, "account_disabled"));
    assert_eq!(reset.status, 200, "the link outlived the hold: {}", reset.body);
    assert_eq!(app.admin_events(id, "admin_send_reset").await, [json!({ "by": OPERATOR, "sent": true })]);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_deleted_user_is_gone_with_a_record_of_who_deleted_them(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("gil@example.com").await;
    let id = app.user_id("gil@example.com").await;

    let deleted = app.admin("DELETE", &format!("/admin/users/{id}"), "").await;
    let again = app.admin("DELETE", &format!("/admin/users/{id}"), "").await;

    assert_eq!(deleted.status, 204);
    assert_eq!((again.status, again.error_code()), (404, "user_not_found"), "nothing left to delete");
    assert_eq!(app.get_me(&signup.access_token()).await.status, 401);
    assert_eq!(app.count("select count(*) from users").await, 0);
    assert_eq!(app.admin_events(id, "admin_delete_user").await, [json!({ "by": OPERATOR })]);
}
