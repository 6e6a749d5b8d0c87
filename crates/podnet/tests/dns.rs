//! DNS in the engine: a DNS server pod behind a kube-dns Service, and clients that resolve a
//! name through it (across the node's conntrack and DNAT) before they connect.

use podnet::kube_proxy::L4;
use podnet::program::dns::{self, Message};
use podnet::program::Resolve;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeId, Outcome, PodId, PodSpec, Program,
    ServicePortSpec, ServiceSpec,
};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet, UdpPacket,
};

const CLIENT: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
const DNS_POD: Ipv4Address = Ipv4Address::new(10, 244, 1, 53);
const WEB_POD: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);
const DNS_VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
const WEB_VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 20);

struct Setup {
    c: Cluster,
    node_a: NodeId,
    client: PodId,
}

/// node-a: the client; node-b: a DNS server (behind kube-system/kube-dns 10.96.0.10:53/UDP and
/// TCP) and a web server (behind default/web 10.96.0.20:80).
fn setup(dns_program: Option<Program>, clients: Vec<ClientSpec>) -> Setup {
    let mut c = Cluster::new(ClusterConfig::default());
    let a = c
        .add_node(podnet::NodeSpec::new("node-a", [192, 168, 1, 100]))
        .unwrap();
    let b = c
        .add_node(podnet::NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    let mut dns_spec = PodSpec::new("coredns", b).ip(DNS_POD);
    if let Some(p) = dns_program {
        dns_spec = dns_spec.program(p);
    }
    let dns_pod = c.add_pod(dns_spec).unwrap();
    let web = c
        .add_pod(
            PodSpec::new("web", b)
                .ip(WEB_POD)
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    let port = |name: &str, protocol| ServicePortSpec {
        name: name.into(),
        protocol,
        port: 53,
        target_port: 53,
        node_port: None,
    };
    let mut kube_dns = ServiceSpec::new("kube-dns", 53, 53, vec![dns_pod]).cluster_ip(DNS_VIP);
    kube_dns.namespace = "kube-system".into();
    kube_dns.ports = vec![port("dns", L4::Udp), port("dns-tcp", L4::Tcp)];
    c.add_service(kube_dns).unwrap();
    c.add_service(ServiceSpec::new("web", 80, 80, vec![web]).cluster_ip(WEB_VIP))
        .unwrap();
    let mut spec = PodSpec::new("client", a).ip(CLIENT);
    for s in clients {
        spec = spec.program(Program::Client(s));
    }
    let client = c.add_pod(spec).unwrap();
    Setup {
        c,
        node_a: a,
        client,
    }
}

fn coredns() -> Program {
    Program::DnsServer {
        port: 53,
        records: vec![
            ("web.default.svc.cluster.local.".into(), WEB_VIP),
            ("kube-dns.kube-system.svc.cluster.local".into(), DNS_VIP),
        ],
    }
}

fn resolving(name: &str) -> ClientSpec {
    ClientSpec::http("web", Ipv4Address::UNSPECIFIED, 80)
        .resolve(Resolve::cluster(name, DNS_VIP, "default"))
}

fn records(c: &Cluster, pod: PodId) -> Vec<podnet::ConnRecord> {
    c.pod(pod).unwrap().connections().cloned().collect()
}

/// Every UDP datagram received on `iface`: (src, sport, dst, dport, payload).
fn udp_seen(c: &Cluster, iface: &str) -> Vec<(Ipv4Address, u16, Ipv4Address, u16, Vec<u8>)> {
    c.trace()
        .received_on(iface)
        .filter_map(|(_, frame)| {
            let eth = EthernetFrame::new_checked(frame).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if eth.ethertype() != EthernetProtocol::Ipv4 || ip.next_header() != IpProtocol::Udp {
                return None;
            }
            let u = UdpPacket::new_checked(ip.payload()).ok()?;
            Some((
                ip.src_addr(),
                u.src_port(),
                ip.dst_addr(),
                u.dst_port(),
                u.payload().to_vec(),
            ))
        })
        .collect()
}

#[test]
fn a_short_name_resolves_through_the_kube_dns_service() {
    let mut s = setup(Some(coredns()), vec![resolving("web").count(3)]);
    assert!(s.c.run_until_done(Duration::from_secs(10)));
    let recs = records(&s.c, s.client);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert_eq!(r.remote.to_string(), "10.96.0.20:80");
    }
    let first = recs.iter().find(|r| r.id == 0).unwrap();
    assert!(first.dns_time.unwrap() > Duration::ZERO, "{first:?}");
    assert!(
        recs.iter()
            .filter(|r| r.id > 0)
            .all(|r| r.dns_time == Some(Duration::ZERO)),
        "the answer is cached: {recs:?}"
    );

    // One query: `web` has no dot, so the first search domain comes first, and answers.
    let sent = udp_seen(&s.c, "node-a/veth00000002");
    let queries: Vec<_> = sent.iter().filter(|u| u.3 == 53).collect();
    assert_eq!(queries.len(), 1, "{sent:?}");
    let (src, sport, dst, _, payload) = queries[0];
    assert_eq!((*src, *dst), (CLIENT, DNS_VIP));
    let q = Message::parse(payload).unwrap();
    assert_eq!(q.questions[0].name, "web.default.svc.cluster.local");
    assert_eq!(q.questions[0].qtype, dns::TYPE_A);
    // DNATed to the DNS pod; its answer goes back from the ClusterIP.
    let at_dns = udp_seen(&s.c, "coredns/eth0");
    assert!(
        at_dns
            .iter()
            .any(|u| (u.0, u.1, u.2, u.3) == (CLIENT, *sport, DNS_POD, 53)),
        "{at_dns:?}"
    );
    let answers = udp_seen(&s.c, "client/eth0");
    let (asrc, asport, _, adport, apayload) = &answers[0];
    assert_eq!((*asrc, *asport, *adport), (DNS_VIP, 53, *sport));
    let a = Message::parse(apayload).unwrap();
    assert_eq!(a.header.id, q.header.id);
    assert_eq!(a.answers[0].a(), Some(WEB_VIP));

    // node-a's conntrack: the query's entry, DNATed, replied, never assured.
    let ct = s.c.conntrack(s.node_a).unwrap().list(s.c.now());
    let line = ct
        .lines()
        .find(|l| l.starts_with("udp") && l.contains("dport=53"))
        .unwrap_or_else(|| panic!("{ct}"));
    let want = format!(
        "src=10.244.0.5 dst=10.96.0.10 sport={sport} dport=53 src=10.244.1.53 dst=10.244.0.5 sport=53 dport={sport}"
    );
    assert!(line.contains(&want), "{line}");
    assert!(
        !line.contains("[ASSURED]") && !line.contains("[UNREPLIED]"),
        "{line}"
    );
}

#[test]
fn a_fully_qualified_name_tries_the_search_list_first() {
    let mut s = setup(
        Some(coredns()),
        vec![resolving("web.default.svc.cluster.local")],
    );
    assert!(s.c.run_until_done(Duration::from_secs(10)));
    let r = &records(&s.c, s.client)[0];
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.remote.to_string(), "10.96.0.20:80");
    // ndots:5: three NXDOMAIN answers, then the name as is.
    let names: Vec<String> = udp_seen(&s.c, "coredns/eth0")
        .iter()
        .filter(|u| u.3 == 53)
        .map(|u| Message::parse(&u.4).unwrap().questions[0].name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "web.default.svc.cluster.local.default.svc.cluster.local",
            "web.default.svc.cluster.local.svc.cluster.local",
            "web.default.svc.cluster.local.cluster.local",
            "web.default.svc.cluster.local",
        ]
    );
    // Each query from its own socket.
    let ports: std::collections::BTreeSet<u16> =
        udp_seen(&s.c, "coredns/eth0").iter().map(|u| u.1).collect();
    assert_eq!(ports.len(), 4);
}

