//! The engine must give the same bytes natively and in WebAssembly: build
//! `examples/digest.rs` for the host and for `wasm32-wasip1`, run the second under Node's
//! WASI (`xtask/wasi-run.mjs`), and compare the two digests for a few seeds.

use std::process::Command;

use crate::ensure::{ensure_rust_target, on_path};
use crate::{cargo_with, display, run, workspace_root, Result};

/// The WASI target used for the comparison (the browser build is wasm32-unknown-unknown; the
/// engine code is the same, this one can print to stdout).
pub const WASI_TARGET: &str = "wasm32-wasip1";
const SEEDS: [&str; 2] = ["42", "7"];

fn output(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    println!("$ {shown}");
    let out = cmd
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("`{shown}` printed non-UTF-8: {e}"))
}

/// Runs the comparison; an error names the first line that differs.
pub fn native_vs_wasm() -> Result {
    ensure_rust_target(WASI_TARGET)?;
    if !on_path("node") {
        return Err("node is needed to run the wasm32-wasip1 build (install Node.js 20)".into());
    }
    run(&mut cargo_with(&[
        "build",
        "--release",
        "-q",
        "-p",
        "podnet",
        "--example",
        "digest",
    ]))?;
    run(&mut cargo_with(&[
        "build",
        "--release",
        "-q",
        "-p",
        "podnet",
        "--example",
        "digest",
        "--target",
        WASI_TARGET,
    ]))?;
    let root = workspace_root();
    let native_bin = root.join("target/release/examples/digest");
    let wasm = root.join(format!("target/{WASI_TARGET}/release/examples/digest.wasm"));
    for seed in SEEDS {
        let native = output(Command::new(&native_bin).arg(seed))?;
        let mut node = Command::new("node");
        node.args(["--no-warnings", "--single-threaded"])
            .arg(root.join("xtask/wasi-run.mjs"))
            .arg(&wasm)
            .arg(seed);
        let in_wasm = output(&mut node)?;
        if native != in_wasm {
            let diff = native
                .lines()
                .zip(in_wasm.lines())
                .find(|(a, b)| a != b)
                .map_or_else(
                    || "different lengths".to_string(),
                    |(a, b)| format!("native `{a}` vs wasm `{b}`"),
                );
            return Err(format!("seed {seed}: native and wasm runs differ: {diff}"));
        }
        print!("seed {seed}, identical natively and in wasm:\n{native}");
    }
    Ok(())
}
