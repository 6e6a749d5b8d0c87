//! Engine benchmarks: podnet's routed pod-to-pod path against a reference "bare pair" of
//! smoltcp interfaces, measured in the same run.
//!
//! * `connect_request_close`: one HTTP connect / GET / response / close cycle, per connection.
//!   podnet: a client pod on node-a fetches from a web pod on node-b (veth, cni0, node-a's IP
//!   stack, uplink, underlay switch, uplink, node-b, cni0, veth), connections one after another.
//! * `bulk_throughput`: 1 MiB sent pod to pod to a TCP echo server and echoed back.
//!
//! The reference ([`bare`]) is two smoltcp `Interface`s (Ethernet, the same TCP buffers as
//! podnet's default and Reno) joined by a plain `VecDeque` of frames in each direction, driven
//! by the same virtual-clock approach as podnet: at the current instant, poll each host that has
//! frames waiting or a timer due (its last `poll_at`) until neither has, then jump to the
//! earliest `poll_at`. It runs the same exchange with a fresh socket per connection, so the
//! difference is what podnet's engine (links, bridges, node IP stacks, event queue, programs)
//! costs on top of smoltcp itself.
//!
//! Both sides allocate two zeroed 64 KiB buffers per socket, and that (memset and page faults)
//! is most of a connection's cost on either side, so `connect_request_close` varies with the
//! machine's memory behaviour by ±20% from run to run; compare the two lines of one run.
//!
//! Run with `cargo bench -p podnet --bench engine`. After each group a `ratio` line compares the
//! mean time per iteration of both sides over every batch criterion ran (warm-up included).
//! Criterion measures one side after the other, so a change in the machine's speed between
//! them (another process, a VM neighbour) moves that ratio by 10% or more from run to run. An
//! `interleaved` line follows: both sides again, a block of runs of each in turn (ABBA), and the median
//! of the pairs' ratios, which such drift hits on both sides alike.

#[path = "common/measure.rs"]
mod measure;

use std::time::{Duration as StdDuration, Instant as StdInstant};

use measure::{in_batches, interleaved, report, Tally};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeSpec, Outcome, PodSpec, Program, Request,
    TraceConfig,
};
use smoltcp::wire::Ipv4Address;

/// Connections per podnet cluster (or bare pair). Each batch starts fresh so that sockets
/// lingering in TIME-WAIT (10 s of virtual time) do not pile up across criterion's iterations.
const CONNS_PER_RUN: u64 = 100;
/// Bytes pushed by one bulk iteration (and echoed back).
const BULK_BYTES: usize = 1 << 20;
/// podnet's default TCP buffer (checked against `ClusterConfig`), used by the bare pair too.
use bare::TCP_BUFFER;

// ---------------------------------------------------------------------------------------------
// podnet

/// A cluster without a trace: node-a and node-b on one underlay.
fn two_nodes() -> (Cluster, podnet::NodeId, podnet::NodeId) {
    let mut c = Cluster::new(ClusterConfig {
        trace: TraceConfig::off(),
        ..ClusterConfig::default()
    });
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    (c, a, b)
}

/// A pod's address.
fn addr_of(c: &Cluster, pod: podnet::PodId) -> Ipv4Address {
    let a = podnet::v4(c.pod(pod).unwrap().addrs().ip.address());
    a
}

/// node-a and node-b on one underlay; a "web" pod on node-b runs `server`, a "client" pod on
/// node-a runs the client that `client` makes for the web pod's address.
fn podnet_cluster(
    server: Program,
    client: impl FnOnce(Ipv4Address) -> ClientSpec,
) -> (Cluster, podnet::PodId) {
    let (mut c, a, b) = two_nodes();
    assert_eq!(
        c.config().tcp_buffer,
        TCP_BUFFER,
        "the bare pair uses the same buffers"
    );
    let server = c.add_pod(PodSpec::new("web", b).program(server)).unwrap();
    let to = podnet::v4(c.pod(server).unwrap().addrs().ip.address());
    let client = c
        .add_pod(PodSpec::new("client", a).program(Program::Client(client(to))))
        .unwrap();
    (c, client)
}

