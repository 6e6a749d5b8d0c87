//! The Service tests' shared setup (`services.rs`, `services_paths.rs`): the two-node cluster,
//! the seed document's Service, and what the pods and interfaces saw.

#![allow(dead_code)]

use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeId, NodeSpec, PodId, PodSpec, Program,
    ServiceSpec,
};
use smoltcp::wire::Ipv4Address;

pub const POD_A: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);

pub const BACKEND: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);

pub const VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);

pub const NODE_A: Ipv4Address = Ipv4Address::new(192, 168, 1, 100);

pub fn cluster(config: ClusterConfig) -> (Cluster, NodeId, NodeId) {
    let mut c = Cluster::new(config);
    let a = c.add_node(NodeSpec::new("node-a", NODE_A)).unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    (c, a, b)
}

pub fn records(c: &Cluster, pod: PodId) -> Vec<podnet::ConnRecord> {
    c.pod(pod).unwrap().connections().cloned().collect()
}

/// (src, sport, dst, dport, SYN?) of every TCP segment received on `iface`.
pub fn tcp_seen(c: &Cluster, iface: &str) -> Vec<(Ipv4Address, u16, Ipv4Address, u16, bool)> {
    c.trace()
        .tcp_received_on(iface)
        .map(|t| (t.src, t.sport, t.dst, t.dport, t.syn))
        .collect()
}

/// The seed: Pod A (10.244.0.5 on node 192.168.1.100) -> Service 10.96.0.10:80 -> backend
/// 10.244.1.20:80 on a second node.
pub fn seed(config: ClusterConfig) -> (Cluster, NodeId, PodId) {
    let (mut c, a, b) = cluster(config);
    let backend = c
        .add_pod(
            PodSpec::new("backend", b)
                .ip(BACKEND)
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    c.add_service(ServiceSpec::new("web", 80, 80, vec![backend]).cluster_ip(VIP))
        .unwrap();
    let pod_a = c
        .add_pod(
            PodSpec::new("pod-a", a)
                .ip(POD_A)
                .program(Program::Client(ClientSpec::http("web", VIP, 80))),
        )
        .unwrap();
    assert!(c.run_until_done(Duration::from_secs(10)));
    (c, a, pod_a)
}
