//! Faults while a cluster runs: deleting pods, changing a Service's endpoints, taking links
//! down.

use podnet::trace::EventKind;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, Error, Instant, LinkConfig, NodeId, NodeSpec,
    Outcome, PodId, PodSpec, Program, ServiceSpec,
};
use smoltcp::wire::Ipv4Address;

const VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);

fn cluster() -> (Cluster, NodeId, NodeId) {
    let mut c = Cluster::new(ClusterConfig::default());
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    (c, a, b)
}

fn web(c: &mut Cluster, name: &str, node: NodeId) -> PodId {
    c.add_pod(PodSpec::new(name, node).program(Program::HttpServer { port: 80 }))
        .unwrap()
}

fn ip(c: &Cluster, pod: PodId) -> Ipv4Address {
    let ip = podnet::v4(c.pod(pod).unwrap().addrs().ip.address());
    ip
}

fn client(c: &mut Cluster, name: &str, node: NodeId, spec: ClientSpec) -> PodId {
    c.add_pod(PodSpec::new(name, node).program(Program::Client(spec)))
        .unwrap()
}

fn records(c: &Cluster, pod: PodId) -> Vec<podnet::ConnRecord> {
    c.pod(pod).unwrap().connections().cloned().collect()
}

/// Drops recorded with `reason`, by interface name.
fn drops(c: &Cluster, reason: &str) -> Vec<String> {
    c.trace()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Dropped {
                iface, reason: r, ..
            } if r == reason => Some(c.trace().name(*iface).to_string()),
            _ => None,
        })
        .collect()
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

#[test]
fn deleting_a_backend_resyncs_kube_proxy_and_its_ip_times_out() {
    let (mut c, a, b) = cluster();
    let web0 = web(&mut c, "web-0", b);
    let web1 = web(&mut c, "web-1", b);
    let (ip0, ip1) = (ip(&c, web0), ip(&c, web1));
    c.add_service(ServiceSpec::new("web", 80, 80, vec![web0, web1]).cluster_ip(VIP))
        .unwrap();
    let load = client(
        &mut c,
        "load",
        a,
        ClientSpec::http("load", VIP, 80)
            .count(40)
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_secs(1)),
    );
    let load_ip = ip(&c, load);
    // Between two connections (one every 50 ms, each done in well under a millisecond).
    c.run_until(Instant::from_millis(1025));
    let before = per_backend(&c, a, load_ip, &[ip0, ip1]);
    assert!(before[0] > 0 && before[1] > 0, "{before:?}");
    c.remove_pod(web0).unwrap();
    assert!(c.pod(web0).is_none());
    assert_eq!(c.pod_by_name("web-0"), None);
    assert_eq!(c.service_backends("default", "web"), Some(&[web1][..]));
    let rules = c.dataplane(a).unwrap().proxy().iptables_save();
    assert!(!rules.contains(&ip0.to_string()), "{rules}");
    assert!(rules.contains(&ip1.to_string()), "{rules}");
    // Conntrack entries to the deleted pod stay until they expire, as in Linux.
    assert_eq!(per_backend(&c, a, load_ip, &[ip0, ip1])[0], before[0]);

    // A client that still has the deleted pod's address.
    let now = c.now();
    let direct = client(
        &mut c,
        "direct",
        a,
        ClientSpec::http("direct", ip0, 80)
            .start(now)
            .timeout(Duration::from_secs(2)),
    );
    assert!(c.run_until_done(Duration::from_secs(30)));
    let recs = records(&c, load);
    assert_eq!(recs.len(), 40);
    assert!(recs.iter().all(|r| r.outcome == Outcome::Ok), "{recs:?}");
    let after = per_backend(&c, a, load_ip, &[ip0, ip1]);
    assert_eq!(after[0], before[0], "no new connection reached web-0");
    assert_eq!(after[1], before[1] + 40 - before.iter().sum::<usize>());
    let r = &records(&c, direct)[0];
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
}

