//! Packets a node writes itself in answer to another packet: ICMP errors (RFC 792/1812 rules:
//! never about an ICMP error, a non-first fragment or a broadcast), TCP resets (RFC 793) and
//! echo replies. Each builder returns an Ethernet frame with a blank Ethernet header (filled
//! when the neighbour is known) and an IPv4 packet with every checksum valid.

use alloc::vec;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};

use crate::link::Frame;

/// Ethernet header length; frames built here reserve it.
pub const ETH_HDR: usize = 14;
/// RFC 1812 4.3.2.3: an ICMP error carries as much of the original as fits in 576 bytes.
const ICMP_ERROR_MAX: usize = 576;

/// ICMP types used here.
pub mod icmp_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Whether an ICMP type is an error (never answered with another error).
fn is_icmp_error(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

fn ip_frame(
    src: Ipv4Address,
    dst: Ipv4Address,
    proto: IpProtocol,
    ident: u16,
    payload_len: usize,
) -> Frame {
    let mut frame = vec![0u8; ETH_HDR + 20 + payload_len];
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len,
        hop_limit: 64,
    };
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETH_HDR..]);
    repr.emit(&mut ip, &ChecksumCapabilities::default());
    ip.set_ident(ident);
    ip.set_dont_frag(proto == IpProtocol::Tcp);
    ip.fill_checksum();
    frame.into()
}

fn finish_ip_checksum(frame: &mut [u8]) {
    Ipv4Packet::new_unchecked(&mut frame[ETH_HDR..]).fill_checksum();
}

