//! Differential test: a small NetworkPolicy evaluator written only from the Kubernetes
//! documentation (networking.k8s.io/v1 NetworkPolicy, "Network Policies" concept page),
//! against the engine's, over random policies and flows. Zero disagreement allowed.

use std::collections::BTreeMap;

use podnet::policy::{
    verdict, Flow, Labels, NamedPort, Op, Peer, PodMeta, Policy, PortRule, PortSpec, Proto, Rule,
    Selector, Types, World,
};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

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

struct Ref<'a> {
    w: &'a World,
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
    fn allows(&self, f: &Flow) -> bool {
        self.dir_allows(true, f) && self.dir_allows(false, f)
    }
}

// ---------------------------------------------------------------------------------------
// Random cases.
// ---------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn word(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }
}

const NS: [&str; 3] = ["a", "b", "c"];
const KEYS: [&str; 2] = ["app", "tier"];
const VALS: [&str; 3] = ["x", "y", "z"];
const PORTS: [u16; 6] = [53, 80, 81, 443, 8080, 9000];
const NAMES: [&str; 3] = ["http", "dns", "metrics"];

fn addr(last: u8) -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, last)
}

fn rand_labels(r: &mut Rng) -> Labels {
    let mut l = BTreeMap::new();
    for k in KEYS {
        if r.chance(60) {
            l.insert(k.to_string(), r.word(&VALS).to_string());
        }
    }
    l
}

fn rand_selector(r: &mut Rng) -> Selector {
    let mut s = Selector::all();
    if r.chance(40) {
        s = s.and_label(r.word(&KEYS), r.word(&VALS));
    }
    if r.chance(30) {
        let op = *r.pick(&[Op::In, Op::NotIn, Op::Exists, Op::DoesNotExist]);
        let n = r.below(3);
        let vals: Vec<&str> = (0..n).map(|_| r.word(&VALS)).collect();
        s = s.and_expr(r.word(&KEYS), op, &vals);
    }
    s
}

fn rand_ns_selector(r: &mut Rng) -> Selector {
    if r.chance(30) {
        Selector::label("kubernetes.io/metadata.name", r.word(&NS))
    } else {
        rand_selector(r)
    }
}

fn rand_cidr(r: &mut Rng) -> Ipv4Cidr {
    let len = *r.pick(&[0u8, 28, 29, 30, 31, 32, 32]);
    Ipv4Cidr::new(addr(r.below(16) as u8), len)
}

fn rand_peer(r: &mut Rng) -> Peer {
    match r.below(4) {
        0 => {
            let cidr = rand_cidr(r);
            let except = (0..r.below(3)).map(|_| rand_cidr(r)).collect();
            Peer::IpBlock { cidr, except }
        }
        1 => Peer::Pods {
            ns_selector: Some(rand_ns_selector(r)),
            pod_selector: None,
        },
        2 => Peer::Pods {
            ns_selector: None,
            pod_selector: Some(rand_selector(r)),
        },
        _ => Peer::Pods {
            ns_selector: Some(rand_ns_selector(r)),
            pod_selector: Some(rand_selector(r)),
        },
    }
}

fn rand_port(r: &mut Rng) -> PortRule {
    let protocol = *r.pick(&[Proto::Tcp, Proto::Tcp, Proto::Udp, Proto::Sctp]);
    match r.below(4) {
        0 => PortRule {
            protocol,
            port: None,
            end_port: None,
        },
        1 => PortRule {
            protocol,
            port: Some(PortSpec::Name(r.word(&NAMES).to_string())),
            end_port: None,
        },
        2 => {
            let p = *r.pick(&PORTS);
            PortRule {
                protocol,
                port: Some(PortSpec::Number(p)),
                end_port: Some(p + r.below(500) as u16),
            }
        }
        _ => PortRule {
            protocol,
            port: Some(PortSpec::Number(*r.pick(&PORTS))),
            end_port: None,
        },
    }
}

fn rand_rules(r: &mut Rng) -> Vec<Rule> {
    (0..r.below(3))
        .map(|_| Rule {
            peers: (0..r.below(3)).map(|_| rand_peer(r)).collect(),
            ports: (0..r.below(3)).map(|_| rand_port(r)).collect(),
        })
        .collect()
}

fn rand_world(r: &mut Rng) -> World {
    let mut w = World::default();
    for i in 0..r.below(6) + 2 {
        let ip = addr(i as u8 + 1);
        let mut ports = Vec::new();
        for n in NAMES {
            if r.chance(50) {
                ports.push(NamedPort {
                    name: n.to_string(),
                    protocol: *r.pick(&[Proto::Tcp, Proto::Udp]),
                    port: *r.pick(&PORTS),
                });
            }
        }
        let meta = PodMeta {
            name: format!("p{i}"),
            ip,
            namespace: r.word(&NS).to_string(),
            labels: rand_labels(r),
            ports,
            node: r.below(2) as u32,
        };
        w.pods.insert(ip, meta);
    }
    for ns in NS {
        if r.chance(60) {
            w.namespaces.insert(ns.to_string(), rand_labels(r));
        }
    }
    w.node_ips.insert(0, vec![addr(100), addr(14)]);
    w.node_ips.insert(1, vec![addr(101), addr(15)]);
    for i in 0..r.below(4) + 1 {
        let mut p = Policy::new(r.word(&NS), &format!("pol{i}"), rand_selector(r));
        p.ingress = rand_rules(r);
        p.egress = rand_rules(r);
        if r.chance(50) {
            p.policy_types = Some(Types {
                ingress: r.chance(60),
                egress: r.chance(60),
            });
        }
        w.policies.push(p);
    }
    w
}

fn rand_ip(r: &mut Rng) -> Ipv4Address {
    match r.below(10) {
        0 => addr(100 + r.below(2) as u8),
        1 => Ipv4Address::new(8, 8, 8, 8),
        2 => addr(r.below(16) as u8),
        _ => addr(1 + r.below(8) as u8),
    }
}

#[test]
fn engine_agrees_with_the_documentation_reference() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut cases, mut denied, mut isolated) = (0u32, 0u32, 0u32);
    for _ in 0..4_000 {
        let w = rand_world(&mut r);
        let reference = Ref { w: &w };
        for _ in 0..5 {
            let f = Flow {
                src: rand_ip(&mut r),
                dst: rand_ip(&mut r),
                proto: *r.pick(&[6, 6, 17, 132, 1]),
                dport: *r.pick(&PORTS),
            };
            let got = verdict(&w, &f);
            let want = reference.allows(&f);
            assert_eq!(
                got.allowed,
                want,
                "case {cases}: flow {f:?}\nengine: {}\nworld: {w:#?}",
                got.explanation()
            );
            cases += 1;
            denied += u32::from(!want);
            isolated += u32::from(got.ingress.isolated || got.egress.isolated);
        }
    }
    assert!(cases >= 10_000);
    // The cases exercise both answers.
    assert!(
        denied > cases / 10 && denied < cases * 9 / 10,
        "{denied}/{cases}"
    );
    assert!(isolated > cases / 5, "{isolated}/{cases}");
    println!("{cases} cases, {denied} denied, {isolated} with an isolated pod");
}
