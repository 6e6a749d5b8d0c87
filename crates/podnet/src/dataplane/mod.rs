//! A node's Linux-like dataplane as one netfilter module: conntrack, kube-proxy's rules (nat and
//! filter tables, iptables or nftables), NAT bindings and their reversal, and confirmation, each
//! at the hook and in the order Linux runs them (conntrack -200, DNAT -100, filter 0, SNAT 100,
//! confirm last).
//!
//! NAT follows `nf_nat_packet`: once a connection's tuples are bound, a packet in direction
//! `d` is made to look like the inverse of the other direction's tuple: destination fields at
//! PREROUTING/OUTPUT, source fields at POSTROUTING/INPUT. ICMP errors RELATED to a connection
//! get the packet they quote translated back too.

mod bpf;
mod netpol;

use alloc::format;

use crate::conntrack::table::bits;
use crate::conntrack::{Confirmed, Conntrack, CtConfig, CtInfo, CtState, Dir, Tuple};
use crate::ebpf::datapath::EbpfDatapath;
use crate::kube_proxy::{self, Action, KubeProxy, Packet, ProxyConfig, ServicePort};
use crate::nat::{self, Manip};
use crate::netfilter::{Hook, HookCtx, NetfilterHook, Notes, RejectWith, Verdict};
use crate::policy::World;
use crate::rng::SimRng;

/// Per-packet state carried from one hook to the next (the skb's `nfct` and mark).
#[derive(Clone, Copy, Debug)]
struct InFlight {
    info: CtInfo,
    /// `0x4000` set by KUBE-MARK-MASQ.
    mark_masq: bool,
}

/// Counters of the dataplane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataplaneStats {
    /// First packets that walked the nat table.
    pub first_packets: u64,
    /// Rules those first packets walked in all.
    pub rules_walked: u64,
    /// Rules the last first packet walked.
    pub last_rules_walked: u32,
    /// Connections DNATed to a Service backend.
    pub dnat: u64,
    /// Connections masqueraded.
    pub masquerade: u64,
    /// Masquerades that found no free port.
    pub snat_failed: u64,
}

/// A connection confirmed into the table (`conntrack -E`'s `[NEW]` event): what the packet
/// looked like and how it was translated. Kept for reports (which backend a client reached,
/// and as whom) after the entry itself has expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewConnection {
    /// When it was confirmed.
    pub at: smoltcp::time::Instant,
    /// The ORIGINAL tuple.
    pub orig: Tuple,
    /// The REPLY tuple (its source is the backend reached; its destination is who the backend
    /// saw as the client).
    pub reply: Tuple,
}

/// A new connection dropped by a NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeniedFlow {
    /// When.
    pub at: smoltcp::time::Instant,
    /// The ORIGINAL tuple of its conntrack entry on this node (what arrived here).
    pub orig: Tuple,
    /// The packet as judged (after DNAT).
    pub judged: Tuple,
    /// The verdict's explanation.
    pub reason: alloc::string::String,
}

/// A tuple's addresses and ports as an index key (its protocol is checked on lookup).
pub(crate) fn tuple_key(t: &Tuple) -> crate::pairset::Key {
    crate::pairset::key(t.src.to_bits(), t.sport, t.dport, t.dst.to_bits())
}

