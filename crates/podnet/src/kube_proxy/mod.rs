//! kube-proxy's Service dataplane for one node, as the rule chains real kube-proxy writes, walked
//! rule by rule.
//!
//! Two backends, as in Kubernetes:
//!
//! - [`Mode::Iptables`]: the `filter` and `nat` tables that `syncProxyRules` in
//!   `kubernetes/pkg/proxy/iptables/proxier.go` restores (`KUBE-SERVICES`, `KUBE-SVC-*`,
//!   `KUBE-SVL-*`, `KUBE-EXT-*`, `KUBE-SEP-*`, `KUBE-NODEPORTS`, `KUBE-MARK-MASQ`,
//!   `KUBE-POSTROUTING`, `KUBE-FORWARD`, ...). `KUBE-SERVICES` holds one rule per Service port
//!   and is walked in order, so the first packet of a connection costs a number of rule
//!   evaluations linear in the number of Services.
//! - [`Mode::Nftables`]: the `table ip kube-proxy` of `kubernetes/pkg/proxy/nftables/proxier.go`,
//!   where a verdict map (`service-ips`, `service-nodeports`) dispatches to the Service's chain
//!   and `numgen random mod N vmap` picks the endpoint: the cost does not depend on the number of
//!   Services.
//!
//! Both backends are data (chains of rules: a match list and a target / a list of nft
//! statements) built once per sync and interpreted by a small walker; the `iptables-save`,
//! kube-proxy `iptables-restore` and `nft list` renderings print those same structures.
//!
//! The CNI's pod-egress masquerade is flannel's `FLANNEL-POSTRTG` chain (from flannel's
//! `pkg/trafficmngr/iptables`), which lives in the iptables `nat` table in both modes.
//!
//! Not modelled: LoadBalancer and external IPs (`KUBE-FW-*`, `firewall-ips` stay empty),
//! health-check node ports, topology hints, serving-but-terminating endpoints, IPv6,
//! `--nodeport-addresses` other than the defaults (iptables: every local address; nftables:
//! the node's primary addresses, [`ProxyConfig::node_ips`]).

mod affinity;
mod counters;
mod ipt_build;
mod ipt_text;
mod ipt_walk;
mod iptables;
mod listing;
mod names;
mod nft_text;
mod nft_walk;
mod nftables;
mod plan;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_counters;
#[cfg(test)]
mod tests_golden;
#[cfg(test)]
mod tests_nat;

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::time::Instant;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::netfilter::Hook;
use crate::rng::SimRng;

pub use counters::{Counter, CounterTable, RuleCounters};
pub use names::{
    endpoint_chain_name, nft_endpoint_chain_name, nft_service_chain_name, service_chain_name,
};
use plan::plan_all;
pub(crate) use plan::{EpText, Plan};

/// The masquerade mark kube-proxy uses (`--masquerade-bit` 14).
pub const MASQ_MARK: u32 = 0x4000;

/// `sessionAffinityConfig.clientIP.timeoutSeconds` when not set.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// Which kube-proxy backend programs the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `--proxy-mode=iptables`: linear rule chains.
    Iptables,
    /// `--proxy-mode=nftables`: verdict maps.
    Nftables,
}

/// A Service port's transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4 {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4 {
    /// The lower-case name kube-proxy and iptables use (`tcp`, `udp`).
    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4::Tcp => 6,
            L4::Udp => 17,
        }
    }

    /// The protocol with this IP protocol number, if it is TCP or UDP.
    pub fn from_number(n: u8) -> Option<L4> {
        match n {
            6 => Some(L4::Tcp),
            17 => Some(L4::Udp),
            _ => None,
        }
    }
}

/// One endpoint (EndpointSlice entry) of a Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Pod IP.
    pub ip: Ipv4Address,
    /// Target port.
    pub port: u16,
    /// `conditions.ready`; only ready endpoints receive traffic.
    pub ready: bool,
    /// The node the pod runs on (`nodeName`), compared with [`ProxyConfig::node_name`].
    pub node: String,
}

/// One port of one Service, with its endpoints (kube-proxy's `ServicePort` + endpoints map).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// The port's name, `""` if unnamed.
    pub port_name: String,
    /// Protocol.
    pub protocol: L4,
    /// `spec.clusterIP`.
    pub cluster_ip: Ipv4Address,
    /// `port`.
    pub port: u16,
    /// `nodePort`, for NodePort Services.
    pub node_port: Option<u16>,
    /// Endpoints, in any order (kube-proxy sorts them).
    pub endpoints: Vec<Endpoint>,
    /// `sessionAffinity: ClientIP` with this timeout in seconds ([`DEFAULT_AFFINITY_TIMEOUT`]).
    pub session_affinity: Option<u32>,
    /// `externalTrafficPolicy: Local` (only meaningful with a node port).
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
}

