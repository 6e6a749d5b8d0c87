//! ARP on a node's devices (requests answered, replies learned) and the neighbour output path:
//! a packet sent once its next hop resolves, or queued behind an ARP request.

use alloc::vec::Vec;

use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Ipv4Address,
};

use super::neigh::{Pending, Resolution};
use super::reply::ETH_HDR;
use super::{Node, Output};
use crate::route::Dev;
use crate::trace::Trace;

impl Node {
    /// Resolves `next_hop` on `dev` and sends the packet, or queues it behind an ARP request.
    pub(super) fn neigh_output(
        &mut self,
        now: Instant,
        dev: Dev,
        next_hop: Ipv4Address,
        pending: Pending,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let mut evicted = Vec::new();
        let vtep = self.fdb.is_some().then(|| self.addrs.vtep());
        match self
            .neigh
            .resolve(now, dev, next_hop, pending, vtep, &mut evicted)
        {
            Resolution::Known(mac, p) => self.neigh_xmit(now, dev, mac, p, out, trace),
            Resolution::Probe => self.send_arp_request(now, dev, next_hop, out, trace),
            Resolution::Queued => {}
        }
        for p in evicted {
            self.drop_frame(now, dev, "neighbour queue full", &p.frame, trace);
        }
    }

    /// Sends a resolved packet: out of `dev`, or back into the bridge for a bridged DNAT.
    fn neigh_xmit(
        &mut self,
        now: Instant,
        dev: Dev,
        mac: EthernetAddress,
        p: Pending,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        match p.bridged {
            Some(b) => self.bridged_dnat_xmit(now, mac, b, p, out, trace),
            None => self.xmit_to(now, dev, mac, p.frame, out, trace),
        }
    }

    pub(super) fn arp_input(
        &mut self,
        now: Instant,
        dev: Dev,
        frame: &[u8],
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let repr = ArpPacket::new_checked(&frame[ETH_HDR..]).and_then(|p| ArpRepr::parse(&p));
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = repr
        else {
            self.drop_frame(now, dev, "malformed ARP", frame, trace);
            return;
        };
        let ours = self.addrs.addr(dev);
        let waiting = if target_protocol_addr == ours {
            self.neigh
                .learn(dev, source_protocol_addr, source_hardware_addr)
        } else {
            self.neigh
                .refresh(dev, source_protocol_addr, source_hardware_addr)
        };
        for p in waiting {
            self.neigh_xmit(now, dev, source_hardware_addr, p, out, trace);
        }
        if target_protocol_addr == ours && operation == ArpOperation::Request {
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: self.addrs.mac(dev),
                source_protocol_addr: ours,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            self.send_arp(now, dev, source_hardware_addr, reply, out, trace);
        }
    }

    pub(super) fn send_arp_request(
        &mut self,
        now: Instant,
        dev: Dev,
        ip: Ipv4Address,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: self.addrs.mac(dev),
            source_protocol_addr: self.addrs.addr(dev),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        };
        self.send_arp(now, dev, EthernetAddress::BROADCAST, req, out, trace);
    }

    fn send_arp(
        &mut self,
        now: Instant,
        dev: Dev,
        dst: EthernetAddress,
        arp: ArpRepr,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let mut frame = alloc::vec![0u8; ETH_HDR + arp.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        EthernetRepr {
            src_addr: self.addrs.mac(dev),
            dst_addr: dst,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut eth);
        arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        self.dev_xmit(now, dev, frame.into(), out, trace);
    }
}
