//! `cni: vxlan`: flannel's VXLAN backend. The seed Service flow crosses the nodes inside
//! UDP 8472, and the captured uplink holds the inner TCP handshake, checksums valid.

use podnet::node::vxlan::{FLAG_VNI, VNI, VXLAN_PORT};
use podnet::route::Dev;
use podnet::trace::EventKind;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Cni, Duration, NodeId, NodeSpec, Outcome, PodId, PodSpec,
    Program, ServiceSpec, TraceConfig,
};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket, TcpRepr,
    UdpPacket,
};

const POD_A: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
const BACKEND: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);
const VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
const NODE_A: Ipv4Address = Ipv4Address::new(192, 168, 1, 100);
const NODE_B: Ipv4Address = Ipv4Address::new(192, 168, 1, 101);

fn seed(cni: Cni) -> (Cluster, NodeId, NodeId, PodId) {
    let mut c = Cluster::new(ClusterConfig {
        cni,
        trace: TraceConfig::full(),
        ..ClusterConfig::default()
    });
    let a = c.add_node(NodeSpec::new("node-a", NODE_A)).unwrap();
    let b = c.add_node(NodeSpec::new("node-b", NODE_B)).unwrap();
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
                .program(Program::Client(ClientSpec::http("web", VIP, 80).count(3))),
        )
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(10)));
    (c, a, b, pod_a)
}

fn iface(c: &Cluster, name: &str) -> podnet::trace::IfaceId {
    c.trace()
        .ifaces()
        .find(|(_, n)| *n == name)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no interface {name}"))
}

/// The frames of a pcap file (either byte order).
fn pcap_frames(file: &[u8]) -> Vec<Vec<u8>> {
    let le = match file[0..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file"),
    };
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= file.len() {
        let incl = u32_at(&file[at + 8..]) as usize;
        out.push(file[at + 16..at + 16 + incl].to_vec());
        at += 16 + incl;
    }
    assert_eq!(at, file.len(), "trailing bytes");
    out
}

/// One decapsulated VXLAN frame of an uplink capture.
#[derive(Debug)]
struct Encapsulated {
    outer_src: Ipv4Address,
    outer_dst: Ipv4Address,
    sport: u16,
    inner: Vec<u8>,
}

/// Every UDP 8472 frame of `frames`, its outer headers checked (IP checksum, TTL 64, DF clear,
/// a valid UDP checksum, VXLAN flags 0x08 and VNI 1).
fn decap(frames: &[Vec<u8>]) -> Vec<Encapsulated> {
    let mut out = Vec::new();
    for f in frames {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            continue;
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum(), "outer IPv4 checksum");
        if ip.next_header() != IpProtocol::Udp {
            continue;
        }
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        if udp.dst_port() != VXLAN_PORT {
            continue;
        }
        assert_eq!(ip.hop_limit(), 64);
        assert!(!ip.dont_frag(), "Linux VXLAN sends DF clear by default");
        // Regression (kernel replay of examples/vxlan.yaml): a VXLAN device over IPv4 sends
        // a UDP checksum unless created with `noudpcsum`.
        assert_ne!(udp.checksum(), 0, "udpcsum is the default over IPv4");
        assert!(udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
        assert!(
            (32768..=60999).contains(&udp.src_port()),
            "{}",
            udp.src_port()
        );
        assert!(f.len() <= 1514, "outer frame {} bytes", f.len());
        let v = udp.payload();
        assert_eq!(v[0], FLAG_VNI);
        assert_eq!(u32::from_be_bytes([0, v[4], v[5], v[6]]), VNI);
        assert_eq!(&v[1..4], &[0, 0, 0]);
        assert_eq!(v[7], 0);
        out.push(Encapsulated {
            outer_src: ip.src_addr(),
            outer_dst: ip.dst_addr(),
            sport: udp.src_port(),
            inner: v[8..].to_vec(),
        });
    }
    out
}

/// (src, dst, TCP repr fields) of an inner frame; checks the inner IP and TCP checksums.
fn inner_tcp(inner: &[u8]) -> Option<(Ipv4Address, Ipv4Address, bool, bool, Option<u16>)> {
    let eth = EthernetFrame::new_checked(inner).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum(), "inner IPv4 checksum");
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    let (s, d) = (ip.src_addr().into(), ip.dst_addr().into());
    assert!(t.verify_checksum(&s, &d), "inner TCP checksum");
    let repr = TcpRepr::parse(&t, &s, &d, &ChecksumCapabilities::default()).unwrap();
    Some((
        ip.src_addr(),
        ip.dst_addr(),
        t.syn(),
        t.ack(),
        repr.max_seg_size,
    ))
}

#[test]
fn seed_service_flow_works_over_vxlan_and_the_backend_sees_the_pod() {
    let (c, _, _, pod_a) = seed(Cni::Vxlan);
    let records: Vec<_> = c
        .pod(pod_a)
        .unwrap()
        .clients()
        .flat_map(|cl| cl.records().to_vec())
        .collect();
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert_eq!(r.remote.to_string(), "10.96.0.10:80");
    }
    // The backend's SYN comes from Pod A itself (DNAT on node-a, no masquerade).
    let syn_at_backend = c.trace().events().iter().any(|e| match &e.kind {
        EventKind::Received { iface: i, frame } if c.trace().name(*i) == "backend/eth0" => {
            inner_tcp(&frame.bytes)
                .is_some_and(|(s, d, syn, ack, _)| s == POD_A && d == BACKEND && syn && !ack)
        }
        _ => false,
    });
    assert!(syn_at_backend);
}

