//! Whole scenario files: load, build, run.

use podnet::{Duration, Outcome};
use podnet_scenario::{build, load, load_str, run, ClusterIp, NodeOrigin, Target};
use smoltcp::wire::{IpAddress, Ipv4Address};

const SEED: &str = include_str!("fixtures/seed.yaml");
const DUMP: &str = include_str!("fixtures/kubectl-dump.yaml");
const DUMP_TRAFFIC: &str = include_str!("fixtures/dump-traffic.yaml");
const FAULTS: &str = include_str!("fixtures/faults.yaml");

#[test]
fn the_seed_loads_builds_and_runs_to_ok() {
    let loaded = load_str("seed.yaml", SEED).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let sc = &loaded.scenario;
    assert_eq!(sc.name, "seed");
    assert_eq!(sc.nodes.len(), 2);
    assert_eq!(sc.nodes[1].pod_cidr.to_string(), "10.244.1.0/24");
    let web = &sc.services[0];
    assert_eq!(
        web.cluster_ip,
        ClusterIp::Ip(Ipv4Address::new(10, 96, 0, 10))
    );
    assert_eq!(web.ports[0].endpoints.len(), 1);
    assert_eq!(
        web.ports[0].endpoints[0].port, 8080,
        "named targetPort http"
    );
    assert_eq!(
        sc.flows[0].to,
        Target::Service {
            service: 0,
            port: 80
        }
    );
    assert_eq!(sc.flows[0].count, 10);
    assert_eq!(sc.flows[0].expect.as_deref(), Some("ok"));

    let (mut cluster, index) = build(sc).unwrap();
    assert_eq!(
        index.services["default/web"],
        Some(Ipv4Address::new(10, 96, 0, 10))
    );
    let pod_a = index.pod("default", "pod-a").unwrap();
    assert_eq!(
        cluster.pod(pod_a).unwrap().addrs().ip.address(),
        IpAddress::Ipv4(Ipv4Address::new(10, 244, 0, 5))
    );
    assert!(cluster.run_until_done(Duration::from_secs(10)));
    let records = index.records(&cluster, 0);
    assert_eq!(records.len(), 10);
    for r in &records {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert_eq!(r.remote.to_string(), "10.96.0.10:80");
        assert!(r.bytes_received > 0);
    }
    // The backend really was reached on 10.244.1.20:8080, through node-a's DNAT.
    let node_a = index.node("node-a").unwrap();
    let ct = cluster.conntrack(node_a).unwrap().list(cluster.now());
    assert!(
        ct.contains("dst=10.96.0.10") && ct.contains("src=10.244.1.20 dst=10.244.0.5 sport=8080"),
        "{ct}"
    );
}

#[test]
fn same_file_same_run() {
    let once = || {
        let sc = load_str("seed.yaml", SEED).unwrap().scenario;
        let (mut c, ix) = build(&sc).unwrap();
        c.run_until_done(Duration::from_secs(10));
        (ix.records(&c, 0), c.trace().tcpdump())
    };
    assert_eq!(once(), once());
}

#[test]
fn a_kubectl_dump_loads_and_its_service_answers() {
    let loaded = load(&[("dump.yaml", DUMP), ("traffic.yaml", DUMP_TRAFFIC)]).unwrap();
    let sc = &loaded.scenario;
    let names: Vec<&str> = sc.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["kind-worker", "kind-worker2", "kind-control-plane"]);
    assert!(sc.nodes.iter().all(|n| n.origin == NodeOrigin::PodNodeName));
    let cidrs: Vec<String> = sc.nodes.iter().map(|n| n.pod_cidr.to_string()).collect();
    assert_eq!(cidrs, ["10.244.1.0/24", "10.244.2.0/24", "10.244.0.0/24"]);
    assert_eq!(sc.pods.len(), 4, "etcd (hostNetwork) is skipped");
    assert_eq!(sc.services.len(), 3);
    let web = sc.services.iter().find(|s| s.name == "web").unwrap();
    assert!(web.from_slices && web.node_port);
    assert_eq!(web.ports[0].node_port, Some(31380));
    assert_eq!(
        web.ports[0].endpoints.len(),
        2,
        "the terminating endpoint is not ready"
    );
    let dns = sc.services.iter().find(|s| s.name == "kube-dns").unwrap();
    assert_eq!(dns.ports.len(), 3);
    assert!(dns.ports.iter().all(|p| p.endpoints.len() == 1));
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    let has = |s: &str| warnings.iter().any(|w| w.contains(s));
    assert!(has("hostNetwork"), "{warnings:#?}");
    assert!(!has("DNS"), "CoreDNS runs: {warnings:#?}");
    assert!(
        has("endpoint 172.18.0.2 of Service default/kubernetes"),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().all(|w| w.starts_with("dump.yaml:")),
        "{warnings:#?}"
    );

    let (mut cluster, index) = build(sc).unwrap();
    assert!(cluster.run_until_done(Duration::from_secs(10)));
    let records = index.records(&cluster, 0);
    assert_eq!(records.len(), 4);
    assert!(
        records.iter().all(|r| r.outcome == Outcome::Ok),
        "{records:?}"
    );
    assert!(records
        .iter()
        .all(|r| r.remote.to_string() == "10.96.45.12:80"));
    // The name was looked up through kube-dns (10.96.0.10), served by the CoreDNS pod.
    assert_eq!(index.dns_server, Some(Ipv4Address::new(10, 96, 0, 10)));
    assert!(records.iter().all(|r| r.dns_time.is_some()), "{records:?}");
    let dump = cluster.trace().tcpdump();
    assert!(
        dump.lines()
            .any(|l| l.contains("client/eth0 Out IP 10.244.1.3.")
                && l.contains(" > 10.96.0.10.53: UDP")),
        "{dump}"
    );
}

