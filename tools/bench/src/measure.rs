//! The measurements every section is built from: cold starts, a warm series (with its round trips
//! and statements), a soak, concurrent load, and argon2 alone. Each takes a [`Function`] and calls
//! it with filled samples, prepared before the clock starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use sqlx::PgConnection;
use tokio::sync::Mutex;

use crate::driver::{Call, DATABASE, Driver, Setup};
use crate::functions::Function;
use crate::stats::Samples;

/// Cold starts of one function: (init durations, first invocations, spawn-to-answer as the
/// client saw it).
pub struct ColdStarts {
    pub init: Samples,
    pub first: Samples,
    pub client: Samples,
}

pub async fn cold_starts(driver: &Driver, function: &Function, count: usize) -> anyhow::Result<ColdStarts> {
    let (mut init, mut first, mut client) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..count {
        driver.emulator.shutdown_sandboxes(&function.logical_id).await?;
        let call = driver.prepare(function).await?;
        let skip = driver.emulator.invocations_since(0).len();
        let elapsed = driver.send(function, call).await?;
        let report = driver.reports(function, skip, 1).await?.remove(0);
        init.push(report.init_duration.context("the first invocation of a new sandbox is a cold start")?);
        first.push(report.duration);
        client.push(elapsed);
    }
    driver.emulator.shutdown_sandboxes(&function.logical_id).await?;
    Ok(ColdStarts { init: Samples::new(init), first: Samples::new(first), client: Samples::new(client) })
}

/// How many calls a series makes: some to warm the sandbox, then the measured ones.
#[derive(Clone, Copy)]
pub struct Series {
    pub warm_up: usize,
    pub measured: usize,
}

/// A warm series through one sandbox.
pub struct Warm {
    pub client: Samples,
    pub function: Samples,
    pub round_trips: f64,
    pub connections: u64,
    pub statements: f64,
    /// The sandbox's invocations and peak RSS (MB) at the end of the series.
    pub rss_after: (u64, Option<u64>),
}

/// Statements `pg_stat_statements` has counted in the bench database so far.
pub async fn statements_so_far(admin: &mut PgConnection) -> anyhow::Result<i64> {
    let calls: i64 = sqlx::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_statements s join pg_database d on d.oid = s.dbid
         where d.datname = $1 and s.query not like '%pg_stat_statements%'",
    )
    .bind(DATABASE)
    .fetch_one(admin)
    .await?;
    Ok(calls)
}

/// `series.measured` sequential calls after `series.warm_up`, each with its own filled sample.
/// The samples are filled first, so that neither the clock nor the round-trip and statement
/// counters see the fixture's own work. `setup` counts round trips and statements; without it
/// (a database of its own) they are left at zero.
pub async fn warm(
    driver: &Driver,
    mut setup: Option<&mut Setup>,
    function: &Function,
    series: Series,
) -> anyhow::Result<Warm> {
    for _ in 0..series.warm_up {
        driver.call(function).await?;
    }
    let mut calls = Vec::with_capacity(series.measured);
    for _ in 0..series.measured {
        calls.push(driver.prepare(function).await?);
    }
    let skip = driver.emulator.invocations_since(0).len();
    let trips = |setup: &Option<&mut Setup>| {
        setup.as_ref().map(|setup| setup.proxy.counters.read()).unwrap_or_default()
    };
    let (trips_before, connections_before) = trips(&setup);
    let statements_before = match setup.as_deref_mut() {
        Some(setup) => statements_so_far(&mut setup.admin).await?,
        None => 0,
    };
    let mut client = Vec::with_capacity(series.measured);
    for call in calls {
        client.push(driver.send(function, call).await?);
    }
    let reports = driver.reports(function, skip, series.measured).await?;
    let (trips_after, connections_after) = trips(&setup);
    let statements_after = match setup {
        Some(setup) => statements_so_far(&mut setup.admin).await?,
        None => 0,
    };
    let sandboxes = driver.emulator.sandboxes(&function.logical_id)?;
    ensure!(sandboxes.len() == 1, "{} should have kept one sandbox: {sandboxes:?}", function.label);
    let per_call = |count: i64| count as f64 / series.measured as f64;
    Ok(Warm {
        client: Samples::new(client),
        function: Samples::new(reports.iter().map(|report| report.duration)),
        round_trips: per_call((trips_after - trips_before) as i64),
        connections: connections_after - connections_before,
        statements: per_call(statements_after - statements_before),
        rss_after: (sandboxes[0].invocations, reports.last().and_then(|report| report.max_memory_used_mb)),
    })
}

