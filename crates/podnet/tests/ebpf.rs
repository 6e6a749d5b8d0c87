//! The Cilium-style eBPF datapath (`proxy: ebpf`): socket-level load balancing (no ClusterIP on
//! the wire), per-packet load balancing for NodePort traffic in SNAT and DSR mode, the hairpin
//! source 169.254.42.1, LRU CT maps that evict instead of dropping, Maglev, and no iptables
//! Service rules — beside kube-proxy's iptables and nftables modes on the same scenario.

use podnet::ebpf::{Algorithm, EbpfConfig, NodePortMode};
use podnet::trace::EventKind;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeId, NodeSpec, Outcome, PodId, PodSpec,
    Program, Proxy, ServiceSpec,
};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpEndpoint, Ipv4Address, Ipv4Packet,
};

const POD_A: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
const BACKEND: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);
const VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
const NODE_A: Ipv4Address = Ipv4Address::new(192, 168, 1, 100);
const NODE_B: Ipv4Address = Ipv4Address::new(192, 168, 1, 101);
const EXT: Ipv4Address = Ipv4Address::new(203, 0, 113, 10);

fn ebpf(cfg: EbpfConfig) -> ClusterConfig {
    ClusterConfig {
        proxy: Proxy::Ebpf,
        ebpf: cfg,
        ..ClusterConfig::default()
    }
}

fn cluster(config: ClusterConfig) -> (Cluster, NodeId, NodeId) {
    let mut c = Cluster::new(config);
    let a = c.add_node(NodeSpec::new("node-a", NODE_A)).unwrap();
    let b = c.add_node(NodeSpec::new("node-b", NODE_B)).unwrap();
    (c, a, b)
}

fn records(c: &Cluster, pod: PodId) -> Vec<podnet::ConnRecord> {
    c.pod(pod).unwrap().connections().cloned().collect()
}

fn ipv4_of(frame: &[u8]) -> Option<Ipv4Packet<&[u8]>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    Ipv4Packet::new_checked(&frame[14..]).ok()
}

/// Every IPv4 (src, dst) seen anywhere in the cluster (sent, received or dropped frames).
fn all_addresses(c: &Cluster) -> Vec<(Ipv4Address, Ipv4Address)> {
    c.trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Sent { frame, .. }
            | EventKind::Received { frame, .. }
            | EventKind::Dropped { frame, .. } => {
                let ip = ipv4_of(&frame.bytes)?;
                Some((ip.src_addr(), ip.dst_addr()))
            }
            EventKind::Hook { .. } => None,
        })
        .collect()
}

/// (src, sport, dst, dport, SYN?) of every TCP segment received on `iface`.
fn tcp_seen(c: &Cluster, iface: &str) -> Vec<(Ipv4Address, u16, Ipv4Address, u16, bool)> {
    c.trace()
        .tcp_received_on(iface)
        .map(|t| (t.src, t.sport, t.dst, t.dport, t.syn))
        .collect()
}

