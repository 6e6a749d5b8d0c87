//! One-line, `tcpdump -n`-style rendering of Ethernet frames, with virtual timestamps.
//!
//! [`Formatter::line`] gives the line `tcpdump -n` prints for a frame, e.g.
//! `00:00:00.000412 IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [S], seq 1234, win 64240, ...`;
//! [`Formatter::line_on`] gives the `tcpdump -n -i any` form, `00:00:00.000412 veth1 Out IP ...`
//! (as in tcpdump, the interface is padded to 5 columns and the direction to 3).
//!
//! Decoded like tcpdump's non-verbose printers: IPv4 (TTL, id and options are not shown and
//! checksums are not checked), TCP (flags, relative or absolute sequence numbers, window,
//! options), UDP, VXLAN on port 4789, OTV on port 8472 (which is how tcpdump shows flannel's
//! VXLAN: `OTV, flags [I] (0x08), overlay 0, instance 1`, the VNI read as OTV's instance), ICMP (rare types are only named) and ARP. Not decoded:
//! application payloads (tcpdump adds e.g. `: HTTP: GET / HTTP/1.1` on port 80 or a DNS summary
//! on port 53), and other EtherTypes, which print the way tcpdump without `-e` prints a type it
//! cannot decode, minus its hex dump: `<src mac> > <dst mac>, ethertype IPv6 (0x86dd), length 62`.
//!
//! A VXLAN (or OTV) packet gives the outer line, `\n`, then the inner frame's line without timestamp: the
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

pub mod filter;
mod learn;

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
/// tcpdump's `OTV_PORT`, also flannel's VXLAN port; tcpdump tests it before `VXLAN_PORT`.
const OTV_PORT: u16 = 8472;
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

        let (seq, ack, sack_base) = self.relative(((src, sport), (dst, dport)), &tcp);

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

    /// The sequence and acknowledgement numbers to print for `tcp` going `from` `to`, and the
    /// base of its SACK blocks: relative to the conversation's initial sequence numbers once
    /// known (learnt from the first ACK-bearing segment seen, as tcpdump does; a SYN learns
    /// them anew), unless absolute.
    fn relative(
        &mut self,
        (from, to): (Endpoint, Endpoint),
        tcp: &TcpPacket<&[u8]>,
    ) -> (u32, u32, u32) {
        let (seq, ack) = (tcp.seq_number().0 as u32, tcp.ack_number().0 as u32);
        if !self.relative_seq || !tcp.ack() {
            return (seq, ack, 0);
        }
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
            (seq.wrapping_sub(from_isn), ack.wrapping_sub(to_isn), to_isn)
        } else {
            self.isns.insert(key, order((from_isn, to_isn)));
            (seq, ack, to_isn)
        }
    }

    fn udp(&mut self, out: &mut String, ip: &Ipv4Packet<&[u8]>, length: usize, depth: u8) {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            return udp_malformed(out, (src, dst), ip.payload(), length, ip.more_frags());
        };
        let (sport, dport) = (udp.src_port(), udp.dst_port());
        put!(out, "{src}.{sport} > {dst}.{dport}: ");
        if sport == OTV_PORT || dport == OTV_PORT {
            self.otv(out, udp.payload(), depth);
        } else if sport == VXLAN_PORT || dport == VXLAN_PORT {
            self.vxlan(out, udp.payload(), depth);
        } else {
            put!(out, "UDP, length {}", udp.payload().len());
        }
    }

    /// tcpdump's `otv_print`: flags, a 24-bit overlay ID, a 24-bit instance ID, a reserved
    /// byte, then the inner frame on the next line.
    fn otv(&mut self, out: &mut String, payload: &[u8], depth: u8) {
        out.push_str("OTV, ");
        let (Some(&flags), Some(overlay), Some(instance), Some(inner)) = (
            payload.first(),
            payload.get(1..4),
            payload.get(4..7),
            payload.get(8..),
        ) else {
            return put!(out, "[length {} < 8] (invalid)", payload.len());
        };
        let be24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let i = if flags & 0x08 != 0 { "I" } else { "." };
        put!(
            out,
            "flags [{i}] (0x{flags:02x}), overlay {}, instance {}",
            be24(overlay),
            be24(instance)
        );
        if depth < MAX_ENCAP_DEPTH {
            out.push('\n');
            self.ether(out, inner, depth + 1);
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
mod tests;
