//! Super-segments in the replay: podnet's pods send TCP with segmentation offload (see
//! `podnet::gso`), so a node receives and sends super-segments. The replay hands the kernel
//! such a frame whole, as a GSO packet (a `virtio_net_hdr` before it, `PACKET_VNET_HDR`), the
//! way a pod's own TCP hands one to its veth: `CHECKSUM_PARTIAL`, the TCP checksum field
//! holding the pseudo-header sum. The node namespace's wire interfaces have transmit
//! checksumming off (so that every checksum the kernel leaves is finished), which takes TSO
//! with it: the kernel cuts a GSO packet into segments where it leaves the node. podnet's
//! node sends the super-segment whole, as a TSO NIC gets it; the replay compares it as its
//! segments (`podnet::gso::piece`, which the kernel's own segmentation thus checks too).
//!
//! Only plain IPv4 TCP super-segments go whole: a packet socket's `virtio_net_hdr` cannot
//! say "VXLAN" (`SKB_GSO_UDP_TUNNEL`), so the replay runs VXLAN clusters with TSO off.

use podnet::link::Frame;

/// The segment size of a super-segment from podnet's pods in the clusters the replay runs
/// with TSO: a 1500-byte pod MTU less the IP and TCP headers, the TCP header with the
/// options every segment of its connection carries (12 bytes of timestamp, or none).
fn gso_size(tcp_header: usize) -> u16 {
    (podnet::pod::POD_MTU - 20 - tcp_header) as u16
}

const ETH: usize = 14;

/// Where a plain (not VXLAN) IPv4 TCP frame's TCP header and payload start, and where it
/// ends.
fn tcp_layout(frame: &[u8]) -> Option<(usize, usize, usize)> {
    let l = podnet::gso::layout(frame).filter(|l| l.outer.is_none())?;
    Some((l.tcp, l.payload, frame.len()))
}

/// The segment size of `frame` when it is a super-segment: IPv4 TCP with more payload than
/// one segment.
pub fn super_gso(frame: &[u8]) -> Option<u16> {
    let (tcp, payload, end) = tcp_layout(frame)?;
    let gso = gso_size(payload - tcp);
    (end - payload > usize::from(gso)).then_some(gso)
}

/// The `virtio_net_hdr` and the frame to hand the kernel for super-segment `frame`: GSO
/// TCPv4 of its segment size, checksum to be finished from the TCP header on, whose checksum
/// field holds the pseudo-header sum as Linux's TCP leaves it (`tcp_v4_send_check`).
pub fn vnet_packet(frame: &[u8]) -> Option<([u8; 10], Vec<u8>)> {
    let gso = super_gso(frame)?;
    let (tcp, payload, end) = tcp_layout(frame)?;
    let mut f = frame.to_vec();
    let len = (end - tcp) as u32;
    let mut sum: u32 = 6 + len;
    for w in f[ETH + 12..ETH + 20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[tcp + 16..tcp + 18].copy_from_slice(&(sum as u16).to_be_bytes());
    let mut h = [0u8; 10];
    h[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    h[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
    h[2..4].copy_from_slice(&(payload as u16).to_le_bytes());
    h[4..6].copy_from_slice(&gso.to_le_bytes());
    h[6..8].copy_from_slice(&(tcp as u16).to_le_bytes());
    h[8..10].copy_from_slice(&16u16.to_le_bytes());
    Some((h, f))
}

/// `frame` as the segments the kernel cuts it into where it leaves (itself when it is not a
/// super-segment).
pub fn segments(frame: &[u8]) -> Vec<Vec<u8>> {
    let Some(gso) = super_gso(frame) else {
        return vec![frame.to_vec()];
    };
    let mut f = Frame::new(frame.to_vec());
    f.set_gso_size(gso);
    let n = podnet::gso::wire_shape(&f).segments;
    (0..n)
        .map(|k| podnet::gso::piece(&f, k, k + 1).into_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    fn frame(len: usize) -> Vec<u8> {
        let a = Ipv4Address::new(10, 244, 0, 2);
        let b = Ipv4Address::new(10, 244, 1, 2);
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        f.extend(podnet::packet::tcp(a, 1000, b, 80, "PA", 1, 1, len));
        f
    }

    #[test]
    fn a_super_segment_goes_whole_with_its_header() {
        let f = frame(3000);
        assert_eq!(super_gso(&f), Some(1460));
        let (h, g) = vnet_packet(&f).unwrap();
        assert_eq!(h, [1, 1, 54, 0, 0xb4, 0x05, 34, 0, 16, 0]);
        // Only the checksum field changed: the pseudo-header sum of 10.244.0.2 > 10.244.1.2,
        // TCP, 3020 bytes.
        assert_eq!(g[..50], f[..50]);
        assert_eq!(g[52..], f[52..]);
        let want: u32 = 0x0af4 + 0x0002 + 0x0af4 + 0x0102 + 6 + 3020;
        let want = (want & 0xffff) + (want >> 16);
        assert_eq!(u16::from_be_bytes([g[50], g[51]]), want as u16);
        assert_eq!(segments(&f).len(), 3);
        assert_eq!(super_gso(&frame(1460)), None);
        assert_eq!(segments(&frame(1460)), vec![frame(1460)]);
    }
}
