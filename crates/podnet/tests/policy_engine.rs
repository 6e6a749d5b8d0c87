//! NetworkPolicy enforced by the nodes' dataplanes: clients see `denied`, replies pass, the
//! verdict is taken after DNAT, egress at the source's node and ingress at the destination's.

use podnet::policy::{Peer, Policy, PortRule, PortSpec, Proto, Rule, Selector, Types};
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeId, NodeSpec, Outcome, PodId, PodSpec,
    Program, ServiceSpec,
};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

const WEB: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);

fn cluster() -> (Cluster, NodeId, NodeId) {
    let mut c = Cluster::new(ClusterConfig::default());
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    let web = PodSpec::new("web", b)
        .ip(WEB)
        .label("app", "web")
        .named_port("http", Proto::Tcp, 80)
        .program(Program::HttpServer { port: 80 });
    c.add_pod(web).unwrap();
    (c, a, b)
}

fn client(c: &mut Cluster, spec: PodSpec, to: Ipv4Address, port: u16) -> PodId {
    let name = spec.name.clone();
    let cs = ClientSpec::http(&name, to, port).timeout(Duration::from_secs(3));
    c.add_pod(spec.program(Program::Client(cs))).unwrap()
}

fn outcome(c: &Cluster, pod: PodId) -> Outcome {
    let recs: Vec<_> = c
        .pod(pod)
        .unwrap()
        .clients()
        .flat_map(|cl| cl.records().to_vec())
        .collect();
    assert_eq!(recs.len(), 1, "{recs:?}");
    recs[0].outcome
}

fn run(c: &mut Cluster) {
    assert!(c.run_until_done(Duration::from_secs(30)));
}

fn deny_web() -> Policy {
    Policy::new("default", "deny-web", Selector::label("app", "web"))
}

fn allow(name: &str, peers: Vec<Peer>, ports: Vec<PortRule>) -> Policy {
    let mut p = Policy::new("default", name, Selector::label("app", "web"));
    p.ingress.push(Rule { peers, ports });
    p
}

fn pods(ns: Option<Selector>, pod: Option<Selector>) -> Peer {
    Peer::Pods {
        ns_selector: ns,
        pod_selector: pod,
    }
}

#[test]
fn without_policies_everything_connects() {
    let (mut c, a, _) = cluster();
    let cl = client(&mut c, PodSpec::new("cl", a), WEB, 80);
    run(&mut c);
    assert_eq!(outcome(&c, cl), Outcome::Ok);
}

#[test]
fn deny_all_ingress_makes_the_client_denied() {
    let (mut c, a, b) = cluster();
    c.add_network_policy(deny_web());
    let cl = client(&mut c, PodSpec::new("cl", a), WEB, 80);
    run(&mut c);
    assert_eq!(outcome(&c, cl), Outcome::Denied);
    let rec = c.pod(cl).unwrap().clients().next().unwrap().records()[0].clone();
    let err = rec.error.unwrap();
    assert!(err.contains("no policy allows"), "{err}");
    // The trace carries the drop and its reason.
    let drops: Vec<String> = c
        .trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            podnet::trace::EventKind::Dropped { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        drops
            .iter()
            .any(|r| r.starts_with("NetworkPolicy: default/web isolated for ingress")),
        "{drops:?}"
    );
    // Ingress is judged at the destination's node.
    assert!(c.dataplane(a).unwrap().denied().is_empty());
    assert!(!c.dataplane(b).unwrap().denied().is_empty());
}

#[test]
fn an_allow_by_pod_selector_opens_it_for_those_pods_only() {
    let (mut c, a, _) = cluster();
    c.add_network_policy(deny_web());
    c.add_network_policy(allow(
        "allow-clients",
        vec![pods(None, Some(Selector::label("role", "client")))],
        vec![],
    ));
    let yes = client(
        &mut c,
        PodSpec::new("yes", a).label("role", "client"),
        WEB,
        80,
    );
    let no = client(
        &mut c,
        PodSpec::new("no", a).label("role", "other"),
        WEB,
        80,
    );
    run(&mut c);
    assert_eq!(outcome(&c, yes), Outcome::Ok);
    assert_eq!(outcome(&c, no), Outcome::Denied);
}

