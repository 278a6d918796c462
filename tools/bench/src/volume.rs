//! Sections 10 and 11 of BENCHMARKS.md: every function's sample and the request paths that
//! refuse (an unknown email, a replayed token, ...) on a database at production's volume beside
//! the same on an empty one, and the scheduled purge working off a backlog of a million expired
//! rows while refreshes go on.
//!
//! Two databases on the bench's server, each migrated and served by an emulator of its own:
//! `auth_bench_empty` and `auth_bench_volume`, the latter seeded with
//! `shared/tests/fixtures/volume.sql` (the plan guard's fixture) at `--volume-users` users.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use local_lambda::InvokeOutcome;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use crate::driver::{Driver, Serve, Setup, Source, emulator};
use crate::functions::Function;
use crate::plan::{Args, VolumePlan, progress};
use crate::stats::{Samples, ms};
use test_support::PASSWORD;

const TABLES: &str = "'users', 'sessions', 'refresh_tokens', 'login_attempts'";
const LOGOUT_EMAIL: &str = "volume-logout@example.com";
const THROTTLED_EMAIL: &str = "volume-throttled@example.com";

/// The address the refresh chains and the scenario paths' logins use.
const BENCH_EMAIL: &str = "volume-bench@example.com";

/// One database of the comparison: an admin connection and the emulator serving it.
struct Database {
    admin: PgConnection,
    driver: Arc<Driver>,
}

async fn database(name: &str) -> anyhow::Result<(PgConnection, String)> {
    let server_url = std::env::var("DATABASE_URL").context("DATABASE_URL")?;
    let server = PgConnectOptions::from_str(&server_url)?;
    let mut root = PgConnection::connect(&server_url).await?;
    for statement in
        [format!("drop database if exists {name} with (force)"), format!("create database {name}")]
    {
        sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut root).await?;
    }
    root.close().await.ok();
    let url =
        format!("postgres://{}@{}:{}/{name}", server.get_username(), server.get_host(), server.get_port());
    let mut admin = PgConnection::connect(&url).await?;
    shared::db::MIGRATOR.run(&mut admin).await.context("migrations")?;
    Ok((admin, url))
}

/// Seeds the fixture at `users` with the secondary indexes dropped and built again after, as a
/// bulk load is done; returns the seconds it took.
async fn seed(admin: &mut PgConnection, users: i64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let indexes: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "select indexname::text, indexdef from pg_indexes
         where schemaname = 'public' and tablename in ({TABLES})
           and indexname not in (select conname from pg_constraint)"
    )))
    .fetch_all(&mut *admin)
    .await?;
    sqlx::raw_sql("set synchronous_commit = off; set maintenance_work_mem = '1GB'")
        .execute(&mut *admin)
        .await?;
    for (name, _) in &indexes {
        sqlx::raw_sql(AssertSqlSafe(format!("drop index {name}"))).execute(&mut *admin).await?;
    }
    sqlx::query("select set_config('seed.users', $1, false)")
        .bind(users.to_string())
        .execute(&mut *admin)
        .await?;
    sqlx::raw_sql(include_str!("../../../shared/tests/fixtures/volume.sql")).execute(&mut *admin).await?;
    for (_, definition) in &indexes {
        sqlx::raw_sql(AssertSqlSafe(definition.clone())).execute(&mut *admin).await?;
    }
    sqlx::raw_sql("vacuum analyze").execute(&mut *admin).await?;
    let seconds = started.elapsed().as_secs_f64();
    // The load's dirty pages written out now, not while the paths are measured.
    sqlx::raw_sql("checkpoint").execute(&mut *admin).await?;
    Ok(seconds)
}

