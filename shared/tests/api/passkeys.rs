//! Passkeys through the real handlers, a real Postgres and a software authenticator (passkey-rs):
//! registration after a step-up, usernameless sign-in at aal2, a step-up with a passkey, the
//! counter of a cloned authenticator, removal and the owner's undo link, the sealed sign-in
//! ceremony (stored nowhere, used once), and each ceremony raced 20 ways.

use crate::helpers::{Endpoint, PASSWORD, Response, TestApp, address, at_once, bearer_json, json_request};
use serde_json::{Value, json};
use shared::domain::Aal;
use shared::passkeys::relying_party::{SIGN_IN_CONTEXT, SignInCeremony, ceremony_id};
use shared::tokens::Claims;
use sqlx::PgPool;
use test_support::APP_URL;
use test_support::authenticator::SoftwareAuthenticator;

/// A user with a passkey: their authenticator, the passkey's id, and the session that added it.
struct WithPasskey {
    email: String,
    authenticator: SoftwareAuthenticator,
    passkey_id: String,
    access: String,
}

impl TestApp {
    async fn passkey_call(
        &self,
        endpoint: Endpoint,
        method: &str,
        path: &str,
        access: &str,
        body: Option<Value>,
    ) -> Response {
        self.send(endpoint, bearer_json(method, path, access, body.as_ref())).await
    }

    async fn register_begin(&self, access: &str) -> Response {
        self.passkey_call(
            Endpoint::PasskeyRegisterBegin,
            "POST",
            "/auth/passkeys/register/begin",
            access,
            None,
        )
        .await
    }

    async fn register_finish(&self, access: &str, challenge_id: &str, credential: &Value) -> Response {
        let body = json!({ "challenge_id": challenge_id, "credential": credential, "name": "Laptop" });
        self.passkey_call(
            Endpoint::PasskeyRegisterFinish,
            "POST",
            "/auth/passkeys/register/finish",
            access,
            Some(body),
        )
        .await
    }

    /// Registers a passkey of `authenticator` for the session of `access`.
    async fn register(&self, access: &str, authenticator: &mut SoftwareAuthenticator) -> Response {
        let begun = self.register_begin(access).await;
        assert_eq!(begun.status, 200, "{}", begun.body);
        let credential = authenticator.register(&begun.body["publicKey"]).await.unwrap();
        self.register_finish(access, begun.body["challenge_id"].as_str().unwrap(), &credential).await
    }

    async fn login_begin(&self) -> Response {
        self.send(Endpoint::PasskeyLoginBegin, json_request("{}")).await
    }

    /// A sign-in ceremony begun and answered by `authenticator`: its id and the credential.
    async fn signed_ceremony(&self, authenticator: &mut SoftwareAuthenticator) -> (String, Value) {
        let begun = self.login_begin().await;
        assert_eq!(begun.status, 200, "{}", begun.body);
        let credential = authenticator.sign(&begun.body["publicKey"]).await.unwrap();
        (begun.body["challenge_id"].as_str().unwrap().to_owned(), credential)
    }

    async fn login_finish(&self, challenge_id: &str, credential: &Value) -> Response {
        let body = json!({ "challenge_id": challenge_id, "credential": credential });
        self.post_json(Endpoint::PasskeyLoginFinish, &body).await
    }

    async fn passkey_sign_in(&self, authenticator: &mut SoftwareAuthenticator) -> Response {
        let (challenge_id, credential) = self.signed_ceremony(authenticator).await;
        self.login_finish(&challenge_id, &credential).await
    }

    async fn remove_passkey(&self, access: &str, id: &str) -> Response {
        let path = format!("/auth/passkeys/{id}");
        self.passkey_call(Endpoint::PasskeyRemove, "DELETE", &path, access, None).await
    }

    async fn list_passkeys(&self, access: &str) -> Response {
        self.passkey_call(Endpoint::Passkeys, "GET", "/auth/passkeys", access, None).await
    }

