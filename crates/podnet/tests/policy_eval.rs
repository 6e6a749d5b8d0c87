//! The NetworkPolicy evaluator against the Kubernetes documentation's statements, one test
//! per statement.

use podnet::policy::{
    verdict, Flow, Labels, NamedPort, Op, Peer, PodMeta, Policy, PortRule, PortSpec, Proto, Rule,
    Selector, Types, World,
};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

fn ip(last: u8) -> Ipv4Address {
    Ipv4Address::new(10, 244, 0, last)
}

fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Pods: .1 default/web app=web (port http=80/TCP, dns=53/UDP) on node 0, .2 default/cl
/// role=client on node 1, .3 prod/cl role=client on node 1, .4 prod/db app=db on node 0.
fn world(policies: Vec<Policy>) -> World {
    let mut w = World {
        policies,
        ..World::default()
    };
    let mut pod = |last, ns: &str, name: &str, l: &[(&str, &str)], node| {
        w.pods.insert(
            ip(last),
            PodMeta {
                name: name.into(),
                ip: ip(last),
                namespace: ns.into(),
                labels: labels(l),
                ports: vec![
                    NamedPort {
                        name: "http".into(),
                        protocol: Proto::Tcp,
                        port: 80,
                    },
                    NamedPort {
                        name: "dns".into(),
                        protocol: Proto::Udp,
                        port: 53,
                    },
                ],
                node,
            },
        );
    };
    pod(1, "default", "web", &[("app", "web")], 0);
    pod(2, "default", "cl", &[("role", "client")], 1);
    pod(3, "prod", "cl", &[("role", "client")], 1);
    pod(4, "prod", "db", &[("app", "db")], 0);
    w.namespaces
        .insert("prod".into(), labels(&[("env", "prod")]));
    w.node_ips
        .insert(0, vec![Ipv4Address::new(192, 168, 1, 100), ip(254)]);
    w
}

fn tcp(src: Ipv4Address, dst: Ipv4Address, dport: u16) -> Flow {
    Flow {
        src,
        dst,
        proto: 6,
        dport,
    }
}

fn allowed(w: &World, f: Flow) -> bool {
    verdict(w, &f).allowed
}

fn web_ingress(rules: Vec<Rule>) -> Policy {
    let mut p = Policy::new("default", "web", Selector::label("app", "web"));
    p.ingress = rules;
    p
}

fn from(peers: Vec<Peer>) -> Rule {
    Rule {
        peers,
        ports: vec![],
    }
}

fn pods(ns: Option<Selector>, pod: Option<Selector>) -> Peer {
    Peer::Pods {
        ns_selector: ns,
        pod_selector: pod,
    }
}

#[test]
fn default_allow_without_policies() {
    let w = world(vec![]);
    let v = verdict(&w, &tcp(ip(2), ip(1), 80));
    assert!(v.allowed);
    assert!(!v.ingress.isolated && !v.egress.isolated);
    assert!(v.explanation().contains("selected by no policy"));
}

#[test]
fn a_policy_isolates_only_the_pods_it_selects() {
    let w = world(vec![web_ingress(vec![])]);
    assert!(!allowed(&w, tcp(ip(2), ip(1), 80)));
    assert!(allowed(&w, tcp(ip(1), ip(2), 80)), "cl is not selected");
    let v = verdict(&w, &tcp(ip(2), ip(1), 80));
    assert_eq!(v.ingress.selecting, vec!["default/web".to_string()]);
    assert!(v.ingress.reason.contains("no policy allows"));
}

#[test]
fn isolation_is_per_direction() {
    // Ingress-only policy: web's egress stays open.
    let w = world(vec![web_ingress(vec![])]);
    assert!(allowed(&w, tcp(ip(1), ip(2), 80)));
    assert!(!verdict(&w, &tcp(ip(1), ip(2), 80)).egress.isolated);
}

