//! Passkeys through the real binaries and the emulator, with a software authenticator: one
//! registered after signup and used usernameless at aal2, then for a step-up; one sign-in
//! ceremony raced by 20 clients across sandboxes, one registration by 20; and the MFA ring that
//! seals sign-in ceremonies rotated while the sandboxes stay warm.

use std::time::Duration;

use futures_util::future::join_all;
use http::Method;
use serde_json::{Value, json};
use shared::passkeys::relying_party::sealed_ceremony;
use test_support::APP_URL;
use test_support::authenticator::SoftwareAuthenticator;

use crate::helpers::{
    TestApi, create_secret, email, eventually, jwt_part, moto_endpoint, secrets_client,
    use_local_secrets_manager,
};

impl TestApi {
    /// A sign-in ceremony answered by `authenticator`: the finish's body.
    async fn answered(&self, authenticator: &mut SoftwareAuthenticator) -> Value {
        let begun = self.post_json("/auth/passkeys/login/begin", &json!({})).await;
        assert_eq!(begun.status, 200, "{}", begun.text);
        let credential = authenticator.sign(&begun.body["publicKey"]).await.unwrap();
        json!({ "challenge_id": begun.body["challenge_id"], "credential": credential })
    }
}

/// Signs up and registers a passkey: the authenticator and signup's access token.
async fn with_passkey(api: &TestApi) -> (SoftwareAuthenticator, String) {
    let signup = api.post_signup(&email()).await;
    assert_eq!(signup.status, 201, "{}", signup.text);
    let access = signup.access_token();
    let mut authenticator = SoftwareAuthenticator::new(APP_URL, true);
    let begun = api.bearer(Method::POST, "/auth/passkeys/register/begin", &access, None).await;
    assert_eq!(begun.status, 200, "{}", begun.text);
    let credential = authenticator.register(&begun.body["publicKey"]).await.unwrap();
    let body = json!({ "challenge_id": begun.body["challenge_id"], "credential": credential, "name": "Key" });
    let finished = api.bearer(Method::POST, "/auth/passkeys/register/finish", &access, Some(body)).await;
    assert_eq!(finished.status, 201, "{}", finished.text);
    (authenticator, access)
}

#[tokio::test]
async fn a_passkey_signs_its_user_in_without_a_username_and_steps_a_session_up_through_the_binaries() {
    let api = TestApi::start().await;
    let (mut authenticator, access) = with_passkey(&api).await;

    let body = api.answered(&mut authenticator).await;
    let signed_in = api.post_json("/auth/passkeys/login/finish", &body).await;
    let replayed = api.post_json("/auth/passkeys/login/finish", &body).await;

    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    let claims = jwt_part(&signed_in.access_token(), 1);
    assert_eq!(claims["aal"], "aal2");
    assert_eq!(claims["amr"][1], "user", "{claims}");
    assert_eq!((replayed.status, &replayed.body["error"]), (401, &json!("invalid_credentials")));
    let body = api.answered(&mut authenticator).await;
    let stepped_up = api.bearer(Method::POST, "/auth/reauthenticate", &access, Some(body)).await;
    assert_eq!(stepped_up.status, 200, "{}", stepped_up.text);
    assert_eq!(jwt_part(stepped_up.body["access_token"].as_str().unwrap(), 1)["aal"], "aal2");
    let listed = api.bearer(Method::GET, "/auth/passkeys", &access, None).await;
    assert_eq!(listed.body["passkeys"][0]["name"], "Key", "{}", listed.text);
}

fn one_success(statuses: &[u16], success: u16, failure: u16) {
    assert!(statuses.iter().all(|status| [success, failure].contains(status)), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&status| status == success).count(), 1, "{statuses:?}");
}

