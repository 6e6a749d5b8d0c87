//! Engine scripts for the node's IP path: netfilter hooks, local delivery, ARP and routing
//! failures, each seen the way an application and tcpdump would see it.

use std::cell::RefCell;
use std::rc::Rc;

use podnet::netfilter::{Hook, HookCtx, NetfilterHook, Notes, RejectWith, Verdict};
use podnet::trace::EventKind;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeId, NodeSpec, Outcome, PodId, PodSpec,
    Program, Protocol, Proxy, Request, TraceConfig,
};
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket};

const WEB: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);

/// Two nodes without kube-proxy or conntrack: the bare node path, with test modules plugged in.
fn cluster() -> (Cluster, NodeId, NodeId) {
    let mut c = Cluster::new(ClusterConfig {
        proxy: Proxy::None,
        ..ClusterConfig::default()
    });
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    c.add_pod(
        PodSpec::new("web", b)
            .ip(WEB)
            .program(Program::HttpServer { port: 80 }),
    )
    .unwrap();
    (c, a, b)
}

fn client(c: &mut Cluster, node: NodeId, spec: ClientSpec) -> PodId {
    let name = spec.name.clone();
    c.add_pod(PodSpec::new(&name, node).program(Program::Client(spec)))
        .unwrap()
}

fn only_record(c: &Cluster, pod: PodId) -> podnet::ConnRecord {
    let recs: Vec<_> = c
        .pod(pod)
        .unwrap()
        .clients()
        .flat_map(|cl| cl.records().to_vec())
        .collect();
    assert_eq!(recs.len(), 1, "{recs:?}");
    recs[0].clone()
}

