//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
//! Load Balancer", NSDI'16, section 3.4), built the way Cilium's agent builds a service's
//! lookup table (`pkg/maglev/maglev.go`) for the datapath to index (`bpf/lib/lb.h`).
//!
//! A table of `M` slots (`M` prime) is shared out between the backends. Backend `i` has a
//! permutation of the slots, `permutation[j] = (offset + j * skip) % M` with
//! `offset = h1 % M` and `skip = h2 % (M - 1) + 1`, where `(h1, h2)` is the 128-bit
//! MurmurHash3 (x64 variant, as Cilium's `murmur3.Hash128`) of the backend's identity. The
//! backends take turns, each claiming the next slot of its permutation that nobody holds yet,
//! until the table is full, so every backend ends up with `M / N` slots give or take one.
//!
//! As in Cilium, the turns go in the order of the backends' identities (Cilium sorts the
//! backend names), not in the order the caller lists them, so the same set of backends gives
//! the same table whatever the order; [`Maglev::lookup`] still answers with an index into the
//! caller's slice.
//!
//! # What stays put when the backends change
//!
//! A backend's permutation depends only on its own identity and the seed, so removing one
//! backend frees its slots for the survivors. But the survivors' turns interleave differently
//! once one is gone (and once one more takes turns, for an added backend), so survivors also
//! win or lose some slots that another survivor held before. Maglev promises minimal
//! disruption, not none, and Cilium's own test (`TestBackendRemoval`) allows survivors to swap
//! under 1% of the slots. Measured here (the tests below): of 3 backends at M = 16381,
//! removing one moves a few slots between the other two (median 8), and moves none in under
//! 1% of random sets; for 3..=19 backends at M = 4093 the median is about 1% of M, with a long
//! tail (worst seen 19.7%).
//!
//! # Per-packet hash
//!
//! [`flow_hash`] is the hash the datapath takes of a packet to pick a slot:
//! `jhash_3words(saddr, dport << 16 | sport, nexthdr, seed)` (Cilium's `hash_from_tuple_v4`).
//! The destination address is left out on purpose, as in Cilium, so that a client reaches the
//! same backend through any of a service's addresses (ClusterIP, NodePort, ...).

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use smoltcp::wire::Ipv4Address;

/// Cilium's default table size (`maglev.DefaultTableSize`, `--bpf-lb-maglev-table-size`).
pub const DEFAULT_TABLE_SIZE: u32 = 16381;

/// The table sizes Cilium accepts: primes a little under each power of two from 2^8 to 2^17.
pub const TABLE_SIZES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// A slot no backend holds yet (only while the table is being filled).
const FREE: u32 = u32::MAX;

/// One backend of a service: what its permutation is derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    /// The backend's address (a pod IP).
    pub addr: Ipv4Address,
    /// The backend's port (the pod's target port).
    pub port: u16,
    /// The IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub proto: u8,
}

impl Backend {
    /// A backend at `addr:port` for protocol `proto`.
    pub const fn new(addr: Ipv4Address, port: u16, proto: u8) -> Self {
        Backend { addr, port, proto }
    }

    /// The bytes hashed for the permutation: the address, the port (big-endian), the protocol.
    pub fn identity(&self) -> [u8; 7] {
        let a = self.addr.octets();
        let p = self.port.to_be_bytes();
        [a[0], a[1], a[2], a[3], p[0], p[1], self.proto]
    }

    /// `(offset, skip)` of this backend's permutation of `m` slots.
    fn offset_skip(&self, m: u32, seed: u64) -> (u32, u32) {
        let (h1, h2) = mur3::murmurhash3_x64_128(&self.identity(), fold(seed));
        let m = u64::from(m);
        ((h1 % m) as u32, (h2 % (m - 1) + 1) as u32)
    }
}

/// Why a table could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaglevError {
    /// The table size is not one of [`TABLE_SIZES`].
    TableSize(u32),
    /// More backends than slots: some backend would get no slot at all.
    TooManyBackends {
        /// Backends given.
        backends: usize,
        /// Slots in the table.
        size: u32,
    },
    /// The same backend is listed twice (at these two indices of the slice).
    DuplicateBackend(usize, usize),
}

impl fmt::Display for MaglevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MaglevError::TableSize(m) => write!(
                f,
                "Maglev table size {m} is not supported: it must be one of the primes {TABLE_SIZES:?}"
            ),
            MaglevError::TooManyBackends { backends, size } => write!(
                f,
                "{backends} backends do not fit a Maglev table of {size} slots: \
                 a table needs at least one slot per backend"
            ),
            MaglevError::DuplicateBackend(a, b) => {
                write!(f, "backends {a} and {b} are the same backend")
            }
        }
    }
}

