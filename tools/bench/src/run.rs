//! A full run's measurements, in the order that keeps each one's conditions (cold starts first,
//! then warm series, the soak, load, power tuning and the volume sections), and section 9 alone.

use std::path::PathBuf;
use std::sync::Arc;

use crate::driver::{Driver, Serve, Setup, Source, emulator};
use crate::functions::{self, Function};
use crate::measure::{ColdStarts, Load, Series, Warm, argon2_alone, cold_starts, load, soak, warm};
use crate::plan::{Args, progress};
use crate::stats::{Samples, ms};
use crate::{mail, memory, tuning, volume};

/// The concurrency per sandbox section 6 measures Managed Instances at.
pub const MANAGED_CONCURRENCY: [u32; 3] = [1, 4, 8];
/// Their functions' size: Managed Instances' smallest, 2 GB with one vCPU.
pub const MANAGED_MEMORY_MB: u32 = 2_048;

/// Sections 1 to 12, measured; [`report::write`](crate::report::write) turns them into
/// BENCHMARKS.md. Per-function results are in the template's order, the floor last.
pub struct Measurements {
    /// Per function: from the environment, and from Secrets Manager (not for the floor).
    pub cold: Vec<(Function, ColdStarts, Option<ColdStarts>)>,
    pub warm: Vec<(Function, Warm)>,
    pub argon2: Samples,
    pub argon2_evicted: Samples,
    pub login_parts: crate::driver::LoginParts,
    /// Per function: (invocations, peak RSS in MB) after the soak.
    pub memory: Vec<(Function, (u64, Option<u64>))>,
    /// Per function: clients, and what they got.
    pub throughput: Vec<(Function, usize, Load)>,
    /// Per function behind a route: what N clients got from one sandbox serving N at once.
    pub managed: Vec<(Function, Vec<(u32, Load)>)>,
    pub memory_alternatives: String,
    pub tuning: String,
    pub volume: String,
    pub mail: String,
    /// Per binary: the arm64 zip's size, when `make package` made it.
    pub zips: Vec<(String, Option<u64>)>,
    pub criterion: PathBuf,
}

