//! Secrets from AWS Secrets Manager, through the real SDK: the database credentials (in the
//! format RDS writes), the signing key and the public verification keys.
//!
//! The client is built once per execution environment and only by functions that name a secret.
//! Caching is the caller's: the database secret is fetched again only when it is known to be
//! stale (Postgres rejected the password), the keys on a TTL (see `keys`).

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata as _, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A secret that could not be fetched or read; its message names the secret.
#[derive(Debug, thiserror::Error)]
#[error("secret {arn}: {problem}")]
pub struct SecretError {
    pub arn: String,
    pub problem: String,
}

/// How long opening a connection to Secrets Manager may take. A VPC with neither an interface
/// endpoint nor a NAT drops the packets, and without a bound the SDK waits on them.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one attempt (connect, send, read the answer) may take: Secrets Manager answers in
/// tens of milliseconds, so an attempt this slow is a network that does not answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a whole call may take, retries and their backoff included. A function waiting for a
/// secret answers 503 once this has passed, well inside its own Lambda timeout.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per call (the first one and one retry): a transient error is retried once, within
/// [`OPERATION_TIMEOUT`].
pub const MAX_ATTEMPTS: u32 = 2;

/// The AWS SDK's configuration as Lambda sets it up (region, credentials, and an
/// `AWS_ENDPOINT_URL_<SERVICE>` for a local endpoint), every call bounded by
/// [`CONNECT_TIMEOUT`], [`ATTEMPT_TIMEOUT`], [`OPERATION_TIMEOUT`] and [`MAX_ATTEMPTS`]: what
/// every client of the functions (Secrets Manager, SES) is built from.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    aws_config::from_env()
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}

/// A Secrets Manager client.
#[derive(Clone)]
pub struct Secrets {
    client: Client,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets")
    }
}