#[test]
fn frames_in_flight_to_a_deleted_pod_are_dropped_and_its_name_and_ip_are_free() {
    let (mut c, a, b) = cluster();
    let web0 = web(&mut c, "web-0", b);
    let ip0 = ip(&c, web0);
    // A slow veth keeps the SYN on the wire when the pod goes.
    let slow = LinkConfig {
        latency: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    assert!(c.set_pod_link(web0, slow.clone()));
    assert_eq!(c.pod_link_config(web0), Some(&slow));
    let cl = client(
        &mut c,
        "client",
        a,
        ClientSpec::http("c", ip0, 80)
            .start(Instant::from_millis(100))
            .timeout(Duration::from_secs(1)),
    );
    c.run_until(Instant::from_millis(102));
    let sockets_before = c.pod(web0).unwrap().socket_count();
    assert!(sockets_before > 0);
    c.remove_pod(web0).unwrap();
    assert_eq!(c.remove_pod(web0), Err(Error::UnknownPod(web0)));
    assert!(!c.set_pod_link(web0, LinkConfig::default()));
    assert!(!c.set_pod_link_down(web0, true));
    assert_eq!(c.pod_link_config(web0), None);
    assert!(c.run_until_done(Duration::from_secs(5)));
    assert_eq!(records(&c, cl)[0].outcome, Outcome::Timeout);
    let gone = drops(&c, "pod deleted");
    assert!(gone.iter().any(|i| i == "web-0/eth0"), "{gone:?}");
    // The pod sent nothing after it was deleted.
    let eth0 = c
        .trace()
        .ifaces()
        .find(|(_, n)| *n == "web-0/eth0")
        .unwrap()
        .0;
    assert!(!c
        .trace()
        .events()
        .iter()
        .any(|e| e.time > Instant::from_millis(102)
            && matches!(&e.kind, EventKind::Sent { iface, .. } if *iface == eth0)));

    // Name and address are free again. Like host-local IPAM, a new pod gets the address
    // after the last one handed out, not the freed one...
    let next = web(&mut c, "web-next", b);
    assert_eq!(
        u32::from(ip(&c, next)),
        u32::from(ip0) + 1,
        "the next address after the last handed out"
    );
    // ... and a pod that asks for the freed address (and name) gets both, and answers.
    let again = c
        .add_pod(
            PodSpec::new("web-0", b)
                .ip(ip0)
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    assert_ne!(again, web0, "pod ids are never reused");
    assert_eq!(ip(&c, again), ip0);
    let now = c.now();
    let cl2 = client(
        &mut c,
        "client-2",
        a,
        ClientSpec::http("c2", ip0, 80).start(now),
    );
    assert!(c.run_until_done(Duration::from_secs(5)));
    assert_eq!(records(&c, cl2)[0].outcome, Outcome::Ok);
    assert_eq!(c.pods().filter(|(_, p)| p.name() == "web-0").count(), 1);
}

#[test]
fn a_deleted_client_no_longer_blocks_run_until_done() {
    let (mut c, a, b) = cluster();
    let server = web(&mut c, "web", b);
    let to = ip(&c, server);
    let finished = client(&mut c, "quick", a, ClientSpec::http("q", to, 80));
    // Nobody answers at this address: the client waits for its 60 s timeout.
    let stuck = client(
        &mut c,
        "stuck",
        a,
        ClientSpec::http("s", Ipv4Address::new(10, 244, 1, 99), 80)
            .timeout(Duration::from_secs(60)),
    );
    assert!(!c.run_until_done(Duration::from_secs(2)));
    assert_eq!(records(&c, finished)[0].outcome, Outcome::Ok);
    assert!(!c.clients_done());
    c.remove_pod(stuck).unwrap();
    assert!(c.clients_done());
    let t = c.now();
    assert!(c.run_until_done(Duration::from_secs(100)));
    assert_eq!(c.now(), t);
    // Deleting a finished client changes nothing either.
    c.remove_pod(finished).unwrap();
    assert!(c.clients_done());
    assert_eq!(c.pods().count(), 1);
}

#[test]
fn a_link_down_window_delays_connections_until_it_is_up() {
    let (mut c, a, b) = cluster();
    let server = web(&mut c, "web", b);
    let to = ip(&c, server);
    let patient = client(
        &mut c,
        "patient",
        a,
        ClientSpec::http("p", to, 80)
            .count(10)
            .concurrency(10)
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_secs(5)),
    );
    let hasty = client(
        &mut c,
        "hasty",
        a,
        ClientSpec::http("h", to, 80)
            .start(Instant::from_millis(300))
            .timeout(Duration::from_millis(300)),
    );
    assert_eq!(c.uplink_down(a), Some(false));
    c.run_until(Instant::from_millis(250));
    let up = c.uplink_config(a).unwrap().clone();
    assert!(c.set_uplink_down(a, true));
    assert_eq!(c.uplink_down(a), Some(true));
    assert_eq!(
        c.uplink_config(a),
        Some(&up),
        "down keeps the configuration"
    );
    c.run_until(Instant::from_millis(750));
    assert!(c.set_uplink_down(a, false));
    assert!(c.run_until_done(Duration::from_secs(10)));

    let window = Instant::from_millis(250)..Instant::from_millis(750);
    let recs = records(&c, patient);
    assert_eq!(recs.len(), 10);
    assert!(recs.iter().all(|r| r.outcome == Outcome::Ok), "{recs:?}");
    let delayed: Vec<_> = recs
        .iter()
        .filter(|r| window.contains(&r.started))
        .collect();
    assert_eq!(delayed.len(), 5);
    assert!(
        delayed.iter().all(|r| r.ended > window.end),
        "SYNs retransmitted after the window: {delayed:?}"
    );
    assert!(recs
        .iter()
        .filter(|r| !window.contains(&r.started))
        .all(|r| r.ended - r.started < Duration::from_millis(10)));
    assert_eq!(records(&c, hasty)[0].outcome, Outcome::Timeout);
    let down = drops(&c, "link down");
    assert!(
        !down.is_empty() && down.iter().all(|i| i == "node-a/eth0"),
        "{down:?}"
    );
}

#[test]
fn a_pod_link_down_drops_both_ways() {
    let (mut c, a, b) = cluster();
    let server = web(&mut c, "web", b);
    let to = ip(&c, server);
    let cl = client(
        &mut c,
        "client",
        a,
        ClientSpec::http("c", to, 80)
            .count(2)
            .interval(Duration::from_secs(2))
            .timeout(Duration::from_millis(500)),
    );
    assert!(c.set_pod_link_down(server, true));
    assert_eq!(c.pod_link_down(server), Some(true));
    c.run_until(Instant::from_secs(1));
    assert!(c.set_pod_link_down(server, false));
    assert!(c.run_until_done(Duration::from_secs(10)));
    let outcomes: Vec<Outcome> = records(&c, cl).iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Timeout, Outcome::Ok]);
    // The SYN was dropped entering the down veth from the node's side.
    let down = drops(&c, "link down");
    assert!(down.iter().all(|i| i == "node-b/veth00000000"), "{down:?}");
    assert!(!down.is_empty());
    assert!(!c.set_uplink_down(NodeId(99), true));
}

