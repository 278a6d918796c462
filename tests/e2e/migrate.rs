//! The migrate function, the real binary with the template's environment: invoked directly as an
//! operator would (`events/migrate.json`), and as CloudFormation invokes the stack's `Migration`
//! custom resource (`events/migrate-create.json`), answering at a `ResponseURL` served by the
//! test. The database is set up as docs/deploy.md says: an owner role that owns the database (the
//! migration secret) and an application role with no privileges of its own (the API's secret).
//! Runs under `scripts/with-postgres scripts/with-moto`.

use std::path::PathBuf;
use std::str::FromStr as _;

use crate::helpers::{
    TestApi, TestDb, binaries_dir, create_secret, moto_endpoint, secrets_client, server_lock, server_url,
    template, use_local_secrets_manager,
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use local_lambda::{EmulatorConfig, InvokeOutcome, Template};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::mpsc;

/// The schema's tables once every migration ran, by name.
const TABLES: [&str; 18] = [
    "login_attempts",
    "login_failure_windows",
    "mail_hourly",
    "mail_quota",
    "mail_sources",
    "mail_tokens",
    "mfa_factors",
    "mfa_tokens",
    "passkeys",
    "recovery_codes",
    "refresh_tokens",
    "security_event_outbox",
    "security_events",
    "security_undo_tokens",
    "sessions",
    "users",
    "webauthn_challenges",
    "webauthn_used_challenges",
];

/// SQLSTATE `insufficient_privilege`.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

fn event(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name);
    let text = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_slice(&text).expect("a JSON event")
}

/// Invokes the migrate function with `event`.
async fn invoke(api: &TestApi, event: &Value) -> InvokeOutcome {
    api.emulator.invoke("MigrateFunction", Bytes::from(event.to_string())).await.expect("an invocation")
}

/// The answer of a successful direct invocation.
async fn migrate_directly(api: &TestApi) -> Value {
    match invoke(api, &event("migrate.json")).await {
        InvokeOutcome::Response(payload) => serde_json::from_slice(&payload).expect("a JSON answer"),
        other => panic!("the migrate function failed: {other:?}"),
    }
}

async fn applied_migrations(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&db.pool)
        .await
        .expect("the migrations table")
}

async fn tables(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "select tablename::text from pg_tables where schemaname = 'public' and tablename not like '\\_sqlx%'
         order by tablename",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// A login role with a password.
struct Role {
    name: String,
    password: String,
}

impl Role {
    async fn create(db: &TestDb, prefix: &str) -> Self {
        let name = format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let password = uuid::Uuid::new_v4().simple().to_string();
        // Both are ours (letters and hex digits), not input: safe to splice.
        let create = format!("create role {name} login password '{password}'");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&db.pool).await.expect("creating a role");
        Self { name, password }
    }

    fn options(&self, db: &TestDb) -> PgConnectOptions {
        PgConnectOptions::from_str(&db.url)
            .expect("the database URL")
            .username(&self.name)
            .password(&self.password)
    }

    fn url(&self, db: &TestDb) -> String {
        let server = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.name,
            self.password,
            server.get_host(),
            server.get_port(),
            db.name
        )
    }

    /// The secret RDS would write for this role.
    fn secret(&self, db: &TestDb) -> Value {
        let server = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
        json!({
            "engine": "postgres", "username": self.name, "password": self.password,
            "host": server.get_host(), "port": server.get_port(), "dbname": db.name,
        })
    }
}

/// A fresh, empty database owned by a schema-owner role, and an application role that may log
/// in and nothing more: docs/deploy.md's database setup.
async fn database_with_two_roles() -> (TestDb, Role, Role) {
    let db = TestDb::create_empty().await;
    let owner = Role::create(&db, "owner").await;
    let app = Role::create(&db, "app").await;
    let owned = format!("alter database {} owner to {}", db.name, owner.name);
    sqlx::raw_sql(sqlx::AssertSqlSafe(owned)).execute(&db.pool).await.expect("alter database owner");
    (db, owner, app)
}

