//! The mdBook in `book/`: `cargo xtask book [--check]`.
//!
//! 1. Builds the `podnet` binary and runs every command listed in `book/outputs.txt`,
//!    writing what it prints to `book/src/out/NAME.txt` (the chapters `{{#include}}` those
//!    files, so every output shown in the book is the binary's own). With `--check` nothing is
//!    written and a stale file is an error.
//! 2. Regenerates the JSON Schemas in `book/src/schema/` from the Rust types (`crate::schema`;
//!    with `--check`, a stale schema is an error).
//! 3. Checks the book against the code: every `{{#include}}` target exists, every
//!    `out/NAME.txt` a chapter includes is listed in the manifest, every chapter in
//!    `SUMMARY.md` exists, and every `podnet <subcommand>` written in the book (code blocks
//!    and inline code) is a subcommand `podnet --help` lists.
//! 4. Installs mdBook when missing (`cargo install mdbook --version 0.4.52`), builds the book
//!    into `target/book` and runs `mdbook test` (the Rust blocks are `ignore`d: the included
//!    example is compiled by cargo itself).
//!
//! The manifest has one command per line: `NAME [ATTR=VALUE...] | ARGS`, where ARGS are the
//! arguments of `podnet` (double quotes group words). Attributes: `from=TEXT` starts at the
//! first line containing TEXT, `lines=N` keeps N lines, `tail=N` keeps the last N lines,
//! `exit=N` is the exit code the command must end with (default 0), `empty=ok` says the
//! command is meant to print nothing (otherwise an empty output is an error).

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo_with, run, workspace_root, Result};

/// The mdBook release this project builds with (the last 0.4; builds on this registry).
pub const MDBOOK_VERSION: &str = "0.4.52";

const HELP: &str = "\
cargo xtask book [--check] [--no-build]

Regenerates the command outputs the book shows (book/outputs.txt -> book/src/out/)
and the JSON Schemas (book/src/schema/, as `cargo xtask schema`), checks includes and podnet subcommands named in the book, then builds the book into
target/book with mdBook (installed with cargo when missing) and runs `mdbook test`.

  --check     write nothing: fail when an output in book/src/out/ or a schema is stale
  --no-build  skip mdBook (outputs and checks only)";

fn book_dir() -> PathBuf {
    workspace_root().join("book")
}

/// `cargo xtask book [--check] [--no-build]`
pub fn book(args: &[String]) -> Result {
    let mut check_only = false;
    let mut build = true;
    for a in args {
        match a.as_str() {
            "--check" => check_only = true,
            "--no-build" => build = false,
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => return Err(format!("book: unknown argument `{other}`\n\n{HELP}")),
        }
    }
    let podnet = build_podnet()?;
    let subcommands = subcommands_of(&podnet)?;
    let manifest = read_manifest(&book_dir().join("outputs.txt"))?;
    refresh_outputs(&podnet, &manifest, &subcommands, check_only)?;
    crate::schema::refresh(check_only)?;
    let problems = check_book(&book_dir(), &manifest, &subcommands)?;
    if !problems.is_empty() {
        return Err(format!(
            "the book has drifted from the code:\n  {}",
            problems.join("\n  ")
        ));
    }
    println!("book: includes and podnet subcommands check out");
    if build {
        let mdbook = ensure_mdbook()?;
        run(Command::new(&mdbook)
            .arg("build")
            .arg(book_dir())
            .current_dir(workspace_root()))?;
        run(Command::new(&mdbook)
            .arg("test")
            .arg(book_dir())
            .current_dir(workspace_root()))?;
        println!(
            "book: built {}",
            workspace_root().join("target/book/index.html").display()
        );
    }
    Ok(())
}

