//! A fixed-capacity map that evicts its least recently used entry when full, the model of the
//! `BPF_MAP_TYPE_LRU_HASH` maps Cilium keeps its connection-tracking and NAT entries in.
//!
//! The kernel's LRU is approximate (per-CPU free lists, a reference bit, eviction of a batch
//! from the inactive list); this one is exact and deterministic: a lookup or an update moves
//! the entry to the most recently used end, and inserting a new key into a full map evicts the
//! one entry at the other end. Keys are indexed by a hash map with a fixed-seed hasher
//! (foldhash), so nothing depends on a random seed; its order is never observed.
//!
//! Layout: the entries sit densely in one `Vec` reserved at its full capacity up front, linked
//! into a doubly linked recency list by `u32` indices (oldest at the head); the index maps a
//! key to its position. Every operation is O(1) on average.

use core::hash::Hash;

use alloc::vec::Vec;
use foldhash::fast::FixedState;
use hashbrown::HashMap;

/// No entry (end of the recency list).
const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node<K, V> {
    key: K,
    value: V,
    /// Older neighbour.
    prev: u32,
    /// Newer neighbour.
    next: u32,
}

/// A map of at most `capacity` entries that evicts the least recently used one to make room.
#[derive(Clone, Debug)]
pub struct LruMap<K: Hash + Eq + Copy, V> {
    index: HashMap<K, u32, FixedState>,
    nodes: Vec<Node<K, V>>,
    /// Least recently used.
    head: u32,
    /// Most recently used.
    tail: u32,
    capacity: u32,
}

impl<K: Hash + Eq + Copy, V> LruMap<K, V> {
    /// An empty map that holds up to `capacity` entries, its entry storage allocated now.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 or does not fit in a `u32` below `u32::MAX`.
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(capacity > 0, "an LRU map needs a capacity of at least 1");
        let capacity = u32::try_from(capacity)
            .ok()
            .filter(|&c| c < NIL)
            .expect("an LRU map holds fewer than u32::MAX entries");
        LruMap {
            index: HashMap::with_hasher(FixedState::with_seed(0)),
            nodes: Vec::with_capacity(capacity as usize),
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Most entries the map holds.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Whether `key` is present (does not count as a use).
    pub fn contains_key(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    /// The value of `key`, marking it most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let i = *self.index.get(key)?;
        self.touch(i);
        Some(&self.nodes[i as usize].value)
    }

    /// The value of `key` to change, marking it most recently used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = *self.index.get(key)?;
        self.touch(i);
        Some(&mut self.nodes[i as usize].value)
    }

    /// The value of `key`, leaving the order of use as it is.
    pub fn peek(&self, key: &K) -> Option<&V> {
        let i = *self.index.get(key)?;
        Some(&self.nodes[i as usize].value)
    }

    /// Sets `key` to `value` and marks it most recently used.
    ///
    /// A key already present gets the new value (the old one is dropped) and nothing is
    /// evicted. A new key in a full map evicts the least recently used entry, which is
    /// returned.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(&i) = self.index.get(&key) {
            self.nodes[i as usize].value = value;
            self.touch(i);
            return None;
        }
        if self.nodes.len() < self.capacity as usize {
            let i = self.nodes.len() as u32;
            self.nodes.push(Node {
                key,
                value,
                prev: NIL,
                next: NIL,
            });
            self.index.insert(key, i);
            self.push_tail(i);
            return None;
        }
        // Full: the oldest node's place takes the new entry.
        let i = self.head;
        self.unlink(i);
        let node = &mut self.nodes[i as usize];
        let old_key = core::mem::replace(&mut node.key, key);
        let old_value = core::mem::replace(&mut node.value, value);
        self.index.remove(&old_key);
        self.index.insert(key, i);
        self.push_tail(i);
        Some((old_key, old_value))
    }

    /// Takes `key` out, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.index.remove(key)?;
        Some(self.take(i))
    }

    /// Keeps only the entries for which `keep` answers true, asking from the least to the most
    /// recently used; the order of use of those kept is unchanged.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let mut i = self.head;
        while i != NIL {
            let mut next = self.nodes[i as usize].next;
            let node = &mut self.nodes[i as usize];
            if !keep(&node.key, &mut node.value) {
                let key = node.key;
                self.index.remove(&key);
                let last = self.nodes.len() as u32 - 1;
                self.take(i);
                // The last node moved into `i`'s place.
                if next == last {
                    next = i;
                }
            }
            i = next;
        }
    }

    /// Removes every entry (the entry storage stays allocated).
    pub fn clear(&mut self) {
        self.index.clear();
        self.nodes.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    /// The entries from the least to the most recently used.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            nodes: &self.nodes,
            at: self.head,
            left: self.nodes.len(),
        }
    }

    /// Marks node `i` most recently used.
    fn touch(&mut self, i: u32) {
        if self.tail != i {
            self.unlink(i);
            self.push_tail(i);
        }
    }

    /// Removes node `i` (already out of the index) from the list and the storage, moving the
    /// last node into its place.
    fn take(&mut self, i: u32) -> V {
        self.unlink(i);
        let last = self.nodes.len() as u32 - 1;
        let node = self.nodes.swap_remove(i as usize);
        if i != last {
            // Re-point the moved node's neighbours, the ends and the index at `i`.
            let (prev, next, key) = {
                let m = &self.nodes[i as usize];
                (m.prev, m.next, m.key)
            };
            self.set_next(prev, i);
            self.set_prev(next, i);
            *self.index.get_mut(&key).expect("every node is indexed") = i;
        }
        node.value
    }

    /// Points node `p`'s newer link (the head, if `p` is NIL) at `v`.
    fn set_next(&mut self, p: u32, v: u32) {
        match p {
            NIL => self.head = v,
            p => self.nodes[p as usize].next = v,
        }
    }

    /// Points node `n`'s older link (the tail, if `n` is NIL) at `v`.
    fn set_prev(&mut self, n: u32, v: u32) {
        match n {
            NIL => self.tail = v,
            n => self.nodes[n as usize].prev = v,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        self.set_next(prev, next);
        self.set_prev(next, prev);
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    fn push_tail(&mut self, i: u32) {
        let old = self.tail;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = old;
            n.next = NIL;
        }
        self.set_next(old, i);
        self.tail = i;
    }
}

