//! Services through conntrack, NAT and kube-proxy: the seed document's story, number by number.

use podnet::conntrack::CtConfig;
use podnet::trace::EventKind;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeId, NodeSpec, Outcome, PodId, PodSpec,
    Program, Proxy, Request, ServiceSpec,
};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket,
};

const POD_A: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
const BACKEND: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);
const VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
const NODE_A: Ipv4Address = Ipv4Address::new(192, 168, 1, 100);

fn cluster(config: ClusterConfig) -> (Cluster, NodeId, NodeId) {
    let mut c = Cluster::new(config);
    let a = c.add_node(NodeSpec::new("node-a", NODE_A)).unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    (c, a, b)
}

fn records(c: &Cluster, pod: PodId) -> Vec<podnet::ConnRecord> {
    c.pod(pod).unwrap().connections().cloned().collect()
}

/// (src, sport, dst, dport, SYN?) of every TCP segment received on `iface`.
fn tcp_seen(c: &Cluster, iface: &str) -> Vec<(Ipv4Address, u16, Ipv4Address, u16, bool)> {
    c.trace()
        .tcp_received_on(iface)
        .map(|t| (t.src, t.sport, t.dst, t.dport, t.syn))
        .collect()
}

/// The seed: Pod A (10.244.0.5 on node 192.168.1.100) -> Service 10.96.0.10:80 -> backend
/// 10.244.1.20:80 on a second node.
fn seed(config: ClusterConfig) -> (Cluster, NodeId, PodId) {
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
                .program(Program::Client(ClientSpec::http("web", VIP, 80))),
        )
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(10)));
    (c, a, pod_a)
}

#[test]
fn seed_clusterip_is_dnated_and_the_reply_reversed() {
    let (c, a, pod_a) = seed(ClusterConfig::default());
    let r = &records(&c, pod_a)[0];
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let sport = r.local.port;
    // The backend sees Pod A itself: pod -> ClusterIP is not masqueraded.
    let at_backend = tcp_seen(&c, "backend/eth0");
    assert!(
        at_backend.contains(&(POD_A, sport, BACKEND, 80, true)),
        "{at_backend:?}"
    );
    // Pod A only ever hears from the ClusterIP.
    let at_pod = tcp_seen(&c, "pod-a/eth0");
    assert!(
        !at_pod.is_empty() && at_pod.iter().all(|(s, sp, ..)| (*s, *sp) == (VIP, 80)),
        "{at_pod:?}"
    );
    // No packet on the wire between the nodes carries the ClusterIP.
    assert!(tcp_seen(&c, "node-b/eth0")
        .iter()
        .all(|(s, _, d, ..)| *s != VIP && *d != VIP));
    // node-a's conntrack shows the DNAT binding.
    let list = c.conntrack(a).unwrap().list(c.now());
    let want = format!("src=10.244.0.5 dst=10.96.0.10 sport={sport} dport=80 src=10.244.1.20 dst=10.244.0.5 sport=80 dport={sport} [ASSURED]");
    assert!(list.contains(&want), "{list}");
    assert!(list.starts_with("tcp      6 "), "{list}");
}

#[test]
fn seed_with_masquerade_all_the_backend_sees_the_node() {
    let (c, a, pod_a) = seed(ClusterConfig {
        masquerade_all: true,
        ..ClusterConfig::default()
    });
    let r = &records(&c, pod_a)[0];
    assert_eq!(r.outcome, Outcome::Ok);
    let syn = tcp_seen(&c, "backend/eth0")
        .into_iter()
        .find(|s| s.4)
        .unwrap();
    assert_eq!(syn.0, NODE_A);
    assert!(syn.1 >= 1024, "an ephemeral port ({})", syn.1);
    let list = c.conntrack(a).unwrap().list(c.now());
    assert!(
        list.contains(&format!(
            "src=10.244.1.20 dst=192.168.1.100 sport=80 dport={}",
            syn.1
        )),
        "{list}"
    );
}