/// The CI step: `book --check` (a stale output or schema fails), then build and test.
pub fn ci_step() -> Result {
    book(&["--check".to_string()])
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the CLI and returns the path of its binary.
fn build_podnet() -> Result<PathBuf> {
    run(&mut cargo_with(&["build", "--quiet", "-p", "podnet-cli"]))?;
    let exe = target_dir()
        .join("debug")
        .join(format!("podnet{}", env::consts::EXE_SUFFIX));
    if exe.is_file() {
        Ok(exe)
    } else {
        Err(format!("built podnet-cli but found no {}", exe.display()))
    }
}

/// The subcommands `podnet --help` lists (the `Commands:` section).
fn subcommands_of(podnet: &Path) -> Result<BTreeSet<String>> {
    let out = Command::new(podnet)
        .arg("--help")
        .output()
        .map_err(|e| format!("could not run {} --help: {e}", podnet.display()))?;
    let set = parse_subcommands(&String::from_utf8_lossy(&out.stdout));
    if set.is_empty() {
        return Err("podnet --help lists no subcommands".into());
    }
    Ok(set)
}

/// Parses clap's `Commands:` section: two-space-indented lines up to the next blank line.
pub(crate) fn parse_subcommands(help: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    let mut inside = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            if line.trim().is_empty() || !line.starts_with("  ") {
                break;
            }
            if let Some(word) = line.split_whitespace().next() {
                set.insert(word.to_string());
            }
        }
    }
    set.remove("help");
    set
}

/// One manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub args: Vec<String>,
    pub from: Option<String>,
    pub lines: Option<usize>,
    pub tail: Option<usize>,
    pub exit: i32,
    pub empty_ok: bool,
    pub line_no: usize,
}