/// An ICMP error of `icmp_type`/`code` from `src` about the IPv4 packet `orig`, or `None` when
/// the rules forbid answering it.
pub fn icmp_error(
    orig: &[u8],
    icmp_type: u8,
    code: u8,
    src: Ipv4Address,
    ident: u16,
) -> Option<Frame> {
    let ip = Ipv4Packet::new_checked(orig).ok()?;
    let osrc = ip.src_addr();
    if !osrc.x_is_unicast_addr() || ip.frag_offset() != 0 || ip.dst_addr().is_broadcast() {
        return None;
    }
    if ip.next_header() == IpProtocol::Icmp {
        let hl = usize::from(ip.header_len());
        match orig.get(hl) {
            Some(t) if is_icmp_error(*t) => return None,
            None => return None,
            _ => {}
        }
    }
    let total = usize::from(ip.total_len()).min(orig.len());
    let quoted = total.min(ICMP_ERROR_MAX - 20 - 8);
    let mut frame = ip_frame(src, osrc, IpProtocol::Icmp, ident, 8 + quoted);
    let icmp = &mut frame[ETH_HDR + 20..];
    icmp[0] = icmp_type;
    icmp[1] = code;
    icmp[8..].copy_from_slice(&orig[..quoted]);
    smoltcp::wire::Icmpv4Packet::new_unchecked(icmp).fill_checksum();
    // `__icmp_send`: an error carries the original's TOS bits with IP precedence "internetwork
    // control" (`RT_TOS(iph->tos) | IPTOS_PREC_INTERNETCONTROL`).
    set_tos(
        &mut frame,
        (orig[1] & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL,
    );
    Some(frame)
}

/// `IPTOS_TOS_MASK`.
const IPTOS_TOS_MASK: u8 = 0x1e;
/// `IPTOS_PREC_INTERNETCONTROL`.
const IPTOS_PREC_INTERNETCONTROL: u8 = 0xc0;

/// Sets the TOS byte of a frame's IPv4 header and fixes the header checksum.
fn set_tos(frame: &mut [u8], tos: u8) {
    frame[ETH_HDR + 1] = tos;
    finish_ip_checksum(frame);
}

/// The RST that answers a TCP segment sent to a closed port (RFC 793, "Reset Generation").
pub fn tcp_reset(orig: &[u8], ident: u16) -> Option<Frame> {
    let ip = Ipv4Packet::new_checked(orig).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    if tcp.rst() {
        return None;
    }
    let seg_len = tcp.payload().len() + usize::from(tcp.syn()) + usize::from(tcp.fin());
    let (seq, ack) = if tcp.ack() {
        (tcp.ack_number(), None)
    } else {
        (TcpSeqNumber(0), Some(tcp.seq_number() + seg_len))
    };
    let repr = TcpRepr {
        src_port: tcp.dst_port(),
        dst_port: tcp.src_port(),
        control: TcpControl::Rst,
        seq_number: seq,
        ack_number: ack,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let (src, dst) = (ip.dst_addr(), ip.src_addr());
    let mut frame = ip_frame(src, dst, IpProtocol::Tcp, ident, repr.header_len());
    let mut seg = TcpPacket::new_unchecked(&mut frame[ETH_HDR + 20..]);
    repr.emit(
        &mut seg,
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &ChecksumCapabilities::default(),
    );
    finish_ip_checksum(&mut frame);
    Some(frame)
}

/// The echo reply to an ICMP echo request addressed to this node.
pub fn echo_reply(orig: &[u8], ident: u16) -> Option<Frame> {
    let ip = Ipv4Packet::new_checked(orig).ok()?;
    let icmp = ip.payload();
    if icmp.len() < 8 || icmp[0] != icmp_type::ECHO_REQUEST {
        return None;
    }
    let mut frame = ip_frame(
        ip.dst_addr(),
        ip.src_addr(),
        IpProtocol::Icmp,
        ident,
        icmp.len(),
    );
    let out = &mut frame[ETH_HDR + 20..];
    out.copy_from_slice(icmp);
    out[0] = icmp_type::ECHO_REPLY;
    smoltcp::wire::Icmpv4Packet::new_unchecked(out).fill_checksum();
    // `icmp_reply` keeps the request's TOS.
    set_tos(&mut frame, orig[1]);
    Some(frame)
}

trait UnicastAddr {
    fn x_is_unicast_addr(&self) -> bool;
}

impl UnicastAddr for Ipv4Address {
    fn x_is_unicast_addr(&self) -> bool {
        !(self.is_broadcast() || self.is_multicast() || self.is_unspecified())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use smoltcp::wire::{Icmpv4Packet, UdpPacket, UdpRepr};

    fn udp_packet(ttl: u8) -> Vec<u8> {
        let src = Ipv4Address::new(10, 244, 0, 5);
        let dst = Ipv4Address::new(10, 244, 1, 20);
        let udp = UdpRepr {
            src_port: 40000,
            dst_port: 53,
        };
        let payload = [7u8; 16];
        let mut buf = vec![0u8; 20 + 8 + payload.len()];
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: 8 + 16,
            hop_limit: ttl,
        };
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut ip, &ChecksumCapabilities::default());
        udp.emit(
            &mut UdpPacket::new_unchecked(ip.payload_mut()),
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            16,
            |b| b.copy_from_slice(&payload),
            &ChecksumCapabilities::default(),
        );
        ip.fill_checksum();
        buf
    }

    #[test]
    fn errors_have_internetcontrol_precedence_and_the_original_tos_bits() {
        // Regression (kernel replay of examples/no-endpoints.yaml): Linux sends 0xc0.
        let mut orig = udp_packet(5);
        orig[1] = 0x10 | 0x03; // low delay, ECN bits
        Ipv4Packet::new_unchecked(&mut orig[..]).fill_checksum();
        let f = icmp_error(&orig, 3, 3, Ipv4Address::new(10, 244, 0, 1), 1).unwrap();
        let ip = Ipv4Packet::new_checked(&f[ETH_HDR..]).unwrap();
        assert_eq!(f[ETH_HDR + 1], 0xc0 | 0x12, "RT_TOS keeps bits 1-4");
        assert!(ip.verify_checksum());
    }

    #[test]
    fn time_exceeded_quotes_original_and_checksums() {
        let orig = udp_packet(1);
        let f = icmp_error(
            &orig,
            icmp_type::TIME_EXCEEDED,
            0,
            Ipv4Address::new(10, 244, 0, 1),
            9,
        )
        .unwrap();
        let ip = Ipv4Packet::new_checked(&f[ETH_HDR..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), Ipv4Address::new(10, 244, 0, 5));
        assert_eq!(ip.ident(), 9);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(&ip.payload()[8..], &orig[..]);
        assert_eq!(ip.payload()[0], 11);
    }

    #[test]
    fn never_an_error_about_an_error() {
        let orig = udp_packet(1);
        let err = icmp_error(&orig, 3, 3, Ipv4Address::new(10, 244, 0, 1), 1).unwrap();
        assert!(icmp_error(&err[ETH_HDR..], 11, 0, Ipv4Address::new(10, 244, 0, 1), 2).is_none());
        assert!(icmp_error(&[0x45, 0], 11, 0, Ipv4Address::new(10, 244, 0, 1), 2).is_none());
    }

    #[test]
    fn reset_answers_syn_with_ack_of_seq_plus_one() {
        let src = Ipv4Address::new(10, 244, 0, 5);
        let dst = Ipv4Address::new(192, 168, 1, 100);
        let syn = TcpRepr {
            src_port: 40000,
            dst_port: 22,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(1000),
            ack_number: None,
            window_len: 64240,
            window_scale: None,
            max_seg_size: Some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let mut frame = ip_frame(src, dst, IpProtocol::Tcp, 1, syn.header_len());
        syn.emit(
            &mut TcpPacket::new_unchecked(&mut frame[ETH_HDR + 20..]),
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            &ChecksumCapabilities::default(),
        );
        let rst = tcp_reset(&frame[ETH_HDR..], 2).unwrap();
        let ip = Ipv4Packet::new_checked(&rst[ETH_HDR..]).unwrap();
        assert_eq!(ip.dst_addr(), src);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.rst() && tcp.ack());
        assert_eq!(tcp.ack_number(), TcpSeqNumber(1001));
        assert!(tcp.verify_checksum(&IpAddress::Ipv4(dst), &IpAddress::Ipv4(src)));
        assert!(
            tcp_reset(&rst[ETH_HDR..], 3).is_none(),
            "never reset a reset"
        );
    }

    #[test]
    fn echo_reply_swaps_addresses() {
        let src = Ipv4Address::new(10, 244, 0, 5);
        let dst = Ipv4Address::new(10, 244, 0, 1);
        let mut f = ip_frame(src, dst, IpProtocol::Icmp, 1, 16);
        f[ETH_HDR + 20] = 8;
        Icmpv4Packet::new_unchecked(&mut f[ETH_HDR + 20..]).fill_checksum();
        let r = echo_reply(&f[ETH_HDR..], 5).unwrap();
        let ip = Ipv4Packet::new_checked(&r[ETH_HDR..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (dst, src));
        assert!(Icmpv4Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum());
    }
}
