//! The second factor through the real binaries and the emulator: an authenticator app enrolled
//! and confirmed, a sign-in finished with its code or a recovery code, the claims of each path,
//! a step-up, and one mfa_token raced by 20 clients, one code and one recovery code by 10 each,
//! on sandboxes of their own.

use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use http::Method;
use serde_json::{Value, json};
use shared::mfa::totp::{self, TotpSecret};

use crate::helpers::{TestApi, email, jwt_part};
use test_support::PASSWORD;

fn now_step() -> u64 {
    totp::step_of(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs())
}

/// The `aal` and `amr` claims of an access token.
fn assurance(access: &str) -> (String, Vec<String>) {
    let claims = jwt_part(access, 1);
    let amr = claims["amr"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
    (claims["aal"].as_str().unwrap().to_owned(), amr)
}

fn methods(amr: &[&str]) -> Vec<String> {
    amr.iter().map(|m| (*m).to_owned()).collect()
}

impl TestApi {
    async fn mfa_token(&self, address: &str) -> String {
        let login = self.post_login(address).await;
        assert_eq!(login.body["mfa_required"], true, "{}", login.text);
        login.body["mfa_token"].as_str().unwrap().to_owned()
    }
}

/// An account with a live factor: its secret, its recovery codes, the step that confirmed it
/// and the confirming session's access token.
struct Enrolled {
    address: String,
    secret: TotpSecret,
    factor_id: String,
    codes: Vec<String>,
    step: u64,
    access: String,
}

async fn enrolled(api: &TestApi) -> Enrolled {
    let address = email();
    let signup = api.post_signup(&address).await;
    assert_eq!(signup.status, 201, "{}", signup.text);
    let enrolment = api.bearer(Method::POST, "/auth/mfa/totp/enroll", &signup.access_token(), None).await;
    assert_eq!(enrolment.status, 200, "{}", enrolment.text);
    let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().unwrap()).unwrap();
    let factor_id = enrolment.body["factor_id"].as_str().unwrap().to_owned();
    let step = now_step();
    let body = json!({ "factor_id": factor_id, "code": secret.code_at(step) });
    let confirmed =
        api.bearer(Method::POST, "/auth/mfa/totp/confirm", &signup.access_token(), Some(body)).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let codes = confirmed.body["recovery_codes"].as_array().unwrap();
    let codes = codes.iter().map(|code| code.as_str().unwrap().to_owned()).collect();
    Enrolled { address, secret, factor_id, codes, step, access: confirmed.access_token() }
}

#[tokio::test]
async fn an_authenticator_app_signs_its_user_in_at_aal2_through_the_binaries() {
    let api = TestApi::start().await;
    let user = enrolled(&api).await;
    assert_eq!(assurance(&user.access), ("aal2".to_owned(), methods(&["pwd", "otp"])));

    let login = api.post_login(&user.address).await;
    assert_eq!(login.status, 200);
    assert!(login.body.get("access_token").is_none(), "{}", login.text);
    assert_eq!(login.body["factors"], json!([{ "id": user.factor_id, "type": "totp" }]));
    let token = login.body["mfa_token"].as_str().unwrap();
    let wrong = api.post_json("/auth/mfa/verify", &json!({ "mfa_token": token, "code": "000000" })).await;
    let code = user.secret.code_at(user.step + 1);
    let signed_in = api.post_json("/auth/mfa/verify", &json!({ "mfa_token": token, "code": code })).await;

    assert_eq!((wrong.status, wrong.body["error"].as_str()), (401, Some("invalid_mfa_code")));
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    assert_eq!(assurance(&signed_in.access_token()), ("aal2".to_owned(), methods(&["pwd", "otp"])));
    let refreshed = api.post_refresh(&signed_in.refresh_token()).await;
    assert_eq!(assurance(&refreshed.access_token()), ("aal2".to_owned(), methods(&["pwd", "otp"])));

    let token = api.mfa_token(&user.address).await;
    let body = json!({ "mfa_token": token, "recovery_code": user.codes[0] });
    let recovered = api.post_json("/auth/mfa/verify", &body).await;
    assert_eq!(recovered.status, 200, "{}", recovered.text);
    assert_eq!(
        assurance(&recovered.access_token()),
        ("aal2".to_owned(), methods(&["pwd", "otp", "recovery"]))
    );

    let me = api.get_me(&recovered.access_token()).await;
    assert_eq!(me.body["factors"][0]["recovery_codes_left"], 9, "{}", me.text);
    let password = api
        .bearer(
            Method::POST,
            "/auth/reauthenticate",
            &recovered.access_token(),
            Some(json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(password.status, 200, "{}", password.text);
    assert_eq!(assurance(&password.access_token()).0, "aal2", "the session keeps its level");
}

/// Statuses of `bodies` posted to `path` at once, each by a client of its own.
async fn at_once(api: &TestApi, path: &str, bodies: Vec<Value>) -> Vec<u16> {
    join_all(bodies.iter().map(|body| api.post_json(path, body))).await.iter().map(|r| r.status).collect()
}

fn one_success(statuses: &[u16]) {
    assert!(statuses.iter().all(|status| [200, 401, 429].contains(status)), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&status| status == 200).count(), 1, "{statuses:?}");
}

#[tokio::test]
async fn twenty_clients_with_one_mfa_token_and_code_sign_in_once() {
    let api = TestApi::start().await;
    let user = enrolled(&api).await;
    let token = api.mfa_token(&user.address).await;
    let code = user.secret.code_at(user.step + 1);

    let statuses =
        at_once(&api, "/auth/mfa/verify", vec![json!({ "mfa_token": token, "code": code }); 20]).await;

    one_success(&statuses);
}

#[tokio::test]
async fn ten_clients_with_one_code_and_ten_with_one_recovery_code_each_sign_in_once() {
    let api = TestApi::start().await;
    let user = enrolled(&api).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(api.mfa_token(&user.address).await);
    }
    let code = user.secret.code_at(user.step + 1);
    let recovery = &user.codes[0];

    let with_code: Vec<Value> =
        tokens[..10].iter().map(|t| json!({ "mfa_token": t, "code": code })).collect();
    let with_recovery: Vec<Value> =
        tokens[10..].iter().map(|t| json!({ "mfa_token": t, "recovery_code": recovery })).collect();

    let code_statuses = at_once(&api, "/auth/mfa/verify", with_code).await;
    // The losers' tries counted against the user's backoff after the winner cleared it: the
    // next race starts from a clean count, as it would a little later.
    sqlx::query("delete from login_attempts where source = 'mfa'").execute(&api.db.pool).await.unwrap();
    let recovery_statuses = at_once(&api, "/auth/mfa/verify", with_recovery).await;

    one_success(&code_statuses);
    one_success(&recovery_statuses);
}

