//! Power tuning: each function at Lambda's usual memory sizes, each sandbox held to the CPU share
//! of its size (the emulator's cgroups), priced as Lambda bills it; and the size to deploy.

use std::fmt::Write as _;

use crate::stats::{Samples, ms};

/// The sizes measured, in MB: 1,769 MB buys one vCPU, 3,008 MB 1.7.
pub const SIZES: [u32; 6] = [128, 256, 512, 1024, 1769, 3008];
/// arm64 duration price per GB-second, us-east-1 (first pricing tier), AWS list price as of
/// 2026-11.
pub const PRICE_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// Request price per million requests, the same region and date.
pub const PRICE_PER_MILLION_REQUESTS: f64 = 0.20;
/// An HTTP API's price per million requests (the first 300 million a month), the same region
/// and date: what every request of a route pays before its function does.
pub const HTTP_API_PRICE_PER_MILLION: f64 = 1.00;
/// CloudWatch Logs' ingestion price per GB (Lambda's logs, the first 10 TB a month), the same
/// region and date. Storage (per GB-month, compressed) is left out: it depends on retention.
pub const LOG_INGESTION_PRICE_PER_GB: f64 = 0.50;
/// The size chosen is the cheapest whose warm p50 and p99 are within this factor of the
/// fastest p50 and p99.
pub const WITHIN: f64 = 1.5;
/// ... or when it is at most this many milliseconds slower.
pub const SLACK_MS: f64 = 1.0;
/// Memory that buys one vCPU.
const ONE_VCPU_MB: f64 = 1769.0;

/// One function at one size.
pub struct Measurement {
    pub memory_mb: u32,
    /// Spawn to the runtime's first `/next`, over the cold starts.
    pub init: Samples,
    /// The first invocation of each cold sandbox.
    pub first: Samples,
    /// Warm invocations (the REPORT line's duration: what Lambda bills).
    pub warm: Samples,
    /// What a warm invocation wrote to its log, in bytes: the function's lines and the platform's
    /// (`START`, `END`, `REPORT`).
    pub log_bytes: f64,
    /// Whether an API route serves the function (its requests pay the API's price).
    pub routed: bool,
}

impl Measurement {
    /// Dollars per million warm requests: each billed in whole milliseconds (rounded up) at
    /// the size's GB-seconds, plus the request price.
    pub fn cost_per_million(&self) -> f64 {
        let billed_ms = self.warm.values().iter().map(|ms| ms.ceil()).sum::<f64>() / self.warm.len() as f64;
        let gb_seconds = billed_ms / 1000.0 * f64::from(self.memory_mb) / 1024.0;
        gb_seconds * PRICE_PER_GB_SECOND * 1e6 + PRICE_PER_MILLION_REQUESTS
    }

    /// Dollars per million requests to the API in front, when a route serves the function.
    pub fn api_per_million(&self) -> f64 {
        if self.routed { HTTP_API_PRICE_PER_MILLION } else { 0.0 }
    }

    /// Dollars per million warm requests for ingesting what they log.
    pub fn logs_per_million(&self) -> f64 {
        self.log_bytes * 1e6 / 1e9 * LOG_INGESTION_PRICE_PER_GB
    }
}

/// The cheapest size whose warm p50 and p99 are within [`WITHIN`] of the fastest p50 and p99,
/// or within [`SLACK_MS`] of them: for a function that answers in a millisecond, 1.5x is
/// noise, and the choice would move between runs for a difference nobody waits for.
pub fn choose(sizes: &[Measurement]) -> Option<&Measurement> {
    let fastest = sizes.iter().map(|m| m.warm.median()).min_by(f64::total_cmp)?;
    let fastest_p99 = sizes.iter().map(|m| m.warm.percentile(0.99)).min_by(f64::total_cmp)?;
    let near = |value: f64, best: f64| value <= (WITHIN * best).max(best + SLACK_MS);
    sizes
        .iter()
        .filter(|m| near(m.warm.median(), fastest) && near(m.warm.percentile(0.99), fastest_p99))
        .min_by(|a, b| a.cost_per_million().total_cmp(&b.cost_per_million()))
}

