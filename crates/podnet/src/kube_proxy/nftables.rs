//! The nftables backend's `table ip kube-proxy` as data, and `syncProxyRules` building it.
//!
//! Follows `setupNFTables`, `syncProxyRules` and `writeServiceToEndpointRules` in
//! `kubernetes/pkg/proxy/nftables/proxier.go` (the 1.31 line: `filter-prerouting`,
//! `filter-input`, `filter-forward`, `filter-output` at `dstnat - 10`,
//! `filter-output-post-dnat` at `dstnat + 10`, `cluster-ips` / `cluster-ips-check`,
//! `service-endpoints-check` / `nodeport-endpoints-check`, `--nodeport-addresses primary`
//! so NodePorts are matched with `ip daddr @nodeport-ips`). Objects are created in the order a
//! fresh kube-proxy's first transaction creates them, which is the order `nft list` prints.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::names::{nft_endpoint_chain, nft_service_chain};
use super::{Plan, ProxyConfig, ServicePort, L4, MASQ_MARK};
use crate::netfilter::Hook;

/// A chain's index in the table.
pub(crate) type ChainId = u32;
/// A set's or map's index in the table.
pub(crate) type SetId = u32;

pub(crate) const CLUSTER_IPS: SetId = 0;
pub(crate) const NODEPORT_IPS: SetId = 1;
pub(crate) const NO_EP_SERVICES: SetId = 2;
pub(crate) const NO_EP_NODEPORTS: SetId = 3;
pub(crate) const FIREWALL_IPS: SetId = 4;
pub(crate) const SERVICE_IPS: SetId = 5;
pub(crate) const SERVICE_NODEPORTS: SetId = 6;

const FILTER_PREROUTING: ChainId = 0;
const FILTER_INPUT: ChainId = 1;
const FILTER_FORWARD: ChainId = 2;
const FILTER_OUTPUT: ChainId = 3;
const FILTER_OUTPUT_POST_DNAT: ChainId = 4;
const NAT_PREROUTING: ChainId = 5;
const NAT_OUTPUT: ChainId = 6;
const NAT_POSTROUTING: ChainId = 7;
const NODEPORT_EP_CHECK: ChainId = 8;
const SERVICE_EP_CHECK: ChainId = 9;
const FIREWALL_CHECK: ChainId = 10;
const SERVICES: ChainId = 11;
const MASQUERADING: ChainId = 12;
const CLUSTER_IPS_CHECK: ChainId = 13;
const MARK_MASQ: ChainId = 14;
const REJECT_CHAIN: ChainId = 15;

/// `NF_IP_PRI_NAT_DST`.
const DSTNAT: i32 = -100;
/// `NF_IP_PRI_NAT_SRC`.
const SRCNAT: i32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Jump(ChainId),
    Goto(ChainId),
    Return,
    Drop,
    Reject,
}

/// One expression or statement of a rule, in the order `nft list` prints it.
#[derive(Clone, Debug)]
pub(crate) enum Stmt {
    /// `ct state new`
    CtStateNew,
    /// `ip daddr A`
    DaddrEq(Ipv4Address),
    /// `ip daddr @set`
    DaddrInSet(SetId),
    /// `ip daddr A/N` (a one-element anonymous set `{ A/N }`, listed as a plain prefix)
    DaddrInCidr(Ipv4Cidr),
    /// `ip saddr A`
    SaddrEq(Ipv4Address),
    /// `ip saddr [!=] A/N`
    SaddrCidr {
        net: Ipv4Cidr,
        neg: bool,
    },
    /// `ip saddr @set`
    SaddrInSet(SetId),
    /// `tcp dport P`
    Dport(L4, u16),
    /// `fib saddr type local`
    FibSaddrLocal,
    /// `meta mark & M == 0x00000000`
    MarkAndZero(u32),
    /// `meta mark set meta mark | M`
    MarkOr(u32),
    /// `meta mark set meta mark ^ M`
    MarkXor(u32),
    /// `update @set { ip saddr }`
    UpdateSet(SetId),
    /// `ip daddr . meta l4proto . th dport vmap @map`
    VmapDest(SetId),
    /// `meta l4proto . th dport vmap @map`
    VmapPort(SetId),
    /// `numgen random mod N vmap { 0 : goto c0, ... }`
    NumgenVmap(Vec<ChainId>),
    Verdict(Verdict),
    /// `masquerade fully-random`
    Masquerade,
    /// `meta l4proto tcp dnat to A:P`
    DnatTo(L4, Ipv4Address, u16),
}

