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
/// header is present in full; `quoted` marks the 8-byte quote inside an ICMP error, where a
/// TCP checksum is not present. Returns false if the packet is too short.
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
            if l4.len() >= cofs + 2 && !(quoted && proto == proto::TCP) {
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

/// `nf_nat_l4proto_unique_tuple`'s attempt limit.
pub const MAX_ATTEMPTS: u32 = 128;

/// Chooses the source port (or ICMP id) for a connection whose REPLY tuple would be `reply`
/// after SNAT to `to`. Port preservation first (unless `random_fully`), then a search of the
/// range from a random offset, at most 128 tries, halving the tries each round with a fresh
/// offset (Linux's loop). Returns the REPLY tuple to bind, or `None` when no port is free.
pub fn unique_snat(
    ct: &mut Conntrack,
    now: Instant,
    reply: &Tuple,
    to: Ipv4Address,
    range: Option<PortRange>,
    random_fully: bool,
    rng: &mut SimRng,
) -> Option<Tuple> {
    let mut cand = *reply;
    cand.dst = to;
    if !random_fully && !ct.tuple_taken(now, &cand) {
        if let Some(r) = range {
            if (r.min..=r.max).contains(&cand.dport) {
                return Some(cand);
            }
        } else {
            return Some(cand);
        }
    }
    let orig_port = reply.dport;
    let (min, size): (u32, u32) = match range {
        Some(r) => (u32::from(r.min), u32::from(r.max) - u32::from(r.min) + 1),
        None if reply.proto == proto::ICMP => (0, 65536),
        None if orig_port < 512 => (1, 511),
        None if orig_port < 1024 => (600, 1023 - 600 + 1),
        None => (1024, 65535 - 1024 + 1),
    };
    let mut off = rng.next_u64() as u16 as u32;
    let mut attempts = size.min(MAX_ATTEMPTS);
    loop {
        for _ in 0..attempts {
            cand.dport = (min + off % size) as u16;
            off = off.wrapping_add(1);
            if !ct.tuple_taken(now, &cand) {
                return Some(cand);
            }
        }
        if attempts >= size || attempts < 16 {
            return None;
        }
        attempts /= 2;
        off = rng.next_u64() as u16 as u32;
    }
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
        let got = unique_snat(&mut ct, now, &reply, NODE, None, false, &mut rng).unwrap();
        assert_eq!((got.dst, got.dport), (NODE, 40000), "port preserved");
        // Occupy that reply tuple with a confirmed entry.
        let p = tcp(C, 40000, B, 80, "S", 1, 0, 0);
        let info = ct.track(now, &p, true).unwrap();
        ct.bind_nat(info.entry.unwrap(), &got);
        ct.confirm(info.entry.unwrap()).unwrap();
        let other = Tuple {
            dst: Ipv4Address::new(10, 244, 0, 6),
            ..reply
        };
        let moved = unique_snat(&mut ct, now, &other, NODE, None, false, &mut rng).unwrap();
        assert_ne!(moved.dport, 40000);
        assert!((1024..=65535).contains(&moved.dport));
        // Another destination: the same port is free again (uniqueness is per reply tuple).
        let elsewhere = Tuple {
            src: Ipv4Address::new(10, 244, 2, 9),
            ..other
        };
        assert_eq!(
            unique_snat(&mut ct, now, &elsewhere, NODE, None, false, &mut rng)
                .unwrap()
                .dport,
            40000
        );
        // Low ports stay low.
        let low = Tuple {
            dport: 700,
            ..reply
        };
        let p = unique_snat(&mut ct, now, &low, NODE, None, true, &mut rng)
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
                unique_snat(&mut ct, Instant::ZERO, &reply, NODE, None, true, &mut rng)
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
            let got = unique_snat(&mut ct, now, &reply, NODE, range, false, &mut rng).unwrap();
            let p = tcp(C, sport, B, 80, "S", 1, 0, 0);
            let e = ct.track(now, &p, true).unwrap().entry.unwrap();
            ct.bind_nat(e, &got);
            ct.confirm(e).unwrap();
        }
        let reply = Tuple {
            src: B,
            dst: C,
            sport: 80,
            dport: 3,
            proto: proto::TCP,
        };
        assert_eq!(
            unique_snat(&mut ct, now, &reply, NODE, range, false, &mut rng),
            None
        );
    }
}