/// One node's conntrack + kube-proxy + NAT (+ NetworkPolicy).
#[derive(Debug)]
pub struct Dataplane {
    ct: Conntrack,
    proxy: KubeProxy,
    rng: SimRng,
    cur: Option<InFlight>,
    /// The connection of the packet the node is about to send about the last one (an ICMP
    /// error, a reset): `nf_ct_attach`, taken by that packet at OUTPUT.
    attached: Option<InFlight>,
    stats: DataplaneStats,
    events: alloc::vec::Vec<NewConnection>,
    /// This node's index and the policies to enforce (`None`: no policy exists).
    policy: Option<(u32, World)>,
    denied: alloc::vec::Vec<DeniedFlow>,
    /// `events` and `denied` by their ORIGINAL tuple (positions in each): a timed-out
    /// connection finds whether a policy dropped it without a look at every one.
    events_by_orig: crate::pairset::PairSet,
    /// Whether `events_by_orig` is kept: from the first NetworkPolicy on (only a denied
    /// connection looks its new connections up).
    events_indexed: bool,
    denied_by_orig: crate::pairset::PairSet,
    /// The Cilium-style eBPF programs replacing kube-proxy and Linux conntrack for pod
    /// traffic (`proxy: ebpf`).
    bpf: Option<alloc::boxed::Box<EbpfDatapath>>,
    /// The node's CPUs, and the entries confirmed lately on each ([`crate::race`]).
    race: crate::race::Race,
    /// The last policy check allowed the connection through the L7 proxy (Cilium).
    l7_pending: bool,
}

impl Dataplane {
    /// A dataplane with an empty conntrack table and kube-proxy's rules for `services`.
    pub fn new(
        ct: CtConfig,
        proxy: ProxyConfig,
        services: alloc::vec::Vec<ServicePort>,
        rng: SimRng,
        seed: u64,
    ) -> Self {
        Dataplane {
            ct: Conntrack::new(ct, seed),
            proxy: KubeProxy::new(proxy, services),
            rng,
            cur: None,
            attached: None,
            stats: DataplaneStats::default(),
            events: alloc::vec::Vec::new(),
            policy: None,
            denied: alloc::vec::Vec::new(),
            events_by_orig: crate::pairset::PairSet::default(),
            events_indexed: false,
            denied_by_orig: crate::pairset::PairSet::default(),
            bpf: None,
            race: crate::race::Race::default(),
            l7_pending: false,
        }
    }

    /// A dataplane whose pod traffic is handled by eBPF programs: kube-proxy runs no rules
    /// and Linux's conntrack (kept for the node's own traffic) stays empty.
    pub fn new_ebpf(ct: CtConfig, proxy: ProxyConfig, bpf: EbpfDatapath, seed: u64) -> Self {
        let mut dp = Dataplane::new(
            ct,
            proxy,
            alloc::vec::Vec::new(),
            SimRng::derive(seed, crate::rng::Stream::Node(u32::MAX)),
            seed,
        );
        dp.bpf = Some(alloc::boxed::Box::new(bpf));
        dp
    }

    /// Gives the node `cpus` CPUs: one `conntrack -S` line each, and packets on different
    /// CPUs can race between lookup and confirmation ([`crate::race`]).
    pub fn set_cpus(&mut self, cpus: u32) {
        self.ct.set_cpus(cpus);
        self.race.cpus = cpus.max(1);
    }

    /// The eBPF datapath, in `proxy: ebpf` mode.
    pub fn ebpf(&self) -> Option<&EbpfDatapath> {
        self.bpf.as_deref()
    }

    /// The eBPF datapath, mutably.
    pub fn ebpf_mut(&mut self) -> Option<&mut EbpfDatapath> {
        self.bpf.as_deref_mut()
    }

    /// Pushes the Services: to kube-proxy's rules, or to the eBPF Service maps.
    pub fn set_services(&mut self, ports: alloc::vec::Vec<ServicePort>) {
        match self.bpf.as_deref_mut() {
            Some(b) => b.lb_mut().set_services(ports),
            None => self.proxy.set_services(ports),
        }
    }

    /// The conntrack table.
    pub fn conntrack(&self) -> &Conntrack {
        &self.ct
    }

    /// `conntrack -F`: forgets every connection. The packet last processed and the one the
    /// node is about to send about it (an ICMP error, a reset) let go of their entries too,
    /// so their leftovers are not freed again under a new connection that took the slot.
    pub fn flush_conntrack(&mut self) {
        self.cur = None;
        self.attached = None;
        self.ct.flush();
    }

