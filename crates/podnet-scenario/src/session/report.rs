//! The `podnet run` report: the JSON described in the book (`podnet run --json`), and the human
//! summary printed without `--json`.

use podnet::conntrack::Tuple;
use podnet::{ConnRecord, Outcome};
use serde::Serialize;
use smoltcp::wire::IpEndpoint;

use super::{client_tuple, fmt_duration, fmt_instant, DropRecorder, NewConnections, Session};

/// The report of a run (`podnet run --json`): what every client saw, each node's conntrack or
/// eBPF maps, and every dropped frame.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The version of this format, `v1alpha1`: a field may be added within a version, none is
    /// removed or changes meaning.
    #[cfg_attr(feature = "schema", schemars(extend("const" = "v1alpha1")))]
    pub version: &'static str,
    /// The virtual time the run ended: when every Traffic was done, or the `--until` limit
    /// (default 30 s). Milliseconds with three decimals below one second (`20.816ms`), else
    /// seconds with three decimals (`1.532s`).
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::report_duration")
    )]
    pub end_time: String,
    /// Frames delivered anywhere: one per interface that received a frame (pods, nodes, the
    /// underlay switch), as `tcpdump -i IFACE` would show it inbound.
    pub frames: u64,
    /// Every Traffic flow, in file order.
    pub flows: Vec<Flow>,
    /// Every node, in the order of the cluster's node list.
    pub nodes: Vec<NodeReport>,
    /// Every frame dropped anywhere (link loss, queue overflow, a down link, a netfilter or
    /// policy drop, an INVALID packet, a full conntrack table), in time order.
    pub drops: Vec<Drop>,
    /// Every ConnectivityExpectation, in file order, with the probes that did not end as
    /// expected (absent when the scenario has none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connectivity: Vec<crate::matrix::expect::ExpectationResult>,
}

/// One Traffic flow.
#[derive(Serialize, Clone, Debug)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Flow {
    /// The Traffic's `metadata.name`.
    pub name: String,
    /// Its connections (or UDP exchanges), in start order; a Deployment client contributes
    /// those of every replica.
    pub connections: Vec<Connection>,
}

/// One connection (or datagram exchange).
#[derive(Serialize, Clone, Debug)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The connection's number within its flow, from 0, in start order (`podnet trace --conn`).
    pub id: u32,
    /// The client's address and source port (`10.244.0.5:60916`), as its socket has them.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::endpoint"))]
    pub from: String,
    /// The address and port the client connected to (a ClusterIP, a node's NodePort, a pod),
    /// before any NAT. With the eBPF socket load balancer, the backend the socket was
    /// translated to.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::endpoint"))]
    pub to: String,
    /// The backend address and port the connection reached, after DNAT (`10.244.1.20:80`);
    /// `null` when no backend was reached (timeout, refused without a backend, denied).
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::endpoint_or_null")
    )]
    pub backend: Option<String>,
    /// The source address and port of the client's packets as they arrived at the backend:
    /// the client's own when nothing masqueraded them, a node's after SNAT; `null` when no
    /// backend was reached.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::endpoint_or_null")
    )]
    pub seen_by_backend: Option<String>,
    /// How it ended: `ok` (completed), `refused` (RST or ICMP unreachable in answer to the
    /// SYN, or ICMP port unreachable for UDP), `timeout` (no answer within the Traffic's
    /// `timeout`), `reset` (RST once established) or `denied` (dropped by a NetworkPolicy).
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::outcome"))]
    pub outcome: &'static str,
    /// Virtual time from the client's first SYN (or datagram) to the connection being
    /// established (or the first answer), in the format of `endTime`; `null` when it never
    /// was.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::report_duration_or_null")
    )]
    pub connect_time: Option<String>,
    /// How long the client's DNS lookup of the Service name took, in the format of
    /// `endTime`; absent when the client did not resolve a name (no DNS pods, or an address
    /// as target).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::report_duration")
    )]
    pub dns_time: Option<String>,
    /// Payload bytes the client sent (TCP or UDP payload, not headers).
    pub bytes_sent: u64,
    /// Payload bytes the client received.
    pub bytes_received: u64,
    /// When it failed: the errno an application would see and why (`ECONNREFUSED: RST`,
    /// `EHOSTUNREACH: ICMP time exceeded from 10.244.0.1`); absent when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status of the response the client got (`200`, `403` from an L7 proxy);
    /// present only in scenarios with L7 (HTTP) policies or an `expect.httpStatus`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

