//! Idle pods must stay small enough for 100,000 to fit in 1 GiB (10,737 bytes each, nodes
//! included). Heap bytes are counted exactly by a counting allocator, so this is a deterministic
//! check, not a timing; `examples/memory.rs` measures the full 100,000.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use podnet::conntrack::CtConfig;
use podnet::{Cluster, ClusterConfig, NodeSpec, PodSpec, TraceConfig};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// Forwards to `System`, counting live bytes. (Test code, not the core crate: `unsafe` is
/// needed to implement `GlobalAlloc`.)
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn ten_thousand_idle_pods_stay_under_the_100k_per_gib_budget() {
    const PODS: usize = 10_000;
    let before = LIVE.load(Ordering::Relaxed);
    // Each node's conntrack reserves 96 B x `conntrack.max` up front (24 MiB at the default
    // 262,144; pages never touched are not resident). This test is about the pods, so the
    // nodes get a small table.
    let mut c = Cluster::new(ClusterConfig {
        trace: TraceConfig::off(),
        conntrack: CtConfig {
            max: 4096,
            buckets: 1024,
            ..CtConfig::default()
        },
        pod_cidr: Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 0), 8),
        ..ClusterConfig::default()
    });
    let nodes: Vec<_> = (0..40u8)
        .map(|i| {
            c.add_node(NodeSpec::new(&format!("node-{i}"), [192, 168, 1, 10 + i]))
                .unwrap()
        })
        .collect();
    for i in 0..PODS {
        c.add_pod(PodSpec::new(&format!("pod-{i}"), nodes[i % nodes.len()]))
            .unwrap();
    }
    let per_pod = (LIVE.load(Ordering::Relaxed) - before) / PODS;
    let budget = (1usize << 30) / 100_000;
    assert!(
        per_pod < budget,
        "{per_pod} bytes per idle pod, budget {budget}"
    );
    drop(c);
    assert!(
        LIVE.load(Ordering::Relaxed) - before < 4096,
        "the cluster freed what it held"
    );
}
