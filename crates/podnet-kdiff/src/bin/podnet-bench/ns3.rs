//! podnet against ns-3 on the same two workloads: the scenarios `bench/ns3-conns.yaml` and
//! `bench/ns3-bulk.yaml` run by the release CLI (`podnet run FILE --json -q`), and
//! `bench/ns3/podnet_compare.cc` (built here with g++ against Debian's libns3-dev) for the
//! same path, links and TCP settings. Both are timed as whole processes, wall clock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one process run gave.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Wall seconds of the whole process.
    pub wall: f64,
    /// CPU seconds of the process (user + system): less disturbed by other work on the
    /// machine than `wall`.
    pub cpu: f64,
    /// Simulated seconds at the end.
    pub simulated: f64,
    /// Frames delivered, when the report has the count.
    pub frames: Option<u64>,
}

/// Debian packages the ns-3 program needs: ns-3 itself, and GSL, whose `.so` links the
/// ns-3 pkg-config files name.
const PACKAGES: &[&str] = &["libns3-dev", "libgsl-dev"];
/// The ns-3 modules the program links.
const MODULES: &[&str] = &[
    "ns3-core",
    "ns3-network",
    "ns3-internet",
    "ns3-point-to-point",
    "ns3-applications",
    "ns3-traffic-control",
];

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs libns3-dev (and GSL's development files) with apt unless present. Root only.
pub fn ensure_ns3() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !podnet_kdiff::sys::is_root() {
        return Err(format!(
            "{} not installed, and installing needs root (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    eprintln!("podnet-bench: installing {} (apt)", missing.join(" "));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if install() {
        return Ok(());
    }
    // The package lists may be missing or stale.
    let updated = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .is_ok_and(|s| s.success());
    if updated && install() {
        Ok(())
    } else {
        Err(format!("apt-get install {} failed", missing.join(" ")))
    }
}

/// Builds the ns-3 program into `out_dir` unless it is newer than its source; its path.
pub fn build(root: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let src = root.join("bench/ns3/podnet_compare.cc");
    let exe = out_dir.join("podnet_compare");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(s), Some(e)) = (mtime(&src), mtime(&exe)) {
        if e > s {
            return Ok(exe);
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs"])
        .args(MODULES)
        .output()
        .map_err(|e| format!("pkg-config: {e}"))?;
    if !flags.status.success() {
        return Err(format!(
            "pkg-config {}: {}",
            MODULES.join(" "),
            String::from_utf8_lossy(&flags.stderr).trim()
        ));
    }
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    eprintln!("podnet-bench: g++ -O2 {}", src.display());
    let out = Command::new("g++")
        .args(["-O2", "-std=c++17"])
        .arg(&src)
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| format!("g++: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "g++ {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(exe)
}

/// Runs a process to its end; its stdout, wall seconds and CPU seconds.
fn timed(cmd: &mut Command) -> Result<(String, f64, f64), String> {
    let cpu = podnet_kdiff::sys::children_cpu_seconds();
    let start = Instant::now();
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = podnet_kdiff::sys::children_cpu_seconds() - cpu;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), wall, cpu))
}

/// The text after the first `"key": ` of `json`, up to the next `,` or `}` or newline,
/// without quotes. Enough for the flat fields read here; no JSON parser in this crate.
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\": ");
    let rest = &json[json.find(&pat)? + pat.len()..];
    let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}

/// A podnet duration as reported (`8.160s`, `445.533ms`, `120us`) in seconds.
fn seconds(s: &str) -> Option<f64> {
    for (unit, scale) in [
        ("ms", 1e-3),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ns", 1e-9),
        ("s", 1.0),
    ] {
        if let Some(v) = s.strip_suffix(unit) {
            return v.parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}

/// One run of scenario `file` by the podnet CLI; also the first connection's bytes sent and
/// received.
pub fn podnet_run(podnet: &Path, file: &Path) -> Result<(Sample, u64, u64), String> {
    let (json, wall, cpu) = timed(
        Command::new(podnet)
            .arg("run")
            .arg(file)
            .args(["--json", "-q", "--until", "600s"]),
    )?;
    let simulated = field(&json, "endTime")
        .and_then(seconds)
        .ok_or_else(|| format!("{}: no endTime in the report", file.display()))?;
    let frames = field(&json, "frames").and_then(|v| v.parse().ok());
    let sent = field(&json, "bytesSent").and_then(|v| v.parse().ok());
    let received = field(&json, "bytesReceived").and_then(|v| v.parse().ok());
    Ok((
        Sample {
            wall,
            cpu,
            simulated,
            frames,
        },
        sent.unwrap_or(0),
        received.unwrap_or(0),
    ))
}

/// The ns-3 program's arguments for the workload of scenario `file` (its first flow):
/// `conns COUNT REQ RESP` for HTTP connections, with the request and response sizes given
/// (podnet's, from its report), or `bulk BYTES` for an upload.
pub fn ns3_args(file: &Path, req: u64, resp: u64) -> Result<Vec<String>, String> {
    let loaded = podnet_scenario::load_files(&[file]).map_err(|e| e.to_string())?;
    let flow = loaded
        .scenario
        .flows
        .first()
        .ok_or_else(|| format!("{}: no Traffic", file.display()))?;
    match flow.request {
        podnet::Request::Http { .. } => Ok(vec![
            "conns".into(),
            flow.count.to_string(),
            req.to_string(),
            resp.to_string(),
        ]),
        podnet::Request::Upload(n) if flow.count == 1 => Ok(vec!["bulk".into(), n.to_string()]),
        _ => Err(format!(
            "{}: the ns-3 program runs HTTP connections or one upload",
            file.display()
        )),
    }
}

/// One run of the ns-3 program with `args` (`conns N REQ RESP` or `bulk BYTES`).
pub fn ns3_run(exe: &Path, args: &[String]) -> Result<Sample, String> {
    let (json, wall, cpu) = timed(Command::new(exe).args(args))?;
    let num = |k: &str| {
        field(&json, k)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("ns-3 program: no {k} in {json:?}"))
    };
    Ok(Sample {
        wall,
        cpu,
        simulated: num("simulated_s")?,
        frames: Some(num("frames")? as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_scenarios_are_the_ns3_workloads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let conns = ns3_args(&root.join("bench/ns3-conns.yaml"), 62, 84).unwrap();
        assert_eq!(conns, ["conns", "10000", "62", "84"]);
        let bulk = ns3_args(&root.join("bench/ns3-bulk.yaml"), 0, 0).unwrap();
        assert_eq!(bulk, ["bulk", &(64u64 << 20).to_string()]);
    }

    #[test]
    fn reads_flat_fields_and_durations() {
        let j = "{\n  \"endTime\": \"445.533ms\",\n  \"frames\": 12,\n \"x\": \"8.160s\"}";
        assert_eq!(field(j, "endTime").and_then(seconds), Some(0.445533));
        assert_eq!(field(j, "frames"), Some("12"));
        assert_eq!(field(j, "x").and_then(seconds), Some(8.16));
        assert_eq!(field(j, "y"), None);
    }
}