#[test]
fn node_a_uplink_carries_the_handshake_inside_udp_8472() {
    let (c, a, b, _) = seed(Cni::Vxlan);
    let mac_a = c.node(a).unwrap().addrs().flannel_mac;
    let mac_b = c.node(b).unwrap().addrs().flannel_mac;
    let eth0 = iface(&c, "node-a/eth0");
    let frames = pcap_frames(c.trace().pcap(eth0).unwrap().as_bytes());
    let encap = decap(&frames);
    assert!(!encap.is_empty());
    let mut syn = None;
    let mut syn_ack = None;
    for e in &encap {
        let eth = EthernetFrame::new_checked(&e.inner[..]).unwrap();
        let Some((s, d, is_syn, is_ack, mss)) = inner_tcp(&e.inner) else {
            continue;
        };
        if e.outer_src == NODE_A {
            assert_eq!(e.outer_dst, NODE_B);
            assert_eq!((eth.src_addr(), eth.dst_addr()), (mac_a, mac_b));
            assert_eq!((s, d), (POD_A, BACKEND), "inner packet already DNATed");
            if is_syn && !is_ack && syn.is_none() {
                syn = Some((mss, e.sport));
            }
        } else {
            assert_eq!((e.outer_src, e.outer_dst), (NODE_B, NODE_A));
            assert_eq!((eth.src_addr(), eth.dst_addr()), (mac_b, mac_a));
            assert_eq!((s, d), (BACKEND, POD_A));
            if is_syn && is_ack && syn_ack.is_none() {
                syn_ack = Some((mss, e.sport));
            }
        }
    }
    let (syn_mss, syn_sport) = syn.expect("the SYN crossed inside VXLAN");
    let (ack_mss, ack_sport) = syn_ack.expect("the SYN-ACK crossed inside VXLAN");
    // Pod MTU 1450: MSS 1450 - 20 - 20.
    assert_eq!(syn_mss, Some(1410));
    assert_eq!(ack_mss, Some(1410));
    // The source port hashes the flow symmetrically: both directions of a connection alike.
    assert_eq!(syn_sport, ack_sport);
    // Nothing crossed the underlay unencapsulated between the pods.
    for f in &frames {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        if eth.ethertype() == EthernetProtocol::Ipv4 {
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            assert!(!(ip.src_addr() == POD_A || ip.dst_addr() == POD_A));
        }
    }
    // The inner frames are also seen on node-a's flannel.1 (sent) and node-b's (received).
    let fa = iface(&c, "node-a/flannel.1");
    assert!(c.trace().pcap(fa).unwrap().packets() > 0);
    let fb = iface(&c, "node-b/flannel.1");
    assert!(c.trace().pcap(fb).unwrap().packets() > 0);
}

#[test]
fn flannel_routes_neighbours_and_fdb() {
    let (c, a, b, _) = seed(Cni::Vxlan);
    let na = c.node(a).unwrap();
    let mac_b = c.node(b).unwrap().addrs().flannel_mac;
    let routes: Vec<String> = na.routes().iter().map(|r| r.to_string()).collect();
    assert!(
        routes.contains(&"10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink".to_string()),
        "{routes:?}"
    );
    assert_eq!(
        na.neighbours()
            .lookup(Dev::Flannel, Ipv4Address::new(10, 244, 1, 0)),
        Some(mac_b)
    );
    assert_eq!(na.fdb().collect::<Vec<_>>(), vec![(mac_b, NODE_B)]);
    assert_eq!(na.addrs().vtep(), Ipv4Address::new(10, 244, 0, 0));
}

#[test]
fn default_cni_is_host_gw_without_encapsulation() {
    let (c, a, _, pod_a) = seed(Cni::default());
    assert_eq!(Cni::default(), Cni::Bridge);
    assert!(!c.node(a).unwrap().has_vxlan());
    let r = &c.pod(pod_a).unwrap().clients().next().unwrap().records()[0];
    assert_eq!(r.outcome, Outcome::Ok);
    let eth0 = iface(&c, "node-a/eth0");
    let frames = pcap_frames(c.trace().pcap(eth0).unwrap().as_bytes());
    assert!(decap(&frames).is_empty());
    // MSS 1460 on the wire: pod MTU 1500.
    let mss: Vec<_> = frames
        .iter()
        .filter_map(|f| inner_tcp(f))
        .filter(|t| t.2)
        .map(|t| t.4)
        .collect();
    assert!(
        !mss.is_empty() && mss.iter().all(|m| *m == Some(1460)),
        "{mss:?}"
    );
}

#[test]
fn native_is_routed_like_host_gw() {
    let (c, a, _, pod_a) = seed(Cni::Native);
    assert!(!c.node(a).unwrap().has_vxlan());
    let r = &c.pod(pod_a).unwrap().clients().next().unwrap().records()[0];
    assert_eq!(r.outcome, Outcome::Ok);
    let routes: Vec<String> = c
        .node(a)
        .unwrap()
        .routes()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(routes.contains(&"10.244.1.0/24 via 192.168.1.101 dev eth0".to_string()));
}