#[test]
fn three_endpoints_each_get_a_third_of_3000_connections() {
    let (mut c, a, b) = cluster(ClusterConfig {
        conntrack: CtConfig {
            max: 8192,
            ..CtConfig::default()
        },
        ..ClusterConfig::default()
    });
    let backends: Vec<_> = (0..3)
        .map(|i| {
            c.add_pod(
                PodSpec::new(&format!("web-{i}"), b).program(Program::HttpServer { port: 80 }),
            )
            .unwrap()
        })
        .collect();
    c.add_service(ServiceSpec::new("web", 80, 80, backends.clone()).cluster_ip(VIP))
        .unwrap();
    // kube-proxy writes `%0.10f` probabilities into iptables-restore; the kernel keeps them as
    // a 31-bit fraction, which iptables-save prints back as 0.33333333349.
    let proxy = c.dataplane(a).unwrap().proxy();
    let restore = proxy.iptables_restore();
    assert!(restore.contains("--probability 0.3333333333 "), "{restore}");
    assert!(restore.contains("--probability 0.5000000000 "), "{restore}");
    let save = proxy.iptables_save();
    assert!(save.contains("--probability 0.33333333349 "), "{save}");
    assert!(save.contains("--probability 0.50000000000 "), "{save}");
    let client = c
        .add_pod(
            PodSpec::new("load", a).program(Program::Client(
                ClientSpec::http("load", VIP, 80)
                    .count(3000)
                    .concurrency(50),
            )),
        )
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(120)));
    assert!(records(&c, client).iter().all(|r| r.outcome == Outcome::Ok));
    let ct = c.conntrack(a).unwrap();
    let mut per_backend = [0usize; 3];
    for idx in ct.table().used() {
        let reply = ct.entry(idx).tuple(1);
        for (i, id) in backends.iter().enumerate() {
            if smoltcp::wire::IpAddress::Ipv4(reply.src) == c.pod(*id).unwrap().addrs().ip.address()
            {
                per_backend[i] += 1;
            }
        }
    }
    assert_eq!(per_backend.iter().sum::<usize>(), 3000);
    for n in per_backend {
        assert!(
            (910..=1090).contains(&n),
            "{per_backend:?} (each within 3% of 1000)"
        );
    }
}

#[test]
fn a_service_without_endpoints_refuses() {
    let (mut c, a, _) = cluster(ClusterConfig::default());
    let ip = c
        .add_service(ServiceSpec::new("empty", 80, 80, vec![]))
        .unwrap();
    let client = c
        .add_pod(
            PodSpec::new("client", a).program(Program::Client(ClientSpec::http("empty", ip, 80))),
        )
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(5)));
    let r = &records(&c, client)[0];
    assert_eq!(r.outcome, Outcome::Refused);
    assert_eq!(
        r.error.as_deref(),
        Some("ECONNREFUSED: ICMP port unreachable from 10.244.0.1")
    );
}

#[test]
fn hairpin_a_pod_reaching_its_own_service() {
    let (mut c, a, _) = cluster(ClusterConfig::default());
    // The pod serves and calls its own Service, and is its only backend.
    let me = c
        .add_pod(
            PodSpec::new("self", a)
                .ip([10, 244, 0, 7])
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    c.add_service(ServiceSpec::new("self", 80, 80, vec![me]).cluster_ip(VIP))
        .unwrap();
    c.start_program(me, Program::Client(ClientSpec::http("hairpin", VIP, 80)))
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(5)));
    let r = &records(&c, me)[0];
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    // The server side saw the connection from the node's cni0 address (hairpin masquerade).
    let syn = tcp_seen(&c, "self/eth0")
        .into_iter()
        .find(|s| s.4 && s.3 == 80)
        .unwrap();
    assert_eq!(syn.0, Ipv4Address::new(10, 244, 0, 1));
}

/// A pod calling its own Service: `(cluster, node, pod)` after the run, with or without hairpin
/// mode on its `cni0` port.
fn hairpin_run(hairpin_mode: bool, client: ClientSpec) -> (Cluster, NodeId, PodId) {
    let (mut c, a, _) = cluster(ClusterConfig {
        hairpin_mode,
        ..ClusterConfig::default()
    });
    let me = c
        .add_pod(
            PodSpec::new("self", a)
                .ip([10, 244, 0, 7])
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    c.add_service(ServiceSpec::new("self", 80, 80, vec![me]).cluster_ip(VIP))
        .unwrap();
    c.start_program(me, Program::Client(client)).unwrap();
    c.run_until_done(Duration::from_secs(10));
    (c, a, me)
}

/// IPv4 frames the trace saw leave `iface`: ((source MAC, destination MAC), source, destination,
/// TTL, whether it is a SYN).
type Sent = (
    (
        smoltcp::wire::EthernetAddress,
        smoltcp::wire::EthernetAddress,
    ),
    Ipv4Address,
    Ipv4Address,
    u8,
    bool,
);

fn ipv4_sent(c: &Cluster, iface: &str) -> Vec<Sent> {
    let t = c.trace();
    t.events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Sent { iface: i, frame } if t.name(*i) == iface => Some(&frame.bytes),
            _ => None,
        })
        .filter_map(|bytes| {
            let eth = EthernetFrame::new_checked(&bytes[..]).ok()?;
            if eth.ethertype() != EthernetProtocol::Ipv4 {
                return None;
            }
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let (src, dst, ttl) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
            let syn = ip.next_header() == IpProtocol::Tcp
                && TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.syn() && !t.ack());
            Some(((eth.src_addr(), eth.dst_addr()), src, dst, ttl, syn))
        })
        .collect()
}

