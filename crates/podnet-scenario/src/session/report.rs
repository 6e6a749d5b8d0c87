//! The `podnet run` report: the JSON described in the book (`podnet run --json`), and the human
//! summary printed without `--json`.

use std::fmt::Write as _;

use podnet::conntrack::Tuple;
use podnet::{ConnRecord, Outcome};
use serde::Serialize;
use smoltcp::wire::IpEndpoint;

use super::{client_tuple, fmt_duration, fmt_instant, DropRecorder, NewConnections, Session};

/// The report.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `v1alpha1`.
    pub version: &'static str,
    /// The virtual time the run ended (`1.532s`).
    pub end_time: String,
    /// Frames delivered anywhere: one per interface that received a frame (pods, nodes, the
    /// underlay switch), as `tcpdump -i IFACE` would show it inbound.
    pub frames: u64,
    /// Every Traffic flow, in file order.
    pub flows: Vec<Flow>,
    /// Every node.
    pub nodes: Vec<NodeReport>,
    /// Every dropped frame, in time order.
    pub drops: Vec<Drop>,
    /// Every ConnectivityExpectation, in file order, with the probes that did not end as
    /// expected (absent when the scenario has none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connectivity: Vec<crate::matrix::expect::ExpectationResult>,
}

/// One Traffic flow.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Flow {
    /// The Traffic's name.
    pub name: String,
    /// Its connections, in start order.
    pub connections: Vec<Connection>,
}

/// One connection (or datagram exchange).
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// 0-based, in start order.
    pub id: u32,
    /// The client's address and port.
    pub from: String,
    /// Where the client connected to.
    pub to: String,
    /// The backend reached (`null` when none was).
    pub backend: Option<String>,
    /// The source address and port of the packet as it arrived at the backend.
    pub seen_by_backend: Option<String>,
    /// `ok`, `refused`, `timeout`, `reset` or `denied`.
    pub outcome: &'static str,
    /// Time to establish (`0.412ms`).
    pub connect_time: Option<String>,
    /// The DNS lookup's duration, when the client resolved a name first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_time: Option<String>,
    /// Payload bytes the client sent.
    pub bytes_sent: u64,
    /// Payload bytes the client received.
    pub bytes_received: u64,
    /// The errno an application would see, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A node's conntrack figures.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// Frames delivered to its interfaces (`eth0`, `cni0`, `flannel.1`, its pods' veths).
    pub frames: u64,
    /// Its conntrack table (absent with proxy none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<CtReport>,
    /// Its eBPF maps (`proxy: ebpf` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<BpfReport>,
    /// How Services were found for new connections (absent with proxy none).
    #[serde(rename = "serviceLookup", skip_serializing_if = "Option::is_none")]
    pub service_lookup: Option<LookupReport>,
}

/// The cost of finding a new connection's Service: the rules walked by its first packet
/// (iptables grows with the number of Services, nftables uses maps, eBPF walks none).
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct LookupReport {
    /// First packets of new connections that crossed this node's Service handling.
    pub first_packets: u64,
    /// Rules they walked in all.
    pub rules_walked: u64,
    /// `rules_walked / first_packets`.
    pub rules_per_first_packet: f64,
}

/// The eBPF datapath's maps and counters.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct BpfReport {
    /// Entries in the TCP CT map now.
    pub ct_tcp: u32,
    /// Its size (`bpf.ctTcpMax`).
    pub ct_tcp_max: u32,
    /// Entries in the non-TCP CT map now.
    pub ct_any: u32,
    /// Its size (`bpf.ctAnyMax`).
    pub ct_any_max: u32,
    /// Entries in the SNAT map now.
    pub nat: u32,
    /// Its size (`bpf.natMax`).
    pub nat_max: u32,
    /// CT entries created.
    pub ct_created: u64,
    /// CT entries evicted as least recently used (a full LRU map drops nothing).
    pub ct_evicted: u64,
    /// SNAT entries evicted.
    pub nat_evicted: u64,
    /// `connect()`s translated by the socket-level load balancer.
    pub socket_lb: u64,
    /// Connections load-balanced per packet (NodePort, or socket LB skipped).
    pub lb_per_packet: u64,
    /// SNAT mappings made (NodePort SNAT, BPF masquerade).
    pub snat: u64,
    /// DSR options added.
    pub dsr: u64,
}

/// `conntrack -S` and the table size.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct CtReport {
    /// Entries now.
    pub count: u32,
    /// `nf_conntrack_max`.
    pub max: u32,
    /// The counters.
    pub stats: CtStats,
    /// Where every entry went (podnet's accounting, not a kernel counter):
    /// `created = count + expired + earlyDropped + killed + unconfirmed + flushed`.
    pub life: CtLife,
}

