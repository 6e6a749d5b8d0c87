//! The IPv4 identification field of what a pod sends, as Linux writes it.
//!
//! Linux picks a packet's IP ID in `ip_select_ident_segs` (`include/net/ip.h`), and a pod's
//! packets show three kinds (checked against Linux 6.18 in network namespaces):
//!
//! - **A connected socket counts its own**: a TCP connection, or a UDP socket after
//!   `connect()` (glibc's resolver connects its), starts from a random 16-bit value
//!   (`inet_id = get_random_u16()` in `tcp_v4_connect`, `tcp_v4_syn_recv_sock` and
//!   `ip4_datagram_connect`) and adds one per packet, the number of segments for a TCP
//!   super-segment (`inet_id += segs`, so the segments the NIC cuts count on from it).
//! - **Packets with DF from no connected socket carry 0**: a SYN-ACK (`ip_build_and_send_pkt`
//!   for the request socket), and the resets and TIME-WAIT acknowledgements TCP sends from
//!   its per-CPU control socket.
//! - **The rest take a counter per address pair** (`__ip_select_ident`): an unconnected UDP
//!   socket (a server answering with `sendto`) and ICMP, whose sockets let the packet be
//!   fragmented (`ignore_df`). The kernel keeps 2,048 counters, one per hash bucket of
//!   (source, destination, protocol), each starting random; a packet adds one, plus a random
//!   number below the jiffies (4 ms at `HZ=250`) since the bucket was last used
//!   (`ip_idents_reserve`). podnet keeps one per destination and protocol (buckets shared by
//!   two pairs in the kernel are not shared here).
//!
//! smoltcp writes 0 in every packet; the pod rewrites the field on the way out.

use litemap::LiteMap;
use smoltcp::time::Instant;
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};

use crate::link::Frame;
use crate::rng::splitmix;

/// A jiffy at `CONFIG_HZ=250` (Debian's kernels), in milliseconds.
const JIFFY_MS: i64 = 4;

/// How a pod's socket numbers its packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Sender {
    /// Its own counter, from a random start at its first packet (`None` until then).
    Socket(Option<u16>),
    /// The counters per address pair (an unconnected datagram socket).
    Pairs,
    /// No counter: a packet from no socket (smoltcp's answers: a reset, an ICMP error or echo
    /// reply).
    #[default]
    Stack,
}

/// A pod's random source for IP IDs and its counters per address pair.
#[derive(Debug, Default)]
pub(crate) struct IpIds {
    state: u64,
    /// Destination and protocol -> the next ID and the jiffy of the last use.
    pairs: LiteMap<(u32, u8), (u16, i64)>,
}

impl IpIds {
    pub(crate) fn new(seed: u64) -> Self {
        IpIds {
            state: seed,
            pairs: LiteMap::new(),
        }
    }

    fn random(&mut self) -> u64 {
        self.state = splitmix(self.state);
        self.state
    }

    /// The ID for a packet of `segs` segments to `dst` over `proto` from no connected socket,
    /// at `now` (`ip_idents_reserve`).
    fn reserve(&mut self, dst: u32, proto: u8, now: Instant, segs: u16) -> u16 {
        let jiffy = now.total_millis() / JIFFY_MS;
        let fresh = self.random();
        let (next, last) = self
            .pairs
            .get(&(dst, proto))
            .copied()
            .unwrap_or((fresh as u16, i64::MIN));
        let elapsed = jiffy.saturating_sub(last);
        let delta = if last == i64::MIN || elapsed <= 0 {
            0
        } else {
            // `get_random_u32_below(now - old)`: 0 to elapsed - 1.
            ((fresh >> 16) % elapsed as u64) as u16
        };
        let id = next.wrapping_add(delta);
        self.pairs
            .insert((dst, proto), (id.wrapping_add(segs), jiffy));
        id
    }

    /// Writes the IP ID of `frame`, sent by `sender` at `now`, and refreshes the IPv4 header
    /// checksum. Anything but IPv4 is left alone.
    pub(crate) fn stamp(&mut self, frame: &mut Frame, sender: &mut Sender, now: Instant) {
        if frame_type(frame) != Some(0x0800) {
            return;
        }
        let Ok(ip) = Ipv4Packet::new_checked(&frame[14..]) else {
            return;
        };
        let (proto, dst) = (ip.next_header(), ip.dst_addr().to_bits());
        let syn_ack = proto == IpProtocol::Tcp
            && TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.syn() && t.ack());
        let id = match sender {
            Sender::Socket(_) if syn_ack => return,
            Sender::Socket(next) => {
                let id = match *next {
                    Some(id) => id,
                    None => self.random() as u16,
                };
                let segs = crate::gso::wire_shape(frame).segments as u16;
                *next = Some(id.wrapping_add(segs.max(1)));
                id
            }
            Sender::Pairs => self.reserve(dst, proto.into(), now, 1),
            Sender::Stack if proto == IpProtocol::Icmp => self.reserve(dst, proto.into(), now, 1),
            Sender::Stack => return,
        };
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        ip.set_ident(id);
        ip.fill_checksum();
    }
}