#[test]
fn hairpin_syn_is_bridged_back_out_of_its_own_port_untouched_by_routing() {
    let (c, a, me) = hairpin_run(true, ClientSpec::http("hairpin", VIP, 80));
    assert_eq!(records(&c, me)[0].outcome, Outcome::Ok);
    let pod_mac = smoltcp::wire::EthernetAddress([0x0a, 0x58, 10, 244, 0, 7]);
    let cni0_mac = smoltcp::wire::EthernetAddress([0x0a, 0x58, 10, 244, 0, 1]);
    // Out of the pod's own veth: masqueraded to cni0's address, but bridged: TTL 64 and the
    // pod's own source MAC, to the pod's MAC.
    let syn = ipv4_sent(&c, "node-a/veth00000000")
        .into_iter()
        .find(|f| f.4)
        .expect("the SYN goes back out of the pod's port");
    assert_eq!(
        (syn.1, syn.2),
        (
            Ipv4Address::new(10, 244, 0, 1),
            Ipv4Address::new(10, 244, 0, 7)
        )
    );
    assert_eq!(syn.3, 64, "TTL not decremented");
    assert_eq!(syn.0 .0, pod_mac, "source MAC kept");
    assert_eq!(syn.0 .1, pod_mac);
    // On its way, cni0's neighbour layer sent it (tcpdump -i cni0: DNATed, not yet masqueraded).
    let via = ipv4_sent(&c, "node-a/cni0")
        .into_iter()
        .find(|f| f.4)
        .unwrap();
    assert_eq!(
        (via.1, via.2, via.3),
        (
            Ipv4Address::new(10, 244, 0, 7),
            Ipv4Address::new(10, 244, 0, 7),
            64
        )
    );
    assert_eq!(via.0, (cni0_mac, pod_mac));
    // The host never routed nor received any of it (IpForwDatagrams 0, nothing to INPUT), and
    // the pod's cni0 never saw the segments come in.
    let stats = c.node(a).unwrap().stats();
    assert_eq!((stats.forwarded, stats.local_in), (0, 0), "{stats:?}");
    assert!(tcp_seen(&c, "node-a/cni0").is_empty());
    // Replies too: the server's SYN-ACK to 10.244.0.1 comes back as the Service, bridged.
    let synack = ipv4_sent(&c, "node-a/veth00000000")
        .into_iter()
        .find(|f| f.1 == VIP)
        .unwrap();
    assert_eq!((synack.3, synack.0 .0), (64, pod_mac));
}

#[test]
fn without_hairpin_mode_the_bridge_drops_the_hairpin_syn_and_the_client_times_out() {
    let (c, a, me) = hairpin_run(
        false,
        ClientSpec::http("hairpin", VIP, 80).timeout(Duration::from_secs(3)),
    );
    assert_eq!(records(&c, me)[0].outcome, Outcome::Timeout);
    assert!(
        ipv4_sent(&c, "node-a/veth00000000").iter().all(|f| !f.4),
        "no SYN leaves the port"
    );
    let drops: Vec<String> = c
        .trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Dropped { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert!(!drops.is_empty());
    assert!(
        drops.iter().all(|r| r.contains("not in hairpin mode")),
        "{drops:?}"
    );
    assert_eq!(c.node(a).unwrap().stats().forwarded, 0);
    // And the pod does not see its own ARP request come back.
    assert!(!c.trace().tcpdump().contains("self/eth0 In  ARP, Request"));
}

#[test]
fn with_hairpin_mode_the_pod_gets_its_own_arp_request_back_and_ignores_it() {
    let (c, _, me) = hairpin_run(true, ClientSpec::http("hairpin", VIP, 80));
    assert_eq!(records(&c, me)[0].outcome, Outcome::Ok);
    let dump = c.trace().tcpdump();
    assert!(
        dump.contains("self/eth0 In  ARP, Request who-has 10.244.0.1"),
        "{dump}"
    );
    // smoltcp answers only ARP for its own address: no reply, no second request.
    assert!(!dump.contains("ARP, Reply 10.244.0.7"), "{dump}");
    assert_eq!(dump.matches("self/eth0 Out ARP").count(), 1, "{dump}");
}

#[test]
fn a_backend_on_the_same_node_is_bridged_even_while_its_mac_is_being_resolved() {
    // The backend never spoke, so the node must ARP for it while the first SYNs wait; the
    // client opens several connections at once so that other packets cross the hooks meanwhile.
    let (mut c, a, _) = cluster(ClusterConfig::default());
    let web = c
        .add_pod(
            PodSpec::new("web", a)
                .ip([10, 244, 0, 9])
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    c.add_service(ServiceSpec::new("web", 80, 80, vec![web]).cluster_ip(VIP))
        .unwrap();
    let client = c
        .add_pod(PodSpec::new("client", a).ip(POD_A).program(Program::Client(
            ClientSpec::http("load", VIP, 80).count(4).concurrency(4),
        )))
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(5)));
    assert!(records(&c, client).iter().all(|r| r.outcome == Outcome::Ok));
    // Bridged, not routed: TTL 64 and the client's MAC on the backend's port; no masquerade.
    let to_web: Vec<Sent> = ipv4_sent(&c, "node-a/veth00000000")
        .into_iter()
        .filter(|f| f.4)
        .collect();
    assert_eq!(to_web.len(), 4, "{to_web:?}");
    for f in &to_web {
        assert_eq!(
            (f.1, f.2, f.3),
            (POD_A, Ipv4Address::new(10, 244, 0, 9), 64)
        );
        assert_eq!(
            f.0 .0,
            smoltcp::wire::EthernetAddress([0x0a, 0x58, 10, 244, 0, 5])
        );
    }
    assert_eq!(c.node(a).unwrap().stats().forwarded, 0);
    let ct = c.dataplane(a).unwrap().conntrack().stats();
    // `insert` stays 0 (Linux 6.x counts only ctnetlink insertions); 4 entries were made.
    assert_eq!((ct.insert, ct.invalid), (0, 0), "{ct:?}");
}

