//! Security identities and the ipcache.
//!
//! Cilium gives every distinct set of identity-relevant labels one numeric identity, shared by
//! every endpoint carrying that set; policies are resolved to identities and the datapath
//! looks the peer of a packet up in the ipcache (address prefix -> identity) instead of
//! matching addresses. Numbers (Cilium `pkg/identity/numericidentity.go`):
//! - reserved identities: host 1, world 2, unmanaged 3, health 4, init 5, remote-node 6,
//!   kube-apiserver 7, ingress 8;
//! - cluster-local identities (pods) from 256 up; real Cilium leases a free number from that
//!   range, podnet hands them out in order so that runs repeat and numbers stay small;
//! - CIDR identities of the local scope (prefixes named by policies) from 2^24 (16777216) up.
//!
//! An identity belongs to its labels, not to an address: a pod re-created with the same labels
//! (and a new IP) gets the same identity back; a pod whose labels change gets another.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use litemap::LiteMap;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::policy::Labels;

/// A numeric security identity (0 is the wildcard "any identity" of policy map keys).
pub type Identity = u32;

/// The local node (`reserved:host`).
pub const HOST: Identity = 1;
/// Anything outside the cluster (`reserved:world`).
pub const WORLD: Identity = 2;
/// Endpoints Cilium does not manage (`reserved:unmanaged`).
pub const UNMANAGED: Identity = 3;
/// Cilium's health endpoints (`reserved:health`).
pub const HEALTH: Identity = 4;
/// Endpoints whose identity is not resolved yet (`reserved:init`).
pub const INIT: Identity = 5;
/// The other nodes of the cluster (`reserved:remote-node`).
pub const REMOTE_NODE: Identity = 6;
/// The Kubernetes API server (`reserved:kube-apiserver`).
pub const KUBE_APISERVER: Identity = 7;
/// Cilium's Ingress / Gateway API endpoint (`reserved:ingress`).
pub const INGRESS: Identity = 8;
/// The first cluster-local identity.
pub const FIRST_CLUSTER_LOCAL: Identity = 256;
/// The first CIDR identity (local scope, bit 24 set).
pub const FIRST_LOCAL_CIDR: Identity = 1 << 24;

/// The label carrying a pod's namespace in its identity.
pub const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// The prefix of a namespace's labels in the identity of its pods.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// Every reserved identity and its name.
pub const RESERVED: [(Identity, &str); 8] = [
    (HOST, "host"),
    (WORLD, "world"),
    (UNMANAGED, "unmanaged"),
    (HEALTH, "health"),
    (INIT, "init"),
    (REMOTE_NODE, "remote-node"),
    (KUBE_APISERVER, "kube-apiserver"),
    (INGRESS, "ingress"),
];

/// The name of a reserved identity.
pub fn reserved_name(id: Identity) -> Option<&'static str> {
    RESERVED.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

/// The identity-relevant labels of a pod (keys without their `k8s:` source): its own labels,
/// its namespace, and its namespace's labels.
pub fn pod_labels(namespace: &str, labels: &Labels, ns_labels: &Labels) -> Labels {
    let mut out = labels.clone();
    out.insert(NAMESPACE_LABEL.to_string(), namespace.to_string());
    for (k, v) in ns_labels {
        out.insert(format!("{NAMESPACE_LABELS_PREFIX}{k}"), v.clone());
    }
    out
}

/// What an identity stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A reserved identity.
    Reserved(&'static str),
    /// Pods with these labels.
    Labels(Labels),
    /// Addresses outside the cluster in this prefix (and the prefixes containing it).
    Cidr(Ipv4Cidr),
}

/// Hands out identities: one per label set, kept for as long as the cluster lives (so a label
/// set that comes back gets its number back).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocator {
    by_labels: LiteMap<Labels, Identity>,
    by_cidr: LiteMap<Ipv4Cidr, Identity>,
    subjects: LiteMap<Identity, Subject>,
}

impl Allocator {
    /// The identity of a label set, allocated on first use.
    pub fn labels(&mut self, labels: &Labels) -> Identity {
        if let Some(id) = self.by_labels.get(labels) {
            return *id;
        }
        let id = FIRST_CLUSTER_LOCAL + self.by_labels.len() as Identity;
        self.by_labels.insert(labels.clone(), id);
        self.subjects.insert(id, Subject::Labels(labels.clone()));
        id
    }

    /// The identity of a CIDR a policy names, allocated on first use.
    pub fn cidr(&mut self, cidr: Ipv4Cidr) -> Identity {
        let cidr = cidr.network();
        if let Some(id) = self.by_cidr.get(&cidr) {
            return *id;
        }
        let id = FIRST_LOCAL_CIDR + self.by_cidr.len() as Identity;
        self.by_cidr.insert(cidr, id);
        self.subjects.insert(id, Subject::Cidr(cidr));
        id
    }

