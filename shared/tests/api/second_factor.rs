//! The second factor through the real handlers and a real Postgres: enrolment and confirmation,
//! sign-in with a code or a recovery code, step-up and its refusals, a reset with MFA on, what
//! voids a sign-in waiting for its factor, and each single-use credential raced 20 ways.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::helpers::{Endpoint, PASSWORD, Response, TestApp, address, at_once, bearer_json};
use serde_json::{Value, json};
use shared::domain::{Aal, MailKind};
use shared::mfa::totp::{self, TotpSecret};
use shared::tokens::{Claims, MailToken};
use sqlx::PgPool;

const EMAIL: &str = "alice@example.com";
const NEW_PASSWORD: &str = "violet tractor umbrella sunrise";

/// The current TOTP step.
fn now_step() -> u64 {
    totp::step_of(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs())
}

/// A user with a live factor: the secret their app holds, the factor's id, their recovery codes
/// and the confirming session's tokens (its access token at aal2).
struct Enrolled {
    secret: TotpSecret,
    factor_id: String,
    recovery_codes: Vec<String>,
    access: String,
    refresh: String,
    /// The step whose code confirmed the factor (used: only later ones are accepted).
    confirmed_step: u64,
}

impl TestApp {
    async fn bearer(
        &self,
        endpoint: Endpoint,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> Response {
        self.send(endpoint, bearer_json(method, path, token, Some(&body))).await
    }

    async fn enroll(&self, access: &str) -> Response {
        self.send(Endpoint::MfaEnroll, bearer_json("POST", "/auth/mfa/totp/enroll", access, None)).await
    }

    async fn confirm(&self, access: &str, factor_id: &str, code: &str) -> Response {
        let body = json!({ "factor_id": factor_id, "code": code });
        self.bearer(Endpoint::MfaConfirm, "POST", "/auth/mfa/totp/confirm", access, body).await
    }

    async fn verify_mfa(&self, mfa_token: &str, proof: Value) -> Response {
        let mut body = proof;
        body["mfa_token"] = json!(mfa_token);
        self.post_json(Endpoint::MfaVerify, &body).await
    }

    async fn reauthenticate(&self, access: &str, proof: Value) -> Response {
        self.bearer(Endpoint::Reauthenticate, "POST", "/auth/reauthenticate", access, proof).await
    }

    async fn remove_factor(&self, access: &str, factor_id: &str, proof: Value) -> Response {
        let path = format!("/auth/mfa/totp/{factor_id}");
        self.bearer(Endpoint::MfaRemove, "DELETE", &path, access, proof).await
    }

    async fn new_recovery_codes(&self, access: &str, proof: Value) -> Response {
        self.bearer(Endpoint::RecoveryCodes, "POST", "/auth/mfa/recovery-codes", access, proof).await
    }

    /// Signs `email` up and makes a TOTP factor live for them.
    async fn enrolled(&self, email: &str) -> Enrolled {
        let signup = self.signed_up(email).await;
        let enrolment = self.enroll(&signup.access_token()).await;
        assert_eq!(enrolment.status, 200, "{}", enrolment.body);
        let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().unwrap()).unwrap();
        let factor_id = enrolment.body["factor_id"].as_str().unwrap().to_owned();
        let step = now_step();
        let confirmed = self.confirm(&signup.access_token(), &factor_id, &secret.code_at(step)).await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
        let recovery_codes = confirmed.body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap().to_owned())
            .collect();
        Enrolled {
            secret,
            factor_id,
            recovery_codes,
            access: confirmed.access_token(),
            refresh: signup.refresh_token(),
            confirmed_step: step,
        }
    }

    /// A login that the factor must finish: its `mfa_token`.
    async fn mfa_token(&self, email: &str) -> String {
        self.mfa_token_with(email, PASSWORD).await
    }

    /// [`Self::mfa_token`], with `password`.
    async fn mfa_token_with(&self, email: &str, password: &str) -> String {
        let login = self.post_login(email, password).await;
        assert_eq!(login.status, 200, "{}", login.body);
        assert_eq!(login.body["mfa_required"], true, "{}", login.body);
        login.body["mfa_token"].as_str().unwrap().to_owned()
    }

    /// A password reset through a link stored for `email` (as the forgot-password mail would
    /// carry it): the reset's answer.
    async fn reset_by_link(&self, email: &str, password: &str) -> Response {
        let link = MailToken::generate().unwrap();
        // As if the minute between two reset mails had passed.
        sqlx::query("update mail_quota set reset_password_sent_at = null, window_count = 1 where email = $1")
            .bind(email)
            .execute(&self.pool)
            .await
            .unwrap();
        let mut db = self.app.connection().await.unwrap();
        shared::links::store::request_mail(
            &mut db,
            email,
            MailKind::ResetPassword,
            &link.hash(),
            u32::MAX,
            None,
        )
        .await
        .unwrap();
        db.release();
        let reset = self
            .post_json(Endpoint::ResetPassword, &json!({ "token": link.expose(), "password": password }))
            .await;
        assert_eq!(reset.status, 200, "{}", reset.body);
        reset
    }
}