/// The seed: pod-a on node-a -> Service 10.96.0.10:80 -> backend 10.244.1.20:80 on node-b,
/// pod-a running `client`; run until the client is done (or two minutes).
fn seed_with(config: ClusterConfig, client: ClientSpec) -> (Cluster, NodeId, PodId, bool) {
    let (mut c, a, b) = cluster(config);
    let backend = c
        .add_pod(
            PodSpec::new("backend", b)
                .ip(BACKEND)
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    c.add_service(ServiceSpec::new("web", 80, 80, vec![backend]).cluster_ip(VIP))
        .unwrap();
    let pod_a = c
        .add_pod(
            PodSpec::new("pod-a", a)
                .ip(POD_A)
                .program(Program::Client(client)),
        )
        .unwrap();
    let done = c.run_until_done(Duration::from_secs(120));
    (c, a, pod_a, done)
}

/// [`seed_with`] `count` HTTP connections, which must all finish.
fn seed(config: ClusterConfig, count: u32) -> (Cluster, NodeId, PodId) {
    let (c, a, pod_a, done) = seed_with(config, ClientSpec::http("web", VIP, 80).count(count));
    assert!(done);
    (c, a, pod_a)
}

#[test]
fn socket_lb_no_packet_carries_the_cluster_ip() {
    let mut config = ebpf(EbpfConfig::default());
    config.trace.pcap = true;
    let (c, a, pod_a) = seed(config, 3);
    for r in records(&c, pod_a) {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        // The application believes it talks to the ClusterIP; the socket talks to the backend.
        assert_eq!(r.remote, IpEndpoint::new(IpAddress::Ipv4(VIP), 80));
        assert_eq!(r.peer, Some(IpEndpoint::new(IpAddress::Ipv4(BACKEND), 80)));
    }
    let addrs = all_addresses(&c);
    assert!(!addrs.is_empty());
    assert!(
        addrs.iter().all(|(s, d)| *s != VIP && *d != VIP),
        "the ClusterIP appeared on the wire"
    );
    // The client pod's own capture: not one byte sequence of the ClusterIP in an IP header.
    let id = c
        .trace()
        .ifaces()
        .find(|(_, n)| *n == "pod-a/eth0")
        .map(|(id, _)| id)
        .unwrap();
    let pcap = c.trace().pcap(id);
    let bytes = pcap.unwrap().as_bytes().to_vec();
    assert!(bytes.len() > 24);
    assert!(!bytes.windows(4).any(|w| w == VIP.octets()));
    // Linux conntrack and kube-proxy are out of the path.
    let dp = c.dataplane(a).unwrap();
    assert_eq!(dp.conntrack().count(), 0);
    assert!(!dp.proxy().iptables_save().contains("10.96.0.10"));
    let bpf = dp.ebpf().unwrap();
    assert_eq!(bpf.lb().sock_events().len(), 3);
    assert_eq!(bpf.stats().lb_per_packet, 0);
    assert!(bpf.ct_tcp().len() >= 3, "a CT entry per connection");
    assert_eq!(dp.stats().rules_walked, 0);
}

#[test]
fn without_socket_lb_the_node_balances_per_packet_and_reverses_the_reply() {
    let cfg = EbpfConfig {
        socket_lb: false,
        ..EbpfConfig::default()
    };
    let (c, a, pod_a) = seed(ebpf(cfg), 2);
    for r in records(&c, pod_a) {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert_eq!(r.peer, None);
    }
    // The pod sends to the ClusterIP and hears back from it; the backend sees the pod.
    let at_pod = tcp_seen(&c, "pod-a/eth0");
    assert!(at_pod.iter().all(|s| s.0 == VIP), "{at_pod:?}");
    let at_backend = tcp_seen(&c, "backend/eth0");
    assert!(at_backend.iter().all(|s| s.0 == POD_A && s.2 == BACKEND));
    let dp = c.dataplane(a).unwrap();
    assert_eq!(dp.ebpf().unwrap().stats().lb_per_packet, 2);
    assert_eq!(dp.stats().dnat, 2);
}

#[test]
fn a_pod_reaching_itself_through_its_service_comes_from_169_254_42_1() {
    let (mut c, a, _) = cluster(ebpf(EbpfConfig::default()));
    let me = Ipv4Address::new(10, 244, 0, 7);
    let pod = c
        .add_pod(
            PodSpec::new("self", a)
                .ip(me)
                .program(Program::HttpServer { port: 8080 })
                .program(Program::Client(ClientSpec::http("me", VIP, 80).count(2))),
        )
        .unwrap();
    c.add_service(ServiceSpec::new("me", 80, 8080, vec![pod]).cluster_ip(VIP))
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(10)));
    for r in records(&c, pod) {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }
    let seen = tcp_seen(&c, "self/eth0");
    let syns: Vec<_> = seen.iter().filter(|s| s.4 && s.3 == 8080).collect();
    assert_eq!(syns.len(), 2, "{seen:?}");
    assert!(
        syns.iter()
            .all(|s| s.0 == Ipv4Address::new(169, 254, 42, 1)),
        "{syns:?}"
    );
    // The socket LB skipped the translation (backend in its own netns).
    let bpf = c.dataplane(a).unwrap().ebpf().unwrap();
    assert!(bpf
        .lb()
        .sock_events()
        .iter()
        .all(|e| matches!(e.xlate, podnet::ebpf::SockXlate::SameNetns(_))));
}

