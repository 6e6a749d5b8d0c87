//! A NetworkPolicy evaluator written only from the Kubernetes documentation
//! (networking.k8s.io/v1 NetworkPolicy, "Network Policies" concept page), shared by the
//! differential tests of the engine's evaluator (`crates/podnet/tests/policy_diff.rs`) and of
//! the connectivity matrix (`crates/podnet-scenario/tests/matrix_diff.rs`).

#![allow(dead_code)]

use podnet::policy::{
    Flow, Labels, Op, Peer, Policy, PortRule, PortSpec, Proto, Rule, Selector, World,
};
use smoltcp::wire::Ipv4Address;

// ---------------------------------------------------------------------------------------
// The reference, from the documentation's sentences.
// ---------------------------------------------------------------------------------------

/// "A label selector ... The requirements are ANDed. An empty label selector matches all
/// objects." In: key present with a listed value; NotIn: absent or not listed; Exists;
/// DoesNotExist.
fn ref_selects(sel: &Selector, labels: &Labels) -> bool {
    for (k, v) in &sel.match_labels {
        match labels.get(k) {
            Some(have) if have == v => {}
            _ => return false,
        }
    }
    for r in &sel.match_expressions {
        let have = labels.get(&r.key);
        let listed = have.map(|h| r.values.iter().any(|v| v == h));
        let ok = match r.op {
            Op::In => listed == Some(true),
            Op::NotIn => listed != Some(true),
            Op::Exists => have.is_some(),
            Op::DoesNotExist => have.is_none(),
        };
        if !ok {
            return false;
        }
    }
    true
}

fn ref_in_block(net: Ipv4Address, len: u8, ip: Ipv4Address) -> bool {
    let mask: u32 = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(net) & mask) == (u32::from(ip) & mask)
}

pub struct Ref<'a> {
    pub w: &'a World,
}

impl Ref<'_> {
    fn ns_labels(&self, ns: &str) -> Labels {
        // "The Kubernetes control plane sets an immutable label kubernetes.io/metadata.name on
        // all namespaces, the value of the label is the namespace name."
        let mut l = self.w.namespaces.get(ns).cloned().unwrap_or_default();
        l.insert("kubernetes.io/metadata.name".into(), ns.into());
        l
    }

    /// "podSelector: selects particular Pods in the same namespace as the NetworkPolicy";
    /// "namespaceSelector: selects particular namespaces for which all Pods should be
    /// allowed"; "namespaceSelector and podSelector: A single to/from entry that specifies both
    /// ... selects particular Pods within particular namespaces"; "ipBlock: selects particular
    /// IP CIDR ranges", "except".
    fn peer(&self, peer: &Peer, policy_ns: &str, addr: Ipv4Address) -> bool {
        match peer {
            Peer::IpBlock { cidr, except } => {
                ref_in_block(cidr.address(), cidr.prefix_len(), addr)
                    && except
                        .iter()
                        .all(|e| !ref_in_block(e.address(), e.prefix_len(), addr))
            }
            Peer::Pods {
                ns_selector,
                pod_selector,
            } => {
                let Some(p) = self.w.pods.values().find(|p| p.ip == addr) else {
                    return false;
                };
                let ns_ok = if let Some(s) = ns_selector {
                    ref_selects(s, &self.ns_labels(&p.namespace))
                } else {
                    p.namespace == policy_ns
                };
                let pod_ok = match pod_selector {
                    Some(s) => ref_selects(s, &p.labels),
                    None => true,
                };
                ns_ok && pod_ok
            }
        }
    }

    /// "protocol (TCP, UDP, or SCTP) ... If not specified, this field defaults to TCP";
    /// "port ... can either be a numerical or named port on a pod. If this field is not
    /// provided, this matches all port names and numbers"; "endPort indicates that the range
    /// of ports from port to endPort if set, inclusive".
    fn port(&self, pr: &PortRule, f: &Flow) -> bool {
        let num = match pr.protocol {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        };
        if f.proto != num {
            return false;
        }
        match (&pr.port, pr.end_port) {
            (None, _) => true,
            (Some(PortSpec::Number(p)), None) => *p == f.dport,
            (Some(PortSpec::Number(p)), Some(e)) => *p <= f.dport && f.dport <= e,
            (Some(PortSpec::Name(n)), _) => match self.w.pods.values().find(|p| p.ip == f.dst) {
                Some(dst) => dst
                    .ports
                    .iter()
                    .any(|c| &c.name == n && c.protocol == pr.protocol && c.port == f.dport),
                None => false,
            },
        }
    }

    /// "If this field is empty or missing, this rule matches all sources/destinations";
    /// "If this field is empty or missing, this rule matches all ports".
    fn rule(&self, r: &Rule, policy_ns: &str, peer: Ipv4Address, f: &Flow) -> bool {
        let peers_ok = r.peers.is_empty() || r.peers.iter().any(|p| self.peer(p, policy_ns, peer));
        let ports_ok = r.ports.is_empty() || r.ports.iter().any(|p| self.port(p, f));
        peers_ok && ports_ok
    }

    /// "If no policyTypes are specified on a NetworkPolicy then by default Ingress will always
    /// be set and Egress will be set if the NetworkPolicy has any egress rules."
    fn has_type(p: &Policy, egress: bool) -> bool {
        match p.policy_types {
            Some(t) if egress => t.egress,
            Some(t) => t.ingress,
            None if egress => !p.egress.is_empty(),
            None => true,
        }
    }

    /// "By default, a pod is non-isolated for egress/ingress"; "a pod is isolated for
    /// ingress if there is any NetworkPolicy that both selects the pod and has Ingress in its
    /// policyTypes"; "the only allowed connections ... are those allowed by the ... list of
    /// some NetworkPolicy that applies"; "the effects of those policies are additive".
    /// "traffic to and from the node where a Pod is running is always allowed" (for ingress).
    fn dir_allows(&self, egress: bool, f: &Flow) -> bool {
        let (me, other) = if egress {
            (f.src, f.dst)
        } else {
            (f.dst, f.src)
        };
        let Some(pod) = self.w.pods.values().find(|p| p.ip == me) else {
            return true;
        };
        let applying: Vec<&Policy> = self
            .w
            .policies
            .iter()
            .filter(|p| {
                p.namespace == pod.namespace
                    && ref_selects(&p.pod_selector, &pod.labels)
                    && Self::has_type(p, egress)
            })
            .collect();
        if applying.is_empty() {
            return true;
        }
        if !egress {
            if let Some(ips) = self.w.node_ips.get(&pod.node) {
                if ips.contains(&f.src) {
                    return true;
                }
            }
        }
        applying.iter().any(|p| {
            let rules = if egress { &p.egress } else { &p.ingress };
            rules.iter().any(|r| self.rule(r, &p.namespace, other, f))
        })
    }

    /// "both the egress policy on the source pod and the ingress policy on the destination
    /// pod need to allow the connection".
    pub fn allows(&self, f: &Flow) -> bool {
        self.dir_allows(true, f) && self.dir_allows(false, f)
    }
}
