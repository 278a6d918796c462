//! `local-lambda`: serve a SAM template's functions locally, or invoke one function once.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use local_lambda::report::millis;
use local_lambda::{
    Emulator, EmulatorConfig, EnvOverrides, FrontDoor, IamCredentials, InvocationReport, InvocationStatus,
    InvokeOutcome, Log, RouteSpec, Template,
};

/// Serves a SAM template's functions locally the way Lambda and an API Gateway HTTP API would.
#[derive(Parser)]
#[command(name = "local-lambda")]
enum Command {
    /// Runs the template's HttpApi routes on http://HOST:PORT; Ctrl-C shuts every sandbox down
    /// through Lambda's shutdown phase.
    Serve {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        #[arg(long, short, default_value_t = 3000)]
        port: u16,
        /// At most this many sandboxes per function (Lambda's concurrency).
        #[arg(long)]
        max_sandboxes: Option<u32>,
        /// Shuts down a sandbox idle for this many seconds.
        #[arg(long)]
        idle_timeout: Option<u64>,
        /// An external extension to start in every sandbox (repeatable).
        #[arg(long = "extension")]
        extensions: Vec<PathBuf>,
        /// The front door whose events the routes deliver: http-api (payload 2.0), rest-api
        /// (payload 1.0, stage Prod), function-url or alb.
        #[arg(long, default_value = "http-api")]
        front_door: FrontDoor,
        /// Plays Lambda Managed Instances: one sandbox per function serving up to this many
        /// invocations at once (AWS_LAMBDA_MAX_CONCURRENCY), never frozen.
        #[arg(long, default_value_t = 1)]
        max_concurrency: u32,
        /// Serves DIR/<path>.html for a GET that matches no route, as a stand-in for the web app
        /// the mail links open (make run: dev/app).
        #[arg(long, value_name = "DIR")]
        static_dir: Option<PathBuf>,
        /// Plays the functions' `Schedule` events: each `rate(...)` expression invokes its
        /// function at that rate with a scheduled event, as EventBridge would (`cron(...)` is
        /// not played).
        #[arg(long)]
        schedules: bool,
        /// The access key that may sign (SigV4) requests to the AWS_IAM routes: a JSON file
        /// {"access_key_id": ..., "secret_access_key": ..., "user_arn": ... (optional)}. Without
        /// it, every request to those routes is refused 403.
        #[arg(long, value_name = "PATH")]
        iam_credentials: Option<PathBuf>,
    },
    /// Invokes FUNCTION (logical id or binary name) once with the event in EVENT_FILE ('-' for
    /// stdin) and prints the response payload, like `sam local invoke`.
    Invoke {
        function: String,
        event_file: String,
        #[command(flatten)]
        common: Common,
    },
    /// Lists the template's functions, one line each: binary, logical id, memory size in MB and
    /// routes, separated by tabs (the list scripts derive theirs from).
    Functions {
        #[arg(long, short, default_value = "template.yaml")]
        template: PathBuf,
    },
}

