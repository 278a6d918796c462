//! The account lifecycle through the real handlers, a real Postgres and the real SES SDK
//! against the local SES (`scripts/with-moto`): verification and reset links read back from
//! the mail SES accepted, their races, the sending limits, password change, account deletion,
//! and the session list.

use crate::helpers::{Endpoint, PASSWORD, Response, TestApp, address, bearer_json, event, json_request};
use serde_json::{Value, json};
use shared::domain::MailKind;
use shared::mail::{Delivery, MailConfig, Mailer};
use sqlx::PgPool;
use test_support::{APP_URL, link_token, read_mail, sent_mail};

const NEW_PASSWORD: &str = "violet tractor umbrella sunrise";

/// The mail `to` has received, once there are `count` (SES accepted them before the handler
/// answered, so they are there; this only reads them).
async fn mail(to: &str, count: usize) -> Vec<String> {
    let messages = sent_mail(to).await;
    assert_eq!(messages.len(), count, "mail to {to}: {messages:#?}");
    messages
}

/// A login request from a device: its user agent and source address.
fn login_from(email: &str, user_agent: &str, ip: &str) -> shared::http::Request {
    let body = json!({ "email": email, "password": PASSWORD }).to_string();
    let event = json!({
        "version": "2.0", "routeKey": "POST /auth/login", "rawPath": "/auth/login", "rawQueryString": "",
        "headers": {"content-type": "application/json", "user-agent": user_agent},
        "body": body, "isBase64Encoded": false,
        "requestContext": {
            "apiId": "testapi", "stage": "$default", "requestId": "test",
            "http": {"method": "POST", "path": "/auth/login", "protocol": "HTTP/1.1", "sourceIp": ip,
                     "userAgent": user_agent},
        },
    });
    lambda_http::request::from_str(&event.to_string()).expect("a payload 2.0 event")
}

impl TestApp {
    async fn verify(&self, token: &str) -> Response {
        self.post_json(Endpoint::VerifyEmail, &json!({ "token": token })).await
    }

    async fn forgot(&self, email: &str) -> Response {
        self.post_json(Endpoint::ForgotPassword, &json!({ "email": email })).await
    }

    async fn reset(&self, token: &str, password: &str) -> Response {
        self.post_json(Endpoint::ResetPassword, &json!({ "token": token, "password": password })).await
    }

