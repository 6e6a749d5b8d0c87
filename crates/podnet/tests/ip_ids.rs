//! Engine scripts: the IPv4 identification of what pods send, as Linux writes it (a counter
//! per connected socket from a random start, 0 on a SYN-ACK and on a reset from no socket, a
//! counter per address pair for an unconnected UDP socket).

#[path = "support/sent.rs"]
mod sent;

use podnet::trace::EventKind;

use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, PodSpec, Program, Protocol, TraceConfig,
};
use smoltcp::wire::{IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket, UdpPacket};

/// A packet a pod sent: the pod, IP ID, protocol, source and destination ports, TCP flags
/// (SYN, ACK, RST).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sent {
    pod: &'static str,
    id: u16,
    proto: IpProtocol,
    sport: u16,
    dport: u16,
    syn: bool,
    ack: bool,
    rst: bool,
}

const WEB: Ipv4Address = Ipv4Address::new(10, 244, 1, 2);

/// Two nodes, frames traced, and an HTTP server "web" (10.244.1.2) on node-b.
fn with_web() -> (Cluster, podnet::NodeId, podnet::NodeId) {
    let (mut c, a, b) = Cluster::two_nodes(ClusterConfig {
        trace: TraceConfig::frames(256),
        ..ClusterConfig::default()
    })
    .unwrap();
    c.add_pod(PodSpec::new("web", b).program(Program::HttpServer { port: 80 }))
        .unwrap();
    (c, a, b)
}

fn run() -> Vec<Sent> {
    let (mut c, a, b) = with_web();
    c.add_pod(PodSpec::new("echo", b).program(Program::UdpEcho { port: 7 }))
        .unwrap();
    c.add_pod(
        PodSpec::new("client", a)
            .program(Program::Client(
                ClientSpec::http("get", WEB, 80)
                    .count(2)
                    .interval(Duration::from_millis(250)),
            ))
            // Nothing listens on 81: the web pod's stack answers with a reset.
            .program(Program::Client(
                ClientSpec::http("closed", WEB, 81).count(1),
            ))
            .program(Program::Client(
                ClientSpec::http("udp", Ipv4Address::new(10, 244, 1, 3), 7)
                    .protocol(Protocol::Udp)
                    .count(3)
                    .interval(Duration::from_millis(1)),
            ))
            // Nothing listens on UDP 9: the web pod's stack answers port unreachable.
            .program(Program::Client(
                ClientSpec::http("closed-udp", WEB, 9)
                    .protocol(Protocol::Udp)
                    .count(1),
            )),
    )
    .unwrap();
    assert!(c.run_until_done(Duration::from_secs(5)));
    let later = c.now() + Duration::from_secs(1);
    c.run_until(later);
    let which = |name: &str| match name {
        "client/eth0" => Some("client"),
        "web/eth0" => Some("web"),
        "echo/eth0" => Some("echo"),
        _ => None,
    };
    sent::sent_ipv4(c.trace(), which)
        .into_iter()
        .filter_map(|(pod, ip)| {
            assert!(ip.verify_checksum(), "{pod}: IPv4 header checksum");
            let proto = ip.next_header();
            let (sport, dport, syn, ack, rst) = match proto {
                IpProtocol::Tcp => {
                    let t = TcpPacket::new_checked(ip.payload()).ok()?;
                    (t.src_port(), t.dst_port(), t.syn(), t.ack(), t.rst())
                }
                IpProtocol::Udp => {
                    let u = UdpPacket::new_checked(ip.payload()).ok()?;
                    (u.src_port(), u.dst_port(), false, false, false)
                }
                _ => return None,
            };
            Some(Sent {
                pod,
                id: ip.ident(),
                proto,
                sport,
                dport,
                syn,
                ack,
                rst,
            })
        })
        .collect()
}

/// Whether `ids` count up by one from their first.
fn consecutive(ids: &[u16]) -> bool {
    ids.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
}