fn ns_setup(c: &mut Cluster, a: NodeId) -> [PodId; 3] {
    let mut l = podnet::policy::Labels::new();
    l.insert("team".into(), "a".into());
    c.set_namespace_labels("team-a", l);
    [
        client(
            c,
            PodSpec::new("a-client", a)
                .namespace("team-a")
                .label("role", "client"),
            WEB,
            80,
        ),
        client(
            c,
            PodSpec::new("a-other", a)
                .namespace("team-a")
                .label("role", "other"),
            WEB,
            80,
        ),
        client(
            c,
            PodSpec::new("b-client", a)
                .namespace("team-b")
                .label("role", "client"),
            WEB,
            80,
        ),
    ]
}

#[test]
fn one_peer_with_both_selectors_is_an_and() {
    let (mut c, a, _) = cluster();
    let ns = Selector::label("team", "a");
    let pod = Selector::label("role", "client");
    c.add_network_policy(allow("and", vec![pods(Some(ns), Some(pod))], vec![]));
    let [ac, ao, bc] = ns_setup(&mut c, a);
    run(&mut c);
    assert_eq!(outcome(&c, ac), Outcome::Ok);
    assert_eq!(outcome(&c, ao), Outcome::Denied);
    assert_eq!(outcome(&c, bc), Outcome::Denied);
}

#[test]
fn two_peers_are_an_or() {
    let (mut c, a, _) = cluster();
    let ns = Selector::label("team", "a");
    let pod = Selector::label("role", "client");
    // A podSelector alone selects pods of the policy's namespace (default): none of these.
    let peers = vec![pods(Some(ns), None), pods(None, Some(pod))];
    c.add_network_policy(allow("or", peers, vec![]));
    let [ac, ao, bc] = ns_setup(&mut c, a);
    let dc = client(
        &mut c,
        PodSpec::new("d-client", a).label("role", "client"),
        WEB,
        80,
    );
    run(&mut c);
    assert_eq!(outcome(&c, ac), Outcome::Ok);
    assert_eq!(outcome(&c, ao), Outcome::Ok);
    assert_eq!(outcome(&c, bc), Outcome::Denied);
    assert_eq!(outcome(&c, dc), Outcome::Ok);
}

#[test]
fn ip_block_with_except() {
    let (mut c, a, _) = cluster();
    let block = Peer::IpBlock {
        cidr: Ipv4Cidr::new(Ipv4Address::new(10, 244, 0, 0), 16),
        except: vec![Ipv4Cidr::new(Ipv4Address::new(10, 244, 0, 5), 32)],
    };
    c.add_network_policy(allow("block", vec![block], vec![]));
    let out = client(&mut c, PodSpec::new("out", a).ip([10, 244, 0, 5]), WEB, 80);
    let inn = client(&mut c, PodSpec::new("in", a).ip([10, 244, 0, 6]), WEB, 80);
    run(&mut c);
    assert_eq!(outcome(&c, out), Outcome::Denied);
    assert_eq!(outcome(&c, inn), Outcome::Ok);
}

fn port(p: PortSpec) -> PortRule {
    PortRule {
        protocol: Proto::Tcp,
        port: Some(p),
        end_port: None,
    }
}

#[test]
fn named_ports_resolve_on_the_destination_pod() {
    for (name, want) in [("http", Outcome::Ok), ("metrics", Outcome::Denied)] {
        let (mut c, a, _) = cluster();
        let ports = vec![port(PortSpec::Name(name.into()))];
        c.add_network_policy(allow("named", vec![], ports));
        let cl = client(&mut c, PodSpec::new("cl", a), WEB, 80);
        run(&mut c);
        assert_eq!(outcome(&c, cl), want, "{name}");
    }
}

#[test]
fn service_traffic_is_judged_after_dnat_against_the_target_port() {
    for (allowed_port, want) in [(80, Outcome::Ok), (8080, Outcome::Denied)] {
        let (mut c, a, _) = cluster();
        let web = c.pod_by_name("web").unwrap();
        let vip = c
            .add_service(ServiceSpec::new("web", 8080, 80, vec![web]))
            .unwrap();
        let ports = vec![port(PortSpec::Number(allowed_port))];
        c.add_network_policy(allow("port", vec![], ports));
        let cl = client(&mut c, PodSpec::new("cl", a), vip, 8080);
        run(&mut c);
        assert_eq!(outcome(&c, cl), want, "policy port {allowed_port}");
    }
}

