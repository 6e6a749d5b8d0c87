//! The engine on a small world: each selector kind, entities, CIDRs, deny precedence, the mix
//! with Kubernetes NetworkPolicy, identity stability.

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::identity::{self, Allocator};
use super::*;
use crate::policy::{self, PodMeta, Policy, Selector};

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Address {
    Ipv4Address::new(a, b, c, d)
}

const CLIENT: [u8; 4] = [10, 244, 0, 5];
const WEB: [u8; 4] = [10, 244, 1, 20];
const OTHER: [u8; 4] = [10, 244, 0, 6];
const PROD: [u8; 4] = [10, 244, 1, 30];

fn a(o: [u8; 4]) -> Ipv4Address {
    ip(o[0], o[1], o[2], o[3])
}

fn base() -> World {
    let mut w = World::default();
    let mut pod = |o: [u8; 4], ns: &str, name: &str, app: &str, node| {
        let mut labels = Labels::new();
        labels.insert("app".into(), app.into());
        w.pods.insert(
            a(o),
            PodMeta {
                name: name.into(),
                ip: a(o),
                namespace: ns.into(),
                labels,
                ports: Vec::new(),
                node,
            },
        );
    };
    pod(CLIENT, "default", "client", "client", 0);
    pod(OTHER, "default", "other", "other", 0);
    pod(WEB, "default", "web", "web", 1);
    pod(PROD, "prod", "client", "client", 1);
    w.node_ips
        .insert(0, vec![ip(192, 168, 1, 100), ip(10, 244, 0, 1)]);
    w.node_ips
        .insert(1, vec![ip(192, 168, 1, 101), ip(10, 244, 1, 1)]);
    w
}

fn with(policies: Vec<CiliumPolicy>, k8s: Vec<Policy>) -> (World, Allocator) {
    let mut w = base();
    w.policies = k8s;
    let mut alloc = Allocator::default();
    let e = Engine::build(policies, &mut alloc, &w);
    w.cilium = Some(Box::new(e));
    (w, alloc)
}

fn flow(src: Ipv4Address, dst: Ipv4Address, dport: u16) -> Flow {
    Flow {
        src,
        dst,
        proto: 6,
        dport,
    }
}

fn allowed(w: &World, src: Ipv4Address, dst: Ipv4Address, dport: u16) -> bool {
    policy::verdict(w, &flow(src, dst, dport)).allowed
}

fn web_policy(rule: PolicyRule) -> CiliumPolicy {
    let mut p = CiliumPolicy::new(Some("default"), "web", Selector::label("app", "web"));
    p.ingress.push(rule);
    p
}

fn tcp(port: u16) -> PortRule {
    PortRule {
        ports: vec![PortProtocol {
            port,
            end_port: None,
            proto: 6,
        }],
        http: None,
    }
}

#[test]
fn identities_and_from_endpoints_in_the_policy_namespace() {
    let (w, alloc) = with(
        vec![web_policy(PolicyRule {
            peers: vec![PeerSelector::Endpoints(Selector::label("app", "client"))],
            to_ports: vec![tcp(80)],
        })],
        vec![],
    );
    let e = w.cilium.as_ref().unwrap();
    // One identity per label set (the two `client` pods differ by namespace).
    let ids: Vec<_> = [CLIENT, OTHER, WEB, PROD]
        .iter()
        .map(|o| e.pods[&a(*o)])
        .collect();
    assert!(ids.iter().all(|i| *i >= identity::FIRST_CLUSTER_LOCAL));
    assert_eq!(
        ids.iter()
            .collect::<alloc::collections::BTreeSet<_>>()
            .len(),
        4
    );
    assert_eq!(
        alloc.labels_text(e.pods[&a(CLIENT)]),
        "k8s:app=client,k8s:io.kubernetes.pod.namespace=default"
    );
    assert!(allowed(&w, a(CLIENT), a(WEB), 80));
    assert!(!allowed(&w, a(CLIENT), a(WEB), 81), "port not in toPorts");
    assert!(!allowed(&w, a(OTHER), a(WEB), 80), "other labels");
    assert!(
        !allowed(&w, a(PROD), a(WEB), 80),
        "app=client of another namespace"
    );
    // The endpoint not selected is not enforced.
    assert!(allowed(&w, a(WEB), a(OTHER), 9));
    let v = policy::verdict(&w, &flow(a(CLIENT), a(WEB), 80));
    assert!(
        v.ingress.details[0].contains("identities: 10.244.1.20 is"),
        "{:?}",
        v.ingress.details
    );
    assert!(
        v.ingress.reason.contains("allowed by policy map entry"),
        "{}",
        v.ingress.reason
    );
}