fn read_manifest(path: &Path) -> Result<Vec<Entry>> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_manifest(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn parse_manifest(text: &str) -> Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (left, right) = line
            .split_once('|')
            .ok_or_else(|| format!("line {line_no}: expected `NAME [ATTR=VALUE...] | ARGS`"))?;
        let left = split_words(left).map_err(|e| format!("line {line_no}: {e}"))?;
        let args = split_words(right).map_err(|e| format!("line {line_no}: {e}"))?;
        let mut left = left.into_iter();
        let name = left
            .next()
            .ok_or_else(|| format!("line {line_no}: no name"))?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("line {line_no}: bad name `{name}`"));
        }
        if entries.iter().any(|e| e.name == name) {
            return Err(format!("line {line_no}: `{name}` is listed twice"));
        }
        if args.is_empty() {
            return Err(format!("line {line_no}: no podnet arguments"));
        }
        let mut e = Entry {
            name,
            args,
            from: None,
            lines: None,
            tail: None,
            exit: 0,
            empty_ok: false,
            line_no,
        };
        for attr in left {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| format!("line {line_no}: `{attr}` is not ATTR=VALUE"))?;
            let num = || {
                v.parse::<usize>()
                    .map_err(|_| format!("line {line_no}: {k} needs a number, not `{v}`"))
            };
            match k {
                "from" => e.from = Some(v.to_string()),
                "lines" => e.lines = Some(num()?),
                "tail" => e.tail = Some(num()?),
                "empty" if v == "ok" => e.empty_ok = true,
                "exit" => {
                    e.exit = v
                        .parse()
                        .map_err(|_| format!("line {line_no}: exit needs a number"))?
                }
                other => return Err(format!("line {line_no}: unknown attribute `{other}`")),
            }
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Splits on whitespace; double quotes group words (no escapes).
fn split_words(s: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("unclosed double quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Shows an argument as a shell would need it.
fn shell_word(a: &str) -> String {
    if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'$()<>|&;*?".contains(c)) {
        format!("'{a}'")
    } else {
        a.to_string()
    }
}

/// The text the book shows for one command: the prompt line, then its output, cut as the
/// entry says, then the exit code when it is not 0.
pub(crate) fn render(e: &Entry, stdout: &str, stderr: &str, code: i32) -> String {
    let mut all: Vec<&str> = stdout.lines().collect();
    all.extend(stderr.lines());
    let start = match &e.from {
        Some(t) => all.iter().position(|l| l.contains(t.as_str())).unwrap_or(0),
        None => 0,
    };
    let mut end = all.len();
    if let Some(n) = e.lines {
        end = end.min(start + n);
    }
    let start = match e.tail {
        Some(n) => start.max(end.saturating_sub(n)),
        None => start,
    };
    let shown: Vec<String> = e.args.iter().map(|a| shell_word(a)).collect();
    let mut out = format!("$ podnet {}\n", shown.join(" "));
    if start > 0 {
        out.push_str("...\n");
    }
    for l in &all[start..end] {
        out.push_str(l);
        out.push('\n');
    }
    if end < all.len() {
        out.push_str("...\n");
    }
    if code != 0 {
        out.push_str(&format!("$ echo $?\n{code}\n"));
    }
    out
}

fn refresh_outputs(
    podnet: &Path,
    manifest: &[Entry],
    subcommands: &BTreeSet<String>,
    check_only: bool,
) -> Result {
    let out_dir = book_dir().join("src").join("out");
    if !check_only {
        fs::create_dir_all(&out_dir)
            .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    }
    let mut changed = Vec::new();
    for e in manifest {
        let first = &e.args[0];
        if !first.starts_with('-') && !subcommands.contains(first) {
            return Err(format!(
                "book/outputs.txt line {}: `podnet {first}` is no subcommand (podnet --help lists {})",
                e.line_no,
                subcommands.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let out = Command::new(podnet)
            .args(&e.args)
            .current_dir(workspace_root())
            .output()
            .map_err(|err| format!("could not run podnet for `{}`: {err}", e.name))?;
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if code != e.exit {
            return Err(format!(
                "book/outputs.txt line {}: `podnet {}` exited with {code}, the book says {}\n{stderr}",
                e.line_no,
                e.args.join(" "),
                e.exit
            ));
        }
        // An empty capture (tcpdump with no match) must be deliberate.
        if stdout.trim().is_empty() && stderr.trim().is_empty() && !e.empty_ok {
            return Err(format!(
                "book/outputs.txt line {}: `podnet {}` printed nothing (add empty=ok if that is the point)",
                e.line_no,
                e.args.join(" ")
            ));
        }
        if let Some(t) = &e.from {
            if !stdout
                .lines()
                .chain(stderr.lines())
                .any(|l| l.contains(t.as_str()))
            {
                return Err(format!(
                    "book/outputs.txt line {}: the output of `podnet {}` has no line containing `{t}` any more",
                    e.line_no,
                    e.args.join(" ")
                ));
            }
        }
        let text = render(e, &stdout, &stderr, code);
        let path = out_dir.join(format!("{}.txt", e.name));
        let old = fs::read_to_string(&path).unwrap_or_default();
        if old != text {
            changed.push(format!("book/src/out/{}.txt", e.name));
            if !check_only {
                fs::write(&path, &text)
                    .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
            }
        }
    }
    if changed.is_empty() {
        println!("book: {} command outputs up to date", manifest.len());
        Ok(())
    } else if check_only {
        Err(format!(
            "{} book outputs differ from what podnet prints now (run `cargo xtask book` and review the diff):\n  {}",
            changed.len(),
            changed.join("\n  ")
        ))
    } else {
        println!(
            "book: rewrote {} output(s) from the current podnet (commit them if this is a change):\n  {}",
            changed.len(),
            changed.join("\n  ")
        );
        Ok(())
    }
}

/// Every markdown file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for entry in rd {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The targets of `{{#include ...}}` and `{{#rustdoc_include ...}}` in a chapter, without
/// their `:anchor` or `:line` suffix.
pub(crate) fn includes(md: &str) -> Vec<String> {
    let mut found = Vec::new();
    for directive in ["{{#include ", "{{#rustdoc_include "] {
        let mut rest = md;
        while let Some(i) = rest.find(directive) {
            rest = &rest[i + directive.len()..];
            let end = rest.find("}}").unwrap_or(rest.len());
            let target = rest[..end].trim();
            let path = target.split(':').next().unwrap_or(target).trim();
            found.push(path.to_string());
            rest = &rest[end..];
        }
    }
    found
}

/// The words that follow `podnet ` where the book writes a command: in fenced code blocks
/// (not the YAML ones) and in inline code spans. Returns (line number, word).
pub(crate) fn podnet_words(md: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fence: Option<String> = None;
    for (i, line) in md.lines().enumerate() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim().to_string()),
            };
            continue;
        }
        let code_parts: Vec<&str> = match &fence {
            Some(info) if info.starts_with("yaml") || info.starts_with("json") => Vec::new(),
            Some(_) => vec![line],
            None => line.split('`').skip(1).step_by(2).collect(),
        };
        for part in code_parts {
            let mut rest = part;
            while let Some(pos) = rest.find("podnet ") {
                let before = rest[..pos].chars().last();
                let after = &rest[pos + "podnet ".len()..];
                rest = after;
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                    continue;
                }
                let word: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                if word.is_empty() || word.starts_with('-') {
                    continue;
                }
                found.push((i + 1, word));
            }
        }
    }
    found
}

