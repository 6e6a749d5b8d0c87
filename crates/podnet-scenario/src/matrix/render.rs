//! The matrix as text: one truth table per port and protocol, rows probing columns, the way
//! Cyclonus prints it, then why each denied (or failed) probe ended as it did.

use std::fmt::Write as _;

use super::{Matrix, Table};

/// The matrix as text. With `explain_allowed`, allowed cells are explained too.
pub fn render_text(m: &Matrix, explain_allowed: bool) -> String {
    let mut out = String::new();
    for t in &m.tables {
        table(&mut out, t);
        details(&mut out, t, explain_allowed);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} probes: {} allowed, {} denied, {} other",
        m.probes, m.allowed, m.denied, m.other
    );
    out
}

fn table(out: &mut String, t: &Table) {
    let _ = writeln!(
        out,
        "{}/{}: rows connect to columns; . allowed, X denied, - itself, ! other",
        t.protocol, t.port
    );
    // Columns are numbered; a legend names them.
    let labels: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    let width = t.rows.iter().map(String::len).max().unwrap_or(0);
    let cw = labels.iter().map(String::len).max().unwrap_or(1);
    let _ = write!(out, "{:width$}", "");
    for l in &labels {
        let _ = write!(out, " {l:>cw$}");
    }
    out.push('\n');
    for (r, name) in t.rows.iter().enumerate() {
        let _ = write!(out, "{name:width$}");
        for c in &t.cells[r] {
            let _ = write!(out, " {:>cw$}", c.symbol());
        }
        out.push('\n');
    }
    for (l, col) in labels.iter().zip(&t.columns) {
        let kind = if col.kind == "service" {
            " (Service)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {l:>cw$}: {} {}{kind}", col.name, col.ip);
    }
}

fn details(out: &mut String, t: &Table, explain_allowed: bool) {
    let mut header = false;
    for (r, row) in t.rows.iter().enumerate() {
        for (c, cell) in t.cells[r].iter().enumerate() {
            let shown = match cell.symbol() {
                '-' => false,
                '.' => explain_allowed,
                _ => true,
            };
            if !shown {
                continue;
            }
            if !header {
                out.push_str("why:\n");
                header = true;
            }
            let col = &t.columns[c];
            let _ = write!(out, "  {row} -> {} {}: {}", col.name, t.port, cell.result);
            if let Some(b) = &cell.backend {
                let _ = write!(out, " (via {b})");
            }
            let _ = write!(out, ": {}", cell.why);
            if cell.result != "allowed" && cell.result != "denied" {
                if let Some(e) = &cell.error {
                    let _ = write!(out, " [{e}]");
                }
            }
            out.push('\n');
        }
    }
}