/// Where every conntrack entry went.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct CtLife {
    /// Entries allocated for a packet.
    pub created: u64,
    /// Removed when their timeout ran out.
    pub expired: u64,
    /// Unassured entries evicted to make room (`early_drop`).
    pub early_dropped: u64,
    /// Killed by a packet (RST, a SYN reopening a closed connection).
    pub killed: u64,
    /// Freed before confirmation (packet dropped or INVALID, clash).
    pub unconfirmed: u64,
    /// Removed by a flush.
    pub flushed: u64,
}

/// The counters.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct CtStats {
    /// `found`.
    pub found: u64,
    /// `invalid`.
    pub invalid: u64,
    /// `insert`.
    pub insert: u64,
    /// `insert_failed`.
    pub insert_failed: u64,
    /// `drop`.
    pub drop: u64,
    /// `early_drop`.
    pub early_drop: u64,
    /// `clash_resolve`.
    pub clash_resolve: u64,
}

/// A dropped frame.
#[derive(Serialize, Debug, Clone)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Drop {
    /// When (`0.2s`).
    pub time: String,
    /// The interface (`where` in JSON).
    #[serde(rename = "where")]
    pub place: String,
    /// Why.
    pub reason: String,
    /// `10.244.0.5:40001 > 10.96.0.10:80 S`.
    pub packet: String,
}

fn ep(e: &IpEndpoint) -> String {
    format!("{}:{}", e.addr, e.port)
}

/// The backend a connection reached and the source it saw, from the conntrack NEW events of
/// every node (the node that translated it knows both tuples).
fn backend_of(ix: &NewConnections, r: &ConnRecord, proto: u8) -> (Option<String>, Option<String>) {
    let reached = matches!(r.outcome, Outcome::Ok | Outcome::Reset)
        || r.error.as_deref() == Some("ECONNREFUSED: RST");
    if !reached {
        return (None, None);
    }
    let orig = client_tuple(r, proto);
    let mut found: Option<Tuple> = None;
    // Each node's last NEW event of that tuple (ports get reused).
    for reply in ix.last_replies(&orig, r.started) {
        // Prefer a node that translated it (DNAT or SNAT).
        if found.is_none() || reply != orig.invert() {
            found = Some(reply);
        }
    }
    match found {
        Some(reply) => (
            Some(format!("{}:{}", reply.src, reply.sport)),
            Some(format!("{}:{}", reply.dst, reply.dport)),
        ),
        None => (Some(ep(&r.peer.unwrap_or(r.remote))), Some(ep(&r.local))),
    }
}

pub(super) fn packet_summary(frame: &[u8]) -> String {
    let Some(t) = frame.get(14..).and_then(Tuple::of_packet) else {
        return String::from("non-IP frame");
    };
    let flags = if t.proto == 6 {
        let hl = usize::from(frame[14] & 0x0f) * 4;
        frame.get(14 + hl + 13).map_or(String::new(), |f| {
            let mut s = String::from(" ");
            for (bit, c) in [
                (0x02, 'S'),
                (0x01, 'F'),
                (0x04, 'R'),
                (0x08, 'P'),
                (0x10, '.'),
            ] {
                if f & bit != 0 {
                    s.push(c);
                }
            }
            s
        })
    } else {
        format!(" {}", t.proto_name())
    };
    match t.proto {
        6 | 17 => format!("{}:{} > {}:{}{flags}", t.src, t.sport, t.dst, t.dport),
        _ => format!("{} > {}{flags}", t.src, t.dst),
    }
}

