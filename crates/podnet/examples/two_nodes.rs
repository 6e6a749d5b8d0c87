//! Two nodes, a web pod and a client pod, built in code: the smallest podnet program.

use podnet::{ClientSpec, Cluster, ClusterConfig, Duration, NodeSpec, PodSpec, Program};
use smoltcp::wire::Ipv4Address;

fn main() -> Result<(), podnet::Error> {
    // A cluster with a seed: the same seed gives the same run, byte for byte.
    let mut cluster = Cluster::new(ClusterConfig {
        seed: 7,
        ..ClusterConfig::default()
    });

    // Nodes get pod CIDRs 10.244.0.0/24, 10.244.1.0/24, ... and host-gw routes to each other.
    let node_a = cluster.add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))?;
    let node_b = cluster.add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))?;

    // Pods are smoltcp stacks behind a veth on their node's cni0 bridge.
    let web = Ipv4Address::new(10, 244, 1, 20);
    cluster.add_pod(
        PodSpec::new("web", node_b)
            .ip(web)
            .program(Program::HttpServer { port: 80 }),
    )?;
    let client = ClientSpec::http("get-web", web, 80).count(3).concurrency(3);
    let pod_a = cluster.add_pod(
        PodSpec::new("pod-a", node_a)
            .ip([10, 244, 0, 5])
            .program(Program::Client(client)),
    )?;

    // Jump from deadline to deadline in virtual time until every client is done.
    cluster.run_until_done(Duration::from_secs(10));

    for conn in cluster
        .pod(pod_a)
        .unwrap()
        .clients()
        .flat_map(|c| c.records())
    {
        let connect_us = conn.connect_time.map_or(0, |d| d.total_micros());
        println!(
            "{} -> {}: {}, connected in {connect_us} µs",
            conn.local, conn.remote, conn.outcome
        );
    }
    print!("{}", cluster.trace().tcpdump());
    Ok(())
}