/// What both commands take.
#[derive(clap::Args)]
struct Common {
    #[arg(long, short, default_value = "template.yaml")]
    template: PathBuf,
    /// A template parameter's value, NAME=VALUE (repeatable), as a deploy's
    /// --parameter-overrides gives it: the functions' variables that `!Ref` it get the value.
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parameter)]
    parameters: Vec<(String, String)>,
    /// Environment overrides, as `sam local`'s --env-vars file.
    #[arg(long, short = 'n')]
    env_vars: Option<PathBuf>,
    /// The region the functions run in (`AWS_REGION`, and `AWS::Region` in the template).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The function binaries' folder (default: target/debug, or target/release with --release).
    #[arg(long, conflicts_with = "release")]
    bin_dir: Option<PathBuf>,
    #[arg(long)]
    release: bool,
    /// Starts every sandbox process as COMMAND (split at spaces) followed by the executable, e.g.
    /// 'qemu-aarch64-static -L /usr/aarch64-linux-gnu' runs arm64 binaries.
    #[arg(long, value_name = "COMMAND")]
    wrapper: Option<String>,
    /// Turns off Lambda's limits, which apply by default: each sandbox gets a CPU quota of
    /// MemorySize/1769 of one core and is killed beyond its MemorySize (Runtime.OutOfMemory),
    /// with cgroups (v1 or v2, as root). Without usable cgroups the emulator says so and runs
    /// the sandboxes unthrottled.
    #[arg(long, visible_alias = "no-cpu-share")]
    unthrottled: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    run(Command::parse()).await.unwrap_or_else(|error| {
        eprintln!("local-lambda: {error:#}");
        ExitCode::FAILURE
    })
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve {
            common,
            host,
            port,
            max_sandboxes,
            schedules,
            idle_timeout,
            extensions,
            front_door,
            max_concurrency,
            static_dir,
            iam_credentials,
        } => {
            let mut config = common.config(Log::Stdout)?;
            config.host = host;
            config.port = port;
            if let Some(max) = max_sandboxes {
                config.max_sandboxes_per_function = max;
            }
            config.idle_timeout = idle_timeout.map(Duration::from_secs);
            config.extensions = extensions;
            config.front_door = front_door;
            config.max_concurrency = max_concurrency;
            config.static_dir = static_dir;
            config.iam_credentials = iam_credentials.as_deref().map(IamCredentials::load).transpose()?;
            serve(config, schedules).await
        }
        Command::Invoke { function, event_file, common } => {
            invoke(common.config(Log::Stderr)?, &function, &event_file).await
        }
        Command::Functions { template } => {
            for function in Template::load(&template, "us-east-1")?.functions {
                let routes: Vec<String> = function.routes.iter().map(RouteSpec::key).collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    function.binary,
                    function.logical_id,
                    function.memory_size_mb,
                    routes.join(",")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `NAME=VALUE`, split at the first `=`.
fn parameter(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or("expected NAME=VALUE")?;
    Ok((name.to_owned(), value.to_owned()))
}

impl Common {
    fn config(&self, log: Log) -> anyhow::Result<EmulatorConfig> {
        let bin_dir = self.bin_dir.clone().unwrap_or_else(|| {
            let target =
                std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
            target.join(if self.release { "release" } else { "debug" })
        });
        let mut config = EmulatorConfig::new(self.template.clone(), bin_dir);
        config.parameters = self.parameters.iter().cloned().collect();
        config.region.clone_from(&self.region);
        if let Some(path) = &self.env_vars {
            config.env_overrides = EnvOverrides::load(path)?;
        }
        config.wrapper = self.wrapper.iter().flat_map(|w| w.split_whitespace()).map(str::to_owned).collect();
        config.sandbox_limits = !self.unthrottled;
        config.log = log;
        Ok(config)
    }
}

async fn serve(config: EmulatorConfig, schedules: bool) -> anyhow::Result<ExitCode> {
    let static_dir = config.static_dir.clone();
    let template = Template::load_with(&config.template, &config.region, &config.parameters)?;
    let region = config.region.clone();
    let emulator = std::sync::Arc::new(Emulator::start(config).await?);
    println!("local-lambda: serving {} routes on {}", emulator.routes().len(), emulator.base_url());
    for (route, function) in emulator.routes() {
        println!("  {route:<34} -> {function}");
    }
    if let Some(dir) = static_dir {
        println!("  {:<34} -> {}/<page>.html, when no route matches", "GET /<page>", dir.display());
    }
    let mut scheduled = Vec::new();
    for function in template.functions.iter().filter(|_| schedules) {
        for expression in &function.schedules {
            let Some(period) = local_lambda::schedule::rate(expression) else {
                println!("  {expression:<34} -> {} (not played: only rate(...) is)", function.logical_id);
                continue;
            };
            println!("  {expression:<34} -> {}", function.logical_id);
            scheduled.push(tokio::spawn(play(
                emulator.clone(),
                function.logical_id.clone(),
                region.clone(),
                period,
            )));
        }
    }
    println!("Ctrl-C stops every sandbox through the shutdown phase.");
    wait_for_stop_signal().await?;
    println!("local-lambda: shutting down");
    for task in scheduled {
        task.abort();
    }
    let reports = emulator.shutdown_all().await;
    let killed = reports.iter().filter(|r| !r.exited_by_itself()).count();
    println!("local-lambda: {} sandboxes shut down, {} of them had to be killed", reports.len(), killed);
    print_summary(&emulator.invocations());
    Ok(ExitCode::SUCCESS)
}

/// Invokes `function` every `period` with a scheduled event, as its rule would, and logs what
/// became of each invocation.
async fn play(emulator: std::sync::Arc<Emulator>, function: String, region: String, period: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let event =
            local_lambda::schedule::scheduled_event(&function, &region, time::OffsetDateTime::now_utc());
        match emulator.invoke(&function, Bytes::from(event.to_string())).await {
            Ok(InvokeOutcome::Response(_)) => {}
            outcome => eprintln!("local-lambda: the scheduled invocation of {function} failed: {outcome:?}"),
        }
    }
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// Cold-start init and warm durations per function, over the invocations that succeeded.
fn print_summary(invocations: &[InvocationReport]) {
    let mut functions: Vec<&str> = invocations.iter().map(|i| i.function.as_str()).collect();
    functions.sort_unstable();
    functions.dedup();
    let average = |values: &[f64]| {
        if values.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2} ms", values.iter().sum::<f64>() / values.len() as f64)
        }
    };
    for function in functions {
        let mine: Vec<&InvocationReport> = invocations.iter().filter(|i| i.function == function).collect();
        let ok: Vec<&InvocationReport> =
            mine.iter().copied().filter(|i| i.status == InvocationStatus::Success).collect();
        let inits: Vec<f64> = ok.iter().filter_map(|i| i.init_duration).map(millis).collect();
        let warm: Vec<f64> = ok.iter().filter(|i| !i.is_cold_start()).map(|i| millis(i.duration)).collect();
        println!(
            "  {function:<16} {} invocations ({} failed), {} cold starts (init avg {}), warm avg {}",
            mine.len(),
            mine.len() - ok.len(),
            inits.len(),
            average(&inits),
            average(&warm)
        );
    }
}

async fn invoke(mut config: EmulatorConfig, function: &str, event_file: &str) -> anyhow::Result<ExitCode> {
    let payload = if event_file == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        std::fs::read_to_string(event_file).with_context(|| format!("reading {event_file}"))?
    };
    serde_json::from_str::<serde_json::Value>(&payload)
        .with_context(|| format!("{event_file} is not JSON"))?;
    config.port = 0;
    let emulator = Emulator::start(config).await?;
    let outcome = emulator.invoke(function, Bytes::from(payload)).await?;
    emulator.shutdown_all().await;
    match outcome {
        InvokeOutcome::Response(body) => {
            println!("{}", String::from_utf8_lossy(&body));
            Ok(ExitCode::SUCCESS)
        }
        InvokeOutcome::FunctionError { body, .. } => {
            println!("{}", String::from_utf8_lossy(&body));
            Ok(ExitCode::FAILURE)
        }
        other => {
            eprintln!("local-lambda: the invocation failed: {other:?}");
            Ok(ExitCode::FAILURE)
        }
    }
}
