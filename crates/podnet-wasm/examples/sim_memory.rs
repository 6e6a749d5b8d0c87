//! Heap held by one unrecorded `Sim` (as the playground parks them) at moments of a run, and
//! each pod's sockets then (open ones, in TIME-WAIT, created, reused from its pool):
//!
//! ```sh
//! cargo run --release -p podnet-wasm --example sim_memory -- \
//!     examples/three-endpoints.yaml n30000 5000 150000
//! ```
//!
//! `nCOUNT` replaces the scenario's `count: 3000`; then times in µs. Live bytes are counted by
//! a global allocator that forwards to the system's. Under `valgrind --tool=callgrind` it is
//! also the way to count the instructions of a run to a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use podnet_wasm::api::SimOptions;
use podnet_wasm::sim::SimCore;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, n) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            LIVE.fetch_add(n, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: sim_memory SCENARIO.yaml [COUNT] T_US...");
    let mut yaml = std::fs::read_to_string(&path).expect("read the scenario");
    let rest: Vec<String> = args.collect();
    let (count, times) = match rest.split_first() {
        Some((c, t)) if c.starts_with('n') => (Some(c[1..].to_string()), t.to_vec()),
        _ => (None, rest),
    };
    if let Some(c) = count {
        yaml = yaml.replace("count: 3000", &format!("count: {c}"));
    }
    let opts = SimOptions {
        record: Some(false),
        ..Default::default()
    };
    let base = LIVE.load(Ordering::Relaxed);
    let mut sim = SimCore::new(&yaml, &opts).unwrap_or_else(|e| panic!("{e}"));
    for t in times {
        let t: f64 = t.parse().expect("a time in µs");
        let w = std::time::Instant::now();
        sim.run_until(t).unwrap_or_else(|e| panic!("{e}"));
        let live = LIVE.load(Ordering::Relaxed) - base;
        println!(
            "{t:>12} µs  {:>8.2} MiB  {:>7.1} ms",
            live as f64 / 1048576.0,
            w.elapsed().as_secs_f64() * 1e3
        );
        for (_, pod) in sim.session().cluster.pods() {
            let (c, r) = pod.sockets_created_reused();
            println!(
                "    {}: {} sockets ({} in TIME-WAIT), {c} created, {r} reused",
                pod.name(),
                pod.socket_count(),
                pod.time_wait_count()
            );
        }
    }
}
