//! Engine scripts: TCP segmentation offload. A pod's TCP sends super-segments that cross the
//! nodes whole; the uplink carries them as segments, loses them one by one, and merges what
//! arrives.

use podnet::trace::EventKind;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, LinkConfig, NodeId, Outcome, PodId, PodSpec,
    Program, Request, TraceConfig,
};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket,
};

fn cluster(tso: bool) -> (Cluster, NodeId, NodeId) {
    Cluster::two_nodes(ClusterConfig {
        seed: 7,
        tso,
        trace: TraceConfig::frames(128),
        ..ClusterConfig::default()
    })
    .unwrap()
}

/// A client on node-a uploads `bytes` to a discard server on node-b.
fn upload(c: &mut Cluster, a: NodeId, b: NodeId, bytes: usize) -> PodId {
    c.add_pod(PodSpec::new("sink", b).program(Program::TcpDiscard { port: 9 }))
        .unwrap();
    c.add_pod(
        PodSpec::new("client", a).program(Program::Client(
            ClientSpec::http("up", Ipv4Address::new(10, 244, 1, 2), 9)
                .request(Request::Upload(bytes))
                .timeout(Duration::from_secs(600)),
        )),
    )
    .unwrap()
}

/// TCP payload lengths of the data segments `iface` (a trace name) sent or received.
fn payloads(c: &Cluster, iface: &str, sent: bool) -> Vec<usize> {
    c.trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Sent { iface: i, frame } if sent => Some((*i, frame)),
            EventKind::Received { iface: i, frame } if !sent => Some((*i, frame)),
            _ => None,
        })
        .filter(|(i, _)| c.trace().name(*i) == iface)
        .filter_map(|(_, f)| {
            let eth = EthernetFrame::new_checked(&f.bytes[..]).ok()?;
            (eth.ethertype() == EthernetProtocol::Ipv4).then_some(())?;
            // Snapshots keep 128 bytes: the IP total length says how long the segment was.
            let ip = Ipv4Packet::new_unchecked(&f.bytes[14..]);
            (ip.next_header() == IpProtocol::Tcp).then_some(())?;
            let tcp = TcpPacket::new_unchecked(&f.bytes[14 + 20..]);
            let len = usize::from(ip.total_len()) - 20 - usize::from(tcp.header_len());
            (len > 0).then_some(len)
        })
        .collect()
}

/// The first connection `pod` made.
fn record(c: &Cluster, pod: PodId) -> podnet::ConnRecord {
    c.pod(pod).unwrap().connections().next().cloned().unwrap()
}

/// A finished upload of 1 MiB, with TSO on or off.
fn uploaded(tso: bool) -> Cluster {
    let (mut c, a, b) = cluster(tso);
    let client = upload(&mut c, a, b, 1 << 20);
    assert!(c.run_until_done(Duration::from_secs(60)));
    let r = record(&c, client);
    assert_eq!((r.outcome, r.bytes_sent), (Outcome::Ok, 1 << 20));
    c
}

#[test]
fn super_segments_cross_the_node_whole_and_the_wire_as_segments() {
    let c = uploaded(true);
    let at_eth0 = payloads(&c, "node-a/eth0", true);
    let on_wire = payloads(&c, "underlay/node-a", false);
    let at_pod = payloads(&c, "sink/eth0", false);
    assert_eq!(at_eth0.iter().sum::<usize>(), 1 << 20);
    assert_eq!(on_wire.iter().sum::<usize>(), 1 << 20);
    // The node sends super-segments (up to 45 segments of 1448 bytes: 1460 less the
    // timestamp option); the wire carries segments of at most 1448 bytes; GRO hands node-b,
    // and the pod, the super-segments.
    assert!(at_eth0.iter().any(|&l| l > 8 * 1448), "{at_eth0:?}");
    assert!(at_eth0.iter().all(|&l| l <= 45 * 1448));
    assert!(on_wire.iter().all(|&l| l <= 1448));
    assert_eq!(
        on_wire.len(),
        at_eth0.iter().map(|l| l.div_ceil(1448)).sum::<usize>()
    );
    assert_eq!(at_pod, at_eth0);

    // Without the offload: the same bytes, one packet per segment everywhere.
    let plain = payloads(&uploaded(false), "node-a/eth0", true);
    assert_eq!(plain.iter().sum::<usize>(), 1 << 20);
    assert!(plain.iter().all(|&l| l <= 1448));
    assert!(
        plain.len() > 4 * at_eth0.len(),
        "{} vs {}",
        plain.len(),
        at_eth0.len()
    );
}

#[test]
fn the_receiver_acks_each_super_segment_at_once() {
    let (mut c, a, b) = cluster(true);
    upload(&mut c, a, b, 256 * 1024);
    assert!(c.run_until_done(Duration::from_secs(60)));
    // Each super-segment reaching the sink is answered in the same instant (no 10 ms delayed
    // ACK): more than one full segment arrived.
    let evs = c.trace().events();
    let mut answered = 0;
    for (k, e) in evs.iter().enumerate() {
        let EventKind::Received { iface, frame } = &e.kind else {
            continue;
        };
        if c.trace().name(*iface) != "sink/eth0" || frame.len <= 14 + 40 + 1460 {
            continue;
        }
        let ack_now = evs[k + 1..].iter().take_while(|x| x.time == e.time).any(
            |x| matches!(&x.kind, EventKind::Sent { iface, .. } if c.trace().name(*iface) == "sink/eth0"),
        );
        assert!(
            ack_now,
            "no ACK at {} for a {}-byte frame",
            e.time, frame.len
        );
        answered += 1;
    }
    assert!(answered > 5, "{answered}");
}

#[test]
fn a_lossy_wire_loses_segments_and_delivers_the_runs_between() {
    let (mut c, a, b) = cluster(true);
    c.set_uplink(
        a,
        LinkConfig {
            loss: 0.02,
            ..LinkConfig::default()
        },
    );
    let client = upload(&mut c, a, b, 512 * 1024);
    assert!(c.run_until_done(Duration::from_secs(600)));
    let r = record(&c, client);
    assert_eq!(
        (r.outcome, r.bytes_sent),
        (Outcome::Ok, 512 * 1024),
        "{r:?}"
    );
    // Lost segments are drops on node-a's eth0, each one segment long.
    let lost: Vec<usize> = c
        .trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Dropped {
                iface,
                reason,
                frame,
            } if reason == "link loss" && c.trace().name(*iface) == "node-a/eth0" => {
                Some(frame.len)
            }
            _ => None,
        })
        .collect();
    assert!(!lost.is_empty());
    assert!(lost.iter().all(|&l| l <= 14 + 52 + 1448), "{lost:?}");
    // What arrived of a super-segment with a hole came as pieces: node-b got TCP segments
    // whose lengths are not all whole super-segments node-a sent.
    let sent = payloads(&c, "node-a/eth0", true);
    let got = payloads(&c, "node-b/eth0", false);
    assert!(
        got.len() > sent.len() - lost.len(),
        "{} {} {}",
        got.len(),
        sent.len(),
        lost.len()
    );
}
