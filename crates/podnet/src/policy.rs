//! Kubernetes NetworkPolicy (`networking.k8s.io/v1`) as plain data, and its evaluator.
//!
//! The semantics follow the Kubernetes documentation:
//! - Default allow. A pod is isolated for ingress (egress) once any policy selecting it has
//!   Ingress (Egress) in its effective `policyTypes`; then only what some such policy's rules
//!   allow gets in (out). Policies are additive (a union of what they allow).
//! - `policyTypes` omitted: Ingress always, Egress when the policy has egress rules.
//! - An empty podSelector selects every pod of the policy's namespace.
//! - A peer with both namespaceSelector and podSelector selects pods matching both; two peers
//!   select pods matching either. A peer with only a podSelector selects pods of the policy's
//!   namespace; with only a namespaceSelector, every pod of the matching namespaces.
//! - ipBlock matches by IP (pod IPs included), minus its `except` ranges.
//! - Ports by number (with `endPort`, a range) or by the destination pod's named container
//!   port; protocol defaults to TCP; a rule without ports allows every port and protocol; a
//!   rule without peers allows every peer.
//! - A connection needs the source's egress and the destination's ingress; the destination
//!   pod's own node may always reach it.
//!
//! Replies of allowed connections and enforcement after DNAT are the dataplane's business
//! ([`crate::dataplane`]).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// Labels of a pod or namespace, in key order: a flat sorted map (a few entries each, one
/// map per pod; a B-tree's first node is about 550 bytes for one label, and each B-tree
/// type is more code in the wasm module).
pub type Labels = litemap::LiteMap<String, String>;

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A `matchExpressions` operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// The label is present and its value is one of the values.
    In,
    /// The label is absent, or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub op: Op,
    /// Values (In / NotIn).
    pub values: Vec<String>,
}

/// A label selector: every `matchLabels` pair and every `matchExpressions` entry must hold
/// (an empty selector selects everything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// `matchLabels`.
    pub match_labels: Labels,
    /// `matchExpressions`.
    pub match_expressions: Vec<Requirement>,
}

impl Selector {
    /// The empty selector (`{}`): selects everything.
    pub fn all() -> Self {
        Selector::default()
    }

    /// A selector with one `matchLabels` pair.
    pub fn label(key: &str, value: &str) -> Self {
        Selector::all().and_label(key, value)
    }

    /// Adds a `matchLabels` pair.
    pub fn and_label(mut self, key: &str, value: &str) -> Self {
        self.match_labels.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds a `matchExpressions` entry.
    pub fn and_expr(mut self, key: &str, op: Op, values: &[&str]) -> Self {
        self.match_expressions.push(Requirement {
            key: key.to_string(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        });
        self
    }

    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.op {
                    Op::In => v.is_some_and(|v| r.values.contains(v)),
                    Op::NotIn => v.is_none_or(|v| !r.values.contains(v)),
                    Op::Exists => v.is_some(),
                    Op::DoesNotExist => v.is_none(),
                }
            })
    }
}

/// A NetworkPolicy port protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }
}

/// A port given by number or by a container port's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSpec {
    /// A number.
    Number(u16),
    /// A named container port of the destination pod.
    Name(String),
}

/// One entry of a rule's `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRule {
    /// Protocol (TCP when omitted).
    pub protocol: Proto,
    /// The port (`None`: every port of the protocol).
    pub port: Option<PortSpec>,
    /// With a numeric port: the last port of the range.
    pub end_port: Option<u16>,
}

/// One entry of a rule's `from` / `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Pods by namespaceSelector and/or podSelector (both given: AND).
    Pods {
        /// `namespaceSelector` (`None`: the policy's own namespace).
        ns_selector: Option<Selector>,
        /// `podSelector` (`None`: every pod of the selected namespaces).
        pod_selector: Option<Selector>,
    },
    /// `ipBlock`.
    IpBlock {
        /// The block.
        cidr: Ipv4Cidr,
        /// Ranges carved out of it.
        except: Vec<Ipv4Cidr>,
    },
}

/// One ingress or egress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// `from` / `to` (empty: every peer).
    pub peers: Vec<Peer>,
    /// `ports` (empty: every port).
    pub ports: Vec<PortRule>,
}

/// Effective policy types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Types {
    /// Ingress.
    pub ingress: bool,
    /// Egress.
    pub egress: bool,
}

/// A NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `podSelector` (empty: every pod of the namespace).
    pub pod_selector: Selector,
    /// Ingress rules.
    pub ingress: Vec<Rule>,
    /// Egress rules.
    pub egress: Vec<Rule>,
    /// `policyTypes` (`None`: omitted).
    pub policy_types: Option<Types>,
}

