//! The event queue: entries `(at, seq, event)` popped in `(at, seq)` order, exactly as a
//! binary heap of them would pop them.
//!
//! A pod's wake-up is queued again each time its next timer changes, and the entry it replaces
//! stays queued (popping it does nothing but count as an event). On a bulk transfer every ACK
//! moves the sender's retransmission timer, so thousands of such entries wait far in the future
//! while the next few microseconds hold a handful of live ones. A single heap of all of them
//! makes every push and pop walk its full height; here only entries due before a horizon are in
//! the heap ("near"), the rest wait unsorted ("far") until the near ones have all been popped.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Reverse;

use smoltcp::time::{Duration, Instant};

/// The horizon's first distance past the earliest far entry.
const FIRST_WINDOW: Duration = Duration::from_millis(1);
/// Bounds of that distance as it adapts.
const MIN_WINDOW: Duration = Duration::from_micros(1);
const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// Near entries taken from far in one refill above which the window halves.
const MAX_REFILL: usize = 256;
/// A refill that scans more far entries than this many times the pops since the previous one
/// doubles the window (so the scans cost at most a few steps per pop).
const SCAN_PER_POP: u64 = 8;

/// A priority queue of `(at, seq, event)`, smallest `(at, seq)` first (`seq` is unique).
#[derive(Debug)]
pub(super) struct EventQueue<E> {
    /// Every entry due before `horizon`.
    near: BinaryHeap<Reverse<(Instant, u64, E)>>,
    /// Every entry due at or after `horizon`, unsorted.
    far: Vec<(Instant, u64, E)>,
    horizon: Instant,
    window: Duration,
    /// Pops since the last refill.
    pops: u64,
}

impl<E: Ord + Copy> EventQueue<E> {
    pub(super) fn new() -> Self {
        EventQueue {
            near: BinaryHeap::new(),
            far: Vec::new(),
            horizon: Instant::ZERO,
            window: FIRST_WINDOW,
            pops: 0,
        }
    }

    pub(super) fn push(&mut self, at: Instant, seq: u64, ev: E) {
        if self.near.is_empty() && self.far.is_empty() {
            self.horizon = at + self.window;
        }
        if at < self.horizon {
            self.near.push(Reverse((at, seq, ev)));
        } else {
            self.far.push((at, seq, ev));
        }
    }

    /// The smallest entry's time.
    pub(super) fn peek_at(&self) -> Option<Instant> {
        match self.near.peek() {
            Some(Reverse((at, _, _))) => Some(*at),
            None => self.far.iter().map(|e| e.0).min(),
        }
    }

    /// Takes the smallest entry.
    pub(super) fn pop(&mut self) -> Option<(Instant, u64, E)> {
        if self.near.is_empty() {
            if self.far.is_empty() {
                return None;
            }
            self.refill();
        }
        self.pops += 1;
        self.near.pop().map(|Reverse(e)| e)
    }

    /// Moves the far entries due before a new horizon (past the earliest of them) to `near`.
    fn refill(&mut self) {
        if self.far.len() as u64 > SCAN_PER_POP * self.pops {
            self.window = (self.window * 2).min(MAX_WINDOW);
        }
        self.pops = 0;
        let first = self.far.iter().map(|e| e.0).min().unwrap_or(self.horizon);
        self.horizon = first + self.window;
        let horizon = self.horizon;
        let mut i = 0;
        while i < self.far.len() {
            if self.far[i].0 < horizon {
                self.near.push(Reverse(self.far.swap_remove(i)));
            } else {
                i += 1;
            }
        }
        if self.near.len() > MAX_REFILL {
            self.window = (self.window / 2).max(MIN_WINDOW);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pushes (a time offset from the clock) and pops, in any mix.
    #[derive(Clone, Debug)]
    enum Op {
        Push(u64),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop_oneof![0u64..50, 0u64..5_000, 0u64..5_000_000].prop_map(Op::Push),
            2 => Just(Op::Pop),
        ]
    }

    proptest! {
        /// Pops exactly what a binary heap of the same entries pops, with times never before
        /// the last one popped (as the engine schedules).
        #[test]
        fn pops_like_a_heap(ops in proptest::collection::vec(op(), 0..2000)) {
            let mut q = EventQueue::new();
            let mut heap = BinaryHeap::new();
            let (mut seq, mut now) = (0u64, Instant::ZERO);
            for op in ops.into_iter().chain(core::iter::repeat_n(Op::Pop, 2000)) {
                match op {
                    Op::Push(d) => {
                        seq += 1;
                        let at = now + Duration::from_micros(d);
                        q.push(at, seq, (seq % 3) as u8);
                        heap.push(Reverse((at, seq, (seq % 3) as u8)));
                    }
                    Op::Pop => {
                        prop_assert_eq!(q.peek_at(), heap.peek().map(|Reverse(e)| e.0));
                        let got = q.pop();
                        prop_assert_eq!(got, heap.pop().map(|Reverse(e)| e));
                        if let Some((at, _, _)) = got {
                            now = at;
                        }
                    }
                }
            }
        }
    }
}
