//! The connectivity matrix: every pod of a scenario probes every other pod (and every Service)
//! on the chosen ports with real connections in the simulator, the way Cyclonus probes a
//! cluster with `agnhost connect`, and each cell carries the NetworkPolicy verdict that
//! explains it.
//!
//! # How the probes run
//!
//! The matrix is taken in a copy of the scenario's world: the same nodes, pods, addresses,
//! namespaces, Services and NetworkPolicies, but no Traffic and no Fault, and every pod runs
//! probe servers instead of its own programs: a TCP and/or UDP echo server on each probed port
//! and on each port a Service targets on it (like the agnhost servers Cyclonus deploys).
//!
//! A probe is one connection ([`podnet::Request::Connect`]): a TCP handshake then a close,
//! or one UDP datagram that expects an answer. It is **allowed** when it completes and
//! **denied** when it timed out because a NetworkPolicy dropped what it sent; any other ending
//! (refused, reset, a timeout without a policy drop) is reported as it is.
//!
//! Probes run in rounds: in round `r`, row `i` probes column `(i + r) mod R` (`R` the larger
//! of the row and column counts), so a column gets at most one probe per round and every
//! probe of a round has its own 5-tuple. A round ends when its probes have finished; then
//! every node's connection tracking table is flushed (kernel conntrack and, in eBPF mode,
//! Cilium's CT maps), so no probe meets another's conntrack entry. Rounds start at least 1 s
//! apart in virtual time, which keeps within smoltcp's one ARP request per second per
//! interface. A pod does not probe itself: its own address goes over its loopback, where no
//! NetworkPolicy applies (the cell shows `-`).

pub mod expect;
mod probe;
mod render;

use litemap::LiteMap;
use podnet::kube_proxy::L4;
use podnet::policy::Verdict;
use podnet::{Duration, Outcome};
use serde::Serialize;

use crate::{Error, Scenario};

pub use render::render_text;

/// What to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixOptions {
    /// Only pods (and Services) of these namespaces (empty: every namespace).
    pub namespaces: Vec<String>,
    /// Only these ports (empty: every declared container port of the selected pods).
    pub ports: Vec<u16>,
    /// Only these protocols (empty: each port with the protocol its pods declare it with;
    /// ports given without protocols are probed over TCP).
    pub protocols: Vec<L4>,
    /// Probe Services' ClusterIPs too.
    pub services: bool,
    /// How long a probe may take (virtual time) before it counts as timed out.
    pub timeout: Duration,
    /// Only these pods probe (indices into [`Scenario::pods`]; `None`: every selected pod);
    /// the columns stay every selected pod and Service.
    pub sources: Option<Vec<usize>>,
}

impl Default for MatrixOptions {
    fn default() -> Self {
        MatrixOptions {
            namespaces: Vec::new(),
            ports: Vec::new(),
            protocols: Vec::new(),
            services: true,
            timeout: Duration::from_secs(2),
            sources: None,
        }
    }
}

/// A column of the matrix: a pod, or a Service's ClusterIP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// `namespace/name`.
    pub name: String,
    /// `pod` or `service`.
    pub kind: &'static str,
    /// The pod IP or ClusterIP.
    pub ip: String,
}

/// The result of one probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Cell {
    /// `allowed`, `denied`, `refused`, `reset`, `timeout`, or `self` (not probed).
    pub result: &'static str,
    /// For a Service: the backend the connection reached (`IP:port`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The NetworkPolicy verdict, in words: for a denied probe, the direction that isolated it
    /// and that no rule allowed; for an allowed one, the rule (or the absence of isolation)
    /// that let it through. For a Service, the verdict for each backend when they differ.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// The error the client saw (Linux style), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Cell {
    /// The character the text matrix shows: `.` allowed, `X` denied, `-` not probed, `!`
    /// anything else.
    pub fn symbol(&self) -> char {
        match self.result {
            "allowed" => '.',
            "denied" => 'X',
            "self" => '-',
            _ => '!',
        }
    }
}

/// The matrix of one port and protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Table {
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
    /// The port probed (on a Service column: the Service port).
    pub port: u16,
    /// The probing pods (`namespace/name`), in row order.
    pub rows: Vec<String>,
    /// The probed pods, then the Services with this port and protocol.
    pub columns: Vec<Peer>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<Cell>>,
}