#[test]
fn omitted_policy_types_mean_ingress_plus_egress_when_egress_rules_exist() {
    let mut p = Policy::new("default", "p", Selector::all());
    assert_eq!(
        p.types(),
        Types {
            ingress: true,
            egress: false
        }
    );
    p.egress.push(from(vec![]));
    assert_eq!(
        p.types(),
        Types {
            ingress: true,
            egress: true
        }
    );
    // An explicit Egress-only policy without rules denies all egress, leaves ingress open.
    let mut e = Policy::new("default", "e", Selector::label("app", "web"));
    e.policy_types = Some(Types {
        ingress: false,
        egress: true,
    });
    let w = world(vec![e]);
    assert!(!allowed(&w, tcp(ip(1), ip(2), 80)));
    assert!(allowed(&w, tcp(ip(2), ip(1), 80)));
}

#[test]
fn rules_of_a_type_not_in_policy_types_are_ignored() {
    let mut p = web_ingress(vec![]);
    p.egress.push(from(vec![])); // allow-all egress rule...
    p.policy_types = Some(Types {
        ingress: true,
        egress: false,
    }); // ...but Ingress only
    let mut deny_egress = Policy::new("default", "d", Selector::label("app", "web"));
    deny_egress.policy_types = Some(Types {
        ingress: false,
        egress: true,
    });
    let w = world(vec![p, deny_egress]);
    assert!(!allowed(&w, tcp(ip(1), ip(2), 80)));
}

#[test]
fn policies_are_additive() {
    let a = web_ingress(vec![from(vec![pods(
        None,
        Some(Selector::label("role", "client")),
    )])]);
    let mut b = web_ingress(vec![from(vec![pods(
        Some(Selector::label("env", "prod")),
        None,
    )])]);
    b.name = "b".into();
    let w = world(vec![a.clone()]);
    assert!(allowed(&w, tcp(ip(2), ip(1), 80)));
    assert!(!allowed(&w, tcp(ip(4), ip(1), 80)));
    let w = world(vec![a, b]);
    assert!(allowed(&w, tcp(ip(2), ip(1), 80)));
    assert!(allowed(&w, tcp(ip(4), ip(1), 80)));
    let v = verdict(&w, &tcp(ip(4), ip(1), 80));
    assert_eq!(v.ingress.allowed_by, Some(("default/b".to_string(), 0)));
}

#[test]
fn both_egress_of_the_source_and_ingress_of_the_destination_must_allow() {
    let mut e = Policy::new("default", "cl", Selector::label("role", "client"));
    e.policy_types = Some(Types {
        ingress: false,
        egress: true,
    });
    let open_web = web_ingress(vec![from(vec![])]);
    let w = world(vec![e, open_web]);
    let v = verdict(&w, &tcp(ip(2), ip(1), 80));
    assert!(v.ingress.allowed && !v.egress.allowed && !v.allowed);
}

#[test]
fn an_empty_pod_selector_selects_every_pod_of_the_namespace_only() {
    let w = world(vec![Policy::new("prod", "deny", Selector::all())]);
    assert!(!allowed(&w, tcp(ip(2), ip(4), 80)));
    assert!(!allowed(&w, tcp(ip(2), ip(3), 80)));
    assert!(
        allowed(&w, tcp(ip(3), ip(1), 80)),
        "default/web is not selected"
    );
}

#[test]
fn a_pod_selector_peer_alone_means_the_policys_namespace() {
    let w = world(vec![web_ingress(vec![from(vec![pods(
        None,
        Some(Selector::label("role", "client")),
    )])])]);
    assert!(allowed(&w, tcp(ip(2), ip(1), 80)));
    assert!(
        !allowed(&w, tcp(ip(3), ip(1), 80)),
        "prod/cl is another namespace"
    );
}

