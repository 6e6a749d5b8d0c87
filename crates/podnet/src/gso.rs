//! TCP segmentation offload: how large a pod's super-segments are, and how a wire carries them.
//!
//! A pod's `eth0` is a veth, which Linux gives TSO and GSO. A pod's TCP therefore builds
//! packets of many segments (`tcp_sendmsg` fills an skb up to the size goal of
//! `tcp_xmit_size_goal`) and sets `gso_size` to the MSS. Such a packet crosses the veth, the
//! bridge, netfilter (one conntrack lookup, one rule walk, counted once), routing and the
//! VXLAN device whole; `tcpdump` on any of them shows it with its full length. It is cut
//! into MSS-sized segments only where it leaves on a wire: by the NIC (TSO), which
//! `tcpdump` on the node's `eth0` does not see either, since it captures before the driver.
//! The receiving NIC's GRO merges the segments of one burst again, so the next node sees
//! the same super-segment. [`crate::link::Channel`] does both: a wire's serialization and
//! loss are per segment, and what arrives is the sender's packet, or, when segments were
//! lost, the runs of segments between the gaps (GRO flushes at a gap).

use core::num::NonZeroUsize;

use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

use crate::link::Frame;

/// A veth's `gso_max_size` (`GSO_LEGACY_MAX_SIZE`): the largest GSO packet, headers included.
pub const GSO_MAX_SIZE: usize = 65536;

/// Linux's `MAX_TCP_HEADER` on x86-64 with Debian's configuration:
/// `L1_CACHE_ALIGN(128 + MAX_HEADER)`, `MAX_HEADER` = 128 (`LL_MAX_HEADER`) + 48.
pub const MAX_TCP_HEADER: usize = 320;

/// The largest TCP payload of a super-segment from a pod whose `eth0` has IP MTU `mtu`
/// (whole segments of the MSS its SYN announces); `None` when that is less than two
/// segments.
///
/// Linux 6.18: the socket's `sk_gso_max_size` is the device's `gso_max_size` less
/// `MAX_TCP_HEADER + 1` (`sk_setup_caps`), and `tcp_tso_autosize` allows all of it on a
/// LAN (its pacing term adds `gso_max_size >> (min_rtt_us >> 9)`). `tcp_sendmsg` builds
/// skbs of half the peer's largest window at most (`tcp_bound_to_half_wnd`), but
/// `tcp_write_xmit` grows the one it sends from those behind it (`tcp_grow_skb`, 6.10), so
/// what leaves is bounded by this, the congestion window and the peer's window. Measured on
/// two namespaces joined by a veth, the receiver's window clamped to 65,535: 14,480, then
/// 31,856 (22 segments, the half window), then up to 65,160 bytes (45 segments of 1,448 with
/// timestamps). smoltcp applies the windows itself, without Linux's rounding to whole
/// segments.
pub fn tso_payload_max(mtu: usize) -> Option<NonZeroUsize> {
    let mss = mtu.checked_sub(40).filter(|m| *m > 0)?;
    let segs = (GSO_MAX_SIZE - 1 - MAX_TCP_HEADER) / mss;
    if segs < 2 {
        return None;
    }
    NonZeroUsize::new(segs * mss)
}

const ETH: usize = 14;
const VXLAN_PORT: u16 = crate::node::vxlan::VXLAN_PORT;

/// Where the headers of an Ethernet frame holding IPv4 TCP are, directly or in VXLAN: offsets
/// from the frame's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The outer IPv4 header of a VXLAN packet, and its UDP header.
    pub outer: Option<(usize, usize)>,
    /// The (inner) IPv4 header.
    pub ip: usize,
    /// The TCP header.
    pub tcp: usize,
    /// The TCP payload, which runs to the frame's end.
    pub payload: usize,
}

fn ipv4_tcp(frame: &[u8], ip: usize) -> Option<(usize, usize)> {
    let p = Ipv4Packet::new_checked(frame.get(ip..)?).ok()?;
    if p.next_header() != IpProtocol::Tcp || p.frag_offset() != 0 || p.more_frags() {
        return None;
    }
    let end = ip + usize::from(p.total_len());
    if end != frame.len() {
        return None;
    }
    let tcp = ip + usize::from(p.header_len());
    let t = TcpPacket::new_checked(frame.get(tcp..end)?).ok()?;
    Some((tcp, tcp + usize::from(t.header_len())))
}