fn nodeport(external_local: bool) -> (Cluster, PodId, PodId) {
    let (mut c, _a, b) = cluster(ClusterConfig::default());
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
    svc.external_local = external_local;
    c.add_service(svc).unwrap();
    let spec = ClientSpec::http("to-node-a", NODE_A, 30080).timeout(Duration::from_secs(3));
    let spec_b = ClientSpec::http("to-node-b", Ipv4Address::new(192, 168, 1, 101), 30080)
        .timeout(Duration::from_secs(3));
    let ext = c
        .add_external(
            "internet",
            [203, 0, 113, 10],
            vec![Program::Client(spec), Program::Client(spec_b)],
        )
        .unwrap();
    c.run_until_done(Duration::from_secs(10));
    (c, ext, backend)
}

#[test]
fn nodeport_cluster_policy_masquerades_to_the_node() {
    let (c, ext, _) = nodeport(false);
    let recs = records(&c, ext);
    assert!(recs.iter().all(|r| r.outcome == Outcome::Ok), "{recs:?}");
    let syns: Vec<_> = tcp_seen(&c, "backend/eth0")
        .into_iter()
        .filter(|s| s.4)
        .collect();
    // MASQUERADE takes the address of the interface the packet leaves by: via node-a that is
    // its eth0 (192.168.1.100); via node-b, where the backend is local, its cni0 (10.244.1.1).
    assert!(syns.iter().any(|s| s.0 == NODE_A), "{syns:?}");
    assert!(
        syns.iter().any(|s| s.0 == Ipv4Address::new(10, 244, 1, 1)),
        "{syns:?}"
    );
    assert!(
        syns.iter()
            .all(|s| s.0 != Ipv4Address::new(203, 0, 113, 10)),
        "{syns:?}"
    );
}

#[test]
fn nodeport_local_policy_keeps_the_client_ip_and_drops_without_local_endpoints() {
    let (c, ext, _) = nodeport(true);
    let recs = records(&c, ext);
    let via_a = recs
        .iter()
        .find(|r| r.remote.addr == smoltcp::wire::IpAddress::Ipv4(NODE_A))
        .unwrap();
    assert_eq!(
        via_a.outcome,
        Outcome::Timeout,
        "node-a has no local endpoint: DROP"
    );
    let via_b = recs
        .iter()
        .find(|r| r.remote.addr != smoltcp::wire::IpAddress::Ipv4(NODE_A))
        .unwrap();
    assert_eq!(via_b.outcome, Outcome::Ok);
    let syn = tcp_seen(&c, "backend/eth0")
        .into_iter()
        .find(|s| s.4)
        .unwrap();
    assert_eq!(
        syn.0,
        Ipv4Address::new(203, 0, 113, 10),
        "the client IP is preserved"
    );
}

#[test]
fn pod_traffic_to_the_outside_is_masqueraded_and_unroutable_without() {
    for (proxy, ok) in [(Proxy::Iptables, true), (Proxy::None, false)] {
        let (mut c, a, _) = cluster(ClusterConfig {
            proxy,
            ..ClusterConfig::default()
        });
        let ext = Ipv4Address::new(203, 0, 113, 10);
        c.add_external("internet", ext, vec![Program::HttpServer { port: 80 }])
            .unwrap();
        let client = c
            .add_pod(PodSpec::new("client", a).ip(POD_A).program(Program::Client(
                ClientSpec::http("out", ext, 80).timeout(Duration::from_secs(2)),
            )))
            .unwrap();
        c.run_until_done(Duration::from_secs(5));
        let r = &records(&c, client)[0];
        assert_eq!(r.outcome == Outcome::Ok, ok, "{proxy:?}: {r:?}");
        let syn = tcp_seen(&c, "internet/eth0")
            .into_iter()
            .find(|s| s.4)
            .unwrap();
        assert_eq!(syn.0, if ok { NODE_A } else { POD_A });
    }
}