#[test]
fn an_unknown_name_is_eai_noname_without_a_connection() {
    let mut s = setup(Some(coredns()), vec![resolving("nosuch").count(2)]);
    assert!(s.c.run_until_done(Duration::from_secs(10)));
    let recs = records(&s.c, s.client);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.outcome, Outcome::Refused, "{r:?}");
        assert_eq!(r.error.as_deref(), Some("EAI_NONAME: nosuch"));
        assert_eq!(r.remote.to_string(), "0.0.0.0:80");
    }
    assert_eq!(
        udp_seen(&s.c, "coredns/eth0")
            .iter()
            .filter(|u| u.3 == 53)
            .count(),
        4,
        "three search domains and the name itself"
    );
    // No TCP at all.
    assert!(!s.c.trace().tcpdump().contains("Flags [S]"));
}

#[test]
fn no_answer_is_eai_again() {
    // A nameserver pod that runs nothing: smoltcp answers port unreachable, a hard error, and
    // glibc gives up at once after its two attempts. (Asked straight, not through the Service:
    // see the report about quoted packets of RELATED errors.)
    let direct = ClientSpec::http("web", Ipv4Address::UNSPECIFIED, 80)
        .resolve(Resolve::cluster("web", DNS_POD, "default"));
    let mut s = setup(None, vec![direct]);
    assert!(s.c.run_until_done(Duration::from_secs(30)));
    let r = &records(&s.c, s.client)[0];
    assert_eq!(r.outcome, Outcome::Refused, "{r:?}");
    let e = r.error.as_deref().unwrap();
    assert!(
        e.starts_with("EAI_AGAIN: web (ECONNREFUSED: ICMP port unreachable from 10.244.1.53"),
        "{e}"
    );
    assert!(r.dns_time.unwrap() < Duration::from_millis(10), "{r:?}");
    let ports: std::collections::BTreeSet<u16> =
        udp_seen(&s.c, "coredns/eth0").iter().map(|u| u.1).collect();
    assert_eq!(ports.len(), 2, "a new socket after the error");

    // A DNS server whose link loses everything: every attempt times out.
    let mut s = setup(Some(coredns()), vec![resolving("web")]);
    let dns_pod = s.c.pod_by_name("coredns").unwrap();
    assert!(s.c.set_pod_link(
        dns_pod,
        podnet::LinkConfig {
            loss: 1.0,
            ..podnet::LinkConfig::default()
        }
    ));
    assert!(s.c.run_until_done(Duration::from_secs(30)));
    let r = &records(&s.c, s.client)[0];
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    assert_eq!(r.error.as_deref(), Some("EAI_AGAIN: web"));
    assert_eq!(r.dns_time, Some(Duration::from_secs(10)), "{r:?}");
    // The same query, sent twice from the same port.
    let sent: Vec<_> = udp_seen(&s.c, "node-a/veth00000002")
        .into_iter()
        .filter(|u| u.3 == 53)
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1]);
}

#[test]
fn a_raw_udp_query_gets_the_answer() {
    // A UDP client sending a raw query straight to the DNS pod gets the answer back.
    let query = dns::encode_query(0x4242, "web.default.svc.cluster.local", dns::TYPE_A).unwrap();
    let raw = ClientSpec::http("raw", DNS_POD, 53)
        .protocol(podnet::Protocol::Udp)
        .request(podnet::Request::Echo(query.clone()));
    let mut s = setup(Some(coredns()), vec![raw]);
    assert!(s.c.run_until_done(Duration::from_secs(10)));
    let r = &records(&s.c, s.client)[0];
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let zone = dns::Zone::new(&[("web.default.svc.cluster.local".into(), WEB_VIP)]);
    let want = zone.respond(&query, dns::UDP_MAX).unwrap();
    assert_eq!(r.bytes_received, want.len() as u64);
}