impl ServicePort {
    /// kube-proxy's `ServicePortName.String()`: `namespace/name`, plus `:port` when named.
    pub fn port_name_string(&self) -> String {
        let mut s = String::with_capacity(
            self.namespace.len() + self.name.len() + self.port_name.len() + 2,
        );
        s.push_str(&self.namespace);
        s.push('/');
        s.push_str(&self.name);
        if !self.port_name.is_empty() {
            s.push(':');
            s.push_str(&self.port_name);
        }
        s
    }
}

/// kube-proxy's settings for one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Backend.
    pub mode: Mode,
    /// This node's name (endpoints whose `node` equals it are local).
    pub node_name: String,
    /// The node's own addresses (`addrtype LOCAL`, `fib ... type local`, nftables `nodeport-ips`).
    pub node_ips: Vec<Ipv4Address>,
    /// `--cluster-cidr`: the pod CIDR of the whole cluster (`LocalTrafficDetector`).
    pub cluster_cidr: Ipv4Cidr,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// iptables supports `--random-fully` (MASQUERADE in `KUBE-POSTROUTING` and flannel's).
    pub random_fully: bool,
    /// `net.netfilter.nf_conntrack_tcp_be_liberal` is set: no `--ctstate INVALID -j DROP`.
    pub tcp_be_liberal: bool,
}

impl ProxyConfig {
    /// A configuration with kube-proxy's defaults for the rest: no masquerade-all,
    /// `--random-fully` available, strict TCP conntrack.
    pub fn new(
        mode: Mode,
        node_name: &str,
        node_ips: Vec<Ipv4Address>,
        cluster_cidr: Ipv4Cidr,
    ) -> Self {
        ProxyConfig {
            mode,
            node_name: String::from(node_name),
            node_ips,
            cluster_cidr,
            masquerade_all: false,
            random_fully: true,
            tcp_be_liberal: false,
        }
    }
}

/// The fields of a packet the rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: Ipv4Address,
    /// Destination address.
    pub dst: Ipv4Address,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port (0 for protocols without ports).
    pub dport: u16,
    /// The IP total length, what the rules that match it count as bytes (the kernel's
    /// `skb->len` at the hook).
    pub len: u16,
}

/// What the walked rules decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No rule took the packet: accept it unchanged.
    Continue,
    /// Rewrite the destination (first packet; conntrack carries it for the rest).
    Dnat {
        /// New destination address.
        ip: Ipv4Address,
        /// New destination port.
        port: u16,
    },
    /// Reject with ICMP port unreachable.
    Reject,
    /// Drop silently.
    Drop,
}

/// The outcome of one walk, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The verdict.
    pub action: Action,
    /// The packet carries the masquerade mark (0x4000) after the walk.
    pub mark_masq: bool,
    /// Rules evaluated (an nftables verdict-map lookup counts as one rule).
    pub rules_walked: u32,
    /// The rules that matched, in walk order, in `iptables-save` syntax (iptables) or as
    /// `add rule ip kube-proxy CHAIN ...` with the rule as `nft list` prints it (nftables).
    /// Empty when recording is off ([`KubeProxy::set_record_matches`]).
    pub matched: Vec<String>,
}

/// The conntrack state of a packet, as the `conntrack` / `ct state` matches see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtState {
    /// First packet of a connection.
    New,
    /// A packet of a connection that has seen traffic both ways (or a reply).
    Established,
    /// An ICMP error about a tracked connection.
    Related,
    /// A packet conntrack could not place.
    Invalid,
}

/// A masquerade (SNAT to the outgoing interface's address) decided in nat POSTROUTING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masquerade {
    /// `--random-fully` / `fully-random`: always pick a random source port.
    pub random_fully: bool,
}

/// kube-proxy's rules on one node, with the state its matches keep (`recent` lists, nftables
/// affinity sets).
#[derive(Debug)]
pub struct KubeProxy {
    config: ProxyConfig,
    services: Vec<ServicePort>,
    record: bool,
    ipt: iptables::Ruleset,
    nft: Option<nftables::Ruleset>,
    /// The iptables rules' counters: `[filter, nat]`, shaped like the tables.
    ipt_counts: [Vec<counters::ChainCounters>; 2],
    /// The nftables rules' counters, per chain, per rule.
    nft_counts: Vec<Vec<Counter>>,
    affinity: affinity::Registry,
    last_now: Instant,
    node_pod_cidr: Option<Ipv4Cidr>,
    service_cidr: Option<Ipv4Cidr>,
}

