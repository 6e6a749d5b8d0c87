//! Cilium's identity-based policy: security identities, the ipcache, CiliumNetworkPolicy and
//! CiliumClusterwideNetworkPolicy resolved into per-endpoint policy maps, and L7 HTTP rules
//! enforced by the node's proxy.
//!
//! How a verdict is reached (Cilium `bpf/lib/policy.h`, `pkg/policy`):
//! 1. The peer's address is looked up in the ipcache: a pod's identity, `host` (1) for the
//!    endpoint's own node, `remote-node` (6) for another node, a CIDR identity for a prefix a
//!    policy names, else `world` (2).
//! 2. The endpoint's policy map is looked up with (direction, identity, protocol, port); a
//!    deny entry wins; else an allow entry allows, redirecting to the proxy when it carries
//!    L7 rules.
//! 3. An endpoint selected by no rule with a section in that direction is not enforced
//!    (everything allowed); once one selects it, only what an entry allows passes. Kubernetes
//!    NetworkPolicies count too (Cilium turns them into rules of the same repository): they
//!    enforce a direction when they isolate the pod, and what they allow is allowed unless a
//!    Cilium deny rule covers it. The local node may always reach its endpoints
//!    (`allow-localhost`).

pub mod identity;
pub mod l7;
pub mod policymap;
pub mod rules;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use litemap::LiteMap;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::policy::{DirVerdict, Flow, Labels, World};
use identity::{Allocator, Identity, IpCache};
use policymap::{Key, PolicyMap};
pub use rules::{CiliumPolicy, Entity, HttpRule, PeerSelector, PolicyRule, PortProtocol, PortRule};

/// Where a new connection goes for L7 enforcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L7Redirect {
    /// The proxy port of the entry.
    pub proxy_port: u16,
    /// The HTTP rules (any one allowing a request lets it through).
    pub rules: Vec<HttpRule>,
    /// Another rule allows the same traffic without L7 rules: every request passes.
    pub allow_all: bool,
}

/// Cilium's policy state as every node's datapath sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Engine {
    /// The Cilium policies.
    pub policies: Vec<CiliumPolicy>,
    /// Every identity known.
    pub identities: Allocator,
    /// Each pod address's identity.
    pub pods: BTreeMap<Ipv4Address, Identity>,
    /// CIDR identities of the prefixes policies name.
    pub cidrs: IpCache,
    /// Each pod identity's policy map.
    pub maps: LiteMap<Identity, PolicyMap>,
}

fn subset(inner: &Ipv4Cidr, outer: &Ipv4Cidr) -> bool {
    inner.prefix_len() >= outer.prefix_len() && outer.contains_addr(&inner.address())
}

fn mentions_namespace(sel: &crate::policy::Selector) -> bool {
    sel.match_labels.contains_key(identity::NAMESPACE_LABEL)
        || sel
            .match_expressions
            .iter()
            .any(|r| r.key == identity::NAMESPACE_LABEL)
}

impl Engine {
    /// Resolves `policies` against the pods of `world`: identities (from `alloc`, which keeps
    /// them across calls), CIDR identities, and each pod identity's policy map.
    pub fn build(policies: Vec<CiliumPolicy>, alloc: &mut Allocator, world: &World) -> Engine {
        let mut e = Engine {
            policies,
            ..Engine::default()
        };
        let mut labels_of: LiteMap<Identity, Labels> = LiteMap::new();
        for (ip, pod) in &world.pods {
            let l = identity::pod_labels(
                &pod.namespace,
                &pod.labels,
                &world.namespace_labels(&pod.namespace),
            );
            let id = alloc.labels(&l);
            e.pods.insert(*ip, id);
            labels_of.insert(id, l);
        }
        for p in &e.policies {
            for r in p
                .ingress
                .iter()
                .chain(&p.egress)
                .chain(&p.ingress_deny)
                .chain(&p.egress_deny)
            {
                for peer in &r.peers {
                    if let PeerSelector::Cidr { cidr, except } = peer {
                        for c in core::iter::once(cidr).chain(except) {
                            let id = alloc.cidr(*c);
                            e.cidrs.insert(*c, id);
                        }
                    }
                }
            }
        }
        e.identities = alloc.clone();
        // Inserted one by one: extending or collecting sorts (one more sort instance).
        let mut maps: LiteMap<Identity, PolicyMap> = LiteMap::new();
        for (id, l) in labels_of.iter() {
            maps.insert(*id, e.compute(l, &labels_of));
        }
        e.maps = maps;
        e
    }