/// Runs a built cluster to completion; returns the wall time of the run alone.
fn podnet_run(mut c: Cluster, client: podnet::PodId, expect: u64, limit: Duration) -> StdDuration {
    let start = StdInstant::now();
    let done = c.run_until_done(limit);
    let elapsed = start.elapsed();
    assert!(done, "podnet clients did not finish");
    let recs = c.pod(client).unwrap().clients().next().unwrap().records();
    assert_eq!(recs.len() as u64, expect);
    assert!(
        recs.iter().all(|r| r.outcome == Outcome::Ok),
        "{:?}",
        recs.iter().find(|r| r.outcome != Outcome::Ok)
    );
    elapsed
}

/// `n` sequential HTTP connections across two nodes.
fn podnet_http(n: u64) -> StdDuration {
    let (c, client) = podnet_cluster(Program::HttpServer { port: 80 }, |to| {
        ClientSpec::http("web", to, 80).count(n as u32)
    });
    podnet_run(c, client, n, Duration::from_secs(60))
}

/// One 1 MiB echo across two nodes.
fn podnet_bulk() -> StdDuration {
    let (c, client) = podnet_cluster(Program::TcpEcho { port: 7 }, |to| {
        ClientSpec::http("bulk", to, 7)
            .request(Request::Bulk(BULK_BYTES))
            .timeout(Duration::from_secs(60))
    });
    podnet_run(c, client, 1, Duration::from_secs(60))
}

// ---------------------------------------------------------------------------------------------
// The reference: two smoltcp interfaces and two frame queues, nothing else (engine/bare.rs).

#[path = "engine/bare.rs"]
mod bare;

// ---------------------------------------------------------------------------------------------
// Measurement (in common/measure.rs)

/// Time for `iters` connections, run as whole batches of [`CONNS_PER_RUN`] (so every batch
/// amortizes its first connection's ARP the same way) and scaled to `iters`.
fn per_connection(iters: u64, run: fn(u64) -> StdDuration) -> StdDuration {
    in_batches(iters, CONNS_PER_RUN, run)
}

fn connect_request_close(c: &mut Criterion) {
    let (podnet, bare) = (Tally::default(), Tally::default());
    let mut g = c.benchmark_group("connect_request_close");
    g.warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(5))
        .sample_size(20)
        .throughput(Throughput::Elements(1));
    g.bench_function("podnet_routed", |b| {
        b.iter_custom(|iters| podnet.add(per_connection(iters, podnet_http), iters))
    });
    g.bench_function("bare_pair", |b| {
        b.iter_custom(|iters| bare.add(per_connection(iters, bare::http), iters))
    });
    g.finish();
    report("connect_request_close", &podnet, &bare, |d| {
        format!("{:.0} conn/s", 1.0 / d.as_secs_f64())
    });
    if podnet.per_iter().is_zero() {
        return; // filtered out
    }
    interleaved(
        "connect_request_close",
        ["podnet", "bare pair"],
        (21, 3),
        || podnet_http(CONNS_PER_RUN).div_f64(CONNS_PER_RUN as f64),
        || bare::http(CONNS_PER_RUN).div_f64(CONNS_PER_RUN as f64),
    );
}

fn bulk_throughput(c: &mut Criterion) {
    let (podnet, bare) = (Tally::default(), Tally::default());
    let mut g = c.benchmark_group("bulk_throughput");
    g.warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(5))
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(BULK_BYTES as u64));
    g.bench_function("podnet_routed_1MiB_echo", |b| {
        b.iter_custom(|iters| podnet.add((0..iters).map(|_| podnet_bulk()).sum(), iters))
    });
    g.bench_function("bare_pair_1MiB_echo", |b| {
        b.iter_custom(|iters| bare.add((0..iters).map(|_| bare::bulk(BULK_BYTES)).sum(), iters))
    });
    g.finish();
    let mib_s = |d: StdDuration| {
        format!(
            "{:.1} MiB/s",
            BULK_BYTES as f64 / (1 << 20) as f64 / d.as_secs_f64()
        )
    };
    report("bulk_throughput", &podnet, &bare, mib_s);
    if podnet.per_iter().is_zero() {
        return; // filtered out
    }
    interleaved(
        "bulk_throughput",
        ["podnet", "bare pair"],
        (41, 9),
        podnet_bulk,
        || bare::bulk(BULK_BYTES),
    );
}

