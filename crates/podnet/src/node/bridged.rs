//! The bridge path of a node: frames from `cni0` ports, bridged IPv4 through the hooks as
//! `br_netfilter` shows it, and the bridged DNAT back behind `cni0`.

use alloc::string::{String, ToString};

use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol, Ipv4Address, Ipv4Packet};

use super::neigh::{BridgedDnat, Pending};
use super::reply::ETH_HDR;
use super::{Egress, Node, Output};
use crate::bridge::{BridgePort, Forward};
use crate::link::Frame;
use crate::netfilter::Hook;
use crate::route::{Dev, Route};
use crate::trace::Trace;

impl Node {
    /// A frame a pod's own stack sent arrived from its veth on `cni0` port `port`: as
    /// [`Node::bridge_input`], but conntrack trusts its checksums (the kernel's
    /// `CHECKSUM_PARTIAL`: a veth hands the pod's packet on without a checksum computed, and
    /// `nf_ip_checksum` verifies none). The pod's stack fills every checksum in, so verifying
    /// would only find them valid.
    pub fn pod_input(
        &mut self,
        now: Instant,
        port: u32,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        self.csum_partial = true;
        self.bridge_input(now, port, frame, out, trace);
        self.csum_partial = false;
    }

    /// A frame arrived from the veth on `cni0` port `port`.
    pub fn bridge_input(
        &mut self,
        now: Instant,
        port: u32,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let Ok(eth) = EthernetFrame::new_checked(&frame[..]) else {
            let iface = self
                .port_ifaces
                .get(&port)
                .copied()
                .unwrap_or(self.ifaces.cni0);
            self.stats.dropped += 1;
            trace.dropped(now, iface, "runt frame", &frame);
            return;
        };
        let (src, dst) = (eth.src_addr(), eth.dst_addr());
        let ipv4 = eth.ethertype() == EthernetProtocol::Ipv4 && !self.hooks.is_empty();
        if ipv4 && self.cpus.count > 1 {
            let cpu = self.sender_cpu();
            self.steer(now, cpu);
        }
        let fwd = self.bridge.forward(now, BridgePort::Port(port), src, dst);
        match fwd {
            Forward::One(BridgePort::Port(to)) if ipv4 => {
                self.bridged_ipv4(now, port, to, frame, out, trace)
            }
            Forward::One(BridgePort::Local) if ipv4 && self.br_netfilter => {
                self.br_nf_to_host(now, port, frame, out, trace)
            }
            fwd => self.bridge_deliver(now, fwd, frame, out, trace),
        }
    }

    /// Checks and trims an IPv4 frame from a bridge port (`br_validate_ipv4`).
    fn br_validate_ipv4(&mut self, now: Instant, frame: &mut Frame, trace: &mut Trace) -> bool {
        let total = match Ipv4Packet::new_checked(&frame[ETH_HDR..]) {
            Ok(ip) if ip.version() == 4 && ip.verify_checksum() => usize::from(ip.total_len()),
            _ => {
                self.drop_frame(now, Dev::Cni0, "bad IPv4 header", frame, trace);
                return false;
            }
        };
        frame.truncate(ETH_HDR + total);
        true
    }

    /// An IPv4 frame from a pod to `cni0`'s own MAC (to its gateway: a Service, another node, the
    /// node itself). `br_netfilter` runs PREROUTING at the bridge, before the frame reaches the
    /// host (`br_nf_pre_routing`), so `tcpdump -i cni0` sees it after DNAT. If DNAT sent it to
    /// an address routed out of `cni0` again, it never reaches the host: it stays bridged
    /// ([`Node::bridged_dnat`]). Otherwise the host stack takes it (PREROUTING is not run a
    /// second time: `ip_sabotage_in`).
    fn br_nf_to_host(
        &mut self,
        now: Instant,
        port: u32,
        mut frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        if !self.br_validate_ipv4(now, &mut frame, trace) {
            return;
        }
        let dst = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr();
        let cni0 = Some(Dev::Cni0);
        if !self.run_hooks(now, Hook::Prerouting, cni0, None, &mut frame, out, trace) {
            return;
        }
        if self.br_nf_dnat_bridged(now, port, dst, &mut frame, out, trace) {
            return;
        }
        trace.received(now, self.ifaces.cni0, &frame);
        self.ip_rcv_finish(now, Dev::Cni0, frame, out, trace);
    }

