//! The measurements every section is built from: cold starts, a warm series (with its
//! round trips and statements), a soak, concurrent load, and argon2 alone.

use crate::*;

/// Cold starts of one endpoint: (init durations, first invocations, spawn-to-answer as the
/// client saw it).
pub(crate) struct ColdStarts {
    pub(crate) init: Samples,
    pub(crate) first: Samples,
    pub(crate) client: Samples,
}

pub(crate) async fn cold_starts(
    driver: &Driver,
    endpoint: Endpoint,
    count: usize,
) -> anyhow::Result<ColdStarts> {
    let (mut init, mut first, mut client) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..count {
        driver.emulator.shutdown_sandboxes(endpoint.logical_id()).await?;
        let skip = driver.emulator.invocations_since(0).len();
        let mut chain = None;
        let answer = driver.call(endpoint, &mut chain).await?;
        if let Some(token) = chain {
            driver.spares.put(token);
        }
        let report = driver.reports(endpoint, skip, 1).await?.remove(0);
        let init_duration =
            report.init_duration.context("the first invocation of a new sandbox is a cold start")?;
        init.push(init_duration);
        first.push(report.duration);
        client.push(answer.elapsed);
    }
    driver.emulator.shutdown_sandboxes(endpoint.logical_id()).await?;
    Ok(ColdStarts { init: Samples::new(init), first: Samples::new(first), client: Samples::new(client) })
}

/// A warm series through one sandbox.
pub(crate) struct Warm {
    pub(crate) client: Samples,
    pub(crate) function: Samples,
    pub(crate) round_trips: f64,
    pub(crate) connections: u64,
    pub(crate) statements: f64,
    pub(crate) rss_after: (u64, Option<u64>),
}

pub(crate) async fn statements_so_far(setup: &mut Setup) -> anyhow::Result<i64> {
    let calls: i64 = sqlx::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_statements s join pg_database d on d.oid = s.dbid
         where d.datname = $1 and s.query not like '%pg_stat_statements%'",
    )
    .bind(DATABASE)
    .fetch_one(&mut setup.admin)
    .await?;
    Ok(calls)
}

pub(crate) async fn warm(
    driver: &Driver,
    setup: &mut Setup,
    endpoint: Endpoint,
    plan: Plan,
) -> anyhow::Result<Warm> {
    let mut chain = None;
    for _ in 0..plan.warm_up {
        driver.call(endpoint, &mut chain).await?;
    }
    let skip = driver.emulator.invocations_since(0).len();
    let (trips_before, connections_before) = setup.proxy.counters.read();
    let statements_before = statements_so_far(setup).await?;
    let mut client = Vec::with_capacity(plan.warm);
    for _ in 0..plan.warm {
        client.push(driver.call(endpoint, &mut chain).await?.elapsed);
    }
    let reports = driver.reports(endpoint, skip, plan.warm).await?;
    let (trips_after, connections_after) = setup.proxy.counters.read();
    let statements_after = statements_so_far(setup).await?;
    if let Some(token) = chain {
        driver.spares.put(token);
    }
    let sandboxes = driver.emulator.sandboxes(endpoint.logical_id())?;
    ensure!(sandboxes.len() == 1, "{} should have kept one sandbox: {sandboxes:?}", endpoint.name());
    let invocations = sandboxes[0].invocations;
    let rss = reports.last().and_then(|report| report.max_memory_used_mb);
    Ok(Warm {
        client: Samples::new(client),
        function: Samples::new(reports.iter().map(|report| report.duration)),
        round_trips: (trips_after - trips_before) as f64 / plan.warm as f64,
        connections: connections_after - connections_before,
        statements: (statements_after - statements_before) as f64 / plan.warm as f64,
        rss_after: (invocations, rss),
    })
}

/// Keeps calling `endpoint` until its sandbox has served `total` invocations; its peak RSS then.
pub(crate) async fn soak(
    driver: &Driver,
    endpoint: Endpoint,
    total: usize,
) -> anyhow::Result<(u64, Option<u64>)> {
    let served = |driver: &Driver| -> anyhow::Result<u64> {
        Ok(driver.emulator.sandboxes(endpoint.logical_id())?.first().map_or(0, |sandbox| sandbox.invocations))
    };
    let mut chain = None;
    let mut count = served(driver)?;
    while count < total as u64 {
        driver.call(endpoint, &mut chain).await?;
        count += 1;
    }
    if let Some(token) = chain {
        driver.spares.put(token);
    }
    let skip = driver.emulator.invocations_since(0).len().saturating_sub(64);
    let last = driver.reports(endpoint, skip, 1).await?.pop();
    Ok((served(driver)?, last.and_then(|report| report.max_memory_used_mb)))
}

/// What [`load`] measured: requests per second, latencies, sandboxes used.
pub(crate) type Load = (f64, Samples, usize);

/// Concurrent clients for a while: (requests per second, latencies, sandboxes used).
pub(crate) async fn load(
    driver: &Arc<Driver>,
    endpoint: Endpoint,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let driver = driver.clone();
        tasks.push(tokio::spawn(async move {
            let mut chain = None;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                latencies.push(driver.call(endpoint, &mut chain).await?.elapsed);
            }
            if let Some(token) = chain {
                driver.spares.put(token);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sandboxes = driver.emulator.sandboxes(endpoint.logical_id())?.len();
    Ok((latencies.len() as f64 / elapsed, Samples::new(latencies), sandboxes))
}

/// One argon2id verification with the functions' parameters, in this (release) process. With
/// `evict`, 64 MiB are written before each run, so that argon2's memory starts out of the CPU
/// caches, as in a function whose sandbox was frozen while other processes ran.
pub(crate) async fn argon2_alone(samples: usize, evict: bool) -> anyhow::Result<Samples> {
    let email = shared::domain::Email::parse("bench@example.com")?;
    let password = || shared::domain::Password::parse(PASSWORD.to_owned(), &email);
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
