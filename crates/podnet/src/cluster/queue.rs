//! The event queue: entries `(at, seq, event)` popped in `(at, seq)` order, exactly as a
//! binary heap of them would pop them.
//!
//! Entries come in a few streams, each pushed in time order: frame arrivals (now plus the
//! links' latency), delayed ACKs (now plus 10 ms), retransmission timers (now plus a second or
//! more). A pod's wake-up is queued again each time its next timer changes, and the entry it
//! replaces stays queued (popping it does nothing but count as an event), so on a bulk
//! transfer tens of thousands of such entries wait while the next few microseconds hold a
//! handful of live ones. In one heap of all of them every push and pop walks its full height.
//! Here each stream fills a run of its own, in time order: a push appends to the run whose
//! last entry is the latest one not after it, a pop takes the smallest of the runs' first
//! entries, both a few comparisons. An entry that fits no run (out of order with every one,
//! all runs taken) goes to a heap, and the heap's top competes with the runs' first entries.

use alloc::collections::{BinaryHeap, VecDeque};
use core::cmp::Reverse;

use smoltcp::time::Instant;

/// Runs in time order, at most.
const RUNS: usize = 6;

/// The key of an empty run's first entry: after every real one.
const NO_FRONT: (Instant, u64) = (Instant::from_micros_const(i64::MAX), u64::MAX);

/// The time of an empty run's last entry: before every real one, so an empty run is taken
/// only when no run with entries fits.
const NO_BACK: Instant = Instant::from_micros_const(i64::MIN);

/// A priority queue of `(at, seq, event)`, smallest `(at, seq)` first. `seq` must be unique
/// and grow with every push, so a run in time order is in `(at, seq)` order.
#[derive(Debug)]
pub(super) struct EventQueue<E> {
    /// Runs in `(at, seq)` order (an empty run is free for the next push that fits no other).
    runs: [VecDeque<(Instant, u64, E)>; RUNS],
    /// Each run's first entry's `(at, seq)` ([`NO_FRONT`] when empty) and last entry's time
    /// ([`NO_BACK`] when empty), side by side so that a push or pop compares a few words
    /// without touching the runs.
    fronts: [(Instant, u64); RUNS],
    backs: [Instant; RUNS],
    /// The entries that fit no run.
    rest: BinaryHeap<Reverse<(Instant, u64, E)>>,
    /// [`first`](Self::first), kept up to date (a step peeks before it pops).
    head: Head,
}

/// Where the smallest entry is (`None`: in `rest`, or the queue is empty), and its
/// `(at, seq)`.
type Head = (Option<usize>, Option<(Instant, u64)>);

impl<E: Ord + Copy> EventQueue<E> {
    pub(super) fn new() -> Self {
        EventQueue {
            runs: core::array::from_fn(|_| VecDeque::new()),
            fronts: [NO_FRONT; RUNS],
            backs: [NO_BACK; RUNS],
            rest: BinaryHeap::new(),
            head: (None, None),
        }
    }

    pub(super) fn push(&mut self, at: Instant, seq: u64, ev: E) {
        let e = (at, seq, ev);
        // The run whose last entry is the latest not after `at`, else the first empty one.
        let mut best: Option<usize> = None;
        for (i, &b) in self.backs.iter().enumerate() {
            if b <= at && best.is_none_or(|j| b > self.backs[j]) {
                best = Some(i);
            }
        }
        let at_run = match best {
            Some(i) => {
                self.runs[i].push_back(e);
                if self.backs[i] == NO_BACK {
                    self.fronts[i] = (at, seq);
                }
                self.backs[i] = at;
                Some(i)
            }
            None => {
                self.rest.push(Reverse(e));
                None
            }
        };
        // A new smallest entry is the first of its run (or the top of `rest`).
        if self.head.1.is_none_or(|h| (at, seq) < h) {
            self.head = (at_run, Some((at, seq)));
        }
    }

    /// Which run holds the smallest entry (`None`: `rest` does, or the queue is empty), and
    /// that entry's `(at, seq)`.
    fn first(&self) -> Head {
        let mut best = (None, NO_FRONT);
        for (i, &f) in self.fronts.iter().enumerate() {
            if f < best.1 {
                best = (Some(i), f);
            }
        }
        match self.rest.peek() {
            Some(Reverse(e)) if (e.0, e.1) < best.1 => (None, Some((e.0, e.1))),
            _ if best.0.is_some() => (best.0, Some(best.1)),
            _ => (None, None),
        }
    }

    /// The smallest entry's time.
    pub(super) fn peek_at(&self) -> Option<Instant> {
        self.head.1.map(|(at, _)| at)
    }

    /// Takes the smallest entry.
    pub(super) fn pop(&mut self) -> Option<(Instant, u64, E)> {
        let e = match self.head.0 {
            Some(i) => {
                let r = &mut self.runs[i];
                let e = r.pop_front();
                match r.front() {
                    Some(f) => self.fronts[i] = (f.0, f.1),
                    None => (self.fronts[i], self.backs[i]) = (NO_FRONT, NO_BACK),
                }
                e
            }
            None => self.rest.pop().map(|Reverse(e)| e),
        };
        self.head = self.first();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use smoltcp::time::Duration;

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
