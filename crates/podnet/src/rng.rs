//! Seeded randomness. Every random choice in a simulation (packet loss, ephemeral ports,
//! TCP initial sequence numbers) comes from a [`SimRng`] derived from the scenario seed and a
//! stream label, so that adding a pod does not shift another link's loss pattern.

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A deterministic pseudo-random stream (xoshiro256++).
#[derive(Clone, Debug)]
pub struct SimRng(Xoshiro256PlusPlus);

/// Stream labels, so each consumer of randomness has its own independent stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Loss decisions of one link direction.
    Link(u32),
    /// A pod's TCP stack (initial sequence numbers) and its programs (ephemeral ports).
    Pod(u32),
    /// A node's own choices.
    Node(u32),
    /// Which CPU of a node handles a packet.
    Cpu(u32),
    /// The credits a node's ICMP errors consume (`icmp_global_consume`).
    Icmp(u32),
    /// The credits a pod's ICMP errors consume.
    PodIcmp(u32),
}

impl SimRng {
    /// A stream derived from the scenario `seed` and a label.
    pub fn derive(seed: u64, stream: Stream) -> Self {
        let (tag, id) = match stream {
            Stream::Link(i) => (1u64, i),
            Stream::Pod(i) => (2, i),
            Stream::Node(i) => (3, i),
            Stream::Cpu(i) => (4, i),
            Stream::Icmp(i) => (5, i),
            Stream::PodIcmp(i) => (6, i),
        };
        let mixed = splitmix(splitmix(seed) ^ (tag << 32 | u64::from(id)));
        SimRng(Xoshiro256PlusPlus::seed_from_u64(mixed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[lo, hi]` (inclusive).
    pub fn range_inclusive(&mut self, lo: u32, hi: u32) -> u32 {
        debug_assert!(lo <= hi);
        let span = u64::from(hi - lo) + 1;
        lo + (self.next_u64() % span) as u32
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SimRng::derive(7, Stream::Link(3));
        let mut b = SimRng::derive(7, Stream::Link(3));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn streams_and_seeds_differ() {
        let x = SimRng::derive(7, Stream::Link(3)).next_u64();
        assert_ne!(x, SimRng::derive(8, Stream::Link(3)).next_u64());
        assert_ne!(x, SimRng::derive(7, Stream::Link(4)).next_u64());
        assert_ne!(x, SimRng::derive(7, Stream::Pod(3)).next_u64());
    }

    #[test]
    fn range_and_chance_bounds() {
        let mut r = SimRng::derive(1, Stream::Node(0));
        let mut hits = 0;
        for _ in 0..10_000 {
            let v = r.range_inclusive(32768, 60999);
            assert!((32768..=60999).contains(&v));
            if r.chance(0.1) {
                hits += 1;
            }
        }
        assert!((800..1200).contains(&hits), "10% loss drew {hits}/10000");
        assert!(!r.chance(0.0));
    }
}