    /// What `br_nf_pre_routing_finish` does once PREROUTING changed the destination of a frame
    /// that entered the bridge on `port` (it was `orig_dst`): when the new destination is routed
    /// out of `cni0` itself (and is not the node's), the frame stays bridged and this returns
    /// true. Otherwise its destination MAC becomes `cni0`'s, so that the host routes it.
    fn br_nf_dnat_bridged(
        &mut self,
        now: Instant,
        port: u32,
        orig_dst: Ipv4Address,
        frame: &mut Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) -> bool {
        let dst = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr();
        if dst == orig_dst {
            return false;
        }
        match self.routes.lookup(dst).copied() {
            Some(route) if self.br_netfilter && route.dev == Dev::Cni0 && !self.is_local(dst) => {
                let frame = core::mem::take(frame);
                self.bridged_dnat(now, port, route, frame, out, trace);
                true
            }
            _ => {
                EthernetFrame::new_unchecked(&mut frame[..]).set_dst_addr(self.addrs.cni0_mac);
                false
            }
        }
    }

    /// The bridged DNAT (`bridged_dnat` in `br_nf_pre_routing_finish`): the packet is not
    /// routed (no TTL decrement, no `IpForwDatagrams`, never INPUT). Its new destination's MAC
    /// comes from `cni0`'s neighbour layer (`br_nf_pre_routing_finish_bridge`): Linux copies it
    /// from the cached header only for a `NUD_CONNECTED` entry with one; otherwise, which is
    /// the case for a pod the node learned from the pod's own ARP request (STALE, then DELAY)
    /// or resolved only now, it goes through `neigh->output` (an ARP request first when
    /// unresolved), which transmits it on `cni0` with `cni0`'s source MAC, and `br_dev_xmit`
    /// hands it back to the bridge with its own source MAC restored
    /// ([`Node::bridged_dnat_xmit`]). This simulator's neighbour table keeps no NUD states,
    /// so it always takes that second way (what Linux does during the first seconds).
    fn bridged_dnat(
        &mut self,
        now: Instant,
        port: u32,
        route: Route,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let src = EthernetFrame::new_unchecked(&frame[..]).src_addr();
        let dst = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr();
        let next_hop = route.next_hop(dst);
        let mut pending = Pending {
            frame,
            bridged: Some(BridgedDnat { port, src }),
            before_hooks: None,
            decapsulated: false,
        };
        if self.neigh.lookup(route.dev, next_hop).is_none() {
            // It waits for ARP. Linux keeps its conntrack entry on the packet and runs FORWARD
            // and POSTROUTING once it is resolved; the modules here follow one packet at a
            // time, so they run now and the packet waits translated.
            let before = pending.frame.clone();
            let note = alloc::format!(
                "br_netfilter: bridged DNAT: {next_hop} not resolved on cni0 yet, waits for ARP (FORWARD and POSTROUTING run now, Linux runs them once resolved)"
            );
            let cni0 = Some(Dev::Cni0);
            let mut note = Some(note);
            for hook in [Hook::Forward, Hook::Postrouting] {
                let n = note.take();
                if !self.run_hooks_noted(
                    now,
                    hook,
                    cni0,
                    cni0,
                    true,
                    n,
                    &mut pending.frame,
                    out,
                    trace,
                ) {
                    return;
                }
            }
            pending.before_hooks = Some(before);
        }
        self.neigh_output(now, route.dev, next_hop, pending, out, trace);
    }