fn frame_type(frame: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]))
}

/// `frames` with the IP ID and the IPv4 header checksum zeroed, for tests that compare what
/// a pod sends with what smoltcp alone sends.
#[cfg(test)]
pub(crate) fn without_ip_ids(frames: &[Frame]) -> alloc::vec::Vec<alloc::vec::Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            let mut b = f.to_vec();
            if frame_type(&b) == Some(0x0800) && b.len() >= 34 {
                b[18..20].fill(0);
                b[24..26].fill(0);
            }
            b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet;
    use smoltcp::wire::Ipv4Address;

    const A: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
    const B: Ipv4Address = Ipv4Address::new(10, 244, 1, 2);
    const C: Ipv4Address = Ipv4Address::new(10, 244, 1, 3);

    fn framed(ip: alloc::vec::Vec<u8>) -> Frame {
        let mut f = alloc::vec![0u8; 14];
        f[12] = 0x08;
        f.extend_from_slice(&ip);
        Frame::new(f)
    }

    fn tcp(flags: &str, len: usize) -> Frame {
        framed(packet::tcp(A, 40000, B, 80, flags, 1, 1, len))
    }

    fn id(f: &Frame) -> u16 {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        ip.ident()
    }

    #[test]
    fn a_socket_counts_its_packets_and_the_segments_of_a_super_segment() {
        let mut ids = IpIds::new(1);
        let mut sock = Sender::Socket(None);
        let now = Instant::ZERO;
        let mut syn = tcp("S", 0);
        ids.stamp(&mut syn, &mut sock, now);
        let start = id(&syn);
        let mut big = tcp("A", 3000);
        big.set_gso_size(1000);
        ids.stamp(&mut big, &mut sock, now);
        assert_eq!(id(&big), start.wrapping_add(1));
        // Its three segments take start + 1, + 2, + 3 (`gso::piece`); the next goes on.
        assert_eq!(id(&crate::gso::piece(&big, 2, 3)), start.wrapping_add(3));
        let mut ack = tcp("A", 0);
        ids.stamp(&mut ack, &mut sock, now);
        assert_eq!(id(&ack), start.wrapping_add(4));
        // Another socket starts elsewhere.
        let mut other = Sender::Socket(None);
        let mut syn2 = tcp("S", 0);
        ids.stamp(&mut syn2, &mut other, now);
        assert_ne!(id(&syn2), id(&syn));
    }

    #[test]
    fn a_syn_ack_and_a_reset_from_no_socket_carry_0() {
        let mut ids = IpIds::new(1);
        let mut listener = Sender::Socket(None);
        let mut synack = tcp("SA", 0);
        ids.stamp(&mut synack, &mut listener, Instant::ZERO);
        assert_eq!(id(&synack), 0);
        assert_eq!(
            listener,
            Sender::Socket(None),
            "the counter starts after it"
        );
        let mut rst = tcp("RA", 0);
        ids.stamp(&mut rst, &mut Sender::Stack, Instant::ZERO);
        assert_eq!(id(&rst), 0);
    }

    #[test]
    fn unconnected_packets_count_per_destination_with_jumps_below_the_jiffies_between() {
        let mut ids = IpIds::new(7);
        let udp = |dst| framed(packet::udp(A, 7, dst, 5000));
        let mut send = |dst, ms| {
            let mut f = udp(dst);
            ids.stamp(&mut f, &mut Sender::Pairs, Instant::from_millis(ms));
            id(&f)
        };
        let b0 = send(B, 100);
        let c0 = send(C, 100);
        assert_eq!(send(B, 101), b0.wrapping_add(1), "same jiffy: one more");
        assert_eq!(
            send(C, 102),
            c0.wrapping_add(1),
            "a counter per destination"
        );
        // 40 ms (10 jiffies) later: one more plus 0 to 9.
        let mut last = b0.wrapping_add(1);
        let mut jumps = alloc::vec::Vec::new();
        for k in 1..=20 {
            let next = send(B, 101 + 40 * k);
            let d = next.wrapping_sub(last);
            assert!((1..=10).contains(&d), "{d}");
            jumps.push(d);
            last = next;
        }
        assert!(jumps.iter().any(|&d| d > 1), "{jumps:?}");
        // ICMP from the stack (an echo reply, an error) counts the same way.
        let mut icmp = framed(packet::ip(A, B, IpProtocol::Icmp, &[0u8; 8]));
        ids.stamp(&mut icmp, &mut Sender::Stack, Instant::from_millis(100));
        assert_ne!(id(&icmp), 0);
    }
}
