//! Running the probes of the matrix in rounds (see the module docs of [`super`]).

use litemap::LiteMap;
use podnet::kube_proxy::L4;
use podnet::policy::{self, Flow, World};
use podnet::{ClientSpec, Cluster, Duration, PodId, Program, Protocol, Request};
use smoltcp::wire::Ipv4Address;

use super::{plain, proto_name, result_of, why, Cell, Matrix, MatrixOptions, Peer, Table};
use crate::build::{build, pod_ip, Index};
use crate::{App, Error, Scenario};

/// Rounds start at least this far apart (smoltcp sends one ARP request per second per
/// interface).
const ROUND_SPACING: Duration = Duration::from_secs(1);
/// After a round's clients are done, the closes finish within this (in-cluster round trips
/// are microseconds) before the tables are flushed.
const SETTLE: Duration = Duration::from_millis(50);

/// What a column connects to.
struct Column {
    peer: Peer,
    ip: Ipv4Address,
    port: u16,
    /// The row it is (a pod column), to skip self-probes.
    pod: Option<usize>,
    /// A Service's backends: pod address and port.
    backends: Vec<(Ipv4Address, u16)>,
}

pub(super) fn run(
    sc: &Scenario,
    rows: &[usize],
    pod_columns: &[usize],
    targets: &[(u16, L4)],
    opts: &MatrixOptions,
) -> Result<Matrix, Error> {
    let world = probe_world(sc, targets, opts);
    let (mut c, ix) = build(&world)?;
    let policy_world = c.policy_world();
    let row_ids: Vec<PodId> = rows.iter().map(|&i| ix.pod_ids[i]).collect();
    let row_names: Vec<String> = rows.iter().map(|&i| sc.pods[i].key()).collect();
    let mut tables = Vec::new();
    for &(port, proto) in targets {
        let columns = columns(sc, &c, &ix, pod_columns, port, proto, opts);
        let cells = probe_table(&mut c, &row_ids, rows, &columns, proto, opts, &policy_world)?;
        tables.push(Table {
            protocol: proto_name(proto),
            port,
            rows: row_names.clone(),
            columns: columns.into_iter().map(|col| col.peer).collect(),
            cells,
        });
    }
    Ok(Matrix {
        tables,
        probes: 0,
        allowed: 0,
        denied: 0,
        other: 0,
    })
}

/// The scenario's world with probe servers instead of programs, and no Traffic or Fault.
fn probe_world(sc: &Scenario, targets: &[(u16, L4)], opts: &MatrixOptions) -> Scenario {
    let mut w = sc.clone();
    w.flows.clear();
    w.faults.clear();
    // A flat sorted map filled one by one (`collect` and `extend` sort: one more sort instance).
    let mut targets_set = LiteMap::new();
    for &t in targets {
        targets_set.insert(t, ());
    }
    let mut serve: Vec<LiteMap<(u16, L4), ()>> = vec![targets_set; w.pods.len()];
    if opts.services {
        for s in &sc.services {
            for p in &s.ports {
                if targets.contains(&(p.port, p.protocol)) {
                    for e in &p.endpoints {
                        serve[e.pod].insert((e.port, p.protocol), ());
                    }
                }
            }
        }
    }
    for (pod, ports) in w.pods.iter_mut().zip(serve) {
        pod.apps = ports
            .into_iter()
            .map(|((port, proto), ())| match proto {
                L4::Tcp => App::TcpEcho(port),
                L4::Udp => App::UdpEcho(port),
            })
            .collect();
    }
    w
}

/// The selected pods, then the Services with a port `port`/`proto`.
fn columns(
    sc: &Scenario,
    c: &Cluster,
    ix: &Index,
    rows: &[usize],
    port: u16,
    proto: L4,
    opts: &MatrixOptions,
) -> Vec<Column> {
    let mut out: Vec<Column> = rows
        .iter()
        .filter_map(|&i| {
            let ip = pod_ip(c, ix.pod_ids[i])?;
            Some(Column {
                peer: Peer {
                    name: sc.pods[i].key(),
                    kind: "pod",
                    ip: ip.to_string(),
                },
                ip,
                port,
                pod: Some(i),
                backends: Vec::new(),
            })
        })
        .collect();
    if !opts.services {
        return out;
    }
    for (si, s) in sc.services.iter().enumerate() {
        if !opts.namespaces.is_empty() && !opts.namespaces.contains(&s.namespace) {
            continue;
        }
        let Some(ip) = ix.cluster_ips[si] else {
            continue;
        };
        for p in s
            .ports
            .iter()
            .filter(|p| p.port == port && p.protocol == proto)
        {
            out.push(Column {
                peer: Peer {
                    name: format!("{}/{}", s.namespace, s.name),
                    kind: "service",
                    ip: ip.to_string(),
                },
                ip,
                port,
                pod: None,
                backends: p
                    .endpoints
                    .iter()
                    .filter_map(|e| Some((pod_ip(c, ix.pod_ids[e.pod])?, e.port)))
                    .collect(),
            });
        }
    }
    out
}

