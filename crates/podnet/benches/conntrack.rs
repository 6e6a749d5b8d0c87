//! Conntrack table benchmarks: finding an existing flow among N, against a
//! `hashbrown::HashMap<Tuple, u32>` holding the same N keys, measured in the same run.
//!
//! For N = 64 Ki and 1 Mi, a [`Conntrack`] with `max: N, buckets: N / 4` (Linux's ratio before
//! 5.15, so a full table has eight chain nodes per bucket: every entry is linked by both tuples;
//! `PODNET_CT_BUCKET_DIV=1` gives Linux 5.15's `max == buckets`) is filled with N established TCP
//! connections (SYN, SYN-ACK, ACK through `track`, `confirm`).
//! Then, over one random sequence of existing ORIGINAL tuples:
//!
//! * `podnet_lookup`: `table().lookup(&tuple)`;
//! * `hashbrown_lookup`: `map.get(&tuple)` on a map from those N tuples to their index
//!   (hashbrown's default hasher, foldhash);
//! * `podnet_track`: `track()` of an ACK on the connection (parse, lookup, TCP state and window
//!   update, timeout refresh), checksums not verified (as at every hook but PREROUTING).
//!
//! After each size a `ratio` line compares the mean time per lookup of both sides over every
//! batch criterion ran (warm-up included), and a `memory` line gives the bytes per entry
//! (podnet: `reserved_bytes() / capacity`; hashbrown: its table allocation / N).
//!
//! A last group, `lru_64k`, compares the eBPF-style [`LruMap`] with hashbrown at 64 Ki entries.
//!
//! Run with `cargo bench -p podnet --bench conntrack`.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use podnet::conntrack::{Conntrack, CtConfig, CtState, Tuple};
use podnet::ebpf::lru::LruMap;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::Instant;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};

/// Queries in the random sequence (each side walks it cyclically).
const QUERIES: usize = 1 << 20;
/// Pre-built packets for the `track` benchmark (cycled).
const PACKETS: usize = 1 << 16;
/// A TCP segment without options or payload: 20 + 20 bytes.
const SEG_LEN: usize = 40;

// ---------------------------------------------------------------------------------------------
// Flows and packets

/// Flow `i`: client 10.244.(i >> 18).(i >> 10) port 10000 + (i & 1023) to a service backend
/// 10.244.200.10:8080 (so flows share a destination, as in a cluster).
fn client(i: u32) -> (Ipv4Address, u16) {
    let host = i >> 10;
    (
        Ipv4Address::new(10, 244, (host >> 8) as u8, host as u8),
        10_000 + (i & 1023) as u16,
    )
}

const SERVER: Ipv4Address = Ipv4Address::new(10, 244, 200, 10);
const SERVER_PORT: u16 = 8080;

fn tuple(i: u32) -> Tuple {
    let (src, sport) = client(i);
    Tuple {
        src,
        dst: SERVER,
        sport,
        dport: SERVER_PORT,
        proto: 6,
    }
}

/// A TCP segment (checksums filled) into `out` (exactly [`SEG_LEN`] bytes).
#[allow(clippy::too_many_arguments)]
fn segment(
    out: &mut [u8],
    src: Ipv4Address,
    sport: u16,
    dst: Ipv4Address,
    dport: u16,
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
) {
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 64240,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    debug_assert_eq!(tcp.buffer_len(), SEG_LEN - 20);
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
    ip.emit(&mut p, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(p.payload_mut()),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &caps,
    );
}

/// The client's ACK of flow `i` after the handshake (in window, no data: it leaves the
/// connection as it is, so it can be replayed).
fn ack(out: &mut [u8], i: u32) {
    let (c, cp) = client(i);
    segment(
        out,
        c,
        cp,
        SERVER,
        SERVER_PORT,
        TcpControl::None,
        1001,
        Some(5001),
    );
}

fn at(ms: i64) -> Instant {
    Instant::from_millis(ms)
}

/// `max / buckets`: 4 (Linux before 5.15, the default here), or `PODNET_CT_BUCKET_DIV` (Linux
/// 5.15 and later use 1).
fn bucket_divisor() -> u32 {
    std::env::var("PODNET_CT_BUCKET_DIV")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&d| d > 0)
        .unwrap_or(4)
}