/// Problems found in the book, one line each; empty when the book matches the code.
pub(crate) fn check_book(
    book: &Path,
    manifest: &[Entry],
    subcommands: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let src = book.join("src");
    let mut problems = Vec::new();
    let names: BTreeSet<&str> = manifest.iter().map(|e| e.name.as_str()).collect();
    let mut used = BTreeSet::new();
    let rel = |p: &Path| {
        p.strip_prefix(workspace_root())
            .unwrap_or(p)
            .display()
            .to_string()
    };

    let summary = src.join("SUMMARY.md");
    let summary_text = fs::read_to_string(&summary)
        .map_err(|e| format!("cannot read {}: {e}", summary.display()))?;
    for link in summary_links(&summary_text) {
        if !src.join(&link).is_file() {
            problems.push(format!("SUMMARY.md links to {link}, which does not exist"));
        }
    }

    for md in markdown_files(&src)? {
        let text =
            fs::read_to_string(&md).map_err(|e| format!("cannot read {}: {e}", md.display()))?;
        let dir = md.parent().unwrap_or(&src);
        for target in includes(&text) {
            let path = dir.join(&target);
            if !path.is_file() {
                if let Some(name) = out_name(&target) {
                    if names.contains(name) {
                        used.insert(name.to_string());
                        continue; // generated by this run (--check only reads)
                    }
                }
                problems.push(format!(
                    "{}: includes {target}, which does not exist",
                    rel(&md)
                ));
                continue;
            }
            if let Some(name) = out_name(&target) {
                if names.contains(name) {
                    used.insert(name.to_string());
                } else {
                    problems.push(format!(
                        "{}: includes {target}, which book/outputs.txt does not generate",
                        rel(&md)
                    ));
                }
            }
        }
        for (line, word) in podnet_words(&text) {
            if !subcommands.contains(&word) {
                problems.push(format!(
                    "{}:{line}: `podnet {word}` is no podnet subcommand",
                    rel(&md)
                ));
            }
        }
    }
    for e in manifest {
        if !used.contains(&e.name) {
            problems.push(format!(
                "book/outputs.txt line {}: `{}` is included by no chapter",
                e.line_no, e.name
            ));
        }
    }
    Ok(problems)
}

/// `out/NAME.txt` (or `../out/NAME.txt` from a subdirectory) -> `NAME`.
fn out_name(target: &str) -> Option<&str> {
    let mut t = target;
    while let Some(rest) = t.strip_prefix("../") {
        t = rest;
    }
    t.strip_prefix("out/")?.strip_suffix(".txt")
}

/// The `(file.md)` targets of SUMMARY.md's links.
fn summary_links(summary: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = summary;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let link = &rest[..end];
        if link.ends_with(".md") && !link.contains("://") {
            links.push(link.to_string());
        }
        rest = &rest[end..];
    }
    links
}

