//! Signing-key rotation with the real binaries reading their keys from the local Secrets Manager
//! while their sandboxes stay warm: the operator adds the new key's public half (`next`),
//! promotes it in the signing secret, then drops the old public key. Throughout, every token
//! that is still valid is accepted, and a refresh retried on a sandbox of the other key
//! generation gets the same successor. Runs under `scripts/with-postgres scripts/with-moto`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::helpers::{
    AUDIENCE, ISSUER, REFRESH_TOKEN_KEY, TestApi, TestDb, TestResponse, create_secret, email, eventually,
    jwt_part, key_id, moto_endpoint, secrets_client, server_lock, use_local_secrets_manager,
};
use aws_sdk_secretsmanager::Client as SecretsClient;
use futures_util::future::join_all;
use local_lambda::{EmulatorConfig, Log};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use shared::domain::{SessionId, UserId};
use shared::tokens::{SigningAlgorithm, SigningKey, TokenSigner, generate_private_key_pem, public_key_set};

/// Access tokens live this long here, so that waiting out K1's tokens takes seconds.
const ACCESS_TOKEN_TTL_SECONDS: u64 = 8;
/// The verifier's leeway on `exp`: a token is accepted this long after it expires.
const LEEWAY_SECONDS: u64 = 30;
/// How long a condition may take to hold: a few key TTLs.
const WITHIN: Duration = Duration::from_secs(30);

/// One key pair of the rotation, with what the operator writes into each secret.
struct RotationKey {
    kid: &'static str,
    algorithm: &'static str,
    pem: SecretString,
    key: SigningKey,
}

impl RotationKey {
    fn generate(kid: &'static str, algorithm: SigningAlgorithm, name: &'static str) -> Self {
        let pem = generate_private_key_pem(algorithm).expect("a key");
        let key = SigningKey::from_pem(kid, algorithm, &pem).expect("the key loads");
        Self { kid, algorithm: name, pem, key }
    }

    /// The signing secret with this key as `current`.
    fn signing_secret(&self) -> Value {
        json!({
            "current": {"kid": self.kid, "algorithm": self.algorithm, "private_key": self.pem.expose_secret()},
            "refresh_token_key": REFRESH_TOKEN_KEY,
        })
    }

    /// A token for an existing session, signed here with this key (as a sandbox holding it would).
    fn sign_for(&self, access_token: &str) -> String {
        let claims = jwt_part(access_token, 1);
        let id = |name: &str| claims[name].as_str().expect("a uuid claim").parse().expect("a uuid");
        let key = SigningKey::from_pem(self.kid, algorithm(self.algorithm), &self.pem).expect("the key");
        let signer = TokenSigner::new(
            key,
            &SecretString::from(REFRESH_TOKEN_KEY),
            ISSUER.into(),
            AUDIENCE.into(),
            Duration::from_secs(ACCESS_TOKEN_TTL_SECONDS),
        )
        .expect("a signer");
        signer
            .issue(UserId(id("sub")), SessionId(id("sid")), &shared::domain::Assurance::password())
            .expect("signing")
            .token
    }
}

fn algorithm(name: &str) -> SigningAlgorithm {
    SigningAlgorithm::parse(name).expect("a known algorithm")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// The two secrets an operator maintains, in the local Secrets Manager.
struct KeySecrets {
    client: SecretsClient,
    endpoint: String,
    signing: String,
    verification: String,
}

impl KeySecrets {
    async fn create(current: &RotationKey) -> Self {
        let endpoint = moto_endpoint();
        let client = secrets_client(&endpoint, "moto", "moto").await;
        let signing = create_secret(&client, &current.signing_secret()).await;
        let verification = create_secret(&client, &public_key_set(&[&current.key])).await;
        Self { client, endpoint, signing, verification }
    }

    async fn put(&self, arn: &str, value: &Value) {
        self.client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value.to_string())
            .send()
            .await
            .expect("put");
    }

    /// Publishes exactly these public keys to the verifiers.
    async fn publish(&self, keys: &[&RotationKey]) {
        let keys: Vec<&SigningKey> = keys.iter().map(|key| &key.key).collect();
        self.put(&self.verification, &public_key_set(&keys)).await;
    }

    /// Makes `key` the one that signs.
    async fn promote(&self, key: &RotationKey) {
        self.put(&self.signing, &key.signing_secret()).await;
    }

    /// The functions read their keys from these secrets, re-read after `ttl_seconds`, and
    /// re-read on an unknown kid at most every `refetch_seconds`.
    fn configure(&self, config: &mut EmulatorConfig, ttl_seconds: u64, refetch_seconds: u64) {
        use_local_secrets_manager(config, &self.endpoint, "moto", "moto");
        config.log = Log::Discard;
        let env = &mut config.env_overrides;
        for name in ["JWT_PRIVATE_KEY", "JWT_KEY_ID", "REFRESH_TOKEN_HMAC_KEY", "JWT_PUBLIC_KEYS"] {
            env.remove_for_all(name);
        }
        env.set_for_all("JWT_SIGNING_KEY_SECRET_ARN", self.signing.clone());
        env.set_for_all("JWT_VERIFICATION_KEYS_SECRET_ARN", self.verification.clone());
        env.set_for_all("JWT_KEYS_TTL_SECONDS", ttl_seconds.to_string());
        env.set_for_all("JWT_KEYS_REFETCH_INTERVAL_SECONDS", refetch_seconds.to_string());
        env.set_for_all("ACCESS_TOKEN_TTL_SECONDS", ACCESS_TOKEN_TTL_SECONDS.to_string());
    }
}

