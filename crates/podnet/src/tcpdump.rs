//! One-line, `tcpdump -n`-style rendering of Ethernet frames, with virtual timestamps.
//!
//! [`Formatter::line`] gives the line `tcpdump -n` prints for a frame, e.g.
//! `00:00:00.000412 IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [S], seq 1234, win 64240, ...`;
//! [`Formatter::line_on`] gives the `tcpdump -n -i any` form, `00:00:00.000412 veth1 Out IP ...`
//! (as in tcpdump, the interface is padded to 5 columns and the direction to 3).
//!
//! Decoded like tcpdump's non-verbose printers: IPv4 (TTL, id and options are not shown and
//! checksums are not checked), TCP (flags, relative or absolute sequence numbers, window,
//! options), UDP, VXLAN on port 4789, ICMP (rare types are only named) and ARP. Not decoded:
//! application payloads (tcpdump adds e.g. `: HTTP: GET / HTTP/1.1` on port 80 or a DNS summary
//! on port 53), and other EtherTypes, which print the way tcpdump without `-e` prints a type it
//! cannot decode, minus its hex dump: `<src mac> > <dst mac>, ethertype IPv6 (0x86dd), length 62`.
//!
//! A VXLAN packet gives the outer line, `\n`, then the inner frame's line without timestamp: the
//! two lines tcpdump prints. Every other frame gives a single line without newline.
//!
//! Input is untrusted and no input panics. Headers are read through smoltcp's `new_checked`
//! views. Where a view rejects a header, the line says so as tcpdump would (`[|tcp]`,
//! `truncated-ip - 20 bytes missing!`, `bad-hlen 12`, ...), reading the fields that needs with
//! bounds-checked `get`, as is done for the VXLAN header and the port quoted in an ICMP error,
//! which smoltcp has no view for.
//!
//! Relative sequence numbers follow tcpdump: per conversation (one entry for both directions)
//! the first segment with ACK set records both initial sequence numbers, a SYN resets them, and
//! segments without ACK print absolute numbers. State is kept in a `BTreeMap`, so the output of
//! a run is deterministic.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt::Write;

use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet, IpProtocol,
    Ipv4Address, Ipv4Packet, TcpOption, TcpPacket, UdpPacket,
};

/// Appends formatted text to a `String` (which cannot fail).
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

const VXLAN_PORT: u16 = 4789;
/// Frames nested deeper than this inside VXLAN are not decoded.
const MAX_ENCAP_DEPTH: u8 = 4;

type Addrs = (Ipv4Address, Ipv4Address);
type Endpoint = (Ipv4Address, u16);

/// Formats a virtual time as `HH:MM:SS.uuuuuu` since virtual time zero. Hours keep counting
/// past 24 (`100:00:00.000000`); a negative instant gets a leading `-`.
pub fn format_time(at: Instant) -> String {
    let sign = if at.total_micros() < 0 { "-" } else { "" };
    let us = at.total_micros().unsigned_abs();
    let s = us / 1_000_000;
    let mut out = String::new();
    put!(
        out,
        "{sign}{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        us % 1_000_000
    );
    out
}

/// Which way a frame crossed an interface, for the `-i any` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Received on the interface (tcpdump's `In`).
    In,
    /// Sent from the interface (tcpdump's `Out`).
    Out,
}

/// Renders frames as `tcpdump -n` lines, remembering TCP initial sequence numbers between calls.
#[derive(Debug, Clone)]
pub struct Formatter {
    relative_seq: bool,
    /// Initial sequence numbers per conversation, keyed by (lower endpoint, higher endpoint)
    /// and stored in that order.
    isns: BTreeMap<(Endpoint, Endpoint), (u32, u32)>,
}

impl Default for Formatter {
    fn default() -> Self {
        Self::new()
    }
}

impl Formatter {
    /// Relative TCP sequence numbers, like plain `tcpdump -n`.
    pub fn new() -> Self {
        Formatter {
            relative_seq: true,
            isns: BTreeMap::new(),
        }
    }

    /// Absolute TCP sequence numbers, like `tcpdump -n -S`.
    pub fn absolute() -> Self {
        Formatter {
            relative_seq: false,
            ..Self::new()
        }
    }

    /// The line for `frame`, seen at virtual time `at`.
    pub fn line(&mut self, at: Instant, frame: &[u8]) -> String {
        let mut out = format_time(at);
        out.push(' ');
        self.ether(&mut out, frame, 0);
        out
    }

    /// The `tcpdump -i any` line for `frame`, seen on `iface` going `dir`.
    pub fn line_on(&mut self, at: Instant, iface: &str, dir: Direction, frame: &[u8]) -> String {
        let mut out = format_time(at);
        let dir = if dir == Direction::In { "In" } else { "Out" };
        put!(out, " {iface:<5} {dir:<3} ");
        self.ether(&mut out, frame, 0);
        out
    }