#[test]
fn a_full_table_drops_new_syns_while_established_flows_go_on() {
    let ct = CtConfig {
        max: 4,
        buckets: 1,
        ..CtConfig::default()
    };
    let (mut c, a, b) = cluster(ClusterConfig {
        conntrack: ct,
        ..ClusterConfig::default()
    });
    let web = c
        .add_pod(PodSpec::new("web", b).program(Program::HttpServer { port: 80 }))
        .unwrap();
    let sink = c
        .add_pod(PodSpec::new("sink", b).program(Program::TcpDiscard { port: 9 }))
        .unwrap();
    let ip = |c: &Cluster, p: PodId| match c.pod(p).unwrap().addrs().ip.address() {
        smoltcp::wire::IpAddress::Ipv4(ip) => ip,
    };
    let (web_ip, sink_ip) = (ip(&c, web), ip(&c, sink));
    let upload = ClientSpec::http("upload", sink_ip, 9)
        .request(Request::Upload(4 << 20))
        .timeout(Duration::from_secs(60));
    let gets = ClientSpec::http("gets", web_ip, 80)
        .count(6)
        .interval(Duration::from_millis(1))
        .timeout(Duration::from_secs(2));
    let client = c
        .add_pod(
            PodSpec::new("client", a)
                .program(Program::Client(upload))
                .program(Program::Client(gets)),
        )
        .unwrap();
    c.run_until_done(Duration::from_secs(60));
    let recs = records(&c, client);
    let up = recs.iter().find(|r| r.remote.port == 9).unwrap();
    assert_eq!(up.outcome, Outcome::Ok, "the established upload kept going");
    let gets: Vec<_> = recs.iter().filter(|r| r.remote.port == 80).collect();
    // 1 upload + 3 finished GETs (TIME_WAIT, assured) fill the 4 entries: later SYNs drop.
    assert_eq!(
        gets.iter().filter(|r| r.outcome == Outcome::Ok).count(),
        3,
        "{gets:?}"
    );
    assert!(
        gets.iter()
            .filter(|r| r.outcome == Outcome::Timeout)
            .count()
            >= 3,
        "{gets:?}"
    );
    let stats = c.conntrack(a).unwrap().stats();
    assert!(stats.drop >= 3, "{stats:?}");
    assert_eq!(stats.early_drop, 0);
    let full = c.trace().events().iter().filter(|e| matches!(&e.kind, EventKind::Dropped { reason, .. } if reason == "nf_conntrack: table full, dropping packet")).count();
    assert_eq!(full as u64, stats.drop);
}

#[test]
fn early_drop_evicts_unassured_entries_for_a_new_connection() {
    let ct = CtConfig {
        max: 4,
        buckets: 1,
        ..CtConfig::default()
    };
    let (mut c, a, b) = cluster(ClusterConfig {
        conntrack: ct,
        ..ClusterConfig::default()
    });
    c.add_pod(
        PodSpec::new("web", b)
            .ip(BACKEND)
            .program(Program::HttpServer { port: 80 }),
    )
    .unwrap();
    // Four SYNs to a pod that does not exist never get an answer: SYN_SENT, unassured.
    let ghost = ClientSpec::http("ghost", Ipv4Address::new(10, 244, 1, 99), 80)
        .count(4)
        .concurrency(4)
        .timeout(Duration::from_secs(1));
    let real = ClientSpec::http("real", BACKEND, 80).start(podnet::Instant::from_millis(500));
    let client = c
        .add_pod(
            PodSpec::new("client", a)
                .program(Program::Client(ghost))
                .program(Program::Client(real)),
        )
        .unwrap();
    c.run_until_done(Duration::from_secs(10));
    let real = records(&c, client)
        .into_iter()
        .find(|r| r.remote.port == 80 && r.remote.addr == smoltcp::wire::IpAddress::Ipv4(BACKEND))
        .unwrap();
    assert_eq!(real.outcome, Outcome::Ok);
    assert_eq!(c.conntrack(a).unwrap().stats().early_drop, 4);
}

