//! NetworkPolicy in the cluster: policies and namespace labels, pushed to every node's
//! dataplane with the pods' metadata, and the deny log that turns a client's `timeout` into
//! `denied`.
//!
//! How a client learns its connection was denied: each dataplane logs the new connections a
//! policy dropped (their conntrack ORIGINAL tuple on that node). When a client connection
//! ends in `timeout`, the cluster looks its tuple (pod address and port to the address and
//! port it dialled) up in those logs: directly (dropped at the source's node, where ORIGINAL
//! is what the pod sent), or through the source node's `[NEW]` events (dropped at the
//! destination's node, after the source node's DNAT/SNAT: the event's REPLY tuple inverted is
//! what arrived there). A match makes the record `denied`, with the verdict in its error.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::Ipv4Address;

use super::{Cluster, NodeSlot, PodId, Proxy};
use crate::conntrack::Tuple;
use crate::dataplane::Dataplane;
use crate::policy::{self, Labels, NamedPort, PodMeta, Policy, World};
use crate::program::ConnRecord;

/// A pod's NetworkPolicy-relevant metadata.
#[derive(Clone, Debug, Default)]
pub(super) struct Meta {
    pub namespace: String,
    pub labels: Labels,
    pub ports: Vec<NamedPort>,
    /// The node's L7 proxy (no identity, no policy).
    pub l7_proxy: bool,
}

/// The cluster's policies and namespaces.
#[derive(Clone, Debug, Default)]
pub(super) struct State {
    policies: Vec<Policy>,
    namespaces: BTreeMap<String, Labels>,
    /// Set once there are policies (and so maybe denied flows to look up).
    pub any_denied: bool,
    /// CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies.
    pub cilium: Vec<crate::cilium::CiliumPolicy>,
    /// Security identities handed out so far (kept when pods go, so they come back).
    pub identities: crate::cilium::identity::Allocator,
    /// Set while the L7 proxies are added (policies are pushed once they are).
    pub quiet: bool,
}

fn dataplane(slot: &NodeSlot) -> Option<&Dataplane> {
    slot.node
        .hooks()
        .find_map(|h| h.as_any()?.downcast_ref::<Dataplane>())
}

/// Why a client connection that timed out was denied, if it was.
pub(super) fn denied_reason(nodes: &[NodeSlot], r: &ConnRecord, proto: u8) -> Option<String> {
    let remote = r.peer.unwrap_or(r.remote);
    let (src, dst) = (crate::v4(r.local.addr), crate::v4(remote.addr));
    let sent = Tuple {
        src,
        dst,
        sport: r.local.port,
        dport: remote.port,
        proto,
    };
    let dps: Vec<&Dataplane> = nodes.iter().filter_map(dataplane).collect();
    // What reached other nodes: the source node's translations of what the pod sent.
    let mut forms = alloc::vec![sent];
    for dp in &dps {
        forms.extend(dp.new_connections_from(sent).map(|e| e.reply.invert()));
    }
    // On each node, the last flow dropped while the connection was open.
    dps.iter().find_map(|dp| {
        dp.last_denied_from(&forms, |d| d.at >= r.started && d.at <= r.ended)
            .map(|(_, d)| d.reason.clone())
    })
}

impl Cluster {
    /// Adds a NetworkPolicy (replacing one of the same `namespace/name`); every node's
    /// dataplane enforces it from now on, for new connections.
    pub fn add_network_policy(&mut self, policy: Policy) {
        let key = policy.key();
        self.netpol.policies.retain(|p| p.key() != key);
        self.netpol.policies.push(policy);
        self.resync_policies();
    }

    /// Removes a NetworkPolicy; false when there was none.
    pub fn remove_network_policy(&mut self, namespace: &str, name: &str) -> bool {
        let before = self.netpol.policies.len();
        self.netpol
            .policies
            .retain(|p| p.namespace != namespace || p.name != name);
        let removed = self.netpol.policies.len() != before;
        if removed {
            self.resync_policies();
        }
        removed
    }

    /// The NetworkPolicies.
    pub fn network_policies(&self) -> &[Policy] {
        &self.netpol.policies
    }

    /// Sets a namespace's labels (`kubernetes.io/metadata.name` is always implied).
    pub fn set_namespace_labels(&mut self, namespace: &str, labels: Labels) {
        self.netpol.namespaces.insert(namespace.into(), labels);
        self.resync_policies();
    }

    /// A pod's namespace.
    pub fn pod_namespace(&self, pod: PodId) -> Option<&str> {
        let slot = self.pods.get(pod.0 as usize)?.as_ref()?;
        Some(&slot.meta.namespace)
    }

    /// A pod's labels.
    pub fn pod_labels(&self, pod: PodId) -> Option<&Labels> {
        let slot = self.pods.get(pod.0 as usize)?.as_ref()?;
        Some(&slot.meta.labels)
    }

    /// Everything a NetworkPolicy verdict depends on, as the nodes see it now.
    pub fn policy_world(&self) -> World {
        let mut w = World {
            policies: self.netpol.policies.clone(),
            namespaces: self.netpol.namespaces.clone(),
            ..World::default()
        };
        // External hosts hang off the edge router: they are no pods.
        for s in self
            .pods
            .iter()
            .flatten()
            .filter(|s| !self.nodes[s.node.0 as usize].edge && !s.meta.l7_proxy)
        {
            let ip = crate::v4(s.pod.addrs().ip.address());
            w.pods.insert(
                ip,
                PodMeta {
                    name: s.pod.name().into(),
                    ip,
                    namespace: s.meta.namespace.clone(),
                    labels: s.meta.labels.clone(),
                    ports: s.meta.ports.clone(),
                    node: s.node.0,
                },
            );
        }
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| !n.edge) {
            let a = n.node.addrs();
            let ips: Vec<Ipv4Address> = alloc::vec![a.eth0.address(), a.gateway()];
            w.node_ips.insert(i as u32, ips);
        }
        if !self.netpol.cilium.is_empty() {
            let mut ids = self.netpol.identities.clone();
            let engine = crate::cilium::Engine::build(self.netpol.cilium.clone(), &mut ids, &w);
            w.cilium = Some(alloc::boxed::Box::new(engine));
        }
        w
    }

    /// The NetworkPolicy verdict on a connection from `src` to `dst:dport` (after DNAT).
    pub fn policy_verdict(&self, flow: &policy::Flow) -> policy::Verdict {
        policy::verdict(&self.policy_world(), flow)
    }

    /// Pushes policies and pod metadata to every node's dataplane (nothing while there is no
    /// policy: the dataplanes then enforce none).
    pub(super) fn resync_policies(&mut self) {
        let none = self.netpol.policies.is_empty() && self.netpol.cilium.is_empty();
        if self.config.proxy == Proxy::None
            || (none && !self.netpol.any_denied)
            || self.netpol.quiet
        {
            return;
        }
        let world = (!none).then(|| self.policy_world());
        if let Some(e) = world.as_ref().and_then(|w| w.cilium.as_ref()) {
            self.netpol.identities = e.identities.clone();
        }
        self.push_l7_policy(world.as_ref());
        self.netpol.any_denied = true;
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            if let Some(dp) = slot
                .node
                .hooks_mut()
                .find_map(|h| h.as_any_mut()?.downcast_mut::<Dataplane>())
            {
                dp.set_policies(i as u32, world.clone());
            }
        }
    }
}
