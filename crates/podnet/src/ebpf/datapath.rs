//! The per-packet eBPF programs of a node, as Cilium attaches them: `bpf_lxc` on the pods'
//! side (tc ingress of each pod's veth: packets coming from a pod), `bpf_host` on the uplink
//! (tc ingress `from-netdev`, tc egress `to-netdev`). kube-proxy does not run; Linux's
//! conntrack and iptables never see pod traffic (BPF host routing).
//!
//! In the node's packet path the programs run where the tc hooks sit: ingress programs before
//! PREROUTING, `to-netdev` after POSTROUTING of the uplink. Traces show them at those hooks,
//! with notes naming the program.
//!
//! Maps (all LRU: when full, the least recently used entry is evicted to make room, and
//! nothing is dropped for lack of space):
//! - CT (`cilium_ct4_global` for TCP, `cilium_ct_any4_global` for the rest), keyed by a
//!   connection's tuple as it first appeared on this node. A load-balanced connection has two
//!   entries, as in Cilium: the service entry (client -> frontend, with the chosen backend)
//!   and the entry of the translated tuple (client -> backend, with the reverse-NAT frontend
//!   that replies get as their source).
//! - SNAT (`cilium_snat_v4_external`): egress (tuple -> new source) and ingress (reply tuple
//!   -> original destination) entries for BPF masquerading and NodePort SNAT.
//!
//! Per-packet load balancing happens where the socket-level one did not: NodePort traffic
//! arriving from outside, and connections the socket LB skipped (a pod reaching itself through
//! a Service, whose source becomes [`HAIRPIN_SOURCE`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::time::Instant;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::config::{EbpfConfig, NodePortMode, HAIRPIN_SOURCE};
use super::ct::format_entry;
pub use super::ct::CtEntry;
use super::dsr::{dsr_option, insert_dsr_option};
use super::lb::{Frontend, LbMaps};
use super::lru::LruMap;
use crate::conntrack::{proto, Tuple};
use crate::nat::{self, Manip};
use crate::netfilter::{Hook, HookCtx, Notes};
use crate::rng::SimRng;

/// SNAT map key: the tuple and whether it is the egress or the ingress entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NatKey {
    /// The packet's tuple.
    pub tuple: Tuple,
    /// Egress (rewrite the source) or ingress (rewrite the destination back).
    pub egress: bool,
}

/// Counters of the eBPF datapath.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EbpfStats {
    /// CT entries created.
    pub ct_created: u64,
    /// CT entries evicted (least recently used) to make room.
    pub ct_evicted: u64,
    /// CT entries found expired and removed.
    pub ct_expired: u64,
    /// SNAT entries evicted to make room.
    pub nat_evicted: u64,
    /// Connections load-balanced per packet.
    pub lb_per_packet: u64,
    /// SNAT mappings created.
    pub snat: u64,
    /// DSR options added.
    pub dsr: u64,
}

/// What the ingress programs decided about a new connection, for the dataplane's policy check
/// and `[NEW]` log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewFlow {
    /// The tuple as it arrived.
    pub orig: Tuple,
    /// The tuple after load balancing (what policy judges, and where it goes).
    pub translated: Tuple,
}

/// What processing a packet gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Goes on; `Some` for a connection seen for the first time here.
    Pass(Option<NewFlow>),
    /// Dropped, with Cilium's drop reason.
    Drop(String),
}

/// A node's eBPF programs and maps.
#[derive(Debug)]
pub struct EbpfDatapath {
    cfg: EbpfConfig,
    /// The cluster's pod CIDR (`ipv4NativeRoutingCIDR`: not masqueraded).
    cluster_cidr: Ipv4Cidr,
    /// This node's pod CIDR.
    local_cidr: Ipv4Cidr,
    lb: LbMaps,
    ct_tcp: LruMap<Tuple, CtEntry>,
    ct_any: LruMap<Tuple, CtEntry>,
    snat: LruMap<NatKey, (Ipv4Address, u16)>,
    rng: SimRng,
    stats: EbpfStats,
    /// The node's L7 proxy, known by its MAC (Cilium marks the proxy's packets instead).
    proxy_mac: Option<smoltcp::wire::EthernetAddress>,
    /// The packet in flight came from the L7 proxy.
    from_proxy: bool,
    /// The packet in flight goes to the L7 proxy (TPROXY).
    redirect: bool,
}

