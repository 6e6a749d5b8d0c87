//! What a change of files changes: the same probes ([`crate::matrix`]) and the same Traffic
//! run in the world before and the world after, with the same seed, and only the cells and
//! connections whose outcome differs reported, each with the NetworkPolicy verdict on both
//! sides.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use litemap::LiteMap;
use podnet::kube_proxy::L4;
use podnet::policy::{self, Flow, World};
use podnet::Duration;
use serde::Serialize;

use crate::matrix::{self, why, Cell, MatrixOptions};
use crate::session::{Failure, Session};
use crate::{Error, PolicyDef, Scenario};

/// A probe whose outcome changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct CellChange {
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
    /// The port.
    pub port: u16,
    /// The probing pod, `namespace/name`.
    pub from: String,
    /// The probed pod or Service, `namespace/name`.
    pub to: String,
    /// The probe before.
    pub before: Cell,
    /// The probe after.
    pub after: Cell,
}

/// A Traffic connection whose outcome changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct ConnChange {
    /// The Traffic's name.
    pub flow: String,
    /// The connection, 0-based in start order.
    pub id: u32,
    /// The client, `IP:port` (before).
    pub from: String,
    /// Where it connected to.
    pub to: String,
    /// The outcome before.
    pub before: String,
    /// The outcome after.
    pub after: String,
    /// Why, before: the error, or the verdict that let it through.
    pub why_before: String,
    /// Why, after.
    pub why_after: String,
}

/// Everything that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    /// Probes compared (cells present in both worlds).
    pub probes_compared: u64,
    /// The probes that changed.
    pub probes: Vec<CellChange>,
    /// Pods or Services probed in only one of the worlds (`+ ns/name` or `- ns/name`).
    pub only_in_one: Vec<String>,
    /// Traffic connections compared.
    pub connections_compared: u64,
    /// The connections that changed.
    pub connections: Vec<ConnChange>,
}

impl Diff {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !self.probes.is_empty() || !self.connections.is_empty() || !self.only_in_one.is_empty()
    }
}

/// `after` = `before` with the NetworkPolicies of `change` added (or replacing those of the
/// same namespace and name) and the policies named in `remove` (`NAMESPACE/NAME`) removed.
pub fn apply_policy_change(
    before: &Scenario,
    change: &Scenario,
    remove: &[String],
) -> Result<Scenario, Error> {
    let mut after = before.clone();
    for r in remove {
        let (ns, name) = r.split_once('/').unwrap_or(("default", r));
        let n = after.network_policies.len();
        after
            .network_policies
            .retain(|p| !(p.namespace == ns && p.name == name));
        if after.network_policies.len() == n {
            return Err(Error {
                loc: None,
                message: format!("--remove-policy {r}: no NetworkPolicy {ns}/{name}"),
            });
        }
    }
    for p in &change.network_policies {
        match after
            .network_policies
            .iter_mut()
            .find(|q| q.namespace == p.namespace && q.name == p.name)
        {
            Some(q) => *q = p.clone(),
            None => after.network_policies.push(PolicyDef::clone(p)),
        }
    }
    Ok(after)
}

/// Probes both worlds with `opts` (over the ports either world would probe) and, with
/// `traffic`, runs both worlds' Traffic for at most `limit`.
pub fn diff(
    before: &Scenario,
    after: &Scenario,
    opts: &MatrixOptions,
    traffic: bool,
    limit: Duration,
) -> Result<Diff, Failure> {
    let mut d = Diff {
        probes_compared: 0,
        probes: Vec::new(),
        only_in_one: Vec::new(),
        connections_compared: 0,
        connections: Vec::new(),
    };
    // `extend`s rather than `collect`s into B-trees here and below: collecting sorts, and
    // each sorted type is one more copy of the sort in the WebAssembly module. The flat
    // sorted maps (`LiteMap`, small: ports, columns) are filled one by one, since their
    // `extend` sorts too.
    let mut targets: LiteMap<(u16, L4), ()> = LiteMap::new();
    for t in matrix::targets(before, opts)
        .into_iter()
        .chain(matrix::targets(after, opts))
    {
        targets.insert(t, ());
    }
    let mut only: BTreeSet<String> = BTreeSet::new();
    for ((port, protocol), ()) in targets {
        let one = MatrixOptions {
            ports: vec![port],
            protocols: vec![protocol],
            ..opts.clone()
        };
        let (Some(b), Some(a)) = (first_table(before, &one)?, first_table(after, &one)?) else {
            continue;
        };
        let col_b: LiteMap<(&str, &str), usize> = columns(&b);
        let col_a: LiteMap<(&str, &str), usize> = columns(&a);
        for k in col_b.keys().filter(|k| !col_a.contains_key(*k)) {
            only.insert(format!("- {}", k.0));
        }
        for k in col_a.keys().filter(|k| !col_b.contains_key(*k)) {
            only.insert(format!("+ {}", k.0));
        }
        for (i, row) in b.rows.iter().enumerate() {
            let Some(ia) = a.rows.iter().position(|r| r == row) else {
                continue;
            };
            for (key, &jb) in &col_b {
                let Some(&ja) = col_a.get(key) else { continue };
                let (cb, ca) = (&b.cells[i][jb], &a.cells[ia][ja]);
                if cb.result == "self" {
                    continue;
                }
                d.probes_compared += 1;
                if cb.result != ca.result {
                    d.probes.push(CellChange {
                        protocol: b.protocol,
                        port,
                        from: row.clone(),
                        to: key.0.to_string(),
                        before: cb.clone(),
                        after: ca.clone(),
                    });
                }
            }
        }
    }
    d.only_in_one = only.into_iter().collect();
    if traffic && (!before.flows.is_empty() || !after.flows.is_empty()) {
        traffic_diff(before, after, limit, &mut d)?;
    }
    Ok(d)
}

