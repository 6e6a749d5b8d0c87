//! What Linux charges for a packet it holds: `skb->truesize`, the packet's buffer plus the
//! kernel's own overhead. A neighbour's queue of packets waiting for ARP is bounded by the sum
//! of their truesizes (`unres_qlen_bytes`, 212,992), not by their lengths, so a small packet
//! counts for 832 bytes and the queue holds 256 SYNs, not the 2,878 their 74 bytes would fit.
//!
//! The sizes are those of Linux 6.18 on x86-64 for a packet built by a Linux stack (a pod's or
//! the node's) that reached the queue across veths and bridges, which keep the buffer as it was
//! allocated. They follow from the allocator (measured with the kernel, see below):
//!
//! - Every buffer costs its head plus `sizeof(struct sk_buff)` aligned to 64 bytes, 256.
//! - A head holds the data area (64-byte aligned) and `struct skb_shared_info` (320). A head of
//!   at most 576 bytes comes from the small-head cache (`skbuff_small_head`, 576 bytes, so 832
//!   in all); a larger one from the `kmalloc` size class above it (1,024, 2,048, 4,096...).
//! - TCP writes no payload into the head: its head reserves `MAX_TCP_HEADER` (small) and the
//!   payload goes into page fragments, charged byte for byte (`skb_copy_to_page_nocache`). A
//!   TCP segment costs 832 plus its payload, and NAT, which copies a cloned head, keeps that
//!   size class.
//! - Other packets (UDP, ICMP) are linear: the head holds the link-layer reserve (16), 15
//!   bytes of slack and the IP packet (`ip_append_data`, `sock_alloc_send_skb`). A UDP packet
//!   of up to 197 bytes of payload costs 832, up to 645 1,280, up to 1,472 2,304.
//! - VXLAN encapsulation needs more headroom than a forwarded linear packet has, so the head
//!   is copied 64 bytes larger (`skb_cow_head`, `pskb_expand_head`), which moves it one size
//!   class up; a TCP head has the room and keeps its size. The decapsulated packet on the
//!   other node is the same buffer, one class up. A packet the node itself sends through its
//!   VXLAN device was built with that device's reserve (`LL_RESERVED_SPACE`, 80 bytes, for
//!   its `needed_headroom` of 64) and is not copied.
//!
//! Measured on Linux 6.18.44 with a pod namespace sending through a node namespace (veth, a
//! bridge, forwarding, with and without DNAT and MASQUERADE, plain and through a VXLAN device)
//! to a next hop that never answers ARP: the smallest `unres_qlen_bytes` that keeps two
//! packets is twice their truesize. SYN 832 (same with NAT and VXLAN); TCP payload 10, 200,
//! 1,000, 1,448: 842 to 2,280; UDP payload 197/198: 832/1,280, 645/646: 1,280/2,304; through
//! VXLAN 1,280/2,304 and 2,304/4,352, and the same once decapsulated on the next node (a pod
//! behind the sending node); the node's own UDP through VXLAN: payload 133/134: 832/1,280,
//! 581/582: 1,280/2,304. At the default limit the kernel kept 256 of 4,000 SYNs.
//! `podnet-kdiff` measures the SYN and UDP cases again against this model (`neigh-queue`).
//!
//! A packet that arrived from a physical NIC would carry its driver's buffer size instead;
//! podnet's links between nodes are modelled as veths.

use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};

use super::vxlan::VXLAN_PORT;

