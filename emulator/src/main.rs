//! `local-lambda`: serve a SAM template's functions locally, invoke one function once, or make a
//! development signing key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use local_lambda::report::millis;
use local_lambda::{
    Emulator, EmulatorConfig, EnvOverrides, InvocationReport, InvocationStatus, InvokeOutcome, Log,
};
use secrecy::{ExposeSecret as _, SecretString};
use shared::tokens::{SigningAlgorithm, SigningKey, generate_private_key_pem, public_key_set};

const USAGE: &str = "\
usage:
  local-lambda serve  [--template FILE] [--host ADDR] [--port N] [--env-vars FILE]
                      [--bin-dir DIR | --release] [--max-sandboxes N] [--idle-timeout SECONDS]
                      [--extension PATH]... [--wrapper COMMAND] [--unthrottled]
  local-lambda invoke FUNCTION EVENT_FILE [--template FILE] [--env-vars FILE] [--bin-dir DIR | --release]
                      [--wrapper COMMAND] [--unthrottled]
  local-lambda keygen --out FILE [--algorithm RS256|ES256|EdDSA] [--kid KID --jwks-out FILE]

serve    runs the template's HttpApi routes on http://HOST:PORT (default 127.0.0.1:3000);
         Ctrl-C shuts every sandbox down through Lambda's shutdown phase.
invoke   invokes FUNCTION (logical id or binary name) once with the event in EVENT_FILE
         ('-' for stdin) and prints the response payload, like `sam local invoke`.
keygen   writes a PKCS#8 PEM private key to FILE unless FILE exists; with --jwks-out, also
         writes the key's public JWK set (kid KID, default dev-key-1), as JWT_PUBLIC_KEYS wants it.

--wrapper starts every sandbox process as COMMAND (split at spaces) followed by the executable,
         e.g. --wrapper 'qemu-aarch64-static -L /usr/aarch64-linux-gnu' runs arm64 binaries.
--unthrottled (or --no-cpu-share) turns off Lambda's limits, which apply by default: each
         sandbox gets a CPU quota of MemorySize/1769 of one core and is killed beyond its
         MemorySize (Runtime.OutOfMemory), with cgroups (v1 or v2, as root). Without usable
         cgroups the emulator says so and runs the sandboxes unthrottled.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("local-lambda: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let options = Options::parse(rest)?;
    match command.as_str() {
        "serve" => serve(options).await,
        "invoke" => invoke(options).await,
        "keygen" => keygen(&options),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

#[derive(Default)]
struct Options {
    positional: Vec<String>,
    template: Option<PathBuf>,
    host: Option<String>,
    port: Option<u16>,
    env_vars: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
    release: bool,
    max_sandboxes: Option<u32>,
    idle_timeout: Option<u64>,
    extensions: Vec<PathBuf>,
    wrapper: Vec<String>,
    unthrottled: bool,
    out: Option<PathBuf>,
    algorithm: Option<String>,
    kid: Option<String>,
    jwks_out: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> anyhow::Result<String> {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .with_context(|| format!("{flag} needs a value"))
            };
            match flag {
                "--template" | "-t" => options.template = Some(value()?.into()),
                "--host" => options.host = Some(value()?),
                "--port" | "-p" => options.port = Some(value()?.parse().context("--port")?),
                "--env-vars" | "-n" => options.env_vars = Some(value()?.into()),
                "--bin-dir" => options.bin_dir = Some(value()?.into()),
                "--release" => options.release = true,
                "--max-sandboxes" => {
                    options.max_sandboxes = Some(value()?.parse().context("--max-sandboxes")?)
                }
                "--idle-timeout" => options.idle_timeout = Some(value()?.parse().context("--idle-timeout")?),
                "--extension" => options.extensions.push(value()?.into()),
                "--wrapper" => options.wrapper = value()?.split_whitespace().map(str::to_owned).collect(),
                "--unthrottled" | "--no-cpu-share" => options.unthrottled = true,
                "--out" | "-o" => options.out = Some(value()?.into()),
                "--algorithm" => options.algorithm = Some(value()?),
                "--kid" => options.kid = Some(value()?),
                "--jwks-out" => options.jwks_out = Some(value()?.into()),
                flag if flag.starts_with('-') && flag != "-" => bail!("unknown option {flag}\n\n{USAGE}"),
                _ => options.positional.push(arg.clone()),
            }
        }
        Ok(options)
    }

    fn config(&self, log: Log) -> anyhow::Result<EmulatorConfig> {
        let bin_dir = self.bin_dir.clone().unwrap_or_else(|| {
            let target =
                std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
            target.join(if self.release { "release" } else { "debug" })
        });
        let template = self.template.clone().unwrap_or_else(|| PathBuf::from("template.yaml"));
        let mut config = EmulatorConfig::new(template, bin_dir);
        if let Some(path) = &self.env_vars {
            config.env_overrides = EnvOverrides::load(path)?;
        }
        if let Some(host) = &self.host {
            config.host = host.parse().with_context(|| format!("--host {host:?} is not an IP address"))?;
        }
        config.port = self.port.unwrap_or(3000);
        if let Some(max) = self.max_sandboxes {
            config.max_sandboxes_per_function = max;
        }
        config.idle_timeout = self.idle_timeout.map(Duration::from_secs);
        config.extensions = self.extensions.clone();
        config.wrapper = self.wrapper.clone();
        config.sandbox_limits = !self.unthrottled;
        config.log = log;
        Ok(config)
    }
}

