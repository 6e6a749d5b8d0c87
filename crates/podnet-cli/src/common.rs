//! What every scenario command shares: load the files (warnings to stderr), build the session
//! (`podnet_scenario::session`) recording nothing, run it in virtual time (with a progress bar
//! on a terminal), and turn failures into exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use podnet::{Duration, Instant};
pub use podnet_scenario::session::{Failure, Session};

/// Arguments of every command that runs a scenario.
#[derive(Args, Debug, Clone)]
pub struct ScenarioArgs {
    /// Scenario files: YAML streams of Kubernetes objects plus Cluster, Traffic and Fault.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Overrides the Cluster's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Overrides the Cluster's kernel version (4.19, 5.15, 6.6): how conntrack handles an
    /// insert clash between two CPUs.
    #[arg(long, value_name = "VERSION", value_parser = parse_kernel)]
    pub kernel: Option<podnet::conntrack::Kernel>,
    /// Virtual time the run may last at most (Go duration: 500ms, 30s, 1m30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub until: Duration,
    /// No warnings, no progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop with an error when the run holds more memory than this (4Gi, 512Mi, 2G, or none;
    /// default: 80% of this machine's memory), instead of being killed.
    #[arg(long, value_name = "SIZE", value_parser = crate::budget::parse_limit)]
    pub max_memory: Option<crate::budget::Limit>,
}

/// A kernel version argument.
fn parse_kernel(s: &str) -> Result<podnet::conntrack::Kernel, String> {
    use podnet::conntrack::Kernel;
    Kernel::parse(s)
        .filter(|k| *k >= Kernel::OLDEST)
        .ok_or_else(|| {
            format!(
                "not a Linux version MAJOR.MINOR, {} or later",
                Kernel::OLDEST
            )
        })
}

/// A Go-style duration argument.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    podnet_scenario::units::parse_duration(s).map_err(|e| e.to_string())
}

/// Loads and builds the scenario of `args`, recording nothing.
pub fn load(args: &ScenarioArgs) -> Result<Session, Failure> {
    load_observed(args, Vec::new())
}

/// Loads and builds the scenario of `args` with `observers` installed from the start and
/// nothing else recorded: each command subscribes to what it prints (the drops of the report,
/// tcpdump lines, pcap records).
pub fn load_observed(
    args: &ScenarioArgs,
    observers: Vec<Box<dyn podnet::trace::Observer>>,
) -> Result<Session, Failure> {
    let loaded = podnet_scenario::load_files(&args.files)?;
    let mut scenario = loaded.scenario;
    if let Some(seed) = args.seed {
        scenario.config.seed = seed;
    }
    if let Some(k) = args.kernel {
        scenario.config.conntrack.kernel = k;
    }
    let trace = &mut scenario.config.trace;
    (trace.frames, trace.hooks, trace.pcap) = (false, false, false);
    if !args.quiet {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
    }
    let session = Session::new_observed(scenario, observers)?;
    if !args.quiet {
        for w in session.warnings() {
            eprintln!("warning: {w}");
        }
    }
    Ok(session)
}

/// Runs the session (faults at their times) until every client is done or `limit`, with a
/// progress bar in virtual time on a terminal unless `quiet` (the CLI passes `quiet` for
/// `--json` too), stopping with an error when the process outgrows `max_memory`.
pub fn run(
    s: &mut Session,
    args: &ScenarioArgs,
    limit: Duration,
    quiet: bool,
) -> Result<(), Failure> {
    let budget = crate::budget::budget(args.max_memory);
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
    let result = s.run_checked(limit, |s| {
        if let Some(b) = &bar {
            if started.elapsed() > std::time::Duration::from_secs(1) {
                b.set_position(
                    (s.now() - Instant::ZERO)
                        .total_millis()
                        .min(limit.total_millis()),
                );
                b.set_message(format!("{}", s.now()));
            }
        }
        crate::budget::check(budget, s.now())
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result
}

/// Prints a failure and turns it into the exit code.
pub fn exit(result: Result<ExitCode, Failure>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("podnet: {}", f.message);
            ExitCode::from(f.exit_code())
        }
    }
}