pub async fn measure_everything(
    args: &Args,
    setup: &mut Setup,
    functions: &[Function],
) -> anyhow::Result<Measurements> {
    let plan = args.plan;
    let template = args.template();
    let serve = |source, sandboxes, memory_mb| Serve {
        template: &template,
        binaries: &args.binaries,
        source,
        sandboxes,
        memory_mb,
    };
    let hello_template = args.hello_template();
    let floor = functions::load(&hello_template, &args.root.join("tools/bench/hello"))?;
    let hello = Arc::new(Driver::new(
        emulator(
            setup,
            Serve {
                template: &hello_template,
                binaries: &args.binaries,
                source: Source::Environment,
                sandboxes: 1,
                memory_mb: None,
            },
            |_| {},
        )
        .await?,
        setup.fixture.clone(),
    ));
    let env_driver = Arc::new(Driver::new(
        emulator(setup, serve(Source::Environment, 1, None), |_| {}).await?,
        setup.fixture.clone(),
    ));

    // 1. Cold starts, configured from the environment and from Secrets Manager.
    progress(format!("cold starts ({} per function and source)", plan.cold_starts));
    let secrets_driver =
        Driver::new(emulator(setup, serve(Source::Secrets, 1, None), |_| {}).await?, setup.fixture.clone());
    let mut cold = Vec::new();
    for function in functions {
        let from_env = cold_starts(&env_driver, function, plan.cold_starts).await?;
        let from_secrets = cold_starts(&secrets_driver, function, plan.cold_starts).await?;
        cold.push((function.clone(), from_env, Some(from_secrets)));
    }
    for function in &floor {
        cold.push((function.clone(), cold_starts(&hello, function, plan.cold_starts).await?, None));
    }
    drop(secrets_driver);

    // 2, 3. Warm latency and database work, one sandbox per function.
    progress(format!("warm latency ({} invocations per function)", plan.warm));
    let series = Series { warm_up: plan.warm_up, measured: plan.warm };
    let mut warm_results = Vec::new();
    for function in functions {
        warm_results.push((function.clone(), warm(&env_driver, Some(&mut *setup), function, series).await?));
    }
    for function in &floor {
        warm_results.push((function.clone(), warm(&hello, None, function, series).await?));
    }

    // 4. argon2 alone.
    progress("argon2 verification alone");
    let runs = if args.quick { 5 } else { 50 };
    let argon2 = argon2_alone(runs, false).await?;
    let argon2_evicted = argon2_alone(runs, true).await?;
    progress("login, part by part");
    let login_parts = setup.login_parts(runs).await?;

    // 7. Memory: every function's sandbox carried on to `memory` invocations, all at once.
    progress(format!("memory soak ({} invocations per function)", plan.memory));
    let mut soaks = Vec::new();
    for (function, driver) in
        functions.iter().map(|f| (f, &env_driver)).chain(floor.iter().map(|f| (f, &hello)))
    {
        let (function, driver) = (function.clone(), driver.clone());
        soaks.push(tokio::spawn(async move {
            let result = soak(&driver, &function, plan.memory).await;
            result.map(|soaked| (function, soaked))
        }));
    }
    let mut memory = Vec::new();
    for task in soaks {
        memory.push(task.await??);
    }

    // 6. Throughput: several sandboxes per function, concurrent clients; a function doing
    // password work gets one client per sandbox (it is bound by argon2 on the cores).
    progress(format!("throughput ({} clients, {} sandboxes per function)", plan.clients, plan.sandboxes));
    let load_driver = Arc::new(Driver::new(
        emulator(setup, serve(Source::Environment, plan.sandboxes, None), |_| {}).await?,
        setup.fixture.clone(),
    ));
    let mut throughput = Vec::new();
    for function in functions {
        let clients = if function.password_work { plan.sandboxes as usize } else { plan.clients };
        throughput.push((function.clone(), clients, load(&load_driver, function, clients, plan.load).await?));
    }
    drop(load_driver);

    // 6, Managed Instances: one sandbox per function at 2,048 MB (their smallest size, one
    // vCPU), N invocations at once from N clients, for every function behind a route.
    progress("throughput per sandbox under Managed Instances (N = 1, 4, 8)");
    let routed: Vec<&Function> =
        functions.iter().filter(|f| f.request(&f.sample).ok().flatten().is_some()).collect();
    let mut managed: Vec<(Function, Vec<(u32, Load)>)> =
        routed.iter().map(|f| ((*f).clone(), Vec::new())).collect();
    for n in MANAGED_CONCURRENCY {
        let driver = Arc::new(Driver::new(
            emulator(setup, serve(Source::Environment, 1, Some(MANAGED_MEMORY_MB)), |config| {
                config.max_concurrency = n;
            })
            .await?,
            setup.fixture.clone(),
        ));
        for (function, rates) in &mut managed {
            rates.push((n, load(&driver, function, n as usize, plan.load / 2).await?));
        }
    }

    progress("memory of the password work, each alternative in its own process");
    let memory_alternatives = memory::alternatives()?;

    // 9. Power tuning, each function at each size.
    let tuning = power_tuning(args, setup, functions).await?;

    // 10, 11. At volume, and the purge against a backlog.
    let volume = volume::sections(setup, args, functions).await?;

    // 12. What an anonymous request's timing tells a stranger about an address.
    let mail = mail::section(setup, args, functions).await?;

    // 5, 8: from `cargo bench` and `make package`, when they ran.
    let criterion = args.root.join("target/criterion");
    let zips = functions
        .iter()
        .chain(&floor)
        .map(|function| {
            let zip = args.root.join(format!("target/lambda/{}/bootstrap.zip", function.binary));
            (function.binary.clone(), std::fs::metadata(zip).ok().map(|metadata| metadata.len()))
        })
        .collect();

    Ok(Measurements {
        cold,
        warm: warm_results,
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
    })
}

/// Section 9: every function at every size in [`tuning::SIZES`], under the CPU share and memory
/// limit of that size.
pub async fn power_tuning(args: &Args, setup: &Setup, functions: &[Function]) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    let (cold, warm_up, warm_count) = args.plan.tuning;
    let series = Series { warm_up, measured: warm_count };
    let template = args.template();
    let mut results: Vec<(String, Vec<tuning::Measurement>)> =
        functions.iter().map(|f| (f.binary.clone(), Vec::new())).collect();
    for memory_mb in tuning::SIZES {
        progress(format!("power tuning at {memory_mb} MB ({cold} cold, {warm_count} warm per function)"));
        let serve = Serve {
            template: &template,
            binaries: &args.binaries,
            source: Source::Environment,
            sandboxes: 1,
            memory_mb: Some(memory_mb),
        };
        let log = local_lambda::Log::counted();
        let driver = Driver::new(
            emulator(setup, serve, |config| config.log = log.clone()).await?,
            setup.fixture.clone(),
        );
        if !driver.emulator.limits_sandboxes() {
            return Ok(
                "## 9. Power tuning\n\nNot measured: the emulator could not apply the sandbox limits \
                       here (it needs root and cgroups; see its first line).\n"
                    .to_owned(),
            );
        }
        for (function, (_, sizes)) in functions.iter().zip(results.iter_mut()) {
            let cold = cold_starts(&driver, function, cold).await?;
            let before = log.volume(&function.logical_id);
            let warm = warm(&driver, None, function, series).await?;
            let after = log.volume(&function.logical_id);
            sizes.push(tuning::Measurement {
                memory_mb,
                init: cold.init,
                first: cold.first,
                warm: warm.function,
                log_bytes: (after.bytes - before.bytes) as f64
                    / (after.reports - before.reports).max(1) as f64,
                routed: function.routed,
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