    /// The identity of `ip` seen from an endpoint on node `node`.
    pub fn identity_of(&self, world: &World, ip: Ipv4Address, node: u32) -> Identity {
        if let Some(id) = self.pods.get(&ip) {
            return *id;
        }
        for (n, ips) in &world.node_ips {
            if ips.contains(&ip) {
                return if *n == node {
                    identity::HOST
                } else {
                    identity::REMOTE_NODE
                };
            }
        }
        self.cidrs.lookup(ip)
    }

    fn peer_ids(
        &self,
        p: &CiliumPolicy,
        peer: &PeerSelector,
        pods: &LiteMap<Identity, Labels>,
    ) -> Vec<Identity> {
        match peer {
            PeerSelector::Endpoints(sel) => pods
                .iter()
                .filter(|(_, l)| {
                    sel.matches(l)
                        && match (&p.namespace, mentions_namespace(sel)) {
                            (Some(ns), false) => {
                                l.get(identity::NAMESPACE_LABEL).map(String::as_str)
                                    == Some(ns.as_str())
                            }
                            _ => true,
                        }
                })
                .map(|(id, _)| *id)
                .collect(),
            PeerSelector::Entity(ent) => {
                let cidr_ids = || self.cidrs.entries().map(|(_, id)| *id);
                match ent {
                    Entity::All => Vec::from([0]),
                    Entity::World => core::iter::once(identity::WORLD)
                        .chain(cidr_ids())
                        .collect(),
                    Entity::Cluster => [1, 3, 4, 5, 6, 7, 8]
                        .into_iter()
                        .chain(pods.keys().copied())
                        .collect(),
                    Entity::Host => Vec::from([identity::HOST]),
                    Entity::RemoteNode => Vec::from([identity::REMOTE_NODE]),
                    Entity::Health => Vec::from([identity::HEALTH]),
                    Entity::Init => Vec::from([identity::INIT]),
                    Entity::Unmanaged => Vec::from([identity::UNMANAGED]),
                    Entity::KubeApiserver => Vec::from([identity::KUBE_APISERVER]),
                    Entity::Ingress => Vec::from([identity::INGRESS]),
                }
            }
            PeerSelector::Cidr { cidr, except } => {
                let mut ids: Vec<Identity> = self
                    .cidrs
                    .entries()
                    .filter(|(c, _)| subset(c, cidr) && !except.iter().any(|e| subset(c, e)))
                    .map(|(_, id)| *id)
                    .collect();
                if cidr.prefix_len() == 0 {
                    ids.push(identity::WORLD);
                }
                ids
            }
        }
    }

    /// The policy map of an endpoint with identity labels `labels`.
    fn compute(&self, labels: &Labels, pods: &LiteMap<Identity, Labels>) -> PolicyMap {
        let ns = labels
            .get(identity::NAMESPACE_LABEL)
            .cloned()
            .unwrap_or_default();
        let mut map = PolicyMap::default();
        for p in self.policies.iter().filter(|p| {
            p.namespace.as_ref().is_none_or(|n| *n == ns) && p.endpoint_selector.matches(labels)
        }) {
            map.selected_by.push(p.key());
            map.ingress_enforced |= p.default_deny(false);
            map.egress_enforced |= p.default_deny(true);
            for (egress, deny, rules, sect) in [
                (false, false, &p.ingress, "ingress"),
                (true, false, &p.egress, "egress"),
                (false, true, &p.ingress_deny, "ingressDeny"),
                (true, true, &p.egress_deny, "egressDeny"),
            ] {
                for (i, r) in rules.iter().enumerate() {
                    let source = format!("{} {sect}[{i}]", p.key());
                    // Filled, not collected: collecting into a B-tree sorts (one more
                    // sort instance in the wasm module).
                    let mut ids: BTreeSet<Identity> = BTreeSet::new();
                    if r.peers.is_empty() {
                        if r.to_ports.is_empty() {
                            continue;
                        }
                        ids.insert(0);
                    } else {
                        ids.extend(r.peers.iter().flat_map(|peer| self.peer_ids(p, peer, pods)));
                    }
                    let any = [PortRule::default()];
                    let port_rules = if r.to_ports.is_empty() {
                        &any[..]
                    } else {
                        &r.to_ports[..]
                    };
                    for pr in port_rules {
                        let anyport = [PortProtocol {
                            port: 0,
                            end_port: None,
                            proto: 0,
                        }];
                        let ports = if pr.ports.is_empty() {
                            &anyport[..]
                        } else {
                            &pr.ports[..]
                        };
                        for pp in ports {
                            for id in &ids {
                                let key = Key {
                                    egress,
                                    identity: *id,
                                    proto: pp.proto,
                                    port: pp.port,
                                    end_port: pp.end_port.unwrap_or(pp.port),
                                };
                                map.add(key, deny, pr.http.as_deref(), &source);
                            }
                        }
                    }
                }
            }
        }
        if map.ingress_enforced {
            let key = Key {
                egress: false,
                identity: identity::HOST,
                proto: 0,
                port: 0,
                end_port: 0,
            };
            map.add(
                key,
                false,
                None,
                "allow-localhost (the node reaches its endpoints)",
            );
        }
        map
    }