impl Stmt {
    /// A matching expression (a comparison or set lookup that can end the rule), as opposed
    /// to a statement (verdict, verdict-map lookup, NAT, mark, set update). A `counter`
    /// statement would go after the last of these. `DnatTo` is both (`meta l4proto` then
    /// `dnat`) and counts as a statement.
    pub fn is_match(&self) -> bool {
        matches!(
            self,
            Stmt::CtStateNew
                | Stmt::DaddrEq(_)
                | Stmt::DaddrInSet(_)
                | Stmt::DaddrInCidr(_)
                | Stmt::SaddrEq(_)
                | Stmt::SaddrCidr { .. }
                | Stmt::SaddrInSet(_)
                | Stmt::Dport(..)
                | Stmt::FibSaddrLocal
                | Stmt::MarkAndZero(_)
        )
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub stmts: Vec<Stmt>,
    pub comment: Option<&'static str>,
}

/// A base chain's hook.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Base {
    pub nat: bool,
    pub hook: Hook,
    pub priority: i32,
}

#[derive(Debug)]
pub(crate) struct Chain {
    pub name: String,
    pub base: Option<Base>,
    pub comment: Option<&'static str>,
    pub rules: Vec<Rule>,
}

/// A map element's value, with the Service it was written for (its comment).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Elem {
    pub verdict: Verdict,
    pub comment: Option<u32>,
}

#[derive(Debug)]
pub(crate) enum SetData {
    /// `type ipv4_addr`
    Addrs(BTreeSet<Ipv4Address>),
    /// `type ipv4_addr . inet_proto . inet_service : verdict`
    DestMap(BTreeMap<(Ipv4Address, u8, u16), Elem>),
    /// `type inet_proto . inet_service : verdict`
    PortMap(BTreeMap<(u8, u16), Elem>),
    /// `type ipv4_addr; flags dynamic,timeout; timeout T` with its elements in affinity
    /// list `list`.
    Affinity { list: u32, timeout: u32 },
}

#[derive(Debug)]
pub(crate) struct Set {
    pub name: String,
    pub comment: Option<&'static str>,
    pub data: SetData,
    /// A hash index over the map or set (built once per sync), so a lookup costs the same
    /// whatever the number of Services, as the kernel's nft hash sets do. `data` stays the
    /// sorted source for `nft list` output.
    pub index: Option<DestIndex>,
}

/// An open-addressing index over packed `addr . proto . port` keys (load factor <= 1/2).
#[derive(Debug)]
pub(crate) struct DestIndex {
    shift: u32,
    slots: Vec<(u64, Elem)>,
}

const EMPTY: u64 = u64::MAX;

pub(crate) fn pack(a: Ipv4Address, proto: u8, port: u16) -> u64 {
    (u64::from(u32::from(a)) << 24) | (u64::from(proto) << 16) | u64::from(port)
}

impl DestIndex {
    fn build(m: &BTreeMap<(Ipv4Address, u8, u16), Elem>) -> Self {
        let cap = (m.len() * 2).next_power_of_two().max(8);
        let dummy = m.values().next().copied();
        let mut slots = Vec::new();
        let shift = 64 - cap.trailing_zeros();
        if let Some(d) = dummy {
            slots = alloc::vec![(EMPTY, d); cap];
            let mask = cap - 1;
            for (&(a, p, port), e) in m {
                let k = pack(a, p, port);
                let mut i = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize;
                while slots[i].0 != EMPTY {
                    i = (i + 1) & mask;
                }
                slots[i] = (k, *e);
            }
        }
        DestIndex { shift, slots }
    }