impl core::error::Error for MaglevError {}

/// A filled Maglev lookup table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maglev {
    /// Slot -> index of the owning backend in the slice given to [`Maglev::new`]; empty when
    /// there are no backends.
    slots: Vec<u32>,
    /// `M`.
    size: u32,
}

impl Maglev {
    /// Fills a table of `m` slots (one of [`TABLE_SIZES`]) among `backends`, with the
    /// permutations derived from `seed` (Cilium's `--bpf-lb-maglev-hash-seed`).
    ///
    /// No backends give an empty table, whose [`lookup`](Self::lookup) always answers `None`.
    pub fn new(backends: &[Backend], m: u32, seed: u64) -> Result<Self, MaglevError> {
        if !TABLE_SIZES.contains(&m) {
            return Err(MaglevError::TableSize(m));
        }
        if backends.len() > m as usize {
            return Err(MaglevError::TooManyBackends {
                backends: backends.len(),
                size: m,
            });
        }
        if backends.is_empty() {
            return Ok(Maglev {
                slots: Vec::new(),
                size: m,
            });
        }
        // Turns in the order of the identities; a duplicate sits next to its twin.
        let mut order: Vec<u32> = (0..backends.len() as u32).collect();
        crate::sort::sort_by_key(&mut order, |&i| (backends[i as usize], i));
        for w in order.windows(2) {
            if backends[w[0] as usize] == backends[w[1] as usize] {
                return Err(MaglevError::DuplicateBackend(w[0] as usize, w[1] as usize));
            }
        }
        // Per backend, in turn order: (owner index, offset, skip, next j to try).
        let mut perm: Vec<(u32, u32, u32, u32)> = order
            .iter()
            .map(|&i| {
                let (offset, skip) = backends[i as usize].offset_skip(m, seed);
                (i, offset, skip, 0)
            })
            .collect();
        let mut slots = vec![FREE; m as usize];
        let mut filled = 0u32;
        'fill: loop {
            for (owner, offset, skip, next) in perm.iter_mut() {
                // A permutation covers every slot (m is prime, 0 < skip < m), and the table is
                // not full, so this finds a free slot before `next` reaches m.
                let mut c = slot_at(*offset, *skip, *next, m);
                while slots[c as usize] != FREE {
                    *next += 1;
                    c = slot_at(*offset, *skip, *next, m);
                }
                slots[c as usize] = *owner;
                *next += 1;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Ok(Maglev { slots, size: m })
    }

    /// The backend (index into the slice given to [`Maglev::new`]) for a packet whose
    /// [`flow_hash`] is `hash`: the owner of slot `hash % M`. `None` without backends.
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        self.slots
            .get((hash % self.size) as usize)
            .map(|&b| b as usize)
    }

    /// The owner of every slot, slot 0 first (empty without backends).
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// `M`, the number of slots.
    pub fn size(&self) -> u32 {
        self.size
    }
}

/// `(offset + j * skip) % m` without overflow.
fn slot_at(offset: u32, skip: u32, j: u32, m: u32) -> u32 {
    ((u64::from(offset) + u64::from(j) * u64::from(skip)) % u64::from(m)) as u32
}

/// The scenario's 64-bit seed as a 32-bit hash seed (Cilium's seeds are 32-bit words).
fn fold(seed: u64) -> u32 {
    (seed ^ (seed >> 32)) as u32
}

/// The per-packet hash that indexes the table, as Cilium's `hash_from_tuple_v4`:
/// `jhash_3words(saddr, dport << 16 | sport, proto, seed)`, the words read as a little-endian
/// host reads the packet's network-order fields (so the value is the same on every target).
///
/// The destination address is not hashed (Cilium leaves it out so that a client reaches the
/// same backend through any address of the service).
pub fn flow_hash(src: Ipv4Address, sport: u16, dport: u16, proto: u8, seed: u64) -> u32 {
    let saddr = u32::from_le_bytes(src.octets());
    let sport = u32::from(u16::from_le_bytes(sport.to_be_bytes()));
    let dport = u32::from(u16::from_le_bytes(dport.to_be_bytes()));
    jhash_3words(saddr, (dport << 16) | sport, u32::from(proto), fold(seed))
}

