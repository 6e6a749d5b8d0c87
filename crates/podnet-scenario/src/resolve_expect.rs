//! Defaults and resolution, part four: ConnectivityExpectations, their pairs and truth tables
//! expanded into expected cells of the connectivity matrix ([`crate::matrix`]).

use podnet::kube_proxy::L4;

use crate::de::At;
use crate::kinds::{ExpectationSpec, PairEntry};
use crate::load::{Object, ObjectKind};
use crate::model::*;
use crate::resolve::{l4, Ctx};
use crate::resolve_flow::find_pod;
use crate::Error;

pub(crate) fn expectations(cx: &mut Ctx<'_>) -> Result<(), Error> {
    for o in cx.objects {
        let ObjectKind::Expectation(spec) = &o.kind else {
            continue;
        };
        if let Some(first) = cx.sc.expectations.iter().find(|e| e.name == o.name) {
            return Err(Error::at(
                &o.loc(),
                format!(
                    "ConnectivityExpectation {} is declared twice (first at {})",
                    o.name, first.loc
                ),
            ));
        }
        let def = expectation(cx, o, spec)?;
        cx.sc.expectations.push(def);
    }
    Ok(())
}

fn expectation(cx: &Ctx<'_>, o: &Object, spec: &ExpectationSpec) -> Result<ExpectationDef, Error> {
    let port = spec.port.as_ref().map(|p| p.value);
    let protocol = protocol(o, &spec.protocol, L4::Tcp)?;
    let mut cells: Vec<ExpectedCell> = Vec::new();
    for (list, allowed) in [(&spec.allowed, true), (&spec.denied, false)] {
        for entry in list {
            pair(cx, o, entry, port, protocol, allowed, &mut cells)?;
        }
    }
    if let Some(m) = &spec.matrix {
        let Some(port) = port else {
            return Err(Error::at(
                &o.loc_at(m.pos),
                "spec.matrix needs spec.port (the port every cell probes)",
            ));
        };
        table(cx, o, m, port, protocol, &mut cells)?;
    }
    if cells.is_empty() {
        return Err(Error::at(
            &o.loc_of("spec"),
            "a ConnectivityExpectation needs allowed, denied or matrix entries",
        ));
    }
    // One expectation per cell: the last word would silently win otherwise.
    for (i, c) in cells.iter().enumerate() {
        if let Some(d) = cells[..i].iter().find(|d| {
            (d.from, d.to, d.port, d.protocol) == (c.from, c.to, c.port, c.protocol)
                && d.allowed != c.allowed
        }) {
            return Err(Error::at(
                &c.loc,
                format!(
                    "{} -> {} is expected both allowed and denied (also at {})",
                    cx.sc.pods[c.from].key(),
                    target_name(cx, c.to),
                    d.loc
                ),
            ));
        }
    }
    Ok(ExpectationDef {
        name: o.name.clone(),
        cells,
        loc: o.loc(),
    })
}

fn protocol(o: &Object, v: &Option<At<String>>, default: L4) -> Result<L4, Error> {
    match v {
        None => Ok(default),
        Some(p) => l4(&p.value.to_ascii_uppercase()).map_err(|m| Error::at(&o.loc_at(p.pos), m)),
    }
}

fn pair(
    cx: &Ctx<'_>,
    o: &Object,
    entry: &At<PairEntry>,
    port: Option<u16>,
    protocol: L4,
    allowed: bool,
    out: &mut Vec<ExpectedCell>,
) -> Result<(), Error> {
    let e = &entry.value;
    let here = o.loc_at(entry.pos);
    let (Some(from), Some(to)) = (&e.from, &e.to) else {
        return Err(Error::at(&here, "each pair needs `from` and `to`"));
    };
    let Some(port) = e.port.as_ref().map(|p| p.value).or(port) else {
        return Err(Error::at(
            &here,
            "no port: give the pair a `port` or the expectation a spec.port",
        ));
    };
    let protocol = self::protocol(o, &e.protocol, protocol)?;
    let sources = sources(cx, o, from)?;
    let targets = targets(cx, o, to, port, protocol)?;
    for &f in &sources {
        for &t in &targets {
            if t == ExpectTarget::Pod(f) {
                continue; // a pod's own address is not probed
            }
            out.push(ExpectedCell {
                from: f,
                to: t,
                port,
                protocol,
                allowed,
                loc: here.clone(),
            });
        }
    }
    Ok(())
}

/// `*` (every pod), `NS/*` (every pod of NS), or one pod.
fn sources(cx: &Ctx<'_>, o: &Object, text: &At<String>) -> Result<Vec<usize>, Error> {
    if let Some(all) = wildcard(cx, &text.value) {
        return Ok(all);
    }
    match find_pod(cx, o.ns(), text.value.trim()) {
        Ok(Some(p)) => Ok(vec![p]),
        Ok(None) => Err(Error::at(
            &o.loc_at(text.pos),
            format!("no pod is named {:?}", text.value),
        )),
        Err(m) => Err(Error::at(&o.loc_at(text.pos), m)),
    }
}