/// A second emulator of the same template on the same database: sandboxes of the same
/// functions that started at another time (and so hold another generation of keys).
async fn twin(db: &TestDb, configure: impl FnOnce(&mut EmulatorConfig)) -> TestApi {
    let db = TestDb { name: db.name.clone(), url: db.url.clone(), pool: db.pool.clone() };
    TestApi::start_on(db, server_lock(false), configure).await
}

/// Access tokens handed out so far, with the key that signed them.
#[derive(Default)]
struct Issued {
    tokens: Vec<(String, String, u64)>,
}

impl Issued {
    fn record(&mut self, response: &TestResponse) -> String {
        assert_eq!(response.status / 100, 2, "{}", response.text);
        let token = response.access_token();
        let exp = jwt_part(&token, 1)["exp"].as_u64().expect("exp");
        let kid = key_id(&token);
        self.tokens.push((token, kid.clone(), exp));
        kid
    }

    /// Every token whose `exp` is still at least a second away.
    fn valid(&self) -> Vec<&(String, String, u64)> {
        let now = unix_now();
        self.tokens.iter().filter(|(_, _, exp)| *exp > now + 1).collect()
    }

    fn latest_exp(&self, kid: &str) -> u64 {
        self.tokens.iter().filter(|(_, k, _)| k == kid).map(|(_, _, exp)| *exp).max().unwrap_or(0)
    }
}

/// Asks `me` about every valid token, four at a time so that several sandboxes answer, and
/// fails on any refusal.
async fn all_valid_tokens_are_accepted(api: &TestApi, issued: &Issued, phase: &str) {
    for (token, kid, _) in issued.valid() {
        let answers = join_all((0..4).map(|_| api.get_me(token))).await;
        for answer in answers {
            assert_eq!(answer.status, 200, "{phase}: a valid {kid} token was refused: {}", answer.text);
        }
    }
}

/// Whether four concurrent `me` calls with `token` all answer `status`.
async fn me_answers(api: &TestApi, token: &str, status: u16) -> bool {
    join_all((0..4).map(|_| api.get_me(token))).await.iter().all(|answer| answer.status == status)
}