/// Starts the emulator on `db`: the migrate function connects as `owner` and grants to `app`;
/// every other function connects as `app` (through `DATABASE_URL` and `DB_APPLICATION_ROLE`,
/// a local setup).
async fn start_with_roles(db: TestDb, owner: &Role, app: &Role) -> TestApi {
    let (owner_url, app_url) = (owner.url(&db), app.url(&db));
    TestApi::start_on(db, server_lock(false), |config: &mut EmulatorConfig| {
        let env = &mut config.env_overrides;
        env.set_for_all("DATABASE_URL", app_url);
        env.set_for("MigrateFunction", "DATABASE_URL", owner_url);
        env.set_for("MigrateFunction", "DB_APPLICATION_ROLE", &app.name);
    })
    .await
}

/// An empty database in which the first migration cannot run: a `users` table of another shape
/// is already there (as when the API is pointed at a database used by something else).
async fn database_where_the_first_migration_fails() -> TestDb {
    let db = TestDb::create_empty().await;
    sqlx::raw_sql("create table users (id integer primary key)").execute(&db.pool).await.unwrap();
    db
}

/// What a failure names: the first migration, its description, and Postgres's reason.
fn assert_names_the_first_migration(text: &str) {
    let first = shared::db::MIGRATOR.iter().next().expect("a migration");
    assert!(text.contains(&first.version.to_string()), "the version in: {text}");
    assert!(text.contains(&*first.description), "the description in: {text}");
    assert!(text.contains("already exists"), "Postgres's reason in: {text}");
}

