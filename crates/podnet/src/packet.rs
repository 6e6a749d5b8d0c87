//! Builders of well-formed IPv4 packets (valid checksums), for tests and for anyone writing a
//! [`NetfilterHook`](crate::netfilter::NetfilterHook) who wants packets to feed it.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber, UdpPacket, UdpRepr,
};

/// An IPv4 packet from `src` to `dst` around the L4 bytes `l4` (TTL 64).
pub fn ip(src: Ipv4Address, dst: Ipv4Address, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 20 + l4.len()];
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: l4.len(),
        hop_limit: 64,
    };
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut p, &ChecksumCapabilities::default());
    p.payload_mut().copy_from_slice(l4);
    p.fill_checksum();
    buf
}

/// A TCP segment `src:sport > dst:dport` with `flags` ("S", "SA", "A", "FA", "R", "RA", "PA").
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: Ipv4Address,
    sport: u16,
    dst: Ipv4Address,
    dport: u16,
    flags: &str,
    seq: u32,
    ack: u32,
    len: usize,
) -> Vec<u8> {
    let control = match flags.trim_end_matches('A') {
        "S" => TcpControl::Syn,
        "F" => TcpControl::Fin,
        "R" => TcpControl::Rst,
        "P" => TcpControl::Psh,
        _ => TcpControl::None,
    };
    let payload = vec![0x61u8; len];
    let repr = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: flags.ends_with('A').then_some(TcpSeqNumber(ack as i32)),
        window_len: 64240,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &payload,
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut l4[..]),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &ChecksumCapabilities::default(),
    );
    ip(src, dst, IpProtocol::Tcp, &l4)
}

pub fn udp(src: Ipv4Address, sport: u16, dst: Ipv4Address, dport: u16) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: sport,
        dst_port: dport,
    };
    let mut l4 = vec![0u8; 8 + 4];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut l4[..]),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        4,
        |b| b.copy_from_slice(b"ping"),
        &ChecksumCapabilities::default(),
    );
    ip(src, dst, IpProtocol::Udp, &l4)
}
