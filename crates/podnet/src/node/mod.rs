//! A Kubernetes node: the `cni0` bridge holding its pods' veth host ends, the uplink `eth0`,
//! and the host IP stack between them (ARP, routing, forwarding, the netfilter hooks).
//!
//! The node is sans-IO: frames come in through [`Node::bridge_input`] (from a veth) and
//! [`Node::uplink_input`] (from the underlay), timers run in [`Node::poll`], and every frame the
//! node sends is pushed to an output list as an [`Egress`] for the cluster to put on a link.

mod cpus;
mod hooks;
mod neigh;
pub mod reply;
pub mod vxlan;

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet,
};

use crate::bridge::{Bridge, BridgePort, Forward};
use crate::link::Frame;
use crate::netfilter::{Hook, NetfilterHook};
use crate::route::{Dev, Route, RouteTable, RouteTableFull};
use crate::trace::{IfaceId, Trace};
use neigh::{BridgedDnat, Pending, Resolution};
pub use neigh::{Neighbours, MAX_PROBES, RETRANS_TIME};
use reply::{icmp_type, ETH_HDR};

/// Where a node sends a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// Out of a `cni0` port (a veth host end), by port number.
    Port(u32),
    /// Out of the uplink `eth0`.
    Uplink,
}

/// Counters of a node's IP stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Packets routed through the node.
    pub forwarded: u64,
    /// Packets delivered to the node itself.
    pub local_in: u64,
    /// Packets the node sent itself (ICMP, resets, replies, ARP excluded).
    pub local_out: u64,
    /// Packets discarded by the IP stack or a hook.
    pub dropped: u64,
}

/// The trace identities of a node's interfaces.
#[derive(Clone, Copy, Debug)]
pub struct NodeIfaces {
    /// `cni0`, the bridge device.
    pub cni0: IfaceId,
    /// `eth0`, the uplink.
    pub eth0: IfaceId,
    /// `flannel.1`, the VXLAN device (`cni: vxlan` only).
    pub flannel: Option<IfaceId>,
}

/// A node's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAddrs {
    /// The node IP on `eth0`, with the underlay prefix.
    pub eth0: Ipv4Cidr,
    /// `eth0`'s MAC.
    pub eth0_mac: EthernetAddress,
    /// The node's pod CIDR; `cni0` holds its first address (the pods' gateway).
    pub pod_cidr: Ipv4Cidr,
    /// `cni0`'s MAC.
    pub cni0_mac: EthernetAddress,
    /// `flannel.1`'s MAC (used only when the node has a VXLAN device).
    pub flannel_mac: EthernetAddress,
}

impl NodeAddrs {
    /// The gateway address on `cni0` (first address of the pod CIDR).
    pub fn gateway(&self) -> Ipv4Address {
        Ipv4Address::from(u32::from(self.pod_cidr.network().address()) + 1)
    }

    /// The address flannel gives `flannel.1`: the network address of the pod CIDR (as a /32).
    pub fn vtep(&self) -> Ipv4Address {
        self.pod_cidr.network().address()
    }

    /// The address the node holds on `dev`.
    pub fn addr(&self, dev: Dev) -> Ipv4Address {
        match dev {
            Dev::Cni0 => self.gateway(),
            Dev::Eth0 => self.eth0.address(),
            Dev::Flannel => self.vtep(),
        }
    }

    /// The MAC of `dev`.
    pub fn mac(&self, dev: Dev) -> EthernetAddress {
        match dev {
            Dev::Cni0 => self.cni0_mac,
            Dev::Eth0 => self.eth0_mac,
            Dev::Flannel => self.flannel_mac,
        }
    }

    fn is_local(&self, ip: Ipv4Address) -> bool {
        ip == self.gateway() || ip == self.eth0.address() || ip.is_broadcast()
    }
}