#[test]
fn rules_walked_grow_with_services_in_iptables_and_not_in_nftables() {
    let walked = |proxy: Proxy, services: u32| -> u32 {
        let (mut c, a, b) = cluster(ClusterConfig {
            proxy,
            ..ClusterConfig::default()
        });
        let backend = c
            .add_pod(
                PodSpec::new("backend", b)
                    .ip(BACKEND)
                    .program(Program::HttpServer { port: 80 }),
            )
            .unwrap();
        for i in 0..services {
            c.add_service(ServiceSpec::new(
                &format!("filler-{i}"),
                80,
                80,
                vec![backend],
            ))
            .unwrap();
        }
        c.add_service(
            ServiceSpec::new("web", 80, 80, vec![backend]).cluster_ip([10, 111, 255, 250]),
        )
        .unwrap();
        c.add_pod(
            PodSpec::new("client", a).program(Program::Client(ClientSpec::http(
                "web",
                Ipv4Address::new(10, 111, 255, 250),
                80,
            ))),
        )
        .unwrap();
        assert!(c.run_until_done(Duration::from_secs(5)));
        c.dataplane(a).unwrap().stats().last_rules_walked
    };
    let (i1, i100) = (walked(Proxy::Iptables, 1), walked(Proxy::Iptables, 100));
    assert!(
        i100 >= i1 + 99,
        "iptables walks KUBE-SERVICES rule by rule: {i1} vs {i100}"
    );
    let (n1, n100) = (walked(Proxy::Nftables, 1), walked(Proxy::Nftables, 100));
    assert_eq!(n1, n100, "nftables looks the service up in a map");
}

/// A masqueraded SYN to an address nobody routes: the edge router's ICMP net unreachable comes
/// back to the node's address, conntrack finds it RELATED, and NAT translates it (and the packet
/// it quotes) back to the pod, whose connect() fails.
#[test]
fn icmp_errors_from_beyond_the_nat_reach_the_pod() {
    let (mut c, a, _) = cluster(ClusterConfig::default());
    let client = c
        .add_pod(
            PodSpec::new("client", a)
                .ip(POD_A)
                .program(Program::Client(ClientSpec::http(
                    "far",
                    Ipv4Address::new(172, 16, 0, 1),
                    80,
                ))),
        )
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(5)));
    let r = &records(&c, client)[0];
    assert_eq!(r.outcome, Outcome::Refused);
    assert_eq!(
        r.error.as_deref(),
        Some("ENETUNREACH: ICMP net unreachable from 192.168.1.254")
    );
}

#[test]
fn session_affinity_keeps_a_client_on_one_backend() {
    let (mut c, a, b) = cluster(ClusterConfig::default());
    let backends: Vec<_> = (0..3)
        .map(|i| {
            c.add_pod(
                PodSpec::new(&format!("web-{i}"), b).program(Program::HttpServer { port: 80 }),
            )
            .unwrap()
        })
        .collect();
    let mut svc = ServiceSpec::new("sticky", 80, 80, backends).cluster_ip(VIP);
    svc.session_affinity = Some(10800);
    c.add_service(svc).unwrap();
    let client = c
        .add_pod(PodSpec::new("client", a).program(Program::Client(
            ClientSpec::http("sticky", VIP, 80).count(30),
        )))
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(30)));
    assert!(records(&c, client).iter().all(|r| r.outcome == Outcome::Ok));
    let ct = c.conntrack(a).unwrap();
    let backends: std::collections::BTreeSet<_> = ct
        .table()
        .used()
        .map(|i| ct.entry(i).tuple(1).src)
        .collect();
    assert_eq!(
        backends.len(),
        1,
        "one backend for all 30 connections: {backends:?}"
    );
}

#[test]
fn the_trace_tells_what_each_hook_did() {
    let (c, _, _) = seed(ClusterConfig::default());
    let notes: Vec<String> = c
        .trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Hook { iface, notes, .. }
                if c.trace().name(*iface).starts_with("node-a/") =>
            {
                Some(notes.clone())
            }
            _ => None,
        })
        .flatten()
        .collect();
    let has = |needle: &str| notes.iter().any(|n| n.contains(needle));
    assert!(has("conntrack: NEW"), "{notes:#?}");
    assert!(
        has("-j KUBE-SVC-"),
        "the KUBE-SERVICES rule that matched: {notes:#?}"
    );
    assert!(has("-j DNAT --to-destination 10.244.1.20:80"), "{notes:#?}");
    assert!(has("dst 10.96.0.10:80 -> 10.244.1.20:80"), "{notes:#?}");
    assert!(
        has("src 10.244.1.20:80 -> 10.96.0.10:80"),
        "the reply's reverse NAT: {notes:#?}"
    );
    assert!(has("rules walked"), "{notes:#?}");
    assert!(has("conntrack: confirmed"), "{notes:#?}");
}