    /// The conntrack table, mutably (resize). Flush with [`Dataplane::flush_conntrack`].
    pub fn conntrack_mut(&mut self) -> &mut Conntrack {
        &mut self.ct
    }

    /// kube-proxy's rules.
    pub fn proxy(&self) -> &KubeProxy {
        &self.proxy
    }

    /// kube-proxy's rules, mutably (resync).
    pub fn proxy_mut(&mut self) -> &mut KubeProxy {
        &mut self.proxy
    }

    /// Counters.
    pub fn stats(&self) -> DataplaneStats {
        self.stats
    }

    /// Every connection confirmed so far, in order (`conntrack -E` `[NEW]` events).
    pub fn new_connections(&self) -> &[NewConnection] {
        &self.events
    }

    /// The new connections whose ORIGINAL tuple is `orig`, in order.
    pub fn new_connections_from(&self, orig: Tuple) -> impl Iterator<Item = &NewConnection> {
        let indexed = self.events_indexed.then(|| {
            self.events_by_orig
                .with(tuple_key(&orig))
                .filter_map(|i| self.events.get(i as usize))
        });
        // Before any NetworkPolicy (no index): a look at each.
        let each = (!self.events_indexed).then(|| self.events.iter());
        indexed
            .into_iter()
            .flatten()
            .chain(each.into_iter().flatten())
            .filter(move |e| e.orig == orig)
    }

    /// Records a new connection.
    fn push_event(&mut self, e: NewConnection) -> u32 {
        let i = self.events.len() as u32;
        if self.events_indexed {
            self.events_by_orig.insert(tuple_key(&e.orig), i);
        }
        self.events.push(e);
        i
    }

    fn begin(&mut self) {
        // The previous packet let go of its entry without reaching confirmation (it was
        // dropped on the way): an entry it created, or one killed under it, goes.
        if let Some(idx) = self.cur.take().and_then(|c| c.info.entry) {
            self.ct.discard(idx);
        }
    }

    /// `nf_ct_attach`: the packet the node builds next, about the one in flight, carries its
    /// connection ([`CtInfo::attached`]).
    fn attach(&mut self) {
        if let Some(idx) = self.attached.take().and_then(|a| a.info.entry) {
            self.ct.discard(idx);
        }
        self.attached = self.cur.take().and_then(|c| {
            c.info.attached().map(|info| InFlight {
                info,
                mark_masq: false,
            })
        });
    }

    /// The rules' view of a packet: `t`'s fields, and the IP total length of `ip` (what the
    /// rule counters count as bytes).
    fn packet_of(t: &Tuple, ip: &[u8]) -> Packet {
        let len = ip.get(2..4).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        Packet {
            src: t.src,
            dst: t.dst,
            proto: t.proto,
            sport: t.sport,
            dport: t.dport,
            len,
        }
    }

    /// The packet as it must look after NAT in its direction: the other tuple, inverted.
    fn target(&self, info: &CtInfo) -> Option<Tuple> {
        let idx = info.entry?;
        let other = if info.dir == Dir::Original { 1 } else { 0 };
        Some(self.ct.entry(idx).tuple(other).invert())
    }

