//! Database credentials and signing keys from Secrets Manager, through the real AWS SDK against
//! a local moto server (`scripts/with-moto` provides `AWS_ENDPOINT_URL_SECRETS_MANAGER`).

use std::str::FromStr as _;

use crate::helpers::{call, get};
use aws_sdk_secretsmanager::Client;
use secrecy::ExposeSecret as _;
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::app::App;
use shared::config::{Config, Keys, Needs};
use shared::handlers::health;
use shared::tokens::{SigningAlgorithm, SigningKey, TokenSigner, generate_private_key_pem, public_key_set};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use test_support::{create_secret, local_secrets_client as secrets_client};

/// A login role with its own password on the test database, and the RDS-format secret for it.
async fn role_with_secret(pool: &PgPool, client: &Client) -> (String, String) {
    let database: String = sqlx::query_scalar("select current_database()").fetch_one(pool).await.unwrap();
    let role = test_support::login_role(pool, "app", "first-password", false).await;
    let server = PgConnectOptions::from_str(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    let secret = json!({
        "engine": "postgres", "username": role, "password": "first-password",
        "host": server.get_host(), "port": server.get_port(), "dbname": database,
    });
    (role, create_secret(client, &secret).await)
}

fn app_with(vars: &[(&str, &str)], needs: Needs) -> App {
    let lookup = |name: &str| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
    App::from_config(Config::from_lookup(needs, lookup).unwrap()).unwrap()
}

const DATABASE_ONLY: Needs =
    Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

#[sqlx::test(migrations = "../migrations")]
async fn database_credentials_come_from_an_rds_format_secret(pool: PgPool) {
    let client = secrets_client().await;
    let (role, arn) = role_with_secret(&pool, &client).await;
    let app = app_with(&[("DB_SECRET_ARN", &arn), ("AWS_LAMBDA_FUNCTION_NAME", &role)], DATABASE_ONLY);

    let response = call(&app, health::handle, get("/health")).await;

    assert_eq!(response.status, 200, "{}", response.body);
    let connected: i64 = sqlx::query_scalar("select count(*) from pg_stat_activity where usename = $1")
        .bind(&role)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(connected, 1, "the function connected as the secret's user");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_rotated_password_costs_one_retry_not_an_outage(pool: PgPool) {
    let client = secrets_client().await;
    let (role, arn) = role_with_secret(&pool, &client).await;
    // A ping before every use: the rotation happens "while the sandbox is frozen".
    let vars = [
        ("DB_SECRET_ARN", arn.as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", &role),
        ("DB_PING_AFTER_IDLE_MS", "0"),
    ];
    let app = app_with(&vars, DATABASE_ONLY);
    assert_eq!(call(&app, health::handle, get("/health")).await.status, 200);

    // Rotate as Secrets Manager's rotation function does: the role first, then the secret;
    // then end the warm connection so the next request must log in again.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("alter role {role} password 'second-password'")))
        .execute(&pool)
        .await
        .unwrap();
    let mut rotated: Value = serde_json::from_str(
        client.get_secret_value().secret_id(&arn).send().await.unwrap().secret_string().unwrap(),
    )
    .unwrap();
    rotated["password"] = json!("second-password");
    client.put_secret_value().secret_id(&arn).secret_string(rotated.to_string()).send().await.unwrap();
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where usename = $1")
        .bind(&role)
        .execute(&pool)
        .await
        .unwrap();

    let response = call(&app, health::handle, get("/health")).await;

    assert_eq!(response.status, 200, "{}", response.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_missing_secret_is_a_503_and_the_error_names_it(pool: PgPool) {
    drop(pool);
    secrets_client().await;
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/missing-AbCdEf";
    let app = app_with(&[("DB_SECRET_ARN", arn)], DATABASE_ONLY);

    let error = app.connection().await.expect_err("the secret does not exist");
    let body =
        serde_json::json!({"refresh_token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}).to_string();
    let response = call(&app, shared::handlers::logout::handle, crate::helpers::json_request(&body)).await;

    assert!(format!("{:#}", anyhow::Error::from(error)).contains(arn));
    assert_eq!(response.status, 503);
    assert_eq!(response.body["error"], "service_unavailable");
}

const SIGNER: Needs =
    Needs { database: false, keys: Keys::Sign, mail: false, mfa: false, passkeys: false, query: false };
const VERIFIER: Needs =
    Needs { database: false, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };

fn key(kid: &str, algorithm: SigningAlgorithm) -> (SigningKey, SecretString) {
    let pem = generate_private_key_pem(algorithm).unwrap();
    (SigningKey::from_pem(kid, algorithm, &pem).unwrap(), pem)
}

fn signing_secret(kid: &str, algorithm: &str, pem: &SecretString) -> Value {
    json!({
        "current": {"kid": kid, "algorithm": algorithm, "private_key": pem.expose_secret()},
        "refresh_token_key": crate::helpers::REFRESH_TOKEN_KEY,
    })
}

fn kids(jwks: &Value) -> Vec<&str> {
    jwks["keys"].as_array().unwrap().iter().map(|key| key["kid"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn signers_and_verifiers_read_their_own_secrets_and_every_published_key_verifies() {
    let client = secrets_client().await;
    let (next, _) = key("2026-12", SigningAlgorithm::EdDsa);
    let (current, current_pem) = key("2026-11", SigningAlgorithm::Rs256);
    let (previous, previous_pem) = key("2026-10", SigningAlgorithm::Es256);
    let signing_arn = create_secret(&client, &signing_secret("2026-11", "RS256", &current_pem)).await;
    let verification_arn = create_secret(&client, &public_key_set(&[&next, &current, &previous])).await;
    let common = [("JWT_ISSUER", crate::helpers::ISSUER), ("JWT_AUDIENCE", crate::helpers::AUDIENCE)];
    let signer_app =
        app_with(&[&common[..], &[("JWT_SIGNING_KEY_SECRET_ARN", &signing_arn)]].concat(), SIGNER);
    let verifier_app = app_with(
        &[&common[..], &[("JWT_VERIFICATION_KEYS_SECRET_ARN", &verification_arn)]].concat(),
        VERIFIER,
    );
    let old_signer = TokenSigner::new(
        SigningKey::from_pem("2026-10", SigningAlgorithm::Es256, &previous_pem).unwrap(),
        &SecretString::from(crate::helpers::REFRESH_TOKEN_KEY),
        crate::helpers::ISSUER.into(),
        crate::helpers::AUDIENCE.into(),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let (user, session) = (shared::domain::UserId::generate(), shared::domain::SessionId::generate());

    let fresh = signer_app
        .tokens()
        .await
        .expect("the key from the signing secret")
        .issue(user, session, &shared::domain::Assurance::password())
        .unwrap();
    let old = old_signer.issue(user, session, &shared::domain::Assurance::password()).unwrap();
    let jwks = serde_json::to_value(verifier_app.verification_keys().await.unwrap().jwks()).unwrap();

    assert_eq!(kids(&jwks), ["2026-12", "2026-11", "2026-10"], "the JWKS lists next, current and previous");
    assert!(jwks["keys"].as_array().unwrap().iter().all(|key| key.get("d").is_none()));
    assert_eq!(jsonwebtoken::decode_header(&fresh.token).unwrap().kid.as_deref(), Some("2026-11"));
    assert!(verifier_app.verify_access_token(&fresh.token).await.is_ok());
    assert!(
        verifier_app.verify_access_token(&old.token).await.is_ok(),
        "the previous key verifies until dropped"
    );
    assert!(verifier_app.tokens().await.is_err(), "a verifier holds no signing key");
    assert!(signer_app.verification_keys().await.is_err(), "a signer reads no key set");
}

#[tokio::test]
async fn a_warm_verifier_finds_a_key_published_after_its_last_read_once_per_refetch_interval() {
    let client = secrets_client().await;
    let (k1, _) = key("k1", SigningAlgorithm::EdDsa);
    let (k2, k2_pem) = key("k2", SigningAlgorithm::EdDsa);
    let (k3, k3_pem) = key("k3", SigningAlgorithm::EdDsa);
    let arn = create_secret(&client, &public_key_set(&[&k1])).await;
    let verifier_app = app_with(
        &[
            ("JWT_VERIFICATION_KEYS_SECRET_ARN", &arn),
            ("JWT_ISSUER", crate::helpers::ISSUER),
            ("JWT_AUDIENCE", crate::helpers::AUDIENCE),
            // Neither the TTL nor the refetch interval passes during the test.
            ("JWT_KEYS_TTL_SECONDS", "3600"),
            ("JWT_KEYS_REFETCH_INTERVAL_SECONDS", "3600"),
        ],
        VERIFIER,
    );
    let sign = |kid: &str, pem: &SecretString| {
        let key = SigningKey::from_pem(kid, SigningAlgorithm::EdDsa, pem).unwrap();
        let signer = TokenSigner::new(
            key,
            &SecretString::from(crate::helpers::REFRESH_TOKEN_KEY),
            crate::helpers::ISSUER.into(),
            crate::helpers::AUDIENCE.into(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        signer
            .issue(
                shared::domain::UserId::generate(),
                shared::domain::SessionId::generate(),
                &shared::domain::Assurance::password(),
            )
            .unwrap()
            .token
    };
    verifier_app.verification_keys().await.expect("the first read");
    let publish =
        |set: Value| client.put_secret_value().secret_id(&arn).secret_string(set.to_string()).send();

    publish(public_key_set(&[&k1, &k2])).await.unwrap();
    let k2_token = verifier_app.verify_access_token(&sign("k2", &k2_pem)).await;
    publish(public_key_set(&[&k1, &k2, &k3])).await.unwrap();
    let k3_token = verifier_app.verify_access_token(&sign("k3", &k3_pem)).await;

    assert!(k2_token.is_ok(), "an unknown kid makes a warm verifier read its secret again: {k2_token:?}");
    assert!(k3_token.is_err(), "a second unknown kid within the refetch interval reads nothing");
}

#[tokio::test]
async fn a_wrongly_shaped_key_secret_is_a_503_whose_error_names_the_secret_but_quotes_nothing() {
    let client = secrets_client().await;
    let (_, pem) = key("k1", SigningAlgorithm::EdDsa);
    let pem_as_current = create_secret(
        &client,
        &json!({"current": pem.expose_secret(), "refresh_token_key": crate::helpers::REFRESH_TOKEN_KEY}),
    )
    .await;
    let without_refresh_key = create_secret(
        &client,
        &json!({"current": {"kid": "k1", "algorithm": "EdDSA", "private_key": pem.expose_secret()}}),
    )
    .await;

    for arn in [&pem_as_current, &without_refresh_key] {
        let app = app_with(
            &[("JWT_SIGNING_KEY_SECRET_ARN", arn), ("JWT_ISSUER", "i"), ("JWT_AUDIENCE", "a")],
            SIGNER,
        );
        let error = app.tokens().await.err().expect("the secret does not parse");
        let message = format!("{:#}", anyhow::Error::from(error));
        assert!(message.contains(arn.as_str()), "{message}");
        assert!(!message.contains("BEGIN") && !message.contains(REFRESH_TOKEN_KEY_START), "{message}");
    }
    let app = app_with(
        &[("JWT_SIGNING_KEY_SECRET_ARN", &without_refresh_key), ("JWT_ISSUER", "i"), ("JWT_AUDIENCE", "a")],
        SIGNER,
    );
    let message = format!("{:#}", anyhow::Error::from(app.tokens().await.err().unwrap()));
    assert!(message.contains("refresh_token_key"), "the missing field is named: {message}");
}

/// The start of the tests' refresh-token key, which no error may quote.
const REFRESH_TOKEN_KEY_START: &str = "the tests' refresh";