impl Policy {
    /// A policy selecting `pod_selector` in `namespace`, without rules or `policyTypes`
    /// (as is: it isolates the selected pods for ingress).
    pub fn new(namespace: &str, name: &str, pod_selector: Selector) -> Self {
        Policy {
            namespace: namespace.to_string(),
            name: name.to_string(),
            pod_selector,
            ingress: Vec::new(),
            egress: Vec::new(),
            policy_types: None,
        }
    }

    /// The effective types: `policyTypes`, or when omitted Ingress plus Egress if the policy
    /// has egress rules.
    pub fn types(&self) -> Types {
        self.policy_types.unwrap_or(Types {
            ingress: true,
            egress: !self.egress.is_empty(),
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A named container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPort {
    /// Name.
    pub name: String,
    /// Protocol.
    pub protocol: Proto,
    /// Number.
    pub port: u16,
}

/// What policies need to know of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMeta {
    /// Name.
    pub name: String,
    /// Address.
    pub ip: Ipv4Address,
    /// Namespace.
    pub namespace: String,
    /// Labels.
    pub labels: Labels,
    /// Named container ports.
    pub ports: Vec<NamedPort>,
    /// Index of its node.
    pub node: u32,
}

/// Everything a verdict depends on: policies, pods, namespace labels and node addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct World {
    /// Policies.
    pub policies: Vec<Policy>,
    /// Pods by address.
    pub pods: BTreeMap<Ipv4Address, PodMeta>,
    /// Namespace labels (`kubernetes.io/metadata.name` is implied).
    pub namespaces: BTreeMap<String, Labels>,
    /// Each node's own addresses (a flat sorted map: one entry per node, added in order).
    pub node_ips: litemap::LiteMap<u32, Vec<Ipv4Address>>,
    /// Cilium's policies and identities (`None`: no Cilium policy exists; verdicts are
    /// Kubernetes NetworkPolicy's alone).
    pub cilium: Option<alloc::boxed::Box<crate::cilium::Engine>>,
}

/// A connection as policies see it: after DNAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Source address.
    pub src: Ipv4Address,
    /// Destination address.
    pub dst: Ipv4Address,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port (TCP/UDP/SCTP).
    pub dport: u16,
}

/// The verdict of one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirVerdict {
    /// `namespace/name` of the pod whose policies were consulted (`None`: not a pod).
    pub pod: Option<String>,
    /// Policies selecting that pod (`namespace/name`).
    pub selecting: Vec<String>,
    /// Whether the pod is isolated in this direction.
    pub isolated: bool,
    /// The first policy and rule index that allowed it.
    pub allowed_by: Option<(String, usize)>,
    /// Whether it is allowed.
    pub allowed: bool,
    /// Why, in words.
    pub reason: String,
    /// More lines for `podnet explain` (Cilium: identities and policy map entries).
    pub details: Vec<String>,
    /// Cilium: the connection is allowed at L3/L4 and redirected to the node's L7 proxy.
    pub l7: Option<crate::cilium::L7Redirect>,
}

/// The verdict on a connection: the source's egress and the destination's ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Both directions allow it.
    pub allowed: bool,
    /// Egress of the source.
    pub egress: DirVerdict,
    /// Ingress of the destination.
    pub ingress: DirVerdict,
}

impl Verdict {
    /// A one-line explanation.
    pub fn explanation(&self) -> String {
        format!(
            "egress: {}; ingress: {}",
            self.egress.reason, self.ingress.reason
        )
    }
}

fn in_cidr(c: &Ipv4Cidr, ip: Ipv4Address) -> bool {
    c.contains_addr(&ip)
}

impl World {
    /// A namespace's labels, with `kubernetes.io/metadata.name` set.
    pub fn namespace_labels(&self, ns: &str) -> Labels {
        let mut l = self.namespaces.get(ns).cloned().unwrap_or_default();
        l.insert(NAMESPACE_NAME_LABEL.to_string(), ns.to_string());
        l
    }

    fn peer_matches(&self, peer: &Peer, policy_ns: &str, ip: Ipv4Address) -> bool {
        match peer {
            Peer::IpBlock { cidr, except } => {
                in_cidr(cidr, ip) && !except.iter().any(|e| in_cidr(e, ip))
            }
            Peer::Pods {
                ns_selector,
                pod_selector,
            } => {
                let Some(pod) = self.pods.get(&ip) else {
                    return false;
                };
                if ns_selector.is_none() && pod_selector.is_none() {
                    return false;
                }
                let ns_ok = match ns_selector {
                    None => pod.namespace == policy_ns,
                    Some(s) => s.matches(&self.namespace_labels(&pod.namespace)),
                };
                ns_ok && pod_selector.as_ref().is_none_or(|s| s.matches(&pod.labels))
            }
        }
    }

