//! Go-style durations (`250ms`, `1m30s`), tc-style rates (`10Gbit`), addresses and CIDRs.

use podnet::Duration;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); `0` alone is zero.
/// Negative durations are refused. The result is rounded down to the microsecond.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (expected Go form like 250ms, 2s, 1m30s)");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.starts_with('-') {
        return Err(format!("negative duration {s:?}"));
    }
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {s:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(bad());
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut part = int.checked_mul(per).ok_or_else(bad)?;
        let mut scale = per;
        for d in frac.bytes().take(18) {
            scale /= 10;
            part += u128::from(d - b'0') * scale;
        }
        total_ns = total_ns.checked_add(part).ok_or_else(bad)?;
        if total_ns > u128::from(u64::MAX) {
            return Err(format!("duration {s:?} is too long"));
        }
        rest = tail;
    }
    Ok(Duration::from_micros((total_ns / 1000) as u64))
}

/// Formats a duration the way Go prints it (`1.5s`, `250ms`, `50µs`, `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let us = d.total_micros();
    if us == 0 {
        return "0s".to_string();
    }
    if us < 1_000 {
        return format!("{us}µs");
    }
    if us < 1_000_000 {
        return trim_frac(us, 1_000, "ms");
    }
    let (h, rem) = (us / 3_600_000_000, us % 3_600_000_000);
    let (m, rem) = (rem / 60_000_000, rem % 60_000_000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&trim_frac(rem, 1_000_000, "s"));
    out
}

fn trim_frac(v: u64, per: u64, unit: &str) -> String {
    let (i, f) = (v / per, v % per);
    if f == 0 {
        return format!("{i}{unit}");
    }
    let width = per.ilog10() as usize;
    let frac = format!("{f:0width$}");
    format!("{i}.{}{unit}", frac.trim_end_matches('0'))
}

/// Parses a rate in tc's form: a number and `bit`, `kbit`, `mbit`, `gbit` or `tbit` (any
/// case, decimal multiples), or `bps`-style bytes per second (`kbps`, `mbps`, `gbps`: tc's
/// bytes). `0` or `unlimited` mean no serialization delay (`None`).
pub fn parse_rate(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    if t == "0" || t.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let bad = || format!("invalid rate {s:?} (expected like 10Gbit, 100Mbit, 1.5Gbit)");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("missing unit in rate {s:?} (expected like 10Gbit)"))?;
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => return Err(bad()),
    };
    let bps = num * mult;
    if !bps.is_finite() || !(1.0..=1e15).contains(&bps) {
        return Err(format!("rate {s:?} is out of range (1bit to 1000Tbit)"));
    }
    Ok(Some(bps as u64))
}

/// Parses an IPv4 address.
pub fn parse_ip(s: &str) -> Result<Ipv4Address, String> {
    let parts: Vec<&str> = s.trim().split('.').collect();
    let bad = || format!("invalid IPv4 address {s:?}");
    if parts.len() != 4 {
        return Err(bad());
    }
    let mut o = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        o[i] = p.parse().map_err(|_| bad())?;
    }
    Ok(Ipv4Address::new(o[0], o[1], o[2], o[3]))
}

/// Parses an IPv4 CIDR (`10.244.0.0/16`); the address must be the network address.
pub fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    let (ip, len) = s
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("invalid CIDR {s:?} (expected like 10.244.0.0/16)"))?;
    let ip = parse_ip(ip).map_err(|e| format!("invalid CIDR {s:?}: {e}"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("invalid prefix length in CIDR {s:?} (0 to 32)"))?;
    let cidr = Ipv4Cidr::new(ip, len);
    if cidr.network().address() != ip {
        return Err(format!(
            "CIDR {s:?} has host bits set (the network is {})",
            cidr.network()
        ));
    }
    Ok(cidr)
}

/// Whether `cidr` contains `ip`.
pub fn contains(cidr: Ipv4Cidr, ip: Ipv4Address) -> bool {
    cidr.contains_addr(&ip)
}

/// Whether two CIDRs overlap.
pub fn overlaps(a: Ipv4Cidr, b: Ipv4Cidr) -> bool {
    a.contains_addr(&b.network().address()) || b.contains_addr(&a.network().address())
}

/// The broadcast (last) address of a CIDR.
pub fn broadcast(c: Ipv4Cidr) -> Ipv4Address {
    let host_bits = 32 - u32::from(c.prefix_len());
    let mask = if host_bits == 32 {
        u32::MAX
    } else {
        (1u32 << host_bits) - 1
    };
    Ipv4Address::from(u32::from(c.network().address()) | mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ms = |n| Duration::from_millis(n);
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("50µs"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1500ns"), Ok(Duration::from_micros(1)));
        for bad in [
            "",
            "5",
            "s",
            "1x",
            "-1s",
            "1..5s",
            ".s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_duration_printing() {
        assert_eq!(format_duration(Duration::from_millis(1532)), "1.532s");
        assert_eq!(format_duration(Duration::from_micros(412)), "412µs");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_duration(Duration::from_millis(90_000)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn rates_and_addresses() {
        assert_eq!(parse_rate("10Gbit"), Ok(Some(10_000_000_000)));
        assert_eq!(parse_rate("100Mbit"), Ok(Some(100_000_000)));
        assert_eq!(parse_rate("1.5gbit"), Ok(Some(1_500_000_000)));
        assert_eq!(parse_rate("unlimited"), Ok(None));
        assert!(parse_rate("10G").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_ip("10.96.0.10"), Ok(Ipv4Address::new(10, 96, 0, 10)));
        assert!(parse_ip("10.96.0").is_err());
        assert!(parse_ip("10.96.0.256").is_err());
        assert!(parse_cidr("10.244.0.0/16").is_ok());
        assert!(parse_cidr("10.244.0.1/16").is_err());
        assert!(parse_cidr("10.244.0.0/33").is_err());
    }
}
