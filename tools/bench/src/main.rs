//! `make bench`: the release function binaries through the local emulator, against a local
//! Postgres (behind a round-trip-counting proxy) and a local Secrets Manager, each figure beside
//! its floor, written to `BENCHMARKS.md`.
//!
//! Usage: `auth-bench --help`.
//! Needs DATABASE_URL (a server with pg_stat_statements loaded) and
//! AWS_ENDPOINT_URL_SECRETS_MANAGER: `make bench` runs it under scripts/with-postgres and
//! scripts/with-moto.

mod driver;
mod mail;
mod measure;
mod memory;
mod proxy;
mod report;
mod signing;
mod stats;
mod tuning;
mod volume;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use clap::Parser;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use local_lambda::{Emulator, EmulatorConfig, InvocationReport, Log};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use shared::tokens::{SigningAlgorithm, SigningKey, generate_private_key_pem, public_key_set};

/// The refresh-token HMAC key of the benchmarked signers.
const BENCH_REFRESH_TOKEN_KEY: &str = "the benchmark's refresh-token key, 32+ bytes";
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::{Mutex, mpsc};

use crate::proxy::CountingProxy;
use crate::stats::{Samples, ms};
pub(crate) use driver::*;
pub(crate) use measure::*;

const PASSWORD: &str = "correct horse battery staple";
const DATABASE: &str = "auth_bench";
const ROLE: &str = "auth_bench_fn";
const REGION: &str = "eu-west-1";

/// What one run measures; `--quick` is a smoke run of the whole pipeline.
#[derive(Clone, Copy)]
struct Plan {
    cold_starts: usize,
    warm_up: usize,
    warm: usize,
    memory: usize,
    load: Duration,
    clients: usize,
    sandboxes: u32,
    /// Power tuning, per function and size: cold starts, warm-up and warm invocations.
    tuning: (usize, usize, usize),
    /// Section 12: forgot-password requests for known addresses, and as many for unknown ones.
    mail: usize,
}

impl Plan {
    const FULL: Self = Self {
        cold_starts: 10,
        warm_up: 20,
        warm: 1000,
        memory: 10_000,
        load: Duration::from_secs(10),
        clients: 8,
        sandboxes: 4,
        tuning: (5, 5, 100),
        mail: 200,
    };
    const QUICK: Self = Self {
        cold_starts: 2,
        warm_up: 5,
        warm: 50,
        memory: 200,
        load: Duration::from_secs(2),
        clients: 4,
        sandboxes: 2,
        tuning: (1, 2, 5),
        mail: 20,
    };
}

/// Criterion's median for one benchmark, if `cargo bench` wrote it.
fn criterion_median_ns(root: &Path, group: &str, function: &str) -> Option<f64> {
    let path = root.join(group).join(function).join("new/estimates.json");
    let estimates: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|metadata| metadata.len())
}

