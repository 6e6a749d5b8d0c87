//! The human summary `podnet run` prints without `--json`: one block per flow, conntrack per
//! node, drops by reason. Built from a [`Report`], or straight from the session without one
//! (the playground shows it at every moment: the report formats every connection, the summary
//! only each flow's first twenty).

use std::borrow::Cow;
use std::fmt::Write as _;

use litemap::LiteMap;

use super::report::{node_reports, Connection, NodeReport, Report, Rows};
use super::{fmt_duration, fmt_instant, DropRecorder, Session};
use crate::matrix::expect::ExpectationResult;

/// Connections listed per flow; the others are counted.
const LISTED: usize = 20;

/// What the summary prints of one flow.
struct FlowPart<'a> {
    name: &'a str,
    total: usize,
    counts: LiteMap<&'static str, usize>,
    first: Cow<'a, [Connection]>,
    slow: Option<String>,
}

/// Everything the summary prints.
struct Parts<'a> {
    end_time: &'a str,
    frames: u64,
    flows: Vec<FlowPart<'a>>,
    connectivity: &'a [ExpectationResult],
    nodes: &'a [NodeReport],
    drops: LiteMap<String, usize>,
}

/// The summary of report `r` of session `l`.
pub(super) fn of_report(l: &Session, r: &Report) -> String {
    let flows = r
        .flows
        .iter()
        .map(|f| FlowPart {
            name: &f.name,
            total: f.connections.len(),
            counts: tally(f.connections.iter().map(|c| c.outcome)),
            first: Cow::Borrowed(&f.connections[..f.connections.len().min(LISTED)]),
            slow: slow_lookups(f.connections.iter().filter_map(|c| {
                let client = c
                    .from
                    .rsplit_once(':')
                    .map_or(c.from.as_str(), |(ip, _)| ip);
                Some((client, c.dns_time.as_deref()?))
            })),
        })
        .collect();
    let mut drops = LiteMap::new();
    for d in &r.drops {
        *drops.entry(d.reason.clone()).or_insert(0) += 1;
    }
    write(
        l,
        &Parts {
            end_time: &r.end_time,
            frames: r.frames,
            flows,
            connectivity: &r.connectivity,
            nodes: &r.nodes,
            drops,
        },
    )
}

/// The summary of session `l` now, as [`of_report`] prints it for the report now, without
/// building the report's line of every connection.
pub(super) fn now(l: &Session) -> String {
    let mut rows = Rows::new(l);
    let mut flows = Vec::new();
    for (i, f) in l.index.flows.iter().enumerate() {
        let (proto, records) = l.connection_refs(i);
        let status = rows.status(i);
        let first: Vec<Connection> = records
            .iter()
            .take(LISTED)
            .enumerate()
            .map(|(n, r)| rows.connection(n, r, proto, status))
            .collect();
        flows.push(FlowPart {
            name: &f.name,
            total: records.len(),
            counts: tally(records.iter().map(|r| r.outcome.as_str())),
            first: Cow::Owned(first),
            slow: slow_lookups(
                records
                    .iter()
                    .filter_map(|r| Some((r.local.addr.to_string(), fmt_duration(r.dns_time?)))),
            ),
        });
    }
    let mut drops = LiteMap::new();
    let mut count = |reason: &str| match drops.get_mut(reason) {
        Some(n) => *n += 1,
        None => {
            drops.insert(reason.to_string(), 1);
        }
    };
    match l.cluster.observer::<DropRecorder>() {
        Some(d) => d.drops().iter().for_each(|d| count(&d.reason)),
        None => {
            let mut d = DropRecorder::default();
            l.cluster.trace().replay(&mut d);
            d.drops().iter().for_each(|d| count(&d.reason));
        }
    }
    let connectivity = if l.scenario.expectations.is_empty() {
        Vec::new()
    } else {
        crate::matrix::expect::check(&l.scenario)
    };
    write(
        l,
        &Parts {
            end_time: &fmt_instant(l.cluster.now()),
            frames: l.cluster.frames_delivered(),
            flows,
            connectivity: &connectivity,
            nodes: &node_reports(l),
            drops,
        },
    )
}

/// How many of `outcomes` there are of each.
fn tally<'o>(outcomes: impl Iterator<Item = &'o str>) -> LiteMap<&'o str, usize> {
    let mut counts = LiteMap::new();
    for o in outcomes {
        *counts.entry(o).or_insert(0) += 1;
    }
    counts
}