/// Cilium's SNAT port range for masquerading (`SNAT_MAPPING_MIN_PORT`..`MAX_PORT`) and its
/// collision retries on kernels with the large instruction limit.
const SNAT_PORTS: (u16, u16) = (1024, 65535);
const SNAT_RETRIES: u32 = 128;

fn tcp_flags(ip: &[u8]) -> u8 {
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if ip.get(9) == Some(&proto::TCP) {
        ip.get(hl + 13).copied().unwrap_or(0)
    } else {
        0
    }
}

fn ep(a: Ipv4Address, p: u16) -> String {
    format!("{a}:{p}")
}

impl EbpfDatapath {
    /// The programs of a node with an empty set of maps.
    pub fn new(
        cfg: EbpfConfig,
        cluster_cidr: Ipv4Cidr,
        local_cidr: Ipv4Cidr,
        lb: LbMaps,
        rng: SimRng,
    ) -> Self {
        EbpfDatapath {
            cfg,
            cluster_cidr,
            local_cidr,
            lb,
            ct_tcp: LruMap::with_capacity(cfg.ct_tcp_max.max(1) as usize),
            ct_any: LruMap::with_capacity(cfg.ct_any_max.max(1) as usize),
            snat: LruMap::with_capacity(cfg.nat_max.max(2) as usize),
            rng,
            stats: EbpfStats::default(),
            proxy_mac: None,
            from_proxy: false,
            redirect: false,
        }
    }

    /// Tells the programs the MAC of the node's L7 proxy.
    pub fn set_proxy_mac(&mut self, mac: Option<smoltcp::wire::EthernetAddress>) {
        self.proxy_mac = mac;
    }

    /// Whether the packet last processed came from the node's L7 proxy (policy was enforced
    /// by the proxy: the datapath does not judge it again).
    pub fn from_proxy(&self) -> bool {
        self.from_proxy
    }

    /// Whether the packet last processed goes to the L7 proxy; clears the flag.
    pub fn take_redirect(&mut self) -> bool {
        core::mem::take(&mut self.redirect)
    }

    /// Marks a new connection for the L7 proxy: this packet and the later ones of its
    /// original direction go to the proxy.
    pub fn redirect_to_proxy(&mut self, t: &Tuple) {
        self.ct_update(t, |e| e.proxy_redirect = true);
        self.redirect = true;
    }

    /// Records the source's security identity in a connection's CT entry.
    pub fn set_src_identity(&mut self, t: &Tuple, id: u32) {
        self.ct_update(t, |e| e.src_sec_id = Some(id));
    }

    /// The settings.
    pub fn config(&self) -> &EbpfConfig {
        &self.cfg
    }

    /// The Service maps (also the socket-level load balancer).
    pub fn lb(&self) -> &LbMaps {
        &self.lb
    }

    /// The Service maps, mutably.
    pub fn lb_mut(&mut self) -> &mut LbMaps {
        &mut self.lb
    }

    /// Counters.
    pub fn stats(&self) -> EbpfStats {
        self.stats
    }

    /// The TCP CT map.
    pub fn ct_tcp(&self) -> &LruMap<Tuple, CtEntry> {
        &self.ct_tcp
    }

    /// The non-TCP CT map.
    pub fn ct_any(&self) -> &LruMap<Tuple, CtEntry> {
        &self.ct_any
    }

    /// The SNAT map.
    pub fn snat_map(&self) -> &LruMap<NatKey, (Ipv4Address, u16)> {
        &self.snat
    }

    /// Empties the CT maps (`cilium bpf ct flush global`).
    pub fn flush_ct(&mut self) {
        self.ct_tcp.clear();
        self.ct_any.clear();
    }

    fn ct(&mut self, proto: u8) -> &mut LruMap<Tuple, CtEntry> {
        if proto == proto::TCP {
            &mut self.ct_tcp
        } else {
            &mut self.ct_any
        }
    }

    /// Looks a tuple up (a hit refreshes its recency); expired entries are removed.
    fn ct_get(&mut self, now: Instant, t: &Tuple) -> Option<CtEntry> {
        let map = self.ct(t.proto);
        let e = *map.get(t)?;
        if e.expires <= now {
            map.remove(t);
            self.stats.ct_expired += 1;
            return None;
        }
        Some(e)
    }