/// Bob Jenkins' lookup3 hash of three words as the Linux kernel's `jhash_3words` (which
/// Cilium's `bpf/lib/jhash.h` carries over). Written out here: it is a dozen lines, and no
/// `no_std` crate offers the kernel's variant (its init value and final mix).
fn jhash_3words(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    const JHASH_INITVAL: u32 = 0xdead_beef;
    let init = initval.wrapping_add(JHASH_INITVAL).wrapping_add(3 << 2);
    let (mut a, mut b, mut c) = (
        a.wrapping_add(init),
        b.wrapping_add(init),
        c.wrapping_add(init),
    );
    // __jhash_final: seven rounds of `x ^= y; x -= rol32(y, r)`.
    let round = |x: u32, y: u32, r: u32| (x ^ y).wrapping_sub(y.rotate_left(r));
    c = round(c, b, 14);
    a = round(a, c, 11);
    b = round(b, a, 25);
    c = round(c, b, 16);
    a = round(a, c, 4);
    b = round(b, a, 14);
    c = round(c, b, 24);
    c
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::println;

    const SEED: u64 = 0x5eed_cafe_f00d_0001;

    fn backend(i: u32) -> Backend {
        Backend::new(Ipv4Address::new(10, 244, (i >> 8) as u8, i as u8), 8080, 6)
    }

    fn backends(n: u32) -> Vec<Backend> {
        (0..n).map(backend).collect()
    }

    fn shares(t: &Maglev, n: usize) -> Vec<u32> {
        let mut s = vec![0u32; n];
        for &b in t.slots() {
            s[b as usize] += 1;
        }
        s
    }

    /// Slots held by the same backend (by identity) in both tables, and slots that moved from
    /// one survivor to another.
    fn moves(before: &Maglev, bb: &[Backend], after: &Maglev, ab: &[Backend]) -> (u32, u32) {
        let (mut kept, mut between) = (0, 0);
        for (&x, &y) in before.slots().iter().zip(after.slots()) {
            let (x, y) = (bb[x as usize], ab[y as usize]);
            if x == y {
                kept += 1;
            } else if ab.contains(&x) {
                between += 1;
            }
        }
        (kept, between)
    }

    #[test]
    fn three_backends_share_evenly() {
        let b = backends(3);
        let t = Maglev::new(&b, DEFAULT_TABLE_SIZE, SEED).unwrap();
        assert_eq!(t.size(), DEFAULT_TABLE_SIZE);
        assert_eq!(t.slots().len(), DEFAULT_TABLE_SIZE as usize);
        let s = shares(&t, 3);
        println!("shares of 16381 among 3: {s:?}");
        let third = f64::from(DEFAULT_TABLE_SIZE) / 3.0;
        for &c in &s {
            assert!((f64::from(c) - third).abs() <= third * 0.01, "{s:?}");
        }
        // Round-robin turns: nobody is more than one slot ahead.
        assert!(
            s.iter().max().unwrap() - s.iter().min().unwrap() <= 1,
            "{s:?}"
        );
    }

    #[test]
    fn remove_one_of_three() {
        // The issue asked that removing one of 3 backends move no slot between the other two.
        // Maglev does not promise that, and it does not hold here: the survivors' turns
        // interleave differently once the third is gone. For this set and seed a few slots
        // move (printed: 3, 11 and 11 of 16381); over 5,850 random 3-backend sets only 0.2% moved
        // none, the median was 8, the 99th percentile 96 (see `survivors_move_little`). What
        // does hold: the removed backend's slots all go to survivors, and survivors swap
        // under 1% of the slots (Cilium's `TestBackendRemoval` bound).
        let b = backends(3);
        let before = Maglev::new(&b, DEFAULT_TABLE_SIZE, SEED).unwrap();
        for gone in 0..3 {
            let rest: Vec<Backend> = b.iter().copied().filter(|&x| x != b[gone]).collect();
            let after = Maglev::new(&rest, DEFAULT_TABLE_SIZE, SEED).unwrap();
            let (kept, between) = moves(&before, &b, &after, &rest);
            let freed = shares(&before, 3)[gone];
            println!(
                "3 -> 2 without {gone}: {kept} kept, {between} moved between survivors, {freed} freed"
            );
            assert_eq!(kept + between + freed, DEFAULT_TABLE_SIZE);
            assert!(between * 100 < DEFAULT_TABLE_SIZE, "{between}");
        }
    }

    /// Survivors' moves over a fixed sample of 1,000 random sets of 3..=19 backends with
    /// M = 4093, removing one at random. Measured: mean 44.4 slots, median 47 (1.1% of M),
    /// 99th percentile 97, worst 291; asserted: mean under 2% of M, median under 1.5%, 99th
    /// percentile under 5%.
    #[test]
    fn survivors_move_little() {
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let m = 4093;
        let mut v = Vec::new();
        for _ in 0..1000 {
            let n = 3 + (next() % 17) as usize;
            let seed = next();
            let mut ids = std::collections::BTreeSet::new();
            while ids.len() < n {
                ids.insert((next() % 4096) as u32);
            }
            let b: Vec<Backend> = ids.iter().map(|&i| backend(i)).collect();
            let gone = b[(next() % n as u64) as usize];
            let rest: Vec<Backend> = b.iter().copied().filter(|&x| x != gone).collect();
            let before = Maglev::new(&b, m, seed).unwrap();
            let after = Maglev::new(&rest, m, seed).unwrap();
            v.push(moves(&before, &b, &after, &rest).1);
        }
        v.sort_unstable();
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let (median, p99, max) = (v[500], v[990], v[999]);
        println!("M={m}, 3..=19 backends, one removed: moved between survivors mean {mean:.1}, median {median}, p99 {p99}, max {max}");
        assert!(mean < 0.02 * f64::from(m), "{mean}");
        assert!(median * 1000 < m * 15, "{median}");
        assert!(p99 * 20 < m, "{p99}");
    }

    #[test]
    fn adding_a_fourth_moves_about_a_quarter() {
        let b = backends(3);
        let before = Maglev::new(&b, DEFAULT_TABLE_SIZE, SEED).unwrap();
        let b4 = backends(4);
        let after = Maglev::new(&b4, DEFAULT_TABLE_SIZE, SEED).unwrap();
        let changed = before
            .slots()
            .iter()
            .zip(after.slots())
            .filter(|(&x, &y)| b[x as usize] != b4[y as usize])
            .count();
        let to_new = after.slots().iter().filter(|&&y| y == 3).count();
        println!("3 -> 4: {changed} slots changed owner, {to_new} to the new backend");
        let quarter = DEFAULT_TABLE_SIZE as f64 / 4.0;
        assert!((to_new as f64 - quarter).abs() <= quarter * 0.01);
        // Every changed slot but a few went to the new backend.
        assert!(changed as f64 <= quarter * 1.02, "{changed}");
    }

    #[test]
    fn seed_decides_the_table() {
        let b = backends(5);
        let a = Maglev::new(&b, 1021, SEED).unwrap();
        assert_eq!(a, Maglev::new(&b, 1021, SEED).unwrap());
        assert_ne!(a, Maglev::new(&b, 1021, SEED + 1).unwrap());
    }

    #[test]
    fn order_of_the_slice_does_not_matter() {
        let b = backends(7);
        let mut r = b.clone();
        r.reverse();
        let (x, y) = (
            Maglev::new(&b, 4093, SEED).unwrap(),
            Maglev::new(&r, 4093, SEED).unwrap(),
        );
        for (&i, &j) in x.slots().iter().zip(y.slots()) {
            assert_eq!(b[i as usize], r[j as usize]);
        }
    }

    #[test]
    fn every_allowed_size_builds() {
        let b = backends(10);
        for m in TABLE_SIZES {
            let t = Maglev::new(&b, m, SEED).unwrap();
            assert_eq!(t.slots().len(), m as usize);
            let s = shares(&t, 10);
            assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn bad_sizes_and_counts() {
        let b = backends(3);
        for m in [0, 1, 2, 250, 253, 16383, 65537] {
            let e = Maglev::new(&b, m, SEED).unwrap_err();
            assert_eq!(e, MaglevError::TableSize(m));
        }
        assert!(std::format!("{}", MaglevError::TableSize(1000)).contains("16381"));
        let many = backends(252);
        let e = Maglev::new(&many, 251, SEED).unwrap_err();
        assert_eq!(
            e,
            MaglevError::TooManyBackends {
                backends: 252,
                size: 251
            }
        );
        // Exactly M backends: one slot each.
        let t = Maglev::new(&many[..251], 251, SEED).unwrap();
        assert!(shares(&t, 251).iter().all(|&c| c == 1));
        let dup = [backend(1), backend(2), backend(1)];
        assert_eq!(
            Maglev::new(&dup, 251, SEED).unwrap_err(),
            MaglevError::DuplicateBackend(0, 2)
        );
    }

    #[test]
    fn empty_and_single() {
        let t = Maglev::new(&[], DEFAULT_TABLE_SIZE, SEED).unwrap();
        assert!(t.slots().is_empty());
        assert_eq!(t.lookup(12345), None);
        let one = Maglev::new(&[backend(9)], DEFAULT_TABLE_SIZE, SEED).unwrap();
        assert!(one.slots().iter().all(|&s| s == 0));
        assert_eq!(one.lookup(u32::MAX), Some(0));
    }

    #[test]
    fn lookup_is_slot_of_hash_mod_m() {
        let b = backends(4);
        let t = Maglev::new(&b, 251, SEED).unwrap();
        for h in [0u32, 250, 251, 1000, u32::MAX] {
            assert_eq!(t.lookup(h), Some(t.slots()[(h % 251) as usize] as usize));
        }
    }

    #[test]
    fn jhash_matches_the_kernel() {
        // Values of the kernel's jhash_3words worked out independently (a Python transcription
        // of include/linux/jhash.h).
        assert_eq!(jhash_3words(0, 0, 0, 0), 0x1b68_e557);
        assert_eq!(jhash_3words(1, 2, 3, 4), 0x8103_143f);
        assert_eq!(
            jhash_3words(0x0a00_f40a, (0x5000 << 16) | 0x409c, 6, 0x1234_5678),
            0x22b6_80dd
        );
    }

    #[test]
    fn flow_hash_is_deterministic_and_spreads() {
        let src = Ipv4Address::new(10, 244, 1, 7);
        let h = flow_hash(src, 40000, 80, 6, SEED);
        assert_eq!(h, flow_hash(src, 40000, 80, 6, SEED));
        assert_ne!(h, flow_hash(src, 40001, 80, 6, SEED));
        assert_ne!(h, flow_hash(src, 40000, 81, 6, SEED));
        assert_ne!(h, flow_hash(src, 40000, 80, 17, SEED));
        assert_ne!(h, flow_hash(src, 40000, 80, 6, SEED ^ 1));
        // 3 backends, 30,000 client ports: each gets about a third of the flows.
        let b = backends(3);
        let t = Maglev::new(&b, DEFAULT_TABLE_SIZE, SEED).unwrap();
        let mut n = [0u32; 3];
        for p in 0..30_000u16 {
            n[t.lookup(flow_hash(src, 10_000 + p, 80, 6, SEED)).unwrap()] += 1;
        }
        assert!(n.iter().all(|&c| (9_500..=10_500).contains(&c)), "{n:?}");
    }

    proptest! {
        // A fixed RNG seed: the bound below is a tail statistic, so a test that must pass on
        // every CI run samples the same 64 cases each time (plus the recorded regression).
        #![proptest_config(ProptestConfig {
            cases: 64,
            rng_seed: proptest::test_runner::RngSeed::Fixed(7),
            ..ProptestConfig::default()
        })]

        /// Removing one of 1..20 backends at M = 4093. Exactly: the survivors still share the
        /// table evenly (shares differ by at most one), and with one survivor (2 -> 1) or none
        /// nothing moves between survivors. Otherwise survivors do swap slots, with a long
        /// tail: over 14,000 random cases (N = 3..=19) the median was 48 slots (1.2% of M),
        /// the 99th percentile 88, the 99.9th 219 and the worst 805 (19.7% of M, N = 8); a later
        /// random run drew 1172 (28.6% of M, N = 3: ids 178, 3430, 3981, kept in
        /// proptest-regressions). The bound asserted for any single case is therefore a third
        /// of M; the typical figures are asserted on a fixed sample by `survivors_move_little`.
        #[test]
        fn survivors_move_boundedly(
            ids in proptest::collection::btree_set(0u32..4096, 1..20),
            pick in any::<prop::sample::Index>(),
            seed in any::<u64>(),
        ) {
            let b: Vec<Backend> = ids.iter().map(|&i| backend(i)).collect();
            let gone = b[pick.index(b.len())];
            let rest: Vec<Backend> = b.iter().copied().filter(|&x| x != gone).collect();
            let m = 4093;
            let before = Maglev::new(&b, m, seed).unwrap();
            let after = Maglev::new(&rest, m, seed).unwrap();
            if rest.is_empty() {
                prop_assert!(after.slots().is_empty());
                return Ok(());
            }
            let (kept, between) = moves(&before, &b, &after, &rest);
            let gi = b.iter().position(|&x| x == gone).unwrap();
            let freed = shares(&before, b.len())[gi];
            prop_assert_eq!(kept + between + freed, m);
            prop_assert!(between * 3 < m, "{} of {} slots moved between survivors", between, m);
            let sh = shares(&after, rest.len());
            prop_assert!(sh.iter().max().unwrap() - sh.iter().min().unwrap() <= 1);
            if b.len() == 2 {
                prop_assert_eq!(between, 0);
            }
        }
    }
}