/// Builds the report of a finished run.
pub(super) fn report(l: &Session) -> Report {
    let ix = NewConnections::of(l);
    let mut flows = Vec::new();
    for (i, f) in l.index.flows.iter().enumerate() {
        let (proto, records) = l.connections(i);
        let connections = records
            .iter()
            .enumerate()
            .map(|(n, r)| {
                let (backend, seen) = backend_of(&ix, r, proto);
                Connection {
                    id: n as u32,
                    from: ep(&r.local),
                    to: ep(&r.remote),
                    backend,
                    seen_by_backend: seen,
                    outcome: r.outcome.as_str(),
                    connect_time: r.connect_time.map(fmt_duration),
                    dns_time: r.dns_time.map(fmt_duration),
                    bytes_sent: r.bytes_sent,
                    bytes_received: r.bytes_received,
                    error: r.error.clone(),
                }
            })
            .collect();
        flows.push(Flow {
            name: f.name.clone(),
            connections,
        });
    }
    let nodes = l
        .cluster
        .nodes()
        .map(|(id, n)| NodeReport {
            name: n.name().to_string(),
            frames: l.cluster.frames_delivered_to(id),
            conntrack: l.cluster.conntrack(id).map(|ct| {
                let s = ct.stats();
                CtReport {
                    count: ct.count(),
                    max: ct.config().max,
                    stats: CtStats {
                        found: s.found,
                        invalid: s.invalid,
                        insert: s.insert,
                        insert_failed: s.insert_failed,
                        drop: s.drop,
                        early_drop: s.early_drop,
                        clash_resolve: s.clash_resolve,
                    },
                    life: {
                        let l = ct.life();
                        CtLife {
                            created: l.created,
                            expired: l.expired,
                            early_dropped: l.early_dropped,
                            killed: l.killed,
                            unconfirmed: l.unconfirmed,
                            flushed: l.flushed,
                        }
                    },
                }
            }),
            service_lookup: l.cluster.dataplane(id).map(|d| {
                let st = d.stats();
                LookupReport {
                    first_packets: st.first_packets,
                    rules_walked: st.rules_walked,
                    rules_per_first_packet: if st.first_packets == 0 {
                        0.0
                    } else {
                        st.rules_walked as f64 / st.first_packets as f64
                    },
                }
            }),
            bpf: l.cluster.dataplane(id).and_then(|d| d.ebpf()).map(|b| {
                let st = b.stats();
                let cfg = b.config();
                BpfReport {
                    ct_tcp: b.ct_tcp().len() as u32,
                    ct_tcp_max: cfg.ct_tcp_max,
                    ct_any: b.ct_any().len() as u32,
                    ct_any_max: cfg.ct_any_max,
                    nat: b.snat_map().len() as u32,
                    nat_max: cfg.nat_max,
                    ct_created: st.ct_created,
                    ct_evicted: st.ct_evicted,
                    nat_evicted: st.nat_evicted,
                    socket_lb: b
                        .lb()
                        .sock_events()
                        .iter()
                        .filter(|e| matches!(e.xlate, podnet::ebpf::SockXlate::Backend(_)))
                        .count() as u64,
                    lb_per_packet: st.lb_per_packet,
                    snat: st.snat,
                    dsr: st.dsr,
                }
            }),
        })
        .collect();
    // The drops a [`DropRecorder`] kept as they happened, else those the trace recorded.
    let drops = match l.cluster.observer::<DropRecorder>() {
        Some(d) => d.drops().to_vec(),
        None => {
            let mut d = DropRecorder::default();
            l.cluster.trace().replay(&mut d);
            d.drops().to_vec()
        }
    };
    Report {
        version: "v1alpha1",
        end_time: fmt_instant(l.cluster.now()),
        frames: l.cluster.frames_delivered(),
        flows,
        nodes,
        drops,
        connectivity: if l.scenario.expectations.is_empty() {
            Vec::new()
        } else {
            crate::matrix::expect::check(&l.scenario)
        },
    }
}

/// The human summary: one block per flow, conntrack per node, drops by reason.
pub(super) fn summary(l: &Session, r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} (seed {}), ran to {}{}",
        l.scenario.name,
        l.scenario.config.seed,
        r.end_time,
        if l.finished {
            ""
        } else {
            " (time limit: some clients unfinished)"
        }
    );
    for f in &r.flows {
        let mut counts = std::collections::BTreeMap::new();
        for c in &f.connections {
            *counts.entry(c.outcome).or_insert(0) += 1;
        }
        let counts: Vec<_> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let _ = writeln!(
            out,
            "\nflow {}: {} connections: {}",
            f.name,
            f.connections.len(),
            counts.join(", ")
        );
        for c in f.connections.iter().take(20) {
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
        }
        if f.connections.len() > 20 {
            let _ = writeln!(
                out,
                "  ... {} more (--json for all)",
                f.connections.len() - 20
            );
        }
    }
    for e in &r.connectivity {
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
    let per_node: Vec<_> = r
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.name, n.frames))
        .collect();
    let _ = writeln!(
        out,
        "frames delivered: {} ({})",
        r.frames,
        per_node.join(", ")
    );
    for n in &r.nodes {
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
            let _ = writeln!(
                out,
                "{}: conntrack {}/{} entries, insert={} invalid={} drop={} early_drop={} insert_failed={}",
                n.name, ct.count, ct.max, s.insert, s.invalid, s.drop, s.early_drop, s.insert_failed
            );
        }
    }
    if !r.drops.is_empty() {
        let mut by_reason = std::collections::BTreeMap::new();
        for d in &r.drops {
            *by_reason.entry(d.reason.as_str()).or_insert(0) += 1;
        }
        let _ = writeln!(out, "\ndrops:");
        for (reason, n) in by_reason {
            let _ = writeln!(out, "  {n:>6}  {reason}");
        }
    }
    out
}

/// Checks each flow's `expect`; returns the failures.
pub(super) fn failed_expectations(l: &Session, r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for e in r.connectivity.iter().filter(|e| !e.mismatches.is_empty()) {
        out.push(
            crate::matrix::expect::difference_table(std::slice::from_ref(e))
                .trim_end()
                .to_string(),
        );
    }
    for (i, f) in r.flows.iter().enumerate() {
        let Some(want) = l.scenario.flows.get(i).and_then(|d| d.expect.clone()) else {
            continue;
        };
        let bad = f.connections.iter().filter(|c| c.outcome != want).count();
        if bad > 0 || f.connections.is_empty() {
            out.push(format!(
                "flow {}: expected every connection {want}, {bad} of {} were not",
                f.name,
                f.connections.len()
            ));
        }
    }
    out
}
