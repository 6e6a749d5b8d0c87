//! Prints a digest of one seeded run: its events, its tcpdump text and every pcap. Built for
//! the host and for `wasm32-wasip1` (run under Node's WASI), the two outputs must be equal:
//! `cargo xtask ci` checks that the engine gives the same bytes natively and in WebAssembly.

use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, LinkConfig, NodeSpec, PodSpec, Program, Request,
    TraceConfig,
};
use smoltcp::wire::Ipv4Address;

/// 64-bit FNV-1a: a small, dependency-free, platform-independent digest.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    let mut c = Cluster::new(ClusterConfig {
        seed,
        trace: TraceConfig::full(),
        ..ClusterConfig::default()
    });
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .expect("node-a");
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .expect("node-b");
    let web = Ipv4Address::new(10, 244, 1, 20);
    c.add_pod(
        PodSpec::new("web", b)
            .ip(web)
            .program(Program::HttpServer { port: 80 }),
    )
    .expect("web");
    c.add_pod(PodSpec::new("echo", b).program(Program::TcpEcho { port: 7 }))
        .expect("echo");
    let http = ClientSpec::http("http", web, 80).count(20).concurrency(5);
    let client = c
        .add_pod(PodSpec::new("client", a).program(Program::Client(http)))
        .expect("client");
    let bulk = ClientSpec::http("bulk", Ipv4Address::new(10, 244, 1, 2), 7)
        .request(Request::Bulk(256 * 1024));
    c.add_pod(PodSpec::new("bulk", a).program(Program::Client(bulk)))
        .expect("bulk");
    c.set_pod_link(
        client,
        LinkConfig {
            loss: 0.05,
            ..LinkConfig::default()
        },
    );
    let done = c.run_until_done(Duration::from_secs(60));
    let trace = c.trace();
    println!(
        "seed {seed} done {done} end {} events {} trace-events {}",
        c.now(),
        c.events_run(),
        trace.events().len()
    );
    println!("tcpdump {:016x}", fnv(trace.tcpdump().as_bytes()));
    let mut pcaps = Vec::new();
    for (id, _) in trace.ifaces() {
        if let Some(p) = trace.pcap(id) {
            pcaps.extend_from_slice(p.as_bytes());
        }
    }
    println!("pcaps {:016x} ({} bytes)", fnv(&pcaps), pcaps.len());
    for (_, pod) in c.pods() {
        for flow in pod.clients() {
            let outcomes: Vec<_> = flow
                .records()
                .iter()
                .map(|r| format!("{}:{}", r.local.port, r.outcome))
                .collect();
            println!("{} {}", flow.spec().name, outcomes.join(" "));
        }
    }
}