/// A node's conntrack figures.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// Frames delivered to its interfaces (`eth0`, `cni0`, `flannel.1`, its pods' veths), one
    /// per interface that received a frame.
    pub frames: u64,
    /// Its netfilter conntrack table (absent with `proxy: none`, and with `proxy: ebpf`,
    /// whose CT maps are in `bpf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<CtReport>,
    /// Its eBPF maps and counters (`proxy: ebpf` only, else absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<BpfReport>,
    /// How Services were found for new connections (absent with `proxy: none`).
    #[serde(rename = "serviceLookup", skip_serializing_if = "Option::is_none")]
    pub service_lookup: Option<LookupReport>,
}

/// The cost of finding a new connection's Service: the rules walked by its first packet
/// (iptables grows with the number of Services, nftables uses maps, eBPF walks none).
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct LookupReport {
    /// First packets of new connections that crossed this node's Service handling.
    pub first_packets: u64,
    /// Rules they walked in all (iptables: rules evaluated in the nat chains; nftables: map
    /// lookups and rules; eBPF: 0).
    pub rules_walked: u64,
    /// `rulesWalked / firstPackets` (0 when there was no first packet).
    pub rules_per_first_packet: f64,
}

/// The eBPF datapath's maps and counters.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
#[serde(rename_all = "camelCase")]
pub struct BpfReport {
    /// Entries in the TCP CT map at the end of the run.
    pub ct_tcp: u32,
    /// Its size (`Cluster.spec.ebpf.bpf.ctTcpMax`).
    pub ct_tcp_max: u32,
    /// Entries in the non-TCP CT map at the end of the run.
    pub ct_any: u32,
    /// Its size (`bpf.ctAnyMax`).
    pub ct_any_max: u32,
    /// Entries in the SNAT map at the end of the run.
    pub nat: u32,
    /// Its size (`bpf.natMax`).
    pub nat_max: u32,
    /// CT entries created during the run.
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct CtReport {
    /// Entries in the table at the end of the run (`nf_conntrack_count`).
    pub count: u32,
    /// The table's size (`nf_conntrack_max`, `Cluster.spec.conntrack.max`).
    pub max: u32,
    /// The counters `conntrack -S` prints, summed over the node (podnet has one CPU).
    pub stats: CtStats,
    /// Where every entry went (podnet's accounting, not a kernel counter):
    /// `created = count + expired + earlyDropped + killed + unconfirmed + flushed`.
    pub life: CtLife,
}

/// Where every conntrack entry went.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct CtStats {
    /// `found`: reply tuples NAT found already taken while choosing a source port
    /// (`nf_conntrack_tuple_taken`; current kernels no longer count ordinary lookups here).
    pub found: u64,
    /// `invalid`: packets conntrack could not track (bad flags or checksum, out of window);
    /// they have state INVALID.
    pub invalid: u64,
    /// `insert`: entries inserted from user space. Linux 6.x no longer counts the packet path's
    /// confirmations here, so it stays 0, as `conntrack -S` shows on a current kernel.
    pub insert: u64,
    /// `insert_failed`: entries that could not be confirmed because an entry with the same
    /// tuple was confirmed first (a clash that could not be resolved; the packet is dropped).
    pub insert_failed: u64,
    /// `drop`: packets dropped because the table was full and early drop found no victim, or
    /// after `insert_failed`.
    pub drop: u64,
    /// `early_drop`: unassured entries evicted to make room for a new one in a full table.
    pub early_drop: u64,
    /// `clash_resolve`: clashes resolved by reusing the entry already confirmed (UDP with the
    /// same NAT).
    pub clash_resolve: u64,
}

/// A dropped frame.
#[derive(Serialize, Debug, Clone)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Drop {
    /// The virtual time of the drop, in the format of `endTime`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::report_duration")
    )]
    pub time: String,
    /// Where: the interface (`HOST/IFACE`: `node-a/eth0`, `pod-a/eth0`), the sending side for
    /// link drops, the receiving side otherwise.
    #[serde(rename = "where")]
    pub place: String,
    /// Why, in words: the rule's target (`DROP`, `REJECT --reject-with icmp-port-unreachable`),
    /// the kernel's log line (`nf_conntrack: table full, dropping packet`), a NetworkPolicy's
    /// verdict (`NetworkPolicy: default/backend isolated for ingress (...); no policy allows
    /// it`), link loss, a full queue or a down link.
    pub reason: String,
    /// The frame, summarised: `SRC:SPORT > DST:DPORT FLAGS` for TCP (flags `S`, `F`, `R`, `P`,
    /// `.`) and UDP, `SRC > DST PROTO` for other IP, `non-IP frame` otherwise.
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