    fn ether(&mut self, out: &mut String, frame: &[u8], depth: u8) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return out.push_str("[|ether]");
        };
        match eth.ethertype() {
            EthernetProtocol::Ipv4 => self.ipv4(out, eth.payload(), depth),
            EthernetProtocol::Arp => arp(out, eth.payload()),
            other => {
                put_mac(out, &eth.src_addr().0);
                out.push_str(" > ");
                put_mac(out, &eth.dst_addr().0);
                match u16::from(other) {
                    ..=1500 => put!(out, ", 802.3, length {}", frame.len()),
                    ty => {
                        let (name, len) = (ethertype_name(ty).unwrap_or("Unknown"), frame.len());
                        put!(out, ", ethertype {name} (0x{ty:04x}), length {len}");
                    }
                }
            }
        }
    }

    fn ipv4(&mut self, out: &mut String, data: &[u8], depth: u8) {
        match data.first().map(|b| b >> 4) {
            None => return out.push_str("[|ip]"),
            Some(4) => out.push_str("IP "),
            Some(6) => return out.push_str("IP6, wrong link-layer encapsulation (invalid)"),
            Some(v) => return put!(out, "IP{v} (invalid)"),
        }
        if let Ok(ip) = Ipv4Packet::new_checked(data) {
            return self.ipv4_body(out, &ip, 0, depth);
        }
        // smoltcp rejected the header: say why, as tcpdump does.
        let (Some(vhl), Some(total), true) = (data.first(), be16(data, 2), data.len() >= 20) else {
            return out.push_str(" [|ip]");
        };
        let (hlen, total) = (usize::from(vhl & 0x0f) * 4, usize::from(total));
        if hlen < 20 {
            return put!(out, "bad-hlen {hlen}");
        } else if total < hlen {
            return put!(out, "bad-len {total}");
        }
        // The datagram runs past the captured bytes: decode what is there.
        let missing = total.saturating_sub(data.len());
        put!(out, "truncated-ip - {missing} bytes missing! ");
        let mut copy = data.to_vec();
        let Ok(len) = u16::try_from(copy.len()) else {
            return out.push_str("[|ip]");
        };
        Ipv4Packet::new_unchecked(&mut copy[..]).set_total_len(len);
        match Ipv4Packet::new_checked(&copy[..]) {
            Ok(ip) => self.ipv4_body(out, &ip, missing, depth),
            Err(_) => out.push_str("[|ip]"),
        }
    }

    /// Everything after `IP `; `missing` bytes at the end of the datagram were not captured.
    fn ipv4_body(&mut self, out: &mut String, ip: &Ipv4Packet<&[u8]>, missing: usize, depth: u8) {
        let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
        let length = usize::from(ip.total_len()) + missing - usize::from(ip.header_len());
        if ip.frag_offset() != 0 {
            return put!(out, "{src} > {dst}: ip-proto-{}", u8::from(proto));
        }
        match proto {
            IpProtocol::Tcp => self.tcp(out, (src, dst), ip.payload(), length),
            IpProtocol::Udp => self.udp(out, ip, length, depth),
            IpProtocol::Icmp => {
                put!(out, "{src} > {dst}: ");
                icmp(out, ip.payload(), length);
            }
            other => put!(out, "{src} > {dst}:  ip-proto-{} {length}", u8::from(other)),
        }
    }

    fn tcp(&mut self, out: &mut String, (src, dst): Addrs, data: &[u8], length: usize) {
        let Ok(tcp) = TcpPacket::new_checked(data) else {
            return tcp_malformed(out, (src, dst), data, length);
        };
        let (sport, dport) = (tcp.src_port(), tcp.dst_port());
        put!(out, "{src}.{sport} > {dst}.{dport}: ");
        let flags = [tcp.fin(), tcp.syn(), tcp.rst(), tcp.psh()]
            .into_iter()
            .chain([tcp.ack(), tcp.urg(), tcp.ece(), tcp.cwr()])
            .enumerate()
            .fold(0u8, |bits, (bit, on)| bits | u8::from(on) << bit);
        put_flags(out, flags);

        let (mut seq, mut ack) = (tcp.seq_number().0 as u32, tcp.ack_number().0 as u32);
        let mut sack_base = 0;
        if self.relative_seq && tcp.ack() {
            let (from, to) = ((src, sport), (dst, dport));
            let swap = from > to;
            let key = if swap { (to, from) } else { (from, to) };
            let order = |(a, b): (u32, u32)| if swap { (b, a) } else { (a, b) };
            let known = self
                .isns
                .get(&key)
                .filter(|_| !tcp.syn())
                .map(|&isns| order(isns));
            let (from_isn, to_isn) = known.unwrap_or((seq, ack.wrapping_sub(1)));
            if known.is_some() {
                (seq, ack) = (seq.wrapping_sub(from_isn), ack.wrapping_sub(to_isn));
            } else {
                self.isns.insert(key, order((from_isn, to_isn)));
            }
            sack_base = to_isn;
        }

        let hlen = usize::from(tcp.header_len());
        let Some(payload_len) = length.checked_sub(hlen) else {
            return put!(out, " [bad hdr length {hlen} - too long, > {length}]");
        };
        if payload_len > 0 || tcp.syn() || tcp.fin() || tcp.rst() {
            put!(out, ", seq {seq}");
            if payload_len > 0 {
                put!(out, ":{}", seq.wrapping_add(payload_len as u32));
            }
        }
        if tcp.ack() {
            put!(out, ", ack {ack}");
        }
        put!(out, ", win {}", tcp.window_len());
        if tcp.urg() {
            put!(out, ", urg {}", tcp.urgent_at());
        }
        if tcp.options().is_empty() || tcp_options(out, tcp.options(), sack_base) {
            put!(out, ", length {payload_len}");
        }
    }

    fn udp(&mut self, out: &mut String, ip: &Ipv4Packet<&[u8]>, length: usize, depth: u8) {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            return udp_malformed(out, (src, dst), ip.payload(), length, ip.more_frags());
        };
        let (sport, dport) = (udp.src_port(), udp.dst_port());
        put!(out, "{src}.{sport} > {dst}.{dport}: ");
        if sport == VXLAN_PORT || dport == VXLAN_PORT {
            self.vxlan(out, udp.payload(), depth);
        } else {
            put!(out, "UDP, length {}", udp.payload().len());
        }
    }

    fn vxlan(&mut self, out: &mut String, payload: &[u8], depth: u8) {
        let (Some(&flags), Some(vni), Some(inner)) =
            (payload.first(), payload.get(4..7), payload.get(8..))
        else {
            return out.push_str(" [|vxlan]");
        };
        let vni = u32::from_be_bytes([0, vni[0], vni[1], vni[2]]);
        let i = if flags & 0x08 != 0 { "I" } else { "." };
        put!(out, "VXLAN, flags [{i}] (0x{flags:02x}), vni {vni}");
        if depth < MAX_ENCAP_DEPTH {
            out.push('\n');
            self.ether(out, inner, depth + 1);
        }
    }
}