#[test]
fn deployments_nodeports_external_hosts_and_faults() {
    let loaded = load_str("faults.yaml", FAULTS).unwrap();
    let sc = &loaded.scenario;
    let web: Vec<(&str, usize)> = sc
        .pods
        .iter()
        .filter(|p| p.namespace == "prod")
        .map(|p| (p.name.as_str(), p.node))
        .collect();
    assert_eq!(web, [("web-0", 0), ("web-1", 1), ("web-2", 0)]);
    assert_eq!(sc.flows[0].from.len(), 2, "one client per load replica");
    assert_eq!(sc.faults.len(), 3);
    let (mut cluster, index) = build(sc).unwrap();
    assert_eq!(index.flows[0].clients.len(), 2);
    assert!(run(&mut cluster, sc, &index, Duration::from_secs(60)).unwrap());
    let load = index.records(&cluster, 0);
    assert_eq!(load.len(), 40);
    let ok = load.iter().filter(|r| r.outcome == Outcome::Ok).count();
    assert!(
        ok >= 30,
        "most connections survive 10% loss for half a second: {ok}/40"
    );
    let outside = index.records(&cluster, 1);
    assert_eq!(outside.len(), 2);
    assert!(
        outside.iter().all(|r| r.outcome == Outcome::Ok),
        "{outside:?}"
    );
    let egress = index.records(&cluster, 2);
    assert!(
        egress.iter().all(|r| r.outcome == Outcome::Ok),
        "{egress:?}"
    );
    let node_a = index.node("node-a").unwrap();
    assert_eq!(
        cluster.conntrack(node_a).unwrap().config().max,
        16,
        "conntrackMax applied at 1.5s, undone at 1m30s"
    );
}

#[test]
fn json_loads_too_and_podnet_typos_warn() {
    let json = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
---
{"apiVersion": "podnet.dev/v1alpha1", "kind": "Traffic", "metadata": {"name": "t"},
  "spec": {"from": "web", "to": "web:80", "cout": 3}}
"#;
    let loaded = load_str("pod.json", json).unwrap();
    assert_eq!(loaded.scenario.pods.len(), 1);
    assert_eq!(loaded.scenario.flows[0].count, 1);
    let w: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        w.iter()
            .any(|w| w.starts_with("pod.json:5:43: unknown field `cout` in spec")),
        "{w:?}"
    );
}

const VXLAN: &str = include_str!("fixtures/vxlan.yaml");

#[test]
fn cni_vxlan_builds_flannel_vxlan_and_the_seed_still_runs_to_ok() {
    let loaded = load_str("vxlan.yaml", VXLAN).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let (mut cluster, index) = build(&loaded.scenario).unwrap();
    assert_eq!(cluster.config().cni, podnet::Cni::Vxlan);
    let node_a = index.node("node-a").unwrap();
    assert!(cluster.node(node_a).unwrap().has_vxlan());
    let routes: Vec<String> = cluster
        .node(node_a)
        .unwrap()
        .routes()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(
        routes.contains(&"10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink".to_string()),
        "{routes:?}"
    );
    assert!(cluster.run_until_done(Duration::from_secs(10)));
    let records = index.records(&cluster, 0);
    assert_eq!(records.len(), 10);
    for r in &records {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }
    // `cni: native` is accepted too (routed like host-gw).
    let native = SEED.replace("cni: bridge", "cni: native");
    let loaded = load_str("native.yaml", &native).unwrap();
    let (cluster, _) = build(&loaded.scenario).unwrap();
    assert_eq!(cluster.config().cni, podnet::Cni::Native);
}