    /// Signs `email` up (a recent proof) and registers a passkey for them.
    async fn with_passkey(&self, email: &str, counter: bool) -> WithPasskey {
        let signup = self.signed_up(email).await;
        let mut authenticator = SoftwareAuthenticator::new(APP_URL, counter);
        let registered = self.register(&signup.access_token(), &mut authenticator).await;
        assert_eq!(registered.status, 201, "{}", registered.body);
        WithPasskey {
            email: email.to_owned(),
            authenticator,
            passkey_id: registered.body["id"].as_str().unwrap().to_owned(),
            access: signup.access_token(),
        }
    }
}

fn amr(claims: &Claims) -> Vec<&str> {
    claims.amr.iter().map(String::as_str).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_passkey_registered_after_a_step_up_signs_in_without_a_username_at_aal2(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("passkey");
    let mut user = app.with_passkey(&email, true).await;

    let begun = app.login_begin().await;
    assert_eq!(begun.status, 200, "{}", begun.body);
    let options = &begun.body["publicKey"];
    assert!(
        options.get("allowCredentials").is_none_or(|list| list.as_array().is_some_and(Vec::is_empty)),
        "{options}"
    );
    assert_eq!(options["userVerification"], "required");
    let credential = user.authenticator.sign(options).await.unwrap();
    let signed_in = app.login_finish(begun.body["challenge_id"].as_str().unwrap(), &credential).await;

    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(signed_in.body["user"]["email"], email.as_str());
    let claims = app.claims(&signed_in.access_token()).await;
    assert_eq!(claims.aal, Aal::Aal2);
    let methods = amr(&claims);
    assert!(methods == ["hwk", "user"] || methods == ["swk", "user"], "{methods:?}");
    let refreshed = app.post_refresh(&signed_in.refresh_token()).await;
    assert_eq!(app.claims(&refreshed.access_token()).await.aal, Aal::Aal2, "a refresh keeps aal2");
    let listed = app.list_passkeys(&user.access).await;
    assert_eq!(listed.body["passkeys"].as_array().unwrap().len(), 1, "{}", listed.body);
    assert_eq!(listed.body["passkeys"][0]["id"], user.passkey_id.as_str());
    assert_eq!(listed.body["passkeys"][0]["name"], "Laptop");
    assert!(listed.body["passkeys"][0]["last_used_at"].is_string(), "{}", listed.body);
    let me = app.get_me(&signed_in.access_token()).await;
    assert_eq!(me.body["passkeys"][0]["id"], user.passkey_id.as_str(), "{}", me.body);
    let mail = test_support::sent_mail(&user.email).await;
    assert!(
        mail.iter()
            .any(|mime| test_support::read_mail(mime).subject == "A passkey was added to your account"),
        "the owner is told"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn adding_or_removing_a_passkey_needs_a_recent_proof_and_reauthenticate_takes_a_passkey(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let mut user = app.with_passkey(&address("step-up"), false).await;
    let other = app.with_passkey(&address("other"), false).await;
    app.proofs_ago(&user.access, 6).await;

    let begin = app.register_begin(&user.access).await;
    let remove = app.remove_passkey(&user.access, &user.passkey_id).await;
    assert_eq!((begin.status, begin.error_code()), (403, "step_up_required"));
    assert_eq!(begin.body["required"], "recent_authentication");
    assert_eq!((remove.status, remove.error_code()), (403, "step_up_required"));

    // Another account's passkey proves nothing about this one.
    let mut stranger = other.authenticator;
    let (challenge_id, credential) = app.signed_ceremony(&mut stranger).await;
    let body = json!({ "challenge_id": challenge_id, "credential": credential });
    let wrong = app
        .passkey_call(Endpoint::Reauthenticate, "POST", "/auth/reauthenticate", &user.access, Some(body))
        .await;
    assert_eq!((wrong.status, wrong.error_code()), (403, "invalid_passkey"));

    let (challenge_id, credential) = app.signed_ceremony(&mut user.authenticator).await;
    let body = json!({ "challenge_id": challenge_id, "credential": credential });
    let proven = app
        .passkey_call(
            Endpoint::Reauthenticate,
            "POST",
            "/auth/reauthenticate",
            &user.access,
            Some(body.clone()),
        )
        .await;
    let replayed = app
        .passkey_call(Endpoint::Reauthenticate, "POST", "/auth/reauthenticate", &user.access, Some(body))
        .await;
    assert_eq!(proven.status, 200, "{}", proven.body);
    assert_eq!((replayed.status, replayed.error_code()), (403, "invalid_passkey"), "a ceremony works once");
    let claims = app.claims(proven.body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims.aal, Aal::Aal2);
    assert!(amr(&claims).contains(&"user") && amr(&claims).contains(&"pwd"), "{:?}", claims.amr);

    let unknown = app.remove_passkey(&user.access, &uuid::Uuid::new_v4().to_string()).await;
    let theirs = app.remove_passkey(&user.access, &other.passkey_id).await;
    let removed = app.remove_passkey(&user.access, &user.passkey_id).await;
    assert_eq!((unknown.status, unknown.error_code()), (404, "passkey_not_found"));
    assert_eq!(
        (theirs.status, theirs.error_code()),
        (404, "passkey_not_found"),
        "another user's is unknown alike"
    );
    assert_eq!(removed.status, 204, "{}", removed.body);
    let signed_in = app.passkey_sign_in(&mut user.authenticator).await;
    assert_eq!(
        (signed_in.status, signed_in.error_code()),
        (401, "invalid_credentials"),
        "a removed passkey signs no one in"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_cloned_authenticator_whose_counter_went_back_is_refused(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let mut user = app.with_passkey(&address("clone"), true).await;
    assert_eq!(app.passkey_sign_in(&mut user.authenticator).await.status, 200);
    let clone = user.authenticator.snapshot();
    assert_eq!(app.passkey_sign_in(&mut user.authenticator).await.status, 200);

    user.authenticator.restore(clone);
    let cloned = app.passkey_sign_in(&mut user.authenticator).await;

    assert_eq!((cloned.status, cloned.error_code()), (401, "invalid_credentials"), "{}", cloned.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_finishes_of_one_sign_in_ceremony_sign_in_once(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let mut user = app.with_passkey(&address("race"), false).await;
    let (challenge_id, credential) = app.signed_ceremony(&mut user.authenticator).await;
    let sessions_before = app.count("select count(*) from sessions").await;

    let statuses = at_once(&app, 20, |app, _| {
        let (challenge_id, credential) = (challenge_id.clone(), credential.clone());
        async move { app.login_finish(&challenge_id, &credential).await.status }
    })
    .await;

    assert_eq!(statuses.iter().filter(|&&status| status == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|status| [200, 401].contains(status)), "{statuses:?}");
    assert_eq!(app.count("select count(*) from sessions").await, sessions_before + 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_finishes_of_one_registration_add_one_passkey(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let signup = app.signed_up(&address("register-race")).await;
    let mut authenticator = SoftwareAuthenticator::new(APP_URL, false);
    let begun = app.register_begin(&signup.access_token()).await;
    let credential = authenticator.register(&begun.body["publicKey"]).await.unwrap();
    let challenge_id = begun.body["challenge_id"].as_str().unwrap().to_owned();
    let access = signup.access_token();

    let statuses = at_once(&app, 20, |app, _| {
        let (access, challenge_id, credential) = (access.clone(), challenge_id.clone(), credential.clone());
        async move { app.register_finish(&access, &challenge_id, &credential).await.status }
    })
    .await;

    assert_eq!(statuses.iter().filter(|&&status| status == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|status| [201, 400].contains(status)), "{statuses:?}");
    assert_eq!(app.count("select count(*) from passkeys").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_registration_is_finished_only_by_the_session_that_began_it_within_five_minutes(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("ceremony");
    let signup = app.signed_up(&email).await;
    let second = app.post_login(&email, PASSWORD).await;
    let mut authenticator = SoftwareAuthenticator::new(APP_URL, false);
    let begun = app.register_begin(&signup.access_token()).await;
    let credential = authenticator.register(&begun.body["publicKey"]).await.unwrap();
    let challenge_id = begun.body["challenge_id"].as_str().unwrap();

    let elsewhere = app.register_finish(&second.access_token(), challenge_id, &credential).await;
    // A later begin of the same session replaces the ceremony.
    let replaced = app.register_begin(&signup.access_token()).await;
    let earlier = app.register_finish(&signup.access_token(), challenge_id, &credential).await;
    assert_eq!((earlier.status, earlier.error_code()), (400, "invalid_challenge"));
    let challenge_id = replaced.body["challenge_id"].as_str().unwrap();
    let garbage = app.register_finish(&signup.access_token(), "not-a-challenge", &credential).await;
    sqlx::query("update webauthn_challenges set expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let late = app.register_finish(&signup.access_token(), challenge_id, &credential).await;

    assert_eq!((elsewhere.status, elsewhere.error_code()), (400, "invalid_challenge"));
    assert_eq!((garbage.status, garbage.error_code()), (400, "invalid_challenge"));
    assert_eq!((late.status, late.error_code()), (400, "invalid_challenge"));
    assert_eq!(app.count("select count(*) from passkeys").await, 0);
    let tampered = app.register_finish(&signup.access_token(), challenge_id, &json!({ "id": "x" })).await;
    assert_eq!((tampered.status, tampered.error_code()), (400, "invalid_request"), "{}", tampered.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_password_change_or_reset_voids_registrations_begun_in_other_sessions(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("voided");
    let signup = app.signed_up(&email).await;
    let other = app.post_login(&email, PASSWORD).await;
    assert_eq!(app.register_begin(&signup.access_token()).await.status, 200);
    assert_eq!(app.register_begin(&other.access_token()).await.status, 200);

    let body = json!({ "current_password": PASSWORD, "new_password": "violet tractor umbrella sunrise" });
    let changed = app
        .send(
            Endpoint::ChangePassword,
            bearer_json("POST", "/auth/password/change", &signup.access_token(), Some(&body)),
        )
        .await;

    assert_eq!(changed.status, 204, "{}", changed.body);
    let left: Vec<uuid::Uuid> =
        sqlx::query_scalar("select session_id from webauthn_challenges").fetch_all(&app.pool).await.unwrap();
    assert_eq!(left, [app.claims(&signup.access_token()).await.sid], "only the changing session's own stays");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_added_passkey_is_removed_by_the_owners_link_and_a_removed_one_put_back(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("undo-passkey");
    let mut user = app.with_passkey(&email, false).await;
    let links = app.undo_links(&email).await;
    assert_eq!(links.len(), 1, "{links:?}");

    let undone = app.post_json(Endpoint::UndoChange, &json!({ "token": links[0].1 })).await;
    assert_eq!(undone.status, 204, "{}", undone.body);
    assert_eq!(app.count("select count(*) from passkeys").await, 0, "the added passkey is gone");
    assert_eq!(app.get_me(&user.access).await.status, 401, "every session ended");
    assert_eq!(app.passkey_sign_in(&mut user.authenticator).await.status, 401);

    // Another owner's passkey, added over a week ago (its link expired), removed by someone
    // else: the owner's link puts it back.
    let owner = app.with_passkey(&address("owner"), false).await;
    sqlx::query("update security_undo_tokens set expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let removed = app.remove_passkey(&owner.access, &owner.passkey_id).await;
    assert_eq!(removed.status, 204);
    let links = app.undo_links(&owner.email).await;
    assert_eq!(links.len(), 2, "added, then removed: {links:?}");
    let undone = app.post_json(Endpoint::UndoChange, &json!({ "token": links[1].1 })).await;
    assert_eq!(undone.status, 204, "{}", undone.body);
    let mut authenticator = owner.authenticator;
    let signed_in = app.passkey_sign_in(&mut authenticator).await;
    assert_eq!(signed_in.status, 200, "the passkey is back: {}", signed_in.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_sign_in_ceremony_is_stored_nowhere_until_used_and_a_forged_or_expired_one_signs_no_one_in(
    pool: PgPool,
) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let mut user = app.with_passkey(&address("sealed"), false).await;
    for _ in 0..50 {
        assert_eq!(app.login_begin().await.status, 200);
    }
    assert_eq!(app.count("select count(*) from webauthn_used_challenges").await, 0, "a begin writes nothing");
    let (challenge_id, credential) = app.signed_ceremony(&mut user.authenticator).await;

    // The same state, sealed to expire a second ago (as the ring seals it): refused.
    let (options, state) = crate::helpers::relying_party().sign_in().unwrap();
    let expired =
        SignInCeremony { state, expires_at: time::OffsetDateTime::now_utc() - time::Duration::seconds(1) };
    let keys = test_support::mfa_keys();
    let expired_id = ceremony_id(&keys.seal(&expired.to_bytes().unwrap(), SIGN_IN_CONTEXT).unwrap()).unwrap();
    let late_credential = user.authenticator.sign(&options).await.unwrap();
    let late = app.login_finish(&expired_id, &late_credential).await;
    let mut forged = challenge_id.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = app.login_finish(&String::from_utf8(forged).unwrap(), &credential).await;
    let garbage = app.login_finish("not a ceremony", &credential).await;
    let signed_in = app.login_finish(&challenge_id, &credential).await;
    let replayed = app.login_finish(&challenge_id, &credential).await;

    for refused in [&late, &forged, &garbage, &replayed] {
        assert_eq!((refused.status, refused.error_code()), (401, "invalid_credentials"), "{}", refused.body);
    }
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(
        app.count("select count(*) from webauthn_used_challenges").await,
        1,
        "its single use, recorded"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_owners_link_of_a_later_change_also_takes_back_a_passkey_added_before_it(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("two-changes");
    // An intruder with the password adds their passkey, then makes another change.
    let mut intruder = app.with_passkey(&email, false).await;
    let mut second = SoftwareAuthenticator::new(APP_URL, false);
    assert_eq!(app.register(&intruder.access, &mut second).await.status, 201);
    let links = app.undo_links(&email).await;
    assert_eq!(links.len(), 2, "{links:?}");

    // The owner opens only the newest mail's link.
    let undone = app.post_json(Endpoint::UndoChange, &json!({ "token": links[1].1 })).await;
    let earlier = app.post_json(Endpoint::UndoChange, &json!({ "token": links[0].1 })).await;

    assert_eq!(undone.status, 204, "{}", undone.body);
    assert_eq!(app.count("select count(*) from passkeys").await, 0, "both passkeys are gone");
    assert_eq!(app.passkey_sign_in(&mut intruder.authenticator).await.status, 401);
    assert_eq!(earlier.status, 204, "the earlier link still works: {}", earlier.body);
    assert_eq!(app.count("select count(*) from passkeys").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn adding_signing_in_with_and_removing_a_passkey_each_record_one_event(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("events");
    let mut user = app.with_passkey(&email, true).await;
    let signed_in = app.passkey_sign_in(&mut user.authenticator).await;
    let removed = app.remove_passkey(&user.access, &user.passkey_id).await;
    let again = app.remove_passkey(&user.access, &user.passkey_id).await;

    assert_eq!((signed_in.status, removed.status, again.status), (200, 204, 404));
    let events = app.events_of(app.user_id(&email).await).await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["signup", "passkey_added", "login_succeeded", "passkey_removed"]);
    assert_eq!(events[1].1, json!({ "passkey_id": user.passkey_id, "name": "Laptop" }));
    assert_eq!(events[2].1["method"], "passkey");
    assert_eq!(events[2].1["passkey_id"], user.passkey_id.as_str());
    assert_eq!(events[3].1, json!({ "passkey_id": user.passkey_id }));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_disabled_accounts_passkey_is_told_so_once_it_verified_and_opens_nothing(pool: PgPool) {
    let app = TestApp::with_mail(pool, |_| {}).await;
    let email = address("disabled");
    let mut user = app.with_passkey(&email, true).await;
    sqlx::query("update users set disabled_at = now() where email = $1")
        .bind(&email)
        .execute(&app.pool)
        .await
        .unwrap();

    let (challenge_id, credential) = app.signed_ceremony(&mut user.authenticator).await;
    let refused = app.login_finish(&challenge_id, &credential).await;
    let replayed = app.login_finish(&challenge_id, &credential).await;

    assert_eq!((refused.status, refused.error_code()), (403, "account_disabled"));
    assert_eq!(
        (replayed.status, replayed.error_code()),
        (401, "invalid_credentials"),
        "the ceremony was spent"
    );
    let sessions: i64 = app.count("select count(*) from sessions where revoked_at is null").await;
    assert_eq!(sessions, 1, "only the signup's");
    let failed: Vec<Value> = app
        .events_of(app.user_id(&email).await)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "login_failed")
        .map(|(_, detail)| detail)
        .collect();
    assert_eq!(failed, [json!({ "reason": "account_disabled", "method": "passkey" })]);
}