/// Every frame anywhere, after every rewrite, carries valid IPv4 and TCP/UDP/ICMP checksums.
#[test]
fn every_checksum_is_valid_after_every_rewrite() {
    use smoltcp::wire::{IpAddress, UdpPacket};
    for config in [
        ClusterConfig::default(),
        ClusterConfig {
            masquerade_all: true,
            ..ClusterConfig::default()
        },
    ] {
        let (c, _, _) = seed(config);
        let mut checked = 0;
        for e in c.trace().events() {
            let frame = match &e.kind {
                EventKind::Sent { frame, .. } | EventKind::Received { frame, .. } => frame,
                _ => continue,
            };
            let Ok(eth) = EthernetFrame::new_checked(&frame.bytes[..]) else {
                continue;
            };
            if eth.ethertype() != EthernetProtocol::Ipv4 {
                continue;
            }
            let ip = Ipv4Packet::new_checked(&frame.bytes[14..]).unwrap();
            assert!(ip.verify_checksum());
            let (s, d) = (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
            );
            let ok = match ip.next_header() {
                IpProtocol::Tcp => TcpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(&s, &d),
                IpProtocol::Udp => UdpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(&s, &d),
                IpProtocol::Icmp => smoltcp::wire::Icmpv4Packet::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(),
                _ => true,
            };
            assert!(ok, "bad checksum at {}: {:?}", e.time, frame.bytes);
            checked += 1;
        }
        assert!(checked > 30, "{checked}");
    }
}

/// A UDP datagram to a Service whose backend has no listener: the backend's ICMP port
/// unreachable quotes the DNATed packet; node-a translates the quote back to the ClusterIP
/// (and the outer source), so the client's socket gets ECONNREFUSED.
#[test]
fn port_unreachable_from_a_backend_reaches_the_client_as_the_service() {
    let (mut c, a, b) = cluster(ClusterConfig::default());
    let backend = c.add_pod(PodSpec::new("silent", b).ip(BACKEND)).unwrap();
    let mut svc = ServiceSpec::new("udp", 53, 53, vec![backend]).cluster_ip(VIP);
    svc.ports[0].protocol = podnet::kube_proxy::L4::Udp;
    c.add_service(svc).unwrap();
    let spec = ClientSpec::http("q", VIP, 53)
        .protocol(podnet::Protocol::Udp)
        .request(Request::Echo(b"q".to_vec()));
    let client = c
        .add_pod(PodSpec::new("client", a).program(Program::Client(spec)))
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(10)));
    let r = &records(&c, client)[0];
    assert_eq!(r.outcome, Outcome::Refused, "{r:?}");
    assert_eq!(
        r.error.as_deref(),
        Some("ECONNREFUSED: ICMP port unreachable from 10.96.0.10")
    );
}

// Packets that answer a Service connection's first packet, crafted and injected on the
// node's wires (as the kernel diff replays them), so that no pod's stack answers first.

/// An Ethernet frame around the IPv4 packet `ip`.
fn eth(
    src: smoltcp::wire::EthernetAddress,
    dst: smoltcp::wire::EthernetAddress,
    ip: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + ip.len()];
    let mut e = EthernetFrame::new_unchecked(&mut f[..]);
    e.set_src_addr(src);
    e.set_dst_addr(dst);
    e.set_ethertype(EthernetProtocol::Ipv4);
    e.payload_mut().copy_from_slice(ip);
    f
}

