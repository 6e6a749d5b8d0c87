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
        println!(
            "{}",
            serde_json::to_string_pretty(&m).map_err(|e| Failure::input(e.to_string()))?
        );
    } else {
        print!("{}", matrix::render_text(&m, explain_allowed));
    }
    Ok(ExitCode::SUCCESS)
}
