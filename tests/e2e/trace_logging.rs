//! The most verbose logging an operator can ask for (`RUST_LOG=trace`, or Lambda's
//! `AWS_LAMBDA_LOG_LEVEL=TRACE`) still never prints a request or response body: no password, no
//! refresh token, no secret value read from Secrets Manager. Runs the real binaries under
//! `scripts/with-moto` (the database secret comes from the local Secrets Manager).

use std::str::FromStr as _;

use crate::helpers::{PASSWORD, TestApi, TestDb, email, server_lock, server_url};
use aws_sdk_secretsmanager::config::{Credentials, Region};
use local_lambda::Log;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;

const REGION: &str = "eu-west-1";

/// The secrets a verbose log could leak, once a login and a refresh went through.
struct Leaks {
    secrets: Vec<(&'static str, String)>,
    function_lines: Vec<String>,
}

/// Signs up, logs in and refreshes through the emulator with the functions' log level set by
/// `level` (an environment variable and its value), reading the database credentials from
/// Secrets Manager; returns what must not be logged and everything the functions printed.
async fn login_and_refresh_logged_at(level: (&'static str, &'static str)) -> Leaks {
    let lock = server_lock(false);
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").expect(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER names a local Secrets Manager (run under scripts/with-moto)",
    );
    let db = TestDb::create().await;
    // The server trusts `postgres` on loopback, so any password works; it must still never be
    // logged, as a real one would be.
    let db_password = format!("db-password-{}", uuid::Uuid::new_v4().simple());
    let server = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
    let secret = json!({
        "engine": "postgres", "username": server.get_username(), "password": db_password,
        "host": server.get_host(), "port": server.get_port(), "dbname": db.name,
    });
    let config = aws_config::from_env()
        .endpoint_url(&endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("moto", "moto", None, None, "test"))
        .load()
        .await;
    let created = aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(format!("trace/{}", uuid::Uuid::new_v4()))
        .secret_string(secret.to_string())
        .send()
        .await
        .expect("create secret");
    let db_arn = created.arn().expect("an ARN").to_owned();
    // In Lambda the role's session token is in the environment and signs every SDK request.
    let session_token = format!("session-token-{}", uuid::Uuid::new_v4().simple());

    let api = TestApi::start_on(db, lock, |config| {
        config.log = Log::captured();
        config.region = REGION.to_owned();
        let env = &mut config.env_overrides;
        env.remove_for_all("DATABASE_URL");
        env.set_for_all("DB_SECRET_ARN", db_arn.clone());
        env.set_for_all("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.clone());
        env.set_for_all("AWS_ACCESS_KEY_ID", "moto");
        env.set_for_all("AWS_SECRET_ACCESS_KEY", "moto");
        env.set_for_all("AWS_SESSION_TOKEN", session_token.clone());
        env.remove_for_all("RUST_LOG");
        env.set_for_all(level.0, level.1);
    })
    .await;
    let user = email();

    let signup = api.post_signup(&user).await;
    let login = api.post_login(&user).await;
    let refresh = api.post_refresh(&login.refresh_token()).await;
    api.settled_invocations().await;

    assert_eq!(signup.status, 201, "{}", signup.text);
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(refresh.status, 200, "{}", refresh.text);
    // Lines are `[LogicalId] ...`: the functions' output and the emulator's lines about them.
    let function_lines =
        api.emulator.log().lines().into_iter().filter(|line| !line.starts_with("[api]")).collect();
    Leaks {
        secrets: vec![
            ("the password", PASSWORD.to_owned()),
            ("the login's refresh token", login.refresh_token()),
            ("the refreshed refresh token", refresh.refresh_token()),
            ("the database password from Secrets Manager", db_password),
            ("the session token", session_token),
        ],
        function_lines,
    }
}

fn assert_nothing_leaked(leaks: &Leaks) {
    // Our own crates stay the operator's to raise (sqlx's statements appear at DEBUG).
    let verbose = leaks
        .function_lines
        .iter()
        .filter(|line| line.contains(" DEBUG ") || line.contains(" TRACE "))
        .count();
    assert!(verbose > 0, "the functions logged nothing below INFO: the level was not raised");
    for (what, value) in &leaks.secrets {
        let leaked: Vec<&String> =
            leaks.function_lines.iter().filter(|line| line.contains(value.as_str())).collect();
        assert!(
            leaked.is_empty(),
            "{what} was logged:\n{}",
            leaked.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_rust_log_trace_no_body_password_or_token_is_logged() {
    let leaks = login_and_refresh_logged_at(("RUST_LOG", "trace")).await;

    assert_nothing_leaked(&leaks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_lambda_log_level_trace_no_body_password_or_token_is_logged() {
    let leaks = login_and_refresh_logged_at(("AWS_LAMBDA_LOG_LEVEL", "TRACE")).await;

    assert_nothing_leaked(&leaks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_the_runtimes_crates_at_trace_prints_no_body_either() {
    let leaks = login_and_refresh_logged_at((
        "RUST_LOG",
        "trace,lambda_runtime=trace,lambda_runtime::layers::api_response=trace,lambda_runtime_api_client=trace,\
         aws_smithy_runtime=trace,aws_smithy_http_client=trace,hyper=trace,hyper_util=trace,h2=trace,\
         [{requestId}]=trace",
    ))
    .await;

    assert_nothing_leaked(&leaks);
}