/// What docs/deploy.md's setup leaves behind, checked as the application role: it reads and writes
/// the API's tables and changes no schema.
async fn assert_the_application_role_has_dml_only(db: &TestDb, owner: &Role, app: &Role) {
    let mut connection =
        PgConnection::connect_with(&app.options(db)).await.expect("logging in as the app role");
    let users: i64 =
        sqlx::query_scalar("select count(*) from users").fetch_one(&mut connection).await.unwrap();
    assert!(users >= 1, "the API's users are readable");
    for statement in [
        "create table intruder (id int)",
        "drop table users",
        "alter table users add column intruder int",
        "truncate refresh_tokens",
        "select * from _sqlx_migrations",
        "delete from _sqlx_migrations",
        // Security events are append-only for the API.
        "update security_events set type = 'tampered'",
        "delete from security_events",
        "truncate security_events",
        // Only the owner's trigger queues an event for EventBridge.
        "insert into security_event_outbox (event_id) select id from security_events",
        "truncate security_event_outbox",
    ] {
        let error = sqlx::raw_sql(statement).execute(&mut connection).await.expect_err(statement);
        let code = error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{statement}: {error}");
    }
    // It writes and reads them, and runs their retention through the owner's function only.
    sqlx::raw_sql(
        "insert into security_events (id, user_id, type, at) values
             (gen_random_uuid(), gen_random_uuid(), 'signup', now() - interval '401 days')",
    )
    .execute(&mut connection)
    .await
    .expect("the API inserts an event");
    // Its insert queued it for EventBridge (the trigger runs as the owner), and the drain, which
    // runs as the API's role, reads and puts off queued rows.
    let queued: i64 = sqlx::query_scalar(
        "select count(*) from security_event_outbox as o join security_events as e on e.id = o.event_id
         where e.at < now() - interval '400 days'",
    )
    .fetch_one(&mut connection)
    .await
    .expect("the API reads the outbox");
    assert_eq!(queued, 1, "the event was queued by the statement that wrote it");
    sqlx::raw_sql("update security_event_outbox set attempts = attempts + 1")
        .execute(&mut connection)
        .await
        .expect("the API puts a queued event off");
    // Only put it off: it may not point a queued row at another event, nor backdate one.
    for statement in [
        "update security_event_outbox set event_id = event_id",
        "update security_event_outbox set queued_at = now()",
    ] {
        let error = sqlx::raw_sql(statement).execute(&mut connection).await.expect_err(statement);
        let code = error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{statement}: {error}");
    }
    let purged: i64 = sqlx::query_scalar("select purge_security_events(interval '400 days', 100)")
        .fetch_one(&mut connection)
        .await
        .expect("the API runs the retention");
    assert!(purged >= 1, "the old event is purged");
    let left: i64 = sqlx::query_scalar(
        "select count(*) from security_event_outbox as o
         where not exists (select from security_events as e where e.id = o.event_id)",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(left, 0, "a purged event leaves the outbox with it");
    let before: i64 =
        sqlx::query_scalar("select count(*) from security_events").fetch_one(&mut connection).await.unwrap();
    let asked: i64 = sqlx::query_scalar("select purge_security_events(interval '0 seconds', 2147483647)")
        .fetch_one(&mut connection)
        .await
        .expect("the API runs the retention");
    assert_eq!(asked, 0, "no retention shorter than 400 days, whoever asks: {before} events stay");
    connection.close().await.ok();
    for function in ["purge_security_events(interval, integer)", "queue_security_event()"] {
        let public: bool = sqlx::query_scalar("select has_function_privilege('public', $1, 'execute')")
            .bind(function)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert!(!public, "not everyone may run the owner's {function}");
    }
    let owners: Vec<String> =
        sqlx::query_scalar("select distinct tableowner::text from pg_tables where schemaname = 'public'")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(owners, std::slice::from_ref(&owner.name), "the owner role owns every table");
}

/// The whole API, through the emulated HTTP API.
async fn assert_the_api_works(api: &TestApi) {
    let email = crate::helpers::email();
    let signup = api.post_signup(&email).await;
    assert_eq!(signup.status, 201, "signup: {}", signup.text);
    let login = api.post_login(&email).await;
    assert_eq!(login.status, 200, "login: {}", login.text);
    let me = api.get_me(&login.access_token()).await;
    assert_eq!(me.status, 200, "me: {}", me.text);
    let refreshed = api.post_refresh(&login.refresh_token()).await;
    assert_eq!(refreshed.status, 200, "refresh: {}", refreshed.text);
    let logout = api.post_logout(&refreshed.refresh_token()).await;
    assert!(logout.status < 300, "logout: {} {}", logout.status, logout.text);
    let health = api.get("/health").await;
    assert_eq!(health.status, 200, "health: {}", health.text);
    let scheduled = api
        .emulator
        .invoke("HealthFunction", Bytes::from(event("health-scheduled.json").to_string()))
        .await
        .expect("an invocation");
    let InvokeOutcome::Response(payload) = scheduled else {
        panic!("the scheduled check failed: {scheduled:?}")
    };
    let answer: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(answer["status"], "healthy", "the scheduled check and purge: {answer}");
}

/// A `ResponseURL` served by the test: it records every request and answers 200, as S3 does.
struct ResponseUrl {
    url: String,
    requests: mpsc::UnboundedReceiver<Recorded>,
}

#[derive(Debug)]
struct Recorded {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Value,
}

impl ResponseUrl {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/cloudformation-response/Migration?X-Amz-Signature=x",
            listener.local_addr().unwrap()
        );
        let (sender, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sender = sender.clone();
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let sender = sender.clone();
                        async move {
                            let method = request.method().to_string();
                            let path = request.uri().path().to_owned();
                            let content_type = request
                                .headers()
                                .get("content-type")
                                .map(|v| v.to_str().unwrap_or("?").to_owned());
                            let bytes = request.into_body().collect().await?.to_bytes();
                            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            sender.send(Recorded { method, path, content_type, body }).ok();
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self { url, requests }
    }

    /// The one answer a request got (an invocation returns after its PUT).
    fn answer(&mut self) -> Recorded {
        let answer = self.requests.try_recv().expect("the function PUT its answer before returning");
        assert!(self.requests.try_recv().is_err(), "exactly one answer");
        assert_eq!(answer.method, "PUT");
        assert_eq!(answer.path, "/cloudformation-response/Migration");
        assert_eq!(answer.content_type, None, "the presigned URL is signed for no content type");
        assert!(answer.body.is_object(), "a JSON answer: {answer:?}");
        answer
    }
}

/// `events/migrate-create.json` as `request_type`, answering at `url`.
fn cloudformation_request(request_type: &str, url: &str, physical_id: Option<&str>) -> Value {
    let mut request = event("migrate-create.json");
    request["RequestType"] = json!(request_type);
    request["ResponseURL"] = json!(url);
    request["RequestId"] = json!(uuid::Uuid::new_v4().to_string());
    if let Some(id) = physical_id {
        request["PhysicalResourceId"] = json!(id);
    }
    request
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

    let first = migrate_directly(&api).await;

    assert_eq!(first["migrations"], known, "{first}");
    assert_eq!(first["application_role"], Value::Null, "one role: nothing granted");
    assert_eq!(applied_migrations(&api.db).await, known as i64);
    assert_eq!(tables(&api.db).await, TABLES);

    let again = migrate_directly(&api).await;

    assert_eq!(again["migrations"], known, "{again}");
    assert_eq!(applied_migrations(&api.db).await, known as i64);
    let signup = api.post_signup(&crate::helpers::email()).await;
    assert_eq!(signup.status, 201, "the migrated schema serves: {}", signup.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_migrating_as_the_owner_the_api_runs_as_an_application_role_that_cannot_change_the_schema() {
    let lock = server_lock(false);
    let endpoint = moto_endpoint();
    let client = secrets_client(&endpoint, "moto", "moto").await;
    let (db, owner, app) = database_with_two_roles().await;
    let migration_arn = create_secret(&client, &owner.secret(&db)).await;
    let application_arn = create_secret(&client, &app.secret(&db)).await;
    // As the template wires it: the migrate function reads the migration secret and the
    // application secret (for its username); every other function the application secret.
    let api = TestApi::start_on(db, lock, |config| {
        use_local_secrets_manager(config, &endpoint, "moto", "moto");
        let env = &mut config.env_overrides;
        env.remove_for_all("DATABASE_URL");
        env.set_for_all("DB_SECRET_ARN", &application_arn);
        env.set_for("MigrateFunction", "DB_SECRET_ARN", &migration_arn);
        env.set_for("MigrateFunction", "DB_APPLICATION_SECRET_ARN", &application_arn);
    })
    .await;

    let first = migrate_directly(&api).await;
    let again = migrate_directly(&api).await;

    assert_eq!(first["application_role"], app.name.as_str(), "{first}");
    assert_eq!(again, first, "a second run changes nothing");
    assert_the_api_works(&api).await;
    assert_the_application_role_has_dml_only(&api.db, &owner, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudformation_requests_migrate_on_create_and_update_and_change_nothing_on_delete() {
    let (db, owner, app) = database_with_two_roles().await;
    let api = start_with_roles(db, &owner, &app).await;
    let mut response_url = ResponseUrl::start().await;
    let known = shared::db::MIGRATOR.iter().count();

    let create = cloudformation_request("Create", &response_url.url, None);
    let outcome = invoke(&api, &create).await;
    let created = response_url.answer().body;

    assert!(matches!(outcome, InvokeOutcome::Response(_)), "{outcome:?}");
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    for id in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(created[id], create[id], "{id} is echoed: {created}");
    }
    let physical_id = created["PhysicalResourceId"].as_str().expect("a physical id").to_owned();
    assert_eq!(created["Data"]["migrations"], known, "{created}");
    assert_eq!(applied_migrations(&api.db).await, known as i64);
    assert_the_api_works(&api).await;

    let update = cloudformation_request("Update", &response_url.url, Some(&physical_id));
    invoke(&api, &update).await;
    let updated = response_url.answer().body;

    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(updated["RequestId"], update["RequestId"]);
    assert_eq!(updated["PhysicalResourceId"], physical_id.as_str(), "the same resource: no replacement");

    let delete = cloudformation_request("Delete", &response_url.url, Some(&physical_id));
    invoke(&api, &delete).await;
    let deleted = response_url.answer().body;

    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(tables(&api.db).await, TABLES, "nothing dropped");
    assert_the_application_role_has_dml_only(&api.db, &owner, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_answers_failed_to_cloudformation_naming_the_migration() {
    let api =
        TestApi::start_on(database_where_the_first_migration_fails().await, server_lock(false), |_| {}).await;
    let mut response_url = ResponseUrl::start().await;

    let create = cloudformation_request("Create", &response_url.url, None);
    let outcome = invoke(&api, &create).await;
    let answer = response_url.answer().body;

    assert!(matches!(outcome, InvokeOutcome::Response(_)), "the answer was delivered: {outcome:?}");
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert_names_the_first_migration(answer["Reason"].as_str().expect("a reason"));
    assert!(answer["PhysicalResourceId"].is_string(), "CloudFormation needs an id even then: {answer}");
    assert_eq!(answer["RequestId"], create["RequestId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoked_directly_a_failing_migration_is_a_failed_invocation() {
    let api =
        TestApi::start_on(database_where_the_first_migration_fails().await, server_lock(false), |_| {}).await;

    let outcome = invoke(&api, &event("migrate.json")).await;

    let InvokeOutcome::FunctionError { body, .. } = outcome else {
        panic!("a function error, not an answer: {outcome:?}")
    };
    let error: Value = serde_json::from_slice(&body).expect("the runtime's error document");
    assert_eq!(error["errorType"], "MigrationFailed", "{error}");
    assert_names_the_first_migration(error["errorMessage"].as_str().expect("an error message"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_application_role_fails_the_run_naming_the_role() {
    let (db, owner, _) = database_with_two_roles().await;
    let missing = Role { name: "nobody_by_that_name".to_owned(), password: String::new() };
    let api = start_with_roles(db, &owner, &missing).await;

    let outcome = invoke(&api, &event("migrate.json")).await;

    let InvokeOutcome::FunctionError { body, .. } = outcome else { panic!("a function error: {outcome:?}") };
    let message = String::from_utf8_lossy(&body);
    assert!(message.contains("nobody_by_that_name") && message.contains("does not exist"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_response_url_fails_the_invocation_so_lambda_retries_it() {
    let api = TestApi::start_on(TestDb::create_empty().await, server_lock(false), |_| {}).await;
    // A port nothing listens on: bound, then closed.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();

    let outcome =
        invoke(&api, &cloudformation_request("Create", &format!("http://{closed}/answer"), None)).await;

    let InvokeOutcome::FunctionError { body, .. } = outcome else { panic!("a function error: {outcome:?}") };
    assert!(String::from_utf8_lossy(&body).contains("ResponseURL"), "{}", String::from_utf8_lossy(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_name_that_needs_quoting_is_granted_exactly_that_role() {
    let (db, owner, _) = database_with_two_roles().await;
    // Capitals, a space and a double quote: unquoted, this would be another role, or SQL.
    let name = format!("App \"{}\" Role", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let quoted = shared::ops::migration::quote_identifier(&name);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create role {quoted} login")))
        .execute(&db.pool)
        .await
        .unwrap();
    let app = Role { name: name.clone(), password: String::new() };
    let api = start_with_roles(db, &owner, &app).await;

    let answer = migrate_directly(&api).await;

    assert_eq!(answer["application_role"], name.as_str(), "{answer}");
    let may_write: bool = sqlx::query_scalar("select has_table_privilege($1, 'users', 'insert')")
        .bind(&name)
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert!(may_write, "{name} was granted DML on users");
}
