//! An ordered set of `(key, n)` pairs packed into one `u128` each: the key in the high 96 bits,
//! `n` (a slot, a position) in the low 32.
//!
//! The engine's indexes (a pod's sockets by peer and port and by wake-up time, its free slots,
//! a node's new connections and denied flows by tuple) all share this one B-tree type instead
//! of one per key type: each `BTreeSet`/`BTreeMap` instance is 2 to 9 KB of WebAssembly, and
//! the playground's module is downloaded.

use alloc::collections::BTreeSet;

/// Keys are at most 96 bits.
pub(crate) type Key = u128;

/// Packs four fields into a key: `a` in the top 32 bits, then `b`, `c` and `d`.
pub(crate) fn key(a: u32, b: u16, c: u16, d: u32) -> Key {
    (u128::from(a) << 64) | (u128::from(b) << 48) | (u128::from(c) << 32) | u128::from(d)
}

/// An ordered set of `(key, n)`, ordered by key, then `n`.
#[derive(Clone, Debug, Default)]
pub(crate) struct PairSet(BTreeSet<u128>);

fn pack(key: Key, n: u32) -> u128 {
    debug_assert!(key >> 96 == 0, "a key has 96 bits");
    (key << 32) | u128::from(n)
}

fn unpack(p: u128) -> (Key, u32) {
    (p >> 32, p as u32)
}

impl PairSet {
    /// Adds `(key, n)`.
    pub(crate) fn insert(&mut self, key: Key, n: u32) {
        self.0.insert(pack(key, n));
    }

    /// Removes `(key, n)`; false when it was not there.
    pub(crate) fn remove(&mut self, key: Key, n: u32) -> bool {
        self.0.remove(&pack(key, n))
    }

    /// The `n` of every pair with a key from `from` to `to` (both included), in order.
    pub(crate) fn range(
        &self,
        from: Key,
        to: Key,
    ) -> impl DoubleEndedIterator<Item = (Key, u32)> + '_ {
        self.0
            .range(pack(from, 0)..=pack(to, u32::MAX))
            .map(|&p| unpack(p))
    }

    /// The `n` of every pair with key `key`, in order.
    pub(crate) fn with(&self, key: Key) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.range(key, key).map(|(_, n)| n)
    }

    /// The first pair.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn first(&self) -> Option<(Key, u32)> {
        self.0.first().map(|&p| unpack(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_ordered_by_key_then_n_and_found_by_key() {
        let mut s = PairSet::default();
        let k = |a| key(a, 80, 40_000, 7);
        for (a, n) in [(2, 9), (1, 3), (2, 1), (3, 0), (2, u32::MAX)] {
            s.insert(k(a), n);
        }
        assert_eq!(
            s.with(k(2)).collect::<alloc::vec::Vec<_>>(),
            [1, 9, u32::MAX]
        );
        assert_eq!(s.with(k(2)).next_back(), Some(u32::MAX));
        assert_eq!(s.first(), Some((k(1), 3)));
        assert_eq!(s.range(k(1), k(2)).count(), 4);
        assert_eq!(s.range(k(1), k(3)).next_back(), Some((k(3), 0)));
        assert!(s.remove(k(2), 9));
        assert!(!s.remove(k(2), 9));
        assert_eq!(s.range(k(0), k(4)).count(), 4);
        assert!(key(u32::MAX, u16::MAX, u16::MAX, u32::MAX) >> 96 == 0);
        assert!(key(1, 0, 0, 0) > key(0, u16::MAX, u16::MAX, u32::MAX));
    }
}