#[test]
fn namespace_key_and_clusterwide() {
    let mut sel = Selector::label("app", "client");
    sel = sel.and_label(identity::NAMESPACE_LABEL, "prod");
    let (w, _) = with(
        vec![web_policy(PolicyRule {
            peers: vec![PeerSelector::Endpoints(sel)],
            to_ports: vec![],
        })],
        vec![],
    );
    assert!(allowed(&w, a(PROD), a(WEB), 80));
    assert!(!allowed(&w, a(CLIENT), a(WEB), 80));
    // A clusterwide policy: `app=client` of every namespace.
    let mut p = CiliumPolicy::new(None, "cw", Selector::label("app", "web"));
    p.ingress.push(PolicyRule {
        peers: vec![PeerSelector::Endpoints(Selector::label("app", "client"))],
        to_ports: vec![],
    });
    let (w, _) = with(vec![p], vec![]);
    assert!(allowed(&w, a(PROD), a(WEB), 80));
    assert!(allowed(&w, a(CLIENT), a(WEB), 80));
    assert!(!allowed(&w, a(OTHER), a(WEB), 80));
}

#[test]
fn entities_and_host() {
    let (w, _) = with(
        vec![web_policy(PolicyRule {
            peers: vec![PeerSelector::Entity(Entity::RemoteNode)],
            to_ports: vec![],
        })],
        vec![],
    );
    // web runs on node 1: node 0 is a remote node, node 1 the host (always allowed).
    assert!(allowed(&w, ip(192, 168, 1, 100), a(WEB), 80));
    assert!(allowed(&w, ip(192, 168, 1, 101), a(WEB), 80));
    assert!(!allowed(&w, a(CLIENT), a(WEB), 80));
    assert!(!allowed(&w, ip(203, 0, 113, 10), a(WEB), 80));
    for (ent, world_ok, pod_ok) in [
        (Entity::World, true, false),
        (Entity::Cluster, false, true),
        (Entity::All, true, true),
        (Entity::Host, false, false),
    ] {
        let (w, _) = with(
            vec![web_policy(PolicyRule {
                peers: vec![PeerSelector::Entity(ent)],
                to_ports: vec![],
            })],
            vec![],
        );
        assert_eq!(
            allowed(&w, ip(203, 0, 113, 10), a(WEB), 80),
            world_ok,
            "{ent:?}"
        );
        assert_eq!(allowed(&w, a(CLIENT), a(WEB), 80), pod_ok, "{ent:?}");
    }
}

#[test]
fn cidr_with_except_and_not_pods() {
    let cidr = |a, b, c, d, l| Ipv4Cidr::new(ip(a, b, c, d), l);
    let mut p = CiliumPolicy::new(Some("default"), "out", Selector::label("app", "client"));
    p.egress.push(PolicyRule {
        peers: vec![PeerSelector::Cidr {
            cidr: cidr(203, 0, 113, 0, 24),
            except: vec![cidr(203, 0, 113, 128, 25)],
        }],
        to_ports: vec![],
    });
    p.egress.push(PolicyRule {
        peers: vec![PeerSelector::Cidr {
            cidr: cidr(10, 0, 0, 0, 8),
            except: vec![],
        }],
        to_ports: vec![],
    });
    let (w, alloc) = with(vec![p], vec![]);
    assert!(allowed(&w, a(CLIENT), ip(203, 0, 113, 10), 443));
    assert!(
        !allowed(&w, a(CLIENT), ip(203, 0, 113, 200), 443),
        "in except"
    );
    assert!(!allowed(&w, a(CLIENT), ip(8, 8, 8, 8), 443), "world");
    // 10/8 covers the pod CIDR, but pods have their own identity: CIDR rules do not select them.
    assert!(!allowed(&w, a(CLIENT), a(WEB), 80));
    assert!(allowed(&w, a(CLIENT), ip(10, 1, 2, 3), 80));
    let e = w.cilium.as_ref().unwrap();
    assert_eq!(
        e.identity_of(&w, ip(203, 0, 113, 10), 0),
        identity::FIRST_LOCAL_CIDR
    );
    assert_eq!(
        alloc.labels_text(identity::FIRST_LOCAL_CIDR),
        "cidr:203.0.113.0/24,reserved:world"
    );
}

