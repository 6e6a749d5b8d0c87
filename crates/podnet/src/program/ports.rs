//! Ephemeral ports for a pod's outgoing connections.

use super::client::EPHEMERAL_PORTS;
use super::PodEnv;

/// The ports a pod has in use: one bit for each of the 65,536, in a bitmap made when the first
/// one is taken (8 KiB; a pod that never binds a port, like the idle pods of the memory
/// example, has none). A pod whose range is nearly full of TIME-WAIT connections finds a free
/// port by reading 64 ports at a time, where an ordered set of the ports in use was walked one
/// taken port at a time (about 950 instructions a connection with 25,000 of 28,232 taken).
#[derive(Clone, Debug, Default)]
pub(crate) struct PortSet {
    bits: Option<alloc::boxed::Box<[u64]>>,
}

impl PortSet {
    /// Takes `port`; false when it was taken already.
    pub fn insert(&mut self, port: u16) -> bool {
        let bits = self
            .bits
            .get_or_insert_with(|| alloc::vec![0u64; 1024].into_boxed_slice());
        let (w, b) = (usize::from(port) / 64, 1u64 << (port % 64));
        let was = bits[w] & b != 0;
        bits[w] |= b;
        !was
    }

    /// Frees `port`; false when it was free.
    pub fn remove(&mut self, port: &u16) -> bool {
        let Some(bits) = self.bits.as_mut() else {
            return false;
        };
        let (w, b) = (usize::from(*port) / 64, 1u64 << (port % 64));
        let was = bits[w] & b != 0;
        bits[w] &= !b;
        was
    }

    /// Whether `port` is taken.
    #[cfg(test)]
    pub(crate) fn contains(&self, port: &u16) -> bool {
        self.bits
            .as_ref()
            .is_some_and(|bits| bits[usize::from(*port) / 64] & (1u64 << (port % 64)) != 0)
    }

    /// The lowest port in `from..=to` not taken.
    fn first_free(&self, from: u16, to: u16) -> Option<u16> {
        if from > to {
            return None;
        }
        let Some(bits) = &self.bits else {
            return Some(from);
        };
        let (from, to) = (usize::from(from), usize::from(to));
        let mut w = from / 64;
        // The ports below `from` in its word count as taken.
        let mut word = bits[w] | ((1u64 << (from % 64)) - 1);
        loop {
            if word != u64::MAX {
                let port = w * 64 + (!word).trailing_zeros() as usize;
                return (port <= to).then_some(port as u16);
            }
            w += 1;
            if w * 64 > to {
                return None;
            }
            word = bits[w];
        }
    }
}

/// A free ephemeral port, from a random offset in [`EPHEMERAL_PORTS`].
///
/// The first port not in use from that offset on, wrapping around once: what probing each
/// port in turn finds.
pub(crate) fn pick_port(env: &mut PodEnv<'_>) -> Option<u16> {
    let (lo, hi) = EPHEMERAL_PORTS;
    let span = u32::from(hi - lo) + 1;
    let first = lo + env.rng.range_inclusive(0, span - 1) as u16;
    let ports = &*env.ports;
    ports
        .first_free(first, hi)
        .or_else(|| ports.first_free(lo, first - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_free_port_is_what_probing_each_in_turn_finds() {
        let probe = |used: &PortSet, from: u16, to: u16| (from..=to).find(|p| !used.contains(p));
        let mut used = PortSet::default();
        assert_eq!(used.first_free(3, 9), Some(3));
        // Runs across word boundaries (63, 64, 127, 128, ...).
        for p in [
            5, 6, 7, 9, 10, 12, 20, 62, 63, 64, 65, 126, 127, 128, 191, 192,
        ] {
            assert!(used.insert(p));
        }
        assert!(!used.insert(5));
        for from in 0..200 {
            for to in from..200 {
                assert_eq!(
                    used.first_free(from, to),
                    probe(&used, from, to),
                    "{from}..={to}"
                );
            }
        }
        for p in 0..=u16::MAX {
            used.insert(p);
        }
        assert_eq!(used.first_free(0, u16::MAX), None);
        assert_eq!(used.first_free(7, 3), None);
        assert!(used.remove(&u16::MAX));
        assert!(!used.remove(&u16::MAX));
        assert_eq!(used.first_free(60_000, u16::MAX), Some(u16::MAX));
        assert!(used.remove(&64));
        assert_eq!(used.first_free(0, 200), Some(64));
    }
}
