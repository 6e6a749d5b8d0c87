//! flannel's VXLAN backend on a node: the `flannel.1` device.
//!
//! What flannel sets up (its `vxlan` backend) and what is modelled:
//! - `flannel.1`: VNI 1, UDP port 8472 (flannel's default; the IANA port is 4789), address the
//!   network address of the node's pod CIDR (`10.244.N.0/32`), no learning;
//! - for every other node M: `10.244.M.0/24 via 10.244.M.0 dev flannel.1 onlink`, a static
//!   (permanent) ARP entry `10.244.M.0 -> M's flannel.1 MAC` and an FDB entry
//!   `M's flannel.1 MAC -> M's node IP`.
//!
//! A frame sent out of `flannel.1` is encapsulated as Linux's `vxlan_xmit_one` does it with
//! flannel's settings: outer IPv4 from the node IP to the FDB's node IP, TTL 64, DF clear
//! (the device's `df` setting is unset, so `iptunnel_xmit` sends DF=0), TOS 0 but the inner
//! ECN bits, IP ID from the node's counter; UDP from a source port derived from a symmetric
//! hash of the inner flow into the ephemeral range 32768..=60999 (`udp_flow_src_port` with no
//! port range configured) to 8472 with a UDP checksum (`udpcsum` is the default of a VXLAN
//! device over IPv4, and flannel keeps it); VXLAN flags 0x08
//! (VNI valid) and VNI 1; then the inner frame (flannel.1 MAC -> remote flannel.1 MAC). The
//! outer packet is then sent like any locally generated packet (OUTPUT, POSTROUTING, `eth0`
//! ARP), as `udp_tunnel_xmit_skb` -> `ip_local_out` does, so conntrack and kube-proxy's
//! rules see it too.
//!
//! Simplified: the hash is a deterministic FNV-1a over the sorted inner 5-tuple rather than the
//! kernel's seeded `jhash` (the port differs from a real host's, its properties do not); the
//! IP ID comes from one per-node counter rather than `ip_select_ident`'s per-destination ones;
//! the receive side checks the VXLAN flags, the VNI and the inner destination MAC, and checks a
//! non-zero UDP checksum, but does no GRO, and the decapsulated frame is not re-checked against
//! the FDB (flannel disables learning).

use alloc::vec::Vec;

use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet, UdpPacket,
};

use super::reply::ETH_HDR;
use super::{Node, Output};
use crate::link::Frame;
use crate::route::{Dev, Route, RouteTableFull};
use crate::trace::Trace;

/// flannel's VXLAN UDP port.
pub const VXLAN_PORT: u16 = 8472;
/// flannel's VNI.
pub const VNI: u32 = 1;
/// Bytes VXLAN adds in front of the inner frame: outer IPv4 (20), UDP (8), VXLAN (8), and the
/// inner Ethernet header (14).
pub const OVERHEAD: usize = 50;
/// The pod (and `flannel.1`) IP MTU: the underlay's 1500 less [`OVERHEAD`].
pub const POD_MTU: usize = 1500 - OVERHEAD;
/// VXLAN header length.
pub const VXLAN_HDR: usize = 8;
/// The VXLAN "I" flag: the VNI is valid.
pub const FLAG_VNI: u8 = 0x08;
const IP_HDR: usize = 20;
const UDP_HDR: usize = 8;
const TTL: u8 = 64;
/// Linux's default `ip_local_port_range`.
const SPORT_MIN: u32 = 32768;
const SPORT_MAX: u32 = 60999;

