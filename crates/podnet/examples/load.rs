//! A load generator for profiling the engine (`perf record`): `n` sequential HTTP connections
//! from a client pod on node-a to a web pod on node-b, or one bulk echo, trace off.
//!
//! `cargo run --release -p podnet --example load -- conns 10000`
//! `cargo run --release -p podnet --example load -- bulk 67108864`
//! `cargo run --release -p podnet --example load -- tw 1000 100000 4`: 1,000 connections from
//! a pod that has 100,000 sockets in TIME-WAIT, 25,000 to each of 4 web pods (opened by
//! earlier clients, one per web pod, each opening one every 200 µs); the wall time is of the
//! 1,000 alone, which go to the first web pod.
//!
//! To profile the measured part alone: `mkfifo ctl ack`, then
//! `PERF_CTL=ctl PERF_ACK=ack perf record -D -1 --control fifo:ctl,ack ... load tw ...`.

use std::time::Instant as StdInstant;

use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeSpec, Outcome, PodSpec, Program, Request,
    TraceConfig,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map_or("conns", |s| s.as_str());
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let idle: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let peers: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    // In `tw` mode the measured connections start once the idle ones are all in TIME-WAIT.
    let measured_from = match what {
        "tw" => podnet::Instant::from_secs(6),
        "syn" => podnet::Instant::from_millis(1500),
        _ => podnet::Instant::ZERO,
    };
    let mut c = Cluster::new(ClusterConfig {
        trace: TraceConfig::off(),
        ..ClusterConfig::default()
    });
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .expect("node-a");
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .expect("node-b");
    let server = if what == "bulk" {
        Program::TcpEcho { port: 7 }
    } else {
        Program::HttpServer { port: 80 }
    };
    let web = c
        .add_pod(PodSpec::new("web", b).program(server))
        .expect("web");
    let to = podnet::v4(c.pod(web).expect("web").addrs().ip.address());
    let mut servers = vec![to];
    for i in 1..peers {
        let more = PodSpec::new(&format!("web-{i}"), b).program(Program::HttpServer { port: 80 });
        let more = c.add_pod(more).expect("web");
        let addr = podnet::v4(c.pod(more).expect("web").addrs().ip.address());
        servers.push(addr);
    }
    let spec = if what == "bulk" {
        ClientSpec::http("bulk", to, 7)
            .request(Request::Bulk(n as usize))
            .timeout(Duration::from_secs(3600))
    } else {
        ClientSpec::http("web", to, 80)
            .count(n as u32)
            .start(measured_from)
    };
    let mut pod = PodSpec::new("client", a).program(Program::Client(spec));
    if what == "tw" && idle > 0 {
        for (i, server) in servers.iter().enumerate() {
            pod = pod.program(Program::Client(
                ClientSpec::http(&format!("idle-{i}"), *server, 80)
                    .count(idle / peers)
                    .interval(Duration::from_micros(200))
                    .concurrency(64),
            ));
        }
    }
    if what == "syn" && idle > 0 {
        let sink = PodSpec::new("sink", b).program(Program::HttpServer { port: 80 });
        let sink = c.add_pod(sink).expect("sink");
        let addr = podnet::v4(c.pod(sink).expect("sink").addrs().ip.address());
        c.set_pod_link_down(sink, true);
        pod = pod.program(Program::Client(
            ClientSpec::http("idle", addr, 80)
                .count(idle)
                .concurrency(idle)
                .timeout(Duration::from_secs(60)),
        ));
    }
    let client = c.add_pod(pod).expect("client");
    if measured_from > podnet::Instant::ZERO {
        c.run_until(measured_from - Duration::from_micros(1));
    }
    let start = StdInstant::now();
    eprintln!("measuring");
    // `perf record -D -1 --control fifo:CTL,ACK` with `PERF_CTL=CTL PERF_ACK=ACK` in the
    // environment: the profile holds the measured part only.
    if let (Ok(ctl), Ok(ack)) = (std::env::var("PERF_CTL"), std::env::var("PERF_ACK")) {
        std::fs::write(ctl, "enable\n").expect("perf control fifo");
        let mut reply = [0u8; 5]; // "ack\n\0"
        let _ = std::io::Read::read(&mut std::fs::File::open(ack).expect("ack fifo"), &mut reply);
    }
    let done = if what == "syn" {
        // The idle connections last 60 s: stop once the measured ones are in.
        let measured = |c: &Cluster| {
            c.pod(client)
                .expect("client")
                .clients()
                .find(|cl| cl.spec().name == "web")
                .is_some_and(|cl| cl.done())
        };
        while !measured(&c) && c.now() < podnet::Instant::from_secs(30) {
            let next = c.now() + Duration::from_millis(10);
            c.run_until(next);
        }
        measured(&c)
    } else {
        c.run_until_done(Duration::from_secs(36_000))
    };
    let wall = start.elapsed();
    let recs = c.pod(client).expect("client").connections().count();
    let ok = c
        .pod(client)
        .expect("client")
        .connections()
        .filter(|r| r.outcome == Outcome::Ok)
        .count();
    println!(
        "{what} {n}: done={done} ok={ok}/{recs} wall {wall:.3?} virtual {} ({:.2} us per connection)",
        c.now(),
        wall.as_secs_f64() * 1e6
            / if what == "tw" || what == "syn" {
                n
            } else {
                recs.max(1) as u64
            } as f64
    );
    // Skip tearing the world down: a profile of the measured part stays clean.
    std::mem::forget(c);
}
