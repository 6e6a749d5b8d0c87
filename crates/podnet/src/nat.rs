//! Network address translation, as Linux `nf_nat`: rewriting a packet's source or destination
//! (address and port, or ICMP query id) with every checksum kept valid by incremental update
//! (RFC 1624), translating the packet quoted inside an ICMP error, and choosing the source port
//! of a masqueraded connection the way `nf_nat_l4proto_unique_tuple` does.

use smoltcp::time::Instant;
use smoltcp::wire::{IpProtocol, Ipv4Address};

use crate::conntrack::{proto, Conntrack, Tuple};
use crate::rng::SimRng;

/// Which end of the packet a manipulation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manip {
    /// Source address and port (SNAT, at POSTROUTING / INPUT).
    Src,
    /// Destination address and port (DNAT, at PREROUTING / OUTPUT).
    Dst,
}

/// One's-complement sum update: `sum` over data where `old` 16-bit words became `new`.
fn csum_update(sum: u16, old: &[u16], new: &[u16]) -> u16 {
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')
    let mut acc: u32 = u32::from(!sum);
    for w in old {
        acc += u32::from(!w);
    }
    for w in new {
        acc += u32::from(*w);
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn addr_words(a: Ipv4Address) -> [u16; 2] {
    let o = a.octets();
    [
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    ]
}

fn is_query(t: u8) -> bool {
    crate::conntrack::tuple::icmp_reply_type(t).is_some()
        || crate::conntrack::tuple::icmp_is_reply(t)
}

/// Rewrites the source or destination of the IPv4 packet `ip` to `addr:port` (for ICMP queries
/// `port` is the query id, changed on either side). L4 checksums are updated when the L4
/// header is present in full; `quoted` marks the quote inside an ICMP error, where a TCP
/// checksum is updated only if the whole TCP header was quoted. Returns false if the packet is too short.
pub fn rewrite(ip: &mut [u8], manip: Manip, addr: Ipv4Address, port: u16, quoted: bool) -> bool {
    if ip.len() < 20 {
        return false;
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if hl < 20 || ip.len() < hl + 8 {
        return false;
    }
    let off = if manip == Manip::Src { 12 } else { 16 };
    let old_addr = Ipv4Address::new(ip[off], ip[off + 1], ip[off + 2], ip[off + 3]);
    let (ow, nw) = (addr_words(old_addr), addr_words(addr));
    ip[off..off + 4].copy_from_slice(&addr.octets());
    let ipsum = rd16(ip, 10);
    wr16(ip, 10, csum_update(ipsum, &ow, &nw));
    let proto = ip[9];
    let l4 = &mut ip[hl..];
    match IpProtocol::from(proto) {
        IpProtocol::Tcp | IpProtocol::Udp => {
            let pofs = if manip == Manip::Src { 0 } else { 2 };
            let old_port = rd16(l4, pofs);
            wr16(l4, pofs, port);
            let cofs = if proto == proto::TCP { 16 } else { 6 };
            // `tcp_manip_pkt`: inside an ICMP error the TCP checksum is updated only when
            // the quote holds the whole 20-byte header (`skb->len >= hdroff + 20`).
            if l4.len() >= cofs + 2 && !(quoted && proto == proto::TCP && l4.len() < 20) {
                let sum = rd16(l4, cofs);
                if proto == proto::UDP && sum == 0 {
                    return true; // no UDP checksum
                }
                let mut new = csum_update(sum, &[ow[0], ow[1], old_port], &[nw[0], nw[1], port]);
                if proto == proto::UDP && new == 0 {
                    new = 0xffff;
                }
                wr16(l4, cofs, new);
            }
        }
        // Query ids are translated; the ICMP checksum covers no pseudo-header.
        IpProtocol::Icmp if is_query(l4[0]) => {
            let old_id = rd16(l4, 4);
            wr16(l4, 4, port);
            let sum = rd16(l4, 2);
            wr16(l4, 2, csum_update(sum, &[old_id], &[port]));
        }
        _ => {}
    }
    true
}

/// Makes the packet look like `target` on the `manip` side (no-op where it already does).
pub fn apply(ip: &mut [u8], manip: Manip, target: &Tuple) -> bool {
    let Some(cur) = Tuple::of_packet(ip) else {
        return false;
    };
    let (addr, port, cur_addr, cur_port) = match manip {
        Manip::Src => (target.src, target.sport, cur.src, cur.sport),
        Manip::Dst => (target.dst, target.dport, cur.dst, cur.dport),
    };
    let port = if cur.proto == proto::ICMP {
        target.sport
    } else {
        port
    };
    let cur_port = if cur.proto == proto::ICMP {
        cur.sport
    } else {
        cur_port
    };
    if addr == cur_addr && port == cur_port {
        return true;
    }
    rewrite(ip, manip, addr, port, false)
}

/// Translates an ICMP error (`ip` is the whole error packet): the quoted packet becomes
/// `quoted_as` (the pre-NAT form of the packet it quotes), with its IP checksum and (for UDP)
/// L4 checksum fixed, and the ICMP checksum recomputed. The outer header is left to the normal
/// manipulations.
pub fn translate_icmp_error(ip: &mut [u8], quoted_as: &Tuple) -> bool {
    let hl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
    if hl < 20 || ip.len() < hl + 8 + 28 {
        return false;
    }
    let (_, icmp) = ip.split_at_mut(hl);
    {
        let inner = &mut icmp[8..];
        let Some(cur) = Tuple::of_packet(inner) else {
            return false;
        };
        if cur.src != quoted_as.src || cur.sport != quoted_as.sport {
            rewrite(inner, Manip::Src, quoted_as.src, quoted_as.sport, true);
        }
        if cur.dst != quoted_as.dst || cur.dport != quoted_as.dport {
            rewrite(inner, Manip::Dst, quoted_as.dst, quoted_as.dport, true);
        }
    }
    smoltcp::wire::Icmpv4Packet::new_unchecked(icmp).fill_checksum();
    true
}

/// A port range for SNAT (`--to-source ip:lo-hi`); `None` uses Linux's default ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// Lowest port.
    pub min: u16,
    /// Highest port.
    pub max: u16,
}

/// `nf_nat_l4proto_unique_tuple`'s attempt limit (`NF_NAT_MAX_ATTEMPTS`).
pub const MAX_ATTEMPTS: u32 = 128;

/// The part of a REPLY tuple a source manipulation chooses: the destination port (TCP, UDP:
/// the original direction's source port), or the ICMP query id, which both directions share
/// (`nf_nat_l4proto_unique_tuple`: `keyptr = &tuple->src.u.icmp.id`; podnet keeps the id in
/// `sport` and type/code in `dport`). `None` for protocols without one.
fn key(reply: &Tuple) -> Option<u16> {
    match reply.proto {
        proto::TCP | proto::UDP => Some(reply.dport),
        proto::ICMP => Some(reply.sport),
        _ => None,
    }
}

fn set_key(reply: &mut Tuple, v: u16) {
    if reply.proto == proto::ICMP {
        reply.sport = v;
    } else {
        reply.dport = v;
    }
}

/// `nf_nat_l4proto_unique_tuple` for a source manipulation: searches the port (ICMP: id)
/// range for a REPLY tuple no other entry holds, from a random offset, at most 128 tries,
/// then ever smaller windows from fresh offsets. Without a range: ICMP ids 0-65535, ports
/// keep their class (1-511, 600-1023, 1024-65535) of the port `cand` has. Returns the last
/// candidate and whether it is free (Linux keeps the last one tried and lets the
/// confirmation fail); a protocol without ports comes back unchanged and "free".
fn l4proto_unique(
    ct: &mut Conntrack,
    now: Instant,
    mut cand: Tuple,
    range: Option<PortRange>,
    mut rover: Option<&mut u16>,
    rng: &mut SimRng,
) -> (Tuple, bool) {
    let Some(cur) = key(&cand) else {
        return (cand, true);
    };
    let (min, size): (u32, u32) = match range {
        Some(r) => {
            let (lo, hi) = (r.min.min(r.max), r.min.max(r.max));
            (u32::from(lo), u32::from(hi) - u32::from(lo) + 1)
        }
        None if cand.proto == proto::ICMP => (0, 65536),
        None if cur < 512 => (1, 511),
        None if cur < 1024 => (600, 1023 - 600 + 1),
        None => (1024, 65535 - 1024 + 1),
    };
    // `off` is a u16 in Linux: it wraps at 65536, not at the range's size. Before 5.0 the
    // search started at the protocol's "rover", the offset of the last port it chose, shared
    // by every CPU (see [`crate::conntrack::Kernel::nat_port_rover`]).
    let mut off = match rover.as_deref() {
        Some(r) => *r,
        None => rng.next_u64() as u16,
    };
    let mut attempts = size.min(MAX_ATTEMPTS);
    loop {
        for _ in 0..attempts {
            set_key(&mut cand, (min + u32::from(off) % size) as u16);
            if !ct.tuple_taken(now, &cand) {
                if let Some(r) = rover.as_deref_mut() {
                    *r = off;
                }
                return (cand, true);
            }
            off = off.wrapping_add(1);
        }
        if attempts >= size || attempts < 16 {
            return (cand, false);
        }
        attempts /= 2;
        off = rng.next_u64() as u16;
    }
}

/// Chooses the source port (or ICMP id) for a connection whose REPLY tuple would be `reply`
/// after SNAT to `to` (`get_unique_tuple` for MASQUERADE / SNAT): the port kept when it is in
/// the range and the tuple is free, unless `random_fully` (`NF_NAT_RANGE_PROTO_RANDOM_ALL`
/// skips that shortcut), else `l4proto_unique` (`nf_nat_l4proto_unique_tuple`), starting at `rover` when given (kernels
/// before 5.0; `--random-fully` never used it). Returns the REPLY tuple to bind, or `None`
/// when no port is free.
#[allow(clippy::too_many_arguments)]
pub fn unique_snat(
    ct: &mut Conntrack,
    now: Instant,
    reply: &Tuple,
    to: Ipv4Address,
    range: Option<PortRange>,
    random_fully: bool,
    rover: Option<&mut u16>,
    rng: &mut SimRng,
) -> Option<Tuple> {
    let mut cand = *reply;
    cand.dst = to;
    if !random_fully {
        let in_range = match (range, key(&cand)) {
            (Some(r), Some(k)) => (r.min..=r.max).contains(&k),
            _ => true,
        };
        if in_range && !ct.tuple_taken(now, &cand) {
            return Some(cand);
        }
    }
    let rover = if random_fully { None } else { rover };
    let (got, free) = l4proto_unique(ct, now, cand, range, rover, rng);
    free.then_some(got)
}

/// The null binding of a new connection no SNAT rule bound (`nf_nat_alloc_null_binding` at
/// POSTROUTING / INPUT, through `nf_nat_setup_info` and `get_unique_tuple`): the source stays,
/// unless the REPLY tuple is already held by another entry (a DNATed connection whose reply
/// is another connection's tuple). Then the source port (ICMP: id) is remapped within its
/// class by `l4proto_unique` (`nf_nat_l4proto_unique_tuple`), as MASQUERADE without a range would. `None`: nothing changes;
/// otherwise the new REPLY tuple, which may still be taken when the class is exhausted (the
/// confirmation then fails, as in Linux).
///
/// Linux checks the kept tuple twice before searching (`nf_nat_used_tuple_new`, then
/// `nf_nat_used_tuple` at step 3), and each taken check counts in `conntrack -S found`. Its
/// exception for an unNATed entry clashing with its exact reverse (both directions created
/// at once on two CPUs) cannot arise on one CPU, and the last-32-tries eviction of a
/// SRC_NATed TIME_WAIT entry (`nf_nat_used_tuple_harder`) is not modelled.
pub fn null_binding(
    ct: &mut Conntrack,
    now: Instant,
    reply: &Tuple,
    rover: Option<&mut u16>,
    rng: &mut SimRng,
) -> Option<Tuple> {
    if !ct.tuple_taken(now, reply) {
        return None;
    }
    ct.tuple_taken(now, reply);
    let got = l4proto_unique(ct, now, *reply, None, rover, rng).0;
    (got != *reply).then_some(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::tests::{tcp, udp};
    use crate::conntrack::CtConfig;
    use crate::rng::Stream;
    use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket, UdpPacket};

    const C: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
    const VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
    const B: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);
    const NODE: Ipv4Address = Ipv4Address::new(192, 168, 1, 100);

    fn checksums_ok(p: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        let (s, d) = (
            IpAddress::Ipv4(ip.src_addr()),
            IpAddress::Ipv4(ip.dst_addr()),
        );
        ip.verify_checksum()
            && match ip.next_header() {
                IpProtocol::Tcp => TcpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(&s, &d),
                IpProtocol::Udp => UdpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(&s, &d),
                _ => smoltcp::wire::Icmpv4Packet::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(),
            }
    }

    #[test]
    fn dnat_and_snat_keep_checksums_valid() {
        let mut p = tcp(C, 40000, VIP, 80, "PA", 77, 99, 100);
        assert!(rewrite(&mut p, Manip::Dst, B, 8080, false));
        assert!(rewrite(&mut p, Manip::Src, NODE, 54321, false));
        let t = Tuple::of_packet(&p).unwrap();
        assert_eq!((t.src, t.sport, t.dst, t.dport), (NODE, 54321, B, 8080));
        assert!(checksums_ok(&p));
        let mut u = udp(C, 5353, VIP, 53);
        assert!(rewrite(&mut u, Manip::Dst, B, 53, false));
        assert!(checksums_ok(&u));
    }

    #[test]
    fn icmp_error_quote_is_translated_back() {
        // The backend answers the DNATed packet with port unreachable.
        let mut sent = udp(C, 4000, VIP, 53);
        rewrite(&mut sent, Manip::Dst, B, 53, false);
        let mut icmp = alloc::vec![3u8, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&sent[..28]);
        smoltcp::wire::Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
        let mut err = crate::conntrack::tests::ip(B, C, IpProtocol::Icmp, &icmp);
        let orig = Tuple {
            src: C,
            dst: VIP,
            sport: 4000,
            dport: 53,
            proto: proto::UDP,
        };
        assert!(translate_icmp_error(&mut err, &orig));
        assert!(apply(
            &mut err,
            Manip::Src,
            &Tuple {
                src: VIP,
                ..orig.invert()
            }
        ));
        let ip = Ipv4Packet::new_checked(&err[..]).unwrap();
        assert_eq!(ip.src_addr(), VIP);
        let quoted = Tuple::of_packet(&ip.payload()[8..]).unwrap();
        assert_eq!(quoted, orig);
        assert!(Ipv4Packet::new_unchecked(&ip.payload()[8..28]).verify_checksum());
        assert!(checksums_ok(&err));
    }

    #[test]
    fn masquerade_preserves_the_port_when_free_and_searches_when_not() {
        let mut ct = Conntrack::new(CtConfig::default(), 1);
        let mut rng = SimRng::derive(1, Stream::Node(0));
        let now = Instant::ZERO;
        let reply = Tuple {
            src: B,
            dst: C,
            sport: 80,
            dport: 40000,
            proto: proto::TCP,
        };
        let got = unique_snat(&mut ct, now, &reply, NODE, None, false, None, &mut rng).unwrap();
        assert_eq!((got.dst, got.dport), (NODE, 40000), "port preserved");
        // Occupy that reply tuple with a confirmed entry.
        let p = tcp(C, 40000, B, 80, "S", 1, 0, 0);
        let info = ct.track(now, &p, true).unwrap();
        ct.bind_nat(info.entry.unwrap(), &got);
        ct.confirm(now, info.entry.unwrap()).unwrap();
        let other = Tuple {
            dst: Ipv4Address::new(10, 244, 0, 6),
            ..reply
        };
        let moved = unique_snat(&mut ct, now, &other, NODE, None, false, None, &mut rng).unwrap();
        assert_ne!(moved.dport, 40000);
        assert!((1024..=65535).contains(&moved.dport));
        // Another destination: the same port is free again (uniqueness is per reply tuple).
        let elsewhere = Tuple {
            src: Ipv4Address::new(10, 244, 2, 9),
            ..other
        };
        assert_eq!(
            unique_snat(&mut ct, now, &elsewhere, NODE, None, false, None, &mut rng)
                .unwrap()
                .dport,
            40000
        );
        // Low ports stay low.
        let low = Tuple {
            dport: 700,
            ..reply
        };
        let p = unique_snat(&mut ct, now, &low, NODE, None, true, None, &mut rng)
            .unwrap()
            .dport;
        assert!((600..=1023).contains(&p), "{p}");
    }

    #[test]
    fn random_fully_never_keeps_the_port_by_default() {
        let mut ct = Conntrack::new(CtConfig::default(), 1);
        let mut rng = SimRng::derive(2, Stream::Node(0));
        let reply = Tuple {
            src: B,
            dst: C,
            sport: 80,
            dport: 40000,
            proto: proto::TCP,
        };
        let kept = (0..50)
            .filter(|_| {
                unique_snat(
                    &mut ct,
                    Instant::ZERO,
                    &reply,
                    NODE,
                    None,
                    true,
                    None,
                    &mut rng,
                )
                .unwrap()
                .dport
                    == 40000
            })
            .count();
        assert!(kept <= 1);
    }

    #[test]
    fn an_exhausted_range_fails() {
        let mut ct = Conntrack::new(CtConfig::default(), 1);
        let mut rng = SimRng::derive(3, Stream::Node(0));
        let range = Some(PortRange {
            min: 1000,
            max: 1001,
        });
        let now = Instant::ZERO;
        for sport in [1u16, 2] {
            let reply = Tuple {
                src: B,
                dst: C,
                sport: 80,
                dport: sport,
                proto: proto::TCP,
            };
            let got =
                unique_snat(&mut ct, now, &reply, NODE, range, false, None, &mut rng).unwrap();
            let p = tcp(C, sport, B, 80, "S", 1, 0, 0);
            let e = ct.track(now, &p, true).unwrap().entry.unwrap();
            ct.bind_nat(e, &got);
            ct.confirm(now, e).unwrap();
        }
        let reply = Tuple {
            src: B,
            dst: C,
            sport: 80,
            dport: 3,
            proto: proto::TCP,
        };
        assert_eq!(
            unique_snat(&mut ct, now, &reply, NODE, range, false, None, &mut rng),
            None
        );
    }
    fn echo(src: Ipv4Address, dst: Ipv4Address, typ: u8, id: u16) -> alloc::vec::Vec<u8> {
        let mut icmp = [typ, 0, 0, 0, 0, 0, 0, 1];
        icmp[4..6].copy_from_slice(&id.to_be_bytes());
        smoltcp::wire::Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
        crate::conntrack::tests::ip(src, dst, IpProtocol::Icmp, &icmp)
    }

    /// Regression (kernel replay, corpus icmp-echo): the "port" of an ICMP echo is its id,
    /// kept in `sport` of both tuples; the type and code (`dport`) never change, and
    /// `--random-fully` draws a new id.
    #[test]
    fn masquerading_an_echo_chooses_its_id() {
        const EXT: Ipv4Address = Ipv4Address::new(203, 0, 113, 10);
        let mut ct = Conntrack::new(CtConfig::default(), 1);
        let mut rng = SimRng::derive(4, Stream::Node(0));
        let now = Instant::ZERO;
        let req = echo(C, EXT, 8, 7);
        let e = ct.track(now, &req, true).unwrap().entry.unwrap();
        let reply = ct.entry(e).tuple(1);
        assert_eq!((reply.sport, reply.dport), (7, 0));
        let kept = unique_snat(&mut ct, now, &reply, NODE, None, false, None, &mut rng).unwrap();
        assert_eq!((kept.dst, kept.sport, kept.dport), (NODE, 7, 0), "id kept");
        let mut ids = alloc::vec::Vec::new();
        for _ in 0..50 {
            let r = unique_snat(&mut ct, now, &reply, NODE, None, true, None, &mut rng).unwrap();
            assert_eq!((r.dst, r.dport), (NODE, 0), "type and code untouched");
            ids.push(r.sport);
        }
        assert!(ids.iter().filter(|&&i| i == 7).count() <= 1, "{ids:?}");
        let r = Tuple {
            sport: 44419,
            ..kept
        };
        ct.bind_nat(e, &r);
        assert!(ct.entry(e).has(crate::conntrack::table::bits::SRC_NAT));
        assert!(!ct.entry(e).has(crate::conntrack::table::bits::DST_NAT));
        ct.confirm(Instant::ZERO, e).unwrap();
        assert!(
            ct.line(e, now).contains(
                "src=10.244.0.5 dst=203.0.113.10 type=8 code=0 id=7 [UNREPLIED] \
                 src=203.0.113.10 dst=192.168.1.100 type=0 code=0 id=44419 "
            ),
            "{}",
            ct.line(e, now)
        );
        // The request leaves with the new id, the reply comes back to the pod's id.
        let mut out = req.clone();
        assert!(apply(&mut out, Manip::Src, &r.invert()));
        let t = Tuple::of_packet(&out).unwrap();
        assert_eq!((t.src, t.sport, t.dport), (NODE, 44419, 8 << 8));
        assert!(checksums_ok(&out));
        let mut back = echo(EXT, NODE, 0, 44419);
        let info = ct.track(now, &back, true).unwrap();
        assert_eq!(info.entry, Some(e));
        assert!(apply(&mut back, Manip::Dst, &ct.entry(e).tuple(0).invert()));
        let t = Tuple::of_packet(&back).unwrap();
        assert_eq!((t.dst, t.sport, t.dport), (C, 7, 0));
        assert!(checksums_ok(&back));
        // A router's time exceeded quoting the translated request: the quote gets the
        // pod's address and id back, with valid checksums inside and out.
        let router = Ipv4Address::new(192, 168, 1, 254);
        let mut icmp = alloc::vec![11u8, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&out);
        smoltcp::wire::Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
        let mut err = crate::conntrack::tests::ip(router, NODE, IpProtocol::Icmp, &icmp);
        assert!(translate_icmp_error(&mut err, &ct.entry(e).tuple(0)));
        let ip = Ipv4Packet::new_checked(&err[..]).unwrap();
        let inner = &ip.payload()[8..];
        assert_eq!(Tuple::of_packet(inner).unwrap(), ct.entry(e).tuple(0));
        assert!(Ipv4Packet::new_unchecked(&inner[..20]).verify_checksum());
        assert!(smoltcp::wire::Icmpv4Packet::new_checked(&inner[20..])
            .unwrap()
            .verify_checksum());
        assert!(checksums_ok(&err));
    }

    /// The DNAT reply-tuple clash of the kernel corpus (tcp-time-wait-reopen): the backend
    /// opened B:8080 -> C:40000 itself; the client's C:40000 -> VIP:80, DNATed to B:8080,
    /// would have that entry's original tuple as its reply. The null binding moves the
    /// client's source port within its class; a free reply tuple is left alone.
    #[test]
    fn a_null_binding_moves_the_source_port_off_a_taken_reply_tuple() {
        let mut ct = Conntrack::new(CtConfig::default(), 1);
        let mut rng = SimRng::derive(5, Stream::Node(0));
        let now = Instant::ZERO;
        let own = ct
            .track(now, &tcp(B, 8080, C, 40000, "S", 1, 0, 0), true)
            .unwrap()
            .entry
            .unwrap();
        ct.confirm(Instant::ZERO, own).unwrap();
        let e = ct
            .track(now, &tcp(C, 40000, VIP, 80, "S", 9, 0, 0), true)
            .unwrap()
            .entry
            .unwrap();
        let dnat = Tuple {
            src: B,
            sport: 8080,
            ..ct.entry(e).tuple(1)
        };
        ct.bind_nat(e, &dnat);
        assert_eq!(dnat, ct.entry(own).tuple(0));
        let found = ct.stats().found;
        let moved = null_binding(&mut ct, now, &dnat, None, &mut rng).unwrap();
        assert_eq!((moved.src, moved.sport, moved.dst), (B, 8080, C));
        assert!((1024..=65535).contains(&moved.dport) && moved.dport != 40000);
        // nf_nat_used_tuple_new and nf_nat_used_tuple each found it taken.
        assert!(ct.stats().found >= found + 2);
        ct.bind_nat(e, &moved);
        let bits = crate::conntrack::table::bits::SRC_NAT | crate::conntrack::table::bits::DST_NAT;
        assert!(ct.entry(e).bits & bits == bits);
        ct.confirm(Instant::ZERO, e).unwrap();
        assert_eq!(ct.stats().insert_failed, 0);
        // Free: nothing changes, nothing counted.
        let found = ct.stats().found;
        let free = Tuple {
            dport: 40001,
            ..dnat
        };
        assert_eq!(null_binding(&mut ct, now, &free, None, &mut rng), None);
        assert_eq!(ct.stats().found, found);
        // Ports below 1024 stay in their class.
        let low = ct
            .track(now, &tcp(B, 8080, C, 700, "S", 1, 0, 0), true)
            .unwrap()
            .entry
            .unwrap();
        ct.confirm(Instant::ZERO, low).unwrap();
        let taken = ct.entry(low).tuple(0);
        let p = null_binding(&mut ct, now, &taken, None, &mut rng)
            .unwrap()
            .dport;
        assert!((600..=1023).contains(&p), "{p}");
        // ICMP: the id moves, over the whole 0-65535 range.
        let ping = ct
            .track(now, &echo(B, C, 8, 3), true)
            .unwrap()
            .entry
            .unwrap();
        ct.confirm(Instant::ZERO, ping).unwrap();
        let mine = ct.entry(ping).tuple(0);
        let r = null_binding(&mut ct, now, &mine, None, &mut rng).unwrap();
        assert_eq!((r.dport, r.src, r.dst), (mine.dport, B, C));
        assert_ne!(r.sport, 3);
    }
}
