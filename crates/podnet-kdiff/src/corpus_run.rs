//! The generated corpus through the kernel: each trace of [`crate::corpus`] run in podnet,
//! replayed, and the figures summed per category.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::corpus::{self, Category};
use crate::plan::Mode;
use crate::replay::{self, Kind, Settings};
use crate::sys;

/// Traces `--quick` runs: the first two of each category (one round in iptables mode, one
/// in nftables mode).
pub const QUICK_TRACES: usize = 48;

/// Which traces to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Corpus seed.
    pub seed: u64,
    /// Traces `0..traces` (or the one in `only`).
    pub traces: usize,
    /// Only this trace index.
    pub only: Option<usize>,
    /// Force a mode (default: alternating by round, as generated).
    pub mode: Option<Mode>,
    /// Print at most this many disagreements per trace.
    pub max_shown: usize,
}

/// Figures of one category (or all).
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Traces replayed.
    pub traces: usize,
    /// Traces with at least one disagreement.
    pub traces_disagreeing: usize,
    /// Frames injected and compared.
    pub frames: usize,
    /// Frames whose answers agreed.
    pub frames_agreed: usize,
    /// Connections podnet tracked.
    pub connections: usize,
    /// Conntrack entries compared.
    pub ct_entries: usize,
    /// Rule lines compared.
    pub rules: usize,
    /// Rule counters compared.
    pub counters: usize,
    /// Disagreements by kind.
    pub by_kind: BTreeMap<Kind, usize>,
}

impl Figures {
    /// All disagreements.
    pub fn disagreements(&self) -> usize {
        self.by_kind.values().sum()
    }
}

/// The run's result: figures per category, the traces that disagreed, and errors.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Per category.
    pub categories: BTreeMap<Category, Figures>,
    /// Names of the traces that disagreed.
    pub disagreeing: Vec<String>,
    /// Traces the harness could not run.
    pub errors: usize,
}

/// Runs the corpus; prints each disagreeing trace and the table per category.
pub fn run(o: &Options, settings: &Settings) -> Report {
    let started = Instant::now();
    let mut rep = Report::default();
    let indices: Vec<usize> = match o.only {
        Some(i) => vec![i],
        None => (0..o.traces).collect(),
    };
    println!(
        "\n== corpus: seed {}, {} traces{}",
        o.seed,
        indices.len(),
        o.mode
            .map_or(String::new(), |m| format!(", {} mode", m.name()))
    );
    for i in indices {
        if sys::interrupted() {
            eprintln!("podnet-kdiff: interrupted");
            rep.errors += 1;
            break;
        }
        let script = corpus::generate(o.seed, i, o.mode);
        let fig = rep.categories.entry(script.category).or_default();
        let (plan, _) = match corpus::run(&script) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("podnet-kdiff: {}: podnet: {e}", script.name);
                rep.errors += 1;
                continue;
            }
        };
        let outcome = match replay::replay(&plan, settings) {
            Ok(x) => x,
            Err(e) => {
                eprintln!(
                    "podnet-kdiff: {} ({}): {e}",
                    script.name,
                    script.mode.name()
                );
                rep.errors += 1;
                continue;
            }
        };
        fig.traces += 1;
        for (_, f) in &outcome.nodes {
            fig.frames += f.frames;
            fig.frames_agreed += f.frames_agreed;
            fig.connections += f.connections;
            fig.ct_entries += f.ct_entries;
            fig.rules += f.rules;
            fig.counters += f.counters;
        }
        let d = &outcome.disagreements;
        if !d.is_empty() {
            fig.traces_disagreeing += 1;
            rep.disagreeing.push(script.name.clone());
            println!(
                "\n-- {} ({}): {} disagreements (rerun: --seed {} --corpus-trace {} -v)",
                script.name,
                script.mode.name(),
                d.len(),
                o.seed,
                i
            );
            for (k, x) in d.iter().enumerate() {
                if k == o.max_shown {
                    println!("   ... {} more", d.len() - k);
                    break;
                }
                println!("   {}", x.render());
            }
        }
        for x in d {
            *fig.by_kind.entry(x.kind).or_default() += 1;
        }
        for n in &outcome.limits {
            println!("   {}: {n}", script.name);
        }
        for n in &outcome.notes {
            if settings.verbose {
                println!("   note: {n}");
            }
        }
    }
    print_table(&rep);
    println!(
        "corpus: {} traces, {} disagreeing, {} disagreements, {} errors in {:.1}s",
        rep.categories.values().map(|f| f.traces).sum::<usize>(),
        rep.disagreeing.len(),
        rep.categories
            .values()
            .map(Figures::disagreements)
            .sum::<usize>(),
        rep.errors,
        started.elapsed().as_secs_f64()
    );
    rep
}

fn print_table(rep: &Report) {
    println!(
        "\n{:<22} {:>6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5}",
        "CATEGORY", "TRACES", "FRAMES", "AGREE", "CONNS", "CT", "RULES", "CTRS", "DISAGREE", "TRACES", "frame", "ct", "ctS", "rules", "ctr"
    );
    let mut total = Figures::default();
    for (c, f) in &rep.categories {
        row(c.name(), f);
        total.traces += f.traces;
        total.traces_disagreeing += f.traces_disagreeing;
        total.frames += f.frames;
        total.frames_agreed += f.frames_agreed;
        total.connections += f.connections;
        total.ct_entries += f.ct_entries;
        total.rules += f.rules;
        total.counters += f.counters;
        for (k, n) in &f.by_kind {
            *total.by_kind.entry(*k).or_default() += n;
        }
    }
    row("total", &total);
}

fn row(name: &str, f: &Figures) {
    let k = |x: Kind| f.by_kind.get(&x).copied().unwrap_or(0);
    println!(
        "{:<22} {:>6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5}",
        name,
        f.traces,
        f.frames,
        f.frames_agreed,
        f.connections,
        f.ct_entries,
        f.rules,
        f.counters,
        f.disagreements(),
        f.traces_disagreeing,
        k(Kind::Frame),
        k(Kind::Conntrack),
        k(Kind::CtStat),
        k(Kind::Rules),
        k(Kind::Counter)
    );
}