/// The mdbook binary: on PATH, in cargo's bin directory, or installed there now.
fn ensure_mdbook() -> Result<PathBuf> {
    let cargo_bin = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| {
            h.join("bin")
                .join(format!("mdbook{}", env::consts::EXE_SUFFIX))
        });
    let candidates: Vec<PathBuf> = std::iter::once(PathBuf::from("mdbook"))
        .chain(cargo_bin.clone())
        .collect();
    for c in &candidates {
        if let Ok(out) = Command::new(c).arg("--version").output() {
            if out.status.success() {
                return Ok(c.clone());
            }
        }
    }
    println!("book: mdbook not found; installing mdbook {MDBOOK_VERSION} with cargo");
    run(&mut cargo_with(&[
        "install",
        "mdbook",
        "--version",
        MDBOOK_VERSION,
        "--no-default-features",
        "--features",
        "search",
    ]))?;
    for c in &candidates {
        if Command::new(c).arg("--version").output().is_ok() {
            return Ok(c.clone());
        }
    }
    Err("installed mdbook but cannot find it on PATH or in cargo's bin directory".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help the book shows, generated from `podnet --help` by `cargo xtask book`.
    fn committed_subcommands() -> BTreeSet<String> {
        let help = fs::read_to_string(book_dir().join("src/out/help.txt"))
            .expect("book/src/out/help.txt (run cargo xtask book)");
        parse_subcommands(&help)
    }

    /// The book as committed matches the code: includes exist, every `podnet X` is a
    /// subcommand, the manifest and the chapters agree.
    #[test]
    fn the_book_has_not_drifted() {
        let manifest = read_manifest(&book_dir().join("outputs.txt")).unwrap();
        let subcommands = committed_subcommands();
        for expected in ["run", "trace", "tcpdump", "conntrack", "explain", "check"] {
            assert!(subcommands.contains(expected), "{subcommands:?}");
        }
        let problems = check_book(&book_dir(), &manifest, &subcommands).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        for e in &manifest {
            assert!(
                e.args[0].starts_with('-') || subcommands.contains(&e.args[0]),
                "{e:?}"
            );
            let path = book_dir().join(format!("src/out/{}.txt", e.name));
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("{} is missing: run cargo xtask book", path.display()));
            assert!(text.starts_with("$ podnet "), "{}", path.display());
        }
    }

    #[test]
    fn parses_clap_commands() {
        let help = "Usage: podnet <COMMAND>\n\nCommands:\n  run            Run\n  iptables-save  Rules\n  help           Print\n\nOptions:\n  -h, --help\n";
        let set = parse_subcommands(help);
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            ["iptables-save", "run"]
        );
    }

    #[test]
    fn parses_the_manifest() {
        let m = parse_manifest(
            "# comment\nseed-run | run examples/seed.yaml\nx from=\"node-a PREROUTING\" lines=3 exit=1 | tcpdump f.yaml -- host 1.2.3.4\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].args, ["run", "examples/seed.yaml"]);
        assert_eq!(m[1].from.as_deref(), Some("node-a PREROUTING"));
        assert_eq!((m[1].lines, m[1].exit), (Some(3), 1));
        assert!(parse_manifest("a | run\na | run\n").is_err());
        assert!(parse_manifest("a bogus=1 | run\n").is_err());
        assert!(parse_manifest("no pipe here\n").is_err());
    }

    #[test]
    fn renders_cuts_and_exit_codes() {
        let mut e = parse_manifest("n from=c lines=2 | run \"a b\"\n").unwrap()[0].clone();
        assert_eq!(
            render(&e, "a\nb\nc\nd\ne\n", "", 0),
            "$ podnet run 'a b'\n...\nc\nd\n...\n"
        );
        e.from = None;
        e.lines = None;
        e.tail = Some(1);
        assert_eq!(
            render(&e, "a\nb\n", "err\n", 1),
            "$ podnet run 'a b'\n...\nerr\n$ echo $?\n1\n"
        );
    }

    #[test]
    fn finds_includes_and_podnet_words() {
        let md = "Run `podnet run x.yaml` or `podnet-cli`.\n\n```console\n$ podnet trace f --flow web\ncargo run -p podnet --example two_nodes\n```\n\n```yaml\nkind: podnet frobnicate\n```\n{{#include ../../examples/seed.yaml}}\n{{#include out/a.txt:3:5}}\n";
        assert_eq!(
            podnet_words(md),
            [(1, "run".to_string()), (4, "trace".to_string())]
        );
        assert_eq!(includes(md), ["../../examples/seed.yaml", "out/a.txt"]);
    }
}
