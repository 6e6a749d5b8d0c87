//! Decoding one frame or IP packet snapshot into a [`PacketInfo`] (bounds-checked: any bytes).

use podnet::tcpdump::Formatter;
use smoltcp::time::Instant;

use crate::api::PacketInfo;

/// flannel's VXLAN port, and the IANA one.
const VXLAN_PORTS: [u16; 2] = [8472, 4789];
/// VXLAN inside VXLAN is decoded this deep at most.
const MAX_DEPTH: u8 = 2;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ip4(b: &[u8], at: usize) -> String {
    match b.get(at..at + 4) {
        Some(a) => format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]),
        None => String::new(),
    }
}

/// The tcpdump flags of a TCP flags byte, as tcpdump prints them (`S`, `S.`, `P.`, `R.`).
fn tcp_flags(f: u8) -> String {
    let mut s = String::new();
    // tcpdump's `tcp_flag_values` order.
    for (bit, c) in [
        (0x01, 'F'),
        (0x02, 'S'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, '.'),
        (0x20, 'U'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

/// The `tcpdump -n -S` line of an Ethernet frame, without the timestamp.
fn line(frame: &[u8]) -> String {
    let l = Formatter::absolute().line(Instant::ZERO, frame);
    // `00:00:00.000000 ` is 16 bytes.
    l.get(16..).unwrap_or_default().to_string()
}

/// A packet snapshot: `ip` when `bytes` is an IPv4 packet (hook events), else an Ethernet
/// frame.
pub fn packet_info(bytes: &[u8], ip: bool) -> PacketInfo {
    if ip {
        let mut frame = vec![0u8; 14];
        frame[12] = 0x08;
        frame.extend_from_slice(bytes);
        decode(&frame, 0)
    } else {
        decode(bytes, 0)
    }
}

fn other(frame: &[u8], len: usize) -> PacketInfo {
    PacketInfo {
        proto: "other",
        src: String::new(),
        dst: String::new(),
        sport: None,
        dport: None,
        flags: None,
        len: len as u32,
        vxlan: None,
        line: line(frame),
    }
}

fn decode(frame: &[u8], depth: u8) -> PacketInfo {
    let ethertype = be16(frame, 12);
    let p = frame.get(14..).unwrap_or_default();
    match ethertype {
        Some(0x0806) => PacketInfo {
            proto: "arp",
            src: ip4(p, 14),
            dst: ip4(p, 24),
            ..other(frame, p.len())
        },
        Some(0x0800) if p.len() >= 20 && p[0] >> 4 == 4 => {
            let hl = usize::from(p[0] & 0x0f) * 4;
            let len = be16(p, 2).map_or(p.len(), usize::from);
            let l4 = p.get(hl..).unwrap_or_default();
            let mut info = PacketInfo {
                src: ip4(p, 12),
                dst: ip4(p, 16),
                ..other(frame, len)
            };
            match p[9] {
                6 => {
                    info.proto = "tcp";
                    info.sport = be16(l4, 0);
                    info.dport = be16(l4, 2);
                    info.flags = l4.get(13).map(|f| tcp_flags(*f));
                }
                17 => {
                    info.proto = "udp";
                    info.sport = be16(l4, 0);
                    info.dport = be16(l4, 2);
                    let vxlan = info.dport.is_some_and(|d| VXLAN_PORTS.contains(&d));
                    if vxlan && depth < MAX_DEPTH {
                        // UDP header (8) + VXLAN header (8), then the inner frame.
                        if let Some(inner) = l4.get(16..).filter(|f| f.len() >= 14) {
                            info.vxlan = Some(Box::new(decode(inner, depth + 1)));
                        }
                    }
                }
                1 => info.proto = "icmp",
                _ => {}
            }
            info
        }
        _ => other(frame, frame.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_bytes_decode_without_panicking() {
        let mut seed = 7u64;
        for n in 0..2000usize {
            let len = n % 120;
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b.push((seed >> 56) as u8);
            }
            if len > 14 {
                b[12] = 0x08;
                b[13] = if n % 3 == 0 { 0x06 } else { 0 };
                b[14] = 0x45;
            }
            let _ = packet_info(&b, n % 2 == 0);
        }
    }

    #[test]
    fn tcp_flags_read_as_tcpdump_prints_them() {
        assert_eq!(tcp_flags(0x02), "S");
        assert_eq!(tcp_flags(0x12), "S.");
        assert_eq!(tcp_flags(0x18), "P.");
        assert_eq!(tcp_flags(0x11), "F.");
        assert_eq!(tcp_flags(0x04), "R");
        assert_eq!(tcp_flags(0x14), "R.");
        assert_eq!(tcp_flags(0x19), "FP.");
    }
}
