//! Service dataplane benchmarks: what kube-proxy's rules, conntrack and NAT cost, each
//! comparison measured in the same run.
//!
//! * `first_packet`: the first packet of a connection (a pod's SYN to a ClusterIP, forwarded by
//!   its node) through one node's [`Dataplane`], the hooks a node runs for it: PREROUTING
//!   (conntrack creates the entry, the nat table is walked, the DNAT is bound and applied),
//!   FORWARD (filter table), POSTROUTING (nat POSTROUTING, confirmation). Every packet has a
//!   fresh source port, so each one is a NEW connection. With 1 Service and with 30,000
//!   Services (one port, one endpoint each; the packet goes to the last one built), in iptables
//!   mode (`KUBE-SERVICES` is walked rule by rule, as in Linux: the cost grows with the number
//!   of Services), in nftables mode (one verdict-map lookup: it should not) and in eBPF mode
//!   (`bpf_lxc`'s per-packet load balancing: a Service map lookup, LRU CT entries, no rule). Recording of
//!   matched rules is off and no notes are asked for (`explain: false`), as when tracing is off.
//!   Packets are built and the conntrack table flushed between chunks of [`CHUNK`] packets,
//!   outside the timed part.
//! * `connect_nat`: one HTTP connect / GET / response / close cycle pod to pod across two nodes
//!   (as `engine`'s `connect_request_close`, trace off), connections one after another:
//!   - `dnat_snat`: kube-proxy in iptables mode with `--masquerade-all`, the client calls the
//!     ClusterIP: node-a DNATs to the backend on node-b and masquerades to its own address;
//!   - `conntrack_no_nat`: the same cluster (same Service), but the client calls the backend
//!     pod's IP: every packet is tracked, none is translated;
//!   - `no_conntrack`: `Proxy::None`, the client calls the backend pod's IP: plain routing;
//!   - `ebpf_socket_lb`: `Proxy::Ebpf`, the client calls the ClusterIP: the backend is chosen
//!     at `connect()`, packets go straight to it through the LRU CT map.
//!
//! Run with `cargo bench -p podnet --bench services`. After each group `ratio` lines compare the
//! mean time per iteration of the sides over every batch criterion ran (warm-up included).

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use podnet::conntrack::CtConfig;
use podnet::dataplane::Dataplane;
use podnet::kube_proxy::{Endpoint, Mode, ProxyConfig, ServicePort, L4};
use podnet::netfilter::{Hook, HookCtx, NetfilterHook, Notes, Verdict};
use podnet::rng::{SimRng, Stream};
use podnet::route::Dev;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, Instant, NodeSpec, Outcome, PodSpec, Program,
    Proxy, ServiceSpec, TraceConfig,
};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber,
};

/// Services of the large rule set.
const MANY: u32 = 30_000;
/// First packets timed back to back between two (untimed) conntrack flushes.
const CHUNK: u64 = 1024;
/// Connections per cluster in `connect_nat` (as in `engine`).
const CONNS_PER_RUN: u64 = 100;

const NODE_A: Ipv4Address = Ipv4Address::new(192, 168, 1, 100);
/// node-a's `cni0` (the first address of its pod CIDR 10.244.0.0/24).
const NODE_A_GW: Ipv4Address = Ipv4Address::new(10, 244, 0, 1);
/// The client pod on node-a.
const CLIENT: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);

// ---------------------------------------------------------------------------------------------
// first_packet

/// ClusterIP of Service `i` (10.96.0.1 up).
fn cluster_ip(i: u32) -> Ipv4Address {
    Ipv4Address::from(0x0A60_0000 + i + 1)
}

/// `n` Services `default/s<i>`, one TCP port 80 -> 8080 on one ready endpoint each, the
/// endpoints in node-b's and later nodes' pod CIDRs (10.244.1.2 up, 250 per /24).
fn services(n: u32) -> Vec<ServicePort> {
    (0..n)
        .map(|i| ServicePort {
            namespace: "default".into(),
            name: format!("s{i}"),
            port_name: String::new(),
            protocol: L4::Tcp,
            cluster_ip: cluster_ip(i),
            port: 80,
            node_port: None,
            endpoints: vec![Endpoint {
                ip: Ipv4Address::from(0x0AF4_0000 + ((1 + i / 250) << 8) + 2 + i % 250),
                port: 8080,
                ready: true,
                node: "node-b".into(),
            }],
            session_affinity: None,
            external_local: false,
            internal_local: false,
        })
        .collect()
}

