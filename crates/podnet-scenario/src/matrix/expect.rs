//! Checking `ConnectivityExpectation`s: the expected cells probed as the matrix probes them,
//! and the ones that came out otherwise.

use litemap::LiteMap;
use std::fmt::Write as _;

use podnet::kube_proxy::L4;
use serde::Serialize;

use super::{matrix, proto_name, MatrixOptions, Table};
use crate::{ExpectTarget, Scenario};

/// How one `ConnectivityExpectation` held.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct ExpectationResult {
    /// The object's name.
    pub name: String,
    /// Cells checked.
    pub checked: u32,
    /// The cells whose probe did not end as expected.
    pub mismatches: Vec<Mismatch>,
}

/// A probe that did not end as expected.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Mismatch {
    /// The probing pod, `namespace/name`.
    pub from: String,
    /// The probed pod or Service, `namespace/name`.
    pub to: String,
    /// `TCP` or `UDP`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::l4"))]
    pub protocol: &'static str,
    /// The port.
    pub port: u16,
    /// `allowed` or `denied`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::expected"))]
    pub expected: &'static str,
    /// What the probe did: `allowed`, `denied`, `refused`, `reset` or `timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::probe_result")
    )]
    pub got: &'static str,
    /// The NetworkPolicy verdict behind it (see [`super::Cell::why`]).
    pub why: String,
}

/// Probes every expected cell of every `ConnectivityExpectation` of `sc` (one matrix per port
/// and protocol they name) and reports the cells that differ.
pub fn check(sc: &Scenario) -> Vec<ExpectationResult> {
    // Per port and protocol: whether a Service is probed, and which pods probe.
    // Flat sorted maps: a few ports (less code in the wasm module than two B-tree instances).
    let mut groups: LiteMap<(u16, L4), (bool, Vec<usize>)> = LiteMap::new();
    for c in sc.expectations.iter().flat_map(|e| &e.cells) {
        let (services, sources) = groups.entry((c.port, c.protocol)).or_default();
        *services |= matches!(c.to, ExpectTarget::Service(_));
        if !sources.contains(&c.from) {
            sources.push(c.from);
        }
    }
    let mut tables: LiteMap<(u16, L4), Result<Table, String>> = LiteMap::new();
    for (&(port, protocol), (services, sources)) in &groups {
        let opts = MatrixOptions {
            ports: vec![port],
            protocols: vec![protocol],
            services: *services,
            sources: Some(sources.clone()),
            ..MatrixOptions::default()
        };
        let t = matrix(sc, &opts)
            .map_err(|e| e.message)
            .and_then(|m| m.tables.into_iter().next().ok_or_else(|| "no table".into()));
        tables.insert((port, protocol), t);
    }
    sc.expectations
        .iter()
        .map(|e| {
            let mut r = ExpectationResult {
                name: e.name.clone(),
                checked: 0,
                mismatches: Vec::new(),
            };
            for c in &e.cells {
                r.checked += 1;
                let from = sc.pods[c.from].key();
                let (to, kind) = match c.to {
                    ExpectTarget::Pod(i) => (sc.pods[i].key(), "pod"),
                    ExpectTarget::Service(i) => {
                        let s = &sc.services[i];
                        (format!("{}/{}", s.namespace, s.name), "service")
                    }
                };
                let expected = if c.allowed { "allowed" } else { "denied" };
                let (got, why) = match &tables[&(c.port, c.protocol)] {
                    Err(m) => ("timeout", format!("could not probe: {m}")),
                    Ok(t) => {
                        let row = t.rows.iter().position(|r| *r == from);
                        let col = t
                            .columns
                            .iter()
                            .position(|col| col.name == to && col.kind == kind);
                        match (row, col) {
                            (Some(i), Some(j)) => {
                                let cell = &t.cells[i][j];
                                (cell.result, cell.why.clone())
                            }
                            _ => ("timeout", "not probed".to_string()),
                        }
                    }
                };
                if got != expected {
                    r.mismatches.push(Mismatch {
                        from,
                        to,
                        protocol: proto_name(c.protocol),
                        port: c.port,
                        expected,
                        got,
                        why,
                    });
                }
            }
            r
        })
        .collect()
}

/// The failed expectations as a table: FROM, TO, PORT, EXPECTED, GOT, WHY.
pub fn difference_table(results: &[ExpectationResult]) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| !r.mismatches.is_empty()) {
        let _ = writeln!(
            out,
            "ConnectivityExpectation {}: {} of {} cells differ",
            r.name,
            r.mismatches.len(),
            r.checked
        );
        let w_from = r
            .mismatches
            .iter()
            .map(|m| m.from.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let w_to = r
            .mismatches
            .iter()
            .map(|m| m.to.len())
            .max()
            .unwrap_or(0)
            .max(2);
        let _ = writeln!(
            out,
            "  {:w_from$}  {:w_to$}  {:8}  {:8}  {:8}  WHY",
            "FROM", "TO", "PORT", "EXPECTED", "GOT"
        );
        for m in &r.mismatches {
            let port = format!("{}/{}", m.protocol, m.port);
            let _ = writeln!(
                out,
                "  {:w_from$}  {:w_to$}  {port:8}  {:8}  {:8}  {}",
                m.from, m.to, m.expected, m.got, m.why
            );
        }
    }
    out
}