#[test]
fn replies_of_allowed_connections_pass_and_egress_is_checked_at_the_source() {
    let (mut c, a, b) = cluster();
    // web may send nothing on its own, but answers.
    let mut p = Policy::new("default", "web-no-egress", Selector::label("app", "web"));
    p.policy_types = Some(Types {
        ingress: false,
        egress: true,
    });
    c.add_network_policy(p);
    let cl = client(&mut c, PodSpec::new("cl", a), WEB, 80);
    run(&mut c);
    assert_eq!(outcome(&c, cl), Outcome::Ok);
    // The client isolated for egress: dropped at its own node.
    let mut p = Policy::new("default", "cl-no-egress", Selector::label("role", "locked"));
    p.policy_types = Some(Types {
        ingress: false,
        egress: true,
    });
    c.add_network_policy(p);
    let locked = client(
        &mut c,
        PodSpec::new("locked", a).label("role", "locked"),
        WEB,
        80,
    );
    run(&mut c);
    assert_eq!(outcome(&c, locked), Outcome::Denied);
    assert!(!c.dataplane(a).unwrap().denied().is_empty());
    assert!(c.dataplane(b).unwrap().denied().is_empty());
}

#[test]
fn the_node_of_an_isolated_pod_can_reach_it_others_cannot() {
    let (mut c, _, b) = cluster();
    c.add_network_policy(deny_web());
    let flow = |src: Ipv4Address| podnet::policy::Flow {
        src,
        dst: WEB,
        proto: 6,
        dport: 80,
    };
    let node_b = c.node(b).unwrap().addrs();
    for own in [node_b.eth0.address(), node_b.gateway()] {
        let v = c.policy_verdict(&flow(own));
        assert!(v.allowed, "{}", v.explanation());
        assert!(
            v.ingress.reason.contains("its own node"),
            "{}",
            v.explanation()
        );
    }
    let v = c.policy_verdict(&flow(Ipv4Address::new(192, 168, 1, 100)));
    assert!(!v.allowed, "{}", v.explanation());
}

#[test]
fn node_port_traffic_is_judged_before_masquerade() {
    // The filter table runs before POSTROUTING's MASQUERADE: an external client reaching an
    // isolated pod through its own node's NodePort is still seen as itself, and denied; through
    // another node it arrives masqueraded as that node, not the pod's, and is denied too.
    let (mut c, _, _) = cluster();
    let web = c.pod_by_name("web").unwrap();
    let mut svc = ServiceSpec::new("web", 80, 80, vec![web]);
    svc.node_port = true;
    svc.ports[0].node_port = Some(30080);
    c.add_service(svc).unwrap();
    c.add_network_policy(deny_web());
    let ext = Ipv4Address::new(203, 0, 113, 10);
    let spec = |name: &str, node: [u8; 4]| {
        Program::Client(
            ClientSpec::http(name, Ipv4Address::from(node), 30080).timeout(Duration::from_secs(3)),
        )
    };
    let progs = vec![
        spec("via-b", [192, 168, 1, 101]),
        spec("via-a", [192, 168, 1, 100]),
    ];
    let h = c.add_external("internet", ext, progs).unwrap();
    run(&mut c);
    let outs: Vec<Outcome> = c
        .pod(h)
        .unwrap()
        .clients()
        .map(|cl| cl.records()[0].outcome)
        .collect();
    assert_eq!(outs, vec![Outcome::Denied, Outcome::Denied]);
    // Allowing the external block opens both.
    let block = Peer::IpBlock {
        cidr: Ipv4Cidr::new(Ipv4Address::new(203, 0, 113, 0), 24),
        except: vec![],
    };
    let node_a = Peer::IpBlock {
        cidr: Ipv4Cidr::new(Ipv4Address::new(192, 168, 1, 100), 32),
        except: vec![],
    };
    c.add_network_policy(allow("ext", vec![block, node_a], vec![]));
    let progs = vec![
        spec("again-b", [192, 168, 1, 101]),
        spec("again-a", [192, 168, 1, 100]),
    ];
    let h = c
        .add_external("internet2", [203, 0, 113, 11], progs)
        .unwrap();
    run(&mut c);
    let outs: Vec<Outcome> = c
        .pod(h)
        .unwrap()
        .clients()
        .map(|cl| cl.records()[0].outcome)
        .collect();
    assert_eq!(outs, vec![Outcome::Ok, Outcome::Ok]);
}