    fn manip(&mut self, manip: Manip, packet: &mut [u8], ctx: &HookCtx<'_>, notes: &mut Notes) {
        let Some(inf) = self.cur else { return };
        let Some(target) = self.target(&inf.info) else {
            return;
        };
        // `nf_nat_packet`: only the NAT this connection has, seen from the packet's direction
        // (a reply's source manipulation undoes the original's destination NAT, and so on).
        let idx = inf.info.entry.unwrap_or(0);
        let (src_nat, dst_nat) = (
            self.ct.entry(idx).has(bits::SRC_NAT),
            self.ct.entry(idx).has(bits::DST_NAT),
        );
        let needed = match (manip, inf.info.dir) {
            (Manip::Src, Dir::Original) | (Manip::Dst, Dir::Reply) => src_nat,
            (Manip::Dst, Dir::Original) | (Manip::Src, Dir::Reply) => dst_nat,
        };
        if !needed {
            return;
        }
        let before = if ctx.explain {
            Tuple::of_packet(packet)
        } else {
            None
        };
        if inf.info.state == CtState::Related && packet.get(9) == Some(&1) {
            // The quoted packet goes back to the form its sender gave it (Linux rewrites it
            // with the opposite manipulation at each hook; rewriting it whole at the first
            // hook that applies comes to the same).
            let other = if inf.info.dir == Dir::Original { 1 } else { 0 };
            let quoted = self.ct.entry(inf.info.entry.unwrap_or(0)).tuple(other);
            nat::translate_icmp_error(packet, &quoted);
            let t = Tuple::of_packet(packet);
            if let Some(t) = t {
                let (addr, cur) = if manip == Manip::Src {
                    (target.src, t.src)
                } else {
                    (target.dst, t.dst)
                };
                if addr != cur {
                    nat::rewrite(packet, manip, addr, 0, false);
                }
            }
        } else {
            nat::apply(packet, manip, &target);
        }
        if let (Some(b), Some(a)) = (before, Tuple::of_packet(packet).filter(|_| ctx.explain)) {
            match manip {
                Manip::Dst if (b.dst, b.dport) != (a.dst, a.dport) => {
                    notes.push(format!(
                        "{}: dst {}:{} -> {}:{} (conntrack, {})",
                        "nat",
                        b.dst,
                        b.dport,
                        a.dst,
                        a.dport,
                        dir_name(inf.info.dir)
                    ));
                }
                Manip::Src if (b.src, b.sport) != (a.src, a.sport) => {
                    notes.push(format!(
                        "{}: src {}:{} -> {}:{} (conntrack, {})",
                        "nat",
                        b.src,
                        b.sport,
                        a.src,
                        a.sport,
                        dir_name(inf.info.dir)
                    ));
                }
                _ => {}
            }
        }
    }

