//! The inspection commands: `trace` (one connection's packet walk), `tcpdump`, `conntrack`,
//! `iptables-save`, `explain` and `check`, plus the pcaps of `run --pcap`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use podnet::conntrack::Tuple;
use podnet::tcpdump::{self, Direction, Formatter};
use podnet::trace::{EventKind, EventRef};
use podnet::{ConnRecord, Instant, Proxy};

use super::observe::{belongs, TcpdumpWriter};
use super::{client_tuple, v4, Failure, Session};

/// The tuples a connection's packets carry anywhere: as sent, as translated, both ways.
pub(super) fn tuples_of(l: &Session, r: &ConnRecord, proto: u8) -> BTreeSet<Tuple> {
    NewConnections::of(l).tuples(r, proto)
}

/// Every node's conntrack NEW events (in node order) by original tuple: the translations a
/// connection's tuples are looked up in, indexed once for many connections. The events are
/// append-only, so [`NewConnections::update`] takes in only those that came since.
#[derive(Default)]
pub struct NewConnections {
    nodes: Vec<BTreeMap<Tuple, Vec<(Instant, Tuple)>>>,
    /// How many of each node's events are in.
    seen: Vec<usize>,
}

impl NewConnections {
    /// The index of `l`'s nodes' NEW events now.
    pub fn of(l: &Session) -> Self {
        let mut ix = NewConnections::default();
        ix.update(l, |_| {});
        ix
    }

    /// Takes in the NEW events `l`'s nodes confirmed since the last update (or since `of`),
    /// calling `added` with each one's original tuple.
    pub fn update(&mut self, l: &Session, mut added: impl FnMut(&Tuple)) {
        let mut n = 0;
        for (id, _) in l.cluster.nodes() {
            let Some(dp) = l.cluster.dataplane(id) else {
                continue;
            };
            if self.nodes.len() == n {
                self.nodes.push(BTreeMap::new());
                self.seen.push(0);
            }
            let events = dp.new_connections();
            for e in events.get(self.seen[n]..).unwrap_or_default() {
                self.nodes[n]
                    .entry(e.orig)
                    .or_default()
                    .push((e.at, e.reply));
                added(&e.orig);
            }
            self.seen[n] = events.len();
            n += 1;
        }
    }

    /// For each node (in order) that saw `orig` as a new connection at or after `since`, the
    /// reply tuple of the last such event (ports get reused).
    pub fn last_replies<'a>(
        &'a self,
        orig: &'a Tuple,
        since: Instant,
    ) -> impl Iterator<Item = Tuple> + 'a {
        self.nodes.iter().filter_map(move |by_orig| {
            by_orig
                .get(orig)?
                .iter()
                .rev()
                .find(|(at, _)| *at >= since)
                .map(|(_, reply)| *reply)
        })
    }

    /// The tuples connection `r` (IP protocol `proto`) carries anywhere: as sent, as
    /// translated by any node, both ways, and half-way between PREROUTING and POSTROUTING of
    /// a node that rewrites both addresses (DNAT then masquerade, as for a hairpin).
    pub fn tuples(&self, r: &ConnRecord, proto: u8) -> BTreeSet<Tuple> {
        let orig = client_tuple(r, proto);
        let mut set = BTreeSet::new();
        set.extend([orig, orig.invert()]);
        // Twice: a tuple translated on one node can be translated again on another (NodePort).
        for _ in 0..2 {
            for by_orig in &self.nodes {
                let found: Vec<(Tuple, Tuple)> = set
                    .iter()
                    .filter_map(|t| Some((*t, by_orig.get(t)?)))
                    .flat_map(|(t, replies)| replies.iter().map(move |r| (t, r)))
                    .filter(|(_, (at, _))| *at >= r.started)
                    .map(|(t, (_, reply))| (t, *reply))
                    .collect();
                for (orig, reply) in found {
                    // Between PREROUTING's DNAT and POSTROUTING's SNAT (FORWARD, and the
                    // routing in between) a packet carries one rewrite and not the other.
                    let dnat_only = Tuple {
                        dst: reply.src,
                        dport: reply.sport,
                        ..orig
                    };
                    let snat_only = Tuple {
                        src: reply.dst,
                        sport: reply.dport,
                        ..orig
                    };
                    // (ICMP ids and types do not mix that way.)
                    let halves = if orig.proto == 1 { 0 } else { 2 };
                    for t in [reply, dnat_only, snat_only].into_iter().take(1 + halves) {
                        set.insert(t);
                        set.insert(t.invert());
                    }
                }
            }
        }
        set
    }
}