/// The emulator with mail through the local SES (the change notices carry their undo links).
async fn with_mail() -> TestApi {
    test_support::verify_mail_identity().await;
    let outbox = std::env::temp_dir().join(format!("outbox-{}", uuid::Uuid::new_v4().simple()));
    TestApi::start_with(|config| crate::account::with_mail(config, test_support::MAIL_FROM, &outbox)).await
}

/// The token of the newest mail to `address` whose subject is `subject`.
async fn link_in(address: &str, subject: &str) -> String {
    let mails = test_support::sent_mail(address).await;
    let mail = mails.iter().rev().find(|mime| test_support::read_mail(mime).subject == subject);
    test_support::link_token(mail.unwrap_or_else(|| panic!("no mail {subject:?} to {address}")))
}

#[tokio::test]
async fn step_ups_a_reset_with_the_factor_on_and_the_owners_undo_link_through_the_binaries() {
    let api = with_mail().await;
    let user = enrolled(&api).await;

    // Step-up: a proof older than five minutes is not enough to remove the factor; a
    // password re-entered is not a second factor; a code is.
    sqlx::query("update sessions set authenticated_at = now() - interval '6 minutes', second_factor_at = now() - interval '6 minutes'")
        .execute(&api.db.pool)
        .await
        .unwrap();
    let remove_path = format!("/auth/mfa/totp/{}", user.factor_id);
    let code = json!({ "code": user.secret.code_at(user.step + 1) });
    let stale = api.bearer(Method::DELETE, &remove_path, &user.access, Some(code.clone())).await;
    let password = api
        .bearer(Method::POST, "/auth/reauthenticate", &user.access, Some(json!({ "password": PASSWORD })))
        .await;
    let still = api.bearer(Method::DELETE, &remove_path, &password.access_token(), Some(code.clone())).await;
    let stepped_up = api.bearer(Method::POST, "/auth/reauthenticate", &user.access, Some(code)).await;
    assert_eq!((stale.status, stale.body["required"].as_str()), (403, Some("aal2")), "{}", stale.text);
    assert_eq!(password.status, 200, "{}", password.text);
    assert_eq!((still.status, still.body["required"].as_str()), (403, Some("aal2")), "{}", still.text);
    assert_eq!(stepped_up.status, 200, "{}", stepped_up.text);
    assert_eq!(assurance(&stepped_up.access_token()).0, "aal2");

    // A reset link sets the password and ends every session, and only the factor signs in.
    api.post_json("/auth/password/forgot", &json!({ "email": user.address })).await;
    let token = link_in(&user.address, "Reset your password").await;
    let new_password = "violet tractor umbrella sunrise";
    let reset =
        api.post_json("/auth/password/reset", &json!({ "token": token, "password": new_password })).await;
    assert_eq!((reset.status, &reset.body["mfa_required"]), (200, &json!(true)), "{}", reset.text);
    assert!(reset.body.get("access_token").is_none());
    assert_eq!(api.get_me(&stepped_up.access_token()).await.status, 401, "every session ended");
    let body = json!({ "mfa_token": reset.body["mfa_token"], "recovery_code": user.codes[0] });
    let signed_in = api.post_json("/auth/mfa/verify", &body).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);

    // "This wasn't me": the link of the enrolment's mail takes the factor off, ends every
    // session and leaves the password unusable until a reset.
    let undo = link_in(&user.address, "A second factor was added to your account").await;
    let undone = api.post_json("/auth/security/undo", &json!({ "token": undo })).await;
    let again = api.post_json("/auth/security/undo", &json!({ "token": undo })).await;
    assert_eq!(undone.status, 204, "{}", undone.text);
    assert_eq!((again.status, again.body["error"].as_str()), (400, Some("invalid_token")));
    assert_eq!(api.post_refresh(&signed_in.refresh_token()).await.status, 401);
    let login =
        api.post_json("/auth/login", &json!({ "email": user.address, "password": new_password })).await;
    assert_eq!(
        (login.status, login.body["error"].as_str()),
        (401, Some("invalid_credentials")),
        "{}",
        login.text
    );
    let factors: i64 =
        sqlx::query_scalar("select count(*) from mfa_factors").fetch_one(&api.db.pool).await.unwrap();
    assert_eq!(factors, 0, "the factor is gone");
}
