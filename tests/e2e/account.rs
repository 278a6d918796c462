//! The account lifecycle end to end: the real function binaries behind the emulator's HTTP API,
//! mailing through the real SDK to the local SES (`scripts/with-moto`), the links read back from
//! what SES accepted and from the `.eml` copies in `MAIL_OUTBOX_DIR`.

use std::path::{Path, PathBuf};

use crate::helpers::{REGION, TestApi, email};
use http::Method;
use local_lambda::{EmulatorConfig, Log};
use serde_json::json;
use test_support::{APP_URL, MAIL_FROM, PASSWORD, link_token, sent_mail, verify_mail_identity};

const NEW_PASSWORD: &str = "violet tractor umbrella sunrise";

/// The functions mail through the local SES from the tests' verified identity, and write a
/// copy of every message into `outbox`.
pub(crate) fn with_mail(config: &mut EmulatorConfig, from: &str, outbox: &Path) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SESV2").expect("a local SES (scripts/with-moto)");
    config.region = REGION.to_owned();
    let env = &mut config.env_overrides;
    env.set_for_all("AWS_ENDPOINT_URL_SESV2", endpoint);
    env.set_for_all("AWS_ACCESS_KEY_ID", "moto");
    env.set_for_all("AWS_SECRET_ACCESS_KEY", "moto");
    env.set_for_all("MAIL_FROM", from);
    env.set_for_all("APP_URL", APP_URL);
    env.set_for_all("MAIL_OUTBOX_DIR", outbox.display().to_string());
}

fn outbox() -> PathBuf {
    std::env::temp_dir().join(format!("outbox-{}", uuid::Uuid::new_v4().simple()))
}

/// The `.eml` files in `outbox`, in name order (oldest first).
fn eml_files(outbox: &Path) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(outbox)
        .map(|entries| entries.map(|entry| entry.expect("an entry").path()).collect())
        .unwrap_or_default();
    names.sort();
    names.iter().map(|path| std::fs::read_to_string(path).expect("an .eml file")).collect()
}

