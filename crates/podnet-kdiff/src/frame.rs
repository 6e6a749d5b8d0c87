//! Reading and comparing frames: tuples, the fields that differ by nature, and a short account
//! of where two frames differ.

use podnet::conntrack::Tuple;
use smoltcp::wire::Ipv4Address;

/// Ethernet header length.
pub const ETH: usize = 14;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ip4(b: &[u8], at: usize) -> Ipv4Address {
    Ipv4Address::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The tuple of an IPv4 packet (TCP/UDP ports, ICMP id and type/code), as conntrack keys it.
pub fn ip_tuple(ip: &[u8]) -> Option<Tuple> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let proto = ip[9];
    let (src, dst) = (ip4(ip, 12), ip4(ip, 16));
    let l4 = ip.get(ihl..)?;
    let (sport, dport) = match proto {
        6 | 17 if l4.len() >= 4 => (be16(l4, 0), be16(l4, 2)),
        1 if l4.len() >= 8 => (be16(l4, 4), u16::from(l4[0]) << 8 | u16::from(l4[1])),
        _ => (0, 0),
    };
    Some(Tuple {
        src,
        dst,
        sport,
        dport,
        proto,
    })
}

/// The IPv4 packet of an Ethernet frame, if it carries one.
pub fn ip_of(frame: &[u8]) -> Option<&[u8]> {
    (frame.len() >= ETH + 20 && be16(frame, 12) == 0x0800).then(|| &frame[ETH..])
}

/// The original tuple of a `conntrack -L` line (`tcp 6 120 SYN_SENT src=.. dst=.. sport=..
/// dport=.. ...`).
pub fn ct_line_orig(line: &str) -> Option<Tuple> {
    let mut words = line.split_whitespace();
    let _name = words.next()?;
    let proto: u8 = words.next()?.parse().ok()?;
    let (mut src, mut dst, mut sport, mut dport) = (None, None, 0u16, 0u16);
    let mut ty = 0u16;
    let mut code = 0u16;
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            continue;
        };
        match k {
            "src" if src.is_none() => src = v.parse().ok(),
            "dst" if dst.is_none() => dst = v.parse().ok(),
            "sport" if sport == 0 => sport = v.parse().ok()?,
            "dport" if dport == 0 => {
                dport = v.parse().ok()?;
                break;
            }
            "id" if sport == 0 => {
                sport = v.parse().ok()?;
                break;
            }
            "type" => ty = v.parse().ok()?,
            "code" => code = v.parse().ok()?,
            _ => {}
        }
    }
    if proto == 1 {
        dport = ty << 8 | code;
    }
    Some(Tuple {
        src: src?,
        dst: dst?,
        sport,
        dport,
        proto,
    })
}

