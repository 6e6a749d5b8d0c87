//! Differential test: a small NetworkPolicy evaluator written only from the Kubernetes
//! documentation (networking.k8s.io/v1 NetworkPolicy, "Network Policies" concept page),
//! against the engine's, over random policies and flows. Zero disagreement allowed.

use podnet::policy::{
    verdict, Flow, Labels, NamedPort, Op, Peer, PodMeta, Policy, PortRule, PortSpec, Proto, Rule,
    Selector, Types, World,
};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

#[path = "support/netpol_ref.rs"]
mod netpol_ref;
use netpol_ref::Ref;

// ---------------------------------------------------------------------------------------
// Random cases.
// ---------------------------------------------------------------------------------------

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

const NS: [&str; 3] = ["a", "b", "c"];
const KEYS: [&str; 2] = ["app", "tier"];
const VALS: [&str; 3] = ["x", "y", "z"];
const PORTS: [u16; 6] = [53, 80, 81, 443, 8080, 9000];
const NAMES: [&str; 3] = ["http", "dns", "metrics"];

fn addr(last: u8) -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, last)
}

fn rand_labels(r: &mut Rng) -> Labels {
    let mut l = Labels::new();
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