#[tokio::test]
async fn twenty_clients_with_one_ceremony_sign_in_once_and_twenty_finishes_of_one_registration_add_one() {
    let api = TestApi::start().await;
    let (mut authenticator, access) = with_passkey(&api).await;
    let body = api.answered(&mut authenticator).await;

    let sign_ins = join_all((0..20).map(|_| api.post_json("/auth/passkeys/login/finish", &body))).await;

    one_success(&sign_ins.iter().map(|r| r.status).collect::<Vec<_>>(), 200, 401);
    let mut other = SoftwareAuthenticator::new(APP_URL, false);
    let begun = api.bearer(Method::POST, "/auth/passkeys/register/begin", &access, None).await;
    let credential = other.register(&begun.body["publicKey"]).await.unwrap();
    let body = json!({ "challenge_id": begun.body["challenge_id"], "credential": credential });
    let finishes =
        join_all((0..20).map(|_| {
            api.bearer(Method::POST, "/auth/passkeys/register/finish", &access, Some(body.clone()))
        }))
        .await;
    one_success(&finishes.iter().map(|r| r.status).collect::<Vec<_>>(), 201, 400);
    let count: i64 =
        sqlx::query_scalar("select count(*) from passkeys").fetch_one(&api.db.pool).await.unwrap();
    assert_eq!(count, 2);
}

/// A ring of one AES-256 key per id, `current` the first.
fn ring(keys: &[&str]) -> Value {
    let mut ring = json!({ "current": keys[0], "keys": {} });
    for id in keys {
        ring["keys"][id] = json!(shared::mfa::seal::generate_key().unwrap());
    }
    ring
}

#[tokio::test]
async fn a_sign_in_sealed_under_a_new_mfa_key_is_finished_by_a_warm_sandbox_holding_the_old_ring() {
    let endpoint = moto_endpoint();
    let client = secrets_client(&endpoint, "moto", "moto").await;
    let old = ring(&["m1"]);
    let secret = create_secret(&client, &old).await;
    let api = TestApi::start_with(|config| {
        use_local_secrets_manager(config, &endpoint, "moto", "moto");
        let env = &mut config.env_overrides;
        env.remove_for_all("MFA_KEYS");
        env.set_for_all("MFA_KEYS_SECRET_ARN", secret.clone());
        // The ring is read again after an hour, on an unknown key at most every second; the
        // begin sandbox alone reads it every second, so it seals under a new key at once.
        env.set_for_all("JWT_KEYS_TTL_SECONDS", "3600");
        env.set_for_all("JWT_KEYS_REFETCH_INTERVAL_SECONDS", "1");
        env.set_for("PasskeyLoginBeginFunction", "JWT_KEYS_TTL_SECONDS", "1");
    })
    .await;
    let (mut authenticator, _) = with_passkey(&api).await;
    let warm = api.answered(&mut authenticator).await;
    assert_eq!(api.post_json("/auth/passkeys/login/finish", &warm).await.status, 200, "finish is warm");
    let before = api.answered(&mut authenticator).await;

    // The operator rotates: m2 seals from now on, m1 still opens what it sealed.
    let mut rotated = ring(&["m2"]);
    rotated["keys"]["m1"] = old["keys"]["m1"].clone();
    client.put_secret_value().secret_id(&secret).secret_string(rotated.to_string()).send().await.unwrap();
    let begun = eventually("a begin sealed under m2", Duration::from_secs(30), || async {
        let begun = api.post_json("/auth/passkeys/login/begin", &json!({})).await;
        let sealed = sealed_ceremony(begun.body["challenge_id"].as_str()?)?;
        (sealed.key_id == "m2").then_some(begun)
    })
    .await;
    let credential = authenticator.sign(&begun.body["publicKey"]).await.unwrap();
    let after = json!({ "challenge_id": begun.body["challenge_id"], "credential": credential });

    let old_key = api.post_json("/auth/passkeys/login/finish", &before).await;
    let new_key = api.post_json("/auth/passkeys/login/finish", &after).await;

    assert_eq!(old_key.status, 200, "sealed before the rotation: {}", old_key.text);
    assert_eq!(new_key.status, 200, "sealed under the new key: {}", new_key.text);
    assert_eq!(
        api.only_sandbox("PasskeyLoginFinishFunction").invocations,
        3,
        "one warm sandbox finished all three"
    );
}