/// tcpdump's view of a TCP header smoltcp rejected (too short, or a bad data offset).
fn tcp_malformed(out: &mut String, (src, dst): Addrs, data: &[u8], length: usize) {
    let (Some(sport), Some(dport)) = (be16(data, 0), be16(data, 2)) else {
        return put!(out, "{src} > {dst}: [|tcp]");
    };
    put!(out, "{src}.{sport} > {dst}.{dport}: ");
    let (Some(&offset), Some(&flags), true) = (data.get(12), data.get(13), data.len() >= 20) else {
        return out.push_str(" [|tcp]");
    };
    let hlen = usize::from(offset >> 4) * 4;
    if hlen < 20 {
        let rest = length.saturating_sub(hlen);
        return put!(out, " tcp {rest} [bad hdr length {hlen} - too short, < 20]");
    }
    put_flags(out, flags);
    if hlen > length {
        put!(out, " [bad hdr length {hlen} - too long, > {length}]");
    } else {
        out.push_str(" [|tcp]");
    }
}

/// `Flags [S.]`: tcpdump's letters, in its order, for the flag bits FIN (bit 0) to CWR (bit 7).
fn put_flags(out: &mut String, bits: u8) {
    out.push_str("Flags [");
    if bits == 0 {
        out.push_str("none");
    }
    for (bit, letter) in "FSRP.UEW".chars().enumerate() {
        if bits & (1 << bit) != 0 {
            out.push(letter);
        }
    }
    out.push(']');
}

/// Renders TCP options; false after a malformed one (tcpdump ends the line there).
fn tcp_options(out: &mut String, mut options: &[u8], sack_base: u32) -> bool {
    out.push_str(", options [");
    let mut first = true;
    while !options.is_empty() {
        if !first {
            out.push(',');
        }
        first = false;
        let Ok((rest, option)) = TcpOption::parse(options) else {
            out.push_str("[bad opt]]");
            return false;
        };
        options = rest;
        match option {
            TcpOption::EndOfList => {
                out.push_str("eol");
                break;
            }
            TcpOption::NoOperation => out.push_str("nop"),
            TcpOption::MaxSegmentSize(mss) => put!(out, "mss {mss}"),
            TcpOption::WindowScale(shift) => put!(out, "wscale {shift}"),
            TcpOption::SackPermitted => out.push_str("sackOK"),
            TcpOption::SackRange(blocks) => {
                put!(out, "sack {} ", blocks.iter().flatten().count());
                for &(left, right) in blocks.iter().flatten() {
                    let (l, r) = (left.wrapping_sub(sack_base), right.wrapping_sub(sack_base));
                    put!(out, "{{{l}:{r}}}");
                }
            }
            TcpOption::TimeStamp { tsval, tsecr } => put!(out, "TS val {tsval} ecr {tsecr}"),
            TcpOption::Unknown { kind, data } => {
                put!(out, "unknown-{kind}");
                if !data.is_empty() {
                    out.push_str(" 0x");
                    data.iter().for_each(|b| put!(out, "{b:02x}"));
                }
            }
        }
    }
    out.push(']');
    true
}

/// tcpdump's view of a UDP header smoltcp rejected (too short, or a bad length field).
fn udp_malformed(out: &mut String, (src, dst): Addrs, data: &[u8], length: usize, frag: bool) {
    let (Some(sport), Some(dport)) = (be16(data, 0), be16(data, 2)) else {
        return put!(out, "{src} > {dst}:  [|udp]");
    };
    put!(out, "{src}.{sport} > {dst}.{dport}: ");
    match be16(data, 4).map(usize::from) {
        _ if length < 8 => put!(out, "truncated-udp {length}"),
        None => out.push_str(" [|udp]"),
        Some(ulen @ ..=7) => put!(out, "truncated-udplength {ulen}"),
        Some(ulen) if ulen > length && !frag => {
            put!(out, "UDP, bad length {} > {}", ulen - 8, length - 8);
        }
        Some(ulen) => put!(out, "UDP, length {}", ulen - 8),
    }
}

