//! Connection tuples: what identifies one direction of a flow, as Linux's
//! `nf_conntrack_tuple`. TCP and UDP use ports; ICMP queries keep the echo id in the source
//! "port" and type/code in the destination "port"; other protocols only addresses.

use core::fmt;

use smoltcp::wire::{IpProtocol, Ipv4Address, Ipv4Packet};

/// IANA protocol numbers used here.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// One direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: Ipv4Address,
    /// Destination address.
    pub dst: Ipv4Address,
    /// Source port (TCP/UDP) or ICMP id.
    pub sport: u16,
    /// Destination port (TCP/UDP) or ICMP type << 8 | code.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// ICMP query types that create conntrack entries, with the type of their reply.
pub fn icmp_reply_type(t: u8) -> Option<u8> {
    match t {
        8 => Some(0),   // echo request -> echo reply
        13 => Some(14), // timestamp
        15 => Some(16), // info
        17 => Some(18), // address mask
        _ => None,
    }
}

/// Whether an ICMP type is a reply to a query (the reverse of [`icmp_reply_type`]).
pub fn icmp_is_reply(t: u8) -> bool {
    matches!(t, 0 | 14 | 16 | 18)
}

/// Whether an ICMP type is an error that quotes another packet.
pub fn icmp_is_error(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

impl Tuple {
    /// The tuple of the reverse direction (ICMP: request type <-> reply type).
    pub fn invert(&self) -> Tuple {
        let dport = if self.proto == proto::ICMP {
            let (t, code) = ((self.dport >> 8) as u8, self.dport as u8);
            let inv = icmp_reply_type(t).or(match t {
                0 => Some(8),
                14 => Some(13),
                16 => Some(15),
                18 => Some(17),
                _ => None,
            });
            (u16::from(inv.unwrap_or(t)) << 8) | u16::from(code)
        } else {
            self.sport
        };
        let sport = if self.proto == proto::ICMP {
            self.sport
        } else {
            self.dport
        };
        Tuple {
            src: self.dst,
            dst: self.src,
            sport,
            dport,
            proto: self.proto,
        }
    }

    /// Reads the tuple of an IPv4 packet, possibly truncated after the first 8 bytes of its L4
    /// header (as quoted in an ICMP error). `None` when even that is missing.
    pub fn of_packet(ip: &[u8]) -> Option<Tuple> {
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            return None;
        }
        let hl = usize::from(ip[0] & 0x0f) * 4;
        let pkt = Ipv4Packet::new_unchecked(ip);
        let l4 = ip.get(hl..).filter(|_| hl >= 20)?;
        let proto = u8::from(pkt.next_header());
        let (sport, dport) = match pkt.next_header() {
            IpProtocol::Tcp | IpProtocol::Udp => (be16(l4, 0)?, be16(l4, 2)?),
            IpProtocol::Icmp => (
                be16(l4, 4)?,
                u16::from(*l4.first()?) << 8 | u16::from(*l4.get(1)?),
            ),
            _ => (0, 0),
        };
        Some(Tuple {
            src: pkt.src_addr(),
            dst: pkt.dst_addr(),
            sport,
            dport,
            proto,
        })
    }

    /// The protocol name as `conntrack -L` prints it.
    pub fn proto_name(&self) -> &'static str {
        match self.proto {
            proto::TCP => "tcp",
            proto::UDP => "udp",
            proto::ICMP => "icmp",
            _ => "unknown",
        }
    }
}

/// Reads a big-endian u16 at `at`, if present.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl fmt::Display for Tuple {
    /// `src=A dst=B sport=P dport=Q` (ICMP: `type=T code=C id=I`), as `conntrack -L`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "src={} dst={} ", self.src, self.dst)?;
        match self.proto {
            proto::TCP | proto::UDP => write!(f, "sport={} dport={}", self.sport, self.dport),
            proto::ICMP => write!(
                f,
                "type={} code={} id={}",
                self.dport >> 8,
                self.dport & 0xff,
                self.sport
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invert_swaps_and_icmp_maps_types() {
        let t = Tuple {
            src: Ipv4Address::new(10, 0, 0, 1),
            dst: Ipv4Address::new(10, 0, 0, 2),
            sport: 40000,
            dport: 80,
            proto: proto::TCP,
        };
        let r = t.invert();
        assert_eq!((r.src, r.dst, r.sport, r.dport), (t.dst, t.src, 80, 40000));
        assert_eq!(r.invert(), t);
        let echo = Tuple {
            sport: 7,
            dport: 8 << 8,
            proto: proto::ICMP,
            ..t
        };
        let reply = echo.invert();
        assert_eq!((reply.sport, reply.dport >> 8), (7, 0));
        assert_eq!(reply.invert(), echo);
    }

    #[test]
    fn display_like_conntrack() {
        let t = Tuple {
            src: Ipv4Address::new(10, 244, 1, 5),
            dst: Ipv4Address::new(10, 96, 0, 20),
            sport: 40000,
            dport: 80,
            proto: proto::TCP,
        };
        assert_eq!(
            alloc::format!("{t}"),
            "src=10.244.1.5 dst=10.96.0.20 sport=40000 dport=80"
        );
        let i = Tuple {
            sport: 3,
            dport: 8 << 8,
            proto: proto::ICMP,
            ..t
        };
        assert_eq!(
            alloc::format!("{i}"),
            "src=10.244.1.5 dst=10.96.0.20 type=8 code=0 id=3"
        );
    }

    #[test]
    fn truncated_packets_have_no_tuple() {
        assert_eq!(Tuple::of_packet(&[0x45, 0, 0]), None);
    }
}