#[test]
fn a_connection_counts_from_a_random_start_and_a_syn_ack_carries_0() {
    let sent = run();
    let tcp = |pod: &str, port: u16| -> Vec<Sent> {
        sent.iter()
            .filter(|s| s.pod == pod && s.proto == IpProtocol::Tcp)
            .filter(|s| {
                if pod == "client" {
                    s.sport == port
                } else {
                    s.dport == port
                }
            })
            .copied()
            .collect()
    };
    let mut client_ports: Vec<u16> = sent
        .iter()
        .filter(|s| s.pod == "client" && s.proto == IpProtocol::Tcp && s.dport == 80 && s.syn)
        .map(|s| s.sport)
        .collect();
    client_ports.dedup();
    assert_eq!(client_ports.len(), 2, "{sent:#?}");
    let mut starts = Vec::new();
    for port in client_ports {
        let out = tcp("client", port);
        let back = tcp("web", port);
        assert!(out.len() >= 4 && back.len() >= 3, "{out:#?} {back:#?}");
        assert!(out[0].syn && !out[0].ack);
        // The client's socket: one counter from its SYN on.
        let ids: Vec<u16> = out.iter().map(|s| s.id).collect();
        assert!(consecutive(&ids), "{ids:?}");
        // The server: 0 on the SYN-ACK, then its own counter.
        assert!(back[0].syn && back[0].ack && back[0].id == 0, "{back:#?}");
        let ids: Vec<u16> = back[1..].iter().map(|s| s.id).collect();
        assert!(consecutive(&ids), "{ids:?}");
        starts.push((out[0].id, back[1].id));
    }
    // Each socket draws its own start.
    assert_ne!(starts[0].0, starts[1].0);
    assert_ne!(starts[0].1, starts[1].1);
    assert_ne!(starts[0].0, starts[0].1);
}

#[test]
fn a_reset_from_no_socket_carries_0() {
    let sent = run();
    let rsts: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.pod == "web" && s.rst && s.sport == 81)
        .collect();
    assert!(!rsts.is_empty(), "{sent:#?}");
    assert!(rsts.iter().all(|s| s.id == 0), "{rsts:#?}");
    // The client's SYNs to the closed port come from its socket.
    let syns: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.pod == "client" && s.syn && s.dport == 81)
        .collect();
    assert!(syns.iter().all(|s| s.id != 0), "{syns:#?}");
}

#[test]
fn an_unconnected_udp_server_counts_per_peer_and_a_client_socket_on_its_own() {
    let sent = run();
    let udp = |pod: &str| -> Vec<Sent> {
        sent.iter()
            .filter(|s| s.pod == pod && s.proto == IpProtocol::Udp)
            .copied()
            .collect()
    };
    let (queries, answers) = (udp("client"), udp("echo"));
    let queries: Vec<Sent> = queries.into_iter().filter(|s| s.dport == 7).collect();
    assert_eq!((queries.len(), answers.len()), (3, 3), "{sent:#?}");
    // Three sockets of the client (one per datagram), each with its own start.
    let mut q: Vec<u16> = queries.iter().map(|s| s.id).collect();
    q.dedup();
    assert_eq!(q.len(), 3, "{queries:#?}");
    // The echo server answers the three from one counter for the client's address: each
    // one more than the last, plus less than the 4 ms jiffies between them (1 ms apart:
    // the same jiffy or the next, so at most 1 more).
    let a: Vec<u16> = answers.iter().map(|s| s.id).collect();
    assert!(
        a.windows(2)
            .all(|w| (1..=2).contains(&w[1].wrapping_sub(w[0]))),
        "{a:?}"
    );
}

/// The web pod's answer to a datagram for a port nothing listens on is Linux's
/// (`__icmp_send`): TOS 0xc0, no DF, a counted IP ID, the datagram quoted as it arrived.
#[test]
fn a_pods_port_unreachable_is_built_as_linux_builds_it() {
    let (mut c, a, _) = with_web();
    c.add_pod(
        PodSpec::new("client", a).program(Program::Client(
            ClientSpec::http("closed-udp", WEB, 9)
                .protocol(Protocol::Udp)
                .count(1),
        )),
    )
    .unwrap();
    c.run_until_done(Duration::from_secs(2));
    let trace = c.trace();
    let at = |name: &str, sent: bool| -> Vec<Vec<u8>> {
        trace
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Sent { iface, frame } if sent && trace.name(*iface) == name => {
                    Some(frame.bytes.to_vec())
                }
                EventKind::Received { iface, frame } if !sent && trace.name(*iface) == name => {
                    Some(frame.bytes.to_vec())
                }
                _ => None,
            })
            .collect()
    };
    let datagram = at("web/eth0", false)
        .into_iter()
        .find(|f| f.get(23) == Some(&17))
        .expect("the datagram reached the web pod");
    let errors: Vec<Vec<u8>> = at("web/eth0", true)
        .into_iter()
        .filter(|f| f.get(23) == Some(&1))
        .collect();
    assert_eq!(errors.len(), 1);
    let ip = Ipv4Packet::new_checked(&errors[0][14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.dscp() << 2 | ip.ecn(), 0xc0, "TOS");
    assert!(!ip.dont_frag(), "no DF");
    assert_ne!(ip.ident(), 0);
    let icmp = ip.payload();
    assert_eq!((icmp[0], icmp[1]), (3, 3), "port unreachable");
    // The whole datagram, quoted as it arrived (smoltcp quoted a header of its own making).
    assert_eq!(&icmp[8..], &datagram[14..]);
}
