//! TLS to the database for real: scripts/with-postgres runs the server with `ssl = on` and a
//! certificate signed by an authority made for the run (PG_SSL_ROOT_CERT). The real binaries
//! read a secret as RDS manages it (only a username and a password), take the host, port and
//! database from DB_HOST, DB_PORT and DB_NAME, and check the server's certificate
//! (`DB_SSLMODE=verify-full`) against DB_SSL_ROOT_CERT. Runs under scripts/with-moto.

use std::str::FromStr as _;

use crate::helpers::{
    TestApi, TestDb, create_secret, email, moto_endpoint, secrets_client, server_lock, server_url,
};
use local_lambda::{EmulatorConfig, Log};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;

/// The authority that signed the test server's certificate, or another one.
fn root_cert(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| panic!("{variable} is unset: run under scripts/with-postgres"))
}

/// A login role with a password, allowed to use the test database's tables, and a secret as
/// RDS writes it for a master password it manages: a username and a password, nothing else.
async fn role_with_managed_secret(db: &TestDb) -> (String, String) {
    let (role, password) = crate::helpers::login_role(db, "tls").await;
    let client = secrets_client(&moto_endpoint(), "moto", "moto").await;
    let arn = create_secret(&client, &json!({ "username": role, "password": password })).await;
    (role, arn)
}

/// The functions read `arn` and connect to the test server named by DB_HOST, DB_PORT and
/// DB_NAME with `verify-full` against `root_cert`.
fn configure(config: &mut EmulatorConfig, arn: &str, database: &str, root_cert: &str) {
    crate::helpers::use_local_secrets_manager(config, &moto_endpoint(), "moto", "moto");
    let server = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
    let env = &mut config.env_overrides;
    env.remove_for_all("DATABASE_URL");
    env.set_for_all("DB_SECRET_ARN", arn);
    env.set_for_all("DB_HOST", server.get_host());
    env.set_for_all("DB_PORT", server.get_port().to_string());
    env.set_for_all("DB_NAME", database);
    env.set_for_all("DB_SSLMODE", "verify-full");
    env.set_for_all("DB_SSL_ROOT_CERT", root_cert);
}

/// The API on a database of the test's own, its functions reading a managed secret of a new
/// login role and checking the server's certificate against the authority in
/// `root_cert_variable`; `tweak` changes the configuration further. Also returns the role and
/// the secret's ARN.
async fn start(
    root_cert_variable: &str,
    tweak: impl FnOnce(&mut EmulatorConfig),
) -> (TestApi, String, String) {
    let lock = server_lock(false);
    let db = TestDb::create().await;
    let (role, arn) = role_with_managed_secret(&db).await;
    let name = db.name.clone();
    let api = TestApi::start_on(db, lock, |config| {
        configure(config, &arn, &name, &root_cert(root_cert_variable));
        tweak(config);
    })
    .await;
    (api, role, arn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_managed_secret_and_the_servers_ca_the_functions_connect_with_verify_full() {
    let (api, role, _) = start("PG_SSL_ROOT_CERT", |_| {}).await;
    let user = email();

    let signup = api.post_signup(&user).await;
    let login = api.post_login(&user).await;
    let me = api.get_me(&login.access_token()).await;
    let health = api.get("/health").await;

    assert_eq!(signup.status, 201, "{}", signup.text);
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(health.status, 200, "{}", health.text);
    // Every connection the functions hold is the secret's user's, over TLS.
    let connections: Vec<(String, bool)> = sqlx::query_as(
        "select a.usename::text, s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid)
         where a.datname = $1 and a.usename = $2",
    )
    .bind(&api.db.name)
    .bind(&role)
    .fetch_all(&api.db.pool)
    .await
    .expect("reading pg_stat_ssl");
    assert!(!connections.is_empty(), "the functions keep their connections");
    assert!(connections.iter().all(|(_, ssl)| *ssl), "{connections:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_another_ca_the_functions_answer_503_and_log_that_the_server_certificate_is_not_trusted() {
    let log = Log::captured();
    let (api, _, _) = start("PG_SSL_WRONG_ROOT_CERT", |config| config.log = log.clone()).await;

    let health = api.get("/health").await;
    let login = api.post_login(&email()).await;

    assert_eq!((health.status, &health.body["database"]), (503, &json!("disconnected")), "{}", health.text);
    assert_eq!((login.status, &login.body["error"]), (503, &json!("service_unavailable")), "{}", login.text);
    let lines = log.lines();
    assert!(
        lines.iter().any(|line| line.contains("the database server's certificate is not trusted")
            && line.contains("DB_SSL_ROOT_CERT")),
        "{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_secret_without_db_host_is_a_503_whose_log_names_the_missing_setting() {
    let log = Log::captured();
    let (api, _, arn) = start("PG_SSL_ROOT_CERT", |config| {
        config.env_overrides.remove_for_all("DB_HOST");
        config.log = log.clone();
    })
    .await;

    let login = api.post_login(&email()).await;

    assert_eq!((login.status, &login.body["error"]), (503, &json!("service_unavailable")), "{}", login.text);
    assert!(!login.text.contains("DB_HOST"), "the client is not told the configuration: {}", login.text);
    let lines = log.lines();
    assert!(
        lines.iter().any(|line| line.contains(&arn) && line.contains("DB_HOST") && line.contains("DbHost")),
        "{}",
        lines.join("\n")
    );
}