    #[inline]
    pub fn get(&self, k: u64) -> Option<&Elem> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.0 == k {
                return Some(&s.1);
            }
            if s.0 == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }
}

#[derive(Debug)]
pub(crate) struct Ruleset {
    pub sets: Vec<Set>,
    pub chains: Vec<Chain>,
    pub nat_prerouting: ChainId,
    pub nat_output: ChainId,
    pub nat_postrouting: ChainId,
}

fn rule(stmts: Vec<Stmt>) -> Rule {
    Rule {
        stmts,
        comment: None,
    }
}

fn jump(c: ChainId) -> Stmt {
    Stmt::Verdict(Verdict::Jump(c))
}

fn goto(c: ChainId) -> Stmt {
    Stmt::Verdict(Verdict::Goto(c))
}

impl Ruleset {
    /// The filter base chains at a hook, in priority order.
    pub fn filter_chains(&self, hook: Hook) -> &'static [ChainId] {
        match hook {
            Hook::Prerouting => &[FILTER_PREROUTING],
            Hook::Input => &[FILTER_INPUT],
            Hook::Forward => &[FILTER_FORWARD],
            Hook::Output => &[FILTER_OUTPUT, FILTER_OUTPUT_POST_DNAT],
            Hook::Postrouting => &[],
        }
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    fn chain(&mut self, name: String, base: Option<Base>) -> ChainId {
        self.chains.push(Chain {
            name,
            base,
            comment: None,
            rules: Vec::new(),
        });
        (self.chains.len() - 1) as ChainId
    }

    fn add(&mut self, chain: ChainId, r: Rule) {
        self.chains[chain as usize].rules.push(r);
    }

    fn set(&mut self, name: &str, comment: &'static str, data: SetData) {
        self.sets.push(Set {
            name: String::from(name),
            comment: Some(comment),
            data,
            index: None,
        });
    }

    fn dest_map(&mut self, id: SetId) -> &mut BTreeMap<(Ipv4Address, u8, u16), Elem> {
        match &mut self.sets[id as usize].data {
            SetData::DestMap(m) => m,
            _ => unreachable!("set {id} is a destination map"),
        }
    }

    fn port_map(&mut self, id: SetId) -> &mut BTreeMap<(u8, u16), Elem> {
        match &mut self.sets[id as usize].data {
            SetData::PortMap(m) => m,
            _ => unreachable!("set {id} is a port map"),
        }
    }