    /// conntrack at PREROUTING / OUTPUT, then the nat table for new connections.
    fn pre(&mut self, ctx: &HookCtx<'_>, packet: &mut [u8], notes: &mut Notes) -> Verdict {
        self.begin();
        self.ct.unhide_all();
        if ctx.hook == Hook::Prerouting {
            let notes = ctx.explain.then_some(&mut *notes);
            self.race
                .hide_concurrent(&mut self.ct, ctx.now, packet, notes);
        }
        let attached = self.attached.take();
        let info = match attached {
            // `nf_conntrack_in` leaves a packet that already has its entry alone.
            Some(a) if ctx.hook == Hook::Output => a.info,
            _ => {
                if let Some(idx) = attached.and_then(|a| a.info.entry) {
                    self.ct.discard(idx);
                }
                let verify = ctx.hook == Hook::Prerouting && !ctx.csum_partial;
                match self.ct.track(ctx.now, packet, verify) {
                    Ok(i) => i,
                    Err(drop) => {
                        if ctx.explain {
                            notes.push(format!("conntrack: {}", drop.reason()));
                        }
                        return Verdict::Drop(drop.reason().into());
                    }
                }
            }
        };
        self.cur = Some(InFlight {
            info,
            mark_masq: false,
        });
        if ctx.explain {
            notes.push(match info.entry {
                Some(idx) if attached.is_some() => format!(
                    "conntrack: {} ({}), attached by the node (nf_ct_attach): {}",
                    info.state.name(),
                    dir_name(info.dir),
                    self.ct.line(idx, ctx.now)
                ),
                Some(idx) if info.created => format!(
                    "conntrack: NEW, entry created: {}",
                    self.ct.line(idx, ctx.now)
                ),
                Some(idx) => format!(
                    "conntrack: {} ({}): {}",
                    info.state.name(),
                    dir_name(info.dir),
                    self.ct.line(idx, ctx.now)
                ),
                None => format!("conntrack: {}", info.state.name()),
            });
        }
        if ctx.hook == Hook::Prerouting && self.proxy.filters_at(Hook::Prerouting) {
            // nftables' filter-prerouting (dstnat - 10): before DNAT, every packet.
            if let (Some(t), Some(state)) = (Tuple::of_packet(packet), self.rules_state()) {
                let d =
                    self.proxy
                        .filter(Hook::Prerouting, &Self::packet_of(&t, packet), state, false);
                match d.action {
                    Action::Drop => return Verdict::Drop("kube-proxy DROP".into()),
                    Action::Reject => {
                        return Verdict::Reject(
                            RejectWith::IcmpPortUnreachable,
                            "REJECT --reject-with icmp-port-unreachable".into(),
                        )
                    }
                    Action::Continue | Action::Dnat { .. } => {}
                }
            }
        }
        // The first packet walks the nat table, bridged or routed: br_netfilter runs nat
        // PREROUTING for a pod-to-pod frame on one bridge too (its counters show it).
        if info.created {
            let Some(idx) = info.entry else {
                return Verdict::Accept;
            };
            let orig = self.ct.entry(idx).tuple(0);
            let decision = self.proxy.nat_pre(
                ctx.now,
                &Self::packet_of(&orig, packet),
                ctx.hook == Hook::Output,
                &mut self.rng,
            );
            self.stats.first_packets += 1;
            self.stats.rules_walked += u64::from(decision.rules_walked);
            self.stats.last_rules_walked = decision.rules_walked;
            if ctx.explain {
                for m in &decision.matched {
                    notes.push(format!("nat {}: {}", ctx.hook.chain(), m));
                }
                notes.push(format!(
                    "nat {}: {} rules walked",
                    ctx.hook.chain(),
                    decision.rules_walked
                ));
            }
            if let Some(c) = self.cur.as_mut() {
                c.mark_masq = decision.mark_masq;
            }
            match decision.action {
                Action::Dnat { ip, port } => {
                    let mut reply = orig.invert();
                    reply.src = ip;
                    reply.sport = port;
                    self.ct.bind_nat(idx, &reply);
                    self.stats.dnat += 1;
                }
                Action::Reject => {
                    return Verdict::Reject(
                        RejectWith::IcmpPortUnreachable,
                        "REJECT: service has no endpoints".into(),
                    )
                }
                Action::Drop => return Verdict::Drop("kube-proxy DROP".into()),
                Action::Continue => {}
            }
        }
        self.manip(Manip::Dst, packet, ctx, notes);
        Verdict::Accept
    }

    /// The filter table (INPUT, FORWARD, OUTPUT).
    fn filter(&mut self, ctx: &HookCtx<'_>, packet: &[u8], notes: &mut Notes) -> Verdict {
        let Some(inf) = self.cur else {
            return Verdict::Accept;
        };
        let Some(t) = Tuple::of_packet(packet) else {
            return Verdict::Accept;
        };
        let Some(state) = self.rules_state() else {
            return Verdict::Accept;
        };
        if inf.info.state == CtState::New
            && !matches!(ctx.hook, Hook::Prerouting | Hook::Postrouting)
        {
            if let v @ Verdict::Drop(_) = self.policy_check(ctx, None, &t, notes) {
                return v;
            }
        }
        let d = self
            .proxy
            .filter(ctx.hook, &Self::packet_of(&t, packet), state, inf.mark_masq);
        if ctx.explain {
            for m in &d.matched {
                notes.push(format!("filter {}: {}", ctx.hook.chain(), m));
            }
        }
        match d.action {
            Action::Reject => Verdict::Reject(
                RejectWith::IcmpPortUnreachable,
                "REJECT --reject-with icmp-port-unreachable".into(),
            ),
            Action::Drop => Verdict::Drop(if inf.info.state == CtState::Invalid {
                "DROP: ctstate INVALID".into()
            } else {
                "DROP".into()
            }),
            Action::Continue | Action::Dnat { .. } => Verdict::Accept,
        }
    }