/// Every cell of one table, probed in rounds.
fn probe_table(
    c: &mut Cluster,
    row_ids: &[PodId],
    rows: &[usize],
    columns: &[Column],
    proto: L4,
    opts: &MatrixOptions,
    world: &World,
) -> Result<Vec<Vec<Cell>>, Error> {
    let self_cell = Cell {
        result: "self",
        backend: None,
        why: "its own address stays on the pod's loopback: not probed".into(),
        error: None,
    };
    let mut cells: Vec<Vec<Option<Cell>>> = vec![vec![None; columns.len()]; rows.len()];
    let n_rounds = rows.len().max(columns.len());
    let protocol = match proto {
        L4::Tcp => Protocol::Tcp,
        L4::Udp => Protocol::Udp,
    };
    for r in 0..n_rounds {
        let round_start = c.now();
        // (row, column) of each probe of the round.
        let mut started: Vec<(usize, usize)> = Vec::new();
        for (i, &src) in row_ids.iter().enumerate() {
            let j = (i + r) % n_rounds;
            let Some(col) = columns.get(j) else { continue };
            if col.pod == Some(rows[i]) {
                cells[i][j] = Some(self_cell.clone());
                continue;
            }
            let spec = ClientSpec {
                name: "probe".into(),
                to: col.ip,
                port: col.port,
                protocol,
                request: Request::Connect,
                count: 1,
                concurrency: 1,
                start: c.now(),
                interval: Duration::ZERO,
                timeout: opts.timeout,
                ttl: None,
                resolve: None,
            };
            c.start_program(src, Program::Client(spec))
                .map_err(|e| plain(format!("probe from pod {}: {e}", rows[i])))?;
            started.push((i, j));
        }
        if started.is_empty() {
            continue;
        }
        // Every probe ends by its timeout; a little more lets the last timer fire.
        if !c.run_until_done(opts.timeout + Duration::from_secs(1)) {
            return Err(plain(format!(
                "round {r}: probes still running after their {} timeout",
                opts.timeout
            )));
        }
        for &(i, j) in &started {
            let done = c
                .take_finished_clients(row_ids[i])
                .map_err(|e| plain(format!("probe from pod {}: {e}", rows[i])))?;
            // A pod probes one column per round: its finished client is this probe.
            let Some(rec) = done.first().and_then(|cl| cl.records().first()) else {
                return Err(plain(format!("round {r}: a probe left no record")));
            };
            cells[i][j] = Some(cell(rec, &columns[j], world, proto));
        }
        let settle_until = c.now() + SETTLE;
        c.run_until(settle_until);
        flush_conntrack(c);
        let next = round_start + ROUND_SPACING;
        if c.now() < next {
            c.run_until(next);
        }
    }
    Ok(cells
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|cell| cell.unwrap_or_else(|| self_cell.clone()))
                .collect()
        })
        .collect())
}

/// One probe's cell, with the verdict for the flow as the destination pod sees it.
fn cell(rec: &podnet::ConnRecord, col: &Column, world: &World, proto: L4) -> Cell {
    let src = podnet::v4(rec.local.addr);
    let proto_num = match proto {
        L4::Tcp => 6,
        L4::Udp => 17,
    };
    let verdict_to = |dst: Ipv4Address, dport: u16| {
        policy::verdict(
            world,
            &Flow {
                src,
                dst,
                proto: proto_num,
                dport,
            },
        )
    };
    let (backend, why_text) = if col.backends.is_empty() && col.pod.is_some() {
        (None, why(&verdict_to(col.ip, col.port)))
    } else {
        // A Service: the verdict of each backend, said once when they agree.
        let verdicts: Vec<(String, String, bool)> = col
            .backends
            .iter()
            .map(|&(ip, port)| {
                let v = verdict_to(ip, port);
                (format!("{ip}:{port}"), why(&v), v.allowed)
            })
            .collect();
        let backend = rec.peer.map(|p| p.to_string());
        let text = match verdicts.as_slice() {
            [] => "the Service has no ready endpoint".to_string(),
            [(_, w, _)] => w.clone(),
            [first, rest @ ..] if rest.iter().all(|v| v.2 == first.2) => first.1.clone(),
            all => all
                .iter()
                .map(|(b, w, _)| format!("to {b}: {w}"))
                .collect::<Vec<_>>()
                .join(" | "),
        };
        (backend, text)
    };
    Cell {
        result: result_of(rec.outcome),
        backend,
        why: why_text,
        error: rec.error.clone(),
    }
}

/// Forgets every connection on every node (kernel conntrack, and Cilium's CT maps).
fn flush_conntrack(c: &mut Cluster) {
    let nodes: Vec<_> = c.nodes().map(|(id, _)| id).collect();
    for n in nodes {
        if let Some(dp) = c.dataplane_mut(n) {
            dp.flush_conntrack();
            if let Some(ebpf) = dp.ebpf_mut() {
                ebpf.flush_ct();
            }
        }
    }
}