    /// `setupNFTables` followed by the per-Service part of `syncProxyRules`.
    pub fn build(
        cfg: &ProxyConfig,
        service_cidr: Option<Ipv4Cidr>,
        services: &[ServicePort],
        plans: &[Plan],
        affinity: &mut Vec<String>,
    ) -> Self {
        let mut rs = Ruleset {
            sets: Vec::new(),
            chains: Vec::new(),
            nat_prerouting: NAT_PREROUTING,
            nat_output: NAT_OUTPUT,
            nat_postrouting: NAT_POSTROUTING,
        };
        let filter = |hook, priority| {
            Some(Base {
                nat: false,
                hook,
                priority,
            })
        };
        let nat = |hook, priority| {
            Some(Base {
                nat: true,
                hook,
                priority,
            })
        };
        rs.chain(
            String::from("filter-prerouting"),
            filter(Hook::Prerouting, DSTNAT - 10),
        );
        rs.chain(
            String::from("filter-input"),
            filter(Hook::Input, DSTNAT - 10),
        );
        rs.chain(
            String::from("filter-forward"),
            filter(Hook::Forward, DSTNAT - 10),
        );
        rs.chain(
            String::from("filter-output"),
            filter(Hook::Output, DSTNAT - 10),
        );
        rs.chain(
            String::from("filter-output-post-dnat"),
            filter(Hook::Output, DSTNAT + 10),
        );
        rs.chain(
            String::from("nat-prerouting"),
            nat(Hook::Prerouting, DSTNAT),
        );
        rs.chain(String::from("nat-output"), nat(Hook::Output, DSTNAT));
        rs.chain(
            String::from("nat-postrouting"),
            nat(Hook::Postrouting, SRCNAT),
        );
        for name in [
            "nodeport-endpoints-check",
            "service-endpoints-check",
            "firewall-check",
            "services",
            "masquerading",
            "cluster-ips-check",
            "mark-for-masquerade",
            "reject-chain",
        ] {
            rs.chain(String::from(name), None);
        }
        rs.chains[REJECT_CHAIN as usize].comment =
            Some("helper for @no-endpoint-services / @no-endpoint-nodeports");

        // nftablesJumpChains, in order.
        for (to, from, ct_new) in [
            (NODEPORT_EP_CHECK, FILTER_INPUT, true),
            (SERVICE_EP_CHECK, FILTER_INPUT, true),
            (SERVICE_EP_CHECK, FILTER_FORWARD, true),
            (SERVICE_EP_CHECK, FILTER_OUTPUT, true),
            (FIREWALL_CHECK, FILTER_PREROUTING, true),
            (FIREWALL_CHECK, FILTER_OUTPUT, true),
            (SERVICES, NAT_OUTPUT, false),
            (SERVICES, NAT_PREROUTING, false),
            (MASQUERADING, NAT_POSTROUTING, false),
            (CLUSTER_IPS_CHECK, FILTER_FORWARD, true),
            (CLUSTER_IPS_CHECK, FILTER_OUTPUT_POST_DNAT, true),
        ] {
            let mut stmts = Vec::with_capacity(2);
            if ct_new {
                stmts.push(Stmt::CtStateNew);
            }
            stmts.push(jump(to));
            rs.add(from, rule(stmts));
        }
        rs.add(MARK_MASQ, rule(vec![Stmt::MarkOr(MASQ_MARK)]));
        rs.add(
            MASQUERADING,
            rule(vec![
                Stmt::MarkAndZero(MASQ_MARK),
                Stmt::Verdict(Verdict::Return),
            ]),
        );
        rs.add(MASQUERADING, rule(vec![Stmt::MarkXor(MASQ_MARK)]));
        rs.add(MASQUERADING, rule(vec![Stmt::Masquerade]));

        rs.set(
            "cluster-ips",
            "Active ClusterIPs",
            SetData::Addrs(BTreeSet::new()),
        );
        rs.add(
            CLUSTER_IPS_CHECK,
            Rule {
                stmts: vec![
                    Stmt::DaddrInSet(CLUSTER_IPS),
                    Stmt::Verdict(Verdict::Reject),
                ],
                comment: Some("Reject traffic to invalid ports of ClusterIPs"),
            },
        );
        if let Some(cidr) = service_cidr {
            rs.add(
                CLUSTER_IPS_CHECK,
                Rule {
                    stmts: vec![Stmt::DaddrInCidr(cidr), Stmt::Verdict(Verdict::Drop)],
                    comment: Some("Drop traffic to unallocated ClusterIPs"),
                },
            );
        }
        let mut node_ips = BTreeSet::new();
        node_ips.extend(
            cfg.node_ips
                .iter()
                .copied()
                .filter(|a| a.octets()[0] != 127),
        );
        rs.set(
            "nodeport-ips",
            "IPs that accept NodePort traffic",
            SetData::Addrs(node_ips),
        );
        rs.set(
            "no-endpoint-services",
            "vmap to drop or reject packets to services with no endpoints",
            SetData::DestMap(BTreeMap::new()),
        );
        rs.set(
            "no-endpoint-nodeports",
            "vmap to drop or reject packets to service nodeports with no endpoints",
            SetData::PortMap(BTreeMap::new()),
        );
        rs.add(REJECT_CHAIN, rule(vec![Stmt::Verdict(Verdict::Reject)]));
        rs.add(SERVICE_EP_CHECK, rule(vec![Stmt::VmapDest(NO_EP_SERVICES)]));
        rs.add(
            NODEPORT_EP_CHECK,
            rule(vec![
                Stmt::DaddrInSet(NODEPORT_IPS),
                Stmt::VmapPort(NO_EP_NODEPORTS),
            ]),
        );
        rs.set(
            "firewall-ips",
            "destinations that are subject to LoadBalancerSourceRanges",
            SetData::DestMap(BTreeMap::new()),
        );
        rs.add(FIREWALL_CHECK, rule(vec![Stmt::VmapDest(FIREWALL_IPS)]));
        rs.set(
            "service-ips",
            "ClusterIP, ExternalIP and LoadBalancer IP traffic",
            SetData::DestMap(BTreeMap::new()),
        );
        rs.set(
            "service-nodeports",
            "NodePort traffic",
            SetData::PortMap(BTreeMap::new()),
        );
        rs.add(SERVICES, rule(vec![Stmt::VmapDest(SERVICE_IPS)]));
        rs.add(
            SERVICES,
            rule(vec![
                Stmt::DaddrInSet(NODEPORT_IPS),
                Stmt::VmapPort(SERVICE_NODEPORTS),
            ]),
        );

        for (i, (svc, plan)) in services.iter().zip(plans).enumerate() {
            rs.service(cfg, i as u32, svc, plan, affinity);
        }
        for set in rs.sets.iter_mut() {
            if let SetData::DestMap(m) = &set.data {
                set.index = Some(DestIndex::build(m));
            }
            if let SetData::Addrs(a) = &set.data {
                // `extend` rather than `collect`: collecting into a BTreeMap sorts, one more
                // copy of the sort in the WebAssembly module (see `crate::sort`).
                let mut m: BTreeMap<(Ipv4Address, u8, u16), Elem> = BTreeMap::new();
                m.extend(a.iter().map(|ip| {
                    (
                        (*ip, 0, 0),
                        Elem {
                            verdict: Verdict::Return,
                            comment: None,
                        },
                    )
                }));
                set.index = Some(DestIndex::build(&m));
            }
        }
        rs
    }

