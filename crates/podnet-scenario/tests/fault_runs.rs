//! Faults that change the cluster's pods and links while a scenario runs: deletePod, scale and
//! links going down.

use podnet::trace::EventKind;
use podnet::{Cluster, Duration, Instant, NodeId, Outcome};
use podnet_scenario::{build, load_str, replicas, run, Index, Scenario};
use smoltcp::wire::{IpAddress, Ipv4Address};

const SCALE: &str = include_str!("fixtures/scale.yaml");
const DELETE_DOWN: &str = include_str!("fixtures/delete-down.yaml");

fn ip(c: &Cluster, name: &str) -> Ipv4Address {
    let id = c.pod_by_name(name).unwrap();
    let ip = podnet::v4(c.pod(id).unwrap().addrs().ip.address());
    ip
}

/// Conntrack entries on `node` from `src`, counted by the backend that answered.
fn per_backend(
    c: &Cluster,
    node: NodeId,
    src: Ipv4Address,
    backends: &[Ipv4Address],
) -> Vec<usize> {
    let ct = c.conntrack(node).unwrap();
    let mut n = vec![0; backends.len()];
    for idx in ct.table().used() {
        let e = ct.entry(idx);
        if e.tuple(0).src != src {
            continue;
        }
        if let Some(i) = backends.iter().position(|b| *b == e.tuple(1).src) {
            n[i] += 1;
        }
    }
    n
}

/// Times of frames received on the interface named `iface`.
fn received_at(c: &Cluster, iface: &str) -> Vec<Instant> {
    c.trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Received { iface: i, .. } if c.trace().name(*i) == iface => Some(e.time),
            _ => None,
        })
        .collect()
}

fn drops(c: &Cluster, reason: &str) -> Vec<(Instant, String)> {
    c.trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Dropped {
                iface, reason: r, ..
            } if r == reason => Some((e.time, c.trace().name(*iface).to_string())),
            _ => None,
        })
        .collect()
}

fn start(name: &str, text: &str) -> (Scenario, Cluster, Index) {
    let loaded = load_str(name, text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let sc = loaded.scenario;
    let (c, ix) = build(&sc).unwrap();
    (sc, c, ix)
}

#[test]
fn scale_adds_replicas_round_robin_and_removes_the_highest() {
    let (sc, mut c, ix) = start("scale.yaml", SCALE);
    let web = |c: &Cluster| replicas(c, &sc, 0);
    assert_eq!(web(&c).len(), 1);
    assert!(run(&mut c, &sc, &ix, Duration::from_secs(30)).unwrap());
    let records = ix.records(&c, 0);
    assert_eq!(records.len(), 80);
    assert!(
        records.iter().all(|r| r.outcome == Outcome::Ok),
        "{records:?}"
    );
    // web-2 came and went; web-0 and web-1 remain, round-robin over the nodes.
    let now: Vec<_> = web(&c)
        .iter()
        .map(|id| c.pod(*id).unwrap().name().to_string())
        .collect();
    assert_eq!(now, ["web-0", "web-1"]);
    assert_eq!(c.pod_by_name("web-2"), None);
    let node_of = |name: &str| c.pod_node(c.pod_by_name(name).unwrap()).unwrap();
    assert_eq!(node_of("web-0"), ix.node("node-a").unwrap());
    assert_eq!(node_of("web-1"), ix.node("node-b").unwrap());
    assert_eq!(
        c.service_backends("default", "web"),
        Some(&web(&c)[..]),
        "the Service follows the scale"
    );
    assert_eq!(
        c.service_backends("default", "other"),
        Some(&[][..]),
        "a Service that selects other pods is left alone"
    );
    // The new replicas served: every one got connections after 1.025s...
    let node_a = ix.node("node-a").unwrap();
    let client = ip(&c, "client");
    let served = per_backend(&c, node_a, client, &[ip(&c, "web-0"), ip(&c, "web-1")]);
    assert!(served.iter().all(|n| *n > 0), "{served:?}");
    let web2 = received_at(&c, "web-2/eth0");
    assert!(!web2.is_empty());
    // ...and web-2 nothing after it was deleted at 2.525s.
    assert!(
        web2.iter()
            .all(|t| (Instant::from_millis(1025)..Instant::from_millis(2525)).contains(t)),
        "{web2:?}"
    );
    // Scaling is idempotent, and no replica is left behind by a rerun of the same fault.
    let again = |c: &mut Cluster| {
        let ev = podnet_scenario::FaultEvent {
            at: Duration::from_millis(2525),
            fault: 1,
            step: podnet_scenario::FaultStep::Apply,
        };
        podnet_scenario::apply_fault(c, &sc, &ix, ev).unwrap();
    };
    let before = web(&c);
    again(&mut c);
    assert_eq!(web(&c), before);
}

#[test]
fn scale_fixture_runs_the_same_twice() {
    let once = || {
        let (sc, mut c, ix) = start("scale.yaml", SCALE);
        run(&mut c, &sc, &ix, Duration::from_secs(30)).unwrap();
        (ix.records(&c, 0), c.trace().tcpdump())
    };
    assert_eq!(once(), once());
}

#[test]
fn delete_pod_and_link_down_windows() {
    let (sc, mut c, ix) = start("delete-down.yaml", DELETE_DOWN);
    let web0_ip = ip(&c, "web-0");
    let base = sc.config.link.clone();
    assert!(run(&mut c, &sc, &ix, Duration::from_secs(30)).unwrap());
    assert_eq!(c.pod_by_name("web-0"), None);
    let web1 = c.pod_by_name("web-1").unwrap();
    assert_eq!(c.service_backends("default", "web"), Some(&[web1][..]));
    assert_eq!(replicas(&c, &sc, 0), [web1]);

    // Calls to the Service after the deletion all reach web-1.
    let calls = ix.records(&c, 0);
    assert_eq!(calls.len(), 40);
    assert!(calls.iter().all(|r| r.outcome == Outcome::Ok), "{calls:?}");
    // A client holding web-0's old address waits in vain.
    let stale = ix.records(&c, 1);
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].outcome, Outcome::Timeout);
    assert_eq!(stale[0].remote.addr, IpAddress::Ipv4(web0_ip));

    // patient's connections started while its veth was down retransmitted after 1s.
    let patient = ix.records(&c, 2);
    assert_eq!(patient.len(), 10);
    assert!(
        patient.iter().all(|r| r.outcome == Outcome::Ok),
        "{patient:?}"
    );
    let window = Instant::from_millis(500)..Instant::from_secs(1);
    let waited: Vec<_> = patient
        .iter()
        .filter(|r| window.contains(&r.started))
        .collect();
    assert_eq!(waited.len(), 5);
    assert!(waited.iter().all(|r| r.ended > window.end), "{waited:?}");
    let down = drops(&c, "link down");
    assert!(down
        .iter()
        .any(|(t, i)| i == "patient/eth0" && window.contains(t)));
    assert!(
        down.iter()
            .any(|(t, i)| (i == "node-b/eth0" || i == "underlay/node-b")
                && (Instant::from_millis(300)..Instant::from_millis(400)).contains(t)),
        "{down:?}"
    );
    assert!(
        down.iter().all(|(t, _)| *t < window.end),
        "nothing is down after the windows: {down:?}"
    );

    // Every link is back to the scenario's configuration, up.
    let patient_id = c.pod_by_name("patient").unwrap();
    assert_eq!(c.pod_link_config(patient_id), Some(&base));
    assert_eq!(c.pod_link_down(patient_id), Some(false));
    let node_b = ix.node("node-b").unwrap();
    assert_eq!(c.uplink_config(node_b), Some(&base));
    assert_eq!(c.uplink_down(node_b), Some(false));
}