#[test]
fn namespace_and_pod_selector_in_one_peer_is_and_in_two_peers_is_or() {
    let ns = Selector::label("env", "prod");
    let pod = Selector::label("role", "client");
    let and = world(vec![web_ingress(vec![from(vec![pods(
        Some(ns.clone()),
        Some(pod.clone()),
    )])])]);
    assert!(allowed(&and, tcp(ip(3), ip(1), 80)));
    assert!(!allowed(&and, tcp(ip(4), ip(1), 80)));
    assert!(!allowed(&and, tcp(ip(2), ip(1), 80)));
    let or = world(vec![web_ingress(vec![from(vec![
        pods(Some(ns), None),
        pods(None, Some(pod)),
    ])])]);
    assert!(allowed(&or, tcp(ip(3), ip(1), 80)));
    assert!(allowed(&or, tcp(ip(4), ip(1), 80)));
    assert!(allowed(&or, tcp(ip(2), ip(1), 80)));
}

#[test]
fn namespaces_carry_their_name_label() {
    let ns = Selector::label("kubernetes.io/metadata.name", "prod");
    let w = world(vec![web_ingress(vec![from(vec![pods(Some(ns), None)])])]);
    assert!(allowed(&w, tcp(ip(4), ip(1), 80)));
    assert!(!allowed(&w, tcp(ip(2), ip(1), 80)));
}

#[test]
fn match_expressions() {
    let l = labels(&[("app", "web"), ("tier", "front")]);
    assert!(Selector::all()
        .and_expr("app", Op::In, &["web", "db"])
        .matches(&l));
    assert!(!Selector::all()
        .and_expr("app", Op::NotIn, &["web"])
        .matches(&l));
    assert!(Selector::all()
        .and_expr("x", Op::NotIn, &["web"])
        .matches(&l));
    assert!(Selector::all()
        .and_expr("tier", Op::Exists, &[])
        .matches(&l));
    assert!(!Selector::all()
        .and_expr("tier", Op::DoesNotExist, &[])
        .matches(&l));
    assert!(!Selector::all().and_expr("x", Op::In, &["web"]).matches(&l));
    assert!(!Selector::label("app", "web")
        .and_label("tier", "back")
        .matches(&l));
}

#[test]
fn ip_block_with_except_matches_by_address_pods_included() {
    let block = Peer::IpBlock {
        cidr: Ipv4Cidr::new(Ipv4Address::new(10, 244, 0, 0), 24),
        except: vec![Ipv4Cidr::new(ip(3), 32)],
    };
    let w = world(vec![web_ingress(vec![from(vec![block])])]);
    assert!(allowed(&w, tcp(ip(2), ip(1), 80)));
    assert!(!allowed(&w, tcp(ip(3), ip(1), 80)));
    assert!(
        allowed(&w, tcp(ip(9), ip(1), 80)),
        "not a pod, in the block"
    );
    assert!(!allowed(&w, tcp(Ipv4Address::new(8, 8, 8, 8), ip(1), 80)));
}

fn ports(rules: Vec<PortRule>) -> World {
    world(vec![web_ingress(vec![Rule {
        peers: vec![],
        ports: rules,
    }])])
}

#[test]
fn ports_by_number_with_protocol_defaulting_to_tcp() {
    let w = ports(vec![PortRule {
        protocol: Proto::default(),
        port: Some(PortSpec::Number(80)),
        end_port: None,
    }]);
    assert!(allowed(&w, tcp(ip(2), ip(1), 80)));
    assert!(!allowed(&w, tcp(ip(2), ip(1), 81)));
    let udp = Flow {
        proto: 17,
        ..tcp(ip(2), ip(1), 80)
    };
    assert!(!allowed(&w, udp));
}

#[test]
fn end_port_makes_a_range() {
    let w = ports(vec![PortRule {
        protocol: Proto::Tcp,
        port: Some(PortSpec::Number(32000)),
        end_port: Some(32768),
    }]);
    assert!(allowed(&w, tcp(ip(2), ip(1), 32000)));
    assert!(allowed(&w, tcp(ip(2), ip(1), 32768)));
    assert!(!allowed(&w, tcp(ip(2), ip(1), 31999)));
    assert!(!allowed(&w, tcp(ip(2), ip(1), 32769)));
}

