//! The WebAssembly package and its checks:
//!
//! - `cargo xtask pkg`: builds `crates/podnet-wasm` for `wasm32-unknown-unknown` (profile
//!   `wasm-release`: LTO, `opt-level = "z"` but `"s"` for the engine and smoltcp), runs
//!   `wasm-bindgen --target web` into `pkg/`, shrinks the module with `wasm-opt -Os` (see
//!   [`WASM_OPT_SIZE`]; `-Oz` cost 40% more time for 0.1% less size), writes `pkg/package.json` and `pkg/README.md`, and
//!   prints the module's size, raw and gzipped. `pkg/` is generated: git ignores all of it.
//! - `cargo xtask wasm-test`: the wasm-bindgen-test suite (`crates/podnet-wasm/tests/web.rs`)
//!   in headless Chromium through chromedriver.
//! - `cargo xtask wasm-bench`: one scenario run to its end natively and in Node from `pkg/`,
//!   the reports compared as JSON values, wall times and their ratio printed.
//!
//! Each installs what it needs when it is missing: the Rust target, `wasm-bindgen-cli` of
//! exactly the `wasm-bindgen` version in Cargo.lock (`cargo install`), `wasm-opt` (see
//! [`wasm_opt`]), Chromium and chromedriver (Debian's `chromium`, `chromium-driver`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ensure::{ensure_apt, ensure_rust_target, on_path};
use crate::{cargo_with, display, run, workspace_root, Result, WASM_TARGET};

/// The cargo profile of the package build (in the workspace Cargo.toml).
const PROFILE: &str = "wasm-release";
/// The npm package's name.
const NPM_NAME: &str = "podnet";
/// The scenario `wasm-bench` runs, and how often each side runs it (the best time counts).
const BENCH_SCENARIO: &str = "examples/three-endpoints.yaml";
const BENCH_RUNS: &str = "5";
/// The oldest wasm-opt used, and the binaryen release installed from npm when the one on
/// `PATH` is older: Debian 12's binaryen (108) points the `__wbindgen_externrefs` export at
/// the function table after `-Oz`, and the module then fails to instantiate
/// (`WebAssembly.Table.set(): Argument 1 is invalid for table`); 132 is the version checked.
const WASM_OPT_MIN: u32 = 132;
const BINARYEN_NPM: &str = "binaryen@132.0.0";
/// wasm-opt's optimization: `-Os` repeated while it still shrinks the module (`--converge`,
/// 0.8% smaller gzipped for about twice the time), and `--low-memory-unused` (0.7%: constant
/// address offsets fold into loads and stores; Rust's wasm32 layout has the stack below 1 MiB
/// and the data above, and nothing lives in the first 1 KiB).
const WASM_OPT_SIZE: &[&str] = &["-Os", "--converge", "--low-memory-unused"];
/// wasm-opt's features: what rustc emits for wasm32-unknown-unknown (the module's
/// `target_features` section lists them).
const WASM_OPT_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-multivalue",
    "--enable-reference-types",
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| {
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn pkg_dir() -> PathBuf {
    workspace_root().join("pkg")
}

/// The version of package `name` in Cargo.lock.
fn locked_version(name: &str) -> Result<String> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
            {
                return Ok(v.to_string());
            }
        }
    }
    Err(format!("no package {name} in Cargo.lock"))
}

/// What `program --version` prints, if it runs.
fn version_of(program: impl AsRef<std::ffi::OsStr>) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Ensures `wasm-bindgen` (and `wasm-bindgen-test-runner`) of exactly the version of the
/// `wasm-bindgen` crate in Cargo.lock: the CLI and the crate must agree.
fn ensure_wasm_bindgen_cli() -> Result {
    let want = locked_version("wasm-bindgen")?;
    if version_of("wasm-bindgen").as_deref() == Some(&format!("wasm-bindgen {want}")) {
        return Ok(());
    }
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())).args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &want,
        ]),
    )?;
    match version_of("wasm-bindgen") {
        Some(v) if v == format!("wasm-bindgen {want}") => Ok(()),
        other => Err(format!(
            "wasm-bindgen {want} installed but `wasm-bindgen --version` says {other:?} (is ~/.cargo/bin first on PATH?)"
        )),
    }
}