pub(super) fn frame_tuple(frame: &[u8]) -> Option<Tuple> {
    packet_tuple(frame.get(14..)?)
}

/// The tuple of an IPv4 packet, or for an ICMP error the tuple of the packet it quotes (the
/// connection it belongs to).
pub fn packet_tuple(ip: &[u8]) -> Option<Tuple> {
    let t = Tuple::of_packet(ip)?;
    if t.proto == 1 && podnet::conntrack::tuple::icmp_is_error((t.dport >> 8) as u8) {
        return frame_tuple_ip(ip);
    }
    Some(t)
}

/// `podnet trace`: every hop and hook of one connection, headers before and after each rewrite.
pub(super) fn trace(l: &Session, flow: &str, conn: usize) -> Result<String, Failure> {
    let (proto, r) = record(l, flow, conn)?;
    let header = format!("flow {flow} connection {conn}");
    Ok(walk(l, &r, proto, &header, false))
}

/// Connection `conn` (in start order) of flow `flow`, and the flow's IP protocol number.
pub(super) fn record(l: &Session, flow: &str, conn: usize) -> Result<(u8, ConnRecord), Failure> {
    let fi = l.index.flow(flow).ok_or_else(|| {
        let names: Vec<_> = l.index.flows.iter().map(|f| f.name.clone()).collect();
        Failure::input(format!("no flow {flow:?} (flows: {})", names.join(", ")))
    })?;
    let (proto, records) = l.connection_refs(fi);
    match records.get(conn) {
        Some(&r) => Ok((proto, r.clone())),
        None => Err(Failure::input(format!(
            "flow {flow} has {} connections; --conn {conn} is out of range",
            records.len()
        ))),
    }
}

/// `podnet explain` for a connection that ran: the walk of connection `conn` of flow `flow`
/// with every node's routing decision, and the NetworkPolicy verdict.
pub(super) fn explain_conn(l: &Session, flow: &str, conn: usize) -> Result<String, Failure> {
    let (proto, r) = record(l, flow, conn)?;
    Ok(explain_record(
        l,
        &r,
        proto,
        &format!("explain flow {flow} connection {conn}"),
    ))
}

/// The packet walk of one connection; with `explain`, the route each node chose is added
/// after its PREROUTING.
fn walk(l: &Session, r: &ConnRecord, proto: u8, header: &str, explain: bool) -> String {
    walk_tuples(l, r, &tuples_of(l, r, proto), header, explain)
}

/// The tuples the DNS queries of connection `r`'s lookup carry: from each of its source
/// ports to the nameserver, and to every pod behind the nameserver's Service (where DNAT
/// sends them, also those dropped before their entry was confirmed), both ways.
pub(super) fn dns_tuples(l: &Session, r: &ConnRecord) -> BTreeSet<Tuple> {
    let mut set = BTreeSet::new();
    let Some(server) = l.index.dns_server else {
        return set;
    };
    let client = v4(r.local.addr);
    let mut dsts = vec![server];
    for s in l
        .cluster
        .services()
        .iter()
        .filter(|s| s.cluster_ip() == server)
    {
        for p in &s.spec.backends {
            if let Some(pod) = l.cluster.pod(*p) {
                dsts.push(v4(pod.addrs().ip.address()));
            }
        }
    }
    for &port in &r.dns_ports {
        for &dst in &dsts {
            let t = Tuple {
                src: client,
                dst,
                sport: port,
                dport: 53,
                proto: podnet::conntrack::proto::UDP,
            };
            set.insert(t);
            set.insert(t.invert());
        }
    }
    set
}