/// node-a's dataplane in eBPF mode as `Cluster::new_dataplane` makes it: the Service map
/// holds the `n` Services; packets to a ClusterIP are balanced per packet by `bpf_lxc`.
fn ebpf_dataplane(n: u32) -> Dataplane {
    let cfg = ClusterConfig::default();
    let mut rng = SimRng::derive(cfg.seed, Stream::Node(0));
    let seed = rng.next_u64();
    let ebpf = podnet::ebpf::EbpfConfig::default();
    let mut lb = podnet::ebpf::LbMaps::new(
        ebpf,
        "node-a",
        [NODE_A, NODE_A_GW],
        cfg.seed,
        SimRng::derive(seed, Stream::Node(0)),
    );
    lb.set_services(services(n));
    let bpf = podnet::ebpf::EbpfDatapath::new(
        ebpf,
        cfg.pod_cidr,
        Ipv4Cidr::new(Ipv4Address::new(10, 244, 0, 0), 24),
        lb,
        rng,
    );
    let proxy = ProxyConfig {
        mode: Mode::Iptables,
        node_name: "node-a".into(),
        node_ips: vec![NODE_A, NODE_A_GW],
        cluster_cidr: cfg.pod_cidr,
        masquerade_all: false,
        random_fully: true,
        tcp_be_liberal: false,
    };
    Dataplane::new_ebpf(CtConfig::default(), proxy, bpf, seed)
}

/// node-a's dataplane as `Cluster::new_dataplane` makes it (default `ClusterConfig`, node 0),
/// with rule recording off.
fn dataplane(mode: Mode, n: u32) -> Dataplane {
    let proxy = ProxyConfig {
        mode,
        node_name: "node-a".into(),
        node_ips: vec![NODE_A, NODE_A_GW],
        cluster_cidr: Ipv4Cidr::new(Ipv4Address::new(10, 244, 0, 0), 16),
        masquerade_all: false,
        random_fully: true,
        tcp_be_liberal: false,
    };
    let mut rng = SimRng::derive(ClusterConfig::default().seed, Stream::Node(0));
    let seed = rng.next_u64();
    let mut dp = Dataplane::new(CtConfig::default(), proxy, services(n), rng, seed);
    dp.proxy_mut().set_record_matches(false);
    dp
}

/// A SYN as smoltcp sends it (MSS, window scale, SACK permitted), checksums valid.
fn syn(src: Ipv4Address, sport: u16, dst: Ipv4Address, dport: u16) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(0x1234_5678 ^ i32::from(sport)),
        ack_number: None,
        window_len: 64_240,
        window_scale: Some(0),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    let mut buf = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
    let mut pkt = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut pkt, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(pkt.payload_mut()),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &caps,
    );
    buf
}

/// The hooks node-a runs for a pod's packet it forwards to another node: in on `cni0`, out on
/// `eth0` (host-gw route to node-b), as `Node::run_hooks_on` builds the context.
fn forward_ctxs(now: Instant) -> [HookCtx<'static>; 3] {
    let ctx = |hook, out_dev: Option<Dev>| HookCtx {
        now,
        node: "node-a",
        node_ip: NODE_A,
        hook,
        in_dev: Some(Dev::Cni0),
        out_dev,
        out_addr: out_dev.map(|_| NODE_A),
        local_addrs: [NODE_A, NODE_A_GW],
        bridged: false,
        explain: false,
        // Off a pod's veth: conntrack leaves its checksums alone (as `Node::pod_input`).
        csum_partial: hook == Hook::Prerouting,
    };
    [
        ctx(Hook::Prerouting, None),
        ctx(Hook::Forward, Some(Dev::Eth0)),
        ctx(Hook::Postrouting, Some(Dev::Eth0)),
    ]
}

/// A dataplane under test and the packets it gets.
struct FirstPacket {
    dp: Dataplane,
    dst: Ipv4Address,
    next_port: u16,
    /// Rules the nat PREROUTING walk took for the last packet.
    walked: u32,
}

impl FirstPacket {
    fn new(mode: Option<Mode>, n: u32) -> Self {
        FirstPacket {
            dp: mode.map_or_else(|| ebpf_dataplane(n), |m| dataplane(m, n)),
            dst: cluster_ip(n - 1),
            next_port: 1024,
            walked: 0,
        }
    }

