//! BENCHMARKS.md, written from one run's [`Measurements`]: the method of each section beside its
//! table, a row per function of the template in every per-function section.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use crate::driver::LoginParts;
use crate::functions::Function;
use crate::plan::Args;
use crate::run::{MANAGED_CONCURRENCY, MANAGED_MEMORY_MB, Measurements};
use crate::stats::ms;

/// Criterion's median for one benchmark, if `cargo bench` wrote it.
fn criterion_median_ns(root: &Path, group: &str, function: &str) -> Option<f64> {
    let path = root.join(group).join(function).join("new/estimates.json");
    let estimates: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The machine the figures were measured on, in one line.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .map(|line| line.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "{cores} cores ({cpu}), Linux {}, {}, PostgreSQL {}",
        command_output("uname", &["-r"]),
        command_output("rustc", &["-V"]),
        command_output("postgres", &["-V"]).trim_start_matches("postgres (PostgreSQL) "),
    )
}

/// The release profile as Cargo.toml sets it, in words.
fn release_profile(root: &Path) -> String {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let section = manifest.split("[profile.release]").nth(1).unwrap_or_default();
    let settings: Vec<String> = section
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    settings.join(", ")
}

/// The whole report.
pub fn write(
    args: &Args,
    functions: &[Function],
    measured: Measurements,
    started: Instant,
) -> anyhow::Result<String> {
    let Measurements {
        cold,
        warm,
        argon2,
        argon2_evicted,
        login_parts,
        memory,
        throughput,
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
        "Release build (`[profile.release]`: {}), x86_64 here (Lambda runs the arm64 build). Every \
         function of template.yaml, called with its sample event (`events/`, a fresh account for \
         each call, made before the clock starts). Every request goes through the local emulator \
         (`tools/emulator`: the HTTP API, the Runtime API, a real process per sandbox) to a local \
         PostgreSQL with durable commits, through a TCP proxy that counts round trips. Sections 1 to 8 \
         run unthrottled (the code's own cost on this machine's cores); section 9 holds each sandbox \
         to Lambda's CPU share of its memory size, as deployed. Compare figures within one run: the \
         machine's speed varies between runs. Times are milliseconds; \"median (min–max)\" over \
         repeated runs. Reproduce with `make bench` (`make bench-quick` for a smoke run).\n",
        release_profile(&args.root)
    )?;

    writeln!(report, "## 1. Cold start\n")?;
    writeln!(
        report,
        "{} cold starts per function and configuration. *Init* is process spawn to the runtime's first \
         `/next` (our init: configuration, keys, and the warm-up that fetches secrets and opens the \
         database connection, so that the first request waits for neither); *first* is the first \
         invocation; *client* is the whole request as the HTTP client saw it, spawn included. \
         *Environment*: the database URL and the keys in the environment; *secrets*: each function \
         reads the secrets its template variables name from Secrets Manager (moto on loopback) during \
         init. Floor: the `hello` lambda_http binary (`tools/bench/hello`), same profile, same emulator.\n",
        plan.cold_starts
    )?;
    writeln!(
        report,
        "| function | init (environment) | init (secrets) | first invocation (environment) | client: spawn to answer (environment) | client (secrets) |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (function, from_env, from_secrets) in &cold {
        let secrets = from_secrets.as_ref();
        writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} |",
            function.binary,
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
        "{} sequential invocations per function through one warm sandbox, after {} to warm it. *Client*: \
         the HTTP round trip through the emulator (or the direct invocation); *function*: the REPORT \
         line's duration (event delivered to response posted). The hello row is the floor: the \
         emulator's and the runtime's own cost.\n",
        plan.warm, plan.warm_up
    )?;
    writeln!(
        report,
        "| function | called as | client p50 | client p95 | client p99 | function p50 | function p99 |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    for (function, result) in &warm {
        writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} | {} |",
            function.binary,
            function.label,
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
         listed apart (0 means the warm pool served every request: the connection is kept between \
         invocations, and pinged only after it has been idle).\n",
        plan.warm
    )?;
    writeln!(report, "| function | round trips per request | statements per request | new connections |")?;
    writeln!(report, "|---|---|---|---|")?;
    for (function, result) in
        warm.iter().filter(|(function, _)| functions.iter().any(|f| f.binary == function.binary))
    {
        writeln!(
            report,
            "| {} | {:.2} | {:.2} | {} |",
            function.binary, result.round_trips, result.statements, result.connections,
        )?;
    }

    writeln!(report, "\n## 4. argon2's share of the password work\n")?;
    writeln!(
        report,
        "argon2id verification alone (m={}, t={}, p={}), {} runs in this process: in a hot loop, and with \
         64 MiB written before each run so its working memory starts out of the CPU caches (as in a \
         sandbox that was frozen while other processes ran). Beside it, the warm function p50 of every \
         function whose sample request carries a password, and what is left of it once one argon2 \
         run is taken off (hashing costs what verifying does).\n",
        shared::passwords::MEMORY_KIB,
        shared::passwords::ITERATIONS,
        shared::passwords::PARALLELISM,
        argon2.len(),
    )?;
    writeln!(report, "| argon2 alone | time |")?;
    writeln!(report, "|---|---|")?;
    for (label, alone) in [("hot loop", &argon2), ("caches evicted first", &argon2_evicted)] {
        writeln!(report, "| {label} | {} |", alone.summary())?;
    }
    writeln!(report, "\n| function | function p50 | p50 − argon2 (hot) | (p50 − argon2) / argon2 |")?;
    writeln!(report, "|---|---|---|---|")?;
    for (function, result) in warm.iter().filter(|(function, _)| function.password_work) {
        let rest = result.function.median() - argon2.median();
        writeln!(
            report,
            "| {} | {} | {} | {:.1} % |",
            function.binary,
            ms(result.function.median()),
            ms(rest),
            100.0 * rest / argon2.median()
        )?;
    }
    if let Some((_, login)) = warm.iter().find(|(function, _)| function.label == "POST /auth/login") {
        write_login_parts(&mut report, &login_parts, login.function.median())?;
    }

    writeln!(report, "\n## 5. Access-token signing (criterion)\n")?;
    writeln!(
        report,
        "`cargo bench -p shared --bench tokens`, aws-lc-rs. *Sign*: `SigningKey::sign`, the key parsed \
         once per execution environment; *sign, reparsing*: `jsonwebtoken::encode`, which parses \
         the private key (DER) on every signature, as the functions once did. Medians:\n"
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
    if let (Some(alone), Some(sanitized), Some(schedule)) = (
        criterion_median_ns(&criterion, "event_to_request", "lambda_http"),
        criterion_median_ns(&criterion, "event_to_request", "sanitized"),
        criterion_median_ns(&criterion, "event_to_request", "schedule"),
    ) {
        writeln!(
            report,
            "\nReading an event (`cargo bench -p shared --bench events`, a request through the HTTP \
             API): lambda_http's conversion alone {:.1} µs; with `event::sanitize` first, as \
             `runtime::run` does (the JSON value, the clean-up, the conversion), {:.1} µs. A \
             schedule's event, which reaches its handler through `pass_through` once every front \
             door's shape has failed to match: {:.1} µs.",
            alone / 1000.0,
            sanitized / 1000.0,
            schedule / 1000.0
        )?;
    }

    writeln!(report, "\n## 6. Throughput\n")?;
    writeln!(
        report,
        "Up to {} sandboxes per function, concurrent clients for {} s after 0.5 s to warm them; a \
         function whose request carries a password gets one client per sandbox, since argon2 bounds \
         it at cores ÷ one verification: {cores:.0} ÷ {} ms = {:.0} requests/s on this machine.\n",
        plan.sandboxes,
        plan.load.as_secs(),
        ms(argon2.median()),
        cores * 1000.0 / argon2.median()
    )?;
    writeln!(report, "| function | clients | requests/s | p50 | p99 | sandboxes used |")?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (function, clients, (rps, latencies, sandboxes)) in &throughput {
        writeln!(
            report,
            "| {} | {clients} | {rps:.0} | {} | {} | {sandboxes} |",
            function.binary,
            ms(latencies.median()),
            ms(latencies.percentile(0.99))
        )?;
    }

    writeln!(report, "\n### Managed Instances: one sandbox, N invocations at once\n")?;
    writeln!(
        report,
        "Each function behind a route in one sandbox (`local-lambda --max-concurrency N`, \
         `AWS_LAMBDA_MAX_CONCURRENCY` = N: the runtime polls N invocations at once, the pool holds N \
         connections) at {MANAGED_MEMORY_MB} MB, held to that size's CPU share ({:.2} cores; Managed \
         Instances give 2 GB one vCPU), N clients for {:.0} s after 0.5 s of warm-up. Requests/s, \
         then p50 and p99, per N.\n",
        f64::from(MANAGED_MEMORY_MB) / 1769.0,
        (plan.load / 2).as_secs_f64()
    )?;
    let columns: Vec<String> = MANAGED_CONCURRENCY.iter().map(|n| format!("N = {n}")).collect();
    writeln!(report, "| function | {} |", columns.join(" | "))?;
    writeln!(report, "|---|{}", "---|".repeat(columns.len()))?;
    for (function, rates) in &managed {
        let cells: Vec<String> = rates
            .iter()
            .map(|(_, (rps, latencies, _))| {
                format!("{rps:.0}/s, {} / {}", ms(latencies.median()), ms(latencies.percentile(0.99)))
            })
            .collect();
        writeln!(report, "| {} | {} |", function.binary, cells.join(" | "))?;
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
    for (function, result) in &warm {
        let (early_count, early) = result.rss_after;
        let (late_count, late) = memory
            .iter()
            .find(|(soaked, _)| soaked.binary == function.binary)
            .map_or((0, None), |(_, soaked)| *soaked);
        let show = |rss: Option<u64>| rss.map_or("–".to_owned(), |mb| format!("{mb} MB"));
        let growth = match (early, late) {
            (Some(a), Some(b)) => format!("{:+} MB", b as i64 - a as i64),
            _ => "–".to_owned(),
        };
        writeln!(
            report,
            "| {} | {early_count} | {} | {late_count} | {} | {growth} |",
            function.binary,
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
    for (binary, zip) in &zips {
        let built = std::fs::metadata(args.binaries.join(binary)).ok().map(|metadata| metadata.len());
        writeln!(
            report,
            "| {binary} | {} | {} |",
            zip.map_or("not packaged".to_owned(), mib),
            built.map_or("–".to_owned(), mib)
        )?;
    }
    let profiles = args.root.join("tools/bench/profiles.md");
    if let Ok(text) = std::fs::read_to_string(&profiles) {
        writeln!(report, "\n{}", text.trim_end())?;
    }
    writeln!(report, "\n{}", tuning.trim_end())?;
    writeln!(report, "\n{}", volume.trim_end())?;
    writeln!(report, "\n{}", mail.trim_end())?;

    Ok(report)
}

/// Section 4's login, part by part: where its time goes beyond argon2.
fn write_login_parts(report: &mut String, parts: &LoginParts, function_p50: f64) -> anyhow::Result<()> {
    writeln!(
        report,
        "\nLogin taken apart in this process, {} rounds of each part as the function runs it, on the \
         functions' role through the counting proxy: the use-case whole (`accounts::login`), then \
         each of its steps alone. What the use-case adds to its steps is its own glue; what the \
         function (section 2's warm p50: from the runtime receiving the event to the emulator \
         receiving the answer) adds to the use-case is the runtime's: the event's conversion, the \
         handler's dispatch and the answer's HTTP exchange with the Runtime API.\n",
        parts.whole.len()
    )?;
    let steps = [
        ("the admission statement (`store::admit_login`), one round trip", &parts.admit),
        ("argon2 verification on the blocking pool (`passwords::verify`)", &parts.verify),
        ("the session statement (`store::start_session`), one round trip", &parts.open),
        ("the access token's RS256 signature", &parts.sign),
    ];
    let sum: f64 = steps.iter().map(|(_, samples)| samples.median()).sum();
    writeln!(report, "| part | p50 |")?;
    writeln!(report, "|---|---|")?;
    for (label, samples) in steps {
        writeln!(report, "| {label} | {} |", ms(samples.median()))?;
    }
    writeln!(report, "| the steps' sum | {} |", ms(sum))?;
    writeln!(report, "| the use-case whole | {} |", ms(parts.whole.median()))?;
    writeln!(report, "| the use-case's glue (whole − steps) | {} |", ms(parts.whole.median() - sum))?;
    writeln!(report, "| the login function, warm (section 2) | {} |", ms(function_p50))?;
    writeln!(
        report,
        "| the runtime's part (function − use-case) | {} |",
        ms(function_p50 - parts.whole.median())
    )?;
    writeln!(
        report,
        "| login − argon2 − its two statements (function − verification − statements) | {} |",
        ms(function_p50 - parts.verify.median() - parts.admit.median() - parts.open.median())
    )?;
    Ok(())
}