    /// `neigh->output` of a bridged DNAT frame: it leaves `cni0` (as `tcpdump -i cni0` shows:
    /// `cni0`'s source MAC, the neighbour's destination MAC, DNATed but not yet through FORWARD
    /// and POSTROUTING), `br_dev_xmit` sees `bridged_dnat`, puts the original source MAC back
    /// and the bridge forwards it from its ingress port (`br_handle_frame_finish`): out of the
    /// destination's port after FORWARD and POSTROUTING, where MASQUERADE picks `cni0`'s
    /// address. When that is the ingress port, only hairpin mode lets it out (`should_deliver`).
    pub(super) fn bridged_dnat_xmit(
        &mut self,
        now: Instant,
        mac: EthernetAddress,
        b: BridgedDnat,
        p: Pending,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let (mut frame, before_hooks) = (p.frame, p.before_hooks);
        let hooked = before_hooks.is_some();
        let mut shown = before_hooks.unwrap_or_else(|| frame.clone());
        let mut eth = EthernetFrame::new_unchecked(&mut shown[..]);
        eth.set_src_addr(self.addrs.cni0_mac);
        eth.set_dst_addr(mac);
        eth.set_ethertype(EthernetProtocol::Ipv4);
        trace.sent(now, self.ifaces.cni0, &shown);
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_src_addr(b.src);
        eth.set_dst_addr(mac);
        let veth = |n: &Self, port: u32| {
            n.port_ifaces
                .get(&port)
                .map(|i| trace.name(*i).to_string())
                .unwrap_or_else(|| alloc::format!("port {port}"))
        };
        match self
            .bridge
            .forward(now, BridgePort::Port(b.port), b.src, mac)
        {
            Forward::One(BridgePort::Port(to)) => {
                let how = if to == b.port { " (hairpin mode)" } else { "" };
                let m = mac.0;
                let note = alloc::format!(
                    "br_netfilter: bridged DNAT: dst MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} from cni0's neighbour table, source MAC and TTL kept; back out of {}{how}",
                    m[0], m[1], m[2], m[3], m[4], m[5],
                    veth(self, to)
                );
                if hooked {
                    out.push((Egress::Port(to), frame));
                } else {
                    self.br_forward_ipv4(now, to, Some(note), frame, out, trace);
                }
            }
            Forward::Filtered => {
                let iface = self
                    .port_ifaces
                    .get(&b.port)
                    .copied()
                    .unwrap_or(self.ifaces.cni0);
                let reason = alloc::format!(
                    "bridged DNAT back to the port it came in on, {}, which is not in hairpin mode",
                    veth(self, b.port)
                );
                self.stats.dropped += 1;
                trace.dropped(now, iface, reason, &frame);
            }
            Forward::Flood(ports) => {
                for p in ports {
                    if let BridgePort::Port(to) = p {
                        if hooked {
                            out.push((Egress::Port(to), frame.clone()));
                        } else {
                            self.br_forward_ipv4(now, to, None, frame.clone(), out, trace);
                        }
                    }
                }
            }
            Forward::One(BridgePort::Local) => {
                trace.received(now, self.ifaces.cni0, &frame);
                self.ip_rcv_finish(now, Dev::Cni0, frame, out, trace);
            }
        }
    }

    /// An IPv4 frame bridged from one pod to another crosses PREROUTING, FORWARD and
    /// POSTROUTING like a routed one (`br_netfilter` with `bridge-nf-call-iptables = 1`, which
    /// kube-proxy requires), with `cni0` as both devices. If PREROUTING changed its destination
    /// address (DNAT), `br_nf_pre_routing_finish` decides again (bridged or routed).
    fn bridged_ipv4(
        &mut self,
        now: Instant,
        port: u32,
        to: u32,
        mut frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        if !self.br_validate_ipv4(now, &mut frame, trace) {
            return;
        }
        let dst = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr();
        let cni0 = Some(Dev::Cni0);
        if !self.run_hooks_on(
            now,
            Hook::Prerouting,
            cni0,
            None,
            true,
            &mut frame,
            out,
            trace,
        ) {
            return;
        }
        if Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr() != dst {
            if self.br_nf_dnat_bridged(now, port, dst, &mut frame, out, trace) {
                return;
            }
            if self.br_netfilter {
                trace.received(now, self.ifaces.cni0, &frame);
            }
            return self.forward(now, Dev::Cni0, frame, out, trace);
        }
        self.br_forward_ipv4(now, to, None, frame, out, trace);
    }

    /// FORWARD and POSTROUTING of a bridged IPv4 frame (`br_nf_forward_ip`,
    /// `br_nf_post_routing`: `cni0` as in and out device), then out of port `to`. `note` is
    /// shown with the FORWARD hook in the trace.
    fn br_forward_ipv4(
        &mut self,
        now: Instant,
        to: u32,
        note: Option<String>,
        mut frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let cni0 = Some(Dev::Cni0);
        let mut note = note;
        for hook in [Hook::Forward, Hook::Postrouting] {
            let first = note.take();
            if !self.run_hooks_noted(now, hook, cni0, cni0, true, first, &mut frame, out, trace) {
                return;
            }
        }
        out.push((Egress::Port(to), frame));
    }

    pub(super) fn bridge_deliver(
        &mut self,
        now: Instant,
        fwd: Forward,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let local = match fwd {
            Forward::Filtered => false,
            Forward::One(BridgePort::Port(n)) => {
                out.push((Egress::Port(n), frame));
                return;
            }
            Forward::One(BridgePort::Local) => true,
            Forward::Flood(ports) => {
                for p in &ports {
                    if let BridgePort::Port(n) = p {
                        out.push((Egress::Port(*n), frame.clone()));
                    }
                }
                ports.contains(&BridgePort::Local)
            }
        };
        if local {
            trace.received(now, self.ifaces.cni0, &frame);
            self.host_input(now, Dev::Cni0, frame, out, trace);
        }
    }
}