/// Records every (hook, name) it sees into a shared log, then returns a fixed verdict.
struct Probe {
    name: &'static str,
    priority: i32,
    log: Rc<RefCell<Vec<(Hook, &'static str)>>>,
    verdict: fn(&HookCtx<'_>, &[u8]) -> Verdict,
}

impl NetfilterHook for Probe {
    fn name(&self) -> &str {
        self.name
    }
    fn priority(&self) -> i32 {
        self.priority
    }
    fn process(&mut self, ctx: &HookCtx<'_>, packet: &mut [u8], _notes: &mut Notes) -> Verdict {
        self.log.borrow_mut().push((ctx.hook, self.name));
        (self.verdict)(ctx, packet)
    }
}

fn accept(_: &HookCtx<'_>, _: &[u8]) -> Verdict {
    Verdict::Accept
}

fn probe(
    name: &'static str,
    priority: i32,
    log: &Rc<RefCell<Vec<(Hook, &'static str)>>>,
    verdict: fn(&HookCtx<'_>, &[u8]) -> Verdict,
) -> Box<Probe> {
    Box::new(Probe {
        name,
        priority,
        log: log.clone(),
        verdict,
    })
}

fn dport(packet: &[u8]) -> Option<u16> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    (ip.next_header() == IpProtocol::Tcp).then(|| {
        TcpPacket::new_checked(ip.payload())
            .ok()
            .map(|t| t.dst_port())
    })?
}

#[test]
fn forwarded_packets_cross_prerouting_forward_postrouting_in_priority_order() {
    let (mut c, a, _) = cluster();
    let log = Rc::new(RefCell::new(Vec::new()));
    let node = c.node_mut(a).unwrap();
    node.register_hook(probe("filter", 0, &log, accept));
    node.register_hook(probe("conntrack", -200, &log, accept));
    node.register_hook(probe("snat", 100, &log, accept));
    assert_eq!(
        c.node(a)
            .unwrap()
            .hooks()
            .map(|h| h.name().to_string())
            .collect::<Vec<_>>(),
        ["conntrack", "filter", "snat"]
    );
    let pod = client(&mut c, a, ClientSpec::http("get", WEB, 80));
    assert!(c.run_until_done(Duration::from_secs(5)));
    assert_eq!(only_record(&c, pod).outcome, Outcome::Ok);
    let log = log.borrow();
    // The first packet through node-a is the SYN: every hook of the forward path, in order.
    let first: Vec<_> = log.iter().take(9).copied().collect();
    use Hook::*;
    assert_eq!(
        first,
        [
            (Prerouting, "conntrack"),
            (Prerouting, "filter"),
            (Prerouting, "snat"),
            (Forward, "conntrack"),
            (Forward, "filter"),
            (Forward, "snat"),
            (Postrouting, "conntrack"),
            (Postrouting, "filter"),
            (Postrouting, "snat"),
        ]
    );
    assert!(
        !log.iter().any(|(h, _)| matches!(h, Input | Output)),
        "nothing was for node-a itself"
    );
}

#[test]
fn a_forward_drop_is_traced_and_the_client_times_out() {
    let (mut c, a, _) = cluster();
    let log = Rc::new(RefCell::new(Vec::new()));
    c.node_mut(a)
        .unwrap()
        .register_hook(probe("policy", 0, &log, |ctx, _| {
            if ctx.hook == Hook::Forward {
                Verdict::Drop("denied by test policy".into())
            } else {
                Verdict::Accept
            }
        }));
    let pod = client(
        &mut c,
        a,
        ClientSpec::http("get", WEB, 80).timeout(Duration::from_secs(2)),
    );
    c.run_until_done(Duration::from_secs(5));
    let r = only_record(&c, pod);
    assert_eq!(
        (r.outcome, r.error.as_deref()),
        (Outcome::Timeout, Some("ETIMEDOUT"))
    );
    let drops: Vec<_> = c
        .trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Dropped { iface, reason, .. } => {
                Some((c.trace().name(*iface).to_string(), reason.to_string()))
            }
            _ => None,
        })
        .collect();
    // The SYN and its retransmissions (1 s apart): dropped at node-a, where they came in.
    assert!(drops.len() >= 2, "{drops:?}");
    assert!(
        drops
            .iter()
            .all(|(i, r)| i == "node-a/cni0" && r == "denied by test policy"),
        "{drops:?}"
    );
    let hook_events = c
        .trace()
        .events()
        .iter()
        .filter(|e| {
            matches!(
                &e.kind,
                EventKind::Hook {
                    hook: Hook::Forward,
                    verdict: Verdict::Drop(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(hook_events, drops.len());
}

#[test]
fn reject_with_icmp_port_unreachable_refuses_the_connection() {
    let (mut c, a, _) = cluster();
    let log = Rc::new(RefCell::new(Vec::new()));
    c.node_mut(a)
        .unwrap()
        .register_hook(probe("reject", 0, &log, |ctx, p| {
            if ctx.hook == Hook::Prerouting && dport(p) == Some(81) {
                Verdict::Reject(RejectWith::IcmpPortUnreachable, "no endpoints".into())
            } else {
                Verdict::Accept
            }
        }));
    let pod = client(&mut c, a, ClientSpec::http("get", WEB, 81));
    assert!(c.run_until_done(Duration::from_secs(5)));
    let r = only_record(&c, pod);
    assert_eq!(r.outcome, Outcome::Refused);
    assert_eq!(
        r.error.as_deref(),
        Some("ECONNREFUSED: ICMP port unreachable from 10.244.0.1")
    );
    assert!(
        r.ended < podnet::Instant::from_millis(5),
        "refused at once, not after retries"
    );
}

#[test]
fn reject_with_tcp_reset_refuses_the_connection() {
    let (mut c, a, _) = cluster();
    let log = Rc::new(RefCell::new(Vec::new()));
    c.node_mut(a)
        .unwrap()
        .register_hook(probe("reject", 0, &log, |ctx, _| {
            if ctx.hook == Hook::Forward {
                Verdict::Reject(RejectWith::TcpReset, "reject-with tcp-reset".into())
            } else {
                Verdict::Accept
            }
        }));
    let pod = client(&mut c, a, ClientSpec::http("get", WEB, 80));
    assert!(c.run_until_done(Duration::from_secs(5)));
    let r = only_record(&c, pod);
    assert_eq!(
        (r.outcome, r.error.as_deref()),
        (Outcome::Refused, Some("ECONNREFUSED: RST"))
    );
}

/// A DNAT-like rewrite at PREROUTING (port 8080 -> 80): later packets route on the new
/// destination, the trace shows the packet before and after, and checksums stay valid.
#[test]
fn a_rewriting_hook_is_seen_before_and_after() {
    let (mut c, a, b) = cluster();
    struct PortMap;
    impl NetfilterHook for PortMap {
        fn name(&self) -> &str {
            "portmap"
        }
        fn process(&mut self, ctx: &HookCtx<'_>, packet: &mut [u8], _notes: &mut Notes) -> Verdict {
            let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
            let (src, dst) = (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
            );
            if ctx.hook != Hook::Prerouting || ip.next_header() != IpProtocol::Tcp {
                return Verdict::Accept;
            }
            let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
            if tcp.dst_port() == 8080 {
                tcp.set_dst_port(80);
            } else if tcp.src_port() == 80 {
                tcp.set_src_port(8080);
            } else {
                return Verdict::Accept;
            }
            tcp.fill_checksum(&src, &dst);
            Verdict::Accept
        }
    }
    c.node_mut(a).unwrap().register_hook(Box::new(PortMap));
    c.node_mut(b).unwrap().register_hook(Box::new(PortMap));
    let pod = client(&mut c, a, ClientSpec::http("get", WEB, 8080));
    assert!(c.run_until_done(Duration::from_secs(5)));
    assert_eq!(only_record(&c, pod).outcome, Outcome::Ok);
    let rewritten = c.trace().events().iter().find_map(|e| match &e.kind {
        EventKind::Hook {
            hook: Hook::Prerouting,
            before,
            after: Some(after),
            ..
        } => Some((dport(&before.bytes), dport(&after.bytes))),
        _ => None,
    });
    assert_eq!(rewritten, Some((Some(8080), Some(80))));
}

#[test]
fn tcp_to_the_node_itself_is_reset_and_udp_is_port_unreachable() {
    let (mut c, a, _) = cluster();
    let node_ip = Ipv4Address::new(192, 168, 1, 100);
    let tcp = client(&mut c, a, ClientSpec::http("ssh", node_ip, 22));
    let udp = client(
        &mut c,
        a,
        ClientSpec::http("dns", node_ip, 53)
            .protocol(Protocol::Udp)
            .request(Request::Echo(b"q".to_vec())),
    );
    assert!(c.run_until_done(Duration::from_secs(5)));
    let t = only_record(&c, tcp);
    assert_eq!(
        (t.outcome, t.error.as_deref()),
        (Outcome::Refused, Some("ECONNREFUSED: RST"))
    );
    let u = only_record(&c, udp);
    assert_eq!(u.outcome, Outcome::Refused);
    assert_eq!(
        u.error.as_deref(),
        Some("ECONNREFUSED: ICMP port unreachable from 10.244.0.1")
    );
    assert_eq!(c.node(a).unwrap().stats().local_in, 2);
}

#[test]
fn unanswered_arp_gives_host_unreachable_after_three_probes() {
    let (mut c, a, _) = cluster();
    let pod = client(
        &mut c,
        a,
        ClientSpec::http("ghost", Ipv4Address::new(10, 244, 1, 99), 80),
    );
    assert!(c.run_until_done(Duration::from_secs(10)));
    let r = only_record(&c, pod);
    assert_eq!(r.outcome, Outcome::Refused);
    assert_eq!(
        r.error.as_deref(),
        Some("EHOSTUNREACH: ICMP host unreachable from 192.168.1.101")
    );
    // Three probes at 1 s intervals (Linux mcast_solicit 3, retrans_time 1 s).
    assert!(
        r.ended >= podnet::Instant::from_secs(3) && r.ended < podnet::Instant::from_millis(3100),
        "{:?}",
        r.ended
    );
    let probes = c
        .trace()
        .events()
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Sent { iface, frame } if c.trace().name(*iface) == "node-b/cni0" && frame.bytes.get(12..14) == Some(&[8, 6]) && frame.bytes.get(38..42) == Some(&[10, 244, 1, 99])))
        .count();
    assert_eq!(probes, 3);
}

/// Without masquerading (no kube-proxy, no CNI masquerade rule) a pod's packet to an address
/// nobody routes reaches the edge router, whose ICMP net unreachable cannot find its way back
/// to the pod CIDR: the client just times out. (`services.rs` has the masqueraded case.)
#[test]
fn no_route_without_masquerade_times_out() {
    let (mut c, a, _) = cluster();
    let pod = client(
        &mut c,
        a,
        ClientSpec::http("far", Ipv4Address::new(172, 16, 0, 1), 80)
            .timeout(Duration::from_secs(2)),
    );
    assert!(c.run_until_done(Duration::from_secs(5)));
    assert_eq!(only_record(&c, pod).outcome, Outcome::Timeout);
    let at_edge: Vec<_> = c
        .trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Dropped { iface, reason, .. }
                if c.trace().name(*iface).starts_with("edge/") =>
            {
                Some(reason.to_string())
            }
            _ => None,
        })
        .collect();
    assert!(
        at_edge.iter().any(|r| r == "no route to host"),
        "{at_edge:?}"
    );
}

#[test]
fn hook_tracing_can_be_turned_off() {
    let mut c = Cluster::new(ClusterConfig {
        trace: TraceConfig {
            hooks: false,
            ..TraceConfig::default()
        },
        ..ClusterConfig::default()
    });
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    c.add_pod(
        PodSpec::new("web", b)
            .ip(WEB)
            .program(Program::HttpServer { port: 80 }),
    )
    .unwrap();
    client(&mut c, a, ClientSpec::http("get", WEB, 80));
    assert!(c.run_until_done(Duration::from_secs(5)));
    assert!(!c
        .trace()
        .events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::Hook { .. })));
    assert!(c
        .trace()
        .events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::Sent { .. })));
}