#[test]
fn deleting_a_pod_twice_is_an_error_at_the_fault() {
    let text = format!(
        "{DELETE_DOWN}---
apiVersion: podnet.dev/v1alpha1
kind: Fault
metadata: {{name: again}}
spec: {{at: 2s, deletePod: web-0}}
"
    );
    let (sc, mut c, ix) = start("delete-down.yaml", &text);
    let e = run(&mut c, &sc, &ix, Duration::from_secs(30)).unwrap_err();
    assert!(
        e.to_string()
            .contains("Fault again: deletePod: the pod is already gone"),
        "{e}"
    );
    assert!(e.to_string().starts_with("delete-down.yaml:"), "{e}");
}

#[test]
fn scaling_up_from_zero_replicas_is_refused_before_the_run() {
    let text = SCALE.replace("replicas: 1\n", "replicas: 0\n");
    let (sc, mut c, ix) = start("scale.yaml", &text);
    let e = run(&mut c, &sc, &ix, Duration::from_secs(30)).unwrap_err();
    assert!(e.to_string().contains("starts with no replica"), "{e}");
    assert_eq!(c.now(), Instant::ZERO);
}

/// `conntrackFlush` right after a packet was dropped on the node (the intruder's SYN, denied
/// by policy, left its unconfirmed entry with the dataplane): the retransmitted SYN after the
/// flush is tracked afresh and dropped again, nothing touches the flushed slot.
#[test]
fn conntrack_flush_after_a_dropped_packet() {
    let text = format!(
        "{}\n---\napiVersion: podnet.dev/v1alpha1\nkind: Fault\nmetadata: {{name: flush}}\nspec: {{at: 500ms, conntrackFlush: node-b}}\n---\napiVersion: podnet.dev/v1alpha1\nkind: Fault\nmetadata: {{name: flush-a}}\nspec: {{at: 500ms, conntrackFlush: node-a}}\n",
        include_str!("../../../examples/network-policy.yaml")
            .replace("timeout: 3s, expect", "start: 100ms, timeout: 3s, expect")
    );
    let sc = load_str("flush.yaml", &text).unwrap().scenario;
    let (mut c, ix) = build(&sc).unwrap();
    run(&mut c, &sc, &ix, Duration::from_secs(10)).unwrap();
    let intruder = ix.records(&c, ix.flow("intruder").unwrap());
    assert_eq!(intruder.len(), 1);
    assert_eq!(intruder[0].outcome, Outcome::Denied, "{intruder:?}");
    let frontend = ix.records(&c, ix.flow("frontend").unwrap());
    assert!(frontend.iter().all(|r| r.outcome == Outcome::Ok));
}