fn nodeport(cfg: EbpfConfig) -> (Cluster, PodId) {
    let (mut c, _a, b) = cluster(ebpf(cfg));
    let backend = c
        .add_pod(
            PodSpec::new("backend", b)
                .ip(BACKEND)
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    let mut svc = ServiceSpec::new("web", 80, 80, vec![backend]);
    svc.node_port = true;
    svc.ports[0].node_port = Some(30080);
    c.add_service(svc).unwrap();
    let spec = ClientSpec::http("to-node-a", NODE_A, 30080)
        .count(2)
        .timeout(Duration::from_secs(3));
    let ext = c
        .add_external("internet", EXT, vec![Program::Client(spec)])
        .unwrap();
    c.run_until_done(Duration::from_secs(10));
    (c, ext)
}

#[test]
fn nodeport_snat_mode_masquerades_to_the_receiving_node() {
    let (c, ext) = nodeport(EbpfConfig::default());
    for r in records(&c, ext) {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }
    let syns: Vec<_> = tcp_seen(&c, "backend/eth0")
        .into_iter()
        .filter(|s| s.4)
        .collect();
    assert_eq!(syns.len(), 2);
    assert!(syns.iter().all(|s| s.0 == NODE_A), "{syns:?}");
    // The reply goes back through node-a, which reverses both translations.
    let back = tcp_seen(&c, "internet/eth0");
    assert!(
        back.iter().all(|s| s.0 == NODE_A && s.1 == 30080),
        "{back:?}"
    );
}

#[test]
fn nodeport_dsr_mode_keeps_the_client_ip_and_answers_directly() {
    let (c, ext) = nodeport(EbpfConfig {
        node_port_mode: NodePortMode::Dsr,
        ..EbpfConfig::default()
    });
    for r in records(&c, ext) {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }
    let syns: Vec<_> = tcp_seen(&c, "backend/eth0")
        .into_iter()
        .filter(|s| s.4)
        .collect();
    assert_eq!(syns.len(), 2);
    assert!(syns.iter().all(|s| s.0 == EXT), "client IP kept: {syns:?}");
    // Between the nodes the SYN carries Cilium's DSR option (type 0x9a, len 8, port, addr).
    let with_option = c
        .trace()
        .received_on("node-b/eth0")
        .filter_map(|(_, f)| ipv4_of(f).map(|ip| ip.into_inner().to_vec()))
        .find(|ip| ip[0] & 0x0f == 7)
        .expect("a packet with the DSR option");
    assert_eq!(&with_option[20..22], &[0x9a, 8]);
    assert_eq!(&with_option[22..24], &30080u16.to_be_bytes());
    assert_eq!(&with_option[24..28], &NODE_A.octets());
    // Replies leave node-b for the client directly, as node-a:30080: node-a never sees them.
    let back = tcp_seen(&c, "internet/eth0");
    assert!(
        back.iter().all(|s| s.0 == NODE_A && s.1 == 30080),
        "{back:?}"
    );
    let via_a: Vec<_> = tcp_seen(&c, "node-a/eth0")
        .into_iter()
        .filter(|s| s.2 == EXT)
        .collect();
    assert!(via_a.is_empty(), "replies crossed node-a: {via_a:?}");
}

#[test]
fn a_full_lru_ct_map_evicts_and_drops_nothing() {
    let cfg = EbpfConfig {
        ct_tcp_max: 4,
        ..EbpfConfig::default()
    };
    let (c, a, pod_a) = seed(ebpf(cfg), 20);
    let recs = records(&c, pod_a);
    assert_eq!(recs.len(), 20);
    assert!(recs.iter().all(|r| r.outcome == Outcome::Ok), "{recs:?}");
    let bpf = c.dataplane(a).unwrap().ebpf().unwrap();
    assert_eq!(bpf.ct_tcp().len(), 4);
    assert!(bpf.stats().ct_evicted >= 16, "{:?}", bpf.stats());
    let drops = c
        .trace()
        .events()
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Dropped { reason, .. } if reason.contains("table full")))
        .count();
    assert_eq!(drops, 0);
    // The same table size under iptables drops new connections instead.
    let mut linux = ClusterConfig::default();
    linux.conntrack.max = 4;
    linux.conntrack.buckets = 4;
    let spec = ClientSpec::http("web", VIP, 80)
        .count(20)
        .timeout(Duration::from_secs(2));
    let (c2, _, client, _) = seed_with(linux, spec);
    let failed = records(&c2, client)
        .iter()
        .filter(|r| r.outcome != Outcome::Ok)
        .count();
    assert!(
        failed > 0,
        "nf_conntrack with max 4 must drop new connections"
    );
}