fn amr(claims: &Claims) -> Vec<&str> {
    claims.amr.iter().map(String::as_str).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn an_enrolled_user_signs_in_with_a_code_then_a_recovery_code_at_aal2(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up(EMAIL).await;
    let other = app.post_login(EMAIL, PASSWORD).await;
    let signup_access = app.post_login(EMAIL, PASSWORD).await.access_token();
    let enrolment = app.enroll(&signup_access).await;
    let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().unwrap()).unwrap();
    let factor_id = enrolment.body["factor_id"].as_str().unwrap().to_owned();
    let uri = enrolment.body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&secret.base32()), "{uri}");
    let step = now_step();
    let confirmed = app.confirm(&signup_access, &factor_id, &secret.code_at(step)).await;

    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.body["factor_id"], factor_id.as_str());
    let codes = confirmed.body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let confirmed_claims = app.claims(&confirmed.access_token()).await;
    assert_eq!((confirmed_claims.aal, amr(&confirmed_claims)), (Aal::Aal2, vec!["pwd", "otp"]));
    // Every other session of the user ended with the confirmation.
    assert_eq!(app.post_refresh(&other.refresh_token()).await.status, 401);

    let login = app.post_login(EMAIL, PASSWORD).await;
    assert_eq!(login.status, 200);
    assert_eq!(login.body["mfa_required"], true);
    assert_eq!(login.body["factors"], json!([{ "id": factor_id, "type": "totp" }]));
    assert!(login.body.get("access_token").is_none() && login.body.get("refresh_token").is_none());
    let token = login.body["mfa_token"].as_str().unwrap();

    let replayed = app.verify_mfa(token, json!({ "code": secret.code_at(step) })).await;
    let unknown = app.verify_mfa(&"A".repeat(43), json!({ "code": secret.code_at(step + 1) })).await;
    let signed_in = app.verify_mfa(token, json!({ "code": secret.code_at(step + 1) })).await;
    let again = app.verify_mfa(token, json!({ "code": secret.code_at(step + 1) })).await;

    assert_eq!(
        (replayed.status, replayed.error_code()),
        (401, "invalid_mfa_code"),
        "the confirming code, again"
    );
    assert_eq!((unknown.status, unknown.error_code()), (401, "invalid_mfa_token"));
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!((again.status, again.error_code()), (401, "invalid_mfa_token"), "an mfa_token works once");
    let claims = app.claims(&signed_in.access_token()).await;
    assert_eq!((claims.aal, amr(&claims)), (Aal::Aal2, vec!["pwd", "otp"]));
    let refreshed = app.post_refresh(&signed_in.refresh_token()).await;
    let refreshed_claims = app.claims(&refreshed.access_token()).await;
    assert_eq!((refreshed_claims.aal, amr(&refreshed_claims)), (Aal::Aal2, vec!["pwd", "otp"]));

    let code = codes[3].as_str().unwrap().to_lowercase();
    let with_recovery = app.verify_mfa(&app.mfa_token(EMAIL).await, json!({ "recovery_code": code })).await;
    let spent = app.verify_mfa(&app.mfa_token(EMAIL).await, json!({ "recovery_code": code })).await;

    assert_eq!(with_recovery.status, 200, "{}", with_recovery.body);
    let claims = app.claims(&with_recovery.access_token()).await;
    assert_eq!((claims.aal, amr(&claims)), (Aal::Aal2, vec!["pwd", "otp", "recovery"]));
    assert_eq!((spent.status, spent.error_code()), (401, "invalid_mfa_code"), "a recovery code works once");
    let me = app.get_me(&with_recovery.access_token()).await;
    assert_eq!(me.body["email"], EMAIL);
    let factors = me.body["factors"].as_array().unwrap();
    assert_eq!(factors.len(), 1, "{}", me.body);
    assert_eq!((&factors[0]["id"], &factors[0]["type"]), (&json!(factor_id), &json!("totp")));
    assert_eq!(factors[0]["recovery_codes_left"], 9);
    assert!(factors[0]["created_at"].is_string() && factors[0]["last_used_at"].is_string());
}