    /// The conntrack state of the packet in flight, as the rules' `ctstate` matches see it.
    fn rules_state(&self) -> Option<kube_proxy::CtState> {
        Some(match self.cur?.info.state {
            CtState::New => kube_proxy::CtState::New,
            CtState::Established => kube_proxy::CtState::Established,
            CtState::Related => kube_proxy::CtState::Related,
            CtState::Invalid => kube_proxy::CtState::Invalid,
        })
    }

    /// nat INPUT for the first packet of a connection delivered locally (only its counters).
    fn nat_input(&mut self, packet: &[u8]) {
        let Some(inf) = self.cur else { return };
        if let (true, Some(t)) = (inf.info.created, Tuple::of_packet(packet)) {
            self.proxy.nat_input(&Self::packet_of(&t, packet));
        }
    }

    /// POSTROUTING / INPUT: SNAT for new connections, source manipulation, confirmation.
    fn post(&mut self, ctx: &HookCtx<'_>, packet: &mut [u8], notes: &mut Notes) -> Verdict {
        let Some(inf) = self.cur else {
            return Verdict::Accept;
        };
        let mut bound = false;
        if let (Some(idx), true, Hook::Postrouting) = (inf.info.entry, inf.info.created, ctx.hook) {
            // The packet as it is now (after DNAT), as iptables' POSTROUTING sees it.
            let Some(now_tuple) = Tuple::of_packet(packet) else {
                return self.confirm(ctx, notes);
            };
            let (masq, d) = self
                .proxy
                .nat_post(&Self::packet_of(&now_tuple, packet), inf.mark_masq);
            if ctx.explain {
                for m in &d.matched {
                    notes.push(format!("nat POSTROUTING: {}", m));
                }
            }
            if let (Some(m), Some(addr)) = (masq, ctx.out_addr) {
                bound = true;
                let reply = self.ct.entry(idx).tuple(1);
                let rover = self.race.rover(self.ct.config().kernel, reply.proto);
                let found = ctx.explain.then(|| self.ct.stats().found);
                let got = nat::unique_snat(
                    &mut self.ct,
                    ctx.now,
                    &reply,
                    addr,
                    None,
                    m.random_fully,
                    rover,
                    &mut self.rng,
                );
                if let Some(taken) = found.map(|f| self.ct.stats().found - f).filter(|&n| n > 0) {
                    notes.push(format!(
                        "MASQUERADE: the port search met {taken} taken tuple{} (conntrack -S found)",
                        if taken == 1 { "" } else { "s" }
                    ));
                }
                match got {
                    Some(r) => {
                        self.ct.bind_nat(idx, &r);
                        self.stats.masquerade += 1;
                    }
                    None => {
                        self.stats.snat_failed += 1;
                        self.ct.discard(idx);
                        self.cur = None;
                        return Verdict::Drop("MASQUERADE: no free port".into());
                    }
                }
            }
        }
        if !bound {
            self.null_binding(ctx, notes);
        }
        self.manip(Manip::Src, packet, ctx, notes);
        self.confirm(ctx, notes)
    }

    /// `nf_nat_inet_fn` at POSTROUTING / INPUT: a new connection that no SNAT rule bound gets
    /// a null binding, which moves its source port (ICMP: id) only when its reply tuple is
    /// already another entry's ([`nat::null_binding`]).
    fn null_binding(&mut self, ctx: &HookCtx<'_>, notes: &mut Notes) {
        let Some(InFlight {
            info:
                CtInfo {
                    entry: Some(idx),
                    created: true,
                    ..
                },
            ..
        }) = self.cur
        else {
            return;
        };
        let reply = self.ct.entry(idx).tuple(1);
        let rover = self.race.rover(self.ct.config().kernel, reply.proto);
        if let Some(r) = nat::null_binding(&mut self.ct, ctx.now, &reply, rover, &mut self.rng) {
            if ctx.explain {
                notes.push(format!(
                    "nat {}: null binding, reply tuple taken: {} -> {}",
                    ctx.hook.chain(),
                    reply,
                    r
                ));
            }
            self.ct.bind_nat(idx, &r);
        }
    }