#[test]
fn a_service_without_backends_fails_connect_with_ehostunreach() {
    let (mut c, a, _) = cluster(ebpf(EbpfConfig::default()));
    c.add_service(ServiceSpec::new("empty", 80, 80, vec![]).cluster_ip(VIP))
        .unwrap();
    let pod = c
        .add_pod(
            PodSpec::new("pod-a", a)
                .ip(POD_A)
                .program(Program::Client(ClientSpec::http("empty", VIP, 80))),
        )
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(5)));
    let r = &records(&c, pod)[0];
    assert_eq!(r.outcome, Outcome::Refused);
    assert!(
        r.error.as_deref().unwrap().starts_with("EHOSTUNREACH"),
        "{r:?}"
    );
    assert!(all_addresses(&c).iter().all(|(_, d)| *d != VIP));
}

#[test]
fn maglev_picks_the_same_backend_for_a_flow_on_every_node() {
    let cfg = EbpfConfig {
        algorithm: Algorithm::Maglev,
        ..EbpfConfig::default()
    };
    let (mut c, a, b) = cluster(ebpf(cfg));
    let mut backends = Vec::new();
    for i in 0..3u8 {
        backends.push(
            c.add_pod(
                PodSpec::new(&format!("web-{i}"), if i == 0 { a } else { b })
                    .ip(Ipv4Address::new(10, 244, u8::from(i != 0), 30 + i))
                    .program(Program::HttpServer { port: 80 }),
            )
            .unwrap(),
        );
    }
    c.add_service(ServiceSpec::new("web", 80, 80, backends).cluster_ip(VIP))
        .unwrap();
    let front = podnet::ebpf::lb::Frontend {
        addr: VIP,
        port: 80,
        proto: 6,
    };
    let ta = c.dataplane(a).unwrap().ebpf().unwrap().lb().maglev(&front);
    let tb = c.dataplane(b).unwrap().ebpf().unwrap().lb().maglev(&front);
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(ta.size(), 16381);
    assert_eq!(ta.slots(), tb.slots(), "every node builds the same table");
    let mut share = [0u32; 3];
    for s in ta.slots() {
        share[*s as usize] += 1;
    }
    for n in share {
        let third = 16381.0 / 3.0;
        assert!((f64::from(n) - third).abs() < third * 0.02, "{share:?}");
    }
}

/// The three-endpoint scenario in the three modes, side by side: every connection succeeds,
/// and the first packet of each walks n+5 rules (iptables), a constant number (nftables), or
/// no rule at all (eBPF: map lookups).
#[test]
fn three_endpoints_in_iptables_nftables_and_ebpf_modes() {
    let mut table = Vec::new();
    for proxy in [Proxy::Iptables, Proxy::Nftables, Proxy::Ebpf] {
        let (mut c, a, b) = cluster(ClusterConfig {
            proxy,
            ..ClusterConfig::default()
        });
        let mut backends = Vec::new();
        for i in 0..3u8 {
            backends.push(
                c.add_pod(
                    PodSpec::new(&format!("web-{i}"), b)
                        .ip(Ipv4Address::new(10, 244, 1, 20 + i))
                        .program(Program::HttpServer { port: 80 }),
                )
                .unwrap(),
            );
        }
        c.add_service(ServiceSpec::new("web", 80, 80, backends).cluster_ip(VIP))
            .unwrap();
        let client = c
            .add_pod(
                PodSpec::new("client", a)
                    .ip(POD_A)
                    .program(Program::Client(ClientSpec::http("web", VIP, 80).count(30))),
            )
            .unwrap();
        assert!(c.run_until_done(Duration::from_secs(30)));
        let recs = records(&c, client);
        assert!(recs.iter().all(|r| r.outcome == Outcome::Ok), "{proxy:?}");
        let st = c.dataplane(a).unwrap().stats();
        let per_first = st.rules_walked as f64 / st.first_packets.max(1) as f64;
        table.push((proxy, st.first_packets, per_first, st.last_rules_walked));
    }
    println!("mode        first packets  rules walked per first packet");
    for (p, n, per, _) in &table {
        println!("{:<11} {n:>13}  {per:.1}", format!("{p:?}"));
    }
    // iptables: KUBE-SERVICES, KUBE-SVC-*, statistic rules up to the chosen endpoint, the
    // endpoint chain; more than nftables' map lookups; eBPF walks none.
    assert!(table[0].2 > table[1].2, "{table:?}");
    assert!(table[1].2 > 0.0);
    assert_eq!(table[2].2, 0.0, "{table:?}");
    assert_eq!(table[2].3, 0);
}

