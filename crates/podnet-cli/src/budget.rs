//! The memory budget of a run: `--max-memory`, checked between slices of virtual time against
//! the process's resident memory, so that a run too large for the machine stops with a clear
//! error instead of being killed by the kernel's OOM killer.

use podnet::Instant;
use podnet_scenario::session::Failure;

/// Share of the machine's memory a run may use by default.
const DEFAULT_SHARE: f64 = 0.8;

/// A `--max-memory` value: bytes, or no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

/// `--max-memory`'s parser.
pub fn parse_limit(s: &str) -> Result<Limit, String> {
    parse_size(s).map(Limit)
}

/// `4Gi`, `512Mi`, `1.5G`, `800M`, `65536` (bytes) or `none`: a memory size.
pub fn parse_size(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let units: [(&str, f64); 8] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|(u, m)| t.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((t, 1.0));
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Some((v * mult) as u64)),
        _ => Err(format!(
            "{s:?} is not a memory size (like 4Gi, 512Mi, 2G, or none)"
        )),
    }
}

/// `1.50 GiB`.
pub fn fmt_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.2} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

/// The process's resident memory (Linux: `/proc/self/statm`), if known.
pub fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The machine's memory (Linux: `MemTotal` in `/proc/meminfo`), if known.
fn machine() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The budget: the one given, else 80% of the machine's memory (none where it is unknown).
pub fn budget(given: Option<Limit>) -> Option<u64> {
    match given {
        Some(Limit(b)) => b,
        None => machine().map(|m| (m as f64 * DEFAULT_SHARE) as u64),
    }
}

/// Fails when the process holds more than `budget` bytes, saying where the run was.
pub fn check(budget: Option<u64>, now: Instant) -> Result<(), Failure> {
    let (Some(budget), Some(rss)) = (budget, resident()) else {
        return Ok(());
    };
    if rss <= budget {
        return Ok(());
    }
    Err(Failure::input(format!(
        "stopped at {now} of virtual time: the run holds {} of memory, more than its budget of \
         {} (--max-memory; the default is 80% of this machine's memory). Give it more with \
         --max-memory, or make the run smaller: fewer connections or a shorter --until, a \
         smaller tcpBuffer, a command that records less (run records no frames; tcpdump, \
         trace and --pcap keep more)",
        fmt_size(rss),
        fmt_size(budget)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_kubernetes_quantities() {
        assert_eq!(parse_size("4Gi"), Ok(Some(4 << 30)));
        assert_eq!(parse_size("512Mi"), Ok(Some(512 << 20)));
        assert_eq!(parse_size("2G"), Ok(Some(2_000_000_000)));
        assert_eq!(parse_size("65536"), Ok(Some(65536)));
        assert_eq!(parse_size("none"), Ok(None));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1Gi").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn a_budget_below_what_the_process_holds_fails_with_the_figures() {
        if resident().is_none() {
            return;
        }
        let e = check(Some(1), Instant::ZERO).unwrap_err();
        assert!(
            e.message.contains("more than its budget of 0.0 MiB"),
            "{}",
            e.message
        );
        assert!(check(Some(u64::MAX), Instant::ZERO).is_ok());
    }
}
