//! Cluster DNS from a scenario file: CoreDNS behind kube-dns answers the clients' lookups.

use podnet::{Duration, Outcome};
use podnet_scenario::{build, load_str};
use smoltcp::wire::Ipv4Address;

const DNS: &str = include_str!("fixtures/dns.yaml");

#[test]
fn names_are_looked_up_through_kube_dns_and_conntrack() {
    let loaded = load_str("dns.yaml", DNS).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let sc = &loaded.scenario;
    let (mut cluster, index) = build(sc).unwrap();
    assert!(index.warnings.is_empty(), "{:?}", index.warnings);
    assert_eq!(index.dns_server, Some(Ipv4Address::new(10, 96, 0, 10)));
    assert!(index.dns_records.contains(&(
        "web.default.svc.cluster.local".to_string(),
        Ipv4Address::new(10, 96, 0, 80)
    )));
    assert!(cluster.run_until_done(Duration::from_secs(10)));

    for flow in ["by-full-name", "by-short-name"] {
        let records = index.records(&cluster, index.flow(flow).unwrap());
        assert_eq!(records.len(), 3, "{flow}");
        for r in &records {
            assert_eq!(r.outcome, Outcome::Ok, "{flow}: {r:?}");
            assert_eq!(r.remote.to_string(), "10.96.0.80:80", "{flow}: {r:?}");
            assert!(r.dns_time.is_some(), "{flow}: {r:?}");
        }
        let first = records.iter().find(|r| r.id == 0).unwrap();
        assert!(
            first.dns_time.unwrap() > Duration::ZERO,
            "{flow}: {first:?}"
        );
    }

    // The queries leave the client for the kube-dns ClusterIP and reach CoreDNS DNATed:
    // four for the full name (three search domains first), one for `web`.
    let dump = cluster.trace().tcpdump();
    let lines = |iface: &str, what: &str| {
        dump.lines()
            .filter(|l| l.contains(iface) && l.contains(what))
            .count()
    };
    assert_eq!(
        lines("client/eth0 Out IP 10.244.0.5.", " > 10.96.0.10.53: UDP"),
        5,
        "{dump}"
    );
    assert_eq!(
        lines(
            "coredns-0/eth0 In  IP 10.244.0.5.",
            " > 10.244.1.10.53: UDP"
        ),
        5,
        "{dump}"
    );
    assert_eq!(
        lines("client/eth0 In  IP 10.96.0.10.53 > 10.244.0.5.", ": UDP"),
        5,
        "the answers come back from the ClusterIP: {dump}"
    );

    // node-a's conntrack: one UDP entry per query, DNATed to CoreDNS, replied, never assured.
    let node_a = index.node("node-a").unwrap();
    let ct = cluster.conntrack(node_a).unwrap().list(cluster.now());
    let dns: Vec<&str> = ct
        .lines()
        .filter(|l| l.starts_with("udp") && l.contains("dst=10.96.0.10"))
        .collect();
    assert_eq!(dns.len(), 5, "{ct}");
    for l in dns {
        assert!(
            l.contains("src=10.244.0.5 dst=10.96.0.10 ")
                && l.contains(" dport=53 src=10.244.1.10 dst=10.244.0.5 sport=53 "),
            "{l}"
        );
        assert!(
            !l.contains("[ASSURED]") && !l.contains("[UNREPLIED]"),
            "{l}"
        );
    }
}

#[test]
fn without_a_dns_service_names_resolve_statically() {
    // The same file without kube-dns: CoreDNS runs, but no Service reaches it.
    let text = DNS.replace("name: kube-dns\n", "name: not-dns\n").replace(
        "{name: dns, port: 53, targetPort: 53, protocol: UDP}",
        "{name: dns, port: 5353, targetPort: 53, protocol: UDP}",
    );
    let loaded = load_str("dns.yaml", &text).unwrap();
    let (mut cluster, index) = build(&loaded.scenario).unwrap();
    assert_eq!(index.dns_server, None);
    assert!(
        index.warnings.iter().any(|w| w
            .to_string()
            .contains("no Service with a ClusterIP sends UDP port 53")),
        "{:?}",
        index.warnings
    );
    assert!(cluster.run_until_done(Duration::from_secs(10)));
    let records = index.records(&cluster, 0);
    assert!(records
        .iter()
        .all(|r| r.outcome == Outcome::Ok && r.dns_time.is_none()));
    assert!(!cluster.trace().tcpdump().contains(".53: UDP"));
}