/// The rows every run needs, in both databases alike: the bench user and one to log out
/// (signed up through the API), users to fail a login against, and an email throttled for the
/// next 15 minutes.
async fn prepare(
    setup: &Setup,
    args: &Args,
    mut admin: PgConnection,
    url: String,
    plan: VolumePlan,
) -> anyhow::Result<Database> {
    let template = args.template();
    let serve = Serve {
        template: &template,
        binaries: &args.binaries,
        source: Source::Database(url.clone()),
        sandboxes: 1,
        memory_mb: None,
    };
    let driver = Arc::new(Driver::new(emulator(setup, serve, |_| {}).await?, setup.fixture_for(&url).await?));
    for email in [BENCH_EMAIL, LOGOUT_EMAIL] {
        let (status, _, _) =
            driver.post("/auth/signup", json!({"email": email, "password": PASSWORD})).await?;
        ensure!(status == 201, "signing up {email}: {status}");
    }
    sqlx::query(
        "insert into users (id, email, password_hash, created_at)
         select gen_random_uuid(), 'volume-wrong-' || n || '@example.com', u.password_hash, now()
         from users as u, generate_series(1, $2) as n where u.email = $1",
    )
    .bind(BENCH_EMAIL)
    .bind(plan.samples as i64 + 10)
    .execute(&mut admin)
    .await?;
    // Throttled for the bench's own address (the backoff is kept per email and source address).
    sqlx::query(
        "insert into login_attempts (email, source, failed_count, last_failed_at) values ($1, '127.0.0.1', 100, now())",
    )
    .bind(THROTTLED_EMAIL)
        .execute(&mut admin)
        .await?;
    Ok(Database { admin, driver })
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
}

fn refresh_token_of(body: &Value) -> anyhow::Result<String> {
    Ok(body["refresh_token"].as_str().context("a refresh token")?.to_owned())
}

/// The paths of section 10 besides every function's sample: the ways a request is refused,
/// which a sample (a request that succeeds) does not take.
const REFUSALS: [&str; 10] = [
    "login, unknown email",
    "login, wrong password",
    "login, throttled",
    "refresh, random unknown token",
    "refresh, replayed parent within the grace window",
    "refresh, replayed parent after the grace window",
    "logout, global",
    "logout, others",
    "me, revoked session",
    "scheduled run (health check and purge)",
];

/// A path of section 10: a request and what it takes.
#[derive(Clone, Copy)]
enum Route<'a> {
    /// A function's sample, filled with a fresh account (untimed).
    Sample(&'a Function),
    /// One of [`REFUSALS`].
    Refusal(usize),
}

impl Route<'_> {
    fn name(&self) -> String {
        match self {
            Route::Sample(function) => format!("{}: its sample", function.binary),
            Route::Refusal(index) => REFUSALS[*index].to_owned(),
        }
    }
}

