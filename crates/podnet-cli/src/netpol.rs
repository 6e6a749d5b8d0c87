//! `podnet matrix` and `podnet diff`: NetworkPolicy connectivity probed with real connections,
//! and what a change of files changes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use podnet::kube_proxy::L4;
use podnet_scenario::matrix::{self, MatrixOptions};
use podnet_scenario::session::Failure;
use podnet_scenario::Scenario;

/// What to probe, shared by `matrix` and `diff`.
#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    /// Only pods and Services of this namespace (repeatable; default: every namespace).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Only this port (repeatable; default: every declared container port).
    #[arg(long = "port", short = 'p', value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Only this protocol: tcp or udp (repeatable; default: as each port is declared, TCP for
    /// ports given with --port).
    #[arg(long = "protocol", value_name = "PROTO", value_parser = parse_l4)]
    pub protocols: Vec<L4>,
    /// Do not probe Services' ClusterIPs.
    #[arg(long)]
    pub no_services: bool,
    /// How long a probe may take in virtual time before it counts as timed out.
    #[arg(long, default_value = "2s", value_parser = crate::common::parse_duration)]
    pub timeout: podnet::Duration,
    /// Overrides the Cluster's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// No warnings.
    #[arg(long, short)]
    pub quiet: bool,
}

impl ProbeArgs {
    fn options(&self) -> MatrixOptions {
        MatrixOptions {
            namespaces: self.namespaces.clone(),
            ports: self.ports.clone(),
            protocols: self.protocols.clone(),
            services: !self.no_services,
            timeout: self.timeout,
            sources: None,
        }
    }
}

fn parse_l4(s: &str) -> Result<L4, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(L4::Tcp),
        "udp" => Ok(L4::Udp),
        _ => Err(format!("`{s}`: the protocol is tcp or udp")),
    }
}

/// Loads a set of files into one scenario, warnings to stderr unless `quiet`.
pub fn load(files: &[PathBuf], seed: Option<u64>, quiet: bool) -> Result<Scenario, Failure> {
    let loaded = podnet_scenario::load_files(files)?;
    if !quiet {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
    }
    let mut sc = loaded.scenario;
    if let Some(seed) = seed {
        sc.config.seed = seed;
    }
    let t = &mut sc.config.trace;
    (t.frames, t.hooks, t.pcap) = (false, false, false);
    Ok(sc)
}

/// `podnet matrix`.
pub fn matrix_cmd(
    files: &[PathBuf],
    probe: &ProbeArgs,
    json: bool,
    explain_allowed: bool,
) -> Result<ExitCode, Failure> {
    let sc = load(files, probe.seed, probe.quiet)?;
    let m = matrix::matrix(&sc, &probe.options())?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&m).map_err(|e| Failure::input(e.to_string()))?
        );
    } else {
        out!("{}", matrix::render_text(&m, explain_allowed));
    }
    Ok(ExitCode::SUCCESS)
}

/// Which two worlds `podnet diff` compares.
#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    /// The files before the change (with neither --after nor --policy-change nor
    /// --remove-policy: exactly two files, BEFORE and AFTER).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The files after the change (another complete set).
    #[arg(long, num_args = 1.., value_name = "FILE", conflicts_with = "policy_change")]
    pub after: Vec<PathBuf>,
    /// Files of NetworkPolicies that the change adds, or that replace those of the same
    /// namespace and name.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub policy_change: Vec<PathBuf>,
    /// A NetworkPolicy (NAMESPACE/NAME) that the change removes (repeatable).
    #[arg(long, value_name = "NS/NAME")]
    pub remove_policy: Vec<String>,
    /// Compare only the probes, not the files' Traffic.
    #[arg(long)]
    pub no_traffic: bool,
    /// Virtual time each world's Traffic may run at most.
    #[arg(long, default_value = "30s", value_parser = crate::common::parse_duration)]
    pub until: podnet::Duration,
    /// Exit 1 when anything changed (for CI).
    #[arg(long)]
    pub fail_on_change: bool,
    /// Print the changes as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `podnet diff`.
pub fn diff_cmd(args: &DiffArgs, probe: &ProbeArgs) -> Result<ExitCode, Failure> {
    let (before, after) = if !args.after.is_empty() {
        (
            load(&args.files, probe.seed, probe.quiet)?,
            load(&args.after, probe.seed, probe.quiet)?,
        )
    } else if !args.policy_change.is_empty() || !args.remove_policy.is_empty() {
        let before = load(&args.files, probe.seed, probe.quiet)?;
        let change = if args.policy_change.is_empty() {
            Scenario {
                network_policies: Vec::new(),
                ..before.clone()
            }
        } else {
            load(&args.policy_change, probe.seed, true)?
        };
        let after =
            podnet_scenario::diff::apply_policy_change(&before, &change, &args.remove_policy)?;
        (before, after)
    } else {
        let [b, a] = args.files.as_slice() else {
            return Err(Failure::input(format!(
                "podnet diff takes two files (BEFORE AFTER), or a set of files with --after, --policy-change or --remove-policy; got {} files",
                args.files.len()
            )));
        };
        (
            load(std::slice::from_ref(b), probe.seed, probe.quiet)?,
            load(std::slice::from_ref(a), probe.seed, probe.quiet)?,
        )
    };
    let d = podnet_scenario::diff::diff(
        &before,
        &after,
        &probe.options(),
        !args.no_traffic,
        args.until,
    )?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&d).map_err(|e| Failure::input(e.to_string()))?
        );
    } else {
        out!("{}", podnet_scenario::diff::render_text(&d));
    }
    Ok(if args.fail_on_change && d.changed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