/// Sockets the client pod leaves in TIME-WAIT before the measured connections: 25,000 to
/// each of [`IDLE_PEERS`] servers. A pod's TCP source port is held per peer (as in Linux, two
/// connections to different peers may share one), and one peer's 28,232 ports leave room for
/// the connections measured, which go to the first server: its range is the fullest.
const IDLE_TIME_WAIT: u32 = 100_000;
/// The servers the idle connections went to.
const IDLE_PEERS: u32 = 4;

/// `n` HTTP connections from a pod that has `idle` sockets in TIME-WAIT (opened by earlier
/// clients of the same pod, one per [`IDLE_PEERS`] server, each opening one every 200 µs, all
/// closed 6 s before the measured ones start): the wall time of the `n` connections alone.
fn podnet_after_idle(idle: u32, n: u64) -> StdDuration {
    let (mut c, a, b) = two_nodes();
    let mut servers = Vec::new();
    for i in 0..IDLE_PEERS {
        let web = c
            .add_pod(PodSpec::new(&format!("web-{i}"), b).program(Program::HttpServer { port: 80 }))
            .unwrap();
        servers.push(addr_of(&c, web));
    }
    let to = servers[0];
    let measured_from = podnet::Instant::from_secs(6);
    let mut pod = PodSpec::new("client", a).program(Program::Client(
        ClientSpec::http("next", to, 80)
            .count(n as u32)
            .start(measured_from),
    ));
    if idle > 0 {
        for (i, server) in servers.iter().enumerate() {
            pod = pod.program(Program::Client(
                ClientSpec::http(&format!("idle-{i}"), *server, 80)
                    .count(idle / IDLE_PEERS)
                    .interval(Duration::from_micros(200))
                    .concurrency(64),
            ));
        }
    }
    let client = c.add_pod(pod).unwrap();
    c.run_until(measured_from - Duration::from_micros(1));
    let waiting = c.pod(client).unwrap().time_wait_count();
    assert!(
        waiting as u32 >= idle,
        "{waiting} sockets in TIME-WAIT, {idle} expected"
    );
    let start = StdInstant::now();
    assert!(c.run_until_done(Duration::from_secs(60)));
    let elapsed = start.elapsed();
    let ok = c
        .pod(client)
        .unwrap()
        .connections()
        .filter(|r| r.outcome == Outcome::Ok)
        .count();
    assert_eq!(ok as u64, n + u64::from(idle));
    assert!(
        c.now() < measured_from + Duration::from_secs(4),
        "the measured connections ran while the idle ones were still in TIME-WAIT"
    );
    elapsed
}

/// Connections the client pod holds open in SYN-SENT before the measured ones: to a pod whose
/// link is down, so every SYN is lost and each socket waits for its next retransmission.
const IDLE_SYN_SENT: u32 = 20_000;

/// `n` HTTP connections from a pod that has `idle` connections open and waiting in SYN-SENT
/// (all opened at 0 to a "sink" pod on node-b whose link is down; their retransmissions go
/// out at 1 s and 3 s): the wall time of the `n` connections alone, which start at 1.5 s and
/// end before 3 s.
fn podnet_with_syn_sent(idle: u32, n: u64) -> StdDuration {
    let (mut c, a, b) = two_nodes();
    let web = c
        .add_pod(PodSpec::new("web", b).program(Program::HttpServer { port: 80 }))
        .unwrap();
    let sink = c
        .add_pod(PodSpec::new("sink", b).program(Program::HttpServer { port: 80 }))
        .unwrap();
    let (to, sink_addr) = (addr_of(&c, web), addr_of(&c, sink));
    assert!(c.set_pod_link_down(sink, true));
    let measured_from = podnet::Instant::from_millis(1500);
    let mut pod = PodSpec::new("client", a).program(Program::Client(
        ClientSpec::http("next", to, 80)
            .count(n as u32)
            .start(measured_from),
    ));
    if idle > 0 {
        pod = pod.program(Program::Client(
            ClientSpec::http("idle", sink_addr, 80)
                .count(idle)
                .concurrency(idle)
                .timeout(Duration::from_secs(60)),
        ));
    }
    let client = c.add_pod(pod).unwrap();
    c.run_until(measured_from - Duration::from_micros(1));
    let open = c.pod(client).unwrap().socket_count();
    assert!(open as u32 >= idle, "{open} sockets open, {idle} expected");
    let start = StdInstant::now();
    let done = |c: &Cluster| {
        c.pod(client)
            .unwrap()
            .connections()
            .filter(|r| r.outcome == Outcome::Ok)
            .count() as u64
            >= n
    };
    while !done(&c) {
        let next = c.now() + Duration::from_millis(10);
        c.run_until(next);
        assert!(
            c.now() < podnet::Instant::from_secs(3),
            "the measured connections did not finish before the idle ones retransmit again"
        );
    }
    start.elapsed()
}

