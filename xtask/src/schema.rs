//! The JSON Schemas the book publishes: `cargo xtask schema [--check]`.
//!
//! `book/src/schema/report.schema.json` (the report of `podnet run --json`) and
//! `scenario.schema.json` (one document of a scenario file) are generated from the Rust types
//! by `podnet_scenario::schema` (feature `schema`), through the crate's `schema` example. This
//! writes them, or with `--check` fails when a checked-in file differs from what the types
//! generate. `cargo xtask book` runs it too (`--check` with `book --check`), so CI catches a
//! stale schema.

use std::fs;
use std::process::Command;

use crate::book::target_dir;
use crate::{cargo_with, run, workspace_root, Result};

const HELP: &str = "\
cargo xtask schema [--check]

Writes the JSON Schemas generated from the Rust types into book/src/schema/
(report.schema.json, scenario.schema.json).

  --check     write nothing: fail when a checked-in schema differs from the generated one";

/// `cargo xtask schema [--check]`
pub fn schema(args: &[String]) -> Result {
    let mut check_only = false;
    for a in args {
        match a.as_str() {
            "--check" => check_only = true,
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => return Err(format!("schema: unknown argument `{other}`\n\n{HELP}")),
        }
    }
    refresh(check_only)
}

/// Generates the schemas and writes them (or, with `check_only`, compares them).
pub(crate) fn refresh(check_only: bool) -> Result {
    run(&mut cargo_with(&[
        "build",
        "--quiet",
        "-p",
        "podnet-scenario",
        "--features",
        "schema",
        "--example",
        "schema",
    ]))?;
    let exe = target_dir()
        .join("debug/examples")
        .join(format!("schema{}", std::env::consts::EXE_SUFFIX));
    let generate = |args: &[&str]| -> Result<Vec<u8>> {
        let out = Command::new(&exe)
            .args(args)
            .output()
            .map_err(|e| format!("could not run {}: {e}", exe.display()))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "{} {} failed:\n{}",
                exe.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    // Without arguments the example names its files.
    let names = String::from_utf8(generate(&[])?).map_err(|e| e.to_string())?;
    let names: Vec<&str> = names.lines().collect();
    if names.is_empty() {
        return Err(format!("{} names no schema", exe.display()));
    }
    let dir = workspace_root().join("book/src/schema");
    let mut stale = Vec::new();
    for name in &names {
        let text = generate(&[name])?;
        let path = dir.join(name);
        if fs::read(&path).ok().as_deref() != Some(&text[..]) {
            stale.push(format!("book/src/schema/{name}"));
            if !check_only {
                fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                fs::write(&path, &text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
    }
    match (stale.is_empty(), check_only) {
        (true, _) => {
            println!("schema: {} JSON Schemas up to date", names.len());
            Ok(())
        }
        (false, true) => Err(format!(
            "the JSON Schemas differ from what the Rust types generate (run `cargo xtask schema` and commit them):\n  {}",
            stale.join("\n  ")
        )),
        (false, false) => {
            println!(
                "schema: rewrote (commit them if this is a change):\n  {}",
                stale.join("\n  ")
            );
            Ok(())
        }
    }
}
