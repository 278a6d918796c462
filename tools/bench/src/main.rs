//! `make bench`: the release function binaries through the local emulator, against a local
//! Postgres (behind a round-trip-counting proxy) and a local Secrets Manager, each figure beside
//! its floor, written to `BENCHMARKS.md`. Every function of template.yaml is measured in every
//! per-function section, each called with its sample event (`functions`).
//!
//! Usage: `auth-bench --help`.
//! Needs DATABASE_URL (a server with pg_stat_statements loaded) and
//! AWS_ENDPOINT_URL_SECRETS_MANAGER: `make bench` runs it under scripts/with-postgres and
//! scripts/with-moto.

mod driver;
mod functions;
mod mail;
mod measure;
mod memory;
mod plan;
mod profiles;
mod proxy;
mod report;
mod run;
mod stats;
mod tuning;
mod volume;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use crate::plan::{Args, Plan, progress};

/// `auth-bench`: measures the functions through the emulator and writes BENCHMARKS.md (run it
/// through `make bench`, which builds and packages first).
#[derive(Parser)]
#[command(name = "auth-bench")]
struct Cli {
    /// A smoke run: fewer samples, 10,000 users at volume.
    #[arg(long)]
    quick: bool,
    /// Only section 9 (power tuning), replacing it in --out.
    #[arg(long)]
    power_tuning: bool,
    /// Only sections 10 and 11 (at volume, the purge), replacing them in --out.
    #[arg(long)]
    volume: bool,
    /// Only section 12 (what the timing of an anonymous request tells a stranger), replacing it
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
    /// Only compare builds of the functions made with other release profiles
    /// (scripts/bench-profiles), LABEL=DIR each.
    #[arg(long, value_name = "LABEL=DIR", num_args = 1..)]
    profiles: Vec<String>,
    /// Measure one password-work variant in this process and print it (section 7's probe).
    #[arg(long, value_name = "VARIANT")]
    memory_probe: Option<String>,
}

fn args(cli: Cli) -> anyhow::Result<Args> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let (mut plan, mut volume) =
        if cli.quick { (Plan::QUICK, plan::VolumePlan::QUICK) } else { (Plan::FULL, plan::VolumePlan::FULL) };
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(variant) = &cli.memory_probe {
        return memory::probe(variant);
    }
    let args = args(cli)?;
    let started = Instant::now();
    let mut setup = driver::setup().await?;
    let functions = functions::load(&args.template(), &args.root)?;
    if !args.profiles.is_empty() {
        return profiles::compare(&args, &setup, &functions).await;
    }
    if args.power_tuning_only || args.volume_only || args.mail_only {
        let (section, from, to) = if args.power_tuning_only {
            (run::power_tuning(&args, &setup, &functions).await?, "\n## 9. ", Some("\n## 10. "))
        } else if args.volume_only {
            (volume::sections(&setup, &args, &functions).await?, "\n## 10. ", Some("\n## 12. "))
        } else {
            (mail::section(&setup, &args, &functions).await?, "\n## 12. ", None)
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
    let measured = run::measure_everything(&args, &mut setup, &functions).await?;
    let report = report::write(&args, &functions, measured, started)?;
    std::fs::write(&args.out, &report).with_context(|| format!("writing {}", args.out.display()))?;
    progress(format!("wrote {} in {:.1} min", args.out.display(), started.elapsed().as_secs_f64() / 60.0));
    Ok(())
}