/// One timed request of `path`, with whatever untimed requests set it up.
async fn one(
    db: &mut Database,
    path: Route<'_>,
    scheduled: &Function,
    round: usize,
    chain: &mut String,
) -> anyhow::Result<Duration> {
    let driver = db.driver.clone();
    let refusal = match path {
        Route::Sample(function) => {
            let call = driver.prepare(function).await?;
            return driver.send(function, call).await;
        }
        Route::Refusal(index) => index,
    };
    let login = |email: &'static str| {
        let driver = driver.clone();
        async move {
            let (status, body, _) =
                driver.post("/auth/login", json!({"email": email, "password": PASSWORD})).await?;
            ensure!(status == 200, "login of {email}: {status} {body}");
            anyhow::Ok(body)
        }
    };
    let (expected, (status, body, elapsed)) = match refusal {
        0 => {
            let email = format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple());
            (401, driver.post("/auth/login", json!({"email": email, "password": PASSWORD})).await?)
        }
        1 => {
            let email = format!("volume-wrong-{round}@example.com");
            (
                401,
                driver
                    .post("/auth/login", json!({"email": email, "password": "not the passphrase at all"}))
                    .await?,
            )
        }
        2 => {
            (429, driver.post("/auth/login", json!({"email": THROTTLED_EMAIL, "password": PASSWORD})).await?)
        }
        3 => (401, driver.post("/auth/refresh", json!({"refresh_token": random_token()})).await?),
        4 => {
            let parent = chain.clone();
            let (status, body, _) = driver.post("/auth/refresh", json!({"refresh_token": parent})).await?;
            ensure!(status == 200, "refresh: {status} {body}");
            *chain = refresh_token_of(&body)?;
            (200, driver.post("/auth/refresh", json!({"refresh_token": parent})).await?)
        }
        5 => {
            let parent = refresh_token_of(&login(LOGOUT_EMAIL).await?)?;
            let (status, body, _) = driver.post("/auth/refresh", json!({"refresh_token": parent})).await?;
            ensure!(status == 200, "refresh: {status} {body}");
            sqlx::query(
                "update refresh_tokens set revoked_at = revoked_at - interval '1 hour'
                 where token_hash = sha256(convert_to($1, 'UTF8'))",
            )
            .bind(&parent)
            .execute(&mut db.admin)
            .await?;
            (401, driver.post("/auth/refresh", json!({"refresh_token": parent})).await?)
        }
        6 | 7 => {
            let token = refresh_token_of(&login(LOGOUT_EMAIL).await?)?;
            let scope = if refusal == 6 { "global" } else { "others" };
            (204, driver.post("/auth/logout", json!({"refresh_token": token, "scope": scope})).await?)
        }
        8 => {
            let body = login(LOGOUT_EMAIL).await?;
            let access = body["access_token"].as_str().context("an access token")?.to_owned();
            let (status, _, _) =
                driver.post("/auth/logout", json!({"refresh_token": refresh_token_of(&body)?})).await?;
            ensure!(status == 204, "logout: {status}");
            let authorization = format!("Bearer {access}");
            (
                401,
                driver
                    .request(Method::GET, "/auth/me", &[("authorization", &authorization)], String::new())
                    .await?,
            )
        }
        _ => {
            let elapsed = scheduled_run(&driver, scheduled).await?;
            (200, (200, Value::Null, elapsed))
        }
    };
    ensure!(status == expected, "{}: {status}, not {expected}: {body}", path.name());
    Ok(elapsed)
}

/// One scheduled invocation of `function` (the EventBridge event: the health check and the
/// purge), timed.
async fn scheduled_run(driver: &Driver, function: &Function) -> anyhow::Result<Duration> {
    let event = include_bytes!("../../../events/health-scheduled.json");
    let started = Instant::now();
    let outcome = driver.emulator.invoke(&function.logical_id, Bytes::from_static(event)).await?;
    let elapsed = started.elapsed();
    match outcome {
        InvokeOutcome::Response(body) => {
            let body: Value = serde_json::from_slice(&body)?;
            ensure!(body["status"] == "healthy", "the scheduled check answered {body}");
            Ok(elapsed)
        }
        InvokeOutcome::Timeout => anyhow::bail!("the scheduled run timed out"),
        other => anyhow::bail!("the scheduled run failed: {other:?}"),
    }
}