    fn port_matches(&self, rule: &PortRule, flow: &Flow) -> bool {
        if rule.protocol.number() != flow.proto {
            return false;
        }
        match &rule.port {
            None => true,
            Some(PortSpec::Number(p)) => match rule.end_port {
                None => flow.dport == *p,
                Some(e) => (*p..=e).contains(&flow.dport),
            },
            Some(PortSpec::Name(n)) => self.pods.get(&flow.dst).is_some_and(|d| {
                d.ports.iter().any(|np| {
                    np.name == *n && np.protocol == rule.protocol && np.port == flow.dport
                })
            }),
        }
    }

    fn rule_matches(&self, rule: &Rule, policy_ns: &str, peer: Ipv4Address, flow: &Flow) -> bool {
        (rule.ports.is_empty() || rule.ports.iter().any(|p| self.port_matches(p, flow)))
            && (rule.peers.is_empty()
                || rule
                    .peers
                    .iter()
                    .any(|p| self.peer_matches(p, policy_ns, peer)))
    }

    fn direction(&self, egress: bool, flow: &Flow) -> DirVerdict {
        match &self.cilium {
            Some(c) => c.direction(self, egress, flow),
            None => self.k8s_direction(egress, flow),
        }
    }

    /// Kubernetes NetworkPolicy's verdict of one direction, alone.
    pub fn k8s_direction(&self, egress: bool, flow: &Flow) -> DirVerdict {
        let (own, peer) = if egress {
            (flow.src, flow.dst)
        } else {
            (flow.dst, flow.src)
        };
        let dir = if egress { "egress" } else { "ingress" };
        let Some(pod) = self.pods.get(&own) else {
            return DirVerdict {
                pod: None,
                selecting: Vec::new(),
                isolated: false,
                allowed_by: None,
                allowed: true,
                reason: format!("{own} is not a pod"),
                details: Vec::new(),
                l7: None,
            };
        };
        let key = format!("{}/{}", pod.namespace, pod.name);
        let selecting: Vec<&Policy> = self
            .policies
            .iter()
            .filter(|p| p.namespace == pod.namespace && p.pod_selector.matches(&pod.labels))
            .collect();
        let names: Vec<String> = selecting.iter().map(|p| p.key()).collect();
        let isolating: Vec<&&Policy> = selecting
            .iter()
            .filter(|p| {
                let t = p.types();
                if egress {
                    t.egress
                } else {
                    t.ingress
                }
            })
            .collect();
        let mut v = DirVerdict {
            pod: Some(key.clone()),
            selecting: names,
            isolated: !isolating.is_empty(),
            allowed_by: None,
            allowed: true,
            reason: String::new(),
            details: Vec::new(),
            l7: None,
        };
        if isolating.is_empty() {
            v.reason = if v.selecting.is_empty() {
                format!("{key} selected by no policy, not isolated for {dir}")
            } else {
                format!(
                    "{key} selected by {} but none has {dir} in policyTypes: not isolated",
                    v.selecting.join(", ")
                )
            };
            return v;
        }
        if !egress
            && self
                .node_ips
                .get(&pod.node)
                .is_some_and(|ips| ips.contains(&flow.src))
        {
            v.reason = format!("{key} isolated for {dir}; {} is its own node", flow.src);
            return v;
        }
        for p in &isolating {
            let rules = if egress { &p.egress } else { &p.ingress };
            if let Some(i) = rules
                .iter()
                .position(|r| self.rule_matches(r, &p.namespace, peer, flow))
            {
                v.reason = format!(
                    "{key} isolated for {dir} (selected by {}); allowed by {} {dir} rule {i}",
                    v.selecting.join(", "),
                    p.key()
                );
                v.allowed_by = Some((p.key(), i));
                return v;
            }
        }
        v.allowed = false;
        v.reason = format!(
            "{key} isolated for {dir} (selected by {}); no policy allows it",
            v.selecting.join(", ")
        );
        v
    }

    /// The source pod's egress verdict.
    pub fn egress(&self, flow: &Flow) -> DirVerdict {
        self.direction(true, flow)
    }

    /// The destination pod's ingress verdict.
    pub fn ingress(&self, flow: &Flow) -> DirVerdict {
        self.direction(false, flow)
    }
}

/// The verdict on `flow` (after DNAT): egress of the source and ingress of the destination.
pub fn verdict(world: &World, flow: &Flow) -> Verdict {
    let egress = world.egress(flow);
    let ingress = world.ingress(flow);
    Verdict {
        allowed: egress.allowed && ingress.allowed,
        egress,
        ingress,
    }
}