#[test]
fn network_policy_judges_the_backend_chosen_at_connect() {
    use podnet::policy::{Peer, Policy, Rule, Selector};
    let (mut c, a, b) = cluster(ebpf(EbpfConfig::default()));
    let web = c
        .add_pod(
            PodSpec::new("backend", b)
                .ip(BACKEND)
                .label("app", "web")
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    c.add_service(ServiceSpec::new("web", 80, 80, vec![web]).cluster_ip(VIP))
        .unwrap();
    // Only pods labelled role=frontend may reach the web pods.
    let mut p = Policy::new(
        "default",
        "web-from-frontend",
        Selector::label("app", "web"),
    );
    p.ingress.push(Rule {
        peers: vec![Peer::Pods {
            ns_selector: None,
            pod_selector: Some(Selector::label("role", "frontend")),
        }],
        ports: vec![],
    });
    c.add_network_policy(p);
    let client = |name: &str, ip: [u8; 4]| {
        PodSpec::new(name, a).ip(ip).program(Program::Client(
            ClientSpec::http(name, VIP, 80).timeout(Duration::from_secs(3)),
        ))
    };
    let allowed = c
        .add_pod(client("frontend", [10, 244, 0, 5]).label("role", "frontend"))
        .unwrap();
    let denied = c.add_pod(client("other", [10, 244, 0, 6])).unwrap();
    assert!(c.run_until_done(Duration::from_secs(30)));
    assert_eq!(records(&c, allowed)[0].outcome, Outcome::Ok);
    let r = &records(&c, denied)[0];
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("no policy allows"),
        "{r:?}"
    );
    // Judged at the backend's node, against the backend the socket LB chose.
    let d = &c.dataplane(b).unwrap().denied()[0];
    assert_eq!(d.judged.dst, BACKEND);
}

#[test]
fn bpf_masquerade_to_the_outside_and_an_lru_nat_map() {
    let cfg = EbpfConfig {
        nat_max: 2,
        ..EbpfConfig::default()
    };
    let (mut c, a, _) = cluster(ebpf(cfg));
    c.add_external("internet", EXT, vec![Program::HttpServer { port: 80 }])
        .unwrap();
    let pod = c
        .add_pod(
            PodSpec::new("pod-a", a)
                .ip(POD_A)
                .program(Program::Client(ClientSpec::http("out", EXT, 80).count(5))),
        )
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(30)));
    assert!(records(&c, pod).iter().all(|r| r.outcome == Outcome::Ok));
    let seen = tcp_seen(&c, "internet/eth0");
    assert!(seen.iter().all(|s| s.0 == NODE_A), "masqueraded: {seen:?}");
    let bpf = c.dataplane(a).unwrap().ebpf().unwrap();
    assert_eq!(bpf.stats().snat, 5);
    assert_eq!(
        bpf.snat_map().len(),
        2,
        "one mapping (egress + ingress) fits"
    );
    assert!(bpf.stats().nat_evicted >= 8, "{:?}", bpf.stats());
}
