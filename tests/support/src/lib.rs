//! What the test suites of `shared/` and `tests/e2e`, the bench and the rehearsal share: the test
//! signing key, the password every test user has, the local Secrets Manager, SES and EventBridge
//! that `scripts/with-moto` starts (with the mail the functions sent, and a [`bus`] whose queue
//! shows the events sent), a TCP proxy that fails on command ([`fault_proxy`]), login roles on
//! the test database, and the sample events of `events/` made real ([`samples`]).

pub mod authenticator;
pub mod bus;
pub mod fault_proxy;
pub mod samples;

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

/// The tests' MFA key ring (`MFA_KEYS`): one AES-256 key, `t1`, that seals TOTP secrets.
pub const MFA_KEYS: &str = r#"{"current":"t1","keys":{"t1":"dGhlIHRlc3RzIE1GQSBrZXksIDMyIGJ5dGVzIGxvbmc="}}"#;

/// [`MFA_KEYS`], parsed.
pub fn mfa_keys() -> shared::mfa::seal::SealingKeys {
    shared::mfa::seal::SealingKeys::from_json(MFA_KEYS).expect("the tests' MFA ring")
}

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

/// The SES identity the tests send from (a domain: any address of it may send).
pub const MAIL_DOMAIN: &str = "auth.test";

/// The `MAIL_FROM` of the tests: an address of [`MAIL_DOMAIN`].
pub const MAIL_FROM: &str = "Auth <no-reply@auth.test>";

/// The `APP_URL` of the tests: the links in their mail open pages below it.
pub const APP_URL: &str = "https://app.auth.test";

/// Verifies [`MAIL_DOMAIN`] in the local SES (moto sends only from a verified identity), as an
/// operator does once per account and region. Verifying it again changes nothing.
pub async fn verify_mail_identity() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SESV2")
        .expect("AWS_ENDPOINT_URL_SESV2 names a local SES (run under scripts/with-moto, as make test does)");
    let config = aws_config::from_env()
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("moto", "moto", None, None, "test"))
        .load()
        .await;
    let client = aws_sdk_sesv2::Client::new(&config);
    if let Err(error) = client.create_email_identity().email_identity(MAIL_DOMAIN).send().await {
        let already =
            aws_sdk_sesv2::error::ProvideErrorMetadata::code(&error) == Some("AlreadyExistsException");
        assert!(
            already,
            "verifying the mail identity: {}",
            aws_sdk_sesv2::error::DisplayErrorContext(&error)
        );
    }
}

/// Every message the local SES accepted for `to`, as raw MIME, oldest first: read from moto's
/// own record of what it sent (`/moto-api/data.json`).
pub async fn sent_mail(to: &str) -> Vec<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SESV2").expect("AWS_ENDPOINT_URL_SESV2 is set");
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut stream = tokio::net::TcpStream::connect(&authority).await.expect("connecting to moto");
    let request = format!("GET /moto-api/data.json HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("asking moto");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("moto's answer");
    let response = String::from_utf8(response).expect("moto answers UTF-8");
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let data: Value = serde_json::from_str(body).expect("moto's model data is JSON");
    let messages = data["ses"]["RawMessage"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .filter(|message| {
            message["destinations"]
                .as_array()
                .is_some_and(|to_all| to_all.iter().any(|d| d.as_str() == Some(to)))
        })
        .map(|message| message["raw_data"].as_str().expect("a raw message").to_owned())
        .collect()
}

/// A message as a mail client reads it: its headers and both bodies, decoded from MIME.
#[derive(Debug, Clone)]
pub struct ReadMail {
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Reads a raw MIME message (what SES accepted, or an `.eml` copy).
pub fn read_mail(mime: &str) -> ReadMail {
    let parsed = mail_parser::MessageParser::default().parse(mime.as_bytes()).expect("a MIME message");
    let from = parsed.from().and_then(|from| from.first()).expect("a From header");
    ReadMail {
        from: match from.name() {
            Some(name) => format!("{name} <{}>", from.address().unwrap_or_default()),
            None => from.address().unwrap_or_default().to_owned(),
        },
        subject: parsed.subject().unwrap_or_default().to_owned(),
        text: parsed.body_text(0).expect("a text part").into_owned(),
        html: parsed.body_html(0).expect("an HTML part").into_owned(),
    }
}

/// The token of the first link in a message's text (`...#token=<43 base64url characters>`).
pub fn link_token(mime: &str) -> String {
    let text = read_mail(mime).text;
    let start = text.find("#token=").expect("a link with a token") + "#token=".len();
    let token: String =
        text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c)).collect();
    assert_eq!(token.len(), 43, "a 256-bit base64url token: {token}");
    token
}
