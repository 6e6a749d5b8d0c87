//! Commands record only what they print: a run recording nothing still reports its drops,
//! streamed tcpdump lines are those of the recorded trace, and the two-pass packet walk of a
//! connection is the walk of the fully recorded run.

use std::collections::BTreeSet;

use podnet::trace::TraceConfig;
use podnet::Duration;
use podnet_scenario::session::{DropRecorder, Session, TcpdumpWriter};
use podnet_scenario::{load_str, Scenario};

const LIMIT: Duration = Duration::from_secs(30);

fn example(name: &str) -> Scenario {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    load_str(name, &text).unwrap().scenario
}

/// The seed with 10% loss on every link: retransmissions and drops.
fn lossy_seed() -> Scenario {
    let mut sc = example("seed.yaml");
    sc.config.link.loss = 0.1;
    sc.config.seed = 7;
    sc
}

fn quiet(mut sc: Scenario) -> Scenario {
    let t = &mut sc.config.trace;
    (t.frames, t.hooks, t.pcap) = (false, false, false);
    sc
}

fn full(mut sc: Scenario) -> Scenario {
    sc.config.trace = TraceConfig::default();
    sc
}

fn report_json(s: &Session) -> String {
    format!("{:?}", s.report())
}

#[test]
fn a_run_records_nothing_but_reports_its_drops() {
    for sc in [
        example("conntrack-full.yaml"),
        example("network-policy.yaml"),
        lossy_seed(),
    ] {
        let mut recorded = Session::new(full(sc.clone())).unwrap();
        recorded.run(LIMIT).unwrap();
        let observers: Vec<Box<dyn podnet::trace::Observer>> =
            vec![Box::new(DropRecorder::default())];
        let mut bare = Session::new_observed(quiet(sc.clone()), observers).unwrap();
        bare.run(LIMIT).unwrap();
        assert!(bare.cluster.trace().events().is_empty(), "{}", sc.name);
        let (a, b) = (recorded.report(), bare.report());
        assert!(
            !b.drops.is_empty(),
            "{}: the example drops packets",
            sc.name
        );
        assert_eq!(report_json(&recorded), report_json(&bare), "{}", sc.name);
        assert_eq!(a.drops.len() as u64, bare.cluster.trace().drop_count());
        assert!(b.frames > 0);
        assert_eq!(
            b.frames,
            recorded
                .cluster
                .trace()
                .events()
                .iter()
                .filter(|e| matches!(e.kind, podnet::trace::EventKind::Received { .. }))
                .count() as u64
        );
    }
}

#[test]
fn streamed_tcpdump_is_the_recorded_tcpdump() {
    let cases = [
        ("seed.yaml", "any", ""),
        ("seed.yaml", "node-a", "tcp and port 80"),
        (
            "three-endpoints.yaml",
            "any",
            "tcp[tcpflags] & tcp-syn != 0",
        ),
        ("nodeport.yaml", "node-a/eth0", "tcp"),
        ("vxlan.yaml", "any", "host 10.244.1.20"),
    ];
    for (file, iface, expr) in cases {
        let sc = example(file);
        let mut recorded = Session::new(full(sc.clone())).unwrap();
        recorded.run(LIMIT).unwrap();
        let want = match recorded.tcpdump(iface, expr) {
            Ok(w) => w,
            // A filter this subset does not parse: skip the case.
            Err(_) => continue,
        };
        let w = TcpdumpWriter::new(iface, expr, Vec::new()).unwrap();
        let mut streamed = Session::new_observed(quiet(sc), vec![Box::new(w)]).unwrap();
        streamed.run(LIMIT).unwrap();
        let w = streamed
            .cluster
            .take_observers()
            .pop()
            .map(|o| -> Box<dyn std::any::Any> { o })
            .and_then(|o| o.downcast::<TcpdumpWriter<Vec<u8>>>().ok())
            .unwrap();
        let got = String::from_utf8(w.finish().unwrap()).unwrap();
        assert!(!got.is_empty(), "{file} {iface} {expr}");
        assert_eq!(got, want, "{file} {iface} {expr}");
    }
}

/// `podnet trace` as the CLI runs it: a first run recording nothing, then the same world
/// recording only the connection's packets.
fn two_pass_trace(sc: &Scenario, flow: &str, conn: usize) -> String {
    let mut first = Session::new(quiet(sc.clone())).unwrap();
    first.run(LIMIT).unwrap();
    let (proto, r) = first.connection(flow, conn).unwrap();
    let tuples: BTreeSet<_> = first.connection_tuples(&r, proto);
    let mut second = first.rebuild_recording(tuples).unwrap();
    second.run(LIMIT).unwrap();
    assert!(second.cluster.trace().events().is_empty());
    second.trace(flow, conn).unwrap()
}

#[test]
fn the_two_pass_walk_is_the_walk_of_the_recorded_run() {
    let cases = [
        (example("seed.yaml"), "web", vec![0, 2]),
        (example("three-endpoints.yaml"), "load", vec![2999]),
        (example("hairpin.yaml"), "hairpin", vec![0]),
        (example("nodeport.yaml"), "local-policy", vec![0]),
        (example("network-policy.yaml"), "intruder", vec![0]),
        (lossy_seed(), "web", vec![0, 1, 2]),
    ];
    for (sc, flow, conns) in cases {
        let mut recorded = Session::new(full(sc.clone())).unwrap();
        recorded.run(LIMIT).unwrap();
        for conn in conns {
            let want = recorded.trace(flow, conn).unwrap();
            let got = two_pass_trace(&sc, flow, conn);
            assert!(got.lines().count() > 3, "{} {flow} {conn}:\n{got}", sc.name);
            assert_eq!(got, want, "{} {flow} {conn}", sc.name);
        }
    }
}

#[test]
fn the_lossy_walk_shows_drops() {
    let sc = lossy_seed();
    let walks: String = (0..3).map(|c| two_pass_trace(&sc, "web", c)).collect();
    assert!(walks.contains("DROP ("), "{walks}");
}

#[test]
fn two_pass_explain_is_the_recorded_explain() {
    let sc = example("seed.yaml");
    let mut recorded = Session::new(full(sc.clone())).unwrap();
    let want = recorded.explain("pod-a", "web:80", LIMIT).unwrap();
    let mut first = Session::new(quiet(sc)).unwrap();
    let r = first.explain_start("pod-a", "web:80", LIMIT).unwrap();
    let mut second = first
        .rebuild_recording(first.connection_tuples(&r, 6))
        .unwrap();
    let r = second.explain_start("pod-a", "web:80", LIMIT).unwrap();
    assert_eq!(second.explain_text(&r, "pod-a", "web:80"), want);
}