#[test]
fn named_ports_are_the_destination_pods_with_their_protocol() {
    let named = |n: &str, p| PortRule {
        protocol: p,
        port: Some(PortSpec::Name(n.into())),
        end_port: None,
    };
    let w = ports(vec![named("http", Proto::Tcp), named("dns", Proto::Tcp)]);
    assert!(allowed(&w, tcp(ip(2), ip(1), 80)));
    assert!(!allowed(&w, tcp(ip(2), ip(1), 53)), "dns is a UDP port");
    let w = ports(vec![named("dns", Proto::Udp)]);
    let dns = Flow {
        proto: 17,
        ..tcp(ip(2), ip(1), 53)
    };
    assert!(allowed(&w, dns));
}

#[test]
fn a_protocol_without_a_port_allows_all_its_ports_and_no_ports_allows_everything() {
    let w = ports(vec![PortRule {
        protocol: Proto::Udp,
        port: None,
        end_port: None,
    }]);
    let udp = |p| Flow {
        proto: 17,
        ..tcp(ip(2), ip(1), p)
    };
    assert!(allowed(&w, udp(1)) && allowed(&w, udp(65535)));
    assert!(!allowed(&w, tcp(ip(2), ip(1), 80)));
    let w = ports(vec![]);
    let icmp = Flow {
        proto: 1,
        ..tcp(ip(2), ip(1), 0x0800)
    };
    assert!(allowed(&w, icmp) && allowed(&w, tcp(ip(2), ip(1), 1)));
}

#[test]
fn empty_from_allows_every_source_an_empty_rule_list_none() {
    let w = world(vec![web_ingress(vec![from(vec![])])]);
    assert!(allowed(&w, tcp(Ipv4Address::new(8, 8, 8, 8), ip(1), 80)));
    assert!(allowed(&w, tcp(ip(3), ip(1), 80)));
    let w = world(vec![web_ingress(vec![])]);
    assert!(!allowed(&w, tcp(ip(3), ip(1), 80)));
}

#[test]
fn egress_peers_and_named_ports_apply_to_the_destination() {
    let mut p = Policy::new("default", "cl", Selector::label("role", "client"));
    p.egress.push(Rule {
        peers: vec![pods(None, Some(Selector::label("app", "web")))],
        ports: vec![PortRule {
            protocol: Proto::Tcp,
            port: Some(PortSpec::Name("http".into())),
            end_port: None,
        }],
    });
    let w = world(vec![p]);
    assert!(allowed(&w, tcp(ip(2), ip(1), 80)));
    assert!(!allowed(&w, tcp(ip(2), ip(4), 80)));
    assert!(!allowed(&w, tcp(ip(2), Ipv4Address::new(8, 8, 8, 8), 80)));
    // With policyTypes omitted the policy has Ingress too: cl is isolated for ingress as well.
    assert!(!allowed(&w, tcp(ip(1), ip(2), 80)));
}

#[test]
fn the_pods_own_node_can_always_reach_it() {
    let w = world(vec![web_ingress(vec![])]);
    for node_ip in [Ipv4Address::new(192, 168, 1, 100), ip(254)] {
        let v = verdict(&w, &tcp(node_ip, ip(1), 80));
        assert!(v.allowed, "{}", v.explanation());
    }
    assert!(!allowed(
        &w,
        tcp(Ipv4Address::new(192, 168, 1, 101), ip(1), 80)
    ));
    // Not a node exception for pods on other nodes: db is on node 0 too, cl on node 1.
    let deny_cl = Policy::new("default", "cl", Selector::label("role", "client"));
    let w = world(vec![deny_cl]);
    assert!(!allowed(
        &w,
        tcp(Ipv4Address::new(192, 168, 1, 100), ip(2), 80)
    ));
}