    fn service(
        &mut self,
        cfg: &ProxyConfig,
        si: u32,
        svc: &ServicePort,
        plan: &Plan,
        affinity: &mut Vec<String>,
    ) {
        let p = svc.protocol;
        let eps: Vec<ChainId> = plan
            .reachable
            .iter()
            .map(|&e| {
                self.chain(
                    nft_endpoint_chain("endpoint-", svc, &svc.endpoints[e as usize]),
                    None,
                )
            })
            .collect();
        let mut cluster = plan
            .uses_cluster_chain
            .then(|| self.chain(nft_service_chain("service-", svc), None));
        let local = plan
            .uses_local_chain
            .then(|| self.chain(nft_service_chain("local-", svc), None));
        let external = plan
            .uses_external_chain
            .then(|| self.chain(nft_service_chain("external-", svc), None));

        // No endpoints at all: reject; none for this traffic policy here: drop.
        let no_eps = if plan.has_endpoints {
            Verdict::Drop
        } else {
            Verdict::Goto(REJECT_CHAIN)
        };
        let internal = if plan.int_local { local } else { cluster };
        let SetData::Addrs(ips) = &mut self.sets[CLUSTER_IPS as usize].data else {
            unreachable!("cluster-ips is an address set")
        };
        ips.insert(svc.cluster_ip);
        let key = (svc.cluster_ip, p.number(), svc.port);
        match internal.filter(|_| plan.has_internal) {
            Some(chain) => {
                self.dest_map(SERVICE_IPS).insert(
                    key,
                    Elem {
                        verdict: Verdict::Goto(chain),
                        comment: None,
                    },
                );
            }
            None => {
                self.dest_map(NO_EP_SERVICES).insert(
                    key,
                    Elem {
                        verdict: no_eps,
                        comment: Some(si),
                    },
                );
            }
        }
        if let Some(np) = svc.node_port {
            if let Some(ext) = external {
                self.port_map(SERVICE_NODEPORTS).insert(
                    (p.number(), np),
                    Elem {
                        verdict: Verdict::Goto(ext),
                        comment: None,
                    },
                );
            }
            if !plan.has_external {
                self.port_map(NO_EP_NODEPORTS).insert(
                    (p.number(), np),
                    Elem {
                        verdict: no_eps,
                        comment: Some(si),
                    },
                );
            }
        }
        // Masquerade off-cluster traffic to the ClusterIP (or all of it).
        if let Some(chain) = internal.filter(|_| plan.has_internal) {
            let mut stmts = vec![Stmt::DaddrEq(svc.cluster_ip), Stmt::Dport(p, svc.port)];
            if !cfg.masquerade_all {
                stmts.push(Stmt::SaddrCidr {
                    net: cfg.cluster_cidr,
                    neg: true,
                });
            }
            stmts.push(jump(MARK_MASQ));
            self.add(chain, rule(stmts));
        }
        // External destinations.
        if let Some(ext) = external {
            if !plan.ext_local {
                self.add(ext, rule(vec![jump(MARK_MASQ)]));
            } else {
                // Declare the cluster chain when both policies are Local, so the gotos resolve.
                let c = match cluster {
                    Some(c) => c,
                    None => *cluster.insert(self.chain(nft_service_chain("service-", svc), None)),
                };
                let pods = Stmt::SaddrCidr {
                    net: cfg.cluster_cidr,
                    neg: false,
                };
                self.add(
                    ext,
                    Rule {
                        stmts: vec![pods, goto(c)],
                        comment: Some("short-circuit pod traffic"),
                    },
                );
                self.add(
                    ext,
                    Rule {
                        stmts: vec![Stmt::FibSaddrLocal, jump(MARK_MASQ)],
                        comment: Some("masquerade local traffic"),
                    },
                );
                self.add(
                    ext,
                    Rule {
                        stmts: vec![Stmt::FibSaddrLocal, goto(c)],
                        comment: Some("short-circuit local traffic"),
                    },
                );
            }
            let policy = if plan.ext_local { local } else { cluster };
            if let Some(policy) = policy.filter(|_| plan.has_external) {
                self.add(ext, rule(vec![goto(policy)]));
            }
        }
        // Affinity sets, one per endpoint.
        let mut sets = Vec::new();
        if let Some(timeout) = svc.session_affinity {
            for &e in &plan.reachable {
                let name = nft_endpoint_chain("affinity-", svc, &svc.endpoints[e as usize]);
                let list = affinity.len() as u32;
                affinity.push(name.clone());
                sets.push(self.sets.len() as SetId);
                self.sets.push(Set {
                    name,
                    comment: None,
                    data: SetData::Affinity { list, timeout },
                    index: None,
                });
            }
        }
        if let (Some(chain), true) = (cluster, plan.uses_cluster_chain) {
            self.endpoint_rules(chain, &plan.cluster, &plan.reachable, &eps, &sets);
        }
        if let Some(chain) = local {
            self.endpoint_rules(chain, &plan.local, &plan.reachable, &eps, &sets);
        }
        for (k, &e) in plan.reachable.iter().enumerate() {
            let ep = &svc.endpoints[e as usize];
            self.add(eps[k], rule(vec![Stmt::SaddrEq(ep.ip), jump(MARK_MASQ)]));
            if let Some(&set) = sets.get(k) {
                self.add(eps[k], rule(vec![Stmt::UpdateSet(set)]));
            }
            self.add(eps[k], rule(vec![Stmt::DnatTo(p, ep.ip, ep.port)]));
        }
    }

    /// `writeServiceToEndpointRules`: affinity lookups, then `numgen random mod N vmap`.
    /// `list` is a subsequence of `reachable` (same order).
    fn endpoint_rules(
        &mut self,
        chain: ChainId,
        list: &[u32],
        reachable: &[u32],
        eps: &[ChainId],
        sets: &[SetId],
    ) {
        let mut pos = Vec::with_capacity(list.len());
        let mut j = 0;
        for &e in list {
            while j < reachable.len() && reachable[j] != e {
                j += 1;
            }
            pos.push(j.min(reachable.len().saturating_sub(1)));
        }
        for &k in &pos {
            if let Some(&set) = sets.get(k) {
                self.add(chain, rule(vec![Stmt::SaddrInSet(set), goto(eps[k])]));
            }
        }
        let targets = pos.iter().map(|&k| eps[k]).collect();
        self.add(chain, rule(vec![Stmt::NumgenVmap(targets)]));
    }
}