    /// Time for `iters` first packets, each through PREROUTING, FORWARD and POSTROUTING.
    fn run(&mut self, iters: u64) -> StdDuration {
        let ctxs = forward_ctxs(Instant::from_secs(1));
        let mut notes = Notes::new();
        let mut total = StdDuration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CHUNK);
            left -= n;
            self.dp.flush_conntrack();
            if let Some(b) = self.dp.ebpf_mut() {
                b.flush_ct();
            }
            let mut packets: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let sport = self.next_port;
                    self.next_port = if sport == u16::MAX { 1024 } else { sport + 1 };
                    syn(CLIENT, sport, self.dst, 80)
                })
                .collect();
            let dnat_before = self.dp.stats().dnat;
            let start = StdInstant::now();
            for p in packets.iter_mut() {
                for ctx in &ctxs {
                    // The whole packet (no Ethernet header: the IP header is at 0).
                    let v = self.dp.process_frame(ctx, black_box(p), 0, &mut notes);
                    if v != Verdict::Accept {
                        panic!("{:?}: {v:?}", ctx.hook);
                    }
                }
            }
            total += start.elapsed();
            let stats = self.dp.stats();
            assert_eq!(stats.dnat - dnat_before, n, "every packet DNATed");
            assert!(notes.is_empty());
            self.walked = stats.last_rules_walked;
            let ip = Ipv4Packet::new_checked(&packets[0][..]).unwrap();
            assert_ne!(ip.dst_addr(), self.dst, "DNATed to the endpoint");
        }
        total
    }
}

/// Wall time and iterations a benchmark ran, over every batch (for the ratio line).
#[derive(Clone, Default)]
struct Tally(Rc<Cell<(StdDuration, u64)>>);

impl Tally {
    fn add(&self, d: StdDuration, iters: u64) -> StdDuration {
        let (t, n) = self.0.get();
        self.0.set((t + d, n + iters));
        d
    }

    fn per_iter(&self) -> StdDuration {
        let (t, n) = self.0.get();
        t.div_f64(n.max(1) as f64)
    }
}

fn ratio(a: &Tally, b: &Tally) -> f64 {
    a.per_iter().as_secs_f64() / b.per_iter().as_secs_f64()
}

fn first_packet(c: &mut Criterion) {
    let mut g = c.benchmark_group("first_packet");
    g.warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(20)
        .throughput(Throughput::Elements(1));
    let mut lines = Vec::new();
    for (mode, name) in [
        (Some(Mode::Iptables), "iptables"),
        (Some(Mode::Nftables), "nftables"),
        (None, "ebpf"),
    ] {
        let (one, many) = (Tally::default(), Tally::default());
        let mut walked = [0u32; 2];
        for (i, (n, tally)) in [(1, &one), (MANY, &many)].into_iter().enumerate() {
            let mut fp = FirstPacket::new(mode, n);
            g.bench_function(format!("{name}_{n}_services"), |b| {
                b.iter_custom(|iters| tally.add(fp.run(iters), iters))
            });
            walked[i] = fp.walked;
        }
        let target = if mode != Some(Mode::Iptables) {
            " (target <= 1.20x)"
        } else {
            ""
        };
        lines.push(format!(
            "first_packet {name}: 1 service {:.2?} ({} rules walked), {MANY} services {:.2?} \
             ({} rules walked), ratio {MANY}/1 {:.2}x{target}",
            one.per_iter(),
            walked[0],
            many.per_iter(),
            walked[1],
            ratio(&many, &one),
        ));
    }
    g.finish();
    for l in lines {
        println!("{l}");
    }
}

// ---------------------------------------------------------------------------------------------
// connect_nat

/// How the client reaches the web pod.
#[derive(Clone, Copy)]
enum Path {
    /// iptables kube-proxy with `--masquerade-all`, to the ClusterIP: DNAT + SNAT.
    DnatSnat,
    /// iptables kube-proxy, to the pod IP: conntrack, no NAT.
    ConntrackNoNat,
    /// No proxy, no conntrack, to the pod IP.
    NoConntrack,
    /// eBPF mode, to the ClusterIP: socket-level LB at connect(), LRU CT map, no NAT.
    EbpfSocketLb,
}

const VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);