fn first_table(sc: &Scenario, opts: &MatrixOptions) -> Result<Option<matrix::Table>, Failure> {
    Ok(matrix::matrix(sc, opts)?.tables.into_iter().next())
}

fn columns(t: &matrix::Table) -> LiteMap<(&str, &str), usize> {
    let mut m = LiteMap::new();
    for (j, c) in t.columns.iter().enumerate() {
        m.insert((c.name.as_str(), c.kind), j);
    }
    m
}

fn traffic_diff(
    before: &Scenario,
    after: &Scenario,
    limit: Duration,
    d: &mut Diff,
) -> Result<(), Failure> {
    let run = |sc: &Scenario| -> Result<(Session, crate::session::Report, World), Failure> {
        let mut sc = sc.clone();
        sc.expectations.clear();
        let mut s = Session::new(sc)?;
        s.run(limit)?;
        let r = s.report();
        let w = s.cluster.policy_world();
        Ok((s, r, w))
    };
    let (sb, rb, wb) = run(before)?;
    let (_, ra, wa) = run(after)?;
    for fb in &rb.flows {
        let Some(fa) = ra.flows.iter().find(|f| f.name == fb.name) else {
            continue;
        };
        let proto = sb
            .scenario
            .flows
            .iter()
            .find(|f| f.name == fb.name)
            .map_or(6, |f| match f.protocol {
                podnet::Protocol::Tcp => 6,
                podnet::Protocol::Udp => 17,
            });
        for cb in &fb.connections {
            let Some(ca) = fa.connections.iter().find(|c| c.id == cb.id) else {
                continue;
            };
            d.connections_compared += 1;
            if cb.outcome != ca.outcome {
                d.connections.push(ConnChange {
                    flow: fb.name.clone(),
                    id: cb.id,
                    from: cb.from.clone(),
                    to: cb.to.clone(),
                    before: cb.outcome.to_string(),
                    after: ca.outcome.to_string(),
                    why_before: conn_why(&wb, cb, proto),
                    why_after: conn_why(&wa, ca, proto),
                });
            }
        }
    }
    Ok(())
}

/// The error of a failed connection, or the verdict on the one that reached its backend.
fn conn_why(w: &World, c: &crate::session::Connection, proto: u8) -> String {
    if let Some(e) = &c.error {
        return e.clone();
    }
    let ep = |s: &str| {
        let (ip, port) = s.rsplit_once(':')?;
        Some((ip.parse().ok()?, port.parse().ok()?))
    };
    match (
        ep(&c.from),
        c.backend.as_deref().or(Some(c.to.as_str())).and_then(ep),
    ) {
        (Some((src, _)), Some((dst, dport))) => why(&policy::verdict(
            w,
            &Flow {
                src,
                dst,
                proto,
                dport,
            },
        )),
        _ => String::new(),
    }
}

/// The changes as text: a table of changed probes, then of changed connections.
pub fn render_text(d: &Diff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "probes: {} of {} changed",
        d.probes.len(),
        d.probes_compared
    );
    for c in &d.probes {
        let head = format!("{}/{} {} -> {}", c.protocol, c.port, c.from, c.to);
        change(
            &mut out,
            &head,
            (c.before.result, c.after.result),
            (&c.before.why, &c.after.why),
        );
    }
    for o in &d.only_in_one {
        let _ = writeln!(out, "  {o} (probed in one world only)");
    }
    if d.connections_compared > 0 || !d.connections.is_empty() {
        let _ = writeln!(
            out,
            "traffic: {} of {} connections changed",
            d.connections.len(),
            d.connections_compared
        );
        for c in &d.connections {
            let head = format!("{} #{} {} -> {}", c.flow, c.id, c.from, c.to);
            change(
                &mut out,
                &head,
                (&c.before, &c.after),
                (&c.why_before, &c.why_after),
            );
        }
    }
    out
}

/// One changed probe or connection: what it is, its outcome before -> after, and why on each
/// side.
fn change(out: &mut String, head: &str, outcome: (&str, &str), why: (&str, &str)) {
    let _ = writeln!(out, "  {head}: {} -> {}", outcome.0, outcome.1);
    let _ = writeln!(out, "      before: {}", why.0);
    let _ = writeln!(out, "      after:  {}", why.1);
}