/// The pod asks for its gateway, so that the node (and its bridge) know the pod's MAC.
fn arp_gateway(c: &mut Cluster, pod: PodId) {
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetRepr};
    let a = *c.pod(pod).unwrap().addrs();
    let smoltcp::wire::IpAddress::Ipv4(ip) = a.ip.address();
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: a.mac,
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: a.gateway,
    };
    let e = EthernetRepr {
        src_addr: a.mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut frame = vec![0u8; e.buffer_len() + arp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
    e.emit(&mut f);
    arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    c.inject(podnet::cluster::Wire::Veth(pod), frame).unwrap();
}

/// The IPv4 packets sent on `pod`'s veth among `sent`.
fn ipv4_to(sent: &[(podnet::cluster::Wire, Vec<u8>)], pod: PodId) -> Vec<Vec<u8>> {
    sent.iter()
        .filter(|(w, f)| {
            *w == podnet::cluster::Wire::Veth(pod)
                && EthernetFrame::new_checked(&f[..]).unwrap().ethertype() == EthernetProtocol::Ipv4
        })
        .map(|(_, f)| f[14..].to_vec())
        .collect()
}

/// Node-a with a client pod (10.244.0.5), a backend (10.244.0.20:8080, same node, or on
/// node-b) behind `10.96.0.12:80`; both pods have asked for their gateway. No programs run.
fn crafted(backend_remote: bool) -> (Cluster, NodeId, PodId, PodId) {
    let (mut c, a, b) = cluster(ClusterConfig::default());
    let client = c
        .add_pod(PodSpec::new("client", a).ip([10, 244, 0, 5]))
        .unwrap();
    let bip: Ipv4Address = if backend_remote {
        Ipv4Address::new(10, 244, 1, 20)
    } else {
        Ipv4Address::new(10, 244, 0, 20)
    };
    let backend = c
        .add_pod(PodSpec::new("backend", if backend_remote { b } else { a }).ip(bip))
        .unwrap();
    c.add_service(ServiceSpec::new("web", 80, 8080, vec![backend]).cluster_ip([10, 96, 0, 12]))
        .unwrap();
    arp_gateway(&mut c, client);
    if !backend_remote {
        arp_gateway(&mut c, backend);
    }
    (c, a, client, backend)
}

#[test]
fn a_backend_rst_as_the_only_reply_leaves_as_the_service() {
    // Regression (kdiff corpus, tcp-rst trace 122): the RST killed the conntrack entry before
    // NAT ran, so it reached the client from 10.244.0.20:8080. The kernel (nf_ct_kill_acct)
    // unhashes the entry but lets the RST keep it: the client sees 10.96.0.12:80.
    let (mut c, a, client, backend) = crafted(false);
    let vip = Ipv4Address::new(10, 96, 0, 12);
    let bip = Ipv4Address::new(10, 244, 0, 20);
    let cip = Ipv4Address::new(10, 244, 0, 5);
    let (cmac, bmac) = (
        c.pod(client).unwrap().addrs().mac,
        c.pod(backend).unwrap().addrs().mac,
    );
    let gw_mac = c.node(a).unwrap().addrs().cni0_mac;
    let syn = podnet::packet::tcp(cip, 40000, vip, 80, "S", 1000, 0, 0);
    let sent = c
        .inject(podnet::cluster::Wire::Veth(client), eth(cmac, gw_mac, &syn))
        .unwrap();
    let to_backend = ipv4_to(&sent, backend);
    assert_eq!(to_backend.len(), 1, "{sent:?}");
    let d = Ipv4Packet::new_checked(&to_backend[0][..]).unwrap();
    assert_eq!(d.dst_addr(), bip, "bridged DNAT");

    let rst = podnet::packet::tcp(bip, 8080, cip, 40000, "RA", 0, 1001, 0);
    let sent = c
        .inject(podnet::cluster::Wire::Veth(backend), eth(bmac, cmac, &rst))
        .unwrap();
    let to_client = ipv4_to(&sent, client);
    assert_eq!(to_client.len(), 1, "{sent:?}");
    let ip = Ipv4Packet::new_checked(&to_client[0][..]).unwrap();
    assert!(ip.verify_checksum());
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (ip.src_addr(), tcp.src_port(), ip.dst_addr(), tcp.dst_port()),
        (vip, 80, cip, 40000)
    );
    assert!(tcp.rst());
    assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
    // Gone from the table, and freed once the RST was through.
    let ct = c.conntrack(a).unwrap();
    assert_eq!(ct.list(c.now()), "");
    assert_eq!(ct.count(), 0);
}

#[test]
fn time_exceeded_for_a_dnated_syn_comes_from_the_service_and_quotes_it() {
    // Regression (kdiff corpus, icmp-error traces 88 and 232): `icmp_send` attaches the SYN's
    // unconfirmed entry to the error (nf_ct_attach, RELATED in the reply direction) and
    // `nf_nat_icmp_reply_translation` at POSTROUTING rewrites the outer source to the
    // ClusterIP and the quote back to client -> ClusterIP:80; the entry dies with the SYN.
    let (mut c, a, client, _) = crafted(true);
    let vip = Ipv4Address::new(10, 96, 0, 12);
    let cip = Ipv4Address::new(10, 244, 0, 5);
    let cmac = c.pod(client).unwrap().addrs().mac;
    let gw_mac = c.node(a).unwrap().addrs().cni0_mac;
    let mut syn = podnet::packet::tcp(cip, 40001, vip, 80, "S", 1000, 0, 0);
    {
        let mut p = Ipv4Packet::new_unchecked(&mut syn[..]);
        p.set_hop_limit(1);
        p.fill_checksum();
    }
    let sent = c
        .inject(podnet::cluster::Wire::Veth(client), eth(cmac, gw_mac, &syn))
        .unwrap();
    let to_client = ipv4_to(&sent, client);
    assert_eq!(to_client.len(), 1, "{sent:?}");
    let ip = Ipv4Packet::new_checked(&to_client[0][..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (vip, cip));
    let icmp = smoltcp::wire::Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.msg_code()), (11.into(), 0));
    assert!(icmp.verify_checksum());
    let quoted = Ipv4Packet::new_checked(&ip.payload()[8..]).unwrap();
    assert!(quoted.verify_checksum());
    let qt = TcpPacket::new_unchecked(quoted.payload());
    assert_eq!(
        (
            quoted.src_addr(),
            qt.src_port(),
            quoted.dst_addr(),
            qt.dst_port()
        ),
        (cip, 40001, vip, 80)
    );
    assert!(qt.verify_checksum(&quoted.src_addr().into(), &quoted.dst_addr().into()));
    let ct = c.conntrack(a).unwrap();
    assert_eq!(ct.list(c.now()), "", "the SYN's entry was never confirmed");
    assert_eq!(ct.count(), 0);
}