/// The second connection's SYN-ACK is lost: the client's retransmitted SYN must reach the
/// server's half-open connection, not a fresh listener (which would answer too, and one of the
/// two would end in a RST). The first connection's freed socket slot puts a listener ahead of
/// the half-open socket in smoltcp's socket order, which is what exposed this.
#[test]
fn a_retransmitted_syn_finds_the_half_open_connection() {
    let (mut c, a, b) = cluster();
    struct DropSecondSynAck(u32);
    impl NetfilterHook for DropSecondSynAck {
        fn name(&self) -> &str {
            "lossy"
        }
        fn process(&mut self, ctx: &HookCtx<'_>, packet: &mut [u8], _notes: &mut Notes) -> Verdict {
            let Ok(ip) = Ipv4Packet::new_checked(&*packet) else {
                return Verdict::Accept;
            };
            let syn_ack = ip.next_header() == IpProtocol::Tcp
                && TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.syn() && t.ack());
            if ctx.hook == Hook::Forward && syn_ack {
                self.0 += 1;
                if self.0 == 2 {
                    return Verdict::Drop("lost SYN-ACK".into());
                }
            }
            Verdict::Accept
        }
    }
    c.node_mut(b)
        .unwrap()
        .register_hook(Box::new(DropSecondSynAck(0)));
    let spec = ClientSpec::http("get", WEB, 80)
        .count(2)
        .interval(Duration::from_millis(100));
    let pod = client(&mut c, a, spec);
    assert!(c.run_until_done(Duration::from_secs(5)));
    let recs: Vec<_> = c
        .pod(pod)
        .unwrap()
        .clients()
        .flat_map(|cl| cl.records().to_vec())
        .collect();
    assert!(recs.iter().all(|r| r.outcome == Outcome::Ok), "{recs:?}");
    assert!(
        recs[1].connect_time.unwrap() >= Duration::from_secs(1),
        "SYN retransmitted after 1 s"
    );
    let resets = c
        .trace()
        .events()
        .iter()
        .filter(|e| match &e.kind {
            EventKind::Sent { frame, .. } => Ipv4Packet::new_checked(&frame.bytes[14..])
                .ok()
                .filter(|ip| ip.next_header() == IpProtocol::Tcp)
                .is_some_and(|ip| TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.rst())),
            _ => false,
        })
        .count();
    assert_eq!(resets, 0);
}
