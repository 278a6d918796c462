//! What the test suites of `shared/` and `emulator/` share (a dev-dependency of both): the test
//! signing key, the password every test user has, the local Secrets Manager that
//! `scripts/with-moto` starts, and login roles on the test database.

use std::sync::LazyLock;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use secrecy::SecretString;
use serde_json::Value;
use shared::tokens::{SigningAlgorithm, SigningKey, generate_private_key_pem, public_key_set};
use sqlx::PgPool;

/// The password of every test user: strong enough for signup's check.
pub const PASSWORD: &str = "correct horse battery staple";

/// The signers' refresh-token HMAC key (`REFRESH_TOKEN_HMAC_KEY`).
pub const REFRESH_TOKEN_KEY: &str = "the tests' refresh-token key, 32+ bytes";

/// The region of the local Secrets Manager and of the functions that read it.
pub const REGION: &str = "eu-west-1";

/// One RSA key per test binary: generating a 2048-bit key per test is wasted time.
static KEY_PEM: LazyLock<SecretString> =
    LazyLock::new(|| generate_private_key_pem(SigningAlgorithm::Rs256).expect("key generation"));

/// The test binary's RSA private key (PKCS#8 PEM).
pub fn key_pem() -> &'static SecretString {
    &KEY_PEM
}

/// [`key_pem`] as a signing key with id `kid`.
pub fn signing_key(kid: &str) -> SigningKey {
    SigningKey::from_pem(kid, SigningAlgorithm::Rs256, &KEY_PEM).expect("the test key")
}

/// The public half of [`key_pem`] as a JWK set (`JWT_PUBLIC_KEYS`), its key named `kid`.
pub fn public_keys(kid: &str) -> String {
    public_key_set(&[&signing_key(kid)]).to_string()
}

/// The local Secrets Manager's endpoint (`AWS_ENDPOINT_URL_SECRETS_MANAGER`).
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").expect(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER names a local Secrets Manager (run under scripts/with-moto, as make test does)",
    )
}

/// A Secrets Manager client for the local endpoint, configured from the environment as the
/// functions' is.
pub async fn local_secrets_client() -> Client {
    moto_endpoint();
    Client::new(&aws_config::load_from_env().await)
}

/// A Secrets Manager client for `endpoint` with the given credentials.
pub async fn secrets_client(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let config = aws_config::from_env()
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .load()
        .await;
    Client::new(&config)
}

/// Creates a secret holding `value` as JSON under a name of its own; returns its ARN.
pub async fn create_secret(client: &Client, value: &Value) -> String {
    let created = client
        .create_secret()
        .name(format!("test/{}", uuid::Uuid::new_v4()))
        .secret_string(value.to_string())
        .send()
        .await
        .expect("create secret");
    created.arn().expect("an ARN").to_owned()
}

/// A new login role named `<prefix>_<random>` with `password`, allowed DML on the tables of
/// `pool`'s database when `dml` is set (as an application role is after the migration);
/// returns its name.
pub async fn login_role(pool: &PgPool, prefix: &str, password: &str, dml: bool) -> String {
    let role = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "a password safe to splice");
    // The name and the password are the test's own (letters, digits, dashes): safe to splice.
    let mut statements = format!("create role {role} login password '{password}';");
    if dml {
        statements.push_str(&format!(
            "grant select, insert, update, delete on all tables in schema public to {role};"
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(statements)).execute(pool).await.expect("creating the role");
    role
}
