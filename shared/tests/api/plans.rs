//! The plan guard: every statement the code sends (the compile-checked queries recorded in
//! `.sqlx/`) is planned against tables at volume, and none may scan `users`, `sessions`,
//! `refresh_tokens`, `login_attempts`, the mail tables or the second factor's sequentially. A new query without its index fails here,
//! not in production, where one slow statement that any client can trigger (a refresh with a
//! random token) keeps the database busy.
//!
//! Each statement is planned as Postgres plans it for the values a client sends
//! (`plan_cache_mode = force_custom_plan`, realistic values by parameter type: an existing
//! session's id, an email, a random token's hash as an attacker would send, a batch of 1,000,
//! a 7-day retention), on tables in their steady state: a week of sessions and rotations, the
//! scheduled purge caught up (0.1 % of rows past their retention). A statement that may scan only
//! while a backlog makes scanning cheaper is allowed that; one that scans when there is nothing
//! to find is not.
use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgPool, Row as _};

/// The tables the guard watches.
/// (`mail_hourly` is not: one row per clock hour, purged down to two, where a scan is the plan.)
const TABLES: [&str; 14] = [
    "users",
    "sessions",
    "refresh_tokens",
    "login_attempts",
    "mail_tokens",
    "mail_quota",
    "mfa_factors",
    "recovery_codes",
    "mfa_tokens",
    "security_undo_tokens",
    "passkeys",
    "webauthn_challenges",
    "webauthn_used_challenges",
    "security_events",
];

/// Users (one session each, three refresh tokens per session in a rotation chain).
const USERS: i64 = 100_000;

/// A statement the code sends, as sqlx recorded it.
struct Statement {
    file: String,
    sql: String,
    /// The parameters' types, as sqlx names them (`Uuid`, `Text`, ...).
    parameters: Vec<String>,
}

/// Every statement in `.sqlx/` (one file per compile-checked query).
fn statements() -> Vec<Statement> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.sqlx");
    let mut statements: Vec<Statement> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .map(|path| {
            let recorded: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("a query file")).expect("query JSON");
            Statement {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                sql: recorded["query"].as_str().expect("the query's text").to_owned(),
                parameters: recorded["describe"]["parameters"]["Left"]
                    .as_array()
                    .expect("its parameters")
                    .iter()
                    .map(|kind| kind.as_str().expect("a type name").to_owned())
                    .collect(),
            }
        })
        .collect();
    statements.sort_by(|a, b| a.file.cmp(&b.file));
    assert!(statements.len() >= 10, "the store's statements are in .sqlx/ ({} found)", statements.len());
    statements
}

/// Production's steady state (`fixtures/volume.sql`, which `make bench` seeds at 10^6 users).
async fn seed(pool: &PgPool) {
    let mut tx = pool.begin().await.expect("a transaction");
    sqlx::query("select set_config('seed.users', $1, true)")
        .bind(USERS.to_string())
        .execute(&mut *tx)
        .await
        .expect("the seed's size");
    sqlx::raw_sql(include_str!("../fixtures/volume.sql")).execute(&mut *tx).await.expect("seeding");
    tx.commit().await.expect("committing the seed");
    pool.execute("analyze").await.expect("analyze");
}

