//! Services through conntrack, NAT and kube-proxy: the seed document's story, number by number.

#[path = "support/services.rs"]
mod common;

use common::*;
use podnet::conntrack::CtConfig;
use podnet::trace::EventKind;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, Outcome, PodId, PodSpec, Program, Proxy, Request,
    ServiceSpec,
};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket,
};

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
    let ip = |c: &Cluster, p: PodId| podnet::v4(c.pod(p).unwrap().addrs().ip.address());
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