/// `podnet trace --dns`: the packet walk of the DNS lookup connection `conn` of flow `flow`
/// waited for: every query and answer, and, on a node with several CPUs, the CPU each ran on,
/// what its lookup could not see yet and the insert clash that dropped it.
pub(super) fn trace_dns(l: &Session, flow: &str, conn: usize) -> Result<String, Failure> {
    let (_, r) = record(l, flow, conn)?;
    if r.dns_ports.is_empty() {
        return Err(Failure::input(format!(
            "flow {flow} connection {conn} did not look a name up over DNS"
        )));
    }
    let header = format!(
        "flow {flow} connection {conn}, its DNS lookup ({}{})",
        r.dns_time
            .map(|t| format!("took {}", super::fmt_duration(t)))
            .unwrap_or_default(),
        if r.dns_ports.len() > 1 {
            format!(", from ports {:?}", r.dns_ports)
        } else {
            String::new()
        }
    );
    Ok(walk_tuples(l, &r, &dns_tuples(l, &r), &header, false))
}

fn walk_tuples(
    l: &Session,
    r: &ConnRecord,
    tuples: &BTreeSet<Tuple>,
    header: &str,
    explain: bool,
) -> String {
    let names = l.cluster.trace().iface_table();
    let mut f = Formatter::new();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{header}: {}:{} -> {}:{}  {}{}\n",
        r.local.addr,
        r.local.port,
        r.remote.addr,
        r.remote.port,
        r.outcome,
        r.error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    if let Some(peer) = r.peer {
        // eBPF mode: connect() itself was translated; no packet carries the Service address.
        let how = l
            .cluster
            .nodes()
            .filter_map(|(id, _)| l.cluster.dataplane(id)?.ebpf())
            .flat_map(|b| b.lb().sock_events())
            .find(|ev| {
                ev.req.sport == r.local.port
                    && smoltcp::wire::IpAddress::Ipv4(ev.req.client) == r.local.addr
                    && ev.at >= r.started
            })
            .and_then(|ev| match &ev.xlate {
                podnet::ebpf::SockXlate::Backend(sel) => {
                    Some((ev.at, format!(" ({}, {})", sel.service, sel.how)))
                }
                _ => None,
            });
        let (at, how) = how.unwrap_or((r.started, String::new()));
        let pod = l
            .cluster
            .pods()
            .find(|(_, p)| p.addrs().ip.address() == r.local.addr)
            .map_or_else(|| r.local.addr.to_string(), |(_, p)| p.name().to_string());
        let _ = writeln!(
            out,
            "{} {pod}   cgroup/connect4 (socket LB): connect({}:{}) -> {peer}{how}",
            podnet::tcpdump::format_time(at),
            r.remote.addr,
            r.remote.port,
        );
    }
    for e in l.recorded_events() {
        let ev = e.view();
        if !belongs(tuples, &ev) {
            continue;
        }
        match ev {
            EventRef::Sent { iface, frame } | EventRef::Received { iface, frame } => {
                let dir = if matches!(ev, EventRef::Sent { .. }) {
                    Direction::Out
                } else {
                    Direction::In
                };
                let _ = writeln!(out, "{}", f.line_on(e.time, names.name(iface), dir, frame));
            }
            EventRef::Dropped { iface, reason, .. } => {
                let _ = writeln!(
                    out,
                    "{} {:<20} DROP ({reason})",
                    tcpdump::format_time(e.time),
                    names.name(iface)
                );
            }
            EventRef::Hook {
                iface,
                hook,
                verdict,
                before,
                after,
                notes,
            } => {
                let Some(t) = Tuple::of_packet(before) else {
                    continue;
                };
                let node = names.name(iface).split('/').next().unwrap_or("?");
                let _ = write!(
                    out,
                    "{}   {node} {hook}: {}",
                    tcpdump::format_time(e.time),
                    endpoints(&t)
                );
                if let Some(a) = after.and_then(Tuple::of_packet) {
                    let _ = write!(out, " => {}", endpoints(&a));
                }
                if *verdict != podnet::netfilter::Verdict::Accept {
                    let _ = write!(out, "  [{verdict:?}]");
                }
                out.push('\n');
                for n in notes {
                    let _ = writeln!(out, "                    {n}");
                }
                if explain
                    && hook == podnet::netfilter::Hook::Prerouting
                    && *verdict == podnet::netfilter::Verdict::Accept
                {
                    let dst = after.and_then(Tuple::of_packet).unwrap_or(t).dst;
                    if let Some(n) = l
                        .cluster
                        .node_by_name(node)
                        .and_then(|id| l.cluster.node(id))
                    {
                        match n.routes().lookup(dst) {
                            _ if n.addrs().eth0.address() == dst || n.addrs().gateway() == dst => {
                                let _ = writeln!(
                                    out,
                                    "                    route: {dst} is local to {node}"
                                );
                            }
                            Some(route) => {
                                let _ =
                                    writeln!(out, "                    route: {dst} -> {route}");
                            }
                            None => {
                                let _ = writeln!(out, "                    route: none for {dst}");
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// `podnet explain`: starts one connection from pod (or external host) `from` to `to`
/// (`IP:PORT`, `SERVICE:PORT` or `POD:PORT`) in the built cluster, runs it (at most `limit`),
/// and returns its record.
pub(super) fn explain_start(
    l: &mut Session,
    from: &str,
    to: &str,
    path: &str,
    limit: podnet::Duration,
) -> Result<ConnRecord, Failure> {
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(Failure::input(format!(
            "--path {path:?}: expected a path like /public"
        )));
    }
    let (host, port) = to
        .rsplit_once(':')
        .ok_or_else(|| Failure::input(format!("--to {to:?}: expected HOST:PORT")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| Failure::input(format!("--to {to:?}: bad port")))?;
    let ip = if let Ok(ip) = host.parse() {
        ip
    } else if let Some(Some(ip)) = l
        .index
        .services
        .iter()
        .find(|(k, _)| k.as_str() == host || k.split('/').nth(1) == Some(host))
        .map(|(_, v)| *v)
    {
        ip
    } else if let Some(p) = l.cluster.pod_by_name(host) {
        v4(l.cluster
            .pod(p)
            .map(|p| p.addrs().ip.address())
            .ok_or_else(|| Failure::input("pod vanished"))?)
    } else {
        return Err(Failure::input(format!(
            "--to {to:?}: no Service, pod or address {host:?}"
        )));
    };
    let pod = l
        .cluster
        .pod_by_name(from)
        .ok_or_else(|| Failure::input(format!("--from {from:?}: no such pod or external host")))?;
    let before = l.cluster.pod(pod).map_or(0, |p| p.clients().count());
    let mut spec = podnet::ClientSpec::http("explain", ip, port).start(l.cluster.now());
    if path != "/" {
        spec = spec.request(podnet::Request::Http {
            host: host.into(),
            path: path.into(),
        });
    }
    l.cluster
        .start_program(pod, podnet::Program::Client(spec))
        .map_err(|e| Failure::input(e.to_string()))?;
    l.cluster.run_until_done(limit);
    l.cluster
        .pod(pod)
        .and_then(|p| p.clients().nth(before))
        .and_then(|c| c.records().first().cloned())
        .ok_or_else(|| Failure::input("the connection did not finish within --until"))
}

/// The walk of `r` with routes, then the NetworkPolicy verdict.
pub(super) fn explain_record(l: &Session, r: &ConnRecord, proto: u8, header: &str) -> String {
    let mut out = walk(l, r, proto, header, true);
    // NetworkPolicy is judged after DNAT: against the backend and its port.
    let (dst, dport) = tuples_of(l, r, proto)
        .into_iter()
        .find(|t| {
            t.src == v4(r.local.addr)
                && t.sport == r.local.port
                && (t.dst, t.dport) != (v4(r.remote.addr), r.remote.port)
        })
        .map_or((v4(r.remote.addr), r.remote.port), |t| (t.dst, t.dport));
    let v = l.cluster.policy_verdict(&podnet::policy::Flow {
        src: v4(r.local.addr),
        dst,
        proto,
        dport,
    });
    let cilium = !l.cluster.cilium_policies().is_empty();
    let _ = writeln!(
        out,
        "\n{} (judged after DNAT, against {dst}:{dport}): {}",
        if cilium {
            "Policy (Cilium: by security identity, with the NetworkPolicies)"
        } else {
            "NetworkPolicy"
        },
        if v.allowed { "allowed" } else { "DENIED" }
    );
    for (dir, d) in [("egress of", &v.egress), ("ingress of", &v.ingress)] {
        let who = d.pod.clone().unwrap_or_else(|| String::from("(not a pod)"));
        if cilium {
            let _ = writeln!(out, "  {dir} {who}: {}", d.reason);
            for line in &d.details {
                let _ = writeln!(out, "    {line}");
            }
            continue;
        }
        let sel = if d.selecting.is_empty() {
            String::from("no policy selects it")
        } else {
            format!("selected by {}", d.selecting.join(", "))
        };
        let _ = writeln!(out, "  {dir} {who}: {sel}; {}", d.reason);
    }
    for (node, e) in l
        .cluster
        .l7_access_log()
        .iter()
        .filter(|(_, e)| e.client == r.local && e.at >= r.started && e.at <= r.ended)
    {
        let _ = writeln!(
            out,
            "  L7 proxy on {node}: {} {} -> {} ({}); {}",
            e.method,
            e.path,
            e.status
                .map_or(String::from("no response"), |s| format!("HTTP {s}")),
            if e.allowed {
                "allowed, relayed to the backend on the proxy's own connection"
            } else {
                "denied: the proxy answered 403 Access denied itself"
            },
            e.rule
        );
    }
    out
}

/// With Cilium policies: the ipcache and the policy map of each endpoint of node `id`
/// (`cilium bpf ipcache list`, `cilium bpf policy get`); empty otherwise.
fn policy_maps(l: &Session, id: podnet::NodeId) -> String {
    let w = l.cluster.policy_world();
    let Some(e) = w.cilium.as_ref() else {
        return String::new();
    };
    let mut out =
        String::from("\n# Security identities of the endpoints (cilium bpf ipcache list):\n");
    for (ip, ident) in &e.pods {
        let _ = writeln!(
            out,
            "{ip}/32 identity={ident} ({})",
            e.identities.labels_text(*ident)
        );
    }
    for (cidr, ident) in e.cidrs.entries() {
        let _ = writeln!(
            out,
            "{cidr} identity={ident} ({})",
            e.identities.labels_text(*ident)
        );
    }
    for (ip, pod) in w.pods.iter().filter(|(_, p)| p.node == id.0) {
        let Some(map) = e.map_of(*ip) else { continue };
        let _ = write!(
            out,
            "\n# Policy map of {}/{} ({ip}, identity {}; cilium bpf policy get): ingress {}, egress {}\n{}",
            pod.namespace,
            pod.name,
            e.pods[ip],
            if map.ingress_enforced { "enforced" } else { "not enforced" },
            if map.egress_enforced { "enforced" } else { "not enforced" },
            map.render(&e.identities)
        );
    }
    out
}

pub(super) fn frame_tuple_ip(ip: &[u8]) -> Option<Tuple> {
    let hl = usize::from(*ip.first()? & 0x0f) * 4;
    Tuple::of_packet(ip.get(hl + 8..)?)
}

fn endpoints(t: &Tuple) -> String {
    match t.proto {
        6 | 17 => format!(
            "{} {}:{} > {}:{}",
            t.proto_name(),
            t.src,
            t.sport,
            t.dst,
            t.dport
        ),
        _ => format!("{} {} > {}", t.proto_name(), t.src, t.dst),
    }
}

/// `podnet tcpdump`: the frames of `iface` (`any`, a full name `node-a/eth0`, or a host name
/// for all its interfaces) matching `expr`.
pub(super) fn tcpdump(l: &Session, iface: &str, expr: &str) -> Result<String, Failure> {
    let mut w = TcpdumpWriter::new(iface, expr, Vec::new())?;
    let trace = l.cluster.trace();
    w.check_iface(trace.iface_table())?;
    trace.replay(&mut w);
    let out = w.finish()?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `podnet iptables-save` (or `nft list ruleset` in nftables mode), with the rule counters if
/// `counters`.
pub(super) fn rules(l: &Session, node_name: &str, counters: bool) -> Result<String, Failure> {
    let id = l.node(node_name)?;
    let dp = l
        .cluster
        .dataplane(id)
        .ok_or_else(|| Failure::input("this cluster runs no Service proxy (proxy: none)"))?;
    Ok(match (l.cluster.config().proxy, dp.ebpf()) {
        (Proxy::Nftables, _) if counters => dp.proxy().nft_ruleset_counters(),
        (Proxy::Nftables, _) => dp.proxy().nft_ruleset(),
        (_, Some(bpf)) => format!(
            "# {node_name}: kube-proxy is not running (proxy: ebpf); no iptables rule handles \
             Services.\n# Services are entries of the eBPF maps (cilium bpf lb list):\n{}{}",
            bpf.lb().lb_list(),
            policy_maps(l, id)
        ),
        _ if counters => dp.proxy().iptables_save_counters(),
        _ => dp.proxy().iptables_save(),
    })
}

/// `podnet check`: the resolved cluster.
pub(super) fn check(l: &Session) -> String {
    let c = &l.cluster;
    let mut out = String::new();
    let cfg = c.config();
    let _ = write!(
        out,
        "cluster {} seed {} podCIDR {} serviceCIDR {} proxy {:?}",
        l.scenario.name, cfg.seed, cfg.pod_cidr, cfg.service_cidr, cfg.proxy
    );
    if cfg.conntrack.kernel != podnet::conntrack::Kernel::default() {
        let _ = write!(out, " kernel {}", cfg.conntrack.kernel);
    }
    let _ = writeln!(out, "\n\nNODE             IP                POD CIDR");
    for (_, n) in c.nodes() {
        let _ = write!(
            out,
            "{:<16} {:<17} {}",
            n.name(),
            n.addrs().eth0.address(),
            n.addrs().pod_cidr
        );
        if n.cpus() > 1 {
            let _ = write!(out, "  ({} CPUs)", n.cpus());
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "\nPOD                        NODE             IP");
    for (id, p) in c.pods() {
        let node = c
            .pod_node(id)
            .and_then(|n| c.node(n))
            .map_or("?", |n| n.name());
        let _ = writeln!(
            out,
            "{:<26} {:<16} {}",
            p.name(),
            node,
            p.addrs().ip.address()
        );
    }
    let _ = writeln!(
        out,
        "\nSERVICE                    CLUSTER-IP       PORTS / ENDPOINTS"
    );
    for s in c.services() {
        let ports: Vec<_> = s
            .spec
            .ports
            .iter()
            .map(|p| {
                let np = p.node_port.map(|n| format!(":{n}")).unwrap_or_default();
                format!("{}{np}/{}->{}", p.port, p.protocol.name(), p.target_port)
            })
            .collect();
        let eps: Vec<_> = s
            .spec
            .backends
            .iter()
            .filter_map(|b| c.pod(*b))
            .map(|p| p.addrs().ip.address().to_string())
            .collect();
        let _ = writeln!(
            out,
            "{:<26} {:<16} {}  [{}]",
            format!("{}/{}", s.spec.namespace, s.spec.name),
            s.cluster_ip(),
            ports.join(","),
            eps.join(" ")
        );
    }
    let _ = writeln!(out, "\nFLOW                       TO");
    for f in &l.index.flows {
        let _ = writeln!(
            out,
            "{:<26} {}:{} from {} client(s)",
            f.name,
            f.to,
            f.port,
            f.clients.len()
        );
    }
    out
}

/// `any` in Linux cooked capture (every frame sent or received anywhere, like
/// `tcpdump -i any`), built from the trace's frame events.
pub(super) fn any_pcap(l: &Session) -> Vec<u8> {
    let trace = l.cluster.trace();
    let mut any = podnet::pcap::PcapBuffer::linux_cooked();
    for e in trace.events() {
        match &e.kind {
            EventKind::Sent { frame, .. } => any.record_cooked(e.time, true, &frame.bytes),
            EventKind::Received { frame, .. } => any.record_cooked(e.time, false, &frame.bytes),
            _ => {}
        }
    }
    any.into_bytes()
}

/// The Ethernet pcap of interface `name` (`HOST/IFACE`): the capture when the scenario
/// captures, else built from the trace's frame events; `any` as [`any_pcap`].
pub(super) fn pcap(l: &Session, name: &str) -> Result<Vec<u8>, Failure> {
    if name == "any" {
        return Ok(any_pcap(l));
    }
    let trace = l.cluster.trace();
    let Some((id, _)) = trace.ifaces().find(|(_, n)| *n == name) else {
        let names: Vec<&str> = trace.ifaces().map(|(_, n)| n).collect();
        return Err(Failure::input(format!(
            "no interface {name:?} (try any or one of: {})",
            names.join(", ")
        )));
    };
    if let Some(p) = trace.pcap(id) {
        return Ok(p.as_bytes().to_vec());
    }
    let mut p = podnet::pcap::PcapBuffer::ethernet();
    for e in trace.events() {
        match &e.kind {
            EventKind::Sent { iface, frame } | EventKind::Received { iface, frame }
                if *iface == id =>
            {
                p.record(e.time, &frame.bytes)
            }
            _ => {}
        }
    }
    Ok(p.into_bytes())
}