/// One node.
pub struct Node {
    name: String,
    addrs: NodeAddrs,
    ifaces: NodeIfaces,
    bridge: Bridge,
    port_ifaces: BTreeMap<u32, IfaceId>,
    routes: RouteTable,
    neigh: Neighbours,
    hooks: Vec<Box<dyn NetfilterHook>>,
    /// The hooks see bridged IPv4 the way `br_netfilter` shows it to iptables (PREROUTING at
    /// the bridge, and a DNAT back behind `cni0` stays bridged); off for the eBPF datapath.
    br_netfilter: bool,
    ip_ident: u16,
    stats: NodeStats,
    /// `flannel.1`'s forwarding database (remote VTEP MAC -> remote node IP); `None` without a
    /// VXLAN device.
    fdb: Option<BTreeMap<EthernetAddress, Ipv4Address>>,
    /// The CPUs packets are steered to ([`Node::set_cpus`]).
    cpus: cpus::Cpus,
    /// The node's L7 proxy: its `cni0` port and MAC.
    l7_proxy: Option<(u32, EthernetAddress)>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("addrs", &self.addrs)
            .field("routes", &self.routes)
            .field(
                "hooks",
                &self.hooks.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Frames the node sends during one call.
pub type Output = Vec<(Egress, Frame)>;

impl Node {
    /// A node with connected routes for its pod CIDR (`cni0`) and underlay (`eth0`).
    pub fn new(
        name: String,
        addrs: NodeAddrs,
        ifaces: NodeIfaces,
        route_capacity: usize,
    ) -> Result<Self, RouteTableFull> {
        let mut routes = RouteTable::new(route_capacity);
        routes.add(Route {
            dst: addrs.pod_cidr.network(),
            via: None,
            dev: Dev::Cni0,
            src: Some(addrs.gateway()),
        })?;
        routes.add(Route {
            dst: addrs.eth0.network(),
            via: None,
            dev: Dev::Eth0,
            src: Some(addrs.eth0.address()),
        })?;
        Ok(Node {
            name,
            addrs,
            ifaces,
            bridge: Bridge::new(Some(addrs.cni0_mac)),
            port_ifaces: BTreeMap::new(),
            routes,
            neigh: Neighbours::default(),
            hooks: Vec::new(),
            br_netfilter: true,
            ip_ident: 0,
            stats: NodeStats::default(),
            fdb: ifaces.flannel.map(|_| BTreeMap::new()),
            cpus: cpus::Cpus::default(),
            l7_proxy: None,
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's addresses.
    pub fn addrs(&self) -> &NodeAddrs {
        &self.addrs
    }

    /// The node's interface identities.
    pub fn ifaces(&self) -> NodeIfaces {
        self.ifaces
    }

    /// The routing table.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Adds a route (`ip route replace`).
    pub fn add_route(&mut self, route: Route) -> Result<(), RouteTableFull> {
        self.routes.add(route)
    }

    /// The ARP table.
    pub fn neighbours(&self) -> &Neighbours {
        &self.neigh
    }

    /// Counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Enslaves a veth host end to `cni0`.
    pub fn attach_port(&mut self, port: u32, iface: IfaceId) {
        self.bridge.add_port(port);
        self.port_ifaces.insert(port, iface);
    }

    /// Turns hairpin mode of a `cni0` port on or off (`bridge link set dev VETH hairpin on`):
    /// whether a frame may leave by the port it came in on. Ports start with it off, as in
    /// Linux; CNI bridge plugins with `hairpinMode: true` turn it on for every pod.
    pub fn set_port_hairpin(&mut self, port: u32, on: bool) {
        self.bridge.set_hairpin(port, on);
    }

    /// Whether a `cni0` port is in hairpin mode.
    pub fn port_hairpin(&self, port: u32) -> bool {
        self.bridge.hairpin(BridgePort::Port(port))
    }

    /// Whether bridged IPv4 goes through the hooks as `br_netfilter` passes it (on by default,
    /// `bridge-nf-call-iptables = 1`): PREROUTING at the bridge, before the frame reaches the
    /// host, and a packet DNATed to an address behind `cni0` bridged rather than routed.
    pub fn set_br_netfilter(&mut self, on: bool) {
        self.br_netfilter = on;
    }

    /// Sets the node's L7 proxy (its `cni0` port and MAC): packets the hooks redirect at
    /// PREROUTING are handed to it unchanged.
    pub fn set_l7_proxy(&mut self, proxy: Option<(u32, EthernetAddress)>) {
        self.l7_proxy = proxy;
    }

    /// Hands a redirected frame to the L7 proxy, as TPROXY does: unchanged but for the
    /// Ethernet header.
    pub(super) fn redirect_to_l7_proxy(
        &mut self,
        now: Instant,
        frame: &Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) -> bool {
        let Some((port, mac)) = self.l7_proxy else {
            return false;
        };
        let mut f = frame.clone();
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_src_addr(self.addrs.cni0_mac);
        eth.set_dst_addr(mac);
        trace.sent(now, self.ifaces.cni0, &f);
        out.push((Egress::Port(port), f));
        true
    }

    /// Releases a veth host end.
    pub fn detach_port(&mut self, port: u32) {
        self.bridge.remove_port(port);
        self.port_ifaces.remove(&port);
    }

    /// Plugs a module into the packet path; modules at one hook run by ascending priority.
    pub fn register_hook(&mut self, hook: Box<dyn NetfilterHook>) {
        let at = self
            .hooks
            .partition_point(|h| h.priority() <= hook.priority());
        self.hooks.insert(at, hook);
    }

    /// The registered modules, in order.
    pub fn hooks(&self) -> impl Iterator<Item = &dyn NetfilterHook> {
        self.hooks.iter().map(|h| h.as_ref())
    }

    /// The registered modules, mutably (to read or change their tables).
    pub fn hooks_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn NetfilterHook>> {
        self.hooks.iter_mut()
    }

    /// The next time [`Node::poll`] has work (ARP retransmissions).
    pub fn poll_at(&self) -> Option<Instant> {
        self.neigh.poll_at()
    }

    /// Runs timers due at `now`.
    pub fn poll(&mut self, now: Instant, out: &mut Output, trace: &mut Trace) {
        let expired = self.neigh.poll(now);
        for (dev, ip) in expired.reprobe {
            self.send_arp_request(now, dev, ip, out, trace);
        }
        for Pending { frame, .. } in expired.failed {
            let dev = self.dev_of_frame_dst(&frame);
            self.drop_frame(
                now,
                dev,
                "neighbour unreachable (no ARP reply)",
                &frame,
                trace,
            );
            self.icmp_error(
                now,
                &frame[ETH_HDR..],
                icmp_type::DST_UNREACHABLE,
                1,
                false,
                out,
                trace,
            );
        }
    }

    fn iface(&self, dev: Dev) -> IfaceId {
        match dev {
            Dev::Cni0 => self.ifaces.cni0,
            Dev::Eth0 => self.ifaces.eth0,
            Dev::Flannel => self.ifaces.flannel.unwrap_or(self.ifaces.eth0),
        }
    }

    fn dev_of_frame_dst(&self, frame: &[u8]) -> Dev {
        Ipv4Packet::new_checked(&frame[ETH_HDR.min(frame.len())..])
            .ok()
            .and_then(|ip| self.routes.lookup(ip.dst_addr()).map(|r| r.dev))
            .unwrap_or(Dev::Eth0)
    }

    fn drop_frame(
        &mut self,
        now: Instant,
        dev: Dev,
        reason: impl Into<Cow<'static, str>>,
        frame: &[u8],
        trace: &mut Trace,
    ) {
        self.stats.dropped += 1;
        trace.dropped(now, self.iface(dev), reason, frame);
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

    /// Resolves `next_hop` on `dev` and sends the packet, or queues it behind an ARP request.
    fn neigh_output(
        &mut self,
        now: Instant,
        dev: Dev,
        next_hop: Ipv4Address,
        pending: Pending,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let mut evicted = Vec::new();
        match self
            .neigh
            .resolve(now, dev, next_hop, pending, &mut evicted)
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

    /// `neigh->output` of a bridged DNAT frame: it leaves `cni0` (as `tcpdump -i cni0` shows:
    /// `cni0`'s source MAC, the neighbour's destination MAC, DNATed but not yet through FORWARD
    /// and POSTROUTING), `br_dev_xmit` sees `bridged_dnat`, puts the original source MAC back
    /// and the bridge forwards it from its ingress port (`br_handle_frame_finish`): out of the
    /// destination's port after FORWARD and POSTROUTING, where MASQUERADE picks `cni0`'s
    /// address. When that is the ingress port, only hairpin mode lets it out (`should_deliver`).
    fn bridged_dnat_xmit(
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

    fn bridge_deliver(
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

    /// A frame arrived on the uplink `eth0`.
    pub fn uplink_input(
        &mut self,
        now: Instant,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        if self.cpus.count > 1 && !self.hooks.is_empty() {
            let cpu = self.rss_cpu(&frame);
            self.steer(now, cpu);
        }
        match EthernetFrame::new_checked(&frame[..]) {
            Ok(eth) if eth.dst_addr() == self.addrs.eth0_mac || eth.dst_addr().is_broadcast() => {
                self.host_input(now, Dev::Eth0, frame, out, trace)
            }
            Ok(_) => self.drop_frame(now, Dev::Eth0, "frame for another host", &frame, trace),
            Err(_) => self.drop_frame(now, Dev::Eth0, "runt frame", &frame, trace),
        }
    }

    fn host_input(
        &mut self,
        now: Instant,
        dev: Dev,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let ethertype = EthernetFrame::new_unchecked(&frame[..]).ethertype();
        match ethertype {
            EthernetProtocol::Arp => self.arp_input(now, dev, &frame, out, trace),
            EthernetProtocol::Ipv4 => self.ip_input(now, dev, frame, out, trace),
            _ => self.drop_frame(now, dev, "unsupported ethertype", &frame, trace),
        }
    }

    fn arp_input(
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

    fn send_arp_request(
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
        self.dev_xmit(now, dev, frame, out, trace);
    }

    fn ip_input(
        &mut self,
        now: Instant,
        dev: Dev,
        mut frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let total = match Ipv4Packet::new_checked(&frame[ETH_HDR..]) {
            Ok(ip) if ip.version() == 4 && ip.verify_checksum() => usize::from(ip.total_len()),
            _ => return self.drop_frame(now, dev, "bad IPv4 header", &frame, trace),
        };
        frame.truncate(ETH_HDR + total); // strip Ethernet padding
        if !self.run_hooks(
            now,
            Hook::Prerouting,
            Some(dev),
            None,
            &mut frame,
            out,
            trace,
        ) {
            return;
        }
        self.ip_rcv_finish(now, dev, frame, out, trace);
    }

    /// After PREROUTING: delivered to the node (INPUT) or routed.
    fn ip_rcv_finish(
        &mut self,
        now: Instant,
        dev: Dev,
        mut frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let dst = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr();
        if self.is_local(dst) {
            if self.run_hooks(now, Hook::Input, Some(dev), None, &mut frame, out, trace) {
                self.local_deliver(now, frame, out, trace);
            }
            return;
        }
        self.forward(now, dev, frame, out, trace);
    }

    fn forward(
        &mut self,
        now: Instant,
        in_dev: Dev,
        mut frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let ip = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]);
        let (dst, ttl) = (ip.dst_addr(), ip.hop_limit());
        let Some(route) = self.routes.lookup(dst).copied() else {
            self.drop_frame(now, in_dev, "no route to host", &frame, trace);
            self.icmp_error(
                now,
                &frame[ETH_HDR..],
                icmp_type::DST_UNREACHABLE,
                0,
                true,
                out,
                trace,
            );
            return;
        };
        if ttl <= 1 {
            self.drop_frame(now, in_dev, "TTL exceeded", &frame, trace);
            self.icmp_error(
                now,
                &frame[ETH_HDR..],
                icmp_type::TIME_EXCEEDED,
                0,
                true,
                out,
                trace,
            );
            return;
        }
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETH_HDR..]);
        ip.set_hop_limit(ttl - 1);
        ip.fill_checksum();
        if !self.run_hooks(
            now,
            Hook::Forward,
            Some(in_dev),
            Some(route.dev),
            &mut frame,
            out,
            trace,
        ) {
            return;
        }
        self.stats.forwarded += 1;
        self.postrouting_via(now, Some(in_dev), Some((dst, route)), frame, out, trace);
    }

    /// POSTROUTING, then the neighbour layer. Routes again: a hook may have rewritten the
    /// destination (as Linux re-routes after NAT in OUTPUT).
    fn postrouting(
        &mut self,
        now: Instant,
        in_dev: Option<Dev>,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        self.postrouting_via(now, in_dev, None, frame, out, trace)
    }

    /// [`Node::postrouting`] for a packet already routed to `routed` (its destination then).
    fn postrouting_via(
        &mut self,
        now: Instant,
        in_dev: Option<Dev>,
        routed: Option<(Ipv4Address, Route)>,
        mut frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let dst = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr();
        let route = match routed {
            Some((to, route)) if to == dst => Some(route),
            _ => self.routes.lookup(dst).copied(),
        };
        let Some(route) = route else {
            self.drop_frame(
                now,
                in_dev.unwrap_or(Dev::Eth0),
                "no route to host",
                &frame,
                trace,
            );
            return;
        };
        if !self.run_hooks(
            now,
            Hook::Postrouting,
            in_dev,
            Some(route.dev),
            &mut frame,
            out,
            trace,
        ) {
            return;
        }
        let dst = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr();
        let next_hop = route.next_hop(dst);
        self.neigh_output(now, route.dev, next_hop, frame.into(), out, trace);
    }

    /// Sends a packet the node itself wrote: OUTPUT, then POSTROUTING.
    fn local_out(&mut self, now: Instant, mut frame: Frame, out: &mut Output, trace: &mut Trace) {
        let dst = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]).dst_addr();
        let out_dev = self.routes.lookup(dst).map(|r| r.dev);
        if !self.run_hooks(now, Hook::Output, None, out_dev, &mut frame, out, trace) {
            return;
        }
        self.stats.local_out += 1;
        self.postrouting(now, None, frame, out, trace);
    }

    fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Answers `orig` (an IP packet) with an ICMP error, from the node's address facing its
    /// sender. `attach`: `orig` is the packet the hooks saw last, still in its walk (forwarding
    /// errors, REJECT), whose conntrack entry the error carries ([`Node::attach_ct`]). An
    /// error about a packet whose walk is over (delivered here, or queued for ARP) is looked
    /// up by its quote instead, which finds the same, confirmed, entry.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        now: Instant,
        orig: &[u8],
        icmp_type: u8,
        code: u8,
        attach: bool,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let Ok(ip) = Ipv4Packet::new_checked(orig) else {
            return;
        };
        let src = match self.routes.lookup(ip.src_addr()) {
            Some(r) => r.src.unwrap_or(self.addrs.addr(r.dev)),
            None => return,
        };
        let ident = self.next_ident();
        if let Some(f) = reply::icmp_error(orig, icmp_type, code, src, ident) {
            if attach {
                self.attach_ct();
            }
            self.local_out(now, f, out, trace);
        }
    }

    /// `nf_ct_attach` (`icmp_glue_bits` for every ICMP error, `nf_send_reset`): the packet the
    /// node sends next carries the connection of the packet in flight, so NAT translates it
    /// back as a reply (outer addresses and quote) even when that connection is not confirmed
    /// yet, e.g. a DNATed SYN whose TTL runs out.
    pub(super) fn attach_ct(&mut self) {
        for h in self.hooks.iter_mut() {
            h.attach();
        }
    }

    fn local_deliver(&mut self, now: Instant, frame: Frame, out: &mut Output, trace: &mut Trace) {
        self.stats.local_in += 1;
        let ip = Ipv4Packet::new_unchecked(&frame[ETH_HDR..]);
        let ident = self.next_ident();
        let answer = match ip.next_header() {
            IpProtocol::Icmp => reply::echo_reply(&frame[ETH_HDR..], ident),
            IpProtocol::Tcp => reply::tcp_reset(&frame[ETH_HDR..], ident),
            IpProtocol::Udp if self.is_vxlan(&frame[ETH_HDR..]) => {
                return self.vxlan_rx(now, &frame, out, trace);
            }
            IpProtocol::Udp => {
                return self.icmp_error(
                    now,
                    &frame[ETH_HDR..],
                    icmp_type::DST_UNREACHABLE,
                    3,
                    false,
                    out,
                    trace,
                );
            }
            _ => {
                return self.icmp_error(
                    now,
                    &frame[ETH_HDR..],
                    icmp_type::DST_UNREACHABLE,
                    2,
                    false,
                    out,
                    trace,
                );
            }
        };
        if let Some(f) = answer {
            self.local_out(now, f, out, trace);
        }
    }

    /// Fills the Ethernet header and sends on `dev`.
    fn xmit_to(
        &mut self,
        now: Instant,
        dev: Dev,
        dst: EthernetAddress,
        mut frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_src_addr(self.addrs.mac(dev));
        eth.set_dst_addr(dst);
        eth.set_ethertype(EthernetProtocol::Ipv4);
        self.dev_xmit(now, dev, frame, out, trace);
    }

    fn dev_xmit(
        &mut self,
        now: Instant,
        dev: Dev,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        match dev {
            Dev::Eth0 => out.push((Egress::Uplink, frame)),
            Dev::Flannel => self.vxlan_xmit(now, frame, out, trace),
            Dev::Cni0 => {
                trace.sent(now, self.ifaces.cni0, &frame);
                let eth = EthernetFrame::new_unchecked(&frame[..]);
                let (src, dst) = (eth.src_addr(), eth.dst_addr());
                let fwd = self.bridge.forward(now, BridgePort::Local, src, dst);
                self.bridge_deliver(now, fwd, frame, out, trace);
            }
        }
    }
}