    async fn with_bearer(
        &self,
        endpoint: Endpoint,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Response {
        self.send(endpoint, bearer_json(method, path, token, body.as_ref())).await
    }

    async fn resend(&self, access: &str) -> Response {
        self.with_bearer(Endpoint::ResendVerification, "POST", "/auth/verify-email/resend", access, None)
            .await
    }

    async fn change(&self, access: &str, current: &str, new: &str) -> Response {
        let body = json!({ "current_password": current, "new_password": new });
        self.with_bearer(Endpoint::ChangePassword, "POST", "/auth/password/change", access, Some(body)).await
    }

    async fn delete_account(&self, access: &str, password: &str) -> Response {
        let body = json!({ "password": password });
        self.with_bearer(Endpoint::DeleteAccount, "DELETE", "/auth/me", access, Some(body)).await
    }

    async fn sessions(&self, access: &str) -> Response {
        self.with_bearer(Endpoint::Sessions, "GET", "/auth/sessions", access, None).await
    }

    async fn revoke(&self, access: &str, id: &str) -> Response {
        let path = format!("/auth/sessions/{id}");
        let mut request = bearer_json("DELETE", &path, access, None);
        // API Gateway hands the route's `{id}` over as a path parameter.
        let parameters: std::collections::HashMap<String, String> = [("id".to_owned(), id.to_owned())].into();
        request = lambda_http::RequestExt::with_path_parameters(request, parameters);
        self.send(Endpoint::RevokeSession, request).await
    }

    /// Moves the address's per-kind "last sent" times back past the 60 s interval, as the
    /// passing of a minute would.
    async fn a_minute_later(&self, email: &str) {
        sqlx::query(
            "update mail_quota set verify_email_sent_at = verify_email_sent_at - interval '61 seconds',
                                   reset_password_sent_at = reset_password_sent_at - interval '61 seconds'
             where email = $1",
        )
        .bind(email)
        .execute(&self.pool)
        .await
        .expect("moving the clock of the mail limits");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn signup_mails_a_verification_link_that_verifies_the_address_once(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("verify");

    let signup = api.signed_up(&email).await;
    let messages = mail(&email, 1).await;
    let me_before = api.get_me(&signup.access_token()).await;
    let token = link_token(&messages[0]);
    let verified = api.verify(&token).await;
    let me_after = api.get_me(&signup.access_token()).await;
    let again = api.verify(&token).await;

    assert_eq!(signup.body["user"]["email_verified_at"], Value::Null);
    assert_eq!(me_before.body["email_verified_at"], Value::Null);
    let message = read_mail(&messages[0]);
    assert_eq!(message.subject, "Verify your email address");
    assert_eq!(message.from, "Auth <no-reply@auth.test>");
    let link = format!("{APP_URL}/verify-email#token={token}");
    assert!(message.text.contains(&link) && message.html.contains(&link), "{message:?}");
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(verified.body["user"]["email"], email.as_str());
    let at = verified.body["user"]["email_verified_at"].as_str().expect("a verification time");
    assert_eq!(me_after.body["email_verified_at"], at);
    assert_eq!((again.status, again.error_code()), (400, "invalid_token"), "a link works once");
    let stored: i64 = api.count("select count(*) from mail_tokens").await;
    assert_eq!(stored, 0, "a used token is gone");
    assert_eq!(
        api.event_types(&email).await,
        ["signup", "email_verified"],
        "the used link verified nothing more"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn only_the_hash_of_a_link_token_is_stored(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("hash");
    api.signed_up(&email).await;
    let token = link_token(&mail(&email, 1).await[0]);

    let (kind, hash, lifetime): (String, Vec<u8>, f64) = sqlx::query_as(
        "select kind, token_hash, extract(epoch from expires_at - created_at)::float8 from mail_tokens",
    )
    .fetch_one(&api.pool)
    .await
    .unwrap();

    use aws_lc_rs::digest;
    assert_eq!(kind, "verify_email");
    assert_eq!(hash, digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    assert_eq!(lifetime, MailKind::VerifyEmail.lifetime().as_secs_f64(), "24 hours");
}

#[sqlx::test(migrations = "../migrations")]
async fn wrong_expired_used_and_replaced_tokens_are_one_400(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("dead");
    let signup = api.signed_up(&email).await;
    let first = link_token(&mail(&email, 1).await[0]);

    // A newer link replaces the older one.
    api.a_minute_later(&email).await;
    let resent = api.resend(&signup.access_token()).await;
    let second = link_token(&mail(&email, 2).await[1]);
    let replaced = api.verify(&first).await;
    // An expired one.
    sqlx::query("update mail_tokens set expires_at = now() - interval '1 second'")
        .execute(&api.pool)
        .await
        .unwrap();
    let expired = api.verify(&second).await;
    let unknown = api.verify("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let malformed = api.verify("not a token").await;
    let reset_token_as_verification = {
        api.forgot(&email).await;
        let reset = link_token(&mail(&email, 3).await[2]);
        api.verify(&reset).await
    };

    assert_eq!(resent.status, 202);
    assert_ne!(first, second);
    for (what, response) in [
        ("replaced", &replaced),
        ("expired", &expired),
        ("unknown", &unknown),
        ("malformed", &malformed),
        ("of another kind", &reset_token_as_verification),
    ] {
        assert_eq!((response.status, response.error_code()), (400, "invalid_token"), "{what}");
        assert_eq!(response.header("www-authenticate"), None, "{what}: not an access-token problem");
    }
    let verified: Option<String> =
        sqlx::query_scalar("select email_verified_at::text from users").fetch_one(&api.pool).await.unwrap();
    assert_eq!(verified, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_uses_of_one_verification_link_verify_once(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("race");
    api.signed_up(&email).await;
    let token = link_token(&mail(&email, 1).await[0]);

    let answers = futures_util::future::join_all((0..20).map(|_| {
        let api = api.clone();
        let token = token.clone();
        tokio::spawn(async move { api.verify(&token).await })
    }))
    .await;

    let statuses: Vec<u16> = answers.into_iter().map(|answer| answer.expect("no panic").status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 400).count(), 19, "{statuses:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn forgot_answers_the_same_for_unknown_addresses_and_mails_only_known_ones(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let known = address("known");
    let unknown = address("unknown");
    api.signed_up(&known).await;

    let for_known = api.forgot(&known).await;
    let for_unknown = api.forgot(&unknown).await;
    let malformed = api.forgot("no-at-sign").await;

    assert_eq!(for_known.status, 202);
    assert_eq!(
        (for_known.status, &for_known.headers, &for_known.body),
        (for_unknown.status, &for_unknown.headers, &for_unknown.body),
        "nothing tells the two apart"
    );
    assert_eq!(for_known.body, Value::Null, "no body");
    let to_known = mail(&known, 2).await;
    let reset = read_mail(&to_known[1]);
    assert_eq!(reset.subject, "Reset your password");
    assert!(reset.text.contains(&format!("{APP_URL}/reset-password#token=")), "{reset:?}");
    mail(&unknown, 0).await;
    let rows: i64 = api.count("select count(*) from mail_quota").await;
    assert_eq!(rows, 1, "an address without an account leaves no row");
    assert_eq!((malformed.status, malformed.error_code()), (422, "invalid_email"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reset_sets_the_password_signs_in_and_ends_every_other_session(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("reset");
    let signup = api.signed_up(&email).await;
    let other = api.post_login(&email, PASSWORD).await;
    api.forgot(&email).await;
    let token = link_token(&mail(&email, 2).await[1]);

    let weak = api.reset(&token, "password1").await;
    let reset = api.reset(&token, NEW_PASSWORD).await;
    let reused = api.reset(&token, NEW_PASSWORD).await;

    assert_eq!((weak.status, weak.error_code()), (422, "weak_password"), "the link survives a weak password");
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    assert!(reset.body["user"]["email_verified_at"].is_string(), "the link proved the address");
    assert_eq!((reused.status, reused.error_code()), (400, "invalid_token"));
    for old in [&signup, &other] {
        assert_eq!(api.post_refresh(&old.refresh_token()).await.status, 401, "old refresh tokens are dead");
        assert_eq!(api.get_me(&old.access_token()).await.status, 401, "old access tokens are dead");
    }
    assert_eq!(api.get_me(&reset.access_token()).await.status, 200);
    assert_eq!(api.post_refresh(&reset.refresh_token()).await.status, 200);
    assert_eq!(api.post_login(&email, PASSWORD).await.status, 401);
    assert_eq!(api.post_login(&email, NEW_PASSWORD).await.status, 200);
    let events = api.events_of(api.user_id(&email).await).await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["signup", "login_succeeded", "password_reset", "login_failed", "login_succeeded"],
        "the weak and the reused reset wrote nothing"
    );
    assert_eq!(events[2].1, json!({ "sessions_revoked": 2 }));
    assert_eq!(events[3].1, json!({ "reason": "wrong_password" }));
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_resets_with_one_link_succeed_once(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("reset-race");
    api.signed_up(&email).await;
    api.forgot(&email).await;
    let token = link_token(&mail(&email, 2).await[1]);

    let answers = futures_util::future::join_all((0..20).map(|n| {
        let api = api.clone();
        let token = token.clone();
        tokio::spawn(async move { api.reset(&token, &format!("{NEW_PASSWORD} {n}")).await })
    }))
    .await;

    let answers: Vec<Response> = answers.into_iter().map(|answer| answer.expect("no panic")).collect();
    let winners: Vec<&Response> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(
        answers
            .iter()
            .filter(|a| a.status != 200)
            .all(|a| a.status == 400 && a.error_code() == "invalid_token")
    );
    let live: i64 = api.count("select count(*) from sessions where revoked_at is null").await;
    assert_eq!(live, 1, "one new session, the winner's");
    assert_eq!(api.get_me(&winners[0].access_token()).await.status, 200);
}

#[sqlx::test(migrations = "../migrations")]
async fn one_mail_of_a_kind_per_minute_and_five_an_hour_per_address(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("limits");
    api.signed_up(&email).await; // mail 1: verification

    let reset_a_second_later = api.forgot(&email).await; // mail 2: another kind, not held back
    let same_kind_again = api.forgot(&email).await; // held back: a reset within the minute
    mail(&email, 2).await;
    for _ in 0..4 {
        api.a_minute_later(&email).await;
        assert_eq!(api.forgot(&email).await.status, 202); // mails 3, 4, 5, then held back: 5 an hour
    }
    let messages = mail(&email, 5).await;

    assert_eq!((reset_a_second_later.status, same_kind_again.status), (202, 202), "a limit is never told");
    assert!(messages[1].contains("Reset your password"));
    // The hour passes: the window starts again.
    sqlx::query("update mail_quota set window_started_at = window_started_at - interval '61 minutes'")
        .execute(&api.pool)
        .await
        .unwrap();
    api.a_minute_later(&email).await;
    api.forgot(&email).await;
    mail(&email, 6).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn three_signup_and_deletion_cycles_within_seconds_mail_the_address_once(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("cycle");

    for _ in 0..3 {
        let signup = api.signed_up(&email).await;
        let deleted = api.delete_account(&signup.access_token(), PASSWORD).await;
        assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    }

    mail(&email, 1).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn one_source_address_has_anonymous_requests_send_at_most_twenty_mails_an_hour(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let per_source = shared::config::DEFAULT_MAIL_SOURCE_HOURLY_LIMIT as usize;
    let addresses: Vec<String> = (0..=per_source).map(|n| address(&format!("src{n}"))).collect();
    let signup = |email: &str| json_request(&json!({ "email": email, "password": PASSWORD }).to_string());
    let forgot = |email: &str| json_request(&json!({ "email": email }).to_string());

    for email in &addresses {
        assert_eq!(api.send_from("198.51.100.7", Endpoint::Signup, signup(email)).await.status, 201);
    }
    let same_source = api.send_from("198.51.100.7", Endpoint::ForgotPassword, forgot(&addresses[0])).await;
    let elsewhere = api.send_from("198.51.100.8", Endpoint::ForgotPassword, forgot(&addresses[1])).await;

    let delivered: Vec<usize> = futures_util::future::join_all(addresses.iter().map(|a| sent_mail(a)))
        .await
        .iter()
        .map(Vec::len)
        .collect();
    let mut expected = vec![1; per_source + 1];
    expected[per_source] = 0; // the last signup's verification: over its source's limit
    expected[1] = 2; // the reset asked for from another address
    assert_eq!(delivered, expected);
    assert_eq!((same_source.status, elsewhere.status), (202, 202), "a limit is never told");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_source_past_its_limit_spends_nobodys_address_limit(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let victim = address("victim");
    api.signed_up(&victim).await;
    sqlx::query("insert into mail_sources (source, window_started_at, window_count) values ('198.51.100.9', now(), $1)")
        .bind(shared::config::DEFAULT_MAIL_SOURCE_HOURLY_LIMIT as i32)
        .execute(&api.pool)
        .await
        .unwrap();
    let forgot = || json_request(&json!({ "email": victim }).to_string());

    for _ in 0..6 {
        api.a_minute_later(&victim).await;
        assert_eq!(api.send_from("198.51.100.9", Endpoint::ForgotPassword, forgot()).await.status, 202);
    }
    api.a_minute_later(&victim).await;
    api.send_from("198.51.100.10", Endpoint::ForgotPassword, forgot()).await;

    let messages = mail(&victim, 2).await;
    assert!(messages[1].contains("Reset your password"), "the owner's own request still gets its mail");
}

#[sqlx::test(migrations = "../migrations")]
async fn verification_mails_leave_a_fifth_of_the_hourly_cap_to_reset_links(pool: PgPool) {
    let api = TestApp::with_mail(pool, |app| {
        app.mailer = Mailer::new(Some(MailConfig { hourly_limit: 10, ..crate::helpers::mail_config() }));
    })
    .await;
    let (early, late) = (address("early"), address("late"));
    api.signed_up(&early).await;
    sqlx::query("update mail_hourly set sent = 8").execute(&api.pool).await.unwrap();

    api.signed_up(&late).await; // its verification: over the verifications' four fifths
    api.forgot(&early).await; // a reset: within the fifth kept for resets

    mail(&late, 0).await;
    let early_mail = mail(&early, 2).await;
    assert!(early_mail[1].contains("Reset your password"));
}

#[sqlx::test(migrations = "../migrations")]
async fn ten_concurrent_requests_for_one_address_send_one_mail(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("burst");
    api.signed_up(&email).await;

    let answers = futures_util::future::join_all((0..10).map(|_| {
        let api = api.clone();
        let email = email.clone();
        tokio::spawn(async move { api.forgot(&email).await.status })
    }))
    .await;

    assert!(answers.into_iter().all(|status| status.expect("no panic") == 202));
    let messages = mail(&email, 2).await;
    assert_eq!(messages.iter().filter(|m| m.contains("Reset your password")).count(), 1);
    let tokens: i64 = api.count("select count(*) from mail_tokens where kind = 'reset_password'").await;
    assert_eq!(tokens, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_global_hourly_cap_holds_across_addresses(pool: PgPool) {
    let api = TestApp::with_mail(pool, |app| {
        app.mailer = Mailer::new(Some(MailConfig { hourly_limit: 2, ..crate::helpers::mail_config() }));
    })
    .await;
    let addresses: Vec<String> = (0..3).map(|n| address(&format!("cap{n}"))).collect();
    for email in &addresses {
        api.signed_up(email).await;
    }

    let delivered: Vec<usize> = futures_util::future::join_all(addresses.iter().map(|a| sent_mail(a)))
        .await
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(delivered, [1, 1, 0], "the third signup's mail is over the cap");
    let sent: i32 = sqlx::query_scalar("select sent from mail_hourly").fetch_one(&api.pool).await.unwrap();
    assert_eq!(sent, 2);
    let tokens: i64 = api.count("select count(*) from mail_tokens").await;
    assert_eq!(tokens, 2, "no link is stored for a mail not sent");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_mail_ses_refuses_loses_nothing_and_tells_the_client_nothing(pool: PgPool) {
    // An address of no verified identity: SES refuses every send (MessageRejected).
    let unverified =
        MailConfig { from: "Nobody <nobody@unverified.test>".to_owned(), ..crate::helpers::mail_config() };
    let api = TestApp::with_mail(pool, |app| app.mailer = Mailer::new(Some(unverified.clone()))).await;
    let email = address("refused");

    let signup = api.signed_up(&email).await;
    let forgot = api.forgot(&email).await;
    let direct = Mailer::new(Some(unverified)).send(MailKind::VerifyEmail, &email, "token").await;

    assert_eq!(signup.status, 201);
    assert_eq!((forgot.status, &forgot.body), (202, &Value::Null));
    mail(&email, 0).await;
    let tokens: i64 = api.count("select count(*) from mail_tokens").await;
    assert_eq!(tokens, 2, "both links are stored, to be asked for again");
    assert_eq!(direct, Delivery::Failed { code: "MessageRejected".to_owned() });
}

#[sqlx::test(migrations = "../migrations")]
async fn resend_needs_a_live_access_token_and_sends_nothing_once_verified(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("resend");
    let signup = api.signed_up(&email).await;
    api.verify(&link_token(&mail(&email, 1).await[0])).await;
    api.a_minute_later(&email).await;

    let verified = api.resend(&signup.access_token()).await;
    let anonymous = api.send(Endpoint::ResendVerification, json_request("{}")).await;
    let forged = api.resend("not.a.jwt").await;

    assert_eq!((verified.status, &verified.body), (202, &Value::Null));
    mail(&email, 1).await;
    assert_eq!((anonymous.status, anonymous.error_code()), (401, "missing_token"));
    assert_eq!((forged.status, forged.error_code()), (401, "invalid_token"));
}

#[sqlx::test(migrations = "../migrations")]
async fn changing_the_password_keeps_this_session_ends_the_others_and_voids_a_reset_link(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("change");
    let this = api.signed_up(&email).await;
    let other = api.post_login(&email, PASSWORD).await;
    api.forgot(&email).await;
    let reset_token = link_token(&mail(&email, 2).await[1]);

    let wrong = api.change(&this.access_token(), "not the password", NEW_PASSWORD).await;
    let weak = api.change(&this.access_token(), PASSWORD, "password1").await;
    let changed = api.change(&this.access_token(), PASSWORD, NEW_PASSWORD).await;

    assert_eq!((wrong.status, wrong.error_code()), (403, "invalid_password"));
    assert_eq!(wrong.header("www-authenticate"), None);
    assert_eq!((weak.status, weak.error_code()), (422, "weak_password"));
    assert_eq!((changed.status, &changed.body), (204, &Value::Null));
    assert_eq!(api.get_me(&this.access_token()).await.status, 200, "this session goes on");
    assert_eq!(api.post_refresh(&this.refresh_token()).await.status, 200);
    assert_eq!(api.get_me(&other.access_token()).await.status, 401, "the other one ended");
    assert_eq!(api.post_refresh(&other.refresh_token()).await.status, 401);
    let reset = api.reset(&reset_token, "another fine passphrase").await;
    assert_eq!(
        (reset.status, reset.error_code()),
        (400, "invalid_token"),
        "the change voided the reset link"
    );
    assert_eq!(api.post_login(&email, PASSWORD).await.status, 401);
    assert_eq!(api.post_login(&email, NEW_PASSWORD).await.status, 200);
    let changes: Vec<Value> = api
        .events_of(api.user_id(&email).await)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "password_changed")
        .map(|(_, detail)| detail)
        .collect();
    assert_eq!(changes, [json!({ "sessions_revoked": 1 })], "the refused and weak changes wrote nothing");
}

#[sqlx::test(migrations = "../migrations")]
async fn wrong_passwords_to_change_or_delete_are_throttled_as_logins_are(pool: PgPool) {
    let api = TestApp::new(pool);
    let email = address("guess");
    let access = api.signed_up(&email).await.access_token();

    let mut statuses = Vec::new();
    for n in 0..6 {
        let guess = format!("guess number {n}");
        let response = if n % 2 == 0 {
            api.change(&access, &guess, NEW_PASSWORD).await
        } else {
            api.delete_account(&access, &guess).await
        };
        statuses.push(response.status);
    }
    let right_but_throttled = api.delete_account(&access, PASSWORD).await;

    assert_eq!(statuses, [403, 403, 403, 403, 403, 429]);
    assert_eq!((right_but_throttled.status, right_but_throttled.error_code()), (429, "too_many_attempts"));
    assert!(right_but_throttled.header("retry-after").is_some());
    assert_eq!(api.get_me(&access).await.status, 200, "the account is still there");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_owners_change_and_deletion_are_held_by_their_session_alone_not_by_others_failures(pool: PgPool) {
    let api = TestApp::new(pool);
    let email = address("held");
    let access = api.signed_up(&email).await.access_token();
    // Someone else fails at the owner's email until refused, and a crowd fills its ceiling.
    for _ in 0..8 {
        api.post_login_from("198.51.100.7", &email, "a guess", json!({})).await;
    }
    api.set_email_failures(&email, 100_000, 0).await;
    let refused = api.post_login_from("198.51.100.7", &email, PASSWORD, json!({})).await;

    let changed = api.change(&access, PASSWORD, NEW_PASSWORD).await;
    let deleted = api.delete_account(&access, NEW_PASSWORD).await;

    assert_eq!(refused.status, 429, "the anonymous counts hold the email");
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn deleting_the_account_removes_everything_and_ends_every_token_at_once(pool: PgPool) {
    let api = TestApp::with_mail(pool, |_| {}).await;
    let email = address("delete");
    let signup = api.signed_up(&email).await;
    let other = api.post_login(&email, PASSWORD).await;
    api.post_login(&email, "a wrong password").await;

    let user = api.user_id(&email).await;
    let wrong = api.delete_account(&signup.access_token(), "a wrong password").await;
    let deleted = api.delete_account(&signup.access_token(), PASSWORD).await;

    assert_eq!((wrong.status, wrong.error_code()), (403, "invalid_password"));
    assert_eq!((deleted.status, &deleted.body), (204, &Value::Null));
    for table in ["users", "sessions", "refresh_tokens", "mail_tokens", "login_attempts"] {
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
            .fetch_one(&api.pool)
            .await
            .unwrap();
        assert_eq!(rows, 0, "{table} keeps nothing of the user");
    }
    // The address's sending limits outlive the account, until the purge finds their hour over.
    assert_eq!(api.count("select count(*) from mail_quota").await, 1);
    for old in [&signup, &other] {
        assert_eq!(api.get_me(&old.access_token()).await.status, 401);
        assert_eq!(api.post_refresh(&old.refresh_token()).await.status, 401);
        assert_eq!(api.delete_account(&old.access_token(), PASSWORD).await.status, 401);
    }
    assert_eq!(api.post_login(&email, PASSWORD).await.status, 401);
    assert_eq!(api.post_signup(&email, PASSWORD).await.status, 201, "the address is free again");
    let kinds: Vec<String> = api.events_of(user).await.into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(
        kinds,
        ["signup", "login_succeeded", "login_failed", "account_deleted"],
        "the account's record outlives it; the new account's is its own"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_session_list_shows_each_device_and_revokes_only_the_callers_sessions(pool: PgPool) {
    let api = TestApp::new(pool);
    let email = address("devices");
    api.signed_up(&email).await;
    let phone = api.send(Endpoint::Login, login_from(&email, "Phone/1.0", "198.51.100.7")).await;
    let laptop = api.send(Endpoint::Login, login_from(&email, "Laptop/2.0", "2001:db8::5")).await;
    let stranger = api.signed_up(&address("stranger")).await;
    // The phone refreshes last: it is the most recently used.
    let phone = api.post_refresh(&phone.refresh_token()).await;

    let listed = api.sessions(&laptop.access_token()).await;
    let sessions = listed.body["sessions"].as_array().expect("a list").clone();

    assert_eq!(listed.status, 200);
    assert_eq!(sessions.len(), 3, "{sessions:#?}");
    assert_eq!(sessions[0]["user_agent"], "Phone/1.0");
    assert_eq!(sessions[0]["ip"], "198.51.100.7");
    assert_eq!(sessions[0]["current"], false);
    let time = |value: &Value| {
        time::OffsetDateTime::parse(
            value.as_str().expect("a time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339")
    };
    assert!(
        time(&sessions[0]["last_used_at"]) > time(&sessions[0]["created_at"]),
        "the refresh is its last use"
    );
    let laptop_entry = sessions.iter().find(|s| s["user_agent"] == "Laptop/2.0").expect("the laptop");
    assert_eq!((laptop_entry["ip"].as_str(), &laptop_entry["current"]), (Some("2001:db8::5"), &json!(true)));
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(
        (&sessions[2]["user_agent"], &sessions[2]["ip"]),
        (&Value::Null, &json!("192.0.2.1")),
        "signup's"
    );

    let stranger_sessions = api.sessions(&stranger.access_token()).await.body["sessions"].clone();
    let stranger_id = stranger_sessions[0]["id"].as_str().unwrap().to_owned();
    let phone_id = sessions[0]["id"].as_str().unwrap().to_owned();
    let not_mine = api.revoke(&laptop.access_token(), &stranger_id).await;
    let revoked = api.revoke(&laptop.access_token(), &phone_id).await;
    let twice = api.revoke(&laptop.access_token(), &phone_id).await;
    let malformed = api.revoke(&laptop.access_token(), "not-a-uuid").await;

    assert_eq!((not_mine.status, not_mine.error_code()), (404, "session_not_found"));
    assert_eq!(api.get_me(&stranger.access_token()).await.status, 200, "the stranger's session is untouched");
    assert_eq!((revoked.status, &revoked.body), (204, &Value::Null));
    assert_eq!(api.post_refresh(&phone.refresh_token()).await.status, 401, "the phone is signed out");
    assert_eq!(api.get_me(&phone.access_token()).await.status, 401);
    assert_eq!((twice.status, malformed.status), (404, 404));
    let after = api.sessions(&laptop.access_token()).await.body["sessions"].as_array().unwrap().len();
    assert_eq!(after, 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn with_require_verified_email_an_unverified_address_cannot_log_in(pool: PgPool) {
    let api = TestApp::with_mail(pool, |app| app.require_verified_email = true).await;
    let email = address("required");
    assert_eq!(api.post_signup(&email, PASSWORD).await.status, 202);

    let unverified = api.post_login(&email, PASSWORD).await;
    let wrong = api.post_login(&email, "a wrong password").await;
    api.verify(&link_token(&mail(&email, 1).await[0])).await;
    let verified = api.post_login(&email, PASSWORD).await;

    assert_eq!(
        (unverified.status, unverified.error_code(), &unverified.body),
        (wrong.status, wrong.error_code(), &wrong.body),
        "the right password of an unverified address answers as a wrong one"
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(verified.status, 200, "{:?}", verified.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn with_require_verified_email_signup_answers_every_address_alike_and_the_mail_says_which(
    pool: PgPool,
) {
    let api = TestApp::with_mail(pool, |app| app.require_verified_email = true).await;
    let (new, taken) = (address("new"), address("taken"));
    assert_eq!(api.post_signup(&taken, PASSWORD).await.status, 202);
    api.verify(&link_token(&mail(&taken, 1).await[0])).await;

    let fresh = api.post_signup(&new, PASSWORD).await;
    let again = api.post_signup(&taken, "another fine passphrase").await;

    for answer in [&fresh, &again] {
        assert_eq!((answer.status, &answer.body), (202, &Value::Null), "no tokens: {:?}", answer.body);
    }
    let names = |answer: &Response| answer.headers.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&fresh), names(&again), "the same headers");
    assert_eq!(api.count("select count(*) from sessions").await, 0, "nobody is signed in by a signup");
    // The new address: its verification, then it signs in.
    let verification = read_mail(&mail(&new, 1).await[0]);
    assert_eq!(verification.subject, "Verify your email address");
    // A prober who signed up with a password of their own learns nothing by trying it.
    let probe_new = api.post_login(&new, PASSWORD).await;
    let probe_taken = api.post_login(&taken, "another fine passphrase").await;
    assert_eq!(
        (probe_new.status, &probe_new.body),
        (401, &probe_taken.body),
        "not before the address is verified"
    );
    api.verify(&link_token(&mail(&new, 1).await[0])).await;
    assert_eq!(api.post_login(&new, PASSWORD).await.status, 200);
    // The taken address: a mail saying so, whose link resets the password; the signup's
    // password changed nothing.
    let notice = mail(&taken, 2).await;
    let read = read_mail(&notice[1]);
    assert_eq!(read.subject, "You already have an account");
    assert!(read.text.contains("already has an account"), "{}", read.text);
    let reset = api.reset(&link_token(&notice[1]), NEW_PASSWORD).await;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_bodies_get_their_4xx_on_every_new_endpoint(pool: PgPool) {
    let api = TestApp::new(pool);
    let access = api.signed_up(&address("bodies")).await.access_token();
    let text = |method: &str, path: &str| {
        let headers = json!({"authorization": format!("Bearer {access}"), "content-type": "text/plain"});
        event(method, path, headers, Some("{}"), false)
    };

    let cases = [
        (Endpoint::VerifyEmail, json_request("{\"token\":"), 400, "malformed_json"),
        (Endpoint::VerifyEmail, json_request("{}"), 400, "invalid_request"),
        (Endpoint::ForgotPassword, json_request("{\"email\": 5}"), 400, "invalid_request"),
        (Endpoint::ResetPassword, json_request("{\"token\":\"x\"}"), 400, "invalid_request"),
        (
            Endpoint::ResetPassword,
            json_request("{\"token\":\"x\",\"password\":\"long enough pass\"}"),
            400,
            "invalid_token",
        ),
        (Endpoint::ChangePassword, text("POST", "/auth/password/change"), 415, "unsupported_media_type"),
        (Endpoint::DeleteAccount, text("DELETE", "/auth/me"), 415, "unsupported_media_type"),
        (
            Endpoint::DeleteAccount,
            bearer_json("DELETE", "/auth/me", &access, Some(&json!({}))),
            400,
            "invalid_request",
        ),
        (Endpoint::Sessions, json_request("{}"), 401, "missing_token"),
        (Endpoint::RevokeSession, json_request("{}"), 401, "missing_token"),
    ];
    for (endpoint, request, status, code) in cases {
        let response = api.send(endpoint, request).await;
        assert_eq!((response.status, response.error_code()), (status, code), "{endpoint:?}");
    }
    let users: i64 = api.count("select count(*) from users").await;
    assert_eq!(users, 1, "nothing was deleted");
}