/// The UDP source port Linux would pick for an inner IPv4 packet (`ip`, from its header on):
/// a symmetric hash of the flow (addresses and, for TCP and UDP, ports) scaled into
/// 32768..=60999 (`reciprocal_scale(hash, max - min + 1) + min`).
pub fn source_port(ip: &[u8]) -> u16 {
    let mut key = Vec::with_capacity(13);
    if let Ok(p) = Ipv4Packet::new_checked(ip) {
        let (mut a, mut b) = (p.src_addr().octets(), p.dst_addr().octets());
        let l4 = p.payload();
        let (mut pa, mut pb) = match p.next_header() {
            IpProtocol::Tcp | IpProtocol::Udp if l4.len() >= 4 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            ),
            _ => (0, 0),
        };
        // `__flow_hash_consistentify`: both directions of a flow hash alike.
        if (b, pb) < (a, pa) {
            core::mem::swap(&mut a, &mut b);
            core::mem::swap(&mut pa, &mut pb);
        }
        key.extend_from_slice(&a);
        key.extend_from_slice(&b);
        key.extend_from_slice(&pa.to_be_bytes());
        key.extend_from_slice(&pb.to_be_bytes());
        key.push(u8::from(p.next_header()));
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in key {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let span = u64::from(SPORT_MAX - SPORT_MIN + 1);
    ((u64::from(h) * span) >> 32) as u16 + SPORT_MIN as u16
}

/// Wraps an inner Ethernet frame: returns the outer frame (Ethernet header left for the
/// neighbour layer to fill), IPv4 `src -> dst`, UDP to [`VXLAN_PORT`], VXLAN with [`VNI`].
pub fn encap(inner: &[u8], src: Ipv4Address, dst: Ipv4Address, ident: u16) -> Frame {
    let inner_ip = inner.get(ETH_HDR..).unwrap_or(&[]);
    let sport = source_port(inner_ip);
    let ecn = Ipv4Packet::new_checked(inner_ip)
        .map(|p| p.ecn())
        .unwrap_or(0);
    let udp_len = UDP_HDR + VXLAN_HDR + inner.len();
    let mut f = alloc::vec![0u8; ETH_HDR + IP_HDR + udp_len];
    EthernetFrame::new_unchecked(&mut f[..]).set_ethertype(smoltcp::wire::EthernetProtocol::Ipv4);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_HDR..]);
        ip.set_version(4);
        ip.set_header_len(IP_HDR as u8);
        ip.set_dscp(0);
        ip.set_ecn(ecn);
        ip.set_total_len((IP_HDR + udp_len) as u16);
        ip.set_ident(ident);
        ip.clear_flags();
        ip.set_frag_offset(0);
        ip.set_hop_limit(TTL);
        ip.set_next_header(IpProtocol::Udp);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
    }
    let udp = &mut f[ETH_HDR + IP_HDR..];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let vx = &mut udp[UDP_HDR..];
    vx[0] = FLAG_VNI;
    vx[4..7].copy_from_slice(&VNI.to_be_bytes()[1..]);
    vx[VXLAN_HDR..].copy_from_slice(inner);
    // A real UDP checksum: over IPv4 a VXLAN device sends one unless it was created with
    // `noudpcsum` (`VXLAN_F_UDP_ZERO_CSUM_TX`), and flannel does not ask for that.
    UdpPacket::new_unchecked(&mut f[ETH_HDR + IP_HDR..]).fill_checksum(&src.into(), &dst.into());
    f.into()
}

impl Node {
    /// Whether the node has a `flannel.1` device.
    pub fn has_vxlan(&self) -> bool {
        self.fdb.is_some()
    }

