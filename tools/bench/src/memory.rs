//! What each part of a function's memory costs, measured apart (issue 12, section 7 of
//! BENCHMARKS.md): every OWASP-equivalent argon2id configuration, and zxcvbn's password check,
//! each in a fresh child process (`auth-bench --memory-probe VARIANT`) that reports how much
//! its peak RSS (`VmHWM`) grew and how long one run took.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::stats::{Samples, ms};

/// OWASP's Password Storage Cheat Sheet: argon2id configurations of equal strength (memory in
/// KiB, passes), one lane each.
const OWASP: [(u32, u32); 5] = [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5)];

const RUNS: usize = 9;

/// Every one of zxcvbn's l33t symbols, over and over: unbounded, zxcvbn tries hundreds of readings
/// of it, one per combination of their substitutions (`shared::domain::strength_checked`).
const L33T_WORST: &str = "4@8({[<3691!|70$5+%2";

fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).context("no VmHWM")?;
    line.split_whitespace().nth(1).context("VmHWM's value")?.parse().context("VmHWM")
}

/// The child's side: runs `variant` and prints `peak-growth-KiB median-ms`.
pub fn probe(variant: &str) -> anyhow::Result<()> {
    let before = peak_rss_kib()?;
    let mut times = Vec::new();
    match variant.split_once(':') {
        Some(("argon2", params)) => {
            let (memory, passes) = params.split_once(',').context("argon2:MEMORY_KIB,PASSES")?;
            let params = argon2::Params::new(memory.parse()?, passes.parse()?, 1, Some(32))
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            // One working memory for every run, as the functions keep theirs
            // (shared/src/passwords.rs): a fresh buffer per run would measure glibc's retention.
            let mut memory = vec![argon2::Block::default(); params.block_count()];
            let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let mut out = [0u8; 32];
            for _ in 0..RUNS {
                let started = Instant::now();
                hasher
                    .hash_password_into_with_memory(
                        b"correct horse battery staple",
                        b"a sixteen b salt",
                        &mut out,
                        &mut memory,
                    )
                    .map_err(|error| anyhow::anyhow!("{error}"))?;
                times.push(started.elapsed());
            }
        }
        None if variant == "zxcvbn" => {
            let email = shared::domain::Email::parse("probe@example.com")?;
            for round in 0..RUNS {
                let started = Instant::now();
                shared::domain::Password::parse(format!("correct horse battery staple {round}"), &email)
                    .map_err(|error| anyhow::anyhow!("{error:?}"))?;
                times.push(started.elapsed());
            }
        }
        None if variant == "zxcvbn-worst" || variant == "zxcvbn-worst-unbounded" => {
            let email = shared::domain::Email::parse("probe@example.com")?;
            let worst: String = L33T_WORST.chars().cycle().take(256).collect();
            for _ in 0..RUNS {
                let started = Instant::now();
                if variant == "zxcvbn-worst" {
                    // Strong or weak, the answer does not matter here: its cost does.
                    let _ = shared::domain::Password::parse(worst.clone(), &email);
                } else {
                    zxcvbn::zxcvbn(&worst, &[email.as_str()]);
                }
                times.push(started.elapsed());
            }
        }
        _ => bail!(
            "unknown probe {variant}: argon2:MEMORY_KIB,PASSES, zxcvbn, zxcvbn-worst or zxcvbn-worst-unbounded"
        ),
    }
    println!("{} {}", peak_rss_kib()? - before, Samples::new(times).median());
    Ok(())
}

fn run_probe(variant: &str) -> anyhow::Result<(f64, f64)> {
    let exe = std::env::current_exe().context("auth-bench's own path")?;
    let output = Command::new(exe).args(["--memory-probe", variant]).output()?;
    if !output.status.success() {
        bail!("probe {variant}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8(output.stdout)?;
    let mut fields = text.split_whitespace();
    let kib: f64 = fields.next().context("probe output")?.parse()?;
    let median: f64 = fields.next().context("probe output")?.parse()?;
    Ok((kib / 1024.0, median))
}

/// The table of the alternatives, for section 7.
pub fn alternatives() -> anyhow::Result<String> {
    let mut text = String::new();
    writeln!(
        text,
        "What the password work adds to a process's peak RSS, each measured in a fresh process \
         (`auth-bench --memory-probe`), with the median of {RUNS} runs. The argon2id rows are the \
         configurations OWASP's Password Storage Cheat Sheet gives as equal in strength; the \
         functions use m={}, t={}, p={} (`shared/src/passwords.rs`).\n",
        shared::passwords::MEMORY_KIB,
        shared::passwords::ITERATIONS,
        shared::passwords::PARALLELISM
    )?;
    writeln!(text, "| work | peak RSS added | time per run |")?;
    writeln!(text, "|---|---|---|")?;
    for (memory, passes) in OWASP {
        let (mib, median) = run_probe(&format!("argon2:{memory},{passes}"))?;
        let chosen = memory == shared::passwords::MEMORY_KIB && passes == shared::passwords::ITERATIONS;
        writeln!(
            text,
            "| argon2id m={memory} ({:.0} MiB), t={passes}{} | {mib:.1} MiB | {} |",
            f64::from(memory) / 1024.0,
            if chosen { " (the functions')" } else { "" },
            ms(median)
        )?;
    }
    let (mib, median) = run_probe("zxcvbn")?;
    writeln!(
        text,
        "| zxcvbn password check (signup; its dictionaries load on first use) | {mib:.1} MiB | {} |",
        ms(median)
    )?;
    let (mib, median) = run_probe("zxcvbn-worst")?;
    let (unbounded_mib, unbounded) = run_probe("zxcvbn-worst-unbounded")?;
    writeln!(
        text,
        "| zxcvbn on 256 characters cycling through its 20 l33t symbols, as signup reads them \
         | {mib:.1} MiB | {} |\n\
         | the same, all of it given to zxcvbn (which reads 100 characters) | {unbounded_mib:.1} MiB | {} |",
        ms(median),
        ms(unbounded)
    )?;
    Ok(text)
}
