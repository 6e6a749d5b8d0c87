//! `cargo xtask kernel-diff [--quick] [ARGS...] [FILES...]`: builds `crates/podnet-kdiff` and
//! runs it, which replays each scenario's node traffic through this machine's Linux kernel
//! (network namespaces, iptables/nft, conntrack) and compares every frame, the conntrack
//! tables and counters, the rules and per-rule counters (book: *Kernel differential testing*).
//!
//! It needs root (namespaces, veths, netfilter rules) and the `iptables`, `nftables`,
//! `conntrack` and `iproute2` packages, which are installed when missing (apt).

use std::process::Command;

use crate::ensure::{ensure_apt, is_root, on_path};
use crate::{cargo_with, run, workspace_root, Result};

/// The tools the harness runs, with the Debian package of each.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("bridge", "iproute2"),
    ("iptables", "iptables"),
    ("nft", "nftables"),
    ("conntrack", "conntrack"),
];

fn ensure_tools() -> Result {
    for (bin, package) in TOOLS {
        ensure_apt(package, bin)?;
    }
    Ok(())
}

fn build() -> Result {
    run(&mut cargo_with(&[
        "build",
        "--release",
        "-p",
        "podnet-kdiff",
    ]))
}

fn binary() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("release/podnet-kdiff")
}

/// `cargo xtask kernel-diff [ARGS...]`: everything after the command goes to the harness.
pub fn kernel_diff(args: &[String]) -> Result {
    if !cfg!(target_os = "linux") {
        return Err("kernel-diff needs Linux (network namespaces, AF_PACKET)".into());
    }
    if !is_root() {
        return Err(
            "kernel-diff must run as root: it creates network namespaces, veth pairs and \
             netfilter rules (try: sudo -E cargo xtask kernel-diff)"
                .into(),
        );
    }
    ensure_tools()?;
    build()?;
    run(Command::new(binary()).args(args))
}

/// The CI step: `kernel-diff --quick`, skipped (with a message) when not root.
pub fn ci_step() -> Result {
    if !cfg!(target_os = "linux") {
        println!("kernel-diff: skipped: not Linux");
        return Ok(());
    }
    if !is_root() {
        println!(
            "kernel-diff: SKIPPED: not running as root (network namespaces and netfilter rules \
             need it); run `sudo -E cargo xtask kernel-diff --quick` to compare with the kernel"
        );
        return Ok(());
    }
    if !on_path("apt-get") && TOOLS.iter().any(|(b, _)| !on_path(b)) {
        return Err(
            "kernel-diff: iptables/nftables/conntrack/iproute2 missing and no apt-get".into(),
        );
    }
    kernel_diff(&["--quick".to_string()])
}
