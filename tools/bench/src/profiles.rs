//! The release profile's options at run time: every function built with each profile (by
//! `scripts/bench-profiles`, one target directory each), its binary's size, cold start and warm
//! latency, written to `--out` (`tools/bench/profiles.md`, which `make bench` includes in
//! section 8). The build cost of each profile is the script's part of the same page.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;

use crate::driver::{Driver, Serve, Setup, Source, emulator};
use crate::functions::Function;
use crate::measure::{Series, cold_starts, warm};
use crate::plan::{Args, progress};
use crate::report::mib;
use crate::stats::ms;

pub async fn compare(args: &Args, setup: &Setup, functions: &[Function]) -> anyhow::Result<()> {
    let started = Instant::now();
    let template = args.template();
    let series = Series { warm_up: args.plan.warm_up, measured: args.plan.warm };
    // Per profile, per function: (binary size, init median, warm function p50).
    let mut columns = Vec::new();
    for (label, dir) in &args.profiles {
        progress(format!("profile {label}: {}", dir.display()));
        let serve = Serve {
            template: &template,
            binaries: dir,
            source: Source::Environment,
            sandboxes: 1,
            memory_mb: None,
        };
        let driver = Driver::new(emulator(setup, serve, |_| {}).await?, setup.fixture.clone());
        let mut cells = Vec::new();
        for function in functions {
            // A build of some of the functions (the build cost needs only a few) leaves the rest out.
            if !dir.join(&function.binary).is_file() {
                cells.push(None);
                continue;
            }
            let cold = cold_starts(&driver, function, args.plan.cold_starts).await?;
            let warm = warm(&driver, None, function, series).await?;
            let size = std::fs::metadata(dir.join(&function.binary)).ok().map(|metadata| metadata.len());
            cells.push(Some((size, cold.init.median(), warm.function.median())));
        }
        driver.emulator.shutdown_all().await;
        columns.push((label, cells));
    }
    let mut report = String::new();
    writeln!(
        report,
        "Run time, every function built with each profile (x86_64, `scripts/bench-profiles` on {}, {:.0} s): \
         its stripped binary, the median of {} cold starts' init (environment configuration) and the \
         warm function p50 over {} invocations. *Total* sums the binaries; the medians' row is the \
         median over the functions.\n",
        time::OffsetDateTime::now_utc().date(),
        started.elapsed().as_secs_f64(),
        args.plan.cold_starts,
        args.plan.warm
    )?;
    let labels: Vec<&str> = columns.iter().map(|(label, _)| label.as_str()).collect();
    writeln!(
        report,
        "| function | {} |",
        labels.iter().map(|l| format!("{l}: binary, init, warm p50")).collect::<Vec<_>>().join(" | ")
    )?;
    writeln!(report, "|---|{}", "---|".repeat(labels.len()))?;
    for (index, function) in functions.iter().enumerate() {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, cells)| match cells[index] {
                Some((size, init, p50)) => {
                    format!("{}, {}, {}", size.map_or("–".to_owned(), mib), ms(init), ms(p50))
                }
                None => "not built".to_owned(),
            })
            .collect();
        writeln!(report, "| {} | {} |", function.binary, cells.join(" | "))?;
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let totals: Vec<String> = columns
        .iter()
        .map(|(_, cells)| {
            let built: Vec<_> = cells.iter().flatten().collect();
            let total: u64 = built.iter().filter_map(|(size, _, _)| *size).sum();
            format!(
                "{} for {} binaries, {}, {}",
                mib(total),
                built.len(),
                ms(median(built.iter().map(|c| c.1).collect())),
                ms(median(built.iter().map(|c| c.2).collect()))
            )
        })
        .collect();
    writeln!(report, "| *total; medians over the functions built* | {} |", totals.join(" | "))?;
    std::fs::write(&args.out, report).with_context(|| format!("writing {}", args.out.display()))?;
    progress(format!("wrote {}", args.out.display()));
    Ok(())
}