#[test]
fn deny_takes_precedence() {
    let mut p = web_policy(PolicyRule {
        peers: vec![PeerSelector::Entity(Entity::All)],
        to_ports: vec![],
    });
    p.ingress_deny.push(PolicyRule {
        peers: vec![PeerSelector::Endpoints(Selector::label("app", "other"))],
        to_ports: vec![tcp(80)],
    });
    let (w, _) = with(vec![p], vec![]);
    assert!(allowed(&w, a(CLIENT), a(WEB), 80));
    assert!(!allowed(&w, a(OTHER), a(WEB), 80));
    assert!(allowed(&w, a(OTHER), a(WEB), 81));
    let v = policy::verdict(&w, &flow(a(OTHER), a(WEB), 80));
    assert!(
        v.ingress.reason.contains("deny wins"),
        "{}",
        v.ingress.reason
    );
    // A deny-only policy makes the endpoint default deny too (enableDefaultDeny's default).
    let mut d = CiliumPolicy::new(Some("default"), "d", Selector::label("app", "web"));
    d.ingress_deny.push(PolicyRule {
        peers: vec![PeerSelector::Endpoints(Selector::label("app", "other"))],
        to_ports: vec![],
    });
    let (w, _) = with(vec![d], vec![]);
    assert!(!allowed(&w, a(CLIENT), a(WEB), 80));
}

#[test]
fn with_kubernetes_network_policy() {
    // A NetworkPolicy lets `other` in; a Cilium rule lets `client` in: both get in.
    let mut np = Policy::new("default", "np", Selector::label("app", "web"));
    np.ingress.push(policy::Rule {
        peers: vec![policy::Peer::Pods {
            ns_selector: None,
            pod_selector: Some(Selector::label("app", "other")),
        }],
        ports: vec![],
    });
    let cnp = web_policy(PolicyRule {
        peers: vec![PeerSelector::Endpoints(Selector::label("app", "client"))],
        to_ports: vec![],
    });
    let (w, _) = with(vec![cnp.clone()], vec![np.clone()]);
    assert!(allowed(&w, a(CLIENT), a(WEB), 80));
    assert!(allowed(&w, a(OTHER), a(WEB), 80));
    assert!(!allowed(&w, a(PROD), a(WEB), 80));
    // A Cilium deny beats the NetworkPolicy's allow.
    let mut deny = CiliumPolicy::new(Some("default"), "deny", Selector::label("app", "web"));
    deny.ingress_deny.push(PolicyRule {
        peers: vec![PeerSelector::Endpoints(Selector::label("app", "other"))],
        to_ports: vec![],
    });
    let (w, _) = with(vec![deny], vec![np]);
    assert!(!allowed(&w, a(OTHER), a(WEB), 80));
    // The NetworkPolicy alone isolates `web`: `client` is not allowed by it.
    assert!(!allowed(&w, a(CLIENT), a(WEB), 80));
}

#[test]
fn identity_survives_a_new_address_and_changes_with_labels() {
    let mut alloc = Allocator::default();
    let w = base();
    let e = Engine::build(vec![], &mut alloc, &w);
    let web = e.pods[&a(WEB)];
    // The pod comes back with another address: same labels, same identity.
    let mut w2 = base();
    let mut meta = w2.pods.remove(&a(WEB)).unwrap();
    meta.ip = ip(10, 244, 1, 21);
    w2.pods.insert(meta.ip, meta.clone());
    let e2 = Engine::build(vec![], &mut alloc, &w2);
    assert_eq!(e2.pods[&ip(10, 244, 1, 21)], web);
    // Relabelled: a new identity.
    meta.labels.insert("version".to_string(), "v2".to_string());
    w2.pods.insert(meta.ip, meta);
    let e3 = Engine::build(vec![], &mut alloc, &w2);
    assert_ne!(e3.pods[&ip(10, 244, 1, 21)], web);
}

#[test]
fn l7_rules_redirect_to_the_proxy() {
    let mut pr = tcp(80);
    pr.http = Some(vec![HttpRule {
        method: Some("GET".into()),
        path: Some("/public".into()),
        headers: vec![],
        source: "x".into(),
    }]);
    let (w, alloc) = with(
        vec![web_policy(PolicyRule {
            peers: vec![PeerSelector::Endpoints(Selector::label("app", "client"))],
            to_ports: vec![pr],
        })],
        vec![],
    );
    let v = policy::verdict(&w, &flow(a(CLIENT), a(WEB), 80));
    assert!(v.allowed);
    let l7 = v.ingress.l7.expect("redirected");
    assert_eq!(l7.proxy_port, policymap::PROXY_PORT_INGRESS);
    assert!(!l7.allow_all);
    assert!(v.egress.l7.is_none());
    let map = w
        .cilium
        .as_ref()
        .unwrap()
        .map_of(a(WEB))
        .unwrap()
        .render(&alloc);
    assert!(map.contains("80/TCP       10000"), "{map}");
    assert!(map.contains("reserved:host"), "{map}");
}
