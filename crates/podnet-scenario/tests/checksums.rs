//! Every frame sent on any wire (by a pod's own stack, or by a node: forwarded and NATed,
//! ICMP errors, resets, VXLAN) carries valid IPv4 and TCP/UDP/ICMP checksums. Nodes rely on
//! it: conntrack does not verify the checksums of a frame that came off a pod's veth (the
//! kernel's `CHECKSUM_PARTIAL`) or off the uplink (a NIC that verified them,
//! `CHECKSUM_UNNECESSARY`) unless a crafted frame has been injected, so if any stack ever sent
//! a bad one, podnet would track a packet that Linux with `nf_conntrack_checksum` finds
//! invalid.

use podnet::trace::{EventKind, TraceConfig};
use podnet::Duration;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

/// Whether an Ethernet frame's IPv4 header and transport checksums (TCP, UDP unless zero,
/// ICMP) are valid; non-IPv4 frames are.
fn checksums_valid(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return true;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return false;
    };
    if !ip.verify_checksum() {
        return false;
    }
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let l4 = ip.payload();
    match ip.next_header() {
        IpProtocol::Tcp => TcpPacket::new_checked(l4).is_ok_and(|t| t.verify_checksum(&src, &dst)),
        IpProtocol::Udp => UdpPacket::new_checked(l4)
            .is_ok_and(|u| u.checksum() == 0 || u.verify_checksum(&src, &dst)),
        IpProtocol::Icmp => {
            smoltcp::wire::Icmpv4Packet::new_checked(l4).is_ok_and(|i| i.verify_checksum())
        }
        _ => true,
    }
}

mod common;

#[test]
fn every_frame_on_every_wire_has_valid_checksums() {
    let (mut checked, mut by_nodes) = (0u64, 0u64);
    for (name, text) in common::examples() {
        let mut sc = podnet_scenario::load_str(&name, &text).unwrap().scenario;
        sc.config.trace = TraceConfig {
            pcap: false,
            ..TraceConfig::full()
        };
        let mut s = podnet_scenario::session::Session::new(sc).unwrap();
        s.run(Duration::from_secs(30)).unwrap();
        let trace = s.cluster.trace();
        for e in trace.events() {
            let EventKind::Sent { iface, frame } = &e.kind else {
                continue;
            };
            checked += 1;
            by_nodes += u64::from(trace.iface_table().node(*iface).is_some());
            assert!(
                checksums_valid(&frame.bytes),
                "{name}: {} sent a frame with a bad checksum at {}: {:02x?}",
                trace.name(*iface),
                e.time,
                frame.bytes
            );
        }
    }
    assert!(checked > 10_000, "only {checked} frames checked");
    assert!(
        by_nodes > 5_000,
        "only {by_nodes} frames sent by nodes checked"
    );
}