async fn serve(options: Options) -> anyhow::Result<ExitCode> {
    let emulator = Emulator::start(options.config(Log::Stdout)?).await?;
    println!("local-lambda: serving {} routes on {}", emulator.routes().len(), emulator.base_url());
    for (route, function) in emulator.routes() {
        println!("  {route:<34} -> {function}");
    }
    println!("Ctrl-C stops every sandbox through the shutdown phase.");
    wait_for_stop_signal().await?;
    println!("local-lambda: shutting down");
    let reports = emulator.shutdown_all().await;
    let killed = reports.iter().filter(|r| !r.exited_by_itself()).count();
    println!("local-lambda: {} sandboxes shut down, {} of them had to be killed", reports.len(), killed);
    print_summary(&emulator.invocations());
    Ok(ExitCode::SUCCESS)
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

async fn invoke(options: Options) -> anyhow::Result<ExitCode> {
    let [function, event_file] = options.positional.as_slice() else {
        bail!("invoke needs FUNCTION and EVENT_FILE\n\n{USAGE}");
    };
    let payload = if event_file == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        std::fs::read_to_string(event_file).with_context(|| format!("reading {event_file}"))?
    };
    serde_json::from_str::<serde_json::Value>(&payload)
        .with_context(|| format!("{event_file} is not JSON"))?;
    let mut config = options.config(Log::Stderr)?;
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

fn keygen(options: &Options) -> anyhow::Result<ExitCode> {
    let out = options.out.as_deref().context("keygen needs --out FILE")?;
    let name = options.algorithm.as_deref().unwrap_or("RS256");
    let algorithm =
        SigningAlgorithm::parse(name).with_context(|| format!("{name:?} is not RS256, ES256 or EdDSA"))?;
    if out.exists() {
        eprintln!("local-lambda: {} exists; keeping it", out.display());
    } else {
        write_private(out, generate_private_key_pem(algorithm)?.expose_secret())?;
        eprintln!("local-lambda: wrote a new {name} private key to {}", out.display());
    }
    if let Some(jwks_out) = &options.jwks_out {
        let pem = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
        let kid = options.kid.as_deref().unwrap_or("dev-key-1");
        let key = SigningKey::from_pem(kid, algorithm, &SecretString::from(pem))
            .with_context(|| format!("{} (is it an {name} key?)", out.display()))?;
        // Public keys only: readable by anyone, rewritten on every run.
        std::fs::write(jwks_out, format!("{:#}\n", public_key_set(&[&key])))
            .with_context(|| format!("writing {}", jwks_out.display()))?;
        eprintln!("local-lambda: wrote the public key set of {kid} to {}", jwks_out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
