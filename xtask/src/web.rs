//! The browser playground (`web/`): build it and serve it (`cargo xtask playground`), and
//! its end-to-end tests in headless Chromium (`cargo xtask e2e`).
//!
//! Both first build the wasm package (`pkg/`, [`crate::wasm::pkg`]), install the page's npm
//! dependencies when `web/node_modules` is missing or older than `web/package-lock.json`,
//! and build the page with Vite (`npm run build`: `tsc --noEmit && vite build`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::ensure::{ensure_apt, on_path};
use crate::{run, workspace_root, Result};

/// The Chromium the e2e tests drive (Debian's package; Playwright cannot download its own here).
pub const CHROMIUM: &str = "/usr/bin/chromium";
const DEFAULT_PORT: u16 = 8080;

fn web_dir() -> PathBuf {
    workspace_root().join("web")
}

/// `cargo xtask playground [--port N] [--no-serve]`
pub fn playground(args: &[String]) -> Result {
    let mut port = DEFAULT_PORT;
    let mut serve = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" | "-p" => {
                let value = it.next().ok_or("--port needs a number")?;
                port = value
                    .parse()
                    .map_err(|_| format!("--port: `{value}` is not a port number"))?;
            }
            "--no-serve" => serve = false,
            "-h" | "--help" => {
                println!(
                    "cargo xtask playground [--port N] [--no-serve]\n\n\
                     Builds the wasm package (pkg/), the page (web/dist) and serves it on\n\
                     http://127.0.0.1:{DEFAULT_PORT}/ (or --port N) until Ctrl+C."
                );
                return Ok(());
            }
            other => return Err(format!("playground: unknown argument `{other}`")),
        }
    }
    build()?;
    if !serve {
        println!("playground built in {}", web_dir().join("dist").display());
        return Ok(());
    }
    println!("\nServing the playground on http://127.0.0.1:{port}/");
    run(Command::new("node").current_dir(web_dir()).args([
        "serve.mjs",
        "--port",
        &port.to_string(),
        "--dir",
        "dist",
    ]))
}

/// `cargo xtask e2e`: build, then run the Playwright tests (web/e2e) against the built page.
pub fn e2e() -> Result {
    crate::wasm::pkg()?;
    e2e_with_pkg()
}

/// The `cargo xtask ci` step: as `e2e`, with pkg/ already built by the step before it.
pub fn e2e_with_pkg() -> Result {
    ensure_apt("chromium", "chromium")?;
    ensure_apt("chromium-driver", "chromedriver")?;
    build_page()?;
    let artifacts = workspace_root().join("target").join("e2e-artifacts");
    fs::create_dir_all(&artifacts)
        .map_err(|e| format!("cannot create {}: {e}", artifacts.display()))?;
    run(Command::new("node")
        .current_dir(web_dir())
        .args(["--test", "--test-concurrency=1", "e2e/"])
        .env("PODNET_CHROMIUM", CHROMIUM)
        .env("PODNET_E2E_ARTIFACTS", &artifacts))?;
    println!("e2e: screenshots in {}", artifacts.display());
    Ok(())
}

/// Build pkg/, install web/'s npm dependencies when needed, and build web/dist.
pub fn build() -> Result {
    crate::wasm::pkg()?;
    build_page()
}

/// Install web/'s npm dependencies when needed and build web/dist (pkg/ must exist).
fn build_page() -> Result {
    if !on_path("node") || !on_path("npm") {
        return Err("the playground needs Node.js 20+ with npm on PATH".into());
    }
    npm_install()?;
    run(Command::new("npm")
        .current_dir(web_dir())
        .args(["run", "build"]))
}

/// `npm ci` when node_modules is missing or older than package-lock.json / package.json.
fn npm_install() -> Result {
    let web = web_dir();
    let stamp = web.join("node_modules").join(".package-lock.json");
    let stale = match modified(&stamp) {
        None => true,
        Some(installed) => [web.join("package-lock.json"), web.join("package.json")]
            .iter()
            .filter_map(|p| modified(p))
            .any(|m| m > installed),
    };
    if !stale {
        return Ok(());
    }
    let mode = if web.join("package-lock.json").is_file() {
        "ci"
    } else {
        "install"
    };
    run(Command::new("npm")
        .current_dir(&web)
        .args([mode, "--no-audit", "--no-fund"]))
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}