/// The layout of `frame` when it holds an unfragmented IPv4 TCP segment, directly or in
/// VXLAN (UDP 8472), and nothing after it.
pub fn layout(frame: &[u8]) -> Option<Layout> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    if let Some((tcp, payload)) = ipv4_tcp(frame, ETH) {
        return Some(Layout {
            outer: None,
            ip: ETH,
            tcp,
            payload,
        });
    }
    // VXLAN: outer IPv4, UDP to the VXLAN port, the VXLAN header, the inner Ethernet frame.
    let outer = Ipv4Packet::new_checked(frame.get(ETH..)?).ok()?;
    if outer.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = ETH + usize::from(outer.header_len());
    if UdpPacket::new_checked(frame.get(udp..)?).ok()?.dst_port() != VXLAN_PORT {
        return None;
    }
    let inner_eth = udp + 8 + 8;
    if frame.get(inner_eth + 12..inner_eth + 14)? != [0x08, 0x00] {
        return None;
    }
    let ip = inner_eth + ETH;
    let (tcp, payload) = ipv4_tcp(frame, ip)?;
    Some(Layout {
        outer: Some((ETH, udp)),
        ip,
        tcp,
        payload,
    })
}

/// How a wire carries a frame: its segments and their bytes (each with a copy of the
/// headers), or one frame as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireShape {
    /// Segments on the wire (1 for an ordinary frame).
    pub segments: usize,
    /// Their bytes, headers included.
    pub bytes: usize,
    /// Header bytes each segment carries (the whole frame for an ordinary one).
    headers: usize,
    /// TCP payload bytes per segment (0 for an ordinary frame).
    seg: usize,
}

impl WireShape {
    /// An ordinary frame: one segment, its own length.
    pub fn whole(frame: &Frame) -> Self {
        WireShape {
            segments: 1,
            bytes: frame.len(),
            headers: frame.len(),
            seg: 0,
        }
    }

    /// Bytes on the wire of the first `k` segments.
    pub fn bytes_through(&self, k: usize) -> usize {
        if k >= self.segments {
            return self.bytes;
        }
        k * (self.headers + self.seg)
    }
}

/// What a wire makes of `frame`: a super-segment (a `gso_size` and more payload than one
/// segment) as its segments, anything else as one frame.
pub fn wire_shape(frame: &Frame) -> WireShape {
    let one = WireShape::whole(frame);
    let gso = usize::from(frame.gso_size());
    if gso == 0 {
        return one;
    }
    let Some(l) = layout(frame) else {
        return one;
    };
    let payload = frame.len() - l.payload;
    if payload <= gso {
        return one;
    }
    let segments = payload.div_ceil(gso);
    WireShape {
        segments,
        bytes: segments * l.payload + payload,
        headers: l.payload,
        seg: gso,
    }
}