/// Like [`sources`], or a Service with a port `port`/`protocol`.
fn targets(
    cx: &Ctx<'_>,
    o: &Object,
    text: &At<String>,
    port: u16,
    protocol: L4,
) -> Result<Vec<ExpectTarget>, Error> {
    if let Some(all) = wildcard(cx, &text.value) {
        return Ok(all.into_iter().map(ExpectTarget::Pod).collect());
    }
    let at = o.loc_at(text.pos);
    let name = text.value.trim();
    if let Some(p) = find_pod(cx, o.ns(), name).map_err(|m| Error::at(&at, m))? {
        return Ok(vec![ExpectTarget::Pod(p)]);
    }
    let (ns, svc) = name.split_once('/').unwrap_or((o.ns(), name));
    let Some(i) = cx
        .sc
        .services
        .iter()
        .position(|s| s.namespace == ns && s.name == svc)
    else {
        return Err(Error::at(
            &at,
            format!("no pod or Service is named {name:?}"),
        ));
    };
    let s = &cx.sc.services[i];
    if s.cluster_ip == ClusterIp::Headless {
        return Err(Error::at(
            &at,
            format!("Service {ns}/{svc} is headless: it has no ClusterIP to probe"),
        ));
    }
    if !s
        .ports
        .iter()
        .any(|p| p.port == port && p.protocol == protocol)
    {
        return Err(Error::at(
            &at,
            format!(
                "Service {ns}/{svc} has no port {port}/{}",
                protocol.name().to_ascii_uppercase()
            ),
        ));
    }
    Ok(vec![ExpectTarget::Service(i)])
}

fn wildcard(cx: &Ctx<'_>, text: &str) -> Option<Vec<usize>> {
    let text = text.trim();
    let ns = if text == "*" {
        None
    } else {
        Some(text.strip_suffix("/*")?)
    };
    Some(
        (0..cx.sc.pods.len())
            .filter(|&i| ns.is_none_or(|ns| cx.sc.pods[i].namespace == ns))
            .collect(),
    )
}

/// A truth table: a first line of column names (pods or Services; a leading corner label
/// `from/to`, `from\\to` or `WORD:` is skipped), then one line per row: a pod's name and a
/// symbol per column (`.` allowed, `X` denied, `-` not checked).
fn table(
    cx: &Ctx<'_>,
    o: &Object,
    m: &At<String>,
    port: u16,
    protocol: L4,
    out: &mut Vec<ExpectedCell>,
) -> Result<(), Error> {
    let here = o.loc_at(m.pos);
    let mut lines = m
        .value
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(Error::at(&here, "spec.matrix is empty"));
    };
    let mut columns = Vec::new();
    let corner = |w: &str| matches!(w, "from/to" | "from\\to") || w.ends_with(':');
    for name in header.split_whitespace().skip_while(|w| corner(w)) {
        let t = targets(cx, o, &At::new(name.to_string()), port, protocol)
            .map_err(|e| Error::at(&here, format!("spec.matrix header: {}", e.message)))?;
        let [one] = t.as_slice() else {
            return Err(Error::at(
                &here,
                format!("spec.matrix header: {name:?} must name one pod or Service"),
            ));
        };
        columns.push(*one);
    }
    for (n, line) in lines {
        // A block scalar's lines follow its first one.
        let here = o.loc_at(Pos {
            line: m.pos.line + n as u32,
            col: m.pos.col,
        });
        let at = || format!("spec.matrix line {}", n + 1);
        let mut words = line.split_whitespace();
        let Some(row) = words.next() else { continue };
        let from = sources(cx, o, &At::new(row.to_string()))
            .map_err(|e| Error::at(&here, format!("{}: {}", at(), e.message)))?;
        let [from] = from.as_slice() else {
            return Err(Error::at(
                &here,
                format!("{}: {row:?} must name one pod", at()),
            ));
        };
        let symbols: Vec<&str> = words.collect();
        if symbols.len() != columns.len() {
            return Err(Error::at(
                &here,
                format!(
                    "{}: {} symbols for {} columns",
                    at(),
                    symbols.len(),
                    columns.len()
                ),
            ));
        }
        for (sym, &to) in symbols.iter().zip(&columns) {
            let allowed = match *sym {
                "." => true,
                "X" | "x" => false,
                "-" => continue,
                other => {
                    return Err(Error::at(
                        &here,
                        format!(
                            "{}: {other:?} is not . (allowed), X (denied) or - (not checked)",
                            at()
                        ),
                    ))
                }
            };
            if to == ExpectTarget::Pod(*from) {
                continue;
            }
            out.push(ExpectedCell {
                from: *from,
                to,
                port,
                protocol,
                allowed,
                loc: here.clone(),
            });
        }
    }
    Ok(())
}

fn target_name(cx: &Ctx<'_>, t: ExpectTarget) -> String {
    match t {
        ExpectTarget::Pod(i) => cx.sc.pods[i].key(),
        ExpectTarget::Service(i) => {
            let s = &cx.sc.services[i];
            format!("{}/{}", s.namespace, s.name)
        }
    }
}
