//! The real binaries configured as in AWS: nothing secret in their environment, the database
//! credentials and the signing keys read from Secrets Manager (moto on loopback) through the real
//! SDK. Runs under `scripts/with-moto`, which `make test` provides.

use std::process::Stdio;
use std::str::FromStr as _;
use std::time::Duration;

use crate::helpers::{
    REGION, TestApi, TestDb, create_secret, email, eventually, key_id, moto_endpoint, secrets_client,
    server_lock, server_url, use_local_secrets_manager,
};
use aws_sdk_secretsmanager::Client;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use local_lambda::{EmulatorConfig, Log};
use secrecy::ExposeSecret as _;
use serde_json::json;
use shared::tokens::{SigningAlgorithm, SigningKey, generate_private_key_pem, public_key_set};
use sqlx::postgres::PgConnectOptions;

/// A login role with a password, allowed to use the test database's tables, and the secret RDS
/// would write for it.
async fn role_with_secret(db: &TestDb, client: &Client) -> (String, String) {
    let (role, password) = crate::helpers::login_role(db, "fn").await;
    let server = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
    let secret = json!({
        "engine": "postgres", "username": role, "password": password,
        "host": server.get_host(), "port": server.get_port(), "dbname": db.name,
    });
    let arn = create_secret(client, &secret).await;
    (role, arn)
}

/// Points the functions at the local Secrets Manager with the given credentials and at the
/// database secret `db_arn` rather than a database URL.
fn configure_aws(
    config: &mut EmulatorConfig,
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    db_arn: &str,
) {
    use_local_secrets_manager(config, endpoint, access_key, secret_key);
    let env = &mut config.env_overrides;
    env.remove_for_all("DATABASE_URL");
    env.set_for_all("DB_SECRET_ARN", db_arn);
}

/// Points the signing functions at `signing_arn`, the verifying ones at `verification_arn` and
/// the second factor's at `mfa_arn` (its key ring) instead of keys in the environment.
fn configure_key_secrets(
    config: &mut EmulatorConfig,
    signing_arn: &str,
    verification_arn: &str,
    mfa_arn: &str,
) {
    let env = &mut config.env_overrides;
    for name in ["JWT_PRIVATE_KEY", "JWT_KEY_ID", "REFRESH_TOKEN_HMAC_KEY", "JWT_PUBLIC_KEYS", "MFA_KEYS"] {
        env.remove_for_all(name);
    }
    env.set_for_all("JWT_SIGNING_KEY_SECRET_ARN", signing_arn);
    env.set_for_all("JWT_VERIFICATION_KEYS_SECRET_ARN", verification_arn);
    env.set_for_all("MFA_KEYS_SECRET_ARN", mfa_arn);
}

