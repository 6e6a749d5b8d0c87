//! Project automation for podnet: `cargo xtask <command>`.
//!
//! Deliberately std-only so it compiles in a second on a fresh machine.

mod book;
mod compare;
mod determinism;
mod ensure;
mod kdiff;
mod pcapcheck;
mod schema;
mod wasm;
mod web;

use std::env;
use std::path::PathBuf;
use std::process::{exit, Command};
use std::time::{Duration, Instant};

use ensure::{ensure_rust_component, ensure_rust_target, has_cargo_subcommand};

type Result<T = ()> = std::result::Result<T, String>;

/// Targets the core crate must build for: wasm (the browser playground) and a
/// bare-metal Cortex-M target (proves `#![no_std]`).
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const NO_STD_TARGET: &str = "thumbv7em-none-eabihf";

const HELP: &str = "\
cargo xtask <command> [args...]

Commands:
  demo [args...]    Run the headless demo (cargo run --release -p podnet-cli -- demo [args...])
  ci                Run every check CI runs: fmt, clippy, wasm32 + no_std builds, tests,
                    the book, native-vs-wasm determinism (Node WASI), pkg + its browser tests,
                    the playground's e2e tests, pcaps checked by tshark, kernel-diff --quick
                    (root only; skipped otherwise), bench build
  bench [args...]   Run the benchmarks (cargo bench -p podnet [args...])
  bench compare [--kernel] [--ns3] [--conns N] [--runs R]
                    Measure podnet against references in one run and print a table of
                    ratios: HTTP connections through a ClusterIP DNAT against the Linux
                    kernel in network namespaces (root only; skipped otherwise), and
                    bench/ns3-*.yaml (10,000 connections; one 64 MiB upload) against the
                    same workloads in ns-3 (libns3-dev installed with apt). Neither flag: both
  book [--check]    Regenerate the book's command outputs and JSON Schemas, check it
                    against the code, build it into target/book (mdBook) and run mdbook test
  schema [--check]  Write the JSON Schemas of scenario files and of the JSON report,
                    generated from the Rust types, into book/src/schema/
  pkg               Build the npm package of crates/podnet-wasm into pkg/ (wasm-bindgen,
                    wasm-opt) and print the module's size, raw and gzipped
  wasm-test         Run crates/podnet-wasm/tests/web.rs in headless Chromium
  wasm-bench [FILE] Run a scenario to its end natively and in Node (pkg/): same report,
                    wall times and their ratio
  playground [--port N] [--no-serve]
                    Build pkg/ and the browser playground (web/dist, Vite) and serve it on
                    http://127.0.0.1:8080/ (or port N)
  e2e               Build as playground does, then run the playground's end-to-end tests
                    (web/e2e, Playwright in headless Chromium; screenshots in
                    target/e2e-artifacts)
  pcaps             podnet's pcaps (the demo with loss, every example) checked by tshark
  kernel-diff [--quick] [--mode iptables|nftables] [-v] [FILES...]
                    Replay each example's node traffic through this machine's Linux kernel
                    (one network namespace per node, podnet's rules loaded with
                    iptables-restore / nft) and compare every frame, conntrack, the rules and
                    their counters; exit 1 on any disagreement. Root only; --quick is CI's subset
  help              Show this message

Missing Rust targets and components, tshark, Chromium, iptables, nftables, conntrack, g++
and libns3-dev (apt), and the playground's npm packages (npm ci) are installed automatically.";

fn main() {
    let mut args = env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();

    let result = match command.as_deref() {
        Some("demo") => demo(&rest),
        Some("ci") => ci(),
        Some("bench") => bench(&rest),
        Some("book") => book::book(&rest),
        Some("schema") => schema::schema(&rest),
        Some("pkg") => wasm::pkg(),
        Some("wasm-test") => wasm::wasm_test(),
        Some("wasm-bench") => wasm::wasm_bench(&rest),
        Some("playground") => web::playground(&rest),
        Some("e2e") => web::e2e(),
        Some("pcaps") => pcapcheck::tshark_validates_pcaps(),
        Some("kernel-diff") => kdiff::kernel_diff(&rest),
        None | Some("help" | "-h" | "--help") => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{HELP}")),
    };

    if let Err(err) = result {
        eprintln!("xtask: error: {err}");
        exit(1);
    }
}

fn demo(args: &[String]) -> Result {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "podnet-cli", "--", "demo"])
        .args(args);
    run(&mut cmd)
}

fn bench(args: &[String]) -> Result {
    if args.first().map(String::as_str) == Some("compare") {
        return compare::bench_compare(&args[1..]);
    }
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "podnet"]).args(args);
    run(&mut cmd)
}

