//! Stable sorting through one shared instance of the standard library's sort.
//!
//! `slice::sort_by` is generic over the element and the comparison: each call site with its
//! own element type or closure gets its own copy of driftsort (3 to 6 KB of WebAssembly
//! each, fifteen of them in the playground's module). The call sites that are not hot (rule
//! listings, plans, reports) sort through here instead: a permutation of indices is sorted
//! by one `[u32]` instance whose comparison is a `dyn` call, then applied to the slice. Same
//! result as `sort_by` (stable), one sort in the module; the price is an indirect call per
//! comparison and a `Vec<u32>`, which is why the packet path does not use it.

use alloc::vec::Vec;
use core::cmp::Ordering;

/// The stable permutation that sorts `len` items by `cmp(i, j)` (indices), the one sort
/// instance behind [`sort_by`].
#[inline(never)]
fn permutation(len: usize, cmp: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..len as u32).collect();
    idx.sort_by(|&a, &b| cmp(a as usize, b as usize));
    idx
}

/// `v.sort_by(cmp)`: stable, `cmp` a total order.
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    assert!(
        u32::try_from(v.len()).is_ok(),
        "sort: more than u32::MAX items"
    );
    let mut idx = permutation(v.len(), &mut |a, b| cmp(&v[a], &v[b]));
    // Position i receives the item that was at idx[i]: each cycle of the permutation is
    // rotated by swaps, and its positions marked done (idx[j] = j) on the way.
    for start in 0..v.len() {
        let mut j = start;
        loop {
            let next = idx[j] as usize;
            idx[j] = j as u32;
            if next == start {
                break;
            }
            v.swap(j, next);
            j = next;
        }
    }
}

/// Sorts `v` and drops repeats, for the lists of slots and ids the packet path sorts (a
/// pod's sockets due at an egress, the connections a program looks at): almost always a
/// handful, sorted in place by insertion; a long one (a burst of retransmissions) through
/// [`sort`], so that the module holds no second instance of the standard library's sort.
#[inline]
pub(crate) fn sort_dedup_u32(v: &mut Vec<u32>) {
    if v.len() < 2 {
        return;
    }
    if v.len() > 32 {
        sort(v);
    } else {
        for i in 1..v.len() {
            let mut j = i;
            while j > 0 && v[j - 1] > v[j] {
                v.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    v.dedup();
}

/// `v.sort_by_key(key)`: stable.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// `v.sort()`: stable.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_and_long_lists_are_sorted_without_repeats() {
        for len in [0u32, 1, 2, 5, 32, 33, 200] {
            let mut v: alloc::vec::Vec<u32> = (0..len).map(|i| (i * 7919) % 50).collect();
            let mut want = v.clone();
            want.sort_unstable();
            want.dedup();
            super::sort_dedup_u32(&mut v);
            assert_eq!(v, want, "{len} items");
        }
    }

    use alloc::vec::Vec;

    use crate::rng::{SimRng, Stream};

    #[test]
    fn sorts_as_the_standard_library_does_and_is_stable() {
        let mut rng = SimRng::derive(7, Stream::Node(0));
        for len in [0usize, 1, 2, 3, 5, 17, 64, 1000] {
            // Few distinct keys, so stability shows: (key, original position).
            let v: Vec<(u8, u32)> = (0..len)
                .map(|i| ((rng.next_u64() % 7) as u8, i as u32))
                .collect();
            let mut want = v.clone();
            want.sort_by_key(|e| e.0);
            let mut got = v.clone();
            super::sort_by_key(&mut got, |e| e.0);
            assert_eq!(got, want, "len {len}");
            let mut want = v.clone();
            want.sort_by(|a, b| b.cmp(a));
            let mut got = v;
            super::sort_by(&mut got, |a, b| b.cmp(a));
            assert_eq!(got, want, "len {len}");
        }
    }
}