#[tokio::test]
async fn the_functions_read_their_credentials_and_keys_from_secrets_manager() {
    let lock = server_lock(false);
    let endpoint = moto_endpoint();
    let client = secrets_client(&endpoint, "moto", "moto").await;
    let db = TestDb::create().await;
    let (role, db_arn) = role_with_secret(&db, &client).await;
    let current = generate_private_key_pem(SigningAlgorithm::Es256).expect("an ES256 key");
    let previous = generate_private_key_pem(SigningAlgorithm::Rs256).expect("an RS256 key");
    let signing_arn = create_secret(
        &client,
        &json!({
            "current": {"kid": "e2e-2026-11", "algorithm": "ES256", "private_key": current.expose_secret()},
            "refresh_token_key": crate::helpers::REFRESH_TOKEN_KEY,
        }),
    )
    .await;
    let public = |kid: &str, algorithm: SigningAlgorithm, pem: &secrecy::SecretString| {
        SigningKey::from_pem(kid, algorithm, pem).expect("a key")
    };
    let verification_arn = create_secret(
        &client,
        &public_key_set(&[
            &public("e2e-2026-11", SigningAlgorithm::Es256, &current),
            &public("e2e-2026-10", SigningAlgorithm::Rs256, &previous),
        ]),
    )
    .await;
    let mfa_arn = create_secret(&client, &serde_json::from_str(test_support::MFA_KEYS).unwrap()).await;
    let api = TestApi::start_on(db, lock, |config| {
        configure_aws(config, &endpoint, "moto", "moto", &db_arn);
        configure_key_secrets(config, &signing_arn, &verification_arn, &mfa_arn);
    })
    .await;
    let user = email();

    let signup = api.post_signup(&user).await;
    // The ring seals the enrolment's secret in one function and opens it in another.
    let authorization = format!("Bearer {}", signup.access_token());
    let bearer = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    let enrolment = api.request(http::Method::POST, "/auth/mfa/totp/enroll", &bearer[..1], None).await;
    let secret =
        shared::mfa::totp::TotpSecret::from_base32(enrolment.body["secret"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let body = json!({"factor_id": enrolment.body["factor_id"], "code": secret.code_at(shared::mfa::totp::step_of(now))});
    let confirm =
        api.request(http::Method::POST, "/auth/mfa/totp/confirm", &bearer, Some(&body.to_string())).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    sqlx::query("delete from mfa_factors").execute(&api.db.pool).await.unwrap();
    let login = api.post_login(&user).await;
    let me = api.get_me(&login.access_token()).await;
    let refresh = api.post_refresh(&login.refresh_token()).await;
    let logout = api.post_logout(&refresh.refresh_token()).await;
    let health = api.get("/health").await;
    let jwks = api.get("/.well-known/jwks.json").await;

    assert_eq!(signup.status, 201, "{}", signup.text);
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!((me.status, me.body["email"].as_str()), (200, Some(user.as_str())), "{}", me.text);
    assert_eq!(refresh.status, 200, "{}", refresh.text);
    assert_eq!(logout.status, 204, "{}", logout.text);
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(key_id(&login.access_token()), "e2e-2026-11", "the current key signs");
    let kids: Vec<&str> =
        jwks.body["keys"].as_array().expect("keys").iter().filter_map(|key| key["kid"].as_str()).collect();
    assert_eq!(kids, ["e2e-2026-11", "e2e-2026-10"], "the JWKS lists the current and the previous key");
    // Every connection the functions opened logged in as the secret's user.
    let suffix = format!("%-{}", &api.db.name[3..11]);
    let users: Vec<String> = sqlx::query_scalar(
        "select distinct usename::text from pg_stat_activity where application_name like $1",
    )
    .bind(&suffix)
    .fetch_all(&api.db.pool)
    .await
    .expect("reading pg_stat_activity");
    assert_eq!(users, [role]);

    let reports = api.settled_invocations().await;
    for report in reports.iter().filter(|report| report.is_cold_start()) {
        println!("cold start with secrets from moto: {}", report.report_line());
    }
}

/// A moto server of the test's own that checks every request's signature and IAM permissions
/// once its first `free_requests` requests (the setup) have been served.
struct EnforcingMoto {
    endpoint: String,
    _process: tokio::process::Child,
}

impl EnforcingMoto {
    async fn start(free_requests: u32) -> Self {
        let moto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
        assert!(moto.is_file(), "{} is missing: run `make venv`", moto.display());
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
        let mut process = tokio::process::Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", free_requests.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let ready = format!("{endpoint}/moto-api/").parse::<http::Uri>().expect("a URI");
        eventually("moto_server to answer", Duration::from_secs(120), || {
            assert!(process.try_wait().expect("moto's status").is_none(), "moto_server exited");
            let request = http.get(ready.clone());
            async move { request.await.ok().filter(|response| response.status().is_success()).map(|_| ()) }
        })
        .await;
        Self { endpoint, _process: process }
    }

    /// Calls the IAM query API; during the free requests moto reads the service from the
    /// credential scope and checks no signature.
    async fn iam(&self, parameters: &str) -> String {
        let request = Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=setup/20261127/us-east-1/iam/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(Full::new(Bytes::from(format!("{parameters}&Version=2010-05-08"))))
            .expect("an IAM request");
        let http = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response = http.request(request).await.expect("IAM answers");
        let status = response.status();
        let body = response.into_body().collect().await.expect("IAM's body").to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(status.is_success(), "IAM {parameters}: {status} {body}");
        body
    }

    /// A user with an access key and no policy at all (two requests).
    async fn user_without_permissions(&self, name: &str) -> (String, String) {
        self.iam(&format!("Action=CreateUser&UserName={name}")).await;
        let created = self.iam(&format!("Action=CreateAccessKey&UserName={name}")).await;
        let element = |tag: &str| {
            let start = created.find(&format!("<{tag}>")).expect("the element") + tag.len() + 2;
            let end = created[start..].find('<').expect("its end") + start;
            created[start..end].to_owned()
        };
        (element("AccessKeyId"), element("SecretAccessKey"))
    }
}

#[tokio::test]
async fn without_permission_to_read_its_secret_a_function_answers_503_and_logs_the_secret() {
    // Three free requests: the user, its access key and the secret. Moto checks permissions by
    // action (it does not evaluate a policy's resource ARNs for Secrets Manager), so the
    // function's user has no policy rather than one for another secret.
    let moto = EnforcingMoto::start(3).await;
    let (access_key, secret_key) = moto.user_without_permissions("auth-function").await;
    let setup = secrets_client(&moto.endpoint, "setup", "setup").await;
    let arn = create_secret(
        &setup,
        &json!({"username": "nobody", "password": "unused", "host": "127.0.0.1", "port": 1}),
    )
    .await;
    let log = Log::captured();
    let api = TestApi::start_with(|config| {
        configure_aws(config, &moto.endpoint, &access_key, &secret_key, &arn);
        config.log = log.clone();
    })
    .await;

    let health = api.get("/health").await;
    let again = api.get("/health").await;
    let logout = api.post_logout(&"A".repeat(43)).await;

    for check in [&health, &again] {
        assert_eq!((check.status, &check.body["status"]), (503, &json!("unhealthy")), "{}", check.text);
    }
    assert_eq!(
        (logout.status, &logout.body["error"]),
        (503, &json!("service_unavailable")),
        "{}",
        logout.text
    );
    for response in [&health, &logout] {
        assert!(!response.text.contains(&arn), "the client is not told the secret's name: {}", response.text);
    }
    let lines = log.lines();
    assert!(
        lines.iter().any(|line| line.contains(&arn) && line.contains("AccessDenied")),
        "a log line names the secret and the denial:\n{}",
        lines.join("\n")
    );
    assert_eq!(api.only_sandbox("HealthFunction").invocations, 2, "one sandbox served both checks");
}

#[tokio::test]
async fn a_secret_that_does_not_exist_is_a_503_naming_it_in_the_log() {
    let endpoint = moto_endpoint();
    let arn = format!("arn:aws:secretsmanager:{REGION}:123456789012:secret:auth/missing-AbCdEf");
    let log = Log::captured();
    let api = TestApi::start_with(|config| {
        configure_aws(config, &endpoint, "moto", "moto", &arn);
        config.log = log.clone();
    })
    .await;

    let login = api.post_login(&email()).await;

    assert_eq!(login.status, 503, "{}", login.text);
    assert_eq!(login.body["error"], "service_unavailable", "{}", login.text);
    let lines = log.lines();
    assert!(
        lines.iter().any(|line| line.contains(&arn) && line.contains("ResourceNotFoundException")),
        "a log line names the missing secret:\n{}",
        lines.join("\n")
    );
}