/// Keeps calling `function` until its sandbox has served `total` invocations; (invocations,
/// peak RSS in MB) then.
pub async fn soak(driver: &Driver, function: &Function, total: usize) -> anyhow::Result<(u64, Option<u64>)> {
    let served = || -> anyhow::Result<u64> {
        Ok(driver.emulator.sandboxes(&function.logical_id)?.first().map_or(0, |sandbox| sandbox.invocations))
    };
    let mut count = served()?;
    while count < total as u64 {
        driver.call(function).await?;
        count += 1;
    }
    let skip = driver.emulator.invocations_since(0).len().saturating_sub(64);
    let last = driver.reports(function, skip, 1).await?.pop();
    Ok((served()?, last.and_then(|report| report.max_memory_used_mb)))
}

/// What [`load`] measured: requests per second, latencies, sandboxes used.
pub type Load = (f64, Samples, usize);

/// `clients` concurrent clients for `duration`, after half a second that warms the sandboxes and
/// tells how many filled samples the timed part needs: twice what the warm-up's pace would use,
/// prepared before it starts. The timed part ends at `duration`, or sooner if they run out: no
/// sample is filled while the clock runs.
pub async fn load(
    driver: &Arc<Driver>,
    function: &Function,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let warm_up = run_clients(driver, function, clients, Duration::from_millis(500), None).await?;
    let expected = (warm_up.0 * duration.as_secs_f64() * 2.0).ceil() as usize + clients;
    let mut calls = Vec::with_capacity(expected);
    for _ in 0..expected {
        calls.push(driver.prepare(function).await?);
    }
    run_clients(driver, function, clients, duration, Some(calls)).await
}

/// The clients at work: each sends calls from `prepared` until `duration` has passed or none is
/// left (or, without prepared calls, fills its own: the warm-up).
async fn run_clients(
    driver: &Arc<Driver>,
    function: &Function,
    clients: usize,
    duration: Duration,
    prepared: Option<Vec<Call>>,
) -> anyhow::Result<Load> {
    let filling = prepared.is_none();
    let prepared = Arc::new(Mutex::new(prepared.unwrap_or_default()));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (driver, function, prepared) = (driver.clone(), function.clone(), prepared.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut ended = Instant::now();
            while Instant::now() < deadline {
                let call = prepared.lock().await.pop();
                let call = match call {
                    Some(call) => call,
                    None if filling => driver.prepare(&function).await?,
                    None => break,
                };
                latencies.push(driver.send(&function, call).await?);
                ended = Instant::now();
            }
            anyhow::Ok((latencies, ended))
        }));
    }
    let (mut latencies, mut ended) = (Vec::new(), started);
    for task in tasks {
        let (mine, last) = task.await??;
        latencies.extend(mine);
        ended = ended.max(last);
    }
    let elapsed = (ended - started).as_secs_f64().max(f64::EPSILON);
    let sandboxes = driver.emulator.sandboxes(&function.logical_id)?.len();
    Ok((latencies.len() as f64 / elapsed, Samples::new(latencies), sandboxes))
}

/// One argon2id verification with the functions' parameters, in this (release) process. With
/// `evict`, 64 MiB are written before each run, so that argon2's memory starts out of the CPU
/// caches, as in a function whose sandbox was frozen while other processes ran.
pub async fn argon2_alone(samples: usize, evict: bool) -> anyhow::Result<Samples> {
    let email = shared::domain::Email::parse("bench@example.com")?;
    let password = || shared::domain::Password::parse(test_support::PASSWORD.to_owned(), &email);
    let stored = shared::passwords::hash(password()?).await?;
    let mut times = Vec::new();
    let mut scratch = vec![0u8; if evict { 64 << 20 } else { 0 }];
    for round in 0..samples {
        for byte in scratch.iter_mut().step_by(64) {
            *byte = byte.wrapping_add(round as u8);
        }
        std::hint::black_box(&mut scratch);
        let started = Instant::now();
        let verified = shared::passwords::verify(password()?, Some(stored.clone())).await?;
        times.push(started.elapsed());
        ensure!(matches!(verified, shared::passwords::Verified::Yes { .. }), "the password verifies");
    }
    Ok(Samples::new(times))
}