/// `n` sequential HTTP connections from a client pod on node-a to a web pod on node-b (behind
/// Service `web`, 10.96.0.10:80); returns the wall time of the run alone.
fn http(path: Path, n: u64) -> StdDuration {
    let proxy = match path {
        Path::DnatSnat | Path::ConntrackNoNat => Proxy::Iptables,
        Path::NoConntrack => Proxy::None,
        Path::EbpfSocketLb => Proxy::Ebpf,
    };
    let mut c = Cluster::new(ClusterConfig {
        trace: TraceConfig::off(),
        proxy,
        masquerade_all: true,
        ..ClusterConfig::default()
    });
    let a = c.add_node(NodeSpec::new("node-a", NODE_A)).unwrap();
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    let web = c
        .add_pod(PodSpec::new("web", b).program(Program::HttpServer { port: 80 }))
        .unwrap();
    let web_ip = podnet::v4(c.pod(web).unwrap().addrs().ip.address());
    c.add_service(ServiceSpec::new("web", 80, 80, vec![web]).cluster_ip(VIP))
        .unwrap();
    let to = match path {
        Path::DnatSnat | Path::EbpfSocketLb => VIP,
        Path::ConntrackNoNat | Path::NoConntrack => web_ip,
    };
    let client = c
        .add_pod(PodSpec::new("client", a).program(Program::Client(
            ClientSpec::http("web", to, 80).count(n as u32),
        )))
        .unwrap();
    let start = StdInstant::now();
    let done = c.run_until_done(Duration::from_secs(60));
    let elapsed = start.elapsed();
    assert!(done, "clients did not finish");
    let recs = c.pod(client).unwrap().clients().next().unwrap().records();
    assert_eq!(recs.len() as u64, n);
    assert!(
        recs.iter().all(|r| r.outcome == Outcome::Ok),
        "{:?}",
        recs.iter().find(|r| r.outcome != Outcome::Ok)
    );
    let dp = c.dataplane(a).map(|d| d.stats());
    match path {
        Path::DnatSnat => {
            let s = dp.unwrap();
            assert_eq!((s.dnat, s.masquerade), (n, n), "{s:?}");
        }
        Path::ConntrackNoNat => {
            let s = dp.unwrap();
            assert_eq!((s.dnat, s.masquerade), (0, 0), "{s:?}");
            assert!(c.conntrack(a).unwrap().count() as u64 >= n);
        }
        Path::NoConntrack => assert!(dp.is_none()),
        Path::EbpfSocketLb => {
            let bpf = c.dataplane(a).and_then(|d| d.ebpf()).unwrap();
            assert_eq!(bpf.lb().sock_events().len() as u64, n);
            assert_eq!(dp.unwrap().dnat, 0);
        }
    }
    elapsed
}

/// Time for `iters` connections, run as whole batches of [`CONNS_PER_RUN`] on fresh clusters
/// and scaled to `iters`.
fn per_connection(iters: u64, path: Path) -> StdDuration {
    let batches = iters.div_ceil(CONNS_PER_RUN);
    let total: StdDuration = (0..batches).map(|_| http(path, CONNS_PER_RUN)).sum();
    total.mul_f64(iters as f64 / (batches * CONNS_PER_RUN) as f64)
}

fn connect_nat(c: &mut Criterion) {
    let tallies = [
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    ];
    let mut g = c.benchmark_group("connect_nat");
    g.warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(5))
        .sample_size(20)
        .throughput(Throughput::Elements(1));
    for (path, name, tally) in [
        (Path::DnatSnat, "dnat_snat", &tallies[0]),
        (Path::ConntrackNoNat, "conntrack_no_nat", &tallies[1]),
        (Path::NoConntrack, "no_conntrack", &tallies[2]),
        (Path::EbpfSocketLb, "ebpf_socket_lb", &tallies[3]),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| tally.add(per_connection(iters, path), iters))
        });
    }
    g.finish();
    let [nat, ct, none, bpf] = &tallies;
    let conn_s = |t: &Tally| format!("{:.0} conn/s", 1.0 / t.per_iter().as_secs_f64());
    println!(
        "connect_nat: dnat_snat {} ({:.2?}), conntrack_no_nat {} ({:.2?}), no_conntrack {} \
         ({:.2?})",
        conn_s(nat),
        nat.per_iter(),
        conn_s(ct),
        ct.per_iter(),
        conn_s(none),
        none.per_iter()
    );
    println!(
        "connect_nat: ratio dnat_snat/conntrack_no_nat {:.2}x (target <= 1.30x), \
         ratio dnat_snat/no_conntrack {:.2}x, ratio conntrack_no_nat/no_conntrack {:.2}x",
        ratio(nat, ct),
        ratio(nat, none),
        ratio(ct, none)
    );
    println!(
        "connect_nat: ebpf_socket_lb {} ({:.2?}): ratio to dnat_snat {:.2}x, to no_conntrack {:.2}x",
        conn_s(bpf),
        bpf.per_iter(),
        ratio(bpf, nat),
        ratio(bpf, none)
    );
}

criterion_group!(benches, first_packet, connect_nat);
criterion_main!(benches);
