//! What every scenario command shares: load the files (warnings to stderr), build the cluster,
//! run it in virtual time (with a progress bar on a terminal), and errors with exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use podnet::{Cluster, Duration, Instant};
use podnet_scenario::{Index, Scenario};

/// Arguments of every command that runs a scenario.
#[derive(Args, Debug, Clone)]
pub struct ScenarioArgs {
    /// Scenario files: YAML streams of Kubernetes objects plus Cluster, Traffic and Fault.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Overrides the Cluster's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Virtual time the run may last at most (Go duration: 500ms, 30s, 1m30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub until: Duration,
    /// No warnings, no progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A Go-style duration argument.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    podnet_scenario::units::parse_duration(s).map_err(|e| e.to_string())
}

/// A failure with its exit code: 2 for bad input, 1 for a failed expectation.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<podnet_scenario::Error> for Failure {
    fn from(e: podnet_scenario::Error) -> Self {
        Failure::input(e.to_string())
    }
}

/// A loaded, built and (once [`Loaded::run`] ran) finished scenario.
pub struct Loaded {
    pub scenario: Scenario,
    pub cluster: Cluster,
    pub index: Index,
    pub finished: bool,
}

/// Loads and builds the scenario of `args`.
pub fn load(args: &ScenarioArgs) -> Result<Loaded, Failure> {
    load_with(args, false)
}

/// Loads and builds the scenario of `args`, capturing every interface to pcap if `pcap`.
pub fn load_with(args: &ScenarioArgs, pcap: bool) -> Result<Loaded, Failure> {
    let loaded = podnet_scenario::load_files(&args.files)?;
    let mut scenario = loaded.scenario;
    if let Some(seed) = args.seed {
        scenario.config.seed = seed;
    }
    scenario.config.trace.pcap |= pcap;
    if !args.quiet {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
    }
    let (cluster, index) = podnet_scenario::build(&scenario)?;
    if !args.quiet {
        for w in &index.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(Loaded {
        scenario,
        cluster,
        index,
        finished: false,
    })
}

impl Loaded {
    /// Runs the scenario (faults at their times) until every client is done or `limit`.
    pub fn run(&mut self, limit: Duration, quiet: bool) -> Result<(), Failure> {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(limit.total_millis());
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} virtual {msg} [{bar:30}] {percent}%",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b
        });
        let started = std::time::Instant::now();
        podnet_scenario::check_faults(&self.scenario)?;
        let faults = podnet_scenario::fault_events(&self.scenario);
        let mut next_fault = 0;
        let end = self.cluster.now() + limit;
        // Run in slices of virtual time so the bar can move; the result is the same.
        let slice = Duration::from_millis(100).max(limit / 300);
        loop {
            while let Some(ev) = faults
                .get(next_fault)
                .filter(|ev| Instant::ZERO + ev.at <= self.cluster.now())
            {
                podnet_scenario::apply_fault(&mut self.cluster, &self.scenario, &self.index, *ev)?;
                next_fault += 1;
            }
            let mut next = (self.cluster.now() + slice).min(end);
            if let Some(ev) = faults.get(next_fault) {
                next = next.min(Instant::ZERO + ev.at);
            }
            if self.cluster.run_until_done(next - self.cluster.now()) {
                self.finished = true;
                break;
            }
            if let Some(b) = &bar {
                if started.elapsed() > std::time::Duration::from_secs(1) {
                    b.set_position(
                        (self.cluster.now() - Instant::ZERO)
                            .total_millis()
                            .min(limit.total_millis()),
                    );
                    b.set_message(format!("{}", self.cluster.now()));
                }
            }
            if self.cluster.now() >= end {
                break;
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok(())
    }
}

/// Prints a failure and turns it into the exit code.
pub fn exit(result: Result<ExitCode, Failure>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("podnet: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// `0.412ms`, `1.532s` (the report's duration format).
pub fn fmt_duration(d: Duration) -> String {
    let us = d.total_micros();
    if us < 1_000_000 {
        format!("{}.{:03}ms", us / 1000, us % 1000)
    } else {
        format!("{}.{:03}s", us / 1_000_000, (us % 1_000_000) / 1000)
    }
}

/// Virtual time as a duration since zero.
pub fn fmt_instant(t: Instant) -> String {
    fmt_duration(t - Instant::ZERO)
}