impl Secrets {
    /// A client configured from the environment ([`sdk_config`];
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER` for a local endpoint).
    pub async fn from_env() -> Self {
        Self { client: Client::new(&sdk_config().await) }
    }

    /// Fetches the current version of a secret's string value.
    pub async fn text(&self, arn: &str) -> Result<String, SecretError> {
        let error = |problem: String| SecretError { arn: arn.to_owned(), problem };
        let output = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|sdk_error| error(describe(&sdk_error)))?;
        output
            .secret_string()
            .map(str::to_owned)
            .ok_or_else(|| error("the secret has no string value".to_owned()))
    }

    /// Fetches the current version of a JSON secret and parses it into `T`.
    pub async fn json<T: DeserializeOwned>(&self, arn: &str) -> Result<T, SecretError> {
        parse(arn, &self.text(arn).await?)
    }
}

/// Parses a JSON secret into `T`. A failure names the secret, the kind of error and where it
/// is, never the text: serde's messages quote values (`invalid type: string "-----BEGIN..."`).
pub fn parse<T: DeserializeOwned>(arn: &str, text: &str) -> Result<T, SecretError> {
    serde_json::from_str(text).map_err(|parse_error| SecretError {
        arn: arn.to_owned(),
        problem: format!("not the expected JSON: {}", describe_json_error(&parse_error)),
    })
}

/// A JSON error without the input's values: its category and position, plus the field's name
/// when one is missing (a name from our own types, never from the input).
pub fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let category = match error.classify() {
        Category::Io => "an I/O error",
        Category::Syntax => "a syntax error",
        Category::Data => "a value of the wrong type or shape",
        Category::Eof => "the text ends early",
    };
    let message = error.to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| format!(" (missing field {field:?})"))
        .unwrap_or_default();
    format!("{category}{missing} at line {}, column {}", error.line(), error.column())
}

/// What went wrong, in one line: the service's error code and message when it answered with
/// one (`HTTP 403 AccessDeniedException: ...`), its status and the start of its body when that
/// could not be parsed, or the transport's error chain.
fn describe(error: &SdkError<GetSecretValueError, HttpResponse>) -> String {
    let SdkError::ServiceError(service) = error else {
        return DisplayErrorContext(error).to_string();
    };
    let status = service.raw().status().as_u16();
    match service.err().code() {
        Some(code) => format!("HTTP {status} {code}: {}", service.err().message().unwrap_or("no message")),
        None => {
            let body = service.raw().body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            // One log line: the body's line breaks become spaces.
            let start: String =
                body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(300).collect();
            format!("HTTP {status}, an answer the SDK could not read: {start}")
        }
    }
}

/// Database credentials as RDS (and RDS Proxy) store them. `Debug` redacts the password. A
/// secret RDS manages for a master user holds only `username` and `password`: the rest may
/// come from the environment (`DB_HOST`, `DB_PORT`, `DB_NAME`).
#[derive(Debug, Deserialize)]
pub struct DatabaseSecret {
    pub username: String,
    pub password: SecretString,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "port_number_or_string")]
    pub port: Option<u16>,
    #[serde(default)]
    pub dbname: Option<String>,
}

/// The signing functions' secret (`JWT_SIGNING_KEY_SECRET_ARN`; `Debug` redacts the keys):
/// `{"current": {"kid","algorithm","private_key"}, "refresh_token_key": "..."}`. Only the current
/// key signs; the verifiers learn the public halves from their own secret (a JWK set).
#[derive(Debug, Deserialize)]
pub struct SigningKeySecret {
    pub current: KeyEntry,
    /// Keys refresh-token successors (at least 32 bytes). Required, and never derived from a
    /// signing key: it must outlive every signing-key rotation.
    pub refresh_token_key: SecretString,
}

/// The signing key of [`SigningKeySecret`].
#[derive(Debug, Deserialize)]
pub struct KeyEntry {
    pub kid: String,
    /// `RS256` (default), `ES256` or `EdDSA`.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// PKCS#8 PEM (PKCS#1 accepted for RSA).
    pub private_key: SecretString,
}

/// RDS writes the port as a number; hand-made secrets often hold a string.
fn port_number_or_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    match Option::<Port>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Port::Number(port)) => Ok(Some(port)),
        Some(Port::Text(text)) => text.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_rds_secret_format_parses_with_a_numeric_or_textual_port() {
        let rds = r#"{"engine":"postgres","username":"app","password":"p\"w","host":"db","port":5432,"dbname":"auth"}"#;
        let secret: DatabaseSecret = serde_json::from_str(rds).unwrap();
        assert_eq!(
            (secret.username.as_str(), secret.port, secret.password.expose_secret()),
            ("app", Some(5432), "p\"w")
        );
        let text: DatabaseSecret =
            serde_json::from_str(r#"{"username":"a","password":"b","host":"h","port":"6432"}"#).unwrap();
        assert_eq!((text.port, text.dbname), (Some(6432), None));
    }

    #[test]
    fn a_wrongly_shaped_secret_is_reported_without_its_values() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHunter2\n-----END PRIVATE KEY-----\n";
        let cases = [
            // The whole secret stored as a JSON string: serde quotes it.
            ("arn:db", serde_json::json!("hunter2-db-password").to_string()),
            (
                "arn:keys",
                serde_json::json!({ "current": pem, "refresh_token_key": "r".repeat(32) }).to_string(),
            ),
            ("arn:keys", serde_json::json!({ "current": {"kid": 7, "private_key": pem} }).to_string()),
        ];
        for (arn, text) in &cases {
            let error = if *arn == "arn:db" {
                parse::<DatabaseSecret>(arn, text).unwrap_err()
            } else {
                parse::<SigningKeySecret>(arn, text).unwrap_err()
            };
            let message = error.to_string();
            assert!(!message.contains("hunter2") && !message.contains("BEGIN"), "{message}");
            assert!(message.contains(arn) && message.contains("line 1, column"), "{message}");
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let error =
            parse::<SigningKeySecret>("arn:keys", r#"{"current": {"kid": "k1", "private_key": "pem"}}"#)
                .unwrap_err();
        assert!(error.to_string().contains("refresh_token_key"), "{error}");
    }
}
