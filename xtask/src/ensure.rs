//! Idempotent "install it if it's missing" steps.
//!
//! Every function here first probes for the thing it installs and returns
//! immediately when it is already present, so the xtask commands can call
//! them unconditionally on every run. Adding a new prerequisite should be one
//! small function in this file plus one call in `main.rs`.

use std::env;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{cargo, run, Result};

/// Ensure a rustup target (e.g. `wasm32-unknown-unknown`) is installed.
pub fn ensure_rust_target(target: &str) -> Result {
    let Some(installed) = capture("rustup", &["target", "list", "--installed"]) else {
        eprintln!("xtask: warning: `rustup` not found; cannot check for target {target}");
        return Ok(());
    };
    if installed.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", target]))
}

/// Ensure a rustup component (e.g. `clippy`) is installed.
///
/// `probe` is a cargo subcommand that only works when the component is
/// present (`fmt` for rustfmt, `clippy` for clippy).
pub fn ensure_rust_component(component: &str, probe: &str) -> Result {
    if succeeds(cargo().args([probe, "--version"])) {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", component]))
}

/// Ensure a Debian package is installed, using `probe_bin` on `PATH` as the
/// "already installed" check. Runs `apt-get update && apt-get install -y`
/// (through `sudo` when not root) only when the binary is missing.
pub fn ensure_apt(package: &str, probe_bin: &str) -> Result {
    if on_path(probe_bin) {
        return Ok(());
    }
    if !on_path("apt-get") {
        return Err(format!(
            "`{probe_bin}` is missing and apt-get is not available; install `{package}` by hand"
        ));
    }
    let sudo = !is_root() && on_path("sudo");
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut apt(&["update"]))?;
    run(&mut apt(&["install", "-y", package]))
}

/// Ensure `tshark` (used to cross-check our pcap output) is installed.
pub fn ensure_tshark() -> Result {
    ensure_apt("tshark", "tshark")
}

/// Does a cargo subcommand exist (e.g. `nextest`)?
pub fn has_cargo_subcommand(name: &str) -> bool {
    succeeds(cargo().args([name, "--version"]))
}

/// Is an executable named `bin` on `PATH`?
pub fn on_path(bin: &str) -> bool {
    let Some(path) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&path).any(|dir| is_executable(&dir.join(bin)))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file() || path.with_extension("exe").is_file()
    }
}

/// Whether we run as root.
pub fn is_root() -> bool {
    capture("id", &["-u"]).is_some_and(|uid| uid.trim() == "0")
}

/// Run `cmd` quietly and report whether it exited successfully.
fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run a program and return its stdout, or `None` if it could not run or failed.
fn capture(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