/// Every table, with totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// One table per probed port and protocol, by port then protocol.
    pub tables: Vec<Table>,
    /// Probes run.
    pub probes: u64,
    /// Probes allowed.
    pub allowed: u64,
    /// Probes denied by a NetworkPolicy.
    pub denied: u64,
    /// Probes that ended otherwise (refused, reset, timeout).
    pub other: u64,
}

/// Probes every selected pod to every selected pod and Service (see the module docs).
pub fn matrix(sc: &Scenario, opts: &MatrixOptions) -> Result<Matrix, Error> {
    let rows = selected_pods(sc, opts);
    if rows.is_empty() {
        return Err(plain(if opts.namespaces.is_empty() {
            "the matrix needs pods: the files declare none".to_string()
        } else {
            format!("no pod in namespace(s) {}", opts.namespaces.join(", "))
        }));
    }
    let targets = targets_of(sc, &rows, opts);
    if targets.is_empty() {
        return Err(plain(
            "nothing to probe: the selected pods declare no container port of the chosen protocols (give --port)",
        ));
    }
    let columns = rows.clone();
    let rows: Vec<usize> = match &opts.sources {
        Some(only) => rows.into_iter().filter(|i| only.contains(i)).collect(),
        None => rows,
    };
    let mut out = probe::run(sc, &rows, &columns, &targets, opts)?;
    for t in &out.tables {
        for c in t.cells.iter().flatten() {
            match c.result {
                "self" => {}
                "allowed" => out.allowed += 1,
                "denied" => out.denied += 1,
                _ => out.other += 1,
            }
        }
    }
    out.probes = out.allowed + out.denied + out.other;
    Ok(out)
}

/// The (port, protocol) pairs [`matrix`] probes in `sc` with `opts`.
pub fn targets(sc: &Scenario, opts: &MatrixOptions) -> Vec<(u16, L4)> {
    targets_of(sc, &selected_pods(sc, opts), opts)
}

fn selected_pods(sc: &Scenario, opts: &MatrixOptions) -> Vec<usize> {
    (0..sc.pods.len())
        .filter(|&i| opts.namespaces.is_empty() || opts.namespaces.contains(&sc.pods[i].namespace))
        .collect()
}

fn targets_of(sc: &Scenario, rows: &[usize], opts: &MatrixOptions) -> Vec<(u16, L4)> {
    let mut set: LiteMap<(u16, L4), ()> = LiteMap::new();
    if opts.ports.is_empty() {
        for &i in rows {
            for p in &sc.pods[i].ports {
                if opts.protocols.is_empty() || opts.protocols.contains(&p.protocol) {
                    set.insert((p.port, p.protocol), ());
                }
            }
        }
    } else {
        let protocols = if opts.protocols.is_empty() {
            vec![L4::Tcp]
        } else {
            opts.protocols.clone()
        };
        for &port in &opts.ports {
            for &proto in &protocols {
                set.insert((port, proto), ());
            }
        }
    }
    set.into_iter().map(|(t, ())| t).collect()
}

/// An error about no place in the files.
pub(crate) fn plain(message: impl Into<String>) -> Error {
    Error {
        loc: None,
        message: message.into(),
    }
}

/// `TCP` / `UDP`.
pub(crate) fn proto_name(p: L4) -> &'static str {
    match p {
        L4::Tcp => "TCP",
        L4::Udp => "UDP",
    }
}

/// A probe's outcome as a cell result.
pub(crate) fn result_of(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "allowed",
        Outcome::Denied => "denied",
        Outcome::Refused => "refused",
        Outcome::Reset => "reset",
        Outcome::Timeout => "timeout",
    }
}

/// The words of a verdict for a cell: the deciding direction first.
pub fn why(v: &Verdict) -> String {
    if v.allowed {
        // The isolated directions are the ones a rule had to allow.
        match (v.egress.isolated, v.ingress.isolated) {
            (true, true) => format!("egress: {}; ingress: {}", v.egress.reason, v.ingress.reason),
            (true, false) => format!("egress: {}", v.egress.reason),
            (false, true) => format!("ingress: {}", v.ingress.reason),
            (false, false) => format!("egress: {}; ingress: {}", v.egress.reason, v.ingress.reason),
        }
    } else if !v.egress.allowed {
        format!("egress denied: {}", v.egress.reason)
    } else {
        format!("ingress denied: {}", v.ingress.reason)
    }
}