/// Segments `first..end` of super-segment `frame` as one packet: what the receiving NIC's GRO
/// makes of a run of them (a single segment is an ordinary frame). Headers as TSO writes
/// them: sequence number advanced, FIN and PSH on the last segment only, CWR on the first,
/// IP IDs counting up per segment, lengths and checksums of each packet.
pub fn piece(frame: &Frame, first: usize, end: usize) -> Frame {
    let gso = usize::from(frame.gso_size());
    let Some(l) = layout(frame).filter(|_| gso > 0) else {
        return frame.clone();
    };
    let total = frame.len() - l.payload;
    let from = (first * gso).min(total);
    let to = (end * gso).min(total);
    let last = to == total;
    let mut out = Frame::new(alloc::vec::Vec::with_capacity(l.payload + to - from));
    out.extend_from_slice(&frame[..l.payload]);
    out.extend_from_slice(&frame[l.payload + from..l.payload + to]);
    let len = out.len();
    let ident_step = first as u16;
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut out[l.ip..]);
        ip.set_total_len((len - l.ip) as u16);
        ip.set_ident(ip.ident().wrapping_add(ident_step));
        ip.fill_checksum();
    }
    let (src, dst) = {
        let ip = Ipv4Packet::new_unchecked(&out[l.ip..]);
        (ip.src_addr(), ip.dst_addr())
    };
    {
        let mut tcp = TcpPacket::new_unchecked(&mut out[l.tcp..]);
        tcp.set_seq_number(tcp.seq_number() + from);
        if !last {
            tcp.set_fin(false);
            tcp.set_psh(false);
        }
        if first > 0 {
            tcp.set_cwr(false);
        }
        tcp.fill_checksum(&src.into(), &dst.into());
    }
    if let Some((oip, udp)) = l.outer {
        let (osrc, odst) = {
            let mut ip = Ipv4Packet::new_unchecked(&mut out[oip..]);
            ip.set_total_len((len - oip) as u16);
            ip.set_ident(ip.ident().wrapping_add(ident_step));
            ip.fill_checksum();
            (ip.src_addr(), ip.dst_addr())
        };
        let mut u = UdpPacket::new_unchecked(&mut out[udp..]);
        u.set_len((len - udp) as u16);
        if u.checksum() != 0 {
            u.fill_checksum(&osrc.into(), &odst.into());
        }
    }
    if to - from > gso {
        out.set_gso_size(frame.gso_size());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet;
    use smoltcp::wire::{EthernetFrame, Ipv4Address};

    const A: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
    const B: Ipv4Address = Ipv4Address::new(10, 244, 1, 2);

    fn framed(ip: alloc::vec::Vec<u8>) -> Frame {
        let mut f = alloc::vec![0u8; ETH];
        f[12] = 0x08;
        f.extend_from_slice(&ip);
        Frame::new(f)
    }

    /// A 3-segment-and-a-bit super-segment: 1000-byte segments, 3500 bytes, PSH and FIN.
    fn superseg() -> Frame {
        let mut f = framed(packet::tcp(A, 40000, B, 80, "FA", 1000, 7, 3500));
        let mut tcp = TcpPacket::new_unchecked(&mut f[ETH + 20..]);
        tcp.set_psh(true);
        tcp.fill_checksum(&A.into(), &B.into());
        f.set_gso_size(1000);
        f
    }

    fn tcp_of(f: &Frame, at: usize) -> (u32, bool, bool, usize) {
        let ip = Ipv4Packet::new_checked(&f[at..]).unwrap();
        assert!(ip.verify_checksum());
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
        (t.seq_number().0 as u32, t.psh(), t.fin(), t.payload().len())
    }

    #[test]
    fn sizes_follow_linux_size_goal() {
        // gso_max_size less MAX_TCP_HEADER and one byte, in whole 1460-byte segments.
        assert_eq!(tso_payload_max(1500).unwrap().get(), 44 * 1460);
        // VXLAN's 1450-byte MTU: 1410-byte segments.
        assert_eq!(tso_payload_max(1450).unwrap().get(), 46 * 1410);
        assert_eq!(tso_payload_max(40), None);
        assert_eq!(tso_payload_max(40_000), None);
    }

    #[test]
    fn a_wire_carries_segments() {
        let f = superseg();
        let s = wire_shape(&f);
        assert_eq!(s.segments, 4);
        assert_eq!(s.bytes, 4 * 54 + 3500);
        assert_eq!(s.bytes_through(1), 1054);
        assert_eq!(s.bytes_through(3), 3 * 1054);
        assert_eq!(s.bytes_through(4), s.bytes);
        let mut plain = f.clone();
        plain.set_gso_size(0);
        assert_eq!(wire_shape(&plain).segments, 1);
    }

    #[test]
    fn pieces_are_whole_packets() {
        let f = superseg();
        let a = piece(&f, 0, 2);
        assert_eq!(tcp_of(&a, ETH), (1000, false, false, 2000));
        assert_eq!(a.gso_size(), 1000);
        let b = piece(&f, 3, 4);
        assert_eq!(tcp_of(&b, ETH), (4000, true, true, 500));
        assert_eq!(b.gso_size(), 0);
        let ident = |f: &Frame| Ipv4Packet::new_checked(&f[ETH..]).unwrap().ident();
        assert_eq!(ident(&b), ident(&f).wrapping_add(3));
        // All of it: the same packet.
        assert_eq!(piece(&f, 0, 4), f);
    }

    #[test]
    fn vxlan_pieces_fix_both_headers() {
        let inner = superseg();
        let mut outer = crate::node::vxlan::encap(&inner, A, B, 9);
        EthernetFrame::new_unchecked(&mut outer[..])
            .set_ethertype(smoltcp::wire::EthernetProtocol::Ipv4);
        outer.set_gso_size(1000);
        assert_eq!(wire_shape(&outer).segments, 4);
        let p = piece(&outer, 1, 3);
        let ip = Ipv4Packet::new_checked(&p[ETH..]).unwrap();
        assert!(ip.verify_checksum());
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(usize::from(u.len()), p.len() - ETH - 20);
        assert!(u.verify_checksum(&A.into(), &B.into()));
        assert_eq!(
            tcp_of(&p, ETH + 20 + 8 + 8 + ETH),
            (2000, false, false, 2000)
        );
    }
}
