//! A map from numbers given in increasing order to values that leave in any order: a client's
//! open connections by id, a pod's lingering sockets by arrival.
//!
//! The live numbers sit in a window from the oldest still present to the newest: a deque of
//! slots, the gaps (numbers gone, or never given) empty. Finding, adding and removing are
//! O(1), iteration is in number order, and the whole is one `VecDeque` instance where a
//! `BTreeMap` would be a B-tree instance of its own (2 to 9 KB of WebAssembly each).

use alloc::collections::VecDeque;

/// Values by number, numbers given in increasing order.
#[derive(Debug)]
pub(crate) struct Window<T> {
    /// The number of `slots[0]`.
    base: u32,
    slots: VecDeque<Option<T>>,
    /// Values present.
    len: usize,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window {
            base: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Window<T> {
    /// Adds `value` as number `n`, which must be above every number added before (else the
    /// value is not added and comes back).
    pub(crate) fn push(&mut self, n: u32, value: T) -> Result<(), T> {
        if self.slots.is_empty() {
            self.base = n;
        }
        let Some(at) = n.checked_sub(self.base).map(|d| d as usize) else {
            return Err(value);
        };
        if at < self.slots.len() {
            return Err(value);
        }
        self.slots.resize_with(at, || None);
        self.slots.push_back(Some(value));
        self.len += 1;
        Ok(())
    }

    fn at(&self, n: u32) -> Option<usize> {
        n.checked_sub(self.base).map(|d| d as usize)
    }

    /// The value of number `n`.
    pub(crate) fn get(&self, n: u32) -> Option<&T> {
        self.slots.get(self.at(n)?)?.as_ref()
    }

    /// The value of number `n`, to change it.
    pub(crate) fn get_mut(&mut self, n: u32) -> Option<&mut T> {
        let at = self.at(n)?;
        self.slots.get_mut(at)?.as_mut()
    }

    /// Takes number `n` out.
    pub(crate) fn remove(&mut self, n: u32) -> Option<T> {
        let at = self.at(n)?;
        let v = self.slots.get_mut(at)?.take()?;
        self.len -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base = self.base.wrapping_add(1);
        }
        Some(v)
    }

    /// How many values there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The values with their numbers, in number order, from number `from` on.
    pub(crate) fn iter_from(&self, from: u32) -> impl Iterator<Item = (u32, &T)> + '_ {
        let skip = from.saturating_sub(self.base) as usize;
        let base = self.base;
        self.slots
            .iter()
            .enumerate()
            .skip(skip)
            .filter_map(move |(i, v)| Some((base + i as u32, v.as_ref()?)))
    }

    /// The values with their numbers, in number order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        self.iter_from(0)
    }

    /// The value with the lowest number.
    pub(crate) fn first(&self) -> Option<(u32, &T)> {
        // The front slot is never a gap.
        Some((self.base, self.slots.front()?.as_ref()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn numbers_leave_in_any_order_and_the_window_follows_the_oldest() {
        let mut w = Window::default();
        for n in [5, 6, 8, 9] {
            w.push(n, n * 10).unwrap();
        }
        assert_eq!(w.push(7, 70), Err(70), "below the newest");
        assert_eq!(w.len(), 4);
        assert_eq!(w.get(7), None);
        assert_eq!(w.remove(6), Some(60));
        assert_eq!(w.remove(6), None);
        assert_eq!(w.first(), Some((5, &50)));
        assert_eq!(w.remove(5), Some(50));
        assert_eq!(w.first(), Some((8, &80)), "the gaps before it are gone");
        *w.get_mut(9).unwrap() += 1;
        assert_eq!(w.iter().collect::<Vec<_>>(), [(8, &80), (9, &91)]);
        assert_eq!(w.iter_from(9).collect::<Vec<_>>(), [(9, &91)]);
        assert_eq!(w.iter_from(100).count(), 0);
        assert_eq!(w.remove(8), Some(80));
        assert_eq!(w.remove(9), Some(91));
        assert_eq!((w.len(), w.first()), (0, None));
        w.push(3, 30).unwrap();
        assert_eq!(w.first(), Some((3, &30)), "an empty window starts anywhere");
    }
}
