//! The migrate function, the real binary with the template's environment, invoked as the
//! README tells an operator to after a deploy: on an empty database, then on an up-to-date one.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::{TestApi, TestDb, binaries_dir, server_lock, template};
use local_lambda::{InvokeOutcome, Template};
use serde_json::Value;

/// `events/migrate.json`, the event `local-lambda invoke migrate` is given.
fn migrate_event() -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/migrate.json");
    Bytes::from(std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
}

/// Invokes the migrate function and returns its response payload (an API-Gateway-shaped
/// response: `statusCode`, `body`).
async fn invoke_migrate(api: &TestApi) -> (u16, Value) {
    match api.emulator.invoke("MigrateFunction", migrate_event()).await.expect("an invocation") {
        InvokeOutcome::Response(payload) => {
            let response: Value = serde_json::from_slice(&payload).expect("a JSON payload");
            let status = response["statusCode"].as_u64().expect("a status code") as u16;
            let body = serde_json::from_str(response["body"].as_str().expect("a body")).expect("a JSON body");
            (status, body)
        }
        other => panic!("the migrate function failed: {other:?}"),
    }
}

async fn applied_migrations(api: &TestApi) -> i64 {
    sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&api.db.pool)
        .await
        .expect("the migrations table")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_every_migration_to_an_empty_database_then_finds_it_up_to_date() {
    assert!(binaries_dir().join("migrate").is_file(), "build the migrate binary first");
    let spec = Template::load(&template(), "us-east-1").expect("the template");
    let function =
        spec.functions.iter().find(|f| f.logical_id == "MigrateFunction").expect("MigrateFunction");
    assert_eq!(
        function.environment.get("DB_MAX_CONNECTIONS").map(String::as_str),
        Some("1"),
        "the template's pool of one connection"
    );
    let api = TestApi::start_on(TestDb::create_empty().await, server_lock(false), |_| {}).await;
    let known = shared::db::MIGRATOR.iter().count();

    let (first_status, first_body) = invoke_migrate(&api).await;

    assert_eq!(first_status, 200, "{first_body}");
    assert_eq!(first_body["migrations"], known);
    assert_eq!(applied_migrations(&api).await, known as i64);
    let tables: Vec<String> = sqlx::query_scalar(
        "select tablename::text from pg_tables where schemaname = 'public' and tablename not like '\\_sqlx%'
         order by tablename",
    )
    .fetch_all(&api.db.pool)
    .await
    .unwrap();
    assert_eq!(tables, ["login_attempts", "refresh_tokens", "sessions", "users"]);

    let (again_status, again_body) = invoke_migrate(&api).await;

    assert_eq!(again_status, 200, "{again_body}");
    assert_eq!(again_body["migrations"], known);
    assert_eq!(applied_migrations(&api).await, known as i64);
    let signup = api.post_signup(&common::email()).await;
    assert_eq!(signup.status, 201, "the migrated schema serves: {}", signup.text);
}
