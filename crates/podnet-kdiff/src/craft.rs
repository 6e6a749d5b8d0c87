//! Frames built byte by byte for the generated corpus: Ethernet, ARP, IPv4, TCP (any flags,
//! sequence numbers and options), UDP and ICMP (echo, and errors quoting a packet), with their
//! checksums; and the few fields the corpus reads back from what a node emitted.

use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// TCP flags.
pub const FIN: u8 = 0x01;
/// SYN.
pub const SYN: u8 = 0x02;
/// RST.
pub const RST: u8 = 0x04;
/// PSH.
pub const PSH: u8 = 0x08;
/// ACK.
pub const ACK: u8 = 0x10;

/// A TCP option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    /// Maximum segment size.
    Mss(u16),
    /// Window scale shift.
    Wscale(u8),
    /// SACK permitted.
    SackPerm,
    /// SACK blocks (left, right), absolute sequence numbers.
    Sack(Vec<(u32, u32)>),
    /// Timestamps (value, echo reply).
    Ts(u32, u32),
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(data, 0))
}

fn pseudo(src: Ipv4Address, dst: Ipv4Address, proto: u8, len: usize) -> u32 {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    sum16(&p, 0)
}

/// An Ethernet frame.
pub fn eth(dst: EthernetAddress, src: EthernetAddress, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP reply `ip is-at mac` to (`to_ip`, `to_mac`), in its Ethernet frame.
pub fn arp_reply(
    mac: EthernetAddress,
    ip: Ipv4Address,
    to_mac: EthernetAddress,
    to_ip: Ipv4Address,
) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 2];
    a.extend_from_slice(&mac.0);
    a.extend_from_slice(&ip.octets());
    a.extend_from_slice(&to_mac.0);
    a.extend_from_slice(&to_ip.octets());
    eth(to_mac, mac, 0x0806, &a)
}

/// An IPv4 header (DF set, no options) followed by `payload`.
pub fn ipv4(
    src: Ipv4Address,
    dst: Ipv4Address,
    proto: u8,
    ttl: u8,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let len = 20 + payload.len();
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x40, 0, ttl, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A TCP segment (header, options padded with NOPs to a multiple of 4, payload of `len`
/// bytes), checksummed for `src` -> `dst`.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: Ipv4Address,
    dst: Ipv4Address,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    opts: &[TcpOpt],
    len: usize,
) -> Vec<u8> {
    let mut o = Vec::new();
    for opt in opts {
        match opt {
            TcpOpt::Mss(m) => {
                o.extend_from_slice(&[2, 4]);
                o.extend_from_slice(&m.to_be_bytes());
            }
            TcpOpt::Wscale(s) => o.extend_from_slice(&[1, 3, 3, *s]),
            TcpOpt::SackPerm => o.extend_from_slice(&[1, 1, 4, 2]),
            TcpOpt::Sack(blocks) => {
                o.extend_from_slice(&[1, 1, 5, 2 + 8 * blocks.len() as u8]);
                for (l, r) in blocks {
                    o.extend_from_slice(&l.to_be_bytes());
                    o.extend_from_slice(&r.to_be_bytes());
                }
            }
            TcpOpt::Ts(v, e) => {
                o.extend_from_slice(&[1, 1, 8, 10]);
                o.extend_from_slice(&v.to_be_bytes());
                o.extend_from_slice(&e.to_be_bytes());
            }
        }
    }
    while o.len() % 4 != 0 {
        o.push(1);
    }
    let hl = 20 + o.len();
    let mut t = Vec::with_capacity(hl + len);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[((hl / 4) as u8) << 4, flags]);
    t.extend_from_slice(&win.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(&o);
    t.extend((0..len).map(|i| b'a' + (i % 26) as u8));
    let c = fold(sum16(&t, pseudo(src, dst, 6, t.len())));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP datagram with `len` payload bytes.
pub fn udp(src: Ipv4Address, dst: Ipv4Address, sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + len);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend((0..len).map(|i| b'0' + (i % 10) as u8));
    let mut c = fold(sum16(&u, pseudo(src, dst, 17, u.len())));
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// An ICMP message: type, code, the 4 bytes after the checksum, then `body`.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// What the corpus reads back from a frame a node emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Ethernet destination.
    pub dst_mac: EthernetAddress,
    /// Ethernet source.
    pub src_mac: EthernetAddress,
    /// IP source.
    pub src: Ipv4Address,
    /// IP destination.
    pub dst: Ipv4Address,
    /// IP protocol.
    pub proto: u8,
    /// TCP/UDP source port, ICMP echo id.
    pub sport: u16,
    /// TCP/UDP destination port, ICMP type << 8 | code.
    pub dport: u16,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP flags.
    pub flags: u8,
}

/// Parses an Ethernet/IPv4 frame (no VXLAN); `None` for ARP and anything else.
pub fn seen(frame: &[u8]) -> Option<Seen> {
    if frame.len() < 34 || frame[12..14] != [8, 0] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let l4 = ip.get(ihl..)?;
    let proto = ip[9];
    let mac = |b: &[u8]| EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]]);
    let a = |b: &[u8]| Ipv4Address::new(b[0], b[1], b[2], b[3]);
    let (sport, dport, seq, flags) = match proto {
        6 if l4.len() >= 20 => (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
            u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]),
            l4[13],
        ),
        17 if l4.len() >= 8 => (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
            0,
            0,
        ),
        1 if l4.len() >= 8 => (
            u16::from_be_bytes([l4[4], l4[5]]),
            u16::from_be_bytes([l4[0], l4[1]]),
            0,
            0,
        ),
        _ => return None,
    };
    Some(Seen {
        dst_mac: mac(&frame[0..6]),
        src_mac: mac(&frame[6..12]),
        src: a(&ip[12..16]),
        dst: a(&ip[16..20]),
        proto,
        sport,
        dport,
        seq,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        let (s, d) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
        let t = tcp(
            s,
            d,
            1,
            2,
            3,
            4,
            SYN | ACK,
            5,
            &[TcpOpt::Mss(1460), TcpOpt::Wscale(7)],
            3,
        );
        assert_eq!(fold(sum16(&t, pseudo(s, d, 6, t.len()))), 0);
        let ip = ipv4(s, d, 6, 64, 1, &t);
        assert_eq!(checksum(&ip[..20]), 0);
        let u = udp(s, d, 1, 2, 5);
        assert_eq!(fold(sum16(&u, pseudo(s, d, 17, u.len()))), 0);
        let f = eth(
            EthernetAddress([2; 6]),
            EthernetAddress([4; 6]),
            0x0800,
            &ip,
        );
        let x = seen(&f).unwrap();
        assert_eq!(
            (x.src, x.dst, x.sport, x.dport, x.seq, x.flags),
            (s, d, 1, 2, 3, SYN | ACK)
        );
    }
}