/// Every path, `samples` times each after two untimed rounds, on both databases in turn (one
/// request on one, then one on the other), so that both see the same machine.
async fn measure(
    mut dbs: [&mut Database; 2],
    paths: &[Route<'_>],
    scheduled: &Function,
    samples: usize,
) -> anyhow::Result<[Vec<Samples>; 2]> {
    let mut chains = Vec::new();
    for db in &dbs {
        let (status, body, _) =
            db.driver.post("/auth/login", json!({"email": BENCH_EMAIL, "password": PASSWORD})).await?;
        ensure!(status == 200, "login: {status}");
        chains.push(refresh_token_of(&body)?);
    }
    let mut results = [Vec::new(), Vec::new()];
    for &path in paths {
        let mut times = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
        for round in 0..samples + 2 {
            for (index, db) in dbs.iter_mut().enumerate() {
                let elapsed = one(db, path, scheduled, round, &mut chains[index]).await?;
                if round >= 2 {
                    times[index].push(elapsed);
                }
            }
        }
        let [empty, volume] = times;
        results[0].push(Samples::new(empty));
        results[1].push(Samples::new(volume));
    }
    Ok(results)
}

/// Refreshes in a loop on `clients` chains until `stop`; their latencies.
async fn refreshing(
    driver: Arc<Driver>,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (driver, stop) = (driver.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (status, body, _) =
                driver.post("/auth/login", json!({"email": BENCH_EMAIL, "password": PASSWORD})).await?;
            ensure!(status == 200, "login: {status}");
            let mut chain = refresh_token_of(&body)?;
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, body, elapsed) =
                    driver.post("/auth/refresh", json!({"refresh_token": chain})).await?;
                ensure!(status == 200, "refresh during the purge: {status} {body}");
                chain = refresh_token_of(&body)?;
                latencies.push(elapsed);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(latencies)
}

async fn refreshes_for(driver: &Arc<Driver>, period: Duration) -> anyhow::Result<Samples> {
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(refreshing(driver.clone(), 2, stop.clone()));
    tokio::time::sleep(period).await;
    stop.store(true, Ordering::Relaxed);
    Ok(Samples::new(task.await??))
}

async fn backlog_left(admin: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from refresh_tokens where revoked_at < now() - interval '7 days'")
        .fetch_one(admin)
        .await?)
}

/// The scheduled run's three purge statements, as `.sqlx/` recorded them, with the parameters
/// the health function binds (`maintenance::PURGE_*`, the default session lifetime).
fn purge_statements() -> anyhow::Result<Vec<(&'static str, String)>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.sqlx");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let text = std::fs::read_to_string(entry?.path())?;
        let Ok(record) = serde_json::from_str::<Value>(&text) else { continue };
        let Some(sql) = record["query"].as_str() else { continue };
        for (table, marker) in [
            ("sessions", "delete from sessions as s"),
            ("refresh_tokens", "delete from refresh_tokens as t"),
            ("login_attempts", "delete from login_attempts as a"),
        ] {
            if sql.contains(marker) {
                found.push((table, sql.to_owned()));
            }
        }
    }
    found.sort();
    ensure!(found.len() == 3, "three purge statements in .sqlx/, found {}", found.len());
    Ok(found)
}

/// One purge statement's `EXPLAIN (ANALYZE, BUFFERS)` in a transaction rolled back after:
/// execution time, buffers touched, and each scan as "node on index (rows)".
async fn explain_purge(
    admin: &mut PgConnection,
    table: &str,
    sql: &str,
) -> anyhow::Result<(f64, i64, String)> {
    let retention = shared::ops::maintenance::PURGE_RETENTION.as_secs_f64();
    let batch = shared::ops::maintenance::PURGE_BATCH;
    let explain = AssertSqlSafe(format!("explain (analyze, buffers, format json) {sql}"));
    let mut transaction = admin.begin().await?;
    let query = sqlx::query_scalar::<_, Value>(explain);
    let query = match table {
        "sessions" => {
            query.bind(retention).bind(shared::config::DEFAULT_SESSION_MAX_LIFETIME.as_secs_f64()).bind(batch)
        }
        "refresh_tokens" => query.bind(retention).bind(batch),
        _ => query.bind(batch),
    };
    let plan = query.fetch_one(&mut *transaction).await?;
    transaction.rollback().await?;
    let top = &plan[0];
    let root = &top["Plan"];
    let buffers =
        ["Shared Hit Blocks", "Shared Read Blocks"].iter().filter_map(|key| root[*key].as_i64()).sum();
    let mut scans = Vec::new();
    collect_scans(root, &mut scans);
    Ok((top["Execution Time"].as_f64().unwrap_or(f64::NAN), buffers, scans.join(", ")))
}

fn collect_scans(node: &Value, scans: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    if kind.ends_with("Scan") && kind != "CTE Scan" && kind != "Subquery Scan" {
        let on = node["Index Name"].as_str().or(node["Relation Name"].as_str()).unwrap_or("?");
        let rows = node["Actual Rows"].as_i64().unwrap_or_default();
        let heap = node["Exact Heap Blocks"]
            .as_i64()
            .map(|blocks| format!(", {blocks} heap blocks"))
            .unwrap_or_default();
        scans.push(format!("{kind} on `{on}` ({rows} rows{heap})"));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        collect_scans(child, scans);
    }
}