/// The entries of an [`LruMap`], least recently used first.
#[derive(Clone, Debug)]
pub struct Iter<'a, K, V> {
    nodes: &'a [Node<K, V>],
    at: u32,
    left: usize,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == NIL {
            return None;
        }
        let n = &self.nodes[self.at as usize];
        self.at = n.next;
        self.left -= 1;
        Some((&n.key, &n.value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

impl<'a, K: Hash + Eq + Copy, V> IntoIterator for &'a LruMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::collections::VecDeque;
    use alloc::vec;
    use proptest::prelude::*;

    fn keys<V>(m: &LruMap<u32, V>) -> Vec<u32> {
        m.iter().map(|(&k, _)| k).collect()
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let mut m = LruMap::with_capacity(3);
        assert_eq!(m.capacity(), 3);
        assert!(m.is_empty());
        for k in 1..=3 {
            assert_eq!(m.insert(k, k * 10), None);
        }
        assert_eq!(keys(&m), [1, 2, 3]);
        assert_eq!(m.get(&1), Some(&10)); // 1 is now the newest
        assert_eq!(m.insert(4, 40), Some((2, 20)));
        assert_eq!(keys(&m), [3, 1, 4]);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn peek_does_not_touch_get_mut_does() {
        let mut m = LruMap::with_capacity(2);
        m.insert(1, 'a');
        m.insert(2, 'b');
        assert_eq!(m.peek(&1), Some(&'a'));
        assert!(m.contains_key(&1));
        assert_eq!(keys(&m), [1, 2]);
        *m.get_mut(&1).unwrap() = 'z';
        assert_eq!(keys(&m), [2, 1]);
        assert_eq!(m.insert(3, 'c'), Some((2, 'b')));
        assert_eq!(m.peek(&1), Some(&'z'));
        assert_eq!(m.get(&2), None);
    }

    #[test]
    fn replacing_touches_and_evicts_nothing() {
        let mut m = LruMap::with_capacity(2);
        m.insert(1, 1);
        m.insert(2, 2);
        assert_eq!(m.insert(1, 100), None);
        assert_eq!(keys(&m), [2, 1]);
        assert_eq!(m.peek(&1), Some(&100));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn remove_retain_clear() {
        let mut m = LruMap::with_capacity(8);
        for k in 0..8 {
            m.insert(k, k);
        }
        assert_eq!(m.remove(&0), Some(0)); // the head
        assert_eq!(m.remove(&7), Some(7)); // the tail
        assert_eq!(m.remove(&3), Some(3)); // the middle
        assert_eq!(m.remove(&3), None);
        assert_eq!(keys(&m), [1, 2, 4, 5, 6]);
        m.retain(|&k, v| {
            *v += 100;
            k % 2 == 0
        });
        assert_eq!(keys(&m), [2, 4, 6]);
        assert_eq!(m.peek(&4), Some(&104));
        m.insert(9, 9);
        assert_eq!(keys(&m), [2, 4, 6, 9]);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.iter().next(), None);
        m.insert(5, 5);
        assert_eq!(keys(&m), [5]);
    }

    #[test]
    fn capacity_one() {
        let mut m = LruMap::with_capacity(1);
        assert_eq!(m.insert(1, 1), None);
        assert_eq!(m.insert(2, 2), Some((1, 1)));
        assert_eq!(m.get(&2), Some(&2));
        assert_eq!(keys(&m), [2]);
    }

    #[test]
    fn storage_is_reserved_up_front() {
        let mut m: LruMap<u32, u64> = LruMap::with_capacity(1000);
        let before = m.nodes.capacity();
        assert!(before >= 1000);
        for k in 0..5000 {
            m.insert(k, 0);
        }
        assert_eq!(m.nodes.capacity(), before);
        assert_eq!(m.len(), 1000);
        assert_eq!(m.iter().len(), 1000);
    }

    #[test]
    #[should_panic(expected = "capacity of at least 1")]
    fn zero_capacity_panics() {
        let _ = LruMap::<u32, ()>::with_capacity(0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u16),
        Get(u8),
        GetMut(u8, u16),
        Peek(u8),
        Remove(u8),
        /// Keep the keys whose bit `0` (mod 8) is clear.
        Retain(u8),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys from a small range so that hits, replacements and evictions are all common.
        let k = 0u8..24;
        prop_oneof![
            8 => (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
            4 => k.clone().prop_map(Op::Get),
            2 => (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::GetMut(k, v)),
            2 => k.clone().prop_map(Op::Peek),
            3 => k.prop_map(Op::Remove),
            1 => (0u8..8).prop_map(Op::Retain),
            1 => Just(Op::Clear),
        ]
    }

    /// The reference: a queue of (key, value), least recently used at the front.
    struct Model {
        q: VecDeque<(u8, u16)>,
        cap: usize,
    }

    impl Model {
        fn pos(&self, k: u8) -> Option<usize> {
            self.q.iter().position(|&(x, _)| x == k)
        }

        fn touch(&mut self, k: u8) -> Option<u16> {
            let p = self.pos(k)?;
            let e = self.q.remove(p).unwrap();
            self.q.push_back(e);
            Some(e.1)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn matches_a_queue(cap in 1usize..12, ops in proptest::collection::vec(op(), 0..200)) {
            let mut m = LruMap::with_capacity(cap);
            let mut r = Model { q: VecDeque::new(), cap };
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let want = if r.touch(k).is_some() {
                            r.q.back_mut().unwrap().1 = v;
                            None
                        } else {
                            let ev = if r.q.len() == r.cap { r.q.pop_front() } else { None };
                            r.q.push_back((k, v));
                            ev
                        };
                        prop_assert_eq!(m.insert(k, v), want);
                    }
                    Op::Get(k) => prop_assert_eq!(m.get(&k).copied(), r.touch(k)),
                    Op::GetMut(k, v) => {
                        let want = r.touch(k);
                        if want.is_some() {
                            r.q.back_mut().unwrap().1 = v;
                        }
                        let got = m.get_mut(&k).map(|x| core::mem::replace(x, v));
                        prop_assert_eq!(got, want);
                    }
                    Op::Peek(k) => {
                        let want = r.pos(k).map(|p| r.q[p].1);
                        prop_assert_eq!(m.peek(&k).copied(), want);
                    }
                    Op::Remove(k) => {
                        let want = r.pos(k).map(|p| r.q.remove(p).unwrap().1);
                        prop_assert_eq!(m.remove(&k), want);
                    }
                    Op::Retain(b) => {
                        let keep = |k: u8| k & (1 << b) == 0;
                        r.q.retain(|&(k, _)| keep(k));
                        m.retain(|&k, _| keep(k));
                    }
                    Op::Clear => {
                        r.q.clear();
                        m.clear();
                    }
                }
                let got: Vec<(u8, u16)> = m.iter().map(|(&k, &v)| (k, v)).collect();
                let want: Vec<(u8, u16)> = r.q.iter().copied().collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(m.len(), r.q.len());
                prop_assert!(m.len() <= m.capacity());
                prop_assert_eq!(m.is_empty(), r.q.is_empty());
                // Links consistent both ways.
                let mut back = vec![];
                let mut i = m.tail;
                while i != NIL {
                    back.push(m.nodes[i as usize].key);
                    i = m.nodes[i as usize].prev;
                }
                back.reverse();
                let fwd: Vec<u8> = m.iter().map(|(&k, _)| k).collect();
                prop_assert_eq!(back, fwd);
            }
        }
    }
}