impl KubeProxy {
    /// Builds the rule set for `services` (kube-proxy's `syncProxyRules`).
    pub fn new(config: ProxyConfig, services: Vec<ServicePort>) -> Self {
        let mut kp = KubeProxy {
            ipt: iptables::Ruleset::empty(),
            nft: None,
            ipt_counts: [Vec::new(), Vec::new()],
            nft_counts: Vec::new(),
            config,
            services: Vec::new(),
            record: true,
            affinity: affinity::Registry::default(),
            last_now: Instant::ZERO,
            node_pod_cidr: None,
            service_cidr: None,
        };
        kp.set_services(services);
        kp
    }

    /// Replaces the Services and endpoints and re-syncs the rules. Session-affinity state of
    /// endpoints that still exist is kept, as the kernel keeps `recent` lists and nft sets
    /// across a restore.
    pub fn set_services(&mut self, services: Vec<ServicePort>) {
        self.services = services;
        self.sync();
    }

    /// This node's pod subnet (flannel's lease). With it flannel's `FLANNEL-POSTRTG` has its
    /// current rules (RETURN for pod subnet <-> cluster, masquerade of host traffic to pods);
    /// without it, flannel's older `-s cluster -d cluster -j RETURN`. Re-syncs.
    pub fn set_node_pod_cidr(&mut self, cidr: Option<Ipv4Cidr>) {
        self.node_pod_cidr = cidr;
        self.sync();
    }

    /// The Service CIDR (kube-proxy learns it from `ServiceCIDR` objects), for nftables'
    /// "Drop traffic to unallocated ClusterIPs" rule; `None` (the default) leaves the rule out,
    /// as kube-proxy does. Re-syncs.
    pub fn set_service_cidr(&mut self, cidr: Option<Ipv4Cidr>) {
        self.service_cidr = cidr;
        self.sync();
    }

    /// `syncProxyRules`: rebuilds every table from the Services. Counters: see
    /// [`KubeProxy::rule_counters`].
    fn sync(&mut self) {
        let services = &self.services;
        let plans = plan_all(&self.config, services);
        let mut names = Vec::new();
        let kube_ipt = self.config.mode == Mode::Iptables;
        let ipt = iptables::Ruleset::build(
            &self.config,
            self.node_pod_cidr,
            services,
            &plans,
            kube_ipt,
            &mut names,
        );
        self.ipt_counts = [
            counters::carry(&self.ipt.filter, &self.ipt_counts[0], &ipt.filter),
            counters::carry(&self.ipt.nat, &self.ipt_counts[1], &ipt.nat),
        ];
        self.ipt = ipt;
        self.nft = match self.config.mode {
            Mode::Nftables => Some(nftables::Ruleset::build(
                &self.config,
                self.service_cidr,
                services,
                &plans,
                &mut names,
            )),
            Mode::Iptables => None,
        };
        // kube-proxy's nftables sync flushes every chain of its table and refills it.
        self.nft_counts = self.nft.as_ref().map_or_else(Vec::new, |n| {
            n.chains
                .iter()
                .map(|c| alloc::vec![Counter::default(); c.rules.len()])
                .collect()
        });
        self.affinity.resync(names);
    }