#[test]
fn scaling_up_spreads_new_connections_over_the_new_backends() {
    let (mut c, a, b) = cluster();
    let web0 = web(&mut c, "web-0", b);
    c.add_service(ServiceSpec::new("web", 80, 80, vec![web0]).cluster_ip(VIP))
        .unwrap();
    let first = client(&mut c, "first", a, ClientSpec::http("f", VIP, 80).count(30));
    assert!(c.run_until_done(Duration::from_secs(10)));
    let web1 = web(&mut c, "web-1", a);
    let web2 = web(&mut c, "web-2", b);
    assert_eq!(
        c.set_service_backends("default", "web", vec![web0, web1, PodId(99)]),
        Err(Error::UnknownPod(PodId(99)))
    );
    assert_eq!(
        c.set_service_backends("default", "nope", vec![]),
        Err(Error::UnknownService("default/nope".into()))
    );
    c.set_service_backends("default", "web", vec![web0, web1, web2])
        .unwrap();
    assert_eq!(
        c.service_backends("default", "web"),
        Some(&[web0, web1, web2][..])
    );
    assert_eq!(c.service_backends("default", "nope"), None);
    let now = c.now();
    let second = client(
        &mut c,
        "second",
        a,
        ClientSpec::http("s", VIP, 80)
            .start(now)
            .count(300)
            .concurrency(10),
    );
    assert!(c.run_until_done(Duration::from_secs(60)));
    for p in [first, second] {
        assert!(records(&c, p).iter().all(|r| r.outcome == Outcome::Ok));
    }
    let ips = [ip(&c, web0), ip(&c, web1), ip(&c, web2)];
    assert_eq!(per_backend(&c, a, ip(&c, first), &ips), [30, 0, 0]);
    let spread = per_backend(&c, a, ip(&c, second), &ips);
    assert_eq!(spread.iter().sum::<usize>(), 300);
    assert!(spread.iter().all(|n| (70..=130).contains(n)), "{spread:?}");
}