/// What one idle-socket group compares: the same `n` connections from a pod with `idle`
/// sockets (`run(idle, n)`) and without.
struct IdleGroup {
    name: &'static str,
    /// The two benchmarks' names: with the idle sockets, without.
    ids: [&'static str; 2],
    /// The idle sockets, in words (`100000 in TIME-WAIT`).
    what: String,
    idle: u32,
    run: fn(u32, u64) -> StdDuration,
}

/// The cost of a connection with `g.idle` sockets of its pod idle against none, per
/// connection, in one run (criterion, then interleaved).
fn idle_group(c: &mut Criterion, g: IdleGroup) {
    let (busy, quiet) = (Tally::default(), Tally::default());
    let mut group = c.benchmark_group(g.name);
    group
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(5))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(1));
    const PER_RUN: u64 = 1000;
    let per_conn = |idle: u32, iters: u64| in_batches(iters, PER_RUN, |n| (g.run)(idle, n));
    group.bench_function(g.ids[1], |b| {
        b.iter_custom(|iters| quiet.add(per_conn(0, iters), iters))
    });
    group.bench_function(g.ids[0], |b| {
        b.iter_custom(|iters| busy.add(per_conn(g.idle, iters), iters))
    });
    group.finish();
    let (q, w) = (quiet.per_iter(), busy.per_iter());
    println!(
        "{}: next connection {q:.2?} with none, {w:.2?} with {} (ratio {:.2}x; the aim is at most 1.10x)",
        g.name,
        g.what,
        w.as_secs_f64() / q.as_secs_f64()
    );
    if quiet.per_iter().is_zero() {
        return; // filtered out
    }
    interleaved(
        g.name,
        [g.what.as_str(), "none"],
        (9, 1),
        || (g.run)(g.idle, PER_RUN),
        || (g.run)(0, PER_RUN),
    );
}

/// The cost of a connection does not depend on how many sockets of its pod wait in
/// TIME-WAIT: 0 against [`IDLE_TIME_WAIT`].
fn idle_sockets(c: &mut Criterion) {
    idle_group(
        c,
        IdleGroup {
            name: "time_wait_idle",
            ids: ["100k_in_time_wait", "no_idle_sockets"],
            what: format!("{IDLE_TIME_WAIT} in TIME-WAIT"),
            idle: IDLE_TIME_WAIT,
            run: podnet_after_idle,
        },
    );
}

/// The cost of a connection does not depend on how many other connections of its pod are
/// open and waiting: 0 against [`IDLE_SYN_SENT`] in SYN-SENT.
fn open_idle_sockets(c: &mut Criterion) {
    idle_group(
        c,
        IdleGroup {
            name: "syn_sent_idle",
            ids: ["20k_in_syn_sent", "no_open_sockets"],
            what: format!("{IDLE_SYN_SENT} in SYN-SENT"),
            idle: IDLE_SYN_SENT,
            run: podnet_with_syn_sent,
        },
    );
}

criterion_group!(
    benches,
    connect_request_close,
    bulk_throughput,
    idle_sockets,
    open_idle_sockets
);
criterion_main!(benches);