#[tokio::test]
async fn a_key_rotation_while_sandboxes_stay_warm_refuses_no_valid_token_and_revokes_no_retried_session() {
    let k1 = RotationKey::generate("k1", SigningAlgorithm::Rs256, "RS256");
    let k2 = RotationKey::generate("k2", SigningAlgorithm::Es256, "ES256");
    let secrets = KeySecrets::create(&k1).await;
    let api = TestApi::start_with(|config| secrets.configure(config, 1, 1)).await;
    // Sandboxes that started before the promotion and will not re-read their keys for an hour:
    // the old generation a retried refresh may land on.
    let old_generation = twin(&api.db, |config| secrets.configure(config, 3600, 1)).await;
    let mut issued = Issued::default();
    let users: Vec<String> = (0..3).map(|_| email()).collect();
    for user in &users {
        let signup = api.post_signup(user).await;
        assert_eq!(issued.record(&signup), "k1");
    }
    // Several warm sandboxes per verifying function.
    all_valid_tokens_are_accepted(&api, &issued, "before the rotation").await;
    assert!(api.emulator.sandboxes("MeFunction").unwrap().len() >= 2, "several warm me sandboxes");
    let parent_for_old_first = api.post_login(&users[0]).await;
    let parent_for_new_first = api.post_login(&users[1]).await;
    issued.record(&parent_for_old_first);
    issued.record(&parent_for_new_first);
    let warm_old = old_generation.post_login(&users[2]).await;
    let warm_old = old_generation.post_refresh(&warm_old.refresh_token()).await;
    assert_eq!(issued.record(&warm_old), "k1", "the old generation signs with k1");

    // 1. Add next: k2's public key is published before anything signs with it.
    secrets.publish(&[&k2, &k1]).await;
    let k2_probe = k2.sign_for(&issued.tokens[0].0);
    eventually("the verifiers to accept k2", WITHIN, || async {
        all_valid_tokens_are_accepted(&api, &issued, "next added").await;
        let listed = api.get("/.well-known/jwks.json").await.text.contains("\"k2\"");
        (listed && me_answers(&api, &k2_probe, 200).await).then_some(())
    })
    .await;

    // 2. Promote: k2 signs. Logins move over within a TTL; every token stays accepted meanwhile.
    secrets.promote(&k2).await;
    eventually("login to sign with k2", WITHIN, || {
        let (api, users) = (&api, &users);
        async move { (key_id(&api.post_login(&users[2]).await.access_token()) == "k2").then_some(()) }
    })
    .await;
    eventually("refresh to sign with k2", WITHIN, || async {
        let scratch = api.post_login(&users[2]).await;
        let refreshed = api.post_refresh(&scratch.refresh_token()).await;
        (key_id(&refreshed.access_token()) == "k2").then_some(())
    })
    .await;
    let after_promotion = api.post_login(&users[0]).await;
    assert_eq!(issued.record(&after_promotion), "k2");
    all_valid_tokens_are_accepted(&api, &issued, "promoted").await;

    // A refresh retried within the grace window on a sandbox of the other key generation, in
    // both orders: the same successor, and the session lives on.
    for (parent, first, retry) in
        [(&parent_for_old_first, &old_generation, &api), (&parent_for_new_first, &api, &old_generation)]
    {
        let refreshed = first.post_refresh(&parent.refresh_token()).await;
        let retried = retry.post_refresh(&parent.refresh_token()).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.text);
        assert_eq!(retried.status, 200, "the retry is not taken for reuse: {}", retried.text);
        assert_ne!(key_id(&refreshed.access_token()), key_id(&retried.access_token()), "two generations");
        assert_eq!(retried.refresh_token(), refreshed.refresh_token(), "the same successor");
        let next = api.post_refresh(&retried.refresh_token()).await;
        assert_eq!(next.status, 200, "the session was not revoked: {}", next.text);
        issued.record(&refreshed);
        issued.record(&retried);
        issued.record(&next);
    }
    all_valid_tokens_are_accepted(&api, &issued, "retries").await;

    // 3. Drop k1 once its last token is past its lifetime and leeway (and one TTL has passed):
    // checked continuously until then.
    let k1_done = issued.latest_exp("k1") + LEEWAY_SECONDS + 1;
    eventually(
        "k1's tokens to expire",
        Duration::from_secs(ACCESS_TOKEN_TTL_SECONDS + LEEWAY_SECONDS + 60),
        || {
            let (api, issued) = (&api, &issued);
            async move {
                all_valid_tokens_are_accepted(api, issued, "waiting out k1").await;
                (unix_now() > k1_done).then_some(())
            }
        },
    )
    .await;
    secrets.publish(&[&k2]).await;
    let k1_forged_late = k1.sign_for(&after_promotion.access_token());
    eventually("the verifiers to refuse k1", WITHIN, || async {
        (me_answers(&api, &k1_forged_late, 401).await
            && !api.get("/.well-known/jwks.json").await.text.contains("\"k1\""))
        .then_some(())
    })
    .await;
    let fresh = api.post_login(&users[1]).await;
    assert_eq!(issued.record(&fresh), "k2");
    all_valid_tokens_are_accepted(&api, &issued, "k1 dropped").await;
    assert!(me_answers(&api, &fresh.access_token(), 200).await);
}

#[tokio::test]
async fn a_warm_me_sandbox_accepts_a_key_published_after_it_started_long_before_its_ttl() {
    let k1 = RotationKey::generate("k1", SigningAlgorithm::EdDsa, "EdDSA");
    let next = RotationKey::generate("next", SigningAlgorithm::EdDsa, "EdDSA");
    let unpublished = RotationKey::generate("unpublished", SigningAlgorithm::EdDsa, "EdDSA");
    let secrets = KeySecrets::create(&k1).await;
    // Keys re-read after an hour only: a new kid is found by the unknown-kid refetch alone.
    let api = TestApi::start_with(|config| secrets.configure(config, 3600, 1)).await;
    let signup = api.post_signup(&email()).await;
    assert_eq!(api.get_me(&signup.access_token()).await.status, 200, "me is warm");

    secrets.publish(&[&next, &k1]).await;
    let with_next = api.get_me(&next.sign_for(&signup.access_token())).await;
    let with_unpublished = api.get_me(&unpublished.sign_for(&signup.access_token())).await;

    assert_eq!(with_next.status, 200, "a key published after the sandbox read its keys: {}", with_next.text);
    assert_eq!(with_unpublished.status, 401, "{}", with_unpublished.text);
    assert_eq!(api.only_sandbox("MeFunction").invocations, 3, "one warm sandbox answered all three");
}
