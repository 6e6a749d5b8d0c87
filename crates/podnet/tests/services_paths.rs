//! Service packets off the main path: a pod reaching its own Service (hairpin mode) or a
//! backend on its own node (bridged DNAT), and the ICMP errors and resets that answer a
//! Service's packets from beyond the NAT.

#[path = "support/services.rs"]
mod common;

use common::*;
use podnet::trace::EventKind;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeId, Outcome, PodId, PodSpec, Program,
    Request, ServiceSpec,
};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket,
};

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
    let ip = podnet::v4(a.ip.address());
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
fn ipv4_to(sent: &[(podnet::cluster::Wire, podnet::link::Frame)], pod: PodId) -> Vec<Vec<u8>> {
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