    /// What an identity stands for.
    pub fn subject(&self, id: Identity) -> Option<Subject> {
        if let Some(n) = reserved_name(id) {
            return Some(Subject::Reserved(n));
        }
        self.subjects.get(&id).cloned()
    }

    /// Every cluster-local (pod) identity with its labels, in order.
    pub fn pod_identities(&self) -> impl Iterator<Item = (Identity, &Labels)> {
        self.subjects.iter().filter_map(|(id, s)| match s {
            Subject::Labels(l) => Some((*id, l)),
            _ => None,
        })
    }

    /// Every CIDR identity with its prefix, in order.
    pub fn cidr_identities(&self) -> impl Iterator<Item = (Identity, Ipv4Cidr)> + '_ {
        self.by_cidr.iter().map(|(c, id)| (*id, *c))
    }

    /// An identity as `cilium identity list` names it: `256 (k8s:app=web,...)`, with the
    /// namespace's own labels left out for brevity.
    pub fn describe(&self, id: Identity) -> String {
        format!("{id} ({})", self.labels_text(id))
    }

    /// The labels of an identity, `source:key=value` separated by commas.
    pub fn labels_text(&self, id: Identity) -> String {
        match self.subject(id) {
            None if id == 0 => "any".into(),
            None => "unknown".into(),
            Some(Subject::Reserved(n)) => format!("reserved:{n}"),
            Some(Subject::Cidr(c)) => format!("cidr:{c},reserved:world"),
            Some(Subject::Labels(l)) => l
                .iter()
                .filter(|(k, _)| !k.starts_with(NAMESPACE_LABELS_PREFIX))
                .map(|(k, v)| format!("k8s:{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The ipcache: address prefix -> identity, looked up by longest prefix; what no prefix
/// covers is `world`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpCache {
    entries: LiteMap<Ipv4Cidr, Identity>,
}

impl IpCache {
    /// Adds or replaces an entry.
    pub fn insert(&mut self, cidr: Ipv4Cidr, id: Identity) {
        self.entries.insert(cidr.network(), id);
    }

    /// A host entry (`/32`).
    pub fn insert_host(&mut self, ip: Ipv4Address, id: Identity) {
        self.insert(Ipv4Cidr::new(ip, 32), id);
    }

    /// The identity of `ip`: the longest matching prefix's, else `world`.
    pub fn lookup(&self, ip: Ipv4Address) -> Identity {
        self.entries
            .iter()
            .filter(|(c, _)| c.contains_addr(&ip))
            .max_by_key(|(c, _)| c.prefix_len())
            .map_or(WORLD, |(_, id)| *id)
    }

    /// Every entry, by prefix (`cilium bpf ipcache list`).
    pub fn entries(&self) -> impl Iterator<Item = (&Ipv4Cidr, &Identity)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn one_identity_per_label_set_from_256() {
        let mut a = Allocator::default();
        let web = a.labels(&l(&[("app", "web")]));
        let db = a.labels(&l(&[("app", "db")]));
        assert_eq!((web, db), (256, 257));
        assert_eq!(a.labels(&l(&[("app", "web")])), 256);
        assert_eq!(a.labels_text(web), "k8s:app=web");
        assert_eq!(a.labels_text(HOST), "reserved:host");
        assert_eq!(a.labels_text(REMOTE_NODE), "reserved:remote-node");
        let c = a.cidr(Ipv4Cidr::new(Ipv4Address::new(203, 0, 113, 7), 24));
        assert_eq!(c, 16_777_216);
        assert_eq!(a.labels_text(c), "cidr:203.0.113.0/24,reserved:world");
    }

    #[test]
    fn ipcache_longest_prefix_else_world() {
        let mut c = IpCache::default();
        c.insert(
            Ipv4Cidr::new(Ipv4Address::new(203, 0, 113, 0), 24),
            16_777_216,
        );
        c.insert(
            Ipv4Cidr::new(Ipv4Address::new(203, 0, 113, 128), 25),
            16_777_217,
        );
        c.insert_host(Ipv4Address::new(10, 244, 0, 5), 256);
        assert_eq!(c.lookup(Ipv4Address::new(10, 244, 0, 5)), 256);
        assert_eq!(c.lookup(Ipv4Address::new(203, 0, 113, 7)), 16_777_216);
        assert_eq!(c.lookup(Ipv4Address::new(203, 0, 113, 200)), 16_777_217);
        assert_eq!(c.lookup(Ipv4Address::new(8, 8, 8, 8)), WORLD);
    }
}