    fn confirm(&mut self, ctx: &HookCtx<'_>, notes: &mut Notes) -> Verdict {
        let Some(inf) = self.cur.take() else {
            return Verdict::Accept;
        };
        if let (Some(idx), false) = (inf.info.entry, inf.info.created) {
            // The packet leaves the hooks: an entry it held outside the hash (killed under it,
            // or attached to it unconfirmed) goes with it (`nf_conntrack_put`).
            self.ct.discard(idx);
        }
        if let (Some(idx), true) = (inf.info.entry, inf.info.created) {
            let clash = ctx
                .explain
                .then(|| self.race.explain_clash(&self.ct, ctx.now, idx))
                .flatten();
            let udp = self.ct.entry(idx).proto == crate::conntrack::proto::UDP;
            let done = self.ct.confirm(ctx.now, idx);
            if ctx.explain {
                notes.extend(clash);
                notes.push(crate::race::confirm_note(
                    &self.ct, ctx.now, idx, udp, &done,
                ));
            }
            match done {
                Err(e) => return Verdict::Drop(e.reason().into()),
                Ok(Confirmed::Reused { .. }) => return Verdict::Accept,
                Ok(_) => {
                    self.race.confirmed(&self.ct, ctx.now, idx);
                    let e = self.ct.entry(idx);
                    let ev = NewConnection {
                        at: ctx.now,
                        orig: e.tuple(0),
                        reply: e.tuple(1),
                    };
                    self.push_event(ev);
                }
            }
        }
        Verdict::Accept
    }
}

fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::Original => "original",
        Dir::Reply => "reply",
    }
}

impl NetfilterHook for Dataplane {
    fn name(&self) -> &str {
        if self.bpf.is_some() {
            "bpf"
        } else {
            "iptables"
        }
    }

    fn process_frame(
        &mut self,
        ctx: &HookCtx<'_>,
        frame: &mut alloc::vec::Vec<u8>,
        l3: usize,
        notes: &mut Notes,
    ) -> Verdict {
        if self.bpf.is_some() {
            return self.process_bpf(ctx, frame, l3, notes);
        }
        self.process(ctx, &mut frame[l3..], notes)
    }

    fn process(&mut self, ctx: &HookCtx<'_>, packet: &mut [u8], notes: &mut Notes) -> Verdict {
        // Rule lines are rendered only when someone reads them.
        self.proxy.set_record_matches(ctx.explain);
        match ctx.hook {
            Hook::Prerouting => self.pre(ctx, packet, notes),
            Hook::Output => match self.pre(ctx, packet, notes) {
                Verdict::Accept => self.filter(ctx, packet, notes),
                v => v,
            },
            Hook::Forward => self.filter(ctx, packet, notes),
            Hook::Input => match self.filter(ctx, packet, notes) {
                Verdict::Accept => {
                    self.nat_input(packet);
                    self.null_binding(ctx, notes);
                    self.manip(Manip::Src, packet, ctx, notes);
                    self.confirm(ctx, notes)
                }
                v => v,
            },
            Hook::Postrouting => self.post(ctx, packet, notes),
        }
    }

    fn attach(&mut self) {
        if self.bpf.is_none() {
            Dataplane::attach(self);
        }
    }

    fn steer(&mut self, now: smoltcp::time::Instant, cpu: u32) {
        self.ct.on_cpu(cpu);
        self.race.steer(now, cpu);
    }

    fn take_redirect(&mut self) -> bool {
        self.bpf.as_deref_mut().is_some_and(|b| b.take_redirect())
    }

    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        Some(self)
    }
}
