//! `scripts/keys`, the operator's key recipe, end to end against the local Secrets Manager: the
//! secrets it makes are what the real binaries sign and verify with, and its rotation (publish,
//! promote, retire) keeps tokens from before and after valid while the sandboxes stay warm,
//! until the old key is retired; and the MFA key ring it makes and rotates keeps opening what its
//! old keys sealed. Runs under `scripts/with-moto`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::helpers::{TestApi, email, eventually, key_id, moto_endpoint, use_local_secrets_manager};
use serde_json::Value;

fn run_keys(args: &[&str]) -> std::process::Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/keys");
    Command::new(&script).args(args).output().expect("running scripts/keys")
}

/// Runs `scripts/keys` with `args`; its stdout is one JSON document.
fn keys(args: &[&str]) -> Value {
    let output = run_keys(args);
    assert!(
        output.status.success(),
        "scripts/keys {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("scripts/keys prints JSON")
}

fn published(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().expect("keys").iter().map(|key| key["kid"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn new_keys_never_replace_existing_secrets_unless_forced() {
    let prefix = format!("e2e/{}", uuid::Uuid::new_v4().simple());
    let (signing, verification) = (format!("{prefix}/signing"), format!("{prefix}/verification"));
    let both = ["--signing-secret", signing.as_str(), "--verification-secret", verification.as_str()];
    keys(&[&["new"][..], &both, &["--kid", "k1"]].concat());

    let again = run_keys(&[&["new"][..], &both, &["--kid", "k2"]].concat());
    let kept = keys(&[&["show"][..], &both].concat());
    let forced = keys(&[&["new"][..], &both, &["--kid", "k3", "--force"]].concat());
    let replaced = keys(&[&["show"][..], &both].concat());

    assert!(!again.status.success(), "a second new was not refused");
    let refusal = String::from_utf8_lossy(&again.stderr);
    assert!(refusal.contains("already exist") && refusal.contains("--force"), "{refusal}");
    assert_eq!(kept["current"], "k1", "the refused run changed nothing");
    assert!(forced["signing_secret_arn"].is_string());
    assert_eq!(replaced["current"], "k3");
}

#[tokio::test]
async fn the_key_script_makes_working_secrets_and_rotates_them_under_warm_sandboxes() {
    let prefix = format!("e2e/{}", uuid::Uuid::new_v4().simple());
    let (signing, verification) = (format!("{prefix}/signing"), format!("{prefix}/verification"));
    let both = ["--signing-secret", signing.as_str(), "--verification-secret", verification.as_str()];
    let created = keys(&[&["new"][..], &both, &["--algorithm", "ES256", "--kid", "k1"]].concat());
    let endpoint = moto_endpoint();
    let api = TestApi::start_with(|config| {
        use_local_secrets_manager(config, &endpoint, "moto", "moto");
        let env = &mut config.env_overrides;
        for name in ["JWT_PRIVATE_KEY", "JWT_KEY_ID", "REFRESH_TOKEN_HMAC_KEY", "JWT_PUBLIC_KEYS"] {
            env.remove_for_all(name);
        }
        env.set_for_all("JWT_SIGNING_KEY_SECRET_ARN", created["signing_secret_arn"].as_str().unwrap());
        env.set_for_all(
            "JWT_VERIFICATION_KEYS_SECRET_ARN",
            created["verification_secret_arn"].as_str().unwrap(),
        );
        // A short TTL, so the rotation's waits are seconds; the script's own waits are skipped
        // with --min-age 0 (their defaults follow the template's TTL).
        env.set_for_all("JWT_KEYS_TTL_SECONDS", "1");
        env.set_for_all("JWT_KEYS_REFETCH_INTERVAL_SECONDS", "1");
    })
    .await;
    let user = email();

    let before = api.post_signup(&user).await;
    assert_eq!(before.status, 201, "{}", before.text);
    assert_eq!(key_id(&before.access_token()), "k1");
    assert_eq!(api.get_me(&before.access_token()).await.status, 200);

    keys(&[&["publish"][..], &both, &["--algorithm", "EdDSA", "--kid", "k2"]].concat());
    keys(&["promote", "--signing-secret", &signing, "--min-age", "0"]);
    let after = eventually("a login signed with k2", Duration::from_secs(10), || async {
        let login = api.post_login(&user).await;
        assert_eq!(login.status, 200, "{}", login.text);
        (key_id(&login.access_token()) == "k2").then_some(login)
    })
    .await;

    assert_eq!(api.get_me(&before.access_token()).await.status, 200, "a k1 token still verifies");
    assert_eq!(api.get_me(&after.access_token()).await.status, 200, "a k2 token verifies");
    assert_eq!(published(&api.get("/.well-known/jwks.json").await.body), ["k2", "k1"]);
    let refreshed = api.post_refresh(&before.refresh_token()).await;
    assert_eq!(refreshed.status, 200, "a session from before the rotation refreshes: {}", refreshed.text);

    let retired = keys(&[&["retire"][..], &both, &["--min-age", "0"]].concat());
    assert_eq!(retired["dropped"], serde_json::json!(["k1"]));
    let me_before = eventually("k1 tokens to be refused", Duration::from_secs(10), || async {
        let me = api.get_me(&before.access_token()).await;
        (me.status == 401).then_some(me)
    })
    .await;

    assert_eq!(me_before.body["error"], "invalid_token");
    assert_eq!(api.get_me(&after.access_token()).await.status, 200);
    eventually("the JWKS to list k2 alone", Duration::from_secs(10), || async {
        (published(&api.get("/.well-known/jwks.json").await.body) == ["k2"]).then_some(())
    })
    .await;
}

/// The MFA key ring in `secret`, as the functions read it.
async fn mfa_ring(secret: &str) -> shared::mfa::seal::SealingKeys {
    let client = crate::helpers::secrets_client(&moto_endpoint(), "moto", "moto").await;
    let value = client.get_secret_value().secret_id(secret).send().await.expect("reading the ring");
    shared::mfa::seal::SealingKeys::from_json(value.secret_string().expect("a string secret"))
        .expect("a ring the functions accept")
}

#[tokio::test]
async fn the_mfa_ring_rotates_to_a_new_key_and_still_opens_what_the_old_one_sealed() {
    let secret = format!("e2e/{}/mfa-keys", uuid::Uuid::new_v4().simple());
    let ring = ["--mfa-secret", secret.as_str()];
    let created = keys(&[&["mfa-new"][..], &ring, &["--key-id", "m1"]].concat());
    let sealed_before = mfa_ring(&secret).await.seal(b"a TOTP secret", b"user 1, factor 1").expect("sealing");

    let again = run_keys(&[&["mfa-new"][..], &ring, &["--key-id", "m9"]].concat());
    let rotated = keys(&[&["mfa-rotate"][..], &ring, &["--key-id", "m2"]].concat());
    let shown = keys(&[&["mfa-show"][..], &ring].concat());
    let after = mfa_ring(&secret).await;
    let sealed_after = after.seal(b"another secret", b"user 2, factor 2").expect("sealing");

    assert!(created["mfa_secret_arn"].is_string(), "{created}");
    assert!(!again.status.success(), "a second mfa-new was not refused");
    let refusal = String::from_utf8_lossy(&again.stderr);
    assert!(refusal.contains("already exists") && refusal.contains("--force"), "{refusal}");
    assert_eq!((rotated["current"].as_str(), rotated["previous"].as_str()), (Some("m2"), Some("m1")));
    assert_eq!(shown, serde_json::json!({"current": "m2", "keys": ["m1", "m2"]}));
    assert_eq!(
        (sealed_before.key_id.as_str(), sealed_after.key_id.as_str()),
        ("m1", "m2"),
        "the new key seals"
    );
    assert_eq!(
        after.open(&sealed_before, b"user 1, factor 1").expect("the old key still opens"),
        b"a TOTP secret"
    );
}
