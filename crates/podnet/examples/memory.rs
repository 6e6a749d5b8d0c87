//! Heap cost of pods: 100,000 idle pods (no program) on 396 nodes, then 1,000 pods running an
//! HTTP server, measured with a counting global allocator.
//!
//! ```sh
//! cargo run --release -p podnet --example memory
//! ```
//!
//! "Live bytes" are the bytes requested from the allocator and not yet freed (what the cluster
//! holds); the allocator's own per-allocation overhead comes on top, so the process RSS is
//! printed too (Linux only). RSS can be lower than the live bytes: zeroed socket buffers whose
//! pages were never written are not resident.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant as StdInstant;

use podnet::{Cluster, ClusterConfig, Instant, NodeSpec, PodSpec, Program, TraceConfig};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// Forwards to the system allocator and counts live bytes and allocations.
///
/// `unsafe` is needed to implement `GlobalAlloc`; that is fine here: the core crate forbids
/// unsafe code, but this example is not the core crate.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees carry over; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const GIB: usize = 1 << 30;
/// Usable pod addresses of a /24 (network, gateway and broadcast excluded).
const PODS_PER_NODE: usize = 253;

fn live() -> (usize, usize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_ALLOCS.load(Ordering::Relaxed),
    )
}

/// Resident set size of the process, from `/proc/self/statm` (assumes 4 KiB pages).
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// A cluster with `pods` pods running `program` (or none), spread over as few nodes as hold
/// them. Returns the cluster and the live bytes its nodes alone took.
fn build(pods: usize, program: Option<Program>) -> (Cluster, usize) {
    let base = live().0;
    let config = ClusterConfig {
        // A /8 holds 65,536 node /24s; the default /16 only 256.
        pod_cidr: Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 0), 8),
        trace: TraceConfig::off(),
        // Each node's conntrack reserves 96 B x max up front (24 MiB at the default 262,144,
        // not resident until used); measure the pods with a small table per node.
        conntrack: podnet::conntrack::CtConfig {
            max: 4096,
            buckets: 1024,
            ..Default::default()
        },
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(config);
    let nodes = pods.div_ceil(PODS_PER_NODE);
    let node_ids: Vec<_> = (0..nodes)
        .map(|i| {
            // 192.168.0.1 .. 192.168.1.146 on one /16 underlay.
            let ip = Ipv4Address::new(192, 168, (i / 250) as u8, (i % 250 + 1) as u8);
            let spec = NodeSpec {
                underlay_prefix: 16,
                ..NodeSpec::new(&format!("node-{i}"), ip)
            };
            c.add_node(spec).expect("add node")
        })
        .collect();
    let nodes_bytes = live().0 - base;
    for i in 0..pods {
        let mut spec = PodSpec::new(&format!("pod-{i}"), node_ids[i / PODS_PER_NODE]);
        if let Some(p) = &program {
            spec = spec.program(p.clone());
        }
        c.add_pod(spec).expect("add pod");
    }
    (c, nodes_bytes)
}

/// Builds, measures and prints one scenario; returns the live bytes per pod.
fn scenario(label: &str, pods: usize, program: Option<Program>) -> usize {
    let (base, base_allocs) = live();
    let started = StdInstant::now();
    let (mut c, nodes_bytes) = build(pods, program);
    let built = started.elapsed();
    // Let the cluster run for a second of virtual time: idle pods should stay idle.
    c.run_until(Instant::from_secs(1));
    let (now, allocs) = live();
    let total = now - base;
    let per_pod = total / pods;
    println!("{label}");
    println!(
        "  pods {pods}, nodes {}, built in {built:.2?}, events in 1 s of virtual time: {}",
        c.nodes().count(),
        c.events_run()
    );
    println!(
        "  live heap: {} ({total} bytes) in {} allocations",
        mib(total),
        allocs - base_allocs
    );
    println!(
        "    nodes alone: {} ({} bytes per node)",
        mib(nodes_bytes),
        nodes_bytes / c.nodes().count()
    );
    println!(
        "    pods: {} bytes per pod ({} per pod including the nodes' share)",
        (total - nodes_bytes) / pods,
        per_pod
    );
    if let Some(rss) = rss_bytes() {
        println!(
            "  process RSS now: {} (resident pages: allocator overhead counted, zeroed pages never touched not)",
            mib(rss)
        );
    }
    drop(c);
    let leaked = live().0.saturating_sub(base);
    println!("  after dropping the cluster: {leaked} bytes still live");
    per_pod
}

fn main() {
    const IDLE: usize = 100_000;
    // The first print allocates stdout's buffer; do it before any measurement.
    println!("podnet memory: live heap bytes per pod (counting allocator)\n");
    let per_pod = scenario(
        "100,000 idle pods (no program), TraceConfig::off()",
        IDLE,
        None,
    );
    let projected = per_pod * IDLE;
    println!(
        "  => {per_pod} bytes per idle pod; 100,000 idle pods {} in 1 GiB ({} of {})",
        if projected <= GIB {
            "FIT"
        } else {
            "DO NOT FIT"
        },
        mib(projected),
        mib(GIB)
    );
    println!();
    scenario(
        "1,000 pods running Program::HttpServer { port: 80 }, TraceConfig::off()",
        1_000,
        Some(Program::HttpServer { port: 80 }),
    );
    println!();
    println!(
        "peak live heap over the whole run: {}",
        mib(PEAK_BYTES.load(Ordering::Relaxed))
    );
}