/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))` on x86-64.
pub const SKB_OVERHEAD: usize = 256;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64.
pub const SHINFO: usize = 320;
/// The small-head cache's object size (`SKB_SMALL_HEAD_CACHE_SIZE`).
pub const SMALL_HEAD: usize = 576;
/// What a small packet costs: a small head and the `sk_buff`.
pub const SMALL: usize = SMALL_HEAD + SKB_OVERHEAD;
/// Headroom reserved in front of a linear packet's IP header: `LL_RESERVED_SPACE` of an
/// Ethernet device (16) and the 15 bytes `sock_alloc_send_skb`'s callers add.
const LINEAR_RESERVE: usize = 16 + 15;
/// The headroom VXLAN adds to a linear packet's head (`ALIGN(delta, NET_SKB_PAD)`).
const VXLAN_GROW: usize = 64;
/// Headroom reserved in front of a linear packet the node sends through `flannel.1`:
/// `LL_RESERVED_SPACE` of the VXLAN device (80) and the 15 bytes of slack.
const VXLAN_LOCAL_RESERVE: usize = 80 + 15;

/// How a packet's buffer went through VXLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tunnel {
    /// It did not.
    No,
    /// Forwarded into the tunnel (or decapsulated from it): its head was copied larger.
    Copied,
    /// Sent by the node itself through the tunnel: built with the device's reserve.
    Local,
}
const ETH: usize = 14;
const UDP: usize = 8;
const VXLAN: usize = 8;

fn align64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// The allocation that serves a head of `head` bytes (data area and shared info).
fn slab(head: usize) -> usize {
    if head <= SMALL_HEAD {
        SMALL_HEAD
    } else {
        head.next_power_of_two()
    }
}

/// The truesize of a linear head for the IP packet of `ip_len` bytes.
fn linear(ip_len: usize, tunnel: Tunnel) -> usize {
    let reserve = if tunnel == Tunnel::Local {
        VXLAN_LOCAL_RESERVE
    } else {
        LINEAR_RESERVE
    };
    let mut head = slab(align64(ip_len + reserve) + SHINFO);
    if tunnel == Tunnel::Copied {
        head = slab(head - SHINFO + VXLAN_GROW + SHINFO);
    }
    head + SKB_OVERHEAD
}

/// The truesize of the IPv4 packet `ip`. `vtep`: the node's own VXLAN address, which a
/// packet it sent through the tunnel carries as its source.
fn of_ip(ip: &[u8], tunnel: Tunnel, vtep: Option<[u8; 4]>) -> usize {
    let Ok(p) = Ipv4Packet::new_checked(ip) else {
        return linear(ip.len(), tunnel);
    };
    let total = usize::from(p.total_len()).min(ip.len());
    let header = usize::from(p.header_len());
    if p.next_header() == IpProtocol::Tcp {
        if let Ok(t) = TcpPacket::new_checked(p.payload()) {
            let payload = total.saturating_sub(header + usize::from(t.header_len()));
            return SMALL + payload;
        }
    }
    if tunnel == Tunnel::No
        && p.next_header() == IpProtocol::Udp
        && total >= header + UDP + VXLAN + ETH + 20
    {
        let udp = &ip[header..total];
        if u16::from_be_bytes([udp[2], udp[3]]) == VXLAN_PORT {
            let inner = &udp[UDP + VXLAN..];
            let src = [
                inner[ETH + 12],
                inner[ETH + 13],
                inner[ETH + 14],
                inner[ETH + 15],
            ];
            let how = if vtep == Some(src) {
                Tunnel::Local
            } else {
                Tunnel::Copied
            };
            return of_frame(inner, how, None);
        }
    }
    linear(total, tunnel)
}

fn of_frame(frame: &[u8], tunnel: Tunnel, vtep: Option<[u8; 4]>) -> usize {
    match EthernetFrame::new_checked(frame) {
        Ok(f) if f.ethertype() == EthernetProtocol::Ipv4 => of_ip(f.payload(), tunnel, vtep),
        _ => linear(frame.len().saturating_sub(ETH), tunnel),
    }
}

/// The truesize Linux charges for the Ethernet frame `frame` on a node: a VXLAN packet (UDP
/// to the VXLAN port) is sized by the packet it carries, as the node's own when that one's
/// source is `vtep` (the node's VXLAN address). `decapsulated` is set for a packet that came
/// out of the node's VXLAN device, which still has the buffer the tunnel gave it.
pub fn truesize(
    frame: &[u8],
    decapsulated: bool,
    vtep: Option<smoltcp::wire::Ipv4Address>,
) -> usize {
    let tunnel = if decapsulated {
        Tunnel::Copied
    } else {
        Tunnel::No
    };
    of_frame(frame, tunnel, vtep.map(|a| a.octets()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet;
    use alloc::vec::Vec;
    use smoltcp::wire::{EthernetAddress, EthernetRepr, Ipv4Address};

    const A: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
    const B: Ipv4Address = Ipv4Address::new(10, 244, 1, 2);

    fn eth(ip: Vec<u8>) -> Vec<u8> {
        let mut f = alloc::vec![0u8; ETH + ip.len()];
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut f));
        f[ETH..].copy_from_slice(&ip);
        f
    }

    /// A SYN (no payload) or a segment with `payload` bytes.
    fn tcp(payload: usize) -> Vec<u8> {
        let flags = if payload == 0 { "S" } else { "PA" };
        eth(packet::tcp(A, 40000, B, 80, flags, 1, 1, payload))
    }

    /// A UDP datagram with `payload` bytes (the checksum does not matter here).
    fn udp(payload: usize) -> Vec<u8> {
        let mut l4 = Vec::from([0x9c, 0x40, 0, 53]);
        l4.extend_from_slice(&((UDP + payload) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
        l4.resize(UDP + payload, b'x');
        eth(packet::ip(A, B, IpProtocol::Udp, &l4))
    }

    fn vxlan(inner: &[u8]) -> Vec<u8> {
        super::super::vxlan::encap(inner, A, B, 1).into_bytes()
    }

    /// The figures measured with Linux 6.18.44 (module docs).
    #[test]
    fn measured_sizes() {
        assert_eq!(truesize(&tcp(0), false, None), 832);
        for n in [10, 200, 400, 600, 800, 900, 1000, 1448] {
            assert_eq!(truesize(&tcp(n), false, None), 832 + n, "tcp {n}");
        }
        for (n, size) in [
            (0, 832),
            (150, 832),
            (197, 832),
            (198, 1280),
            (600, 1280),
            (645, 1280),
            (646, 2304),
            (1472, 2304),
        ] {
            assert_eq!(truesize(&udp(n), false, None), size, "udp {n}");
        }
        assert_eq!(UNRES / truesize(&tcp(0), false, None), 256);
    }

    const UNRES: usize = super::super::neigh::UNRES_QLEN_BYTES;

    #[test]
    fn measured_vxlan_sizes() {
        assert_eq!(truesize(&vxlan(&tcp(0)), false, None), 832);
        for (n, size) in [
            (100, 1280),
            (197, 1280),
            (198, 2304),
            (645, 2304),
            (646, 4352),
            (1400, 4352),
        ] {
            assert_eq!(truesize(&vxlan(&udp(n)), false, None), size, "udp {n}");
            assert_eq!(truesize(&udp(n), true, None), size, "decapsulated udp {n}");
        }
    }

    /// The node's own packets through its VXLAN device (source: its VXLAN address).
    #[test]
    fn measured_local_vxlan_sizes() {
        for (n, size) in [
            (100, 832),
            (133, 832),
            (134, 1280),
            (400, 1280),
            (581, 1280),
            (582, 2304),
            (1000, 2304),
        ] {
            assert_eq!(truesize(&vxlan(&udp(n)), false, Some(A)), size, "udp {n}");
        }
        // Another node's VXLAN address: forwarded, copied larger.
        assert_eq!(truesize(&vxlan(&udp(100)), false, Some(B)), 1280);
    }

    #[test]
    fn garbage_is_sized_by_length() {
        assert_eq!(truesize(&[], false, None), SMALL);
        assert_eq!(truesize(&[0xff; 3000], false, None), 4096 + SKB_OVERHEAD);
        let mut f = udp(10);
        f[ETH] = 0x4f; // header length beyond the packet
        assert_eq!(truesize(&f, false, None), SMALL);
    }
}
