//! Database credentials and signing keys from Secrets Manager, through the real AWS SDK against
//! a local moto server (`scripts/with-moto` provides `AWS_ENDPOINT_URL_SECRETS_MANAGER`).

mod common;

use std::str::FromStr as _;

use aws_sdk_secretsmanager::Client;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use shared::app::App;
use shared::config::{Config, Needs};
use shared::handlers::health::{self, HealthEvent};
use shared::tokens::{SigningAlgorithm, SigningKey, TokenIssuer, generate_private_key_pem};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

async fn secrets_client() -> Client {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").is_ok(),
        "run through scripts/with-moto (make test does)"
    );
    Client::new(&aws_config::load_from_env().await)
}

async fn create_secret(client: &Client, value: &Value) -> String {
    let name = format!("test/{}", Uuid::new_v4());
    let created = client
        .create_secret()
        .name(&name)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("create secret");
    created.arn().expect("an ARN").to_owned()
}

/// A login role with its own password on the test database, and the RDS-format secret for it.
async fn role_with_secret(pool: &PgPool, client: &Client) -> (String, String) {
    let role = format!("app_{}", Uuid::new_v4().simple());
    let database: String = sqlx::query_scalar("select current_database()").fetch_one(pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create role {role} login password 'first-password'")))
        .execute(pool)
        .await
        .unwrap();
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

const DATABASE_ONLY: Needs = Needs { database: true, keys: false };

#[sqlx::test(migrations = "../migrations")]
async fn database_credentials_come_from_an_rds_format_secret(pool: PgPool) {
    let client = secrets_client().await;
    let (role, arn) = role_with_secret(&pool, &client).await;
    let app = app_with(&[("DB_SECRET_ARN", &arn), ("AWS_LAMBDA_FUNCTION_NAME", &role)], DATABASE_ONLY);

    let response = health::handle(&app, HealthEvent::Http(Box::default())).await;

    assert_eq!(response.status_code, 200, "{}", response.body);
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
    assert_eq!(health::handle(&app, HealthEvent::Http(Box::default())).await.status_code, 200);

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

    let response = health::handle(&app, HealthEvent::Http(Box::default())).await;

    assert_eq!(response.status_code, 200, "{}", response.body);
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
    let response = shared::handlers::logout::handle(&app, common::json_request(&body)).await;

    assert!(format!("{:#}", anyhow::Error::from(error)).contains(arn));
    assert_eq!(response.status_code, 503);
    assert_eq!(serde_json::from_str::<Value>(&response.body).unwrap()["error"], "service_unavailable");
}

#[tokio::test]
async fn signing_keys_come_from_a_secret_with_previous_keys_still_verifying() {
    let client = secrets_client().await;
    let current = generate_private_key_pem(SigningAlgorithm::Rs256).unwrap();
    let previous = generate_private_key_pem(SigningAlgorithm::Es256).unwrap();
    let arn = create_secret(
        &client,
        &json!({
            "current": {"kid": "2026-11", "algorithm": "RS256", "private_key": current.expose_secret()},
            "previous": [{"kid": "2026-10", "algorithm": "ES256", "private_key": previous.expose_secret()}],
        }),
    )
    .await;
    let app = app_with(
        &[("JWT_KEYS_SECRET_ARN", &arn), ("JWT_ISSUER", common::ISSUER), ("JWT_AUDIENCE", common::AUDIENCE)],
        Needs { database: false, keys: true },
    );
    let old_issuer = TokenIssuer::new(
        SigningKey::from_pem("2026-10", SigningAlgorithm::Es256, &previous).unwrap(),
        Vec::new(),
        common::ISSUER.into(),
        common::AUDIENCE.into(),
        std::time::Duration::from_secs(60),
    );
    let (user, session) = (shared::domain::UserId::generate(), shared::domain::SessionId::generate());

    let tokens = app.tokens().await.expect("keys from the secret");
    let jwks = serde_json::to_value(tokens.jwks()).unwrap();
    let fresh = tokens.issue(user, session).unwrap();
    let old = old_issuer.issue(user, session).unwrap();

    let kids: Vec<&str> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, ["2026-11", "2026-10"]);
    assert_eq!(jsonwebtoken::decode_header(&fresh.token).unwrap().kid.as_deref(), Some("2026-11"));
    assert!(tokens.verify(&fresh.token).is_ok());
    assert!(tokens.verify(&old.token).is_ok(), "tokens of the previous key verify until they expire");
}