/// Sections 10 and 11.
pub async fn sections(setup: &Setup, args: &Args, functions: &[Function]) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let plan = args.volume;
    let scheduled = functions.iter().find(|f| f.scheduled).context("a function on a schedule")?;
    let paths: Vec<Route<'_>> =
        functions.iter().map(Route::Sample).chain((0..REFUSALS.len()).map(Route::Refusal)).collect();
    progress("volume: an empty database and one seeded at volume");
    let (admin, empty_url) = database("auth_bench_empty").await?;
    let mut empty = prepare(setup, args, admin, empty_url, plan).await?;
    let (mut admin, volume_url) = database("auth_bench_volume").await?;
    progress(format!("volume: seeding {} users", plan.users));
    let seconds = seed(&mut admin, plan.users).await?;
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from users), (select count(*) from sessions),
                (select count(*) from refresh_tokens), (select count(*) from login_attempts)",
    )
    .fetch_one(&mut admin)
    .await?;
    let mut volume = prepare(setup, args, admin, volume_url, plan).await?;

    progress(format!(
        "volume: {} paths, {} requests each, the two databases in turns",
        paths.len(),
        plan.samples
    ));
    let [at_empty, at_volume] = measure([&mut empty, &mut volume], &paths, scheduled, plan.samples).await?;

    let mut text = String::new();
    writeln!(text, "## 10. At volume\n")?;
    writeln!(
        text,
        "Every function's sample, and each way a request is refused, {} times (after two untimed rounds) \
         through one warm sandbox per function, on an empty \
         database and on one seeded with `shared/tests/fixtures/volume.sql` (the plan guard's fixture): \
         {} users, {} sessions, {} refresh tokens in rotation chains, {} login-attempt rows. Seeding took \
         {seconds:.0} s (goal: well under 300 s), secondary indexes built after the rows. Times are the \
         client's (through the emulator), the two databases taking turns request by request; a path's \
         untimed setup (a sample's fresh account, a login before a logout) is not counted. Goal: every \
         ratio ≤ 1.5.\n",
        plan.samples, counts.0, counts.1, counts.2, counts.3
    )?;
    writeln!(text, "| path | p50 empty (ms) | p99 empty | p50 at volume | p99 at volume | ratio (p50) |")?;
    writeln!(text, "|---|---|---|---|---|---|")?;
    for (index, path) in paths.iter().enumerate() {
        let (e, v) = (&at_empty[index], &at_volume[index]);
        let ratio = v.median() / e.median();
        writeln!(
            text,
            "| {} | {} | {} | {} | {} | {}{ratio:.2}{} |",
            path.name(),
            ms(e.median()),
            ms(e.percentile(0.99)),
            ms(v.median()),
            ms(v.percentile(0.99)),
            if ratio > 1.5 { "**" } else { "" },
            if ratio > 1.5 { "**" } else { "" },
        )?;
    }
    writeln!(
        text,
        "\nThe scheduled run's purge statements after the series, `EXPLAIN (ANALYZE, BUFFERS)` in a \
         transaction rolled back (the database as the last timed run left it). Heap blocks visited \
         for no row are rows an earlier run deleted, which every later scan walks again until a \
         vacuum removes them: a plain index scan marks them dead in the index as it passes, a \
         bitmap scan does not.\n"
    )?;
    writeln!(text, "| statement | empty: ms, buffers | at volume: ms, buffers | scans at volume |")?;
    writeln!(text, "|---|---|---|---|")?;
    for (table, sql) in purge_statements()? {
        let (empty_ms, empty_buffers, _) = explain_purge(&mut empty.admin, table, &sql).await?;
        let (volume_ms, volume_buffers, scans) = explain_purge(&mut volume.admin, table, &sql).await?;
        writeln!(
            text,
            "| purge {table} | {empty_ms:.2}, {empty_buffers} | {volume_ms:.2}, {volume_buffers} | {scans} |"
        )?;
    }
    drop(empty);

    // 11. The purge against a backlog.
    progress(format!("purge: {} expired tokens waiting, {} scheduled runs", plan.backlog, plan.purge_runs));
    let started = Instant::now();
    sqlx::query(
        "insert into refresh_tokens (token_hash, session_id, created_at, expires_at, revoked_at)
         select sha256((s.id::text || '-expired-' || k)::bytea), s.id, now() - interval '9 days',
                now() + interval '21 days', now() - interval '8 days' - random() * interval '1 hour'
         from sessions as s, generate_series(1, 2) as k
         where s.revoked_at is null
         limit $1",
    )
    .bind(plan.backlog)
    .execute(&mut volume.admin)
    .await?;
    sqlx::raw_sql("analyze refresh_tokens").execute(&mut volume.admin).await?;
    let backlog_seconds = started.elapsed().as_secs_f64();
    let backlog = backlog_left(&mut volume.admin).await?;

    let period = Duration::from_secs(if plan.purge_runs > 3 { 20 } else { 3 });
    let before = refreshes_for(&volume.driver, period).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let during_task = tokio::spawn(refreshing(volume.driver.clone(), 2, stop.clone()));
    let mut runs = Vec::new();
    let mut left = backlog;
    for _ in 0..plan.purge_runs {
        let elapsed = scheduled_run(&volume.driver, scheduled).await?;
        let now_left = backlog_left(&mut volume.admin).await?;
        runs.push((elapsed, left - now_left, now_left));
        left = now_left;
    }
    stop.store(true, Ordering::Relaxed);
    let during = Samples::new(during_task.await??);

    writeln!(text, "\n## 11. The scheduled purge against a backlog\n")?;
    writeln!(
        text,
        "The database of section 10 with {backlog} refresh tokens revoked eight days ago added ({backlog_seconds:.0} s), \
         all past the 7-day retention. Then {} scheduled runs of the health function (the EventBridge event \
         through the emulator, the template's 10 s timeout), back to back, while two clients refresh \
         without pause. A run deletes at most {} rounds of {} rows per table and starts no round with less \
         than {} s left.\n",
        plan.purge_runs,
        shared::ops::maintenance::PURGE_MAX_BATCHES,
        shared::ops::maintenance::PURGE_BATCH,
        shared::ops::maintenance::PURGE_MARGIN.as_secs()
    )?;
    writeln!(text, "| run | duration (ms) | expired tokens deleted | left |")?;
    writeln!(text, "|---|---|---|---|")?;
    for (index, (elapsed, deleted, left)) in runs.iter().enumerate() {
        writeln!(text, "| {} | {} | {deleted} | {left} |", index + 1, ms(elapsed.as_secs_f64() * 1000.0))?;
    }
    let durations = Samples::new(runs.iter().map(|run| run.0));
    let per_run = runs.iter().map(|run| run.1).max().unwrap_or(0) as f64;
    writeln!(
        text,
        "\nRuns took p50 {} ms, max {} ms, against the 10 s timeout. At {per_run:.0} rows a run and one run \
         every 5 minutes (the template's schedule), this backlog drains in {:.1} h; in the steady state \
         (section 10's last row) a run has a few rows to delete.\n",
        ms(durations.median()),
        ms(durations.max()),
        backlog as f64 / per_run.max(1.0) * 5.0 / 60.0
    )?;
    writeln!(text, "| refresh, 2 clients | requests | p50 (ms) | p99 | max |")?;
    writeln!(text, "|---|---|---|---|---|")?;
    for (label, samples) in [("before the purge", &before), ("while the purge runs", &during)] {
        writeln!(
            text,
            "| {label} | {} | {} | {} | {} |",
            samples.len(),
            ms(samples.median()),
            ms(samples.percentile(0.99)),
            ms(samples.max())
        )?;
    }
    Ok(text)
}
