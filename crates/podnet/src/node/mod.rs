//! A Kubernetes node: the `cni0` bridge holding its pods' veth host ends, the uplink `eth0`,
//! and the host IP stack between them (ARP, routing, forwarding, the netfilter hooks).
//!
//! The node is sans-IO: frames come in through [`Node::bridge_input`] (from a veth) and
//! [`Node::uplink_input`] (from the underlay), timers run in [`Node::poll`], and every frame the
//! node sends is pushed to an output list as an [`Egress`] for the cluster to put on a link.

mod arp;
mod bridged;
mod cpus;
mod hooks;
pub mod icmp_limit;
mod neigh;
pub mod reply;
pub mod truesize;
pub mod vxlan;

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use litemap::LiteMap;

use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet,
};

use crate::bridge::{Bridge, BridgePort};
use crate::link::Frame;
use crate::netfilter::{Hook, NetfilterHook};
use crate::route::{Dev, Route, RouteTable, RouteTableFull};
use crate::trace::{IfaceId, Trace};
use neigh::Pending;
pub use neigh::{Neighbours, MAX_PROBES, RETRANS_TIME, UNRES_QLEN_BYTES};
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
    /// ICMP errors not sent for the host's limit (`OutRateLimitGlobal`).
    pub icmp_ratelimit_global: u64,
    /// ICMP errors not sent for their destination's limit (`OutRateLimitHost`).
    pub icmp_ratelimit_host: u64,
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
    port_ifaces: LiteMap<u32, IfaceId>,
    routes: RouteTable,
    neigh: Neighbours,
    hooks: Vec<Box<dyn NetfilterHook>>,
    /// The hooks see bridged IPv4 the way `br_netfilter` shows it to iptables (PREROUTING at
    /// the bridge, and a DNAT back behind `cni0` stays bridged); off for the eBPF datapath.
    br_netfilter: bool,
    /// The frame being handled needs no checksum verification: it came off a pod's veth, its
    /// checksums filled in by the pod's stack, or off the uplink from a NIC that verified them
    /// ([`crate::netfilter::HookCtx::csum_partial`]); cleared by its PREROUTING.
    csum_partial: bool,
    ip_ident: u16,
    stats: NodeStats,
    /// `flannel.1`'s forwarding database (remote VTEP MAC -> remote node IP); `None` without a
    /// VXLAN device.
    fdb: Option<LiteMap<EthernetAddress, Ipv4Address>>,
    /// The CPUs packets are steered to ([`Node::set_cpus`]).
    cpus: cpus::Cpus,
    /// The node's L7 proxy: its `cni0` port and MAC.
    l7_proxy: Option<(u32, EthernetAddress)>,
    /// The limits on the ICMP errors it sends.
    icmp_limit: icmp_limit::IcmpLimit,
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
            port_ifaces: LiteMap::new(),
            routes,
            neigh: Neighbours::default(),
            hooks: Vec::new(),
            br_netfilter: true,
            csum_partial: false,
            ip_ident: 0,
            stats: NodeStats::default(),
            fdb: ifaces.flannel.map(|_| LiteMap::new()),
            cpus: cpus::Cpus::default(),
            l7_proxy: None,
            icmp_limit: icmp_limit::IcmpLimit::new(
                icmp_limit::IcmpConfig::default(),
                crate::rng::SimRng::derive(0, crate::rng::Stream::Icmp(0)),
            ),
        })
    }

    /// Limits the ICMP errors it sends under `config`, drawing the credits each consumes from
    /// `rng` (see [`icmp_limit`]); the cluster gives each node a stream of the scenario seed.
    pub fn set_icmp_limits(&mut self, config: icmp_limit::IcmpConfig, rng: crate::rng::SimRng) {
        self.icmp_limit = icmp_limit::IcmpLimit::new(config, rng);
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

    /// [`Node::uplink_input`] for a frame whose checksums a NIC has verified
    /// (`CHECKSUM_UNNECESSARY`, or `CHECKSUM_PARTIAL` over a kind node's veth): conntrack does
    /// not verify them again, as `nf_ip_checksum` does not. The cluster hands frames on this
    /// way while every frame on its wires was built by its own stacks, which always fill
    /// checksums in correctly; once a crafted frame has been injected it uses
    /// [`Node::uplink_input`], so a bad checksum is still found (a NIC leaves such a frame
    /// `CHECKSUM_NONE` and the kernel verifies it in software). A VXLAN packet's inner frame
    /// is verified either way.
    pub fn uplink_input_offloaded(
        &mut self,
        now: Instant,
        frame: Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) {
        self.csum_partial = true;
        self.uplink_input(now, frame, out, trace);
        self.csum_partial = false;
    }

    /// A frame arrived on the uplink `eth0`; conntrack verifies its checksums.
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
        let mut pending = Pending::from(frame);
        pending.decapsulated = in_dev == Some(Dev::Flannel);
        self.neigh_output(now, route.dev, next_hop, pending, out, trace);
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
        let to = ip.src_addr();
        let (src, dev) = match self.routes.lookup(to) {
            Some(r) => (r.src.unwrap_or(self.addrs.addr(r.dev)), r.dev),
            None => return,
        };
        let to_self = self.is_local(to);
        if let Err(refused) = self.icmp_limit.allow(now, icmp_type, code, to, to_self) {
            match refused {
                icmp_limit::Refused::Global => self.stats.icmp_ratelimit_global += 1,
                icmp_limit::Refused::Host => self.stats.icmp_ratelimit_host += 1,
            }
            // Linux never builds it; the trace shows the error that was not sent (IP ID 0).
            if let Some(f) = reply::icmp_error(orig, icmp_type, code, src, 0) {
                self.drop_frame(now, dev, refused.reason(), &f, trace);
            }
            return;
        }
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
