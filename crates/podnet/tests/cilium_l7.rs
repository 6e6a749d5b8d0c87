//! Cilium's L7 HTTP policy end to end: the backend's node redirects the client's connection to
//! its proxy, which terminates it and opens its own to the backend (two TCP connections on the
//! wire), relays `GET /public` (200 from the backend) and answers `GET /admin` itself with
//! `403 Forbidden` / `Access denied`; L3/L4 verdicts by identity; identity stability.

use podnet::cilium::{CiliumPolicy, HttpRule, PeerSelector, PolicyRule, PortProtocol, PortRule};
use podnet::policy::{Labels, Selector};
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeSpec, Outcome, PodId, PodSpec, Program,
    Proxy, Request,
};
use smoltcp::wire::{IpAddress, Ipv4Address};

const WEB: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);

fn labels(k: &str, v: &str) -> Labels {
    let mut l = Labels::new();
    l.insert(k.into(), v.into());
    l
}

fn l7_policy() -> CiliumPolicy {
    let mut p = CiliumPolicy::new(Some("default"), "web-l7", Selector::label("app", "web"));
    p.ingress.push(PolicyRule {
        peers: vec![PeerSelector::Endpoints(Selector::label("app", "client"))],
        to_ports: vec![PortRule {
            ports: vec![PortProtocol {
                port: 80,
                end_port: None,
                proto: 6,
            }],
            http: Some(vec![HttpRule {
                method: Some("GET".into()),
                path: Some("/public".into()),
                headers: vec![],
                source: "CiliumNetworkPolicy default/web-l7 ingress[0]".into(),
            }]),
        }],
    });
    p
}

/// client (app=client) on node-a, intruder (app=other) on node-a, web on node-b.
fn cluster() -> (Cluster, PodId, PodId) {
    let mut c = Cluster::new(ClusterConfig {
        proxy: Proxy::Ebpf,
        ..ClusterConfig::default()
    });
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    let mut web = PodSpec::new("web", b)
        .ip(WEB)
        .program(Program::HttpServer { port: 80 });
    web.labels = labels("app", "web");
    c.add_pod(web).unwrap();
    let mut client = PodSpec::new("client", a);
    client.labels = labels("app", "client");
    let client = c.add_pod(client).unwrap();
    let mut other = PodSpec::new("intruder", a);
    other.labels = labels("app", "other");
    let other = c.add_pod(other).unwrap();
    c.add_cilium_policy(l7_policy());
    (c, client, other)
}

fn get(c: &mut Cluster, pod: PodId, path: &str) -> podnet::ConnRecord {
    let now = c.now();
    let spec = ClientSpec::http(path, WEB, 80)
        .request(Request::Http {
            host: "web".into(),
            path: path.into(),
        })
        .timeout(Duration::from_secs(3))
        .start(now);
    c.start_program(pod, Program::Client(spec)).unwrap();
    c.run_until_done(Duration::from_secs(10));
    c.pod(pod)
        .unwrap()
        .connections()
        .last()
        .cloned()
        .expect("a record")
}

#[test]
fn public_passes_admin_gets_403_from_the_proxy() {
    let (mut c, client, _) = cluster();
    let ok = get(&mut c, client, "/public");
    assert_eq!(ok.outcome, Outcome::Ok, "{ok:?}");
    assert_eq!(ok.http_status, Some(200));
    let denied = get(&mut c, client, "/admin");
    assert_eq!(
        denied.outcome,
        Outcome::Ok,
        "the connection itself is allowed"
    );
    assert_eq!(denied.http_status, Some(403));
    let log = c.l7_access_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].0, "node-b");
    assert!(log[0].1.allowed && log[0].1.status == Some(200));
    assert!(!log[1].1.allowed && log[1].1.status == Some(403));
    assert!(
        log[1].1.rule.contains("no HTTP rule matches GET /admin"),
        "{}",
        log[1].1.rule
    );
    // The backend only ever saw the proxy's connection for /public: from the client's
    // address, but another port than the client's.
    let up = log[0].1.upstream_port.expect("an upstream connection");
    assert_ne!(up, ok.local.port);
    let web_rx: Vec<_> = c.trace().tcp_received_on("web/eth0").collect();
    assert!(web_rx.iter().all(|t| t.src == v4(ok.local.addr)));
    assert!(web_rx.iter().any(|t| t.sport == up), "{web_rx:?}");
    assert!(!web_rx
        .iter()
        .any(|t| t.sport == ok.local.port || t.sport == denied.local.port));
    // The client's own connection reached node-b's eth0 (and the proxy), not the backend.
    let b_rx: Vec<_> = c.trace().tcp_received_on("node-b/eth0").collect();
    assert!(
        b_rx.iter().any(|t| t.sport == ok.local.port && t.syn),
        "{b_rx:?}"
    );
}

fn v4(a: IpAddress) -> Ipv4Address {
    podnet::v4(a)
}

#[test]
fn other_identity_is_denied_at_l4() {
    let (mut c, _, other) = cluster();
    let r = get(&mut c, other, "/public");
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert_eq!(r.http_status, None);
    assert!(c.l7_access_log().is_empty());
}

#[test]
fn identity_survives_restart_and_follows_labels() {
    let (mut c, client, _) = cluster();
    let ip = c.pod(client).unwrap().addrs().ip.address();
    let id = c.pod_identity(ip).unwrap();
    assert!(id >= 256);
    let node = podnet::NodeId(0);
    c.remove_pod(client).unwrap();
    let mut again = PodSpec::new("client", node);
    again.labels = labels("app", "client");
    let again = c.add_pod(again).unwrap();
    let ip2 = c.pod(again).unwrap().addrs().ip.address();
    assert_ne!(ip, ip2, "a new address");
    assert_eq!(c.pod_identity(ip2), Some(id), "the same identity");
    assert_eq!(get(&mut c, again, "/public").http_status, Some(200));
    c.set_pod_labels(again, labels("app", "other")).unwrap();
    assert_ne!(c.pod_identity(ip2), Some(id));
    assert_eq!(get(&mut c, again, "/public").outcome, Outcome::Denied);
}