    /// The Services the rules were built from.
    pub fn services(&self) -> &[ServicePort] {
        &self.services
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Whether [`Decision::matched`] is filled (default on; benchmarks turn it off, which makes
    /// the walks allocation-free).
    pub fn set_record_matches(&mut self, on: bool) {
        self.record = on;
    }

    /// nat PREROUTING (`from_local == false`) or nat OUTPUT (`from_local == true`) for the first
    /// packet of a connection: `KUBE-SERVICES` -> `KUBE-SVC-*` / `KUBE-EXT-*` / `KUBE-SVL-*` ->
    /// `KUBE-SEP-*` (-> `KUBE-MARK-MASQ`), or the nftables `services` dispatch. `statistic` and
    /// `numgen` draw from `rng`; the affinity lists use virtual time `now`.
    ///
    /// Services without (local) endpoints are not handled here but in [`KubeProxy::filter`],
    /// as in kube-proxy.
    pub fn nat_pre(
        &mut self,
        now: Instant,
        pkt: &Packet,
        from_local: bool,
        rng: &mut SimRng,
    ) -> Decision {
        self.last_now = now;
        let mut d = Decision::new();
        let rec = self.record.then_some(&mut d.matched);
        let mut env = Env {
            pkt,
            node_ips: &self.config.node_ips,
            ct: CtState::New,
            mark: 0,
            now,
            rng: Some(rng),
            affinity: &mut self.affinity.tables,
            walked: 0,
        };
        let ipt_chain = if from_local {
            iptables::NAT_OUTPUT
        } else {
            iptables::NAT_PREROUTING
        };
        let out = match &self.nft {
            Some(nft) => {
                let chain = if from_local {
                    nft.nat_output
                } else {
                    nft.nat_prerouting
                };
                let out = nft_walk::walk(
                    nft,
                    chain,
                    &mut env,
                    rec,
                    &self.services,
                    &mut self.nft_counts,
                );
                // The iptables nat chain runs after it (same priority, registered earlier:
                // `nf_hook_entries_grow` puts a new hook before equal ones), and only while
                // no NAT binding is set (`nf_nat_inet_fn`). Empty in nftables mode (flannel
                // only has POSTROUTING rules), it still counts the packet on its policy.
                if !matches!(out, Outcome::Dnat(..)) {
                    ipt_walk::walk(
                        &self.ipt,
                        iptables::TableId::Nat,
                        ipt_chain,
                        &mut env,
                        None,
                        &self.services,
                        &mut self.ipt_counts[1],
                    );
                }
                out
            }
            None => ipt_walk::walk(
                &self.ipt,
                iptables::TableId::Nat,
                ipt_chain,
                &mut env,
                rec,
                &self.services,
                &mut self.ipt_counts[1],
            ),
        };
        d.action = out.action();
        d.mark_masq = env.mark & MASQ_MARK != 0;
        d.rules_walked = env.walked;
        d
    }

    /// Whether [`KubeProxy::filter`] has any chain to walk at `hook` (iptables has no filter
    /// PREROUTING; nftables mode has kube-proxy's `filter-prerouting`).
    pub fn filters_at(&self, hook: Hook) -> bool {
        iptables::filter_chain(hook).is_some()
            || self
                .nft
                .as_ref()
                .is_some_and(|n| !n.filter_chains(hook).is_empty())
    }

    /// The filter table at `hook` for a packet as it is there (after DNAT at INPUT, FORWARD
    /// and OUTPUT): the REJECT / DROP of Services without (local) endpoints, `KUBE-FORWARD`
    /// (`--ctstate INVALID` DROP unless [`ProxyConfig::tcp_be_liberal`], the masquerade mark and
    /// RELATED,ESTABLISHED ACCEPT), or nftables' `filter-*` chains. Returns `Continue`,
    /// `Reject` or `Drop`.
    pub fn filter(
        &mut self,
        hook: Hook,
        pkt: &Packet,
        state: CtState,
        mark_masq: bool,
    ) -> Decision {
        let mut d = Decision::new();
        let mut rec = self.record.then_some(&mut d.matched);
        let mut env = Env {
            pkt,
            node_ips: &self.config.node_ips,
            ct: state,
            mark: if mark_masq { MASQ_MARK } else { 0 },
            now: self.last_now,
            rng: None,
            affinity: &mut self.affinity.tables,
            walked: 0,
        };
        let mut action = Action::Continue;
        match &self.nft {
            Some(nft) => {
                for &chain in nft.filter_chains(hook) {
                    let a = nft_walk::walk(
                        nft,
                        chain,
                        &mut env,
                        rec.as_deref_mut(),
                        &self.services,
                        &mut self.nft_counts,
                    )
                    .action();
                    if a != Action::Continue {
                        action = a;
                        break;
                    }
                }
                // The iptables filter table (empty in nftables mode) runs after kube-proxy's
                // chains and counts what they let through on its policy.
                if let (Action::Continue, Some(chain)) = (action, iptables::filter_chain(hook)) {
                    ipt_walk::walk(
                        &self.ipt,
                        iptables::TableId::Filter,
                        chain,
                        &mut env,
                        None,
                        &self.services,
                        &mut self.ipt_counts[0],
                    );
                }
            }
            None => {
                if let Some(chain) = iptables::filter_chain(hook) {
                    action = ipt_walk::walk(
                        &self.ipt,
                        iptables::TableId::Filter,
                        chain,
                        &mut env,
                        rec,
                        &self.services,
                        &mut self.ipt_counts[0],
                    )
                    .action();
                }
            }
        }
        d.action = action;
        d.mark_masq = env.mark & MASQ_MARK != 0;
        d.rules_walked = env.walked;
        d
    }

    /// nat POSTROUTING for the first packet: `KUBE-POSTROUTING` (MASQUERADE when the packet
    /// carries mark 0x4000) and flannel's `FLANNEL-POSTRTG` (pod traffic leaving the cluster
    /// CIDR, multicast excepted). In nftables mode, kube-proxy's `masquerading` chain first,
    /// then (unless it masqueraded) flannel's iptables chain at the same priority.
    pub fn nat_post(&mut self, pkt: &Packet, mark_masq: bool) -> (Option<Masquerade>, Decision) {
        let mut d = Decision::new();
        let mut rec = self.record.then_some(&mut d.matched);
        let mut env = Env {
            pkt,
            node_ips: &self.config.node_ips,
            ct: CtState::New,
            mark: if mark_masq { MASQ_MARK } else { 0 },
            now: self.last_now,
            rng: None,
            affinity: &mut self.affinity.tables,
            walked: 0,
        };
        // In nftables mode kube-proxy's `masquerading` chain runs first: it and flannel's
        // iptables chain hook at the same priority, and the later registered (kube-proxy's)
        // goes first (`nf_hook_entries_grow`); once it masquerades, the iptables chain is
        // skipped (`nf_nat_inet_fn` stops at the first binding).
        let mut out = Outcome::Accept;
        if let Some(nft) = &self.nft {
            out = nft_walk::walk(
                nft,
                nft.nat_postrouting,
                &mut env,
                rec.as_deref_mut(),
                &self.services,
                &mut self.nft_counts,
            );
        }
        if let Outcome::Accept = out {
            out = ipt_walk::walk(
                &self.ipt,
                iptables::TableId::Nat,
                iptables::NAT_POSTROUTING,
                &mut env,
                rec,
                &self.services,
                &mut self.ipt_counts[1],
            );
        }
        d.mark_masq = env.mark & MASQ_MARK != 0;
        d.rules_walked = env.walked;
        let masq = match out {
            Outcome::Masquerade { random_fully } => Some(Masquerade { random_fully }),
            _ => None,
        };
        (masq, d)
    }

    /// nat INPUT for the first packet of a connection delivered to this node. Neither
    /// kube-proxy nor flannel puts a rule there, so the walk only counts the packet on the
    /// chain's policy (the kernel's nat table still runs at this hook).
    pub fn nat_input(&mut self, pkt: &Packet) {
        let mut env = Env {
            pkt,
            node_ips: &self.config.node_ips,
            ct: CtState::New,
            mark: 0,
            now: self.last_now,
            rng: None,
            affinity: &mut self.affinity.tables,
            walked: 0,
        };
        ipt_walk::walk(
            &self.ipt,
            iptables::TableId::Nat,
            iptables::NAT_INPUT,
            &mut env,
            None,
            &self.services,
            &mut self.ipt_counts[1],
        );
    }

    /// Rules installed: the iptables `filter` and `nat` rules plus the rules in the nftables
    /// table's chains.
    pub fn rule_count(&self) -> usize {
        self.ipt.rule_count() + self.nft.as_ref().map_or(0, |n| n.rule_count())
    }
}

impl Decision {
    fn new() -> Self {
        Decision {
            action: Action::Continue,
            mark_masq: false,
            rules_walked: 0,
            matched: Vec::new(),
        }
    }
}

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Accept,
    Drop,
    Reject,
    Dnat(Ipv4Address, u16),
    Masquerade { random_fully: bool },
}

impl Outcome {
    fn action(self) -> Action {
        match self {
            Outcome::Accept | Outcome::Masquerade { .. } => Action::Continue,
            Outcome::Drop => Action::Drop,
            Outcome::Reject => Action::Reject,
            Outcome::Dnat(ip, port) => Action::Dnat { ip, port },
        }
    }
}

/// What a walk reads and changes besides the rules.
pub(crate) struct Env<'a> {
    pub pkt: &'a Packet,
    pub node_ips: &'a [Ipv4Address],
    pub ct: CtState,
    pub mark: u32,
    pub now: Instant,
    pub rng: Option<&'a mut SimRng>,
    pub affinity: &'a mut [affinity::Table],
    pub walked: u32,
}

impl Env<'_> {
    /// `addrtype LOCAL` / `fib ... type local`: one of the node's addresses or loopback.
    pub fn is_local(&self, a: Ipv4Address) -> bool {
        a.octets()[0] == 127 || self.node_ips.contains(&a)
    }

    /// 31 random bits, as `get_random_u32() & 0x7FFFFFFF` in `xt_statistic`.
    pub fn random_u32(&mut self) -> u32 {
        self.rng
            .as_deref_mut()
            .map_or(u32::MAX, |r| r.next_u64() as u32)
    }
}