fn icmp(out: &mut String, data: &[u8], length: usize) {
    let text = Icmpv4Packet::new_checked(data)
        .ok()
        .and_then(|icmp| icmp_text(&icmp));
    match text {
        Some(text) => put!(out, "ICMP {text}, length {length}"),
        None => out.push_str(" [|icmp]"),
    }
}

/// The part of tcpdump's ICMP line between `ICMP ` and `, length`, or `None` where tcpdump
/// stops with `[|icmp]`.
fn icmp_text(icmp: &Icmpv4Packet<&[u8]>) -> Option<String> {
    let (code, id, seq) = (icmp.msg_code(), icmp.echo_ident(), icmp.echo_seq_no());
    let body = icmp.data();
    let mut s = String::new();
    match u8::from(icmp.msg_type()) {
        0 => put!(s, "echo reply, id {id}, seq {seq}"),
        8 => put!(s, "echo request, id {id}, seq {seq}"),
        3 => {
            let (dst, proto, port) = quoted_ipv4(body)?;
            let proto = u8::from(proto);
            match code {
                2 => put!(s, "{dst} protocol {proto} unreachable"),
                3 => match (proto, port?) {
                    (6, port) => put!(s, "{dst} tcp port {port} unreachable"),
                    (17, port) => put!(s, "{dst} udp port {port} unreachable"),
                    (_, port) => put!(s, "{dst} protocol {proto} port {port} unreachable"),
                },
                4 if seq != 0 => put!(s, "{dst} unreachable - need to frag (mtu {seq})"),
                _ => {
                    let (pre, post) = UNREACHABLE.get(usize::from(code)).unwrap_or(&("", ""));
                    put!(s, "{pre}{dst} unreachable{post}");
                    if code > 15 {
                        put!(s, " - #{code}");
                    }
                }
            }
        }
        5 => {
            let (dst, _, _) = quoted_ipv4(body)?;
            let gateway = Ipv4Address::from(u32::from(id) << 16 | u32::from(seq));
            let tos = if code & 2 != 0 { "-tos" } else { "" };
            let to = if code & 1 != 0 { "host" } else { "net" };
            match code {
                0..=3 => put!(s, "redirect{tos} {dst} to {to} {gateway}"),
                _ => put!(s, "redirect-#{code} {dst} to {gateway}"),
            }
        }
        11 if body.len() < 20 => return None,
        11 if code == 0 => s.push_str("time exceeded in-transit"),
        11 if code == 1 => s.push_str("ip reassembly time exceeded"),
        11 => put!(s, "time exceeded-#{code}"),
        12 if code != 0 => put!(s, "parameter problem - code {code}"),
        12 => put!(s, "parameter problem - octet {}", id >> 8),
        13 => put!(s, "time stamp query id {id} seq {seq}"),
        18 => put!(s, "address mask is 0x{:08x}", be32(body)?),
        ty => {
            let name = match ty {
                4 => "source quench",
                9 => "router advertisement",
                10 => "router solicitation",
                14 => "time stamp reply",
                15 => "information request",
                16 => "information reply",
                17 => "address mask request",
                _ => return Some(alloc::format!("type-#{ty}")),
            };
            s.push_str(name);
        }
    }
    Some(s)
}

/// tcpdump's wording of ICMP "unreachable" codes: text before and after the address.
const UNREACHABLE: [(&str, &str); 16] = [
    ("net ", ""),
    ("host ", ""),
    ("", ""), // protocol and port unreachable are worded apart
    ("", ""),
    ("", " - need to frag"),
    ("", " - source route failed"),
    ("net ", " - unknown"),
    ("host ", " - unknown"),
    ("", " - source host isolated"),
    ("net ", " - admin prohibited"),
    ("host ", " - admin prohibited"),
    ("net ", " - tos prohibited"),
    ("host ", " - tos prohibited"),
    ("host ", " - admin prohibited filter"),
    ("host ", " - host precedence violation"),
    ("host ", " - precedence cutoff"),
];

/// Destination, protocol and destination port of the datagram an ICMP error quotes. The quote
/// ends 8 bytes into the transport header, so its total length is cut to what is there before
/// smoltcp checks the header.
fn quoted_ipv4(body: &[u8]) -> Option<(Ipv4Address, IpProtocol, Option<u16>)> {
    let len = u16::try_from(body.len()).ok().filter(|&len| len >= 20)?;
    let mut copy = body.to_vec();
    Ipv4Packet::new_unchecked(&mut copy[..]).set_total_len(len);
    let ip = Ipv4Packet::new_checked(&copy[..]).ok()?;
    Some((ip.dst_addr(), ip.next_header(), be16(ip.payload(), 2)))
}