    /// `flannel.1`'s forwarding database: remote VTEP MAC -> remote node IP.
    pub fn fdb(&self) -> impl Iterator<Item = (EthernetAddress, Ipv4Address)> + '_ {
        self.fdb
            .iter()
            .flat_map(|m| m.iter().map(|(k, v)| (*k, *v)))
    }

    /// What flannel installs for another node: the onlink route to its pod CIDR via its VTEP
    /// address, the permanent ARP entry for that address and the FDB entry for its MAC. No
    /// effect on a node without a VXLAN device.
    pub fn add_vxlan_peer(
        &mut self,
        pod_cidr: Ipv4Cidr,
        vtep_mac: EthernetAddress,
        node_ip: Ipv4Address,
    ) -> Result<(), RouteTableFull> {
        if self.fdb.is_none() {
            return Ok(());
        }
        let vtep = pod_cidr.network().address();
        self.routes.add(Route {
            dst: pod_cidr.network(),
            via: Some(vtep),
            dev: Dev::Flannel,
            src: None,
        })?;
        let _ = self.neigh.learn(Dev::Flannel, vtep, vtep_mac);
        if let Some(fdb) = self.fdb.as_mut() {
            fdb.insert(vtep_mac, node_ip);
        }
        Ok(())
    }

    /// An address of this node (its `flannel.1` address included).
    pub(super) fn is_local(&self, ip: Ipv4Address) -> bool {
        self.addrs.is_local(ip) || (self.fdb.is_some() && ip == self.addrs.vtep())
    }

    /// Whether the IPv4 packet `ip` is UDP to the VXLAN port of a node with a VXLAN device.
    pub(super) fn is_vxlan(&self, ip: &[u8]) -> bool {
        if self.fdb.is_none() {
            return false;
        }
        let Ok(p) = Ipv4Packet::new_checked(ip) else {
            return false;
        };
        p.next_header() == IpProtocol::Udp
            && UdpPacket::new_checked(p.payload()).is_ok_and(|u| u.dst_port() == VXLAN_PORT)
    }

    /// A frame leaves through `flannel.1`: encapsulated and sent as a local UDP packet.
    pub(super) fn vxlan_xmit(
        &mut self,
        now: Instant,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        trace.sent(now, self.iface(Dev::Flannel), &frame);
        let dst = EthernetFrame::new_unchecked(&frame[..]).dst_addr();
        let remote = self.fdb.as_ref().and_then(|f| f.get(&dst).copied());
        let Some(remote) = remote else {
            return self.drop_frame(now, Dev::Flannel, "vxlan: no FDB entry", &frame, trace);
        };
        let ident = self.next_ident();
        let mut outer = encap(&frame, self.addrs.eth0.address(), remote, ident);
        // A GSO packet stays one through the tunnel (`SKB_GSO_UDP_TUNNEL`), cut into
        // segments of the inner TCP's size where it leaves on the wire.
        outer.set_gso_size(frame.gso_size());
        self.local_out(now, outer, out, trace);
    }

    /// A UDP packet to the VXLAN port reached the node (after INPUT): decapsulated, the inner
    /// frame arrives on `flannel.1`.
    pub(super) fn vxlan_rx(
        &mut self,
        now: Instant,
        frame: &Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let ip = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            return self.drop_frame(now, Dev::Eth0, "vxlan: bad UDP header", frame, trace);
        };
        if udp.checksum() != 0 && !udp.verify_checksum(&src.into(), &dst.into()) {
            return self.drop_frame(now, Dev::Eth0, "vxlan: bad UDP checksum", frame, trace);
        }
        let v = udp.payload();
        if v.len() < VXLAN_HDR + ETH_HDR {
            return self.drop_frame(now, Dev::Eth0, "vxlan: runt packet", frame, trace);
        }
        if v[0] & FLAG_VNI == 0 {
            return self.drop_frame(now, Dev::Eth0, "vxlan: VNI flag clear", frame, trace);
        }
        let vni = u32::from_be_bytes([0, v[4], v[5], v[6]]);
        if vni != VNI {
            return self.drop_frame(now, Dev::Eth0, "vxlan: unknown VNI", frame, trace);
        }
        let mut inner = Frame::new(v[VXLAN_HDR..].to_vec());
        inner.set_gso_size(frame.gso_size());
        let to = EthernetFrame::new_unchecked(&inner[..]).dst_addr();
        trace.received(now, self.iface(Dev::Flannel), &inner);
        if to != self.addrs.flannel_mac && !to.is_broadcast() {
            return self.drop_frame(now, Dev::Flannel, "frame for another host", &inner, trace);
        }
        self.host_input(now, Dev::Flannel, inner, out, trace);
    }
}