/// A table of `n` established connections.
fn filled(n: u32) -> Conntrack {
    let mut ct = Conntrack::new(
        CtConfig {
            max: n,
            buckets: n / bucket_divisor(),
            ..CtConfig::default()
        },
        0x5eed,
    );
    let mut pkt = [0u8; SEG_LEN];
    for i in 0..n {
        let (c, cp) = client(i);
        segment(
            &mut pkt,
            c,
            cp,
            SERVER,
            SERVER_PORT,
            TcpControl::Syn,
            1000,
            None,
        );
        let syn = ct.track(at(0), &pkt, false).expect("room for every flow");
        ct.confirm(at(0), syn.entry.expect("an entry"))
            .expect("no clash");
        segment(
            &mut pkt,
            SERVER,
            SERVER_PORT,
            c,
            cp,
            TcpControl::Syn,
            5000,
            Some(1001),
        );
        ct.track(at(1), &pkt, false).unwrap();
        ack(&mut pkt, i);
        let est = ct.track(at(2), &pkt, false).unwrap();
        debug_assert_eq!(est.state, CtState::Established);
    }
    assert_eq!(ct.count(), n);
    ct
}

/// xorshift64*: the random flow sequence, the same for both sides.
fn random_flows(n: u32, len: usize) -> Vec<u32> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            ((s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % u64::from(n)) as u32
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// Wall time and iterations a benchmark ran, over every batch (for the ratio line).
#[derive(Clone, Default)]
struct Tally(Rc<Cell<(StdDuration, u64)>>);

impl Tally {
    fn add(&self, d: StdDuration, iters: u64) -> StdDuration {
        let (t, n) = self.0.get();
        self.0.set((t + d, n + iters));
        d
    }

    fn per_iter_ns(&self) -> f64 {
        let (t, n) = self.0.get();
        t.as_secs_f64() * 1e9 / n.max(1) as f64
    }
}

/// Times `iters` calls of `f` on consecutive items of `items` (cycled), continuing where the
/// previous batch stopped.
fn cycle<T>(items: &[T], pos: &Cell<usize>, iters: u64, mut f: impl FnMut(&T)) -> StdDuration {
    let mut k = pos.get();
    let start = StdInstant::now();
    for _ in 0..iters {
        f(&items[k]);
        k += 1;
        if k == items.len() {
            k = 0;
        }
    }
    let d = start.elapsed();
    pos.set(k);
    d
}

fn lookup(c: &mut Criterion, n: u32, label: &str) {
    let setup = StdInstant::now();
    let mut ct = filled(n);
    let map: hashbrown::HashMap<Tuple, u32> = (0..n).map(|i| (tuple(i), i)).collect();
    let flows = random_flows(n, QUERIES);
    let queries: Vec<Tuple> = flows.iter().map(|&i| tuple(i)).collect();
    let mut packets = vec![0u8; PACKETS * SEG_LEN];
    for (k, p) in packets.chunks_exact_mut(SEG_LEN).enumerate() {
        ack(p, flows[k]);
    }
    let packets: Vec<&[u8]> = packets.chunks_exact(SEG_LEN).collect();
    // Every query hits, on both sides.
    for q in &queries[..1000] {
        let (idx, dir) = ct.table().lookup(q).expect("podnet finds the flow");
        assert_eq!((ct.entry(idx).tuple(0), dir), (*q, 0));
        assert!(map.contains_key(q));
    }
    println!("{label}: {n} flows set up in {:.2?}", setup.elapsed());

    let (podnet, hb, track) = (Tally::default(), Tally::default(), Tally::default());
    let mut g = c.benchmark_group(format!("conntrack_lookup_{label}"));
    g.warm_up_time(StdDuration::from_millis(1500))
        .measurement_time(StdDuration::from_secs(4))
        .sample_size(30)
        .throughput(Throughput::Elements(1));
    let pos = Cell::new(0);
    g.bench_function("podnet_lookup", |b| {
        let table = ct.table();
        b.iter_custom(|iters| {
            let d = cycle(&queries, &pos, iters, |q| {
                black_box(table.lookup(black_box(q)));
            });
            podnet.add(d, iters)
        })
    });
    pos.set(0);
    g.bench_function("hashbrown_lookup", |b| {
        b.iter_custom(|iters| {
            let d = cycle(&queries, &pos, iters, |q| {
                black_box(map.get(black_box(q)));
            });
            hb.add(d, iters)
        })
    });
    pos.set(0);
    g.bench_function("podnet_track", |b| {
        b.iter_custom(|iters| {
            let d = cycle(&packets, &pos, iters, |p| {
                let info = ct.track(at(10_000), black_box(p), false);
                debug_assert!(info.is_ok_and(|i| i.state == CtState::Established));
                black_box(info.ok());
            });
            track.add(d, iters)
        })
    });
    g.finish();

    let (p, h, t) = (podnet.per_iter_ns(), hb.per_iter_ns(), track.per_iter_ns());
    println!(
        "conntrack_lookup_{label}: podnet {p:.1} ns, hashbrown {h:.1} ns, ratio podnet/hashbrown {:.2}x (target <= 1.20x); podnet track {t:.1} ns ({:.2}x hashbrown lookup)",
        p / h,
        t / h,
    );
    let table = ct.table();
    let slot = std::mem::size_of::<(Tuple, u32)>();
    println!(
        "conntrack_memory_{label}: podnet {:.1} B/entry ({} B reserved for {} entries, {} buckets; target <= 64 B), hashbrown {:.1} B/entry ({} B allocated, capacity {} x ({slot} B key+value + 1 B control))",
        table.reserved_bytes() as f64 / f64::from(table.capacity()),
        table.reserved_bytes(),
        table.capacity(),
        table.bucket_count(),
        map.allocation_size() as f64 / f64::from(n),
        map.allocation_size(),
        map.capacity(),
    );
}

fn lookup_64k(c: &mut Criterion) {
    lookup(c, 1 << 16, "64k");
}

fn lookup_1m(c: &mut Criterion) {
    lookup(c, 1 << 20, "1M");
}

// ---------------------------------------------------------------------------------------------
// LRU map (the eBPF CT/NAT map model) against hashbrown

/// Distinct for every `k`, and from every [`tuple`].
fn fresh(k: u32) -> Tuple {
    Tuple {
        src: Ipv4Address::from(k),
        dst: SERVER,
        sport: 1,
        dport: SERVER_PORT,
        proto: 17,
    }
}

/// `lru_64k`: an [`LruMap`] and a `hashbrown::HashMap` of the same 64 Ki tuples, full.
///
/// * `lru_get` / `hashbrown_get`: looking up existing tuples in the random sequence (the LRU
///   `get` also moves the entry to the most recently used end);
/// * `lru_insert_evict` / `hashbrown_insert_remove`: a tuple not in the map goes in, and the
///   oldest leaves (the LRU evicts it itself; hashbrown is given the key to remove, as a FIFO
///   would), so both stay at 64 Ki entries.
fn lru_64k(c: &mut Criterion) {
    let n: u32 = 1 << 16;
    let mut lru: LruMap<Tuple, u32> = LruMap::with_capacity(n as usize);
    let mut map: hashbrown::HashMap<Tuple, u32> = hashbrown::HashMap::with_capacity(n as usize);
    for i in 0..n {
        lru.insert(tuple(i), i);
        map.insert(tuple(i), i);
    }
    let queries: Vec<Tuple> = random_flows(n, QUERIES).iter().map(|&i| tuple(i)).collect();
    let (lt, ht) = (Tally::default(), Tally::default());
    let mut g = c.benchmark_group("lru_64k");
    g.warm_up_time(StdDuration::from_millis(1000))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(30)
        .throughput(Throughput::Elements(1));
    let pos = Cell::new(0);
    g.bench_function("lru_get", |b| {
        b.iter_custom(|iters| {
            let d = cycle(&queries, &pos, iters, |q| {
                black_box(lru.get(black_box(q)));
            });
            lt.add(d, iters)
        })
    });
    pos.set(0);
    g.bench_function("hashbrown_get", |b| {
        b.iter_custom(|iters| {
            let d = cycle(&queries, &pos, iters, |q| {
                black_box(map.get(black_box(q)));
            });
            ht.add(d, iters)
        })
    });
    // Fresh tuples 0, 1, ... (UDP, unlike the TCP ones filled in): each evicts the oldest.
    let next = Cell::new(0u32);
    g.bench_function("lru_insert_evict", |b| {
        b.iter_custom(|iters| {
            let mut k = next.get();
            let start = StdInstant::now();
            for _ in 0..iters {
                black_box(lru.insert(fresh(k), k));
                k += 1;
            }
            let d = start.elapsed();
            next.set(k);
            d
        })
    });
    let next = Cell::new(0u32);
    g.bench_function("hashbrown_insert_remove", |b| {
        b.iter_custom(|iters| {
            let mut k = next.get();
            let start = StdInstant::now();
            for _ in 0..iters {
                black_box(map.insert(fresh(k), k));
                let oldest = if k < n { tuple(k) } else { fresh(k - n) };
                black_box(map.remove(&oldest));
                k += 1;
            }
            let d = start.elapsed();
            next.set(k);
            d
        })
    });
    g.finish();
    assert_eq!((lru.len(), map.len()), (n as usize, n as usize));
    let (l, h) = (lt.per_iter_ns(), ht.per_iter_ns());
    println!(
        "lru_64k: LruMap get {l:.1} ns, hashbrown get {h:.1} ns, ratio {:.2}x",
        l / h
    );
}

criterion_group!(benches, lookup_64k, lookup_1m, lru_64k);
criterion_main!(benches);