/// Whether `frame` is a packet the node built itself in answer to `ingress` (an ICMP error or
/// a TCP reset going back to the sender), where the IP ID is the sending stack's own counter.
pub fn node_built(frame: &[u8], ingress: &[u8]) -> bool {
    let (Some(ip), Some(iip)) = (ip_of(frame), ip_of(ingress)) else {
        return false;
    };
    if ip4(ip, 16) != ip4(iip, 12) {
        return false;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    match ip[9] {
        1 => ip
            .get(ihl)
            .is_some_and(|t| matches!(t, 3 | 4 | 5 | 11 | 12)),
        6 => ip.get(ihl + 13).is_some_and(|f| f & 0x04 != 0),
        _ => false,
    }
}

/// The IPv4 packet of a frame as the node's hooks see it: the frame's own, or the one a
/// VXLAN frame encapsulates.
pub fn hooked_ip(frame: &[u8]) -> Option<&[u8]> {
    if is_vxlan(frame) {
        let ihl = usize::from(frame[ETH] & 0x0f) * 4;
        return ip_of(frame.get(ETH + ihl + 16..)?);
    }
    ip_of(frame)
}

/// Whether `frame` is VXLAN (UDP to port 8472) over IPv4.
pub fn is_vxlan(frame: &[u8]) -> bool {
    let Some(ip) = ip_of(frame) else { return false };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    ip[9] == 17 && ip.len() >= ihl + 8 && be16(ip, ihl + 2) == 8472
}

/// The outer UDP source port of a VXLAN frame.
pub fn vxlan_sport(frame: &[u8]) -> Option<u16> {
    if !is_vxlan(frame) {
        return None;
    }
    let ihl = usize::from(frame[ETH] & 0x0f) * 4;
    Some(be16(frame, ETH + ihl))
}

/// Byte ranges (in the frame) that differ by nature and are not compared.
#[derive(Clone, Debug, Default)]
pub struct Mask {
    ranges: Vec<(usize, usize, &'static str)>,
    /// Masked ranges of which only "zero or not" is compared (a checksum over a masked
    /// field: whether one is sent at all is not a matter of chance).
    zero_or_not: Vec<(usize, usize)>,
}

impl Mask {
    /// The masked ranges for a frame podnet sent in answer to `ingress`.
    pub fn for_frame(frame: &[u8], ingress: &[u8]) -> Mask {
        let mut m = Mask::default();
        if node_built(frame, ingress) {
            // IP ID (the kernel's per-destination generator) and so the header checksum.
            m.ranges
                .push((ETH + 4, ETH + 6, "IP ID of a packet the node built"));
            m.ranges
                .push((ETH + 10, ETH + 12, "IP header checksum (covers the IP ID)"));
        }
        if is_vxlan(frame) {
            let ihl = usize::from(frame[ETH] & 0x0f) * 4;
            m.ranges
                .push((ETH + 4, ETH + 6, "outer IP ID of a VXLAN packet"));
            m.ranges
                .push((ETH + 10, ETH + 12, "outer IP header checksum"));
            m.ranges.push((
                ETH + ihl,
                ETH + ihl + 2,
                "VXLAN UDP source port (the kernel's flow hash has a random seed)",
            ));
            m.ranges.push((
                ETH + ihl + 6,
                ETH + ihl + 8,
                "VXLAN UDP checksum (covers the source port)",
            ));
            m.zero_or_not.push((ETH + ihl + 6, ETH + ihl + 8));
        }
        m
    }

    fn masked(&self, at: usize) -> bool {
        self.ranges.iter().any(|(a, b, _)| (*a..*b).contains(&at))
    }

    /// Whether `a` and `b` are equal outside the mask.
    pub fn equal(&self, a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .enumerate()
                .all(|(i, (x, y))| x == y || self.masked(i))
            && self
                .zero_or_not
                .iter()
                .all(|&(s, e)| a[s..e].iter().all(|x| *x == 0) == b[s..e].iter().all(|x| *x == 0))
    }

    /// Whether `a` and `b` are the same packet of the same flow, maybe different in detail:
    /// same length, same L3/L4 addressing (outer and, for VXLAN, inner), outside the mask.
    pub fn same_flow(&self, a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let key = |f: &[u8]| {
            let outer = ip_of(f).and_then(ip_tuple);
            let inner = if is_vxlan(f) {
                let ihl = usize::from(f[ETH] & 0x0f) * 4;
                // Outer IP + UDP (8) + VXLAN (8), then the inner Ethernet frame.
                f.get(ETH + ihl + 16..).and_then(ip_of).and_then(ip_tuple)
            } else {
                None
            };
            (outer.map(|t| (t.src, t.dst, t.proto, t.dport)), inner)
        };
        key(a) == key(b)
            && (is_vxlan(a) || ip_of(a).and_then(ip_tuple) == ip_of(b).and_then(ip_tuple))
    }

    /// Whether anything is masked.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// Names of the header fields at a byte offset of an Ethernet/IPv4 frame.
fn field_at(frame: &[u8], at: usize) -> String {
    if at < 6 {
        return "dst MAC".into();
    }
    if at < 12 {
        return "src MAC".into();
    }
    if at < ETH {
        return "ethertype".into();
    }
    let Some(ip) = ip_of(frame) else {
        return format!("byte {at}");
    };
    let o = at - ETH;
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let name = match o {
        0 => "IP version/IHL",
        1 => "IP DSCP/ECN",
        2 | 3 => "IP total length",
        4 | 5 => "IP ID",
        6 | 7 => "IP flags/fragment offset",
        8 => "IP TTL",
        9 => "IP protocol",
        10 | 11 => "IP header checksum",
        12..=15 => "IP src",
        16..=19 => "IP dst",
        _ if o < ihl => "IP options",
        _ => {
            let l4 = o - ihl;
            return match (ip[9], l4) {
                (6 | 17, 0 | 1) => "src port".into(),
                (6 | 17, 2 | 3) => "dst port".into(),
                (6, 4..=7) => "TCP seq".into(),
                (6, 8..=11) => "TCP ack".into(),
                (6, 12 | 13) => "TCP offset/flags".into(),
                (6, 14 | 15) => "TCP window".into(),
                (6, 16 | 17) => "TCP checksum".into(),
                (6, _) if l4 < 20 => "TCP urgent".into(),
                (6, _) => "TCP options/payload".into(),
                (17, 4 | 5) => "UDP length".into(),
                (17, 6 | 7) => "UDP checksum".into(),
                (17, _) => "UDP payload".into(),
                (1, 0) => "ICMP type".into(),
                (1, 1) => "ICMP code".into(),
                (1, 2 | 3) => "ICMP checksum".into(),
                (1, _) => "ICMP body".into(),
                _ => format!("L4 byte {l4}"),
            };
        }
    };
    name.into()
}

/// A short account of how `kernel` differs from `podnet`: the fields, with both values for
/// the small ones.
pub fn describe_diff(podnet: &[u8], kernel: &[u8], mask: &Mask) -> String {
    if podnet.len() != kernel.len() {
        return format!(
            "length {} (podnet) vs {} (kernel){}",
            podnet.len(),
            kernel.len(),
            first_fields(podnet, kernel, mask)
        );
    }
    first_fields(podnet, kernel, mask)
        .trim_start_matches("; ")
        .to_string()
}

fn first_fields(a: &[u8], b: &[u8], mask: &Mask) -> String {
    let mut fields: Vec<String> = Vec::new();
    for &(s, e) in &mask.zero_or_not {
        if e <= a.len().min(b.len())
            && a[s..e].iter().all(|x| *x == 0) != b[s..e].iter().all(|x| *x == 0)
        {
            fields.push("UDP checksum (zero or not)".into());
        }
    }
    for i in 0..a.len().min(b.len()) {
        if a[i] != b[i] && !mask.masked(i) {
            let f = field_at(a, i);
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    if fields.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for f in fields.iter().take(6) {
        let v = |fr: &[u8]| value_of(fr, f);
        out.push_str(&format!("; {f}: {} vs {}", v(a), v(b)));
    }
    if fields.len() > 6 {
        out.push_str(&format!("; and {} more fields", fields.len() - 6));
    }
    out
}

fn value_of(frame: &[u8], field: &str) -> String {
    let mac = |at: usize| {
        frame
            .get(at..at + 6)
            .map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default()
    };
    let Some(ip) = ip_of(frame) else {
        return match field {
            "dst MAC" => mac(0),
            "src MAC" => mac(6),
            _ => "?".into(),
        };
    };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let l4 = |o: usize| ip.get(ihl + o..ihl + o + 2).map(|s| be16(s, 0));
    match field {
        "dst MAC" => mac(0),
        "src MAC" => mac(6),
        "IP TTL" => ip[8].to_string(),
        "IP DSCP/ECN" => format!("tos {:#04x}", ip[1]),
        "IP ID" => format!("{:#06x}", be16(ip, 4)),
        "IP src" => ip4(ip, 12).to_string(),
        "IP dst" => ip4(ip, 16).to_string(),
        "IP header checksum" => format!("{:#06x}", be16(ip, 10)),
        "IP flags/fragment offset" => format!("{:#06x}", be16(ip, 6)),
        "IP total length" => be16(ip, 2).to_string(),
        "src port" => l4(0).map_or("?".into(), |v| v.to_string()),
        "dst port" => l4(2).map_or("?".into(), |v| v.to_string()),
        "TCP checksum" => l4(16).map_or("?".into(), |v| format!("{v:#06x}")),
        "UDP checksum" | "UDP checksum (zero or not)" => {
            l4(6).map_or("?".into(), |v| format!("{v:#06x}"))
        }
        "TCP window" => l4(14).map_or("?".into(), |v| v.to_string()),
        "ICMP type" => ip.get(ihl).map_or("?".into(), |v| v.to_string()),
        "ICMP code" => ip.get(ihl + 1).map_or("?".into(), |v| v.to_string()),
        _ => "..".into(),
    }
}

/// One `tcpdump -n` line (without a timestamp) for a frame.
pub fn tcpdump_line(frame: &[u8]) -> String {
    let mut f = podnet::tcpdump::Formatter::absolute();
    let line = f.line(podnet::Instant::ZERO, frame);
    // Drop the timestamp podnet's formatter puts first.
    let mut line = line
        .split_once(' ')
        .map_or(line.clone(), |(_, rest)| rest.to_string())
        .replace('\n', " | ");
    if let Some(sport) = vxlan_sport(frame) {
        let ihl = usize::from(frame[ETH] & 0x0f) * 4;
        line = format!(
            "{line} (outer sport {sport}, udp sum {:#06x}, ip id {:#06x})",
            be16(frame, ETH + ihl + 6),
            be16(frame, ETH + 4)
        );
    }
    line
}

/// Whether a frame is ARP.
pub fn is_arp(frame: &[u8]) -> bool {
    frame.len() >= ETH && be16(frame, 12) == 0x0806
}

/// An ARP request's target address.
pub fn arp_request_target(frame: &[u8]) -> Option<Ipv4Address> {
    (is_arp(frame) && frame.len() >= ETH + 28 && be16(frame, ETH + 6) == 1)
        .then(|| ip4(frame, ETH + 24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_line_original_tuple() {
        let t = ct_line_orig("tcp      6 120 SYN_SENT src=10.244.0.5 dst=10.96.0.10 sport=60916 dport=80 [UNREPLIED] src=10.244.1.20 dst=10.244.0.5 sport=80 dport=60916 mark=0 use=1").unwrap();
        assert_eq!(t.src, Ipv4Address::new(10, 244, 0, 5));
        assert_eq!(t.dst, Ipv4Address::new(10, 96, 0, 10));
        assert_eq!((t.sport, t.dport, t.proto), (60916, 80, 6));
    }

    fn icmp_unreachable(tos: u8, id: u16) -> Vec<u8> {
        let mut f = vec![0u8; ETH + 20 + 8];
        f[12] = 0x08;
        f[ETH] = 0x45;
        f[ETH + 1] = tos;
        f[ETH + 4..ETH + 6].copy_from_slice(&id.to_be_bytes());
        f[ETH + 9] = 1;
        f[ETH + 12..ETH + 16].copy_from_slice(&[10, 244, 0, 1]);
        f[ETH + 16..ETH + 20].copy_from_slice(&[10, 244, 0, 2]);
        f[ETH + 20] = 3;
        f[ETH + 21] = 3;
        f
    }

    #[test]
    fn node_built_packets_have_their_ip_id_masked_and_nothing_else() {
        let mut ingress = vec![0u8; ETH + 40];
        ingress[12] = 0x08;
        ingress[ETH] = 0x45;
        ingress[ETH + 9] = 6;
        ingress[ETH + 12..ETH + 16].copy_from_slice(&[10, 244, 0, 2]);
        let a = icmp_unreachable(0, 1);
        let m = Mask::for_frame(&a, &ingress);
        assert!(m.equal(&a, &icmp_unreachable(0, 0x4242)));
        let b = icmp_unreachable(0xc0, 1);
        assert!(!m.equal(&a, &b));
        assert_eq!(
            describe_diff(&a, &b, &m),
            "IP DSCP/ECN: tos 0x00 vs tos 0xc0"
        );
    }
}