fn arp(out: &mut String, data: &[u8]) {
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return out.push_str("[|arp]");
    };
    out.push_str("ARP, ");
    match ArpRepr::parse(&packet) {
        Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        }) => match operation {
            ArpOperation::Request => {
                put!(out, "Request who-has {tpa}");
                if tha.0 != [0; 6] {
                    out.push_str(" (");
                    put_mac(out, &tha.0);
                    out.push(')');
                }
                put!(out, " tell {spa}");
            }
            ArpOperation::Reply => {
                put!(out, "Reply {spa} is-at ");
                put_mac(out, &sha.0);
            }
            ArpOperation::Unknown(op) => put!(out, "Unknown ({op})"),
        },
        _ => {
            match u16::from(packet.hardware_type()) {
                1 => out.push_str("Ethernet"),
                hardware => put!(out, "Unknown Hardware ({hardware})"),
            }
            put!(out, " (len {}), ", packet.hardware_len());
            let proto = u16::from(packet.protocol_type());
            match ethertype_name(proto) {
                Some(name) => out.push_str(name),
                None => put!(out, "Unknown Protocol (0x{proto:04x})"),
            }
            put!(out, " (len {})", packet.protocol_len());
        }
    }
    put!(out, ", length {}", data.len());
}

/// tcpdump's names for a few EtherTypes.
fn ethertype_name(ty: u16) -> Option<&'static str> {
    Some(match ty {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x8100 => "802.1Q",
        0x86dd => "IPv6",
        0x8847 => "MPLS unicast",
        0x88a8 => "802.1Q-QinQ",
        0x88cc => "LLDP",
        _ => return None,
    })
}

fn put_mac(out: &mut String, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        put!(out, "{}{b:02x}", if i == 0 { "" } else { ":" });
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let field = bytes.get(at..at.checked_add(2)?)?;
    field.try_into().ok().map(u16::from_be_bytes)
}