fn mib(bytes: u64) -> String {
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

fn machine() -> String {
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

/// Size, cold start and warm latency of `me` built with each profile, written to `--out`
/// (`scripts/bench-profiles` writes `bench/profiles.md`, which `make bench` includes).
async fn compare_profiles(args: &Args, setup: &mut Setup, spares: Arc<Spares>) -> anyhow::Result<()> {
    let started = Instant::now();
    // The user and its access token come from the complete build in target/release: a variant
    // directory holds `me` alone.
    let complete = Driver::new(
        emulator(setup, &args.binaries, Source::Environment, 1, None).await?,
        &setup.email,
        spares.clone(),
    )
    .await;
    complete.sign_up_bench_user().await?;
    let access_token = complete.access_token.lock().await.clone();
    drop(complete);
    let mut rows = String::new();
    for (label, dir) in &args.profiles {
        progress(format!("profile {label}: {}", dir.display()));
        let driver = Driver::new(
            emulator(setup, dir, Source::Environment, 1, None).await?,
            &setup.email,
            spares.clone(),
        )
        .await;
        *driver.access_token.lock().await = access_token.clone();
        let cold = cold_starts(&driver, Endpoint::Me, args.plan.cold_starts).await?;
        let warm = warm(&driver, setup, Endpoint::Me, args.plan).await?;
        writeln!(
            rows,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            file_size(&dir.join("me")).map_or("–".to_owned(), mib),
            cold.init.summary(),
            cold.first.summary(),
            cold.client.summary(),
            ms(warm.function.median()),
            ms(warm.client.median()),
        )?;
    }
    let mut report = String::new();
    writeln!(report, "### Release profile options\n")?;
    writeln!(
        report,
        "The `me` function built with each profile (x86_64, `scripts/bench-profiles` on {}, {:.0} s): \
         its stripped binary, {} cold starts (environment configuration) and {} warm invocations.\n",
        time::OffsetDateTime::now_utc().date(),
        started.elapsed().as_secs_f64(),
        args.plan.cold_starts,
        args.plan.warm
    )?;
    writeln!(
        report,
        "| profile | binary | init | first invocation | client: spawn to answer | warm function p50 | warm client p50 |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    report.push_str(&rows);
    std::fs::write(&args.out, report).with_context(|| format!("writing {}", args.out.display()))?;
    progress(format!("wrote {}", args.out.display()));
    Ok(())
}

/// Section 9: every function at every size in [`tuning::SIZES`], under the CPU share and memory
/// limit of that size. `standalone`: the bench user is not signed up yet.
async fn power_tuning(
    args: &Args,
    setup: &mut Setup,
    spares: Arc<Spares>,
    standalone: bool,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let (cold, warm_up, warm_count) = args.plan.tuning;
    let plan = Plan { warm_up, warm: warm_count, ..args.plan };
    let mut results: Vec<(&str, Vec<tuning::Measurement>)> =
        Endpoint::FUNCTIONS.iter().map(|e| (e.name(), Vec::new())).collect();
    for (index, memory_mb) in tuning::SIZES.into_iter().enumerate() {
        progress(format!("power tuning at {memory_mb} MB ({cold} cold, {warm_count} warm per function)"));
        let emulator = emulator(setup, &args.binaries, Source::Environment, 1, Some(memory_mb)).await?;
        if !emulator.limits_sandboxes() {
            return Ok(
                "## 9. Power tuning\n\nNot measured: the emulator could not apply the sandbox limits \
                       here (it needs root and cgroups; see its first line).\n"
                    .to_owned(),
            );
        }
        let driver = Driver::new(emulator, &setup.email, spares.clone()).await;
        if standalone && index == 0 {
            driver.sign_up_bench_user().await?;
        } else {
            driver.renew_access_token().await?;
        }
        for (endpoint, (_, sizes)) in Endpoint::FUNCTIONS.into_iter().zip(results.iter_mut()) {
            let cold = cold_starts(&driver, endpoint, cold).await?;
            let warm = warm(&driver, setup, endpoint, plan).await?;
            sizes.push(tuning::Measurement {
                memory_mb,
                init: cold.init,
                first: cold.first,
                warm: warm.function,
            });
        }
        driver.emulator.shutdown_all().await;
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    for (name, sizes) in &results {
        if let Some(chosen) = tuning::choose(sizes) {
            progress(format!(
                "{name}: MemorySize {} (warm p50 {})",
                chosen.memory_mb,
                ms(chosen.warm.median())
            ));
        }
    }
    tuning::section(&results, cold, warm_up, warm_count, minutes)
}

struct Args {
    plan: Plan,
    quick: bool,
    /// `--power-tuning`: only section 9, replacing it in `--out`.
    power_tuning_only: bool,
    /// `--volume`: only sections 10 and 11, replacing them in `--out`.
    volume_only: bool,
    /// `--mail`: only section 12, replacing it in `--out`.
    mail_only: bool,
    volume: volume::VolumePlan,
    /// `--profiles LABEL=DIR ...`: only compare builds of `me` made with other profiles.
    profiles: Vec<(String, PathBuf)>,
    out: PathBuf,
    binaries: PathBuf,
    root: PathBuf,
}

/// `auth-bench`: measures the functions through the emulator and writes BENCHMARKS.md (run it
/// through `make bench`, which builds and packages first).
#[derive(Parser)]
#[command(name = "auth-bench")]
struct Cli {
    /// A one-minute smoke run: fewer samples, 10,000 users at volume.
    #[arg(long)]
    quick: bool,
    /// Only section 9 (power tuning), replacing it in --out.
    #[arg(long)]
    power_tuning: bool,
    /// Only sections 10 and 11 (at volume, the purge), replacing them in --out.
    #[arg(long)]
    volume: bool,
    /// Only section 12 (forgot password's timing, known against unknown addresses), replacing it
    /// in --out.
    #[arg(long)]
    mail: bool,
    /// Users seeded at volume (and expired tokens in the purge's backlog).
    #[arg(long, value_name = "N")]
    volume_users: Option<i64>,
    /// The report to write (default: BENCHMARKS.md at the repository's root).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The function binaries (default: target/release).
    #[arg(long, value_name = "DIR")]
    binaries: Option<PathBuf>,
    #[arg(long, value_name = "N")]
    cold_starts: Option<usize>,
    #[arg(long, value_name = "N")]
    warm: Option<usize>,
    #[arg(long, value_name = "N")]
    memory: Option<usize>,
    #[arg(long, value_name = "SECONDS")]
    load_seconds: Option<u64>,
    /// Only compare builds of `me` made with other profiles (scripts/bench-profiles).
    #[arg(long, value_name = "LABEL=DIR", num_args = 1..)]
    profiles: Vec<String>,
    /// Measure one password-work variant in this process and print it (section 7's probe).
    #[arg(long, value_name = "VARIANT")]
    memory_probe: Option<String>,
}

fn args(cli: Cli) -> anyhow::Result<Args> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (mut plan, mut volume) = if cli.quick {
        (Plan::QUICK, volume::VolumePlan::QUICK)
    } else {
        (Plan::FULL, volume::VolumePlan::FULL)
    };
    if let Some(users) = cli.volume_users {
        (volume.users, volume.backlog) = (users, users);
    }
    plan.cold_starts = cli.cold_starts.unwrap_or(plan.cold_starts);
    plan.warm = cli.warm.unwrap_or(plan.warm);
    plan.memory = cli.memory.unwrap_or(plan.memory);
    plan.load = cli.load_seconds.map_or(plan.load, Duration::from_secs);
    let profiles = cli
        .profiles
        .iter()
        .map(|variant| {
            let (label, dir) = variant.split_once('=').context("--profiles LABEL=DIR ...")?;
            Ok((label.to_owned(), PathBuf::from(dir)))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Args {
        plan,
        quick: cli.quick,
        power_tuning_only: cli.power_tuning,
        volume_only: cli.volume,
        mail_only: cli.mail,
        volume,
        profiles,
        out: cli.out.unwrap_or_else(|| root.join("BENCHMARKS.md")),
        binaries: cli.binaries.unwrap_or_else(|| root.join("target/release")),
        root,
    })
}

fn progress(message: impl std::fmt::Display) {
    eprintln!("[bench] {message}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(variant) = &cli.memory_probe {
        return memory::probe(variant);
    }
    let args = args(cli)?;
    let started = Instant::now();
    let mut setup = setup().await?;
    let spares = Arc::new(Spares::new());
    if !args.profiles.is_empty() {
        return compare_profiles(&args, &mut setup, spares).await;
    }
    if args.power_tuning_only || args.volume_only || args.mail_only {
        let (section, from, to) = if args.power_tuning_only {
            (power_tuning(&args, &mut setup, spares, true).await?, "\n## 9. ", Some("\n## 10. "))
        } else if args.volume_only {
            (volume::sections(&setup, &args.binaries, args.volume).await?, "\n## 10. ", Some("\n## 12. "))
        } else {
            (mail::section(&setup, &args.binaries, args.plan.mail).await?, "\n## 12. ", None)
        };
        // The rest of the report stays as the last full run wrote it.
        let previous = std::fs::read_to_string(&args.out).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
        let before = previous.split(from).next().unwrap_or_default().trim_end();
        let after = to.and_then(|to| previous.find(to).map(|at| &previous[at..])).unwrap_or_default();
        std::fs::write(&args.out, format!("{before}\n\n{}\n{after}", section.trim_end()))
            .with_context(|| format!("writing {}", args.out.display()))?;
        progress(format!(
            "wrote {} in {:.1} min",
            args.out.display(),
            started.elapsed().as_secs_f64() / 60.0
        ));
        return Ok(());
    }
    let measured = measure_everything(&args, &mut setup, spares).await?;
    let report = report::write(&args, measured, started)?;
    std::fs::write(&args.out, &report).with_context(|| format!("writing {}", args.out.display()))?;
    progress(format!("wrote {} in {:.1} min", args.out.display(), started.elapsed().as_secs_f64() / 60.0));
    Ok(())
}

/// The concurrency per sandbox section 6 measures Managed Instances at.
const MANAGED_CONCURRENCY: [u32; 3] = [1, 4, 8];
/// Their functions' size: Managed Instances' smallest, 2 GB with one vCPU.
const MANAGED_MEMORY_MB: u32 = 2_048;

/// Sections 1 to 12, measured; [`report::write`] turns them into BENCHMARKS.md.
pub(crate) struct Measurements {
    pub(crate) cold: BTreeMap<Endpoint, (ColdStarts, Option<ColdStarts>)>,
    pub(crate) warm_results: BTreeMap<Endpoint, Warm>,
    pub(crate) argon2: Samples,
    pub(crate) argon2_evicted: Samples,
    pub(crate) memory: BTreeMap<Endpoint, (u64, Option<u64>)>,
    pub(crate) throughput: Vec<(Endpoint, usize, Load)>,
    pub(crate) signer_rates: Option<(Vec<f64>, Vec<f64>)>,
    /// Managed Instances: per N, login's and refresh's (requests/s, latencies, sandboxes).
    pub(crate) managed: Vec<(u32, Load, Load)>,
    pub(crate) memory_alternatives: String,
    pub(crate) tuning: String,
    pub(crate) volume: String,
    pub(crate) mail: String,
    pub(crate) zips: BTreeMap<&'static str, Option<u64>>,
    pub(crate) criterion: PathBuf,
}

/// Every measurement of a full run, in the order that keeps each one's conditions: cold starts
/// first, then warm series, the soak, load, power tuning and the volume sections.
async fn measure_everything(
    args: &Args,
    setup: &mut Setup,
    spares: Arc<Spares>,
) -> anyhow::Result<Measurements> {
    let plan = args.plan;
    let setup = &mut *setup;
    // The fixed user that logins use.
    let env_driver = Driver::new(
        emulator(setup, &args.binaries, Source::Environment, 1, None).await?,
        &setup.email,
        spares.clone(),
    )
    .await;
    env_driver.sign_up_bench_user().await?;
    let hello = Driver::new(hello_emulator(&args.binaries).await?, &setup.email, spares.clone()).await;

    // 1. Cold starts, configured from the environment and from Secrets Manager.
    progress(format!("cold starts ({} per function and source)", plan.cold_starts));
    let secrets_driver = Driver::new(
        emulator(setup, &args.binaries, Source::Secrets, 1, None).await?,
        &setup.email,
        spares.clone(),
    )
    .await;
    *secrets_driver.access_token.lock().await = env_driver.access_token.lock().await.clone();
    let mut cold = BTreeMap::new();
    for endpoint in Endpoint::FUNCTIONS {
        let from_env = cold_starts(&env_driver, endpoint, plan.cold_starts).await?;
        let from_secrets = cold_starts(&secrets_driver, endpoint, plan.cold_starts).await?;
        cold.insert(endpoint, (from_env, Some(from_secrets)));
    }
    cold.insert(Endpoint::Hello, (cold_starts(&hello, Endpoint::Hello, plan.cold_starts).await?, None));
    drop(secrets_driver);

    // 2, 3. Warm latency and database work, one sandbox per function.
    progress(format!("warm latency ({} invocations per endpoint)", plan.warm));
    let mut warm_results = BTreeMap::new();
    for endpoint in Endpoint::FUNCTIONS {
        env_driver.renew_access_token().await?;
        warm_results.insert(endpoint, warm(&env_driver, setup, endpoint, plan).await?);
    }
    warm_results.insert(Endpoint::Hello, warm(&hello, setup, Endpoint::Hello, plan).await?);

    // 4. argon2 alone.
    progress("argon2 verification alone");
    let runs = if args.quick { 5 } else { 50 };
    let argon2 = argon2_alone(runs, false).await?;
    let argon2_evicted = argon2_alone(runs, true).await?;

    // 7. Memory: every function's sandbox carried on to `memory` invocations, all at once.
    progress(format!("memory soak ({} invocations per function)", plan.memory));
    env_driver.renew_access_token().await?;
    let env_driver = Arc::new(env_driver);
    let hello = Arc::new(hello);
    let mut soaks = Vec::new();
    for endpoint in Endpoint::FUNCTIONS.into_iter().chain([Endpoint::Hello]) {
        let driver = if endpoint == Endpoint::Hello { hello.clone() } else { env_driver.clone() };
        soaks.push((endpoint, tokio::spawn(async move { soak(&driver, endpoint, plan.memory).await })));
    }
    let mut memory = BTreeMap::new();
    for (endpoint, task) in soaks {
        memory.insert(endpoint, task.await??);
    }

    // 6. Throughput: several sandboxes per function, concurrent clients.
    progress(format!("throughput ({} clients, {} sandboxes per function)", plan.clients, plan.sandboxes));
    let load_driver = Arc::new(
        Driver::new(
            emulator(setup, &args.binaries, Source::Environment, plan.sandboxes, None).await?,
            &setup.email,
            spares.clone(),
        )
        .await,
    );
    load_driver.renew_access_token().await?;
    let mut throughput = Vec::new();
    for (endpoint, clients) in [
        (Endpoint::Refresh, plan.clients),
        (Endpoint::Me, plan.clients),
        (Endpoint::Login, plan.sandboxes as usize),
    ] {
        // Warm every sandbox first, so the figure is the steady state.
        load(&load_driver, endpoint, clients, Duration::from_millis(500)).await?;
        throughput.push((endpoint, clients, load(&load_driver, endpoint, clients, plan.load).await?));
    }
    // Refresh with the signer that parses its key once against the one that parsed it per
    // signature, in turns, so that both see the same machine.
    let mut signer_rates: Option<(Vec<f64>, Vec<f64>)> = None;
    if let Some(dir) = signing::reparsing_binaries(&args.binaries)? {
        progress("refresh throughput, today's signer against the reparsing one");
        let reparsing = Arc::new(
            Driver::new(
                emulator(setup, &dir, Source::Environment, plan.sandboxes, None).await?,
                &setup.email,
                spares.clone(),
            )
            .await,
        );
        let (mut today, mut before) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            for (driver, rates) in [(&load_driver, &mut today), (&reparsing, &mut before)] {
                load(driver, Endpoint::Refresh, plan.clients, Duration::from_millis(500)).await?;
                rates.push(load(driver, Endpoint::Refresh, plan.clients, plan.load).await?.0);
            }
        }
        signer_rates = Some((today, before));
    }

    // 6, Managed Instances: one sandbox per function at 2,048 MB (their smallest size, one vCPU),
    // N invocations at once from N clients.
    progress("throughput per sandbox under Managed Instances (N = 1, 4, 8)");
    let mut managed = Vec::new();
    for n in MANAGED_CONCURRENCY {
        let driver = Arc::new(
            Driver::new(
                emulator_with(
                    setup,
                    &args.binaries,
                    Source::Environment,
                    1,
                    Some(MANAGED_MEMORY_MB),
                    |config| {
                        config.max_concurrency = n;
                    },
                )
                .await?,
                &setup.email,
                spares.clone(),
            )
            .await,
        );
        driver.log_in_as_many(2 * n as usize).await?;
        let mut rates = Vec::new();
        for endpoint in [Endpoint::Login, Endpoint::Refresh] {
            load(&driver, endpoint, n as usize, Duration::from_millis(500)).await?;
            rates.push(load(&driver, endpoint, n as usize, plan.load).await?);
        }
        let refresh = rates.pop().expect("refresh");
        managed.push((n, rates.pop().expect("login"), refresh));
    }

    progress("memory of the password work, each alternative in its own process");
    let memory_alternatives = memory::alternatives()?;

    // 9. Power tuning, each function at each size.
    let tuning = power_tuning(args, setup, spares.clone(), false).await?;

    // 10, 11. At volume, and the purge against a backlog.
    let volume = volume::sections(setup, &args.binaries, args.volume).await?;

    // 12. Forgot password's timing, for an address with an account and one without.
    let mail = mail::section(setup, &args.binaries, plan.mail).await?;

    // 5, 8: from `cargo bench` and `make package`, when they ran.
    let criterion = args.root.join("target/criterion");
    let zips: BTreeMap<&str, Option<u64>> =
        ["signup", "login", "refresh", "me", "logout", "health", "jwks", "migrate", "hello"]
            .into_iter()
            .map(|name| (name, file_size(&args.root.join(format!("target/lambda/{name}/bootstrap.zip")))))
            .collect();

    Ok(Measurements {
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
    })
}