/// `wasm-opt version N (...)` -> N.
fn wasm_opt_version(program: impl AsRef<std::ffi::OsStr>) -> Option<u32> {
    version_of(program)?
        .strip_prefix("wasm-opt version ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A wasm-opt of at least [`WASM_OPT_MIN`]: the one on `PATH` if it is that new, else
/// binaryen from npm in `target/tools/binaryen` (installed there when missing).
fn wasm_opt() -> Result<PathBuf> {
    if wasm_opt_version("wasm-opt").is_some_and(|v| v >= WASM_OPT_MIN) {
        return Ok(PathBuf::from("wasm-opt"));
    }
    let dir = target_dir().join("tools/binaryen");
    let bin = dir.join("node_modules/binaryen/bin/wasm-opt");
    if wasm_opt_version(&bin).is_some_and(|v| v >= WASM_OPT_MIN) {
        return Ok(bin);
    }
    if !on_path("npm") {
        return Err(format!(
            "wasm-opt {WASM_OPT_MIN} or newer is needed (Debian 12's binaryen 108 breaks the module) and npm is missing to install {BINARYEN_NPM}"
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(BINARYEN_NPM))?;
    match wasm_opt_version(&bin) {
        Some(v) if v >= WASM_OPT_MIN => Ok(bin),
        other => Err(format!("{} reports version {other:?}", bin.display())),
    }
}

/// The workspace's version (`[workspace.package] version`).
fn workspace_version() -> Result<String> {
    let toml = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
        .map_err(|e| format!("Cargo.toml: {e}"))?;
    let mut in_package = false;
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package {
            if let Some(v) = line
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
            {
                return Ok(v.to_string());
            }
        }
    }
    Err("no version in [workspace.package] of Cargo.toml".into())
}

fn gzip_size(path: &Path) -> Result<usize> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .map_err(|e| format!("gzip: {e}"))?;
    if !out.status.success() {
        return Err(format!("gzip {} failed", path.display()));
    }
    Ok(out.stdout.len())
}

/// `cargo xtask pkg`: builds the npm package into `pkg/`.
pub fn pkg() -> Result {
    ensure_rust_target(WASM_TARGET)?;
    ensure_wasm_bindgen_cli()?;
    let wasm_opt = wasm_opt()?;
    run(&mut cargo_with(&[
        "build",
        "--profile",
        PROFILE,
        "--target",
        WASM_TARGET,
        "-p",
        "podnet-wasm",
    ]))?;
    let built = target_dir().join(format!("{WASM_TARGET}/{PROFILE}/podnet_wasm.wasm"));
    let out = pkg_dir();
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-dir"])
        .arg(&out)
        .arg(&built))?;
    let wasm = out.join("podnet_wasm_bg.wasm");
    let before = std::fs::metadata(&wasm).map_or(0, |m| m.len());
    run(Command::new(&wasm_opt)
        .args(WASM_OPT_SIZE)
        .args(WASM_OPT_FEATURES)
        .arg(&wasm)
        .arg("-o")
        .arg(&wasm))?;
    let version = workspace_version()?;
    std::fs::write(out.join("package.json"), package_json(&version))
        .map_err(|e| format!("pkg/package.json: {e}"))?;
    std::fs::write(out.join("README.md"), PKG_README).map_err(|e| format!("pkg/README.md: {e}"))?;
    // The package must load and run: the seed scenario once, in Node, from pkg/.
    if on_path("node") {
        let out = output(
            Command::new("node")
                .arg("--single-threaded")
                .arg(workspace_root().join("xtask/wasm-bench.mjs"))
                .arg(&out)
                .arg(workspace_root().join("examples/seed.yaml"))
                .arg("1"),
        )?;
        split_bench(&out)?;
    }
    let raw = std::fs::metadata(&wasm).map_err(|e| e.to_string())?.len();
    let gz = gzip_size(&wasm)?;
    println!(
        "pkg/podnet_wasm_bg.wasm: {} raw ({} before wasm-opt), {} gzipped (-9)",
        kb(raw as usize),
        kb(before as usize),
        kb(gz)
    );
    Ok(())
}

fn kb(bytes: usize) -> String {
    format!("{bytes} bytes ({:.0} KiB)", bytes as f64 / 1024.0)
}

fn package_json(version: &str) -> String {
    format!(
        r#"{{
  "name": "{NPM_NAME}",
  "version": "{version}",
  "description": "podnet in WebAssembly: a deterministic Kubernetes network simulator (pods, nodes, conntrack, NAT, kube-proxy) in virtual time",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "podnet_wasm.js",
  "module": "podnet_wasm.js",
  "types": "podnet_wasm.d.ts",
  "exports": {{
    ".": {{
      "types": "./podnet_wasm.d.ts",
      "default": "./podnet_wasm.js"
    }},
    "./podnet_wasm_bg.wasm": "./podnet_wasm_bg.wasm"
  }},
  "files": [
    "podnet_wasm.js",
    "podnet_wasm.d.ts",
    "podnet_wasm_bg.wasm",
    "podnet_wasm_bg.wasm.d.ts",
    "README.md"
  ],
  "sideEffects": false
}}
"#
    )
}

const PKG_README: &str = r#"# podnet (WebAssembly)

podnet, the deterministic userspace Kubernetes network simulator, compiled to WebAssembly:
load a scenario (a YAML stream of Kubernetes objects plus `Cluster`, `Traffic` and `Fault`),
run it in virtual time, and read what `podnet run --json`, `podnet trace`, `podnet tcpdump`,
`conntrack -L` and `iptables-save` would print, plus every trace event and pcaps as bytes.
Built by `cargo xtask pkg` from `crates/podnet-wasm`; the API contract is its `API.md`, and
`podnet_wasm.d.ts` has the TypeScript types (generated from the Rust types).