/// The statements whose generic plan scans a watched table sequentially, with the plan's lines.
async fn sequential_scans(pool: &PgPool) -> Vec<String> {
    let mut connection = pool.acquire().await.expect("a connection").detach();
    connection.execute("set plan_cache_mode = force_custom_plan").await.expect("custom plans");
    let session: (sqlx::types::Uuid,) =
        sqlx::query_as("select id from sessions order by id offset 4242 limit 1")
            .fetch_one(&mut connection)
            .await
            .expect("a session");
    let mut offenders = Vec::new();
    for (index, statement) in statements().iter().enumerate() {
        let name = format!("guarded_{index}");
        // The statements are the code's own, recorded by sqlx at build time.
        sqlx::raw_sql(AssertSqlSafe(format!("prepare {name} as {}", statement.sql)))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("preparing {}: {error}", statement.file));
        let arguments: Vec<String> = statement
            .parameters
            .iter()
            .enumerate()
            .map(|(index, kind)| {
                // A text parameter the statement reads as an address (a session's source IP).
                if statement.sql.contains(&format!("${}::text::inet", index + 1)) {
                    "'192.0.2.1'".to_owned()
                } else if statement.sql.contains(&format!("${}::text::jsonb", index + 1)) {
                    // A text parameter the statement reads as JSON (a passkey, a ceremony's state).
                    "'{}'".to_owned()
                } else {
                    value_of(kind, &session.0.to_string())
                }
            })
            .collect();
        let execute =
            if arguments.is_empty() { name.clone() } else { format!("{name}({})", arguments.join(", ")) };
        let row = sqlx::raw_sql(AssertSqlSafe(format!("explain (format json) execute {execute}")))
            .fetch_one(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("explaining {}: {error}", statement.file));
        let plan: Value = serde_json::from_str(&row.try_get_unchecked::<String, _>(0).expect("the plan"))
            .expect("a JSON plan");
        let mut scanned = BTreeSet::new();
        collect_sequential_scans(&plan, &mut scanned);
        if !scanned.is_empty() {
            offenders.push(format!(
                "{} scans {} sequentially:\n{}\nplan: {}",
                statement.file,
                scanned.into_iter().collect::<Vec<_>>().join(", "),
                statement.sql,
                serde_json::to_string_pretty(&plan).unwrap()
            ));
        }
    }
    connection.close().await.expect("closing");
    offenders
}

/// A realistic value of a parameter of type `kind`, as an SQL literal.
fn value_of(kind: &str, session_id: &str) -> String {
    match kind {
        "Uuid" => format!("'{session_id}'"),
        "UuidArray" => format!("array['{session_id}']::uuid[]"),
        "Text" => "'user-4242@example.com'".to_owned(),
        // A token nobody was ever given: what a client guessing tokens sends.
        "Bytea" => format!("'\\x{}'", "5a".repeat(32)),
        "ByteaArray" => format!("array['\\x{}']::bytea[]", "5a".repeat(32)),
        "TextArray" => "array['pwd', 'otp']::text[]".to_owned(),
        "Bool" => "true".to_owned(),
        "Int8" | "Int4" => "1000".to_owned(),
        "Float8" => "604800".to_owned(),
        "Timestamptz" => "now() + interval '4 minutes'".to_owned(),
        other => panic!("the plan guard has no value for a parameter of type {other}: add one"),
    }
}

fn collect_sequential_scans(node: &Value, scanned: &mut BTreeSet<String>) {
    match node {
        Value::Object(fields) => {
            let relation = fields.get("Relation Name").and_then(Value::as_str);
            if fields.get("Node Type").and_then(Value::as_str) == Some("Seq Scan")
                && let Some(table) = relation.filter(|table| TABLES.contains(table))
            {
                scanned.insert(table.to_owned());
            }
            fields.values().for_each(|value| collect_sequential_scans(value, scanned));
        }
        Value::Array(items) => items.iter().for_each(|item| collect_sequential_scans(item, scanned)),
        _ => {}
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn no_statement_scans_a_table_at_volume(pool: PgPool) {
    seed(&pool).await;

    let offenders = sequential_scans(&pool).await;

    assert!(offenders.is_empty(), "{}", offenders.join("\n\n"));
}

/// The guard itself: with the index behind the reuse check gone, it names the statement.
#[sqlx::test(migrations = "../migrations")]
async fn dropping_an_index_fails_the_guard(pool: PgPool) {
    seed(&pool).await;
    pool.execute("drop index refresh_tokens_parent_hash_key").await.expect("dropping the index");

    let offenders = sequential_scans(&pool).await;

    let named: Vec<&str> = offenders.iter().filter_map(|offender| offender.lines().next()).collect();
    assert_eq!(offenders.len(), 1, "only the refresh statement loses its index: {named:?}");
    assert!(
        offenders[0].contains("scans refresh_tokens") && offenders[0].contains("c.parent_hash = $1"),
        "{}",
        offenders[0]
    );
}