#[sqlx::test(migrations = "../migrations")]
async fn wrong_codes_are_held_back_per_user_and_an_mfa_token_dies_after_five(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let token = app.mfa_token(EMAIL).await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.verify_mfa(&token, json!({ "code": "000000" })).await.status);
    }
    let right = enrolled.secret.code_at(enrolled.confirmed_step + 1);
    let after = app.verify_mfa(&token, json!({ "code": right })).await;
    let fresh_token = app.mfa_token(EMAIL).await;
    let held_back = app.verify_mfa(&fresh_token, json!({ "code": right })).await;

    // A wrong code that happens to be right is one in a million; the test would say so.
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401], "five tries on the token, then it is dead");
    assert_eq!((after.status, after.error_code()), (401, "invalid_mfa_token"));
    assert_eq!(held_back.status, 429, "the user's backoff holds any token: {}", held_back.body);
    assert!(held_back.header("retry-after").is_some());
}

#[sqlx::test(migrations = "../migrations")]
async fn sensitive_actions_need_a_recent_proof_and_of_the_second_factor_when_there_is_one(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up(EMAIL).await;
    app.proofs_ago(&signup.access_token(), 6).await;

    let stale = app.enroll(&signup.access_token()).await;
    let wrong = app.reauthenticate(&signup.access_token(), json!({ "password": "not it at all" })).await;
    let two =
        app.reauthenticate(&signup.access_token(), json!({ "password": PASSWORD, "code": "123456" })).await;
    let stepped_up = app.reauthenticate(&signup.access_token(), json!({ "password": PASSWORD })).await;
    let fresh = app.enroll(&stepped_up.access_token()).await;

    assert_eq!((stale.status, stale.error_code()), (403, "step_up_required"));
    assert_eq!(stale.body["required"], "recent_authentication");
    assert_eq!((wrong.status, wrong.error_code()), (403, "invalid_password"));
    assert_eq!((two.status, two.error_code()), (422, "proof_required"));
    assert_eq!(stepped_up.status, 200, "{}", stepped_up.body);
    assert!(stepped_up.body.get("refresh_token").is_none(), "the refresh token is unchanged");
    assert_eq!(fresh.status, 200, "{}", fresh.body);

    let bob = app.enrolled("bob@example.com").await;
    app.proofs_ago(&bob.access, 6).await;
    let code = bob.secret.code_at(bob.confirmed_step + 1);

    let stale = app.remove_factor(&bob.access, &bob.factor_id, json!({ "code": code })).await;
    let password_only = app.reauthenticate(&bob.access, json!({ "password": PASSWORD })).await;
    let still = app.remove_factor(&bob.access, &bob.factor_id, json!({ "code": code })).await;
    let change = app
        .bearer(
            Endpoint::ChangePassword,
            "POST",
            "/auth/password/change",
            &bob.access,
            json!({ "current_password": PASSWORD, "new_password": "violet tractor umbrella sunrise" }),
        )
        .await;
    let with_code = app.reauthenticate(&bob.access, json!({ "code": code })).await;
    let removed = app.remove_factor(&with_code.access_token(), &bob.factor_id, json!({ "code": code })).await;
    let recovery = json!({ "recovery_code": bob.recovery_codes[0] });
    let removed_now = app.remove_factor(&with_code.access_token(), &bob.factor_id, recovery).await;
    let login = app.post_login("bob@example.com", PASSWORD).await;

    assert_eq!((stale.status, stale.body["required"].as_str()), (403, Some("aal2")));
    assert_eq!(password_only.status, 200);
    assert_eq!(
        (still.status, still.body["required"].as_str()),
        (403, Some("aal2")),
        "a password renews the proof's time, not the second factor's"
    );
    assert_eq!((change.status, change.body["required"].as_str()), (403, Some("aal2")));
    assert_eq!(with_code.status, 200, "{}", with_code.body);
    assert_eq!(app.claims(&with_code.access_token()).await.aal, Aal::Aal2);
    assert_eq!(
        (removed.status, removed.error_code()),
        (403, "invalid_mfa_code"),
        "the step-up's code, again"
    );
    assert_eq!(removed_now.status, 204, "{}", removed_now.body);
    assert!(login.body.get("access_token").is_some(), "no factor left: {}", login.body);
    assert_eq!(app.count("select count(*) from recovery_codes").await, 0, "bob's went with the factor");
}

