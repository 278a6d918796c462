//! BENCHMARKS.md, written from one run's [`Measurements`](crate::Measurements): the method of
//! each section beside its table.

use crate::*;

/// The whole report.
pub(crate) fn write(args: &Args, measured: Measurements, started: Instant) -> anyhow::Result<String> {
    let Measurements {
        cold,
        warm_results,
        argon2,
        argon2_evicted,
        memory,
        throughput,
        signer_rates,
        managed,
        memory_alternatives,
        tuning,
        volume,
        mail,
        zips,
        criterion,
    } = measured;
    let plan = args.plan;
    let mut report = String::new();
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    writeln!(report, "# Benchmarks\n")?;
    writeln!(
        report,
        "Written by `make bench` on {} in {:.1} min{}. Machine: {}.\n",
        time::OffsetDateTime::now_utc().date(),
        started.elapsed().as_secs_f64() / 60.0,
        if args.quick { " (**--quick: a smoke run, not the figures**)" } else { "" },
        machine()
    )?;
    writeln!(
        report,
        "Release build (`[profile.release]`: opt-level 3, fat LTO, 1 codegen unit, stripped), x86_64 here \
         (Lambda runs the arm64 build). Every request goes through the local emulator \
         (`emulator/`: the HTTP API, the Runtime API, a real process per sandbox) to a local \
         PostgreSQL with durable commits, through a TCP proxy that counts round trips. \
         Sections 1 to 8 run unthrottled (the code's own cost on this machine's cores); section 9 \
         holds each sandbox to Lambda's CPU share of its memory size, as deployed. \
         Times are milliseconds; \"median (min–max)\" over repeated runs. \
         Reproduce with `make bench` (`make bench-quick` for a smoke run).\n"
    )?;

    writeln!(report, "## 1. Cold start\n")?;
    writeln!(
        report,
        "{} cold starts per function and configuration. *Init* is process spawn to the runtime's first \
         `/next` (our init: configuration, keys, and the warm-up that fetches secrets and opens the \
         database connection); *first* is the first invocation; *client* is the whole request as the \
         HTTP client saw it, spawn included. *Environment*: `DATABASE_URL` and `JWT_PRIVATE_KEY` \
         set; *secrets*: both fetched from Secrets Manager (moto on loopback) during init. Floor: \
         the `hello` lambda_http binary (`bench/hello`), same profile, same emulator.\n",
        plan.cold_starts
    )?;
    writeln!(
        report,
        "| function | init (environment) | init (secrets) | first invocation (environment) | client: spawn to answer (environment) | client (secrets) |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, (from_env, from_secrets)) in &cold {
        let secrets = from_secrets.as_ref();
        writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} |",
            endpoint.name(),
            from_env.init.summary(),
            secrets.map_or("–".to_owned(), |s| s.init.summary()),
            from_env.first.summary(),
            from_env.client.summary(),
            secrets.map_or("–".to_owned(), |s| s.client.summary()),
        )?;
    }

    writeln!(report, "\n## 2. Warm latency\n")?;
    writeln!(
        report,
        "{} sequential invocations per endpoint through one warm sandbox, after {} to warm it. *Client*: \
         the HTTP round trip through the emulator; *function*: the REPORT line's duration (event \
         delivered to response posted). The hello row is the floor: the emulator's and the runtime's \
         own cost.\n",
        plan.warm, plan.warm_up
    )?;
    writeln!(report, "| endpoint | client p50 | client p95 | client p99 | function p50 | function p99 |")?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, result) in &warm_results {
        writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} |",
            endpoint.route(),
            ms(result.client.median()),
            ms(result.client.percentile(0.95)),
            ms(result.client.percentile(0.99)),
            ms(result.function.median()),
            ms(result.function.percentile(0.99)),
        )?;
    }

    writeln!(report, "\n## 3. Database round trips\n")?;
    writeln!(
        report,
        "Counted during the {} warm invocations above: *round trips* by the proxy (each time the \
         function starts sending after Postgres answered: statements, pings and protocol messages \
         alike), *statements* by `pg_stat_statements`. New connections opened during the series are \
         listed apart (0 means the warm pool served every request).\n",
        plan.warm
    )?;
    writeln!(
        report,
        "| endpoint | round trips per request | statements per request | new connections | target | met |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, result) in &warm_results {
        let Some(target) = endpoint.round_trip_target() else { continue };
        writeln!(
            report,
            "| {} | {:.2} | {:.2} | {} | ≤ {target} | {} |",
            endpoint.route(),
            result.round_trips,
            result.statements,
            result.connections,
            if result.round_trips <= target as f64 { "yes" } else { "**no**" },
        )?;
    }

    let login = &warm_results[&Endpoint::Login];
    writeln!(report, "\n## 4. argon2's share of login\n")?;
    writeln!(
        report,
        "argon2id verification alone (m={}, t={}, p={}), {} runs in this process: in a hot loop, and with 64 MiB \
         written before each run so its working memory starts out of the CPU caches (as in a sandbox that was \
         frozen while other processes ran). Login's function p50 is {} (client {}).\n",
        shared::passwords::MEMORY_KIB,
        shared::passwords::ITERATIONS,
        shared::passwords::PARALLELISM,
        argon2.len(),
        ms(login.function.median()),
        ms(login.client.median()),
    )?;
    writeln!(report, "| argon2 alone | time | login − argon2 | (login − argon2) / argon2 |")?;
    writeln!(report, "|---|---|---|---|")?;
    for (label, alone) in [("hot loop", &argon2), ("caches evicted first", &argon2_evicted)] {
        let rest = login.function.median() - alone.median();
        writeln!(
            report,
            "| {label} | {} | {} | {:.1} % |",
            alone.summary(),
            ms(rest),
            100.0 * rest / alone.median()
        )?;
    }

    writeln!(report, "\n## 5. Access-token signing (criterion)\n")?;
    writeln!(
        report,
        "`cargo bench -p shared --bench tokens`, aws-lc-rs. *Sign*: `SigningKey::sign`, the key parsed \
         once per execution environment; *sign, reparsing*: `jsonwebtoken::encode`, which parses \
         the private key (DER) on every signature, as the functions did before. Medians:\n"
    )?;
    writeln!(report, "| algorithm | sign | sign, reparsing | verify |")?;
    writeln!(report, "|---|---|---|---|")?;
    for algorithm in ["RS256", "ES256", "EdDSA"] {
        let cell = |group| {
            criterion_median_ns(&criterion, group, algorithm)
                .map_or("not run".to_owned(), |ns| format!("{:.1} µs", ns / 1000.0))
        };
        writeln!(
            report,
            "| {algorithm} | {} | {} | {} |",
            cell("access_token_sign"),
            cell("access_token_sign_reparsing"),
            cell("access_token_verify")
        )?;
    }
    let refresh = &warm_results[&Endpoint::Refresh];
    if let Some(sign) = criterion_median_ns(&criterion, "access_token_sign", "RS256") {
        writeln!(
            report,
            "\nGoals (issue 12): RS256 sign ≤ 0.7 ms, measured {:.3} ms; refresh function p50 ≤ 2.5 ms, \
             measured {} (section 2). Refresh signs one RS256 token: {:.1} % of its function p50.",
            sign / 1e6,
            ms(refresh.function.median()),
            100.0 * sign / 1e6 / refresh.function.median(),
        )?;
    }

    if let (Some(alone), Some(sanitized), Some(schedule)) = (
        criterion_median_ns(&criterion, "event_to_request", "lambda_http"),
        criterion_median_ns(&criterion, "event_to_request", "sanitized"),
        criterion_median_ns(&criterion, "event_to_request", "schedule"),
    ) {
        writeln!(
            report,
            "\nReading an event (`cargo bench -p shared --bench events`, a refresh through the HTTP \
             API): lambda_http's conversion alone {:.1} µs; with `event::sanitize` first, as \
             `runtime::run` does (the JSON value, the clean-up, the conversion), {:.1} µs. The \
             health schedule, which reaches its handler through `pass_through` once every front \
             door's shape has failed to match: {:.1} µs.",
            alone / 1000.0,
            sanitized / 1000.0,
            schedule / 1000.0
        )?;
    }

    writeln!(report, "\n## 6. Throughput\n")?;
    writeln!(
        report,
        "Up to {} sandboxes per function, concurrent clients for {} s after 0.5 s to warm them. The \
         login bound is cores ÷ one verification: {cores:.0} ÷ {} ms = {:.0} logins/s.\n",
        plan.sandboxes,
        plan.load.as_secs(),
        ms(argon2.median()),
        cores * 1000.0 / argon2.median()
    )?;
    writeln!(report, "| endpoint | clients | requests/s | p50 | p99 | sandboxes used |")?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, clients, (rps, latencies, sandboxes)) in &throughput {
        writeln!(
            report,
            "| {} | {clients} | {rps:.0} | {} | {} | {sandboxes} |",
            endpoint.route(),
            ms(latencies.median()),
            ms(latencies.percentile(0.99))
        )?;
    }
    if let Some((today, before)) = &signer_rates {
        let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len() as f64;
        let show = |rates: &[f64]| rates.iter().map(|rps| format!("{rps:.0}")).collect::<Vec<_>>().join(", ");
        writeln!(
            report,
            "\nRefresh, {} clients on {} sandboxes, three turns each: today's signer {} requests/s \
             (mean {:.0}); the reparsing signer {} (mean {:.0}). Ratio {:.2}× (goal ≥ 1.8×).",
            plan.clients,
            plan.sandboxes,
            show(today),
            mean(today),
            show(before),
            mean(before),
            mean(today) / mean(before)
        )?;
    }

    writeln!(report, "\n### Managed Instances: one sandbox, N invocations at once\n")?;
    writeln!(
        report,
        "Each function in one sandbox (`local-lambda --max-concurrency N`, `AWS_LAMBDA_MAX_CONCURRENCY` \
         = N: the runtime polls N invocations at once, the pool holds N connections) at {MANAGED_MEMORY_MB} MB, \
         held to that size's CPU share ({:.2} cores; Managed Instances give 2 GB one vCPU), N clients \
         for {} s after 0.5 s of warm-up. Login is bound by argon2 on the sandbox's CPU whatever N; \
         refresh by its signature and its one statement.\n",
        f64::from(MANAGED_MEMORY_MB) / 1769.0,
        plan.load.as_secs()
    )?;
    writeln!(
        report,
        "| N | login requests/s | login p50 | login p99 | refresh requests/s | refresh p50 | refresh p99 |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    for (n, (login_rps, login, _), (refresh_rps, refresh, _)) in &managed {
        writeln!(
            report,
            "| {n} | {login_rps:.0} | {} | {} | {refresh_rps:.0} | {} | {} |",
            ms(login.median()),
            ms(login.percentile(0.99)),
            ms(refresh.median()),
            ms(refresh.percentile(0.99))
        )?;
    }

    writeln!(report, "\n## 7. Memory\n")?;
    writeln!(
        report,
        "Peak RSS of one sandbox (the REPORT line's Max Memory Used, `VmHWM`) after the warm series \
         and after the soak, where every function's sandbox carried on to {} invocations, all at once.\n",
        plan.memory
    )?;
    writeln!(report, "| function | invocations | max RSS | invocations | max RSS | growth |")?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (endpoint, result) in &warm_results {
        let (early_count, early) = result.rss_after;
        let (late_count, late) = memory.get(endpoint).copied().unwrap_or((0, None));
        let show = |rss: Option<u64>| rss.map_or("–".to_owned(), |mb| format!("{mb} MB"));
        let growth = match (early, late) {
            (Some(a), Some(b)) => format!("{:+} MB", b as i64 - a as i64),
            _ => "–".to_owned(),
        };
        writeln!(
            report,
            "| {} | {early_count} | {} | {late_count} | {} | {growth} |",
            endpoint.name(),
            show(early),
            show(late)
        )?;
    }

    writeln!(report, "\n{}", memory_alternatives.trim_end())?;

    writeln!(report, "\n## 8. Artifact size\n")?;
    writeln!(
        report,
        "arm64 `bootstrap.zip` per function from `make package` (cargo-lambda, zig), and the x86_64 binary measured here:\n"
    )?;
    writeln!(report, "| function | arm64 zip | x86_64 binary |")?;
    writeln!(report, "|---|---|---|")?;
    for (name, zip) in &zips {
        let binary = file_size(&args.binaries.join(name));
        writeln!(
            report,
            "| {name} | {} | {} |",
            zip.map_or("not packaged".to_owned(), mib),
            binary.map_or("–".to_owned(), mib)
        )?;
    }
    let profiles = args.root.join("bench/profiles.md");
    if let Ok(text) = std::fs::read_to_string(&profiles) {
        writeln!(report, "\n{}", text.trim_end())?;
    }
    writeln!(report, "\n{}", tuning.trim_end())?;
    writeln!(report, "\n{}", volume.trim_end())?;
    writeln!(report, "\n{}", mail.trim_end())?;

    Ok(report)
}
