//! What one run of the bench measures ([`Plan`], [`Args`]) and how it reports its progress.

use std::path::PathBuf;
use std::time::Duration;

/// What one run measures; `--quick` is a smoke run of the whole pipeline.
#[derive(Clone, Copy)]
pub struct Plan {
    pub cold_starts: usize,
    pub warm_up: usize,
    pub warm: usize,
    pub memory: usize,
    pub load: Duration,
    pub clients: usize,
    pub sandboxes: u32,
    /// Power tuning, per function and size: cold starts, warm-up and warm invocations.
    pub tuning: (usize, usize, usize),
    /// Section 12: requests for known addresses, and as many for unknown ones, per function.
    pub mail: usize,
}

impl Plan {
    pub const FULL: Self = Self {
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
    pub const QUICK: Self = Self {
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

/// What `auth-bench` was asked to do.
pub struct Args {
    pub plan: Plan,
    pub quick: bool,
    /// `--power-tuning`: only section 9, replacing it in `--out`.
    pub power_tuning_only: bool,
    /// `--volume`: only sections 10 and 11, replacing them in `--out`.
    pub volume_only: bool,
    /// `--mail`: only section 12, replacing it in `--out`.
    pub mail_only: bool,
    pub volume: VolumePlan,
    /// `--profiles LABEL=DIR ...`: only compare builds made with other profiles.
    pub profiles: Vec<(String, PathBuf)>,
    pub out: PathBuf,
    pub binaries: PathBuf,
    /// The repository: template.yaml, events/, target/.
    pub root: PathBuf,
}

impl Args {
    /// The project's template.
    pub fn template(&self) -> PathBuf {
        self.root.join("template.yaml")
    }

    /// The floor's template, the smallest lambda_http function (`tools/bench/hello`).
    pub fn hello_template(&self) -> PathBuf {
        self.root.join("tools/bench/hello/template.yaml")
    }
}

pub fn progress(message: impl std::fmt::Display) {
    eprintln!("[bench] {message}");
}

/// What the volume sections measure.
#[derive(Clone, Copy)]
pub struct VolumePlan {
    pub users: i64,
    /// Requests per path and database.
    pub samples: usize,
    /// Expired refresh tokens waiting for the purge.
    pub backlog: i64,
    /// Scheduled runs measured against that backlog.
    pub purge_runs: usize,
}

impl VolumePlan {
    pub const FULL: Self = Self { users: 1_000_000, samples: 200, backlog: 1_000_000, purge_runs: 10 };
    pub const QUICK: Self = Self { users: 10_000, samples: 20, backlog: 10_000, purge_runs: 3 };
}