#[sqlx::test(migrations = "../migrations")]
async fn new_recovery_codes_replace_the_old_ones(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let old = &enrolled.recovery_codes[0];

    let renewed = app.new_recovery_codes(&enrolled.access, json!({ "recovery_code": old })).await;
    let replayed = app.new_recovery_codes(&enrolled.access, json!({ "recovery_code": old })).await;

    assert_eq!(renewed.status, 200, "{}", renewed.body);
    let codes = renewed.body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!((replayed.status, replayed.error_code()), (403, "invalid_mfa_code"));
    let old_two = app
        .verify_mfa(&app.mfa_token(EMAIL).await, json!({ "recovery_code": enrolled.recovery_codes[1] }))
        .await;
    let new_one = app.verify_mfa(&app.mfa_token(EMAIL).await, json!({ "recovery_code": codes[1] })).await;
    assert_eq!(old_two.status, 401, "the old set died");
    assert_eq!(new_one.status, 200, "{}", new_one.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reset_with_mfa_on_signs_in_only_through_the_factor_and_voids_waiting_sign_ins(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let waiting = app.mfa_token(EMAIL).await;

    let reset = app.reset_by_link(EMAIL, NEW_PASSWORD).await;

    assert_eq!(reset.body["mfa_required"], true, "a mailbox alone opens no session: {}", reset.body);
    assert!(reset.body.get("access_token").is_none());
    assert_eq!(app.post_refresh(&enrolled.refresh).await.status, 401, "every session ended");
    let code = enrolled.secret.code_at(enrolled.confirmed_step + 1);
    let voided = app.verify_mfa(&waiting, json!({ "code": code })).await;
    assert_eq!((voided.status, voided.error_code()), (401, "invalid_mfa_token"), "the reset voided it");
    let signed_in = app.verify_mfa(reset.body["mfa_token"].as_str().unwrap(), json!({ "code": code })).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(app.claims(&signed_in.access_token()).await.aal, Aal::Aal2);
}

fn successes(statuses: &[u16]) -> usize {
    assert!(statuses.iter().all(|status| [200, 401, 429].contains(status)), "{statuses:?}");
    statuses.iter().filter(|&&status| status == 200).count()
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_verifications_of_one_token_and_one_code_at_once_sign_in_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let token = app.mfa_token(EMAIL).await;
    let code = enrolled.secret.code_at(enrolled.confirmed_step + 1);

    let statuses = at_once(&app, 20, |app, _| {
        let (token, code) = (token.clone(), code.clone());
        async move { app.verify_mfa(&token, json!({ "code": code })).await.status }
    })
    .await;

    assert_eq!(successes(&statuses), 1, "{statuses:?}");
    let sessions = app.count("select count(*) from sessions where revoked_at is null").await;
    assert_eq!(sessions, 2, "the confirming session and one more: {statuses:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_sign_ins_with_one_recovery_code_at_once_succeed_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(app.mfa_token(EMAIL).await);
    }
    let code = enrolled.recovery_codes[0].clone();

    let statuses = at_once(&app, 20, |app, n| {
        let (token, code) = (tokens[n].clone(), code.clone());
        async move { app.verify_mfa(&token, json!({ "recovery_code": code })).await.status }
    })
    .await;

    assert_eq!(successes(&statuses), 1, "{statuses:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn removing_the_factor_voids_sign_ins_waiting_for_it(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let waiting = app.mfa_token(EMAIL).await;

    let removed = app
        .remove_factor(
            &enrolled.access,
            &enrolled.factor_id,
            json!({ "recovery_code": enrolled.recovery_codes[0] }),
        )
        .await;
    let voided = app.verify_mfa(&waiting, json!({ "recovery_code": enrolled.recovery_codes[1] })).await;
    let unknown = app
        .remove_factor(&enrolled.access, &uuid::Uuid::now_v7().to_string(), json!({ "code": "123456" }))
        .await;

    assert_eq!(removed.status, 204, "{}", removed.body);
    assert_eq!((voided.status, voided.error_code()), (401, "invalid_mfa_token"));
    assert_eq!(app.count("select count(*) from recovery_codes").await, 0);
    assert_eq!((unknown.status, unknown.error_code()), (404, "factor_not_found"));
}

impl TestApp {
    async fn undo(&self, token: &str) -> Response {
        self.post_json(Endpoint::UndoChange, &json!({ "token": token })).await
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_factor_added_by_someone_else_is_undone_by_the_owners_link_which_ends_every_session(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("hijacked");
    // Someone with the password and a session enrols their own authenticator app.
    let enrolled = app.enrolled(&email).await;
    let links = app.undo_links(&email).await;
    assert_eq!(links.len(), 1, "one mail: {links:?}");
    assert_eq!(links[0].0, "A second factor was added to your account");
    assert!(app.post_login(&email, PASSWORD).await.body["mfa_required"] == true);

    let undone = app.undo(&links[0].1).await;
    let again = app.undo(&links[0].1).await;

    assert_eq!(undone.status, 204, "{}", undone.body);
    assert_eq!((again.status, again.error_code()), (400, "invalid_token"), "the link works once");
    assert_eq!(app.post_refresh(&enrolled.refresh).await.status, 401, "every session ended");
    assert_eq!(app.get_me(&enrolled.access).await.status, 401);
    // The intruder proved the password: it stops working, and a reset link sets a new one.
    let login = app.post_login(&email, PASSWORD).await;
    assert_eq!((login.status, login.error_code()), (401, "invalid_credentials"));
    let reset = app.reset_by_link(&email, NEW_PASSWORD).await;
    assert!(reset.body.get("access_token").is_some(), "the intruder's factor is gone: {}", reset.body);
    assert_eq!(app.count("select count(*) from recovery_codes").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_removed_factor_and_renewed_codes_are_put_back_by_their_links(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("owner");
    let enrolled = app.enrolled(&email).await;
    let renewed = app
        .new_recovery_codes(&enrolled.access, json!({ "recovery_code": enrolled.recovery_codes[0] }))
        .await;
    assert_eq!(renewed.status, 200);
    let removed = app
        .remove_factor(
            &enrolled.access,
            &enrolled.factor_id,
            json!({ "recovery_code": renewed.body["recovery_codes"][0] }),
        )
        .await;
    assert_eq!(removed.status, 204);
    let links = app.undo_links(&email).await;
    let subjects: Vec<&str> = links.iter().map(|(subject, _)| subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "A second factor was added to your account",
            "Your recovery codes were replaced",
            "The second factor of your account was removed"
        ]
    );

    // The codes' link first: the factor is back with the codes it had before their renewal,
    // and the later link (the removal's) died with it.
    let undone = app.undo(&links[1].1).await;
    let later = app.undo(&links[2].1).await;

    assert_eq!(undone.status, 204, "{}", undone.body);
    assert_eq!((later.status, later.error_code()), (400, "invalid_token"));
    let reset = app.reset_by_link(&email, NEW_PASSWORD).await;
    assert_eq!(reset.body["mfa_required"], true, "the factor is back: {}", reset.body);
    let token = app.mfa_token_with(&email, NEW_PASSWORD).await;
    let new_code =
        app.verify_mfa(&token, json!({ "recovery_code": renewed.body["recovery_codes"][1] })).await;
    let old_code = app.verify_mfa(&token, json!({ "recovery_code": enrolled.recovery_codes[1] })).await;
    assert_eq!(new_code.status, 401, "the renewed set is gone");
    assert_eq!(old_code.status, 200, "{}", old_code.body);
    let code = enrolled.secret.code_at(enrolled.confirmed_step + 1);
    let with_app =
        app.verify_mfa(&app.mfa_token_with(&email, NEW_PASSWORD).await, json!({ "code": code })).await;
    assert_eq!(with_app.status, 200, "the owner's authenticator app works again: {}", with_app.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_sixth_change_to_the_factor_within_an_hour_is_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let mut codes = enrolled.recovery_codes.clone();

    let mut statuses = Vec::new();
    for _ in 0..5 {
        let renewed = app.new_recovery_codes(&enrolled.access, json!({ "recovery_code": codes[0] })).await;
        statuses.push(renewed.status);
        if renewed.status == 200 {
            codes = renewed.body["recovery_codes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
        }
    }

    // The confirmation was the first change of the hour.
    assert_eq!(statuses, [200, 200, 200, 200, 429], "four renewals after it, then the cap");
    assert_eq!(app.count("select count(*) from security_undo_tokens").await, 5, "five changes mailed");
    let kept = app.verify_mfa(&app.mfa_token(EMAIL).await, json!({ "recovery_code": codes[0] })).await;
    assert_eq!(kept.status, 200, "the refused renewal spent no code: {}", kept.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_enrolment_is_confirmed_within_fifteen_minutes_and_a_step_up(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up(EMAIL).await;
    let enrolment = app.enroll(&signup.access_token()).await;
    let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().unwrap()).unwrap();
    let factor_id = enrolment.body["factor_id"].as_str().unwrap();
    let code = secret.code_at(now_step());

    sqlx::query("update mfa_factors set created_at = now() - interval '16 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let stale = app.confirm(&signup.access_token(), factor_id, &code).await;
    sqlx::query("update mfa_factors set created_at = now()").execute(&app.pool).await.unwrap();
    app.proofs_ago(&signup.access_token(), 6).await;
    let no_step_up = app.confirm(&signup.access_token(), factor_id, &code).await;

    assert_eq!((stale.status, stale.error_code()), (404, "factor_not_found"));
    assert_eq!((no_step_up.status, no_step_up.error_code()), (403, "step_up_required"));
}

#[sqlx::test(migrations = "../migrations")]
async fn no_verification_racing_a_reset_keeps_a_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let mut password = PASSWORD.to_owned();
    for round in 0..4 {
        let token = app.mfa_token_with(EMAIL, &password).await;
        let next = format!("{NEW_PASSWORD} {round}");
        let code = json!({ "recovery_code": enrolled.recovery_codes[round] });

        let (verified, reset) = tokio::join!(app.verify_mfa(&token, code), app.reset_by_link(EMAIL, &next));

        assert_eq!(reset.body["mfa_required"], true);
        let live = app.count("select count(*) from sessions where revoked_at is null").await;
        assert_eq!(
            live, 0,
            "round {round}: verify answered {}, and the reset ended every session",
            verified.status
        );
        password = next;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn each_proof_and_change_of_the_second_factor_records_one_event(pool: PgPool) {
    let app = TestApp::new(pool);
    let enrolled = app.enrolled(EMAIL).await;
    let token = app.mfa_token(EMAIL).await;
    let wrong = app.verify_mfa(&token, json!({ "code": "000000" })).await;
    let right =
        app.verify_mfa(&token, json!({ "code": enrolled.secret.code_at(enrolled.confirmed_step + 1) })).await;
    let renewed = app
        .new_recovery_codes(&right.access_token(), json!({ "recovery_code": enrolled.recovery_codes[0] }))
        .await;
    let removed = app
        .remove_factor(
            &right.access_token(),
            &enrolled.factor_id,
            json!({ "recovery_code": renewed.body["recovery_codes"][0] }),
        )
        .await;

    assert_eq!((wrong.status, right.status, renewed.status, removed.status), (401, 200, 200, 204));
    let events = app.events_of(app.user_id(EMAIL).await).await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "signup",
            "mfa_enrolled",
            "mfa_failed",
            "mfa_passed",
            "login_succeeded",
            "mfa_passed",
            "recovery_codes_regenerated",
            "mfa_passed",
            "mfa_removed"
        ]
    );
    assert_eq!(events[1].1, json!({ "factor_id": enrolled.factor_id }));
    assert_eq!(events[2].1, json!({ "method": "totp", "purpose": "sign_in" }));
    assert_eq!(events[3].1, json!({ "method": "totp", "purpose": "sign_in" }));
    assert_eq!(events[4].1, json!({ "method": "password", "aal": "aal2", "amr": ["pwd", "otp"] }));
    assert_eq!(
        events[5].1,
        json!({ "method": "recovery_code", "purpose": "step_up", "recovery_codes_left": 9 })
    );
    assert_eq!(events[8].1, json!({ "factor_id": enrolled.factor_id }));
}