#[tokio::test]
async fn signup_mail_verify_then_forgot_mail_reset_ends_the_old_sessions() {
    verify_mail_identity().await;
    let outbox = outbox();
    let api = TestApi::start_with(|config| with_mail(config, MAIL_FROM, &outbox)).await;
    let address = email();

    // Signup → mail → verify.
    let signup = api
        .request(
            Method::POST,
            "/auth/signup",
            &[("content-type", "application/json"), ("user-agent", "Browser/1.0")],
            Some(&json!({ "email": address, "password": PASSWORD }).to_string()),
        )
        .await;
    assert_eq!(signup.status, 201, "{}", signup.text);
    let mail = sent_mail(&address).await;
    assert_eq!(mail.len(), 1);
    let token = link_token(&mail[0]);
    let copies = eml_files(&outbox);
    assert_eq!(copies.len(), 1, "one .eml per message");
    assert_eq!(link_token(&copies[0]), token, "the local copy is the message SES got");
    let verified = api.post_json("/auth/verify-email", &json!({ "token": token })).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    let me = api.get_me(&signup.access_token()).await;
    assert_eq!(me.body["email_verified_at"], verified.body["user"]["email_verified_at"]);
    assert!(me.body["email_verified_at"].is_string());

    // The sessions list names the device and the address the front door saw.
    let second = api.post_login(&address).await;
    let sessions = api.bearer(Method::GET, "/auth/sessions", &second.access_token(), None).await;
    assert_eq!(sessions.status, 200, "{}", sessions.text);
    let listed = sessions.body["sessions"].as_array().expect("a list").clone();
    assert_eq!(listed.len(), 2);
    let browser = listed.iter().find(|s| s["user_agent"] == "Browser/1.0").expect("signup's session");
    assert_eq!((&browser["ip"], &browser["current"]), (&json!("127.0.0.1"), &json!(false)));

    // Forgot → mail → reset: the old sessions are dead.
    let forgot = api.post_json("/auth/password/forgot", &json!({ "email": address })).await;
    assert_eq!((forgot.status, forgot.text.as_str()), (202, ""));
    let mail = sent_mail(&address).await;
    assert_eq!(mail.len(), 2);
    assert!(mail[1].contains("Reset your password"));
    assert_eq!(eml_files(&outbox).len(), 2);
    let reset = api
        .post_json(
            "/auth/password/reset",
            &json!({ "token": link_token(&mail[1]), "password": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    for old in [&signup, &second] {
        assert_eq!(api.post_refresh(&old.refresh_token()).await.status, 401);
        assert_eq!(api.get_me(&old.access_token()).await.status, 401);
    }
    assert_eq!(api.get_me(&reset.access_token()).await.status, 200);
    assert_eq!(api.post_login(&address).await.status, 401, "the old password is gone");
    std::fs::remove_dir_all(&outbox).ok();
}

#[tokio::test]
async fn sessions_are_revoked_by_id_and_the_account_deleted_through_the_routes() {
    let api = TestApi::start().await;
    let address = email();
    let first = api.post_signup(&address).await;
    let second = api.post_login(&address).await;
    let listed = api.bearer(Method::GET, "/auth/sessions", &second.access_token(), None).await;
    let first_id = listed.body["sessions"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|s| s["current"] == false)
        .expect("the first session")["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    let revoked =
        api.bearer(Method::DELETE, &format!("/auth/sessions/{first_id}"), &second.access_token(), None).await;
    let unknown =
        api.bearer(Method::DELETE, "/auth/sessions/not-a-session", &second.access_token(), None).await;
    let change = api
        .bearer(
            Method::POST,
            "/auth/password/change",
            &second.access_token(),
            Some(json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD })),
        )
        .await;
    let wrong = api
        .bearer(Method::DELETE, "/auth/me", &second.access_token(), Some(json!({ "password": PASSWORD })))
        .await;
    let deleted = api
        .bearer(Method::DELETE, "/auth/me", &second.access_token(), Some(json!({ "password": NEW_PASSWORD })))
        .await;

    assert_eq!(revoked.status, 204, "{}", revoked.text);
    assert_eq!(api.get_me(&first.access_token()).await.status, 401);
    assert_eq!((unknown.status, &unknown.body["error"]), (404, &json!("session_not_found")));
    assert_eq!(change.status, 204, "{}", change.text);
    assert_eq!((wrong.status, &wrong.body["error"]), (403, &json!("invalid_password")));
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(api.get_me(&second.access_token()).await.status, 401, "the token died with the account");
    let users: i64 = sqlx::query_scalar("select count(*) from users").fetch_one(&api.db.pool).await.unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn a_mail_ses_refuses_is_logged_with_its_code_and_counted() {
    let outbox = outbox();
    // No identity has this domain: SES refuses the send (MessageRejected).
    let api = TestApi::start_with(|config| {
        with_mail(config, "Nobody <nobody@unverified.test>", &outbox);
        config.log = Log::captured();
    })
    .await;
    let address = email();

    let signup = api.post_signup(&address).await;
    let forgot = api.post_json("/auth/password/forgot", &json!({ "email": address })).await;

    assert_eq!(signup.status, 201, "{}", signup.text);
    assert_eq!((forgot.status, forgot.text.as_str()), (202, ""));
    assert!(sent_mail(&address).await.is_empty());
    let lines = crate::helpers::eventually(
        "two MailRejected metrics",
        std::time::Duration::from_secs(10),
        || async {
            let lines: Vec<String> = api
                .emulator
                .log()
                .lines()
                .into_iter()
                .filter(|line| line.contains("\"MailRejected\"") || line.contains("MessageRejected"))
                .collect();
            (lines.iter().filter(|line| line.contains("\"_aws\"")).count() >= 2).then_some(lines)
        },
    )
    .await;
    assert!(lines.iter().any(|line| line.contains("ses_error=MessageRejected")), "{lines:#?}");
    let tokens: i64 =
        sqlx::query_scalar("select count(*) from mail_tokens").fetch_one(&api.db.pool).await.unwrap();
    assert_eq!(tokens, 2, "both links are stored");
    std::fs::remove_dir_all(&outbox).ok();
}