    fn ct_put(&mut self, t: Tuple, e: CtEntry) {
        if self.ct(t.proto).insert(t, e).is_some() {
            self.stats.ct_evicted += 1;
        }
    }

    fn ct_update(&mut self, t: &Tuple, f: impl FnOnce(&mut CtEntry)) {
        if let Some(e) = self.ct(t.proto).get_mut(t) {
            f(e);
        }
    }

    /// Removes the entries a new connection made (NetworkPolicy denied it: Cilium checks
    /// policy before it creates the CT entry).
    pub fn forget(&mut self, nf: &NewFlow) {
        self.ct(nf.translated.proto).remove(&nf.translated);
        if nf.orig != nf.translated {
            self.ct(nf.orig.proto).remove(&nf.orig);
        }
        self.stats.ct_created = self.stats.ct_created.saturating_sub(1);
    }

    /// Sets the `[NEW]` event index of an entry.
    pub fn set_event(&mut self, t: &Tuple, event: u32) {
        self.ct_update(t, |e| e.event = Some(event));
    }

    /// The CT entry of `t`, without touching it.
    pub fn peek(&self, t: &Tuple) -> Option<&CtEntry> {
        if t.proto == proto::TCP {
            self.ct_tcp.peek(t)
        } else {
            self.ct_any.peek(t)
        }
    }

    /// Runs the program at this hook: ingress programs at PREROUTING (`from-netdev` for the
    /// uplink, `bpf_lxc` for packets from pods), `to-netdev` at POSTROUTING of the uplink.
    /// `frame` is the whole Ethernet frame (DSR adds an IPv4 option), the IP header at `l3`.
    pub fn process(
        &mut self,
        ctx: &HookCtx<'_>,
        frame: &mut Vec<u8>,
        l3: usize,
        notes: &mut Notes,
    ) -> Outcome {
        let uplink = |d: Option<crate::route::Dev>| d == Some(crate::route::Dev::Eth0);
        self.redirect = false;
        self.from_proxy = ctx.hook == Hook::Prerouting
            && self
                .proxy_mac
                .is_some_and(|m| frame.get(6..12) == Some(&m.0[..]));
        match ctx.hook {
            Hook::Prerouting if uplink(ctx.in_dev) => self.bpf_from_netdev(ctx, frame, l3, notes),
            Hook::Prerouting => {
                let prog = "bpf_lxc";
                self.ingress(ctx, &mut frame[l3..], prog, false, notes)
            }
            Hook::Postrouting if uplink(ctx.out_dev) => {
                self.bpf_to_netdev(ctx, &mut frame[l3..], notes)
            }
            _ => Outcome::Pass(None),
        }
    }