fn be32(bytes: &[u8]) -> Option<u32> {
    bytes.get(..4)?.try_into().ok().map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use alloc::{format, vec};
    use smoltcp::phy::ChecksumCapabilities as Caps;
    use smoltcp::wire::{
        EthernetAddress as Mac, Icmpv4DstUnreachable as Unreachable, Icmpv4Repr,
        Icmpv4TimeExceeded, IpAddress, Ipv4Repr, TcpControl as Ctl, TcpRepr, TcpSeqNumber, UdpRepr,
    };

    const A: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
    const B: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);
    const GW: Ipv4Address = Ipv4Address::new(10, 244, 0, 1);
    const DNS: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
    const MAC_A: Mac = Mac([0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x05]);
    const MAC_GW: Mac = Mac([0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x01]);
    const T: Instant = Instant::from_micros_const(412);

    fn ether(ethertype: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
        let ethertype = u16::from(ethertype).to_be_bytes();
        [&MAC_GW.0[..], &MAC_A.0, &ethertype, payload].concat()
    }

    /// An IPv4 frame whose `len`-byte payload `emit` fills in.
    fn ipv4(addrs: Addrs, proto: IpProtocol, len: usize, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let (src_addr, dst_addr, next_header) = (addrs.0, addrs.1, proto);
        let repr = Ipv4Repr {
            src_addr,
            dst_addr,
            next_header,
            payload_len: len,
            hop_limit: 64,
        };
        let mut packet = vec![0; 20 + len];
        repr.emit(
            &mut Ipv4Packet::new_unchecked(&mut packet[..]),
            &Caps::default(),
        );
        emit(&mut packet[20..]);
        ether(EthernetProtocol::Ipv4, &packet)
    }

    fn seg(ports: (u16, u16), control: Ctl, seq: u32, ack: Option<u32>) -> TcpRepr<'static> {
        TcpRepr {
            src_port: ports.0,
            dst_port: ports.1,
            control,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: ack.map(|ack| TcpSeqNumber(ack as i32)),
            window_len: 502,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        }
    }

    fn tcp(addrs: Addrs, repr: &TcpRepr) -> Vec<u8> {
        let (src, dst) = (IpAddress::Ipv4(addrs.0), IpAddress::Ipv4(addrs.1));
        ipv4(addrs, IpProtocol::Tcp, repr.buffer_len(), |buf| {
            repr.emit(
                &mut TcpPacket::new_unchecked(buf),
                &src,
                &dst,
                &Caps::default(),
            )
        })
    }

    /// A Linux SYN (`TcpRepr` would emit smoltcp's own option order).
    fn linux_syn() -> Vec<u8> {
        ipv4((A, B), IpProtocol::Tcp, 40, |buf| {
            let mut packet = TcpPacket::new_unchecked(buf);
            packet.set_src_port(40000);
            packet.set_dst_port(80);
            packet.set_seq_number(TcpSeqNumber(1234));
            packet.set_header_len(40);
            packet.clear_flags();
            packet.set_syn(true);
            packet.set_window_len(64240);
            let mut options = packet.options_mut();
            options = TcpOption::MaxSegmentSize(1460).emit(options);
            options = TcpOption::SackPermitted.emit(options);
            options = TcpOption::TimeStamp { tsval: 1, tsecr: 0 }.emit(options);
            options = TcpOption::NoOperation.emit(options);
            assert_eq!(TcpOption::WindowScale(7).emit(options).len(), 0);
            packet.fill_checksum(&IpAddress::Ipv4(A), &IpAddress::Ipv4(B));
        })
    }

    fn udp(addrs: Addrs, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
        let (src, dst) = (IpAddress::Ipv4(addrs.0), IpAddress::Ipv4(addrs.1));
        let repr = UdpRepr {
            src_port: ports.0,
            dst_port: ports.1,
        };
        ipv4(addrs, IpProtocol::Udp, 8 + payload.len(), |buf| {
            let fill = |data: &mut [u8]| data.copy_from_slice(payload);
            let len = payload.len();
            repr.emit(
                &mut UdpPacket::new_unchecked(buf),
                &src,
                &dst,
                len,
                fill,
                &Caps::default(),
            )
        })
    }

    fn icmp(addrs: Addrs, repr: &Icmpv4Repr) -> Vec<u8> {
        ipv4(addrs, IpProtocol::Icmp, repr.buffer_len(), |buf| {
            repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &Caps::default())
        })
    }

    fn echo(request: bool) -> Vec<u8> {
        let (ident, seq_no, data) = (1, 2, &[0x42; 56][..]);
        match request {
            true => icmp(
                (A, B),
                &Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                },
            ),
            false => icmp(
                (B, A),
                &Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                },
            ),
        }
    }

    /// An ICMP error from `from` quoting the start of `proto` 10.244.0.5.40000 > `to`.`port`.
    fn icmp_error(
        from: Ipv4Address,
        to: Ipv4Address,
        proto: IpProtocol,
        port: u16,
        code: u8,
    ) -> Vec<u8> {
        let header = Ipv4Repr {
            src_addr: A,
            dst_addr: to,
            next_header: proto,
            payload_len: 100, // the quote holds only the first 8 of these bytes
            hop_limit: 64,
        };
        let [hi, lo] = port.to_be_bytes();
        let data = &[0x9c, 0x40, hi, lo, 0, 0x6c, 0, 0];
        let repr = match code {
            0xff => {
                let reason = Icmpv4TimeExceeded::TtlExpired;
                Icmpv4Repr::TimeExceeded {
                    reason,
                    header,
                    data,
                }
            }
            code => Icmpv4Repr::DstUnreachable {
                reason: Unreachable::from(code),
                header,
                data,
            },
        };
        icmp((from, A), &repr)
    }

    fn arp(
        operation: ArpOperation,
        sha: Mac,
        spa: Ipv4Address,
        tha: Mac,
        tpa: Ipv4Address,
    ) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let mut packet = vec![0; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut packet[..]));
        ether(EthernetProtocol::Arp, &packet)
    }

    fn vxlan() -> Vec<u8> {
        let mut payload = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        payload.extend_from_slice(&echo(true));
        let nodes = (
            Ipv4Address::new(192, 168, 1, 100),
            Ipv4Address::new(192, 168, 1, 101),
        );
        udp(nodes, (40000, VXLAN_PORT), &payload)
    }

    /// The lines for `frames` seen at `T`, without the timestamp, one per line.
    fn render(f: &mut Formatter, frames: &[Vec<u8>]) -> String {
        let lines: Vec<String> = frames.iter().map(|frame| f.line(T, frame)).collect();
        assert!(lines
            .iter()
            .all(|line| line.starts_with("00:00:00.000412 ")));
        let lines: Vec<&str> = lines.iter().map(|line| &line[16..]).collect();
        lines.join("\n")
    }

    #[test]
    fn times_and_interfaces() {
        assert_eq!(format_time(Instant::ZERO), "00:00:00.000000");
        assert_eq!(format_time(T), "00:00:00.000412");
        assert_eq!(
            format_time(Instant::from_micros(3_723_000_001i64)),
            "01:02:03.000001"
        );
        assert_eq!(
            format_time(Instant::from_secs(100 * 3600)),
            "100:00:00.000000"
        );
        assert_eq!(
            format_time(Instant::from_micros(-1_500_000)),
            "-00:00:01.500000"
        );
        assert!(format_time(Instant::from_micros(i64::MIN)).starts_with("-2562047788:"));
        let mut f = Formatter::new();
        let line = f.line_on(T, "veth1", Direction::Out, &echo(true));
        assert!(line.starts_with("00:00:00.000412 veth1 Out IP 10.244.0.5 > 10.244.1.20: ICMP"));
        let line = f.line_on(T, "eth0", Direction::In, &echo(false));
        assert!(line.starts_with("00:00:00.000412 eth0  In  IP 10.244.1.20 > 10.244.0.5: ICMP"));
    }

    #[test]
    fn tcp_conversation() {
        let mut syn_ack = seg((80, 40000), Ctl::Syn, 5000, Some(1235));
        syn_ack.window_len = 64240;
        (
            syn_ack.max_seg_size,
            syn_ack.window_scale,
            syn_ack.sack_permitted,
        ) = (Some(1460), Some(7), true);
        let mut data = seg((40000, 80), Ctl::Psh, 1235, Some(5001));
        data.payload = b"GET / HTTP/1.1\r\n";
        let mut reply = seg((80, 40000), Ctl::None, 5001, Some(1251));
        reply.payload = &[0; 1448];
        let mut sack = seg((40000, 80), Ctl::None, 1251, Some(5001));
        sack.sack_ranges[0] = Some((6449, 7897));
        let mut urgent = tcp((A, B), &seg((40000, 80), Ctl::None, 1251, Some(5001)));
        urgent[14 + 20 + 13] = 0xf1; // FIN, ACK, URG, ECE, CWR
        let frames = [
            linux_syn(),
            tcp((B, A), &syn_ack),
            tcp((A, B), &seg((40000, 80), Ctl::None, 1235, Some(5001))),
            tcp((A, B), &data),
            tcp((B, A), &reply),
            tcp((A, B), &sack),
            tcp((A, B), &seg((40000, 80), Ctl::Fin, 1251, Some(6449))),
            urgent,
            tcp((B, A), &seg((80, 40000), Ctl::Rst, 6449, None)),
        ];
        let relative = "\
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [S], seq 1234, win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0
IP 10.244.1.20.80 > 10.244.0.5.40000: Flags [S.], seq 5000, ack 1235, win 64240, options [mss 1460,wscale 7,sackOK,eol], length 0
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [.], ack 1, win 502, length 0
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [P.], seq 1:17, ack 1, win 502, length 16
IP 10.244.1.20.80 > 10.244.0.5.40000: Flags [.], seq 1:1449, ack 17, win 502, length 1448
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [.], ack 1, win 502, options [sack 1 {1449:2897},eol], length 0
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [F.], seq 17, ack 1449, win 502, length 0
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [F.UEW], seq 17, ack 1, win 502, urg 0, length 0
IP 10.244.1.20.80 > 10.244.0.5.40000: Flags [R], seq 6449, win 502, length 0";
        assert_eq!(render(&mut Formatter::new(), &frames), relative);
        let absolute = render(&mut Formatter::absolute(), &frames);
        let absolute: Vec<&str> = absolute.lines().collect();
        assert!(absolute[2].ends_with("Flags [.], ack 5001, win 502, length 0"));
        assert!(absolute[3].ends_with("Flags [P.], seq 1235:1251, ack 5001, win 502, length 16"));
        assert!(absolute[5].ends_with("options [sack 1 {6449:7897},eol], length 0"));
    }

    #[test]
    fn udp_icmp_arp_and_other_frames() {
        let zero = Mac([0; 6]);
        let mut padded_arp = arp(ArpOperation::Request, MAC_A, A, MAC_GW, GW);
        padded_arp.resize(60, 0);
        let mut ipv6_arp = arp(ArpOperation::Request, MAC_A, A, zero, GW);
        ipv6_arp[14 + 2..14 + 4].copy_from_slice(&[0x86, 0xdd]);
        let far = Ipv4Address::new(10, 1, 1, 1);
        let frames = [
            udp((A, DNS), (40000, 53), &[0; 16]),
            echo(true),
            echo(false),
            icmp_error(GW, B, IpProtocol::Udp, 33434, 0xff),
            icmp_error(DNS, DNS, IpProtocol::Udp, 53, 3),
            icmp_error(B, B, IpProtocol::Tcp, 80, 3),
            icmp_error(GW, far, IpProtocol::Tcp, 80, 1),
            icmp_error(GW, far, IpProtocol::Tcp, 80, 0),
            icmp_error(GW, far, IpProtocol::Tcp, 80, 13),
            arp(ArpOperation::Request, MAC_A, A, zero, GW),
            arp(ArpOperation::Reply, MAC_GW, GW, MAC_A, A),
            padded_arp,
            ipv6_arp,
            ether(EthernetProtocol::Ipv6, &[0x60; 48]),
            ipv4((A, B), IpProtocol::Unknown(47), 24, |_| {}),
            vxlan(),
        ];
        let want = "\
IP 10.244.0.5.40000 > 10.96.0.10.53: UDP, length 16
IP 10.244.0.5 > 10.244.1.20: ICMP echo request, id 1, seq 2, length 64
IP 10.244.1.20 > 10.244.0.5: ICMP echo reply, id 1, seq 2, length 64
IP 10.244.0.1 > 10.244.0.5: ICMP time exceeded in-transit, length 36
IP 10.96.0.10 > 10.244.0.5: ICMP 10.96.0.10 udp port 53 unreachable, length 36
IP 10.244.1.20 > 10.244.0.5: ICMP 10.244.1.20 tcp port 80 unreachable, length 36
IP 10.244.0.1 > 10.244.0.5: ICMP host 10.1.1.1 unreachable, length 36
IP 10.244.0.1 > 10.244.0.5: ICMP net 10.1.1.1 unreachable, length 36
IP 10.244.0.1 > 10.244.0.5: ICMP host 10.1.1.1 unreachable - admin prohibited filter, length 36
ARP, Request who-has 10.244.0.1 tell 10.244.0.5, length 28
ARP, Reply 10.244.0.1 is-at 0a:58:0a:f4:00:01, length 28
ARP, Request who-has 10.244.0.1 (0a:58:0a:f4:00:01) tell 10.244.0.5, length 46
ARP, Ethernet (len 6), IPv6 (len 4), length 28
0a:58:0a:f4:00:05 > 0a:58:0a:f4:00:01, ethertype IPv6 (0x86dd), length 62
IP 10.244.0.5 > 10.244.1.20:  ip-proto-47 24
IP 192.168.1.100.40000 > 192.168.1.101.4789: VXLAN, flags [I] (0x08), vni 1
IP 10.244.0.5 > 10.244.1.20: ICMP echo request, id 1, seq 2, length 64";
        assert_eq!(render(&mut Formatter::new(), &frames), want);
    }

    #[test]
    fn truncated_and_malformed_frames() {
        let syn = linux_syn();
        let patched = |at: usize, byte: u8| {
            let mut frame = syn.clone();
            frame[at] = byte;
            frame
        };
        let mut bad_udp = udp((A, DNS), (40000, 53), &[0; 16]);
        bad_udp[14 + 20 + 5] = 200;
        let mut short_udp = bad_udp.clone();
        short_udp[14 + 20 + 5] = 4;
        let frames = [
            syn[..10].to_vec(),
            syn[..14 + 10].to_vec(),
            syn[..14 + 20 + 10].to_vec(),
            syn[..14 + 20 + 3].to_vec(),
            patched(14, 0x43),
            patched(14, 0x65),
            patched(14, 0x25),
            patched(14 + 20 + 12, 0x30),
            patched(14 + 20 + 12, 0xf0),
            patched(14 + 20 + 21, 9), // the mss option runs past the header
            bad_udp,
            short_udp,
            udp((A, B), (4789, 4789), &[0x08, 0, 0]),
            echo(true)[..14 + 20 + 4].to_vec(),
            icmp_error(GW, B, IpProtocol::Udp, 53, 0xff)[..14 + 20 + 8 + 12].to_vec(),
            arp(ArpOperation::Request, MAC_A, A, MAC_GW, GW)[..30].to_vec(),
        ];
        let want = "\
[|ether]
IP  [|ip]
IP truncated-ip - 30 bytes missing! 10.244.0.5.40000 > 10.244.1.20.80:  [|tcp]
IP truncated-ip - 37 bytes missing! 10.244.0.5 > 10.244.1.20: [|tcp]
IP bad-hlen 12
IP6, wrong link-layer encapsulation (invalid)
IP2 (invalid)
IP 10.244.0.5.40000 > 10.244.1.20.80:  tcp 28 [bad hdr length 12 - too short, < 20]
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [S] [bad hdr length 60 - too long, > 40]
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [S], seq 1234, win 64240, options [[bad opt]]
IP 10.244.0.5.40000 > 10.96.0.10.53: UDP, bad length 192 > 16
IP 10.244.0.5.40000 > 10.96.0.10.53: truncated-udplength 4
IP 10.244.0.5.4789 > 10.244.1.20.4789:  [|vxlan]
IP truncated-ip - 60 bytes missing! 10.244.0.5 > 10.244.1.20:  [|icmp]
IP truncated-ip - 16 bytes missing! 10.244.0.1 > 10.244.0.5:  [|icmp]
[|arp]";
        assert_eq!(render(&mut Formatter::new(), &frames), want);
    }

    #[test]
    fn never_panics_on_truncations_mutations_or_garbage() {
        let mut data = seg((40000, 80), Ctl::Psh, 1, Some(1));
        data.payload = b"GET / HTTP/1.1\r\n";
        let valid = [
            linux_syn(),
            tcp((A, B), &data),
            udp((A, DNS), (40000, 53), &[7; 16]),
            vxlan(),
            echo(true),
            icmp_error(DNS, DNS, IpProtocol::Udp, 53, 3),
            icmp_error(GW, B, IpProtocol::Tcp, 80, 0xff),
            arp(ArpOperation::Request, MAC_A, A, MAC_GW, GW),
        ];
        let mut f = Formatter::new();
        let mut check = |frame: &[u8]| {
            let line = f.line(T, frame);
            assert!(
                line.len() > 16 && line.starts_with("00:00:00.000412 "),
                "{line}"
            );
            let _ = f.line_on(T, "veth0", Direction::In, frame);
        };
        // Every truncation of valid frames.
        for frame in &valid {
            (0..=frame.len()).for_each(|len| check(&frame[..len]));
        }
        // A tiny xorshift generator: deterministic mutations and garbage.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for frame in &valid {
            for _ in 0..2000 {
                let mut mutated = frame.clone();
                for _ in 0..1 + next() % 4 {
                    let at = next() as usize % mutated.len();
                    mutated[at] = next() as u8;
                }
                let cut = mutated.len() - next() as usize % 8;
                check(&mutated[..cut]);
            }
        }
        for _ in 0..5000 {
            let len = (next() % 160) as usize;
            let mut garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 15 && next() % 2 == 0 {
                // Steer into the IPv4 and ARP decoders.
                garbage[12..15].copy_from_slice(&[0x08, [0x00, 0x06][(next() % 2) as usize], 0x45]);
            }
            check(&garbage);
        }
        assert!(f.isns.len() < 100_000);
        let _ = format!("{f:?}");
    }
}