/// A flow's DNS lookups that waited for a resolver timeout (over 1 s; a lookup answered at
/// once takes a millisecond): `dns: 7 of 24 lookups took over 1s (max 5.003s)`, from each
/// connection's client address and lookup time (in the report's format), in start order. One
/// lookup per client (its connections share it: the last one's time counts). `None` when no
/// lookup took over 1 s.
fn slow_lookups<K: Ord, T: AsRef<str>>(lookups: impl Iterator<Item = (K, T)>) -> Option<String> {
    fn secs(t: &str) -> f64 {
        match t.strip_suffix("ms") {
            Some(ms) => ms.parse::<f64>().unwrap_or(0.0) / 1000.0,
            None => t.trim_end_matches('s').parse().unwrap_or(0.0),
        }
    }
    let mut by_client: LiteMap<K, T> = LiteMap::new();
    for (client, t) in lookups {
        by_client.insert(client, t);
    }
    let slow: Vec<&str> = by_client
        .values()
        .map(AsRef::as_ref)
        .filter(|t| secs(t) > 1.0)
        .collect();
    let max = slow
        .iter()
        .copied()
        .max_by(|a, b| secs(a).total_cmp(&secs(b)))?;
    Some(format!(
        "  dns: {} of {} lookups took over 1s (max {max})",
        slow.len(),
        by_client.len()
    ))
}

fn write(l: &Session, p: &Parts<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} (seed {}), ran to {}{}",
        l.scenario.name,
        l.scenario.config.seed,
        p.end_time,
        if l.finished {
            ""
        } else {
            " (time limit: some clients unfinished)"
        }
    );
    for f in &p.flows {
        let counts: Vec<_> = f.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let _ = writeln!(
            out,
            "\nflow {}: {} connections: {}",
            f.name,
            f.total,
            counts.join(", ")
        );
        for c in f.first.iter() {
            let _ = writeln!(
                out,
                "  #{:<3} {:<21} -> {:<21} backend {:<21} seen as {:<21} {:<8} {}",
                c.id,
                c.from,
                c.to,
                c.backend.as_deref().unwrap_or("-"),
                c.seen_by_backend.as_deref().unwrap_or("-"),
                c.outcome,
                c.error
                    .as_deref()
                    .or(c.connect_time.as_deref())
                    .unwrap_or("")
            );
            if let Some(s) = c.http_status {
                out.pop();
                let _ = writeln!(out, " HTTP {s}");
            }
        }
        if f.total > LISTED {
            let _ = writeln!(out, "  ... {} more (--json for all)", f.total - LISTED);
        }
        if let Some(line) = &f.slow {
            let _ = writeln!(out, "{line}");
        }
    }
    for e in p.connectivity {
        let _ = writeln!(
            out,
            "\nconnectivity {}: {} probes checked, {}",
            e.name,
            e.checked,
            if e.mismatches.is_empty() {
                "all as expected".to_string()
            } else {
                format!("{} not as expected", e.mismatches.len())
            }
        );
    }
    let _ = writeln!(out);
    let per_node: Vec<_> = p
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.name, n.frames))
        .collect();
    let _ = writeln!(
        out,
        "frames delivered: {} ({})",
        p.frames,
        per_node.join(", ")
    );
    for n in p.nodes {
        if let Some(b) = &n.bpf {
            let _ = writeln!(
                out,
                "{}: bpf ct {}/{} tcp + {}/{} any, snat {}/{}, created={} evicted={} socket-lb={} per-packet={} snat={} dsr={}",
                n.name,
                b.ct_tcp,
                b.ct_tcp_max,
                b.ct_any,
                b.ct_any_max,
                b.nat,
                b.nat_max,
                b.ct_created,
                b.ct_evicted,
                b.socket_lb,
                b.lb_per_packet,
                b.snat,
                b.dsr
            );
            continue;
        }
        if let Some(ct) = &n.conntrack {
            let s = &ct.stats;
            let _ = write!(
                out,
                "{}: conntrack {}/{} entries, insert={} invalid={} drop={} early_drop={} insert_failed={}",
                n.name, ct.count, ct.max, s.insert, s.invalid, s.drop, s.early_drop, s.insert_failed
            );
            if s.clash_resolve > 0 {
                let _ = write!(out, " clash_resolve={}", s.clash_resolve);
            }
            let _ = writeln!(out);
        }
    }
    if !p.drops.is_empty() {
        let _ = writeln!(out, "\ndrops:");
        for (reason, n) in p.drops.iter() {
            let _ = writeln!(out, "  {n:>6}  {reason}");
        }
    }
    out
}
