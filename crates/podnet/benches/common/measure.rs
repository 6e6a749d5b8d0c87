//! What the engine benchmarks measure with: running totals for criterion's ratio lines, batches
//! of connections, and the interleaved line that runs both sides in turn.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration as StdDuration;

/// Wall time and iterations a benchmark ran, over every batch (for the ratio line).
#[derive(Clone, Default)]
pub struct Tally(Rc<Cell<(StdDuration, u64)>>);

impl Tally {
    pub fn add(&self, d: StdDuration, iters: u64) -> StdDuration {
        let (t, n) = self.0.get();
        self.0.set((t + d, n + iters));
        d
    }

    pub fn per_iter(&self) -> StdDuration {
        let (t, n) = self.0.get();
        t.div_f64(n.max(1) as f64)
    }
}

/// The time of `iters` connections run in fresh clusters of `per_run` each (the last batch
/// scaled down to `iters`).
pub fn in_batches(iters: u64, per_run: u64, run: impl Fn(u64) -> StdDuration) -> StdDuration {
    let batches = iters.div_ceil(per_run);
    let total: StdDuration = (0..batches).map(|_| run(per_run)).sum();
    total.mul_f64(iters as f64 / (batches * per_run) as f64)
}

pub fn report(group: &str, podnet: &Tally, bare: &Tally, unit: impl Fn(StdDuration) -> String) {
    let (p, b) = (podnet.per_iter(), bare.per_iter());
    println!(
        "{group}: podnet {} ({p:.2?}), bare pair {} ({b:.2?}), ratio podnet/bare {:.2}x",
        unit(p),
        unit(b),
        p.as_secs_f64() / b.as_secs_f64()
    );
}

/// `rounds` pairs of a block of `a` and a block of `b` (each `block` runs, its median kept),
/// alternating which block goes first (ABBA), so that a change in the machine's speed during
/// the run (another process, the CPU clock) hits both sides alike while each block still runs
/// with its own side's caches warm after its first run, as criterion's loop does. Prints the
/// median of each side's blocks and the median of the pairs' ratios a/b with its quartiles,
/// as `group`'s `interleaved` line.
pub fn interleaved(
    group: &str,
    names: [&str; 2],
    (rounds, block): (usize, usize),
    a: impl Fn() -> StdDuration,
    b: impl Fn() -> StdDuration,
) {
    let median = |f: &dyn Fn() -> StdDuration| {
        let mut t: Vec<StdDuration> = (0..block).map(|_| f()).collect();
        t.sort();
        t[block / 2]
    };
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let (x, y) = if i % 2 == 0 {
            let x = median(&a);
            (x, median(&b))
        } else {
            let y = median(&b);
            (median(&a), y)
        };
        ratios.push(x.as_secs_f64() / y.as_secs_f64());
        ta.push(x);
        tb.push(y);
    }
    ta.sort();
    tb.sort();
    ratios.sort_by(f64::total_cmp);
    let q = |k: usize| ratios[(ratios.len() - 1) * k / 4];
    println!(
        "{group} interleaved ({rounds} pairs): median {} {:.2?}, {} {:.2?}; ratio of each pair: median {:.2}x (quartiles {:.2}x to {:.2}x)",
        names[0],
        ta[rounds / 2],
        names[1],
        tb[rounds / 2],
        q(2),
        q(1),
        q(3)
    );
}