/// Each node's part of the report (frames, conntrack, Service lookup, eBPF maps), now.
pub(super) fn node_reports(l: &Session) -> Vec<NodeReport> {
    l.cluster
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
        .collect()
}

/// The report's flows with only the connections whose record passes `keep` (the outcome
/// and HTTP status as the report gives them); flows with none kept are still listed, empty.
/// Nothing is computed for a connection not kept, so a filter that keeps few is cheap with
/// many connections.
pub(super) fn flows_where(l: &Session, keep: impl Fn(&Kept) -> bool) -> Vec<Flow> {
    let mut rows = Rows::new(l);
    let mut flows = Vec::new();
    for (i, f) in l.index.flows.iter().enumerate() {
        let (proto, records) = l.connection_refs(i);
        let status = rows.status(i);
        let mut connections = Vec::new();
        for (n, r) in records.iter().enumerate() {
            let http_status = r.http_status.filter(|_| status);
            if keep(&Kept {
                outcome: r.outcome.as_str(),
                http_status,
            }) {
                connections.push(rows.connection(n, r, proto, status));
            }
        }
        flows.push(Flow {
            name: f.name.clone(),
            connections,
        });
    }
    flows
}

/// Builds the report's line of a connection record; what every line needs (the conntrack
/// NEW events, the L7 proxy's log) is gathered on the first one.
pub(super) struct Rows<'a> {
    l: &'a Session,
    l7: bool,
    ix: Option<NewConnections>,
    l7_log: Option<Vec<(String, podnet::program::l7proxy::AccessLog)>>,
}

impl<'a> Rows<'a> {
    pub(super) fn new(l: &'a Session) -> Self {
        Rows {
            l,
            l7: l.cluster.pods().any(|(id, _)| l.cluster.is_l7_proxy(id)),
            ix: None,
            l7_log: None,
        }
    }

    /// Whether flow `flow`'s lines give the HTTP status (through an L7 proxy, or when the
    /// flow expects one).
    pub(super) fn status(&self, flow: usize) -> bool {
        self.l7
            || self
                .l
                .scenario
                .flows
                .get(flow)
                .is_some_and(|d| d.expect_status.is_some())
    }

    /// The line of record `r`, connection `n` (in start order) of a flow of IP protocol
    /// `proto` whose lines give the HTTP status when `status`.
    pub(super) fn connection(
        &mut self,
        n: usize,
        r: &ConnRecord,
        proto: u8,
        status: bool,
    ) -> Connection {
        let l = self.l;
        let ix = self.ix.get_or_insert_with(|| NewConnections::of(l));
        let (backend, mut seen) = backend_of(ix, r, proto);
        let l7 = self.l7;
        let log = self.l7_log.get_or_insert_with(|| {
            if l7 {
                l.cluster.l7_access_log()
            } else {
                Vec::new()
            }
        });
        // Through an L7 proxy, the backend saw the proxy's own connection (from the
        // client's address, another port), or nothing when the proxy refused.
        if let Some((_, e)) = log
            .iter()
            .find(|(_, e)| e.client == r.local && e.at >= r.started && e.at <= r.ended)
        {
            seen = e
                .upstream_port
                .filter(|_| e.allowed)
                .map(|p| format!("{}:{p}", e.client.addr));
        }
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
            http_status: r.http_status.filter(|_| status),
        }
    }
}

/// What [`Session::flows_where`](super::Session::flows_where)'s filter sees of a connection.
pub struct Kept<'a> {
    /// The outcome, as the report gives it (`ok`, `timeout`, `denied`...).
    pub outcome: &'a str,
    /// The HTTP status, when the report gives one.
    pub http_status: Option<u16>,
}

/// Builds the report of the run so far.
pub(super) fn report(l: &Session) -> Report {
    let flows = flows_where(l, |_| true);
    let nodes = node_reports(l);
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
        if let Some(want) = l.scenario.flows.get(i).and_then(|d| d.expect_status) {
            let bad = f
                .connections
                .iter()
                .filter(|c| c.http_status != Some(want))
                .count();
            if bad > 0 || f.connections.is_empty() {
                out.push(format!(
                    "flow {}: expected every connection to get HTTP {want}, {bad} of {} did not",
                    f.name,
                    f.connections.len()
                ));
            }
        }
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