fn ci() -> Result {
    let started = Instant::now();

    // Prerequisites: each is a no-op when already present.
    ensure_rust_target(WASM_TARGET)?;
    ensure_rust_target(NO_STD_TARGET)?;
    ensure_rust_component("rustfmt", "fmt")?;
    ensure_rust_component("clippy", "clippy")?;

    let mut steps: Vec<(&str, Step)> = vec![
        (
            "fmt",
            Step::Cmd(cargo_with(&["fmt", "--all", "--", "--check"])),
        ),
        (
            "clippy",
            Step::Cmd(cargo_with(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])),
        ),
        (
            "build wasm32",
            Step::Cmd(cargo_with(&[
                "build",
                "-p",
                "podnet",
                "--target",
                WASM_TARGET,
            ])),
        ),
        (
            "build no_std",
            Step::Cmd(cargo_with(&[
                "build",
                "-p",
                "podnet",
                "--target",
                NO_STD_TARGET,
            ])),
        ),
    ];
    // The API documentation: a broken intra-doc link fails.
    let mut doc = cargo_with(&["doc", "--workspace", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    steps.push(("rustdoc", Step::Cmd(doc)));
    if has_cargo_subcommand("nextest") {
        let mut nextest = cargo_with(&["nextest", "run", "--workspace"]);
        // A workspace with no tests yet is fine. Older nextest ignores the variable.
        if env::var_os("NEXTEST_NO_TESTS").is_none() {
            nextest.env("NEXTEST_NO_TESTS", "warn");
        }
        steps.push(("test (nextest)", Step::Cmd(nextest)));
        // nextest does not run doctests.
        steps.push((
            "doctest",
            Step::Cmd(cargo_with(&["test", "--workspace", "--doc"])),
        ));
    } else {
        steps.push(("test", Step::Cmd(cargo_with(&["test", "--workspace"]))));
    }
    steps.push(("book", Step::Check(book::ci_step)));
    steps.push(("native = wasm", Step::Check(determinism::native_vs_wasm)));
    steps.push(("wasm pkg", Step::Check(wasm::pkg)));
    steps.push(("wasm tests (Chromium)", Step::Check(wasm::wasm_test)));
    steps.push(("playground e2e", Step::Check(web::e2e_with_pkg)));
    steps.push((
        "pcaps (tshark)",
        Step::Check(pcapcheck::tshark_validates_pcaps),
    ));
    steps.push(("kernel-diff --quick", Step::Check(kdiff::ci_step)));
    steps.push((
        "bench build",
        Step::Cmd(cargo_with(&["bench", "--workspace", "--no-run"])),
    ));

    let total = steps.len();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    for (i, (name, step)) in steps.into_iter().enumerate() {
        println!("\n==> [{}/{total}] {name}", i + 1);
        let step_start = Instant::now();
        let outcome = match step {
            Step::Cmd(mut cmd) => run(&mut cmd),
            Step::Check(check) => check(),
        };
        let elapsed = step_start.elapsed();
        timings.push((name, elapsed));
        if let Err(err) = outcome {
            print_timings(&timings);
            return Err(format!("ci step `{name}` failed: {err}"));
        }
        println!("==> {name}: ok in {}", fmt_duration(elapsed));
    }

    print_timings(&timings);
    println!(
        "\nci: all {total} steps passed in {}",
        fmt_duration(started.elapsed())
    );
    Ok(())
}

/// One CI step: a command, or a check written in Rust.
enum Step {
    Cmd(Command),
    Check(fn() -> Result),
}

fn print_timings(timings: &[(&str, Duration)]) {
    println!("\nStep timings:");
    for (name, elapsed) in timings {
        println!("  {name:<16} {:>8}", fmt_duration(*elapsed));
    }
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// A `cargo` command run from the workspace root, using the same cargo that
/// launched us (so `cargo +toolchain xtask` behaves).
pub(crate) fn cargo() -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd
}

pub(crate) fn cargo_with(args: &[&str]) -> Command {
    let mut cmd = cargo();
    cmd.args(args);
    cmd
}

/// Print a command, run it with inherited stdio, and turn failure into an error
/// that names the command.
pub(crate) fn run(cmd: &mut Command) -> Result {
    let shown = display(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let code = status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
        Err(format!("`{shown}` failed with {code}"))
    }
}

/// Render a command roughly as a shell would show it. The program is shown by
/// its file name so `$CARGO`'s full toolchain path does not clutter the log.
pub(crate) fn display(cmd: &Command) -> String {
    let program = PathBuf::from(cmd.get_program());
    let program = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut parts = vec![program];
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) {
            format!("'{a}'")
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}