```ts
import init, { Sim, examples, check, version } from "podnet";

await init();                                  // fetches podnet_wasm_bg.wasm next to the module
// Node, or a bundler without wasm fetch: initSync({ module: bytesOfTheWasmFile })

const seed = examples().find((e) => e.name === "seed")!;
const problems = check(seed.yaml);             // [] or Diagnostic[] (never throws)

const sim = new Sim(seed.yaml, { seed: 1, fileName: "seed.yaml" });
sim.runToEnd();                                // like `podnet run` (30 s of virtual time at most)
const report = sim.report();                   // exactly `podnet run --json`
console.log(report.flows[0].connections[0].backend);   // "10.244.1.20:80"

for (const e of sim.events(0)) {               // every frame sent/received/dropped, every hook
  if (e.kind === "hook" && e.after) console.log(e.host, e.hook, e.packet.dst, "->", e.after.dst);
}
console.log(sim.conntrackText("node-a"));      // conntrack -L
const pcap: Uint8Array = sim.pcap("any");      // Linux cooked capture, opens in Wireshark

// Time travel is replay: the same text run to the same time gives the same state.
const at = new Sim(seed.yaml);
at.runUntil(1500);                             // virtual µs
sim.free(); at.free();                         // wasm memory is not garbage-collected
```

Every method throws a JavaScript `Error` on bad input (the text the `podnet` command prints,
e.g. `scenario.yaml:12:5: spec.ports[0].port: ...`); nothing traps.
"#;

/// `cargo xtask wasm-test`: the wasm-bindgen-test suite in headless Chromium.
pub fn wasm_test() -> Result {
    ensure_rust_target(WASM_TARGET)?;
    ensure_apt("chromium", "chromium")?;
    ensure_apt("chromium-driver", "chromedriver")?;
    ensure_wasm_bindgen_cli()?;
    let chromedriver = ["/usr/bin/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("chromedriver"));
    let mut cmd = cargo_with(&[
        "test",
        "--target",
        WASM_TARGET,
        "-p",
        "podnet-wasm",
        "--test",
        "web",
    ]);
    cmd.env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
        "wasm-bindgen-test-runner",
    )
    .env("CHROMEDRIVER", chromedriver)
    .env("WASM_BINDGEN_TEST_TIMEOUT", "300");
    run(&mut cmd)
}

/// `cargo xtask wasm-bench`: the same scenario natively and in Node from `pkg/` (built
/// first when missing); the reports must be identical; prints the times and their ratio.
pub fn wasm_bench(args: &[String]) -> Result {
    let scenario = args.first().map_or(BENCH_SCENARIO, String::as_str);
    if !pkg_dir().join("podnet_wasm_bg.wasm").exists() {
        pkg()?;
    }
    if !on_path("node") {
        return Err("node (20+) is needed to run the wasm side".into());
    }
    let root = workspace_root();
    let path = root.join(scenario);
    run(&mut cargo_with(&[
        "build",
        "--release",
        "-q",
        "-p",
        "podnet-wasm",
        "--example",
        "bench",
    ]))?;
    let native = output(
        Command::new(target_dir().join("release/examples/bench"))
            .arg(&path)
            .arg(BENCH_RUNS),
    )?;
    let (native_ms, native_report) = split_bench(&native)?;
    let native_json = target_dir().join("wasm-bench-native.json");
    std::fs::write(&native_json, &native_report)
        .map_err(|e| format!("{}: {e}", native_json.display()))?;
    let wasm = output(
        Command::new("node")
            .arg("--single-threaded")
            .arg(root.join("xtask/wasm-bench.mjs"))
            .arg(pkg_dir())
            .arg(&path)
            .arg(BENCH_RUNS)
            .arg(&native_json),
    )?;
    let (wasm_ms, verdict) = split_bench(&wasm)?;
    if !verdict.starts_with("same ") {
        return Err(format!(
            "the native and wasm reports differ:\n{}",
            wasm.lines().skip(1).collect::<Vec<_>>().join("\n")
        ));
    }
    println!(
        "{scenario}: the same report natively and in wasm ({} bytes of JSON)\n  native (release): {native_ms:.1} ms\n  wasm (Node {}):  {wasm_ms:.1} ms\n  wasm / native:    {:.2}x (best of {BENCH_RUNS} runs each: load, build, run to the end)",
        native_report.len(),
        version_of("node").unwrap_or_default(),
        wasm_ms / native_ms
    );
    Ok(())
}

/// Runs a command, returning its stdout.
fn output(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    println!("$ {shown}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{shown}` failed ({})", out.status));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("`{shown}` printed non-UTF-8: {e}"))
}

/// A bench side's output: `ms <best wall time>`, then one line (the report's JSON natively,
/// the comparison's verdict in Node).
fn split_bench(out: &str) -> Result<(f64, String)> {
    let mut lines = out.lines();
    let ms = lines
        .next()
        .and_then(|l| l.strip_prefix("ms "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| {
            format!(
                "unexpected bench output: {}",
                out.lines().next().unwrap_or("")
            )
        })?;
    let report = lines.next().unwrap_or("").to_string();
    Ok((ms, report))
}
