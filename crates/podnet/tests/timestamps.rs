//! Engine scripts: a pod's TCP timestamps, as a Linux pod sends them.

use podnet::trace::EventKind;
use podnet::{ClientSpec, Cluster, ClusterConfig, Duration, PodSpec, Program, TraceConfig};
use smoltcp::wire::{Ipv4Address, Ipv4Packet, TcpOption, TcpPacket};

/// A segment the client sent: time in ms, SYN, TSval and TSecr if any, options length.
type Seg = (i64, bool, Option<(u32, u32)>, usize);

/// The client's segments in two HTTP exchanges across two nodes.
fn client_segments(timestamps: bool) -> Vec<Seg> {
    let (mut c, a, b) = Cluster::two_nodes(ClusterConfig {
        tcp_timestamps: timestamps,
        trace: TraceConfig::frames(256),
        ..ClusterConfig::default()
    })
    .unwrap();
    c.add_pod(PodSpec::new("web", b).program(Program::HttpServer { port: 80 }))
        .unwrap();
    c.add_pod(
        PodSpec::new("client", a).program(Program::Client(
            ClientSpec::http("get", Ipv4Address::new(10, 244, 1, 2), 80)
                .count(2)
                .interval(Duration::from_millis(250)),
        )),
    )
    .unwrap();
    assert!(c.run_until_done(Duration::from_secs(5)));
    // The closes too.
    let later = c.now() + Duration::from_secs(1);
    c.run_until(later);
    let events = c.trace().events();
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Sent { iface, frame } if c.trace().name(*iface) == "client/eth0" => {
                let ip = Ipv4Packet::new_checked(frame.bytes.get(14..)?).ok()?;
                let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
                let mut ts = None;
                let mut opts = tcp.options();
                while !opts.is_empty() {
                    let (rest, o) = TcpOption::parse(opts).ok()?;
                    if let TcpOption::TimeStamp { tsval, tsecr } = o {
                        ts = Some((tsval, tsecr));
                    }
                    if matches!(o, TcpOption::EndOfList) {
                        break;
                    }
                    opts = rest;
                }
                Some((
                    e.time.total_millis(),
                    tcp.syn(),
                    ts,
                    tcp.header_len() as usize - 20,
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn every_segment_carries_the_millisecond_clock() {
    let segs = client_segments(true);
    assert!(segs.len() >= 8, "{segs:?}");
    assert!(segs.iter().all(|s| s.2.is_some()), "{segs:?}");
    // A SYN echoes nothing; every later segment echoes the server's clock.
    assert!(segs.iter().filter(|s| s.1).all(|s| s.2.unwrap().1 == 0));
    assert!(segs.iter().filter(|s| !s.1).all(|s| s.2.unwrap().1 != 0));
    // SYNs take 20 bytes of options, every other segment 12 (nop, nop, TS).
    assert!(segs.iter().all(|s| s.3 == if s.1 { 20 } else { 12 }));
    // TSval follows the virtual clock in milliseconds from one offset (the same addresses).
    let (t0, _, ts0, _) = segs[0];
    for (t, _, ts, _) in &segs {
        let val = ts.unwrap().0;
        assert_eq!(
            val.wrapping_sub(ts0.unwrap().0),
            (t - t0) as u32,
            "{segs:?}"
        );
    }
    assert!(
        segs.last().unwrap().0 >= 250,
        "the second connection came 250 ms later"
    );
}

#[test]
fn without_timestamps_no_option_after_the_syn() {
    let segs = client_segments(false);
    assert!(segs.iter().all(|s| s.2.is_none()));
    assert!(
        segs.iter().all(|s| s.3 == if s.1 { 12 } else { 0 }),
        "{segs:?}"
    );
}