    /// `bpf_host` from-netdev: reverse SNAT of replies, the DSR option at a backend's node,
    /// NodePort load balancing, then the common CT path.
    fn bpf_from_netdev(
        &mut self,
        ctx: &HookCtx<'_>,
        frame: &mut Vec<u8>,
        l3: usize,
        notes: &mut Notes,
    ) -> Outcome {
        const PROG: &str = "bpf_host from-netdev";
        let Some(t) = Tuple::of_packet(&frame[l3..]) else {
            return Outcome::Pass(None);
        };
        // Overlay traffic between nodes (VXLAN, UDP 8472) is the tunnel device's business: its
        // inner packets are handled where they are decapsulated.
        if t.proto == proto::UDP && t.dport == crate::node::vxlan::VXLAN_PORT {
            return Outcome::Pass(None);
        }
        // Replies to a masqueraded or NodePort-SNATed connection: the ingress SNAT entry.
        self.snat_existing(ctx, &mut frame[l3..], t, false, PROG, notes);
        // A DSR option: this node hosts the backend; replies will carry the frontend.
        let dsr = dsr_option(&frame[l3..]);
        let out = self.ingress(ctx, &mut frame[l3..], PROG, true, notes);
        if let (Some(front), Outcome::Pass(Some(nf))) = (dsr, &out) {
            self.ct_update(&nf.translated, |e| e.rev_nat = Some(front));
            if ctx.explain {
                notes.push(format!(
                    "{PROG}: DSR option: service {} (replies leave from here with it as source)",
                    ep(front.0, front.1)
                ));
            }
        }
        // NodePort in DSR mode to another node: carry the frontend in an IPv4 option.
        if let Outcome::Pass(Some(nf)) = &out {
            if let Some(e) = self.peek(&nf.translated).copied() {
                if let Some(front) = e.dsr_option {
                    if insert_dsr_option(frame, l3, front) {
                        self.stats.dsr += 1;
                        if ctx.explain {
                            notes.push(format!(
                                "{PROG}: DSR: IPv4 option 0x9a carries {} to the backend's node",
                                ep(front.0, front.1)
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// The CT path every ingress program shares: existing connections (service entries
    /// translated, replies reverse-translated), else a new connection, load-balanced if its
    /// destination is a Service frontend.
    fn ingress(
        &mut self,
        ctx: &HookCtx<'_>,
        ip: &mut [u8],
        prog: &str,
        from_netdev: bool,
        notes: &mut Notes,
    ) -> Outcome {
        let Some(t) = Tuple::of_packet(ip) else {
            return Outcome::Pass(None);
        };
        if !matches!(t.proto, proto::TCP | proto::UDP | proto::ICMP) {
            return Outcome::Pass(None);
        }
        let now = ctx.now;
        let flags = tcp_flags(ip);
        let len = ip.len();
        // 1. The service entry of a load-balanced connection: translate to its backend.
        if let Some(svc) = self.ct_get(now, &t) {
            if let Some((baddr, bport)) = svc.backend {
                self.ct_update(&t, |e| e.account(now, t.proto, false, len, flags));
                let mut to = t;
                to.dst = baddr;
                to.dport = bport;
                if svc.hairpin_client.is_some() {
                    to.src = HAIRPIN_SOURCE;
                    nat::apply(ip, Manip::Src, &to);
                }
                nat::apply(ip, Manip::Dst, &to);
                self.ct_update(&to, |e| e.account(now, t.proto, false, len, flags));
                if ctx.explain {
                    notes.push(format!(
                        "{prog}: lb4 (CT service entry): {} -> {}",
                        ep(t.dst, t.dport),
                        ep(baddr, bport)
                    ));
                }
                return Outcome::Pass(None);
            }
            self.ct_update(&t, |e| e.account(now, t.proto, false, len, flags));
            if ctx.explain {
                notes.push(format!("{prog}: CT: established (original)"));
            }
            if svc.proxy_redirect && !self.from_proxy {
                self.redirect = true;
                if ctx.explain {
                    notes.push(format!(
                        "{prog}: CT entry ProxyRedirect: to the L7 proxy (TPROXY, unchanged)"
                    ));
                }
            }
            return Outcome::Pass(None);
        }
        // 2. A reply: reverse NAT to the frontend (and back from the hairpin source).
        let inv = t.invert();
        if let Some(e) = self.ct_get(now, &inv) {
            self.ct_update(&inv, |e| e.account(now, t.proto, true, len, flags));
            let mut back = t;
            if let Some((faddr, fport)) = e.rev_nat {
                back.src = faddr;
                back.sport = fport;
            }
            if let Some(client) = e.hairpin_client {
                back.dst = client;
            }
            if e.proxy_upstream && !self.from_proxy {
                self.redirect = true;
                if ctx.explain {
                    notes.push(format!(
                        "{prog}: CT: reply to the L7 proxy's own connection: to the proxy"
                    ));
                }
            }
            if back != t {
                nat::apply(ip, Manip::Src, &back);
                nat::apply(ip, Manip::Dst, &back);
                if ctx.explain {
                    notes.push(format!(
                        "{prog}: reverse NAT (CT reply): {} > {} => {} > {}",
                        ep(t.src, t.sport),
                        ep(t.dst, t.dport),
                        ep(back.src, back.sport),
                        ep(back.dst, back.dport)
                    ));
                }
            } else if ctx.explain {
                notes.push(format!("{prog}: CT: established (reply)"));
            }
            return Outcome::Pass(None);
        }
        // ICMP errors and stray TCP segments open nothing.
        if t.proto == proto::TCP && flags & 0x02 == 0 {
            if ctx.explain {
                notes.push(format!("{prog}: CT: no entry for a non-SYN segment"));
            }
            return Outcome::Pass(None);
        }
        // 3. A new connection. Is its destination a Service frontend?
        let f = Frontend {
            addr: t.dst,
            port: t.dport,
            proto: t.proto,
        };
        let svc = if from_netdev {
            self.lb.lookup_node_port(&f).map(|s| (s, true))
        } else {
            None
        }
        .or_else(|| self.lb.lookup_cluster_ip(&f).map(|s| (s, false)));
        let mut translated = t;
        let mut entry = CtEntry::new(now, t.proto);
        if let Some((svc, external)) = svc {
            let Some(sel) = self.lb.select(
                now,
                svc,
                t.src,
                t.sport,
                t.dport,
                true,
                external && from_netdev,
            ) else {
                let why = format!(
                    "Service backend not found ({}{})",
                    self.lb.name(svc),
                    if external && self.lb.port(svc).external_local {
                        ", externalTrafficPolicy Local: none on this node"
                    } else {
                        ""
                    }
                );
                if ctx.explain {
                    notes.push(format!("{prog}: lb4: {why}"));
                }
                return Outcome::Drop(why);
            };
            self.stats.lb_per_packet += 1;
            translated.dst = sel.addr;
            translated.dport = sel.port;
            let hairpin = sel.addr == t.src;
            if hairpin {
                translated.src = HAIRPIN_SOURCE;
            }
            let mut svc_entry = CtEntry::new(now, t.proto);
            svc_entry.backend = Some((sel.addr, sel.port));
            svc_entry.hairpin_client = hairpin.then_some(t.src);
            svc_entry.account(now, t.proto, false, len, flags);
            self.ct_put(t, svc_entry);
            entry.rev_nat = Some((t.dst, t.dport));
            entry.hairpin_client = hairpin.then_some(t.src);
            if external && !sel.local {
                match self.cfg.node_port_mode {
                    NodePortMode::Snat => entry.nodeport_snat = true,
                    NodePortMode::Dsr => entry.dsr_option = Some((t.dst, t.dport)),
                }
            }
            nat::apply(ip, Manip::Dst, &translated);
            if hairpin {
                nat::apply(ip, Manip::Src, &translated);
            }
            if ctx.explain {
                notes.push(format!(
                    "{prog}: lb4: service {} ({}) -> backend {} on {} ({}); 0 iptables rules",
                    ep(t.dst, t.dport),
                    sel.service,
                    ep(sel.addr, sel.port),
                    sel.node,
                    sel.how
                ));
                if hairpin {
                    notes.push(format!(
                        "{prog}: lb4: hairpin: src {} -> {HAIRPIN_SOURCE} (service loopback)",
                        t.src
                    ));
                }
            }
        }
        entry.account(now, t.proto, false, len, flags);
        if self.from_proxy {
            entry.proxy_upstream = true;
            if ctx.explain {
                notes.push(format!(
                    "{prog}: from the L7 proxy: its own connection to the backend (policy already enforced by the proxy)"
                ));
            }
        }
        self.ct_put(translated, entry);
        self.stats.ct_created += 1;
        if ctx.explain {
            notes.push(format!(
                "{prog}: CT: new entry {}",
                self.ct_line(&translated, now).unwrap_or_default()
            ));
        }
        Outcome::Pass(Some(NewFlow {
            orig: t,
            translated,
        }))
    }

    /// `bpf_host` to-netdev: NodePort SNAT and BPF masquerading (new SNAT mappings, or the
    /// existing egress entry).
    fn bpf_to_netdev(&mut self, ctx: &HookCtx<'_>, ip: &mut [u8], notes: &mut Notes) -> Outcome {
        const PROG: &str = "bpf_host to-netdev";
        let Some(t) = Tuple::of_packet(ip) else {
            return Outcome::Pass(None);
        };
        if self.snat_existing(ctx, ip, t, true, PROG, notes) {
            return Outcome::Pass(None);
        }
        let entry = self.peek(&t).copied();
        let nodeport = entry.is_some_and(|e| e.nodeport_snat);
        let masquerade = self.cfg.masquerade
            && entry.is_some()
            && self.local_cidr.contains_addr(&t.src)
            && !self.cluster_cidr.contains_addr(&t.dst)
            && !ctx.local_addrs.contains(&t.dst);
        if !(nodeport || masquerade) {
            return Outcome::Pass(None);
        }
        let Some(node_ip) = ctx.out_addr else {
            return Outcome::Pass(None);
        };
        let Some(port) = self.snat_port(node_ip, &t) else {
            return Outcome::Drop("No mapping for NAT masquerade (SNAT ports exhausted)".into());
        };
        let mut to = t;
        to.src = node_ip;
        to.sport = port;
        let reply = to.invert();
        for (k, v) in [
            (
                NatKey {
                    tuple: t,
                    egress: true,
                },
                (node_ip, port),
            ),
            (
                NatKey {
                    tuple: reply,
                    egress: false,
                },
                (t.src, t.sport),
            ),
        ] {
            if self.snat.insert(k, v).is_some() {
                self.stats.nat_evicted += 1;
            }
        }
        self.stats.snat += 1;
        nat::apply(ip, Manip::Src, &to);
        if ctx.explain {
            notes.push(format!(
                "{PROG}: SNAT ({}): src {} -> {} (new SNAT map entries)",
                if nodeport {
                    "NodePort"
                } else {
                    "BPF masquerade"
                },
                ep(t.src, t.sport),
                ep(node_ip, port)
            ));
        }
        Outcome::Pass(Some(NewFlow {
            orig: t,
            translated: to,
        }))
    }

    /// Applies the SNAT map's entry for packet `t`, if it has one: egress rewrites the source
    /// (masqueraded connections leaving), ingress the destination back (their replies).
    fn snat_existing(
        &mut self,
        ctx: &HookCtx<'_>,
        ip: &mut [u8],
        t: Tuple,
        egress: bool,
        prog: &str,
        notes: &mut Notes,
    ) -> bool {
        let Some((addr, port)) = self.snat.get(&NatKey { tuple: t, egress }).copied() else {
            return false;
        };
        let mut to = t;
        let (manip, what, from) = if egress {
            (to.src, to.sport) = (addr, port);
            (Manip::Src, "egress): src", ep(t.src, t.sport))
        } else {
            (to.dst, to.dport) = (addr, port);
            (Manip::Dst, "ingress): dst", ep(t.dst, t.dport))
        };
        nat::apply(ip, manip, &to);
        if ctx.explain {
            notes.push(format!(
                "{prog}: SNAT map ({what} {from} -> {}",
                ep(addr, port)
            ));
        }
        true
    }

    /// Cilium's `snat_v4_new_mapping` port choice: keep the source port when it is in range
    /// and free, else a random port in range, then the next ones, up to the retry limit.
    fn snat_port(&mut self, addr: Ipv4Address, t: &Tuple) -> Option<u16> {
        let (lo, hi) = SNAT_PORTS;
        let free = |snat: &LruMap<NatKey, (Ipv4Address, u16)>, port: u16| {
            let mut reply = *t;
            reply.src = addr;
            reply.sport = port;
            !snat.contains_key(&NatKey {
                tuple: reply.invert(),
                egress: false,
            })
        };
        if t.sport >= lo && free(&self.snat, t.sport) {
            return Some(t.sport);
        }
        let span = u32::from(hi - lo) + 1;
        let start = self.rng.range_inclusive(0, span - 1);
        for i in 0..SNAT_RETRIES {
            let p = lo + ((start + i) % span) as u16;
            if free(&self.snat, p) {
                return Some(p);
            }
        }
        None
    }

    /// One CT entry in the style of `cilium bpf ct list global`.
    pub fn ct_line(&self, t: &Tuple, now: Instant) -> Option<String> {
        let e = self.peek(t)?;
        Some(format_entry(t, e, now))
    }

    /// Every CT entry (TCP map, then the other), least recently used first, as
    /// `cilium bpf ct list global` prints them.
    pub fn ct_list(&self, now: Instant) -> String {
        self.ct_list_head(now, usize::MAX).1
    }

    /// The lines of [`EbpfDatapath::ct_list`] whose key `pick` picks (only those are
    /// formatted), in list order.
    pub fn ct_list_picked(&self, now: Instant, pick: impl Fn(&Tuple) -> bool) -> String {
        let mut out = String::new();
        for (t, e) in self.ct_tcp.iter().chain(self.ct_any.iter()) {
            if pick(t) {
                out.push_str(&format_entry(t, e, now));
                out.push('\n');
            }
        }
        out
    }

    /// How many lines [`EbpfDatapath::ct_list`] has, and the first `limit` of them (only those
    /// are formatted).
    pub fn ct_list_head(&self, now: Instant, limit: usize) -> (usize, String) {
        let mut out = String::new();
        let mut count = 0;
        for (t, e) in self.ct_tcp.iter().chain(self.ct_any.iter()) {
            if count < limit {
                out.push_str(&format_entry(t, e, now));
                out.push('\n');
            }
            count += 1;
        }
        (count, out)
    }
}