/// What a request that is CPU all through would take at `memory_mb`: the function's fastest
/// p50 (at a size with a whole core or more) stretched by the CPU share below one core. A
/// series of back-to-back requests past the share's first burst should take at least this
/// much; a p50 well below it measured the burst, not the size.
fn all_cpu_estimate(sizes: &[Measurement], memory_mb: u32) -> f64 {
    let unthrottled = sizes
        .iter()
        .filter(|m| f64::from(m.memory_mb) >= ONE_VCPU_MB)
        .map(|m| m.warm.median())
        .min_by(f64::total_cmp)
        .unwrap_or(f64::NAN);
    unthrottled * (ONE_VCPU_MB / f64::from(memory_mb)).max(1.0)
}

/// The report's section: every size of every function, then the choice per function.
pub fn section(
    functions: &[(String, Vec<Measurement>)],
    cold_starts: usize,
    warm_up: usize,
    warm: usize,
    minutes: f64,
) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "## 9. Power tuning\n")?;
    writeln!(
        out,
        "Each function at {} MB, its sandbox held to Lambda's CPU share of that size (a cgroup CPU \
         quota of MemorySize/1769 of one core, so 3008 MB gets 1.7 cores of this machine's 2) and to \
         its memory, as `make run` does. Per size: {cold_starts} cold start(s) (*init*: spawn to the \
         runtime's first `/next`; *first*: the first invocation), then {warm} warm invocations \
         through one sandbox after {warm_up} to warm it, back to back, so that each one after the \
         first meets a CPU quota the one before spent (*warm*: the REPORT line's duration, what \
         Lambda bills): the steady state of a busy sandbox, not a burst. Medians, mean and p99 of \
         the warm series; *all-CPU*: what a request that is CPU all through would take at the \
         size (the function's p50 with a whole core, times 1769/MB below it), the floor a \
         CPU-bound function's p50 should not beat. *$ / 1M*: a million warm requests at the \
         series' billed durations (whole milliseconds, rounded up), arm64 in us-east-1 at AWS list \
         prices as of 2026-11: ${PRICE_PER_GB_SECOND} per GB-second plus ${PRICE_PER_MILLION_REQUESTS:.2} \
         per million requests; cold starts are left out (their init is billed too, but rarely). \
         This run: {minutes:.1} min.\n",
        SIZES.map(|s| s.to_string()).join(", "),
    )?;
    writeln!(
        out,
        "| function | MB | init | first invocation | warm p50 | warm mean | warm p99 | all-CPU | $ / 1M requests |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
    for (name, sizes) in functions {
        let chosen = choose(sizes).map(|m| m.memory_mb);
        for m in sizes {
            let mark = if Some(m.memory_mb) == chosen { " **chosen**" } else { "" };
            writeln!(
                out,
                "| {name} | {}{mark} | {} | {} | {} | {} | {} | {} | {:.2} |",
                m.memory_mb,
                ms(m.init.median()),
                ms(m.first.median()),
                ms(m.warm.median()),
                ms(m.warm.mean()),
                ms(m.warm.percentile(0.99)),
                ms(all_cpu_estimate(sizes, m.memory_mb)),
                m.cost_per_million(),
            )?;
        }
    }
    writeln!(
        out,
        "\nThe size chosen per function (template.yaml's `MemorySize`, which `scripts/check-template` \
         holds to this table): the cheapest whose warm p50 and p99 are within {WITHIN}x (or {SLACK_MS} ms) of the \
         function's fastest p50 and p99. *Log bytes*: what one warm request wrote to its log (the \
         function's JSON lines, and the platform's `START`, `END` and `REPORT` lines as the emulator \
         writes them, in Lambda's text format), ingested at ${LOG_INGESTION_PRICE_PER_GB:.2} per GB \
         (storage left out: it depends on retention). *All in*: the function's $ / 1M, an HTTP \
         API's ${HTTP_API_PRICE_PER_MILLION:.2} per million requests when a route serves it, and the \
         logs' ingestion.\n"
    )?;
    writeln!(
        out,
        "| function | MemorySize | warm p50 | warm p99 | fastest p50 (at MB) | $ / 1M requests | log bytes | all in | $ / 1M at 128 MB |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
    for (name, sizes) in functions {
        let (Some(chosen), Some(fastest), Some(smallest)) = (
            choose(sizes),
            sizes.iter().min_by(|a, b| a.warm.median().total_cmp(&b.warm.median())),
            sizes.first(),
        ) else {
            continue;
        };
        writeln!(
            out,
            "| {name} | {} | {} | {} | {} ({}) | {:.2} | {:.0} | {:.2} | {:.2} |",
            chosen.memory_mb,
            ms(chosen.warm.median()),
            ms(chosen.warm.percentile(0.99)),
            ms(fastest.warm.median()),
            fastest.memory_mb,
            chosen.cost_per_million(),
            chosen.log_bytes,
            chosen.cost_per_million() + chosen.api_per_million() + chosen.logs_per_million(),
            smallest.cost_per_million(),
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(memory_mb: u32, warm_ms: f64) -> Measurement {
        let one = || Samples::from_millis([1.0]);
        Measurement {
            memory_mb,
            init: one(),
            first: one(),
            warm: Samples::from_millis([warm_ms; 3]),
            log_bytes: 0.0,
            routed: true,
        }
    }

    #[test]
    fn a_request_logging_a_kilobyte_pays_half_a_dollar_per_million_kilobytes_ingested() {
        let logged = Measurement { log_bytes: 1000.0, ..at(1024, 10.0) };

        // 10^6 requests x 1,000 bytes = 1 GB.
        assert!((logged.logs_per_million() - LOG_INGESTION_PRICE_PER_GB).abs() < 1e-12);
    }

    #[test]
    fn a_warm_request_costs_its_billed_gb_seconds_plus_the_request_price() {
        // 100 ms at 1024 MB: 0.1 GB-s.
        let cost = at(1024, 99.2).cost_per_million();

        assert!((cost - (0.1 * PRICE_PER_GB_SECOND * 1e6 + 0.20)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn the_cheapest_size_within_one_and_a_half_times_the_fastest_is_chosen() {
        // CPU-bound: time halves as memory doubles (same cost) until one core; then flat.
        let sizes =
            [at(128, 800.0), at(256, 400.0), at(512, 200.0), at(1024, 100.0), at(1769, 58.0), at(3008, 57.0)];

        let chosen = choose(&sizes).unwrap();

        // 1024 MB (100 ms) is beyond 1.5 x 57 ms; 1769 MB is within, and cheaper than 3008.
        assert_eq!(chosen.memory_mb, 1769);
    }

    #[test]
    fn for_a_sub_millisecond_function_a_millisecond_is_within_reach() {
        // 0.4 ms at best; 128 MB is 0.9 ms (2.2x, but half a millisecond): the cheapest wins.
        let sizes = [at(128, 0.9), at(256, 0.6), at(512, 0.45), at(1024, 0.4)];
        assert_eq!(choose(&sizes).unwrap().memory_mb, 128);
        // A function of 10 ms is held to 1.5x: 128 MB at 16 ms is out.
        let slower = [at(128, 16.0), at(256, 12.0), at(1024, 10.0)];
        assert_eq!(choose(&slower).unwrap().memory_mb, 256);
    }

    #[test]
    fn a_size_whose_p99_is_far_from_the_fastest_p99_is_not_chosen() {
        let steady = |memory_mb: u32, p50: f64, p99: f64| Measurement {
            memory_mb,
            init: Samples::from_millis([1.0]),
            first: Samples::from_millis([1.0]),
            warm: Samples::from_millis([p50, p50, p50, p99]),
            log_bytes: 0.0,
            routed: true,
        };
        // 512 MB: a p50 within 1.5x, but every fourth request waits out the quota.
        let sizes = [steady(512, 30.0, 120.0), steady(1024, 25.0, 40.0), steady(1769, 21.0, 30.0)];

        assert_eq!(choose(&sizes).unwrap().memory_mb, 1024);
    }

    #[test]
    fn the_all_cpu_estimate_stretches_the_one_core_p50_by_the_share() {
        let sizes = [at(512, 60.0), at(1769, 20.0), at(3008, 19.0)];

        assert!((all_cpu_estimate(&sizes, 512) - 19.0 * 1769.0 / 512.0).abs() < 1e-9);
        assert_eq!(all_cpu_estimate(&sizes, 3008), 19.0);
    }

    #[test]
    fn a_function_as_fast_at_every_size_gets_the_smallest() {
        let sizes = [at(128, 1.2), at(256, 1.0), at(512, 1.0)];

        assert_eq!(choose(&sizes).unwrap().memory_mb, 128);
    }
}
