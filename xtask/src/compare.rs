//! `cargo xtask bench compare [--kernel] [--ns3] [ARGS...]`: builds the release CLI and
//! `podnet-bench` (crates/podnet-kdiff) and runs the latter, which measures podnet against the
//! Linux kernel (ClusterIP DNAT connections in network namespaces, root only) and against
//! ns-3 (bench/ns3/podnet_compare.cc, libns3-dev installed with apt when missing) in one run
//! and prints a table of ratios (book: *Determinism, performance and limitations*).

use std::path::PathBuf;
use std::process::Command;

use crate::ensure::{ensure_apt, is_root};
use crate::{cargo_with, run, workspace_root, Result};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Everything after `compare` goes to `podnet-bench` (`--help` lists it).
pub fn bench_compare(args: &[String]) -> Result {
    if !cfg!(target_os = "linux") {
        return Err("bench compare needs Linux (network namespaces; ns-3 from apt)".into());
    }
    let ns3 = args.iter().any(|a| a == "--ns3") || !args.iter().any(|a| a == "--kernel");
    if is_root() {
        for (package, bin) in [("iproute2", "ip"), ("iptables", "iptables-restore")] {
            ensure_apt(package, bin)?;
        }
    }
    if ns3 {
        for (package, bin) in [("g++", "g++"), ("pkg-config", "pkg-config")] {
            ensure_apt(package, bin)?;
        }
    }
    run(&mut cargo_with(&[
        "build",
        "--release",
        "-p",
        "podnet-cli",
        "-p",
        "podnet-kdiff",
    ]))?;
    let target = target_dir();
    let release = target.join("release");
    run(Command::new(release.join("podnet-bench"))
        .arg("--podnet")
        .arg(release.join("podnet"))
        .arg("--root")
        .arg(workspace_root())
        .arg("--out")
        .arg(target.join("ns3"))
        .args(args))
}