    /// The policy map of the pod at `ip`.
    pub fn map_of(&self, ip: Ipv4Address) -> Option<&PolicyMap> {
        self.maps.get(self.pods.get(&ip)?)
    }

    /// The verdict of one direction, Cilium rules and Kubernetes NetworkPolicies together.
    pub fn direction(&self, world: &World, egress: bool, flow: &Flow) -> DirVerdict {
        let mut v = world.k8s_direction(egress, flow);
        let (own, peer) = if egress {
            (flow.src, flow.dst)
        } else {
            (flow.dst, flow.src)
        };
        let dir = if egress { "egress" } else { "ingress" };
        let (Some(pod), Some(own_id)) = (world.pods.get(&own), self.pods.get(&own)) else {
            return v;
        };
        let own_id = *own_id;
        let peer_id = self.identity_of(world, peer, pod.node);
        let key = format!("{}/{}", pod.namespace, pod.name);
        let ids = &self.identities;
        v.details.push(format!(
            "identities: {own} is {}; {peer} is {}",
            ids.describe(own_id),
            ids.describe(peer_id)
        ));
        let empty = PolicyMap::default();
        let map = self.maps.get(&own_id).unwrap_or(&empty);
        let enforced = if egress {
            map.egress_enforced
        } else {
            map.ingress_enforced
        };
        let lookup = map.lookup(egress, peer_id, flow.proto, flow.dport);
        v.details.push(format!(
            "policy map of {key} (identity {own_id}), {dir} lookup ({peer_id}, {}/{}): {} entr{} it",
            flow.dport,
            match flow.proto {
                6 => "TCP",
                17 => "UDP",
                132 => "SCTP",
                _ => "ANY",
            },
            lookup.consulted.len(),
            if lookup.consulted.len() == 1 {
                "y covers"
            } else {
                "ies cover"
            }
        ));
        for (k, e) in &lookup.consulted {
            v.details.push(format!(
                "  {}   <- {}",
                PolicyMap::line(k, e, ids).trim_end(),
                e.sources.join(", ")
            ));
        }
        let cil_sel = if map.selected_by.is_empty() {
            String::from("no Cilium policy")
        } else {
            map.selected_by.join(", ")
        };
        let k8s_allowed = v.isolated && v.allowed;
        let k8s_reason = core::mem::take(&mut v.reason);
        v.isolated |= enforced;
        if lookup.denied() {
            let (k, e) = lookup.decided.clone().unwrap_or_default();
            v.allowed = false;
            v.allowed_by = None;
            v.reason = format!(
                "{key} (identity {own_id}) {dir}: denied by policy map entry {} {} ({}; deny wins)",
                k.identity,
                k.port_text(),
                e.sources.join(", ")
            );
            return v;
        }
        if !v.isolated {
            v.reason = format!(
                "{key} (identity {own_id}) selected by {cil_sel} with {dir} rules and isolated by no NetworkPolicy: not enforced for {dir}"
            );
            v.allowed = true;
            return v;
        }
        if let Some((k, e)) = lookup.decided.clone().filter(|(_, e)| !e.deny) {
            v.allowed = true;
            v.allowed_by = Some((e.sources.join(", "), 0));
            let mut reason = format!(
                "{key} (identity {own_id}) enforced for {dir} ({cil_sel}); allowed by policy map entry {} {} ({})",
                k.identity,
                k.port_text(),
                e.sources.join(", ")
            );
            if let (Some(http), Some(port)) = (&e.http, e.proxy_port(egress)) {
                reason.push_str(&format!("; redirected to the L7 proxy (port {port})"));
                v.l7 = Some(L7Redirect {
                    proxy_port: port,
                    rules: http.clone(),
                    allow_all: e.l7_allow_all || k8s_allowed,
                });
            }
            v.reason = reason;
            return v;
        }
        if k8s_allowed {
            v.reason = k8s_reason;
            return v;
        }
        v.allowed = false;
        v.allowed_by = None;
        v.reason = format!(
            "{key} (identity {own_id}) enforced for {dir} ({cil_sel}{}); no policy map entry allows identity {peer_id}",
            if v.selecting.is_empty() {
                String::new()
            } else {
                format!(", NetworkPolicy {}", v.selecting.join(", "))
            }
        );
        v
    }
}

#[cfg(test)]
mod tests;
