//! A scenario session: load, build, run in virtual time with the faults at their times, and
//! inspect (the report, a connection's packet walk, tcpdump lines, conntrack, rules, pcaps).
//!
//! This is what the `podnet` command and the WebAssembly module share: no files, no terminal,
//! no process exit. Errors are a [`Failure`]: a message (the text the CLI prints) and whether
//! it is bad input (exit code 2) or a failed expectation (exit code 1).
//!
//! ```
//! use podnet_scenario::session::Session;
//! let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed.yaml")).unwrap();
//! let mut s = Session::load(&[("seed.yaml", &yaml)], None).unwrap();
//! s.run(podnet::Duration::from_secs(30)).unwrap();
//! let report = s.report();
//! assert_eq!(report.flows[0].connections[0].backend.as_deref(), Some("10.244.1.20:80"));
//! ```

mod inspect;
mod observe;
mod report;
mod summary;

use core::fmt;
use std::collections::BTreeSet;

use podnet::conntrack::Tuple;
use podnet::{Cluster, ConnRecord, Duration, Instant, NodeId};
use smoltcp::wire::{IpAddress, Ipv4Address};

use crate::{FaultEvent, Index, Scenario, Warning};

pub use inspect::{packet_tuple, NewConnections};
pub use observe::{ConnRecorder, DropRecorder, TcpdumpWriter, WindowRecorder};
pub use report::{Connection, CtLife, CtReport, CtStats, Drop, Flow, Kept, NodeReport, Report};

/// Whether a failure is bad input or a failed expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Unreadable or invalid input, an unknown name (the CLI exits with 2).
    Input,
    /// The scenario ran but an `expect` failed (the CLI exits with 1).
    Expectation,
}

/// A failure: what to print, and which kind it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Which kind.
    pub kind: FailureKind,
    /// The text (`file:line:col: what is wrong` for input errors with a place).
    pub message: String,
}

impl Failure {
    /// Bad input.
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            kind: FailureKind::Input,
            message: message.into(),
        }
    }

    /// The exit code of the CLI: 2 for bad input, 1 for a failed expectation.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            FailureKind::Input => 2,
            FailureKind::Expectation => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Self {
        Failure::input(e.to_string())
    }
}

/// A built scenario and its cluster, run forward in virtual time.
pub struct Session {
    /// The scenario.
    pub scenario: Scenario,
    /// The cluster built from it.
    pub cluster: Cluster,
    /// Names to ids, clients per flow.
    pub index: Index,
    /// Whether every client finished (set by the run methods).
    pub finished: bool,
    faults: Vec<FaultEvent>,
    next_fault: usize,
    faults_checked: bool,
    /// The time of the last engine event [`Session::step`] processed.
    last_step: Option<Instant>,
}

impl Session {
    /// Builds `scenario` (its build warnings are in `index.warnings`).
    pub fn new(scenario: Scenario) -> Result<Session, Failure> {
        Session::new_observed(scenario, Vec::new())
    }

    /// [`Session::new`] with `observers` installed on the cluster before anything is built,
    /// so that they see every event (a [`DropRecorder`], a [`TcpdumpWriter`], ...).
    pub fn new_observed(
        scenario: Scenario,
        observers: Vec<Box<dyn podnet::trace::Observer>>,
    ) -> Result<Session, Failure> {
        let (cluster, index) = crate::build::build_observed(&scenario, observers)?;
        let faults = crate::fault_events(&scenario);
        Ok(Session {
            scenario,
            cluster,
            index,
            finished: false,
            faults,
            next_fault: 0,
            faults_checked: false,
            last_step: None,
        })
    }

    /// Loads `sources` (`(file name, text)`, read in order as one stream), overrides the seed
    /// when given, and builds. The load warnings are added in front of `index.warnings`.
    pub fn load(sources: &[(&str, &str)], seed: Option<u64>) -> Result<Session, Failure> {
        let loaded = crate::load(sources)?;
        let mut scenario = loaded.scenario;
        if let Some(seed) = seed {
            scenario.config.seed = seed;
        }
        let mut s = Session::new(scenario)?;
        let mut warnings = loaded.warnings;
        warnings.append(&mut s.index.warnings);
        s.index.warnings = warnings;
        Ok(s)
    }

    /// Fails on a fault that cannot be carried out (checked once, before the first run).
    pub fn check_faults(&mut self) -> Result<(), Failure> {
        if !self.faults_checked {
            crate::check_faults(&self.scenario)?;
            self.faults_checked = true;
        }
        Ok(())
    }

    /// Warnings of loading (with [`Session::load`]) and building.
    pub fn warnings(&self) -> &[Warning] {
        &self.index.warnings
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.cluster.now()
    }

    /// When the next fault change is due.
    pub fn next_fault_time(&self) -> Option<Instant> {
        self.faults
            .get(self.next_fault)
            .map(|f| Instant::ZERO + f.at)
    }

    /// The time of the next thing to happen: an engine event or a fault change.
    pub fn next_event_time(&self) -> Option<Instant> {
        match (self.cluster.next_event(), self.next_fault_time()) {
            (Some(a), Some(b)) => Some(a.min(b).max(self.now())),
            (a, b) => a.or(b).map(|t| t.max(self.now())),
        }
    }

    /// Carries out every fault change due by now.
    fn apply_due_faults(&mut self) -> Result<(), Failure> {
        while let Some(ev) = self
            .faults
            .get(self.next_fault)
            .filter(|ev| Instant::ZERO + ev.at <= self.cluster.now())
        {
            let ev = *ev;
            self.next_fault += 1;
            crate::apply_fault(&mut self.cluster, &self.scenario, &self.index, ev)?;
        }
        Ok(())
    }

    /// Runs until every client has finished (true, stopping there) or the clock reaches `to`
    /// (false), carrying out each fault change at its time (after the events of that time).
    pub fn advance(&mut self, to: Instant) -> Result<bool, Failure> {
        self.drive(to, true)
    }

    /// Runs to `to` with the faults at their times; with `stop_when_done`, stops (true) when
    /// every client has finished.
    fn drive(&mut self, to: Instant, stop_when_done: bool) -> Result<bool, Failure> {
        self.check_faults()?;
        loop {
            self.apply_due_faults()?;
            let mut next = to.max(self.cluster.now());
            if let Some(t) = self.next_fault_time() {
                next = next.min(t);
            }
            if stop_when_done {
                if self.cluster.run_until_done(next - self.cluster.now()) {
                    self.finished = true;
                    return Ok(true);
                }
            } else {
                self.cluster.run_until(next);
                self.finished = self.cluster.clients_done();
            }
            if self.cluster.now() >= to {
                return Ok(false);
            }
        }
    }

    /// Runs the scenario until every client is done or `limit` of virtual time has passed
    /// (what `podnet run` does).
    pub fn run(&mut self, limit: Duration) -> Result<(), Failure> {
        self.run_with(limit, |_| {})
    }

    /// [`Session::run`] in slices of virtual time, calling `progress` after each one (the
    /// result is the same as in one go).
    pub fn run_with(
        &mut self,
        limit: Duration,
        mut progress: impl FnMut(&Session),
    ) -> Result<(), Failure> {
        self.run_checked(limit, |s| {
            progress(s);
            Ok(())
        })
    }

    /// [`Session::run_with`] where `check` may stop the run with a failure after any slice (a
    /// memory budget, a deadline): the session stays at the end of the last slice.
    pub fn run_checked(
        &mut self,
        limit: Duration,
        mut check: impl FnMut(&Session) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let end = self.cluster.now() + limit;
        let slice = Duration::from_millis(100).max(limit / 300);
        loop {
            let next = (self.cluster.now() + slice).min(end);
            if self.advance(next)? {
                return Ok(());
            }
            check(self)?;
            if self.cluster.now() >= end {
                return Ok(());
            }
        }
    }

    /// Moves the clock to `to`, running every event up to and including `to` and every fault
    /// change before it (one at `to` waits for the next run, as with [`Session::advance`]),
    /// whether or not the clients are done: a replay to `to` always gives the same state.
    pub fn run_until(&mut self, to: Instant) -> Result<(), Failure> {
        self.drive(to, false).map(|_| ())
    }

    /// Processes one engine event, carrying out fault changes at their times (after every
    /// engine event of the same time, as [`Session::advance`] does); false when nothing is left.
    pub fn step(&mut self) -> Result<bool, Failure> {
        self.check_faults()?;
        let now = self.cluster.now();
        let mid_instant =
            self.last_step == Some(now) && self.cluster.next_event().is_some_and(|t| t <= now);
        if !mid_instant {
            self.apply_due_faults()?;
        }
        let fault = self.next_fault_time();
        let stepped = match (self.cluster.next_event(), fault) {
            (Some(e), Some(f)) if f < e => {
                self.cluster.run_until(f);
                self.apply_due_faults()?;
                true
            }
            (None, Some(f)) => {
                self.cluster.run_until(f);
                self.apply_due_faults()?;
                true
            }
            (Some(_), _) => {
                let stepped = self.cluster.step();
                self.last_step = Some(self.cluster.now());
                stepped
            }
            (None, None) => false,
        };
        self.finished = self.cluster.clients_done();
        Ok(stepped)
    }

    /// Flow `flow`'s IP protocol number and its connection records, in start order.
    pub fn connections(&self, flow: usize) -> (u8, Vec<ConnRecord>) {
        let (proto, records) = self.connection_refs(flow);
        (proto, records.into_iter().cloned().collect())
    }

    /// [`Session::connections`] without copying the records (cheap with many connections).
    pub fn connection_refs(&self, flow: usize) -> (u8, Vec<&ConnRecord>) {
        let proto = self.connections_proto(flow);
        let mut records = self.index.record_refs(&self.cluster, flow);
        podnet::sort::sort_by_key(&mut records, |r| (r.started, r.id));
        (proto, records)
    }

    /// The IP protocol number of flow `flow`'s connections (TCP, or UDP).
    pub fn connections_proto(&self, flow: usize) -> u8 {
        self.scenario.flows.get(flow).map_or(6, |d| {
            if d.protocol == podnet::Protocol::Udp {
                17
            } else {
                6
            }
        })
    }

    /// Connection `conn` (0-based, in start order) of flow `flow`, and the flow's IP protocol
    /// number.
    pub fn connection(&self, flow: &str, conn: usize) -> Result<(u8, ConnRecord), Failure> {
        inspect::record(self, flow, conn)
    }

    /// The same scenario built afresh, at time zero with nothing run, recording from the
    /// start the events (frames and hooks) of the connection whose packets carry `tuples`
    /// ([`Session::connection_tuples`] of a run of this session): replaying it gives the same
    /// world, and [`Session::trace`] and [`Session::explain_text`] then read only those events.
    pub fn rebuild_recording(&self, tuples: BTreeSet<Tuple>) -> Result<Session, Failure> {
        let snaplen = self.scenario.config.trace.snaplen;
        let recorder = ConnRecorder::new(tuples, snaplen);
        Session::new_observed(self.scenario.clone(), vec![Box::new(recorder)])
    }

    /// The events the packet walks read: a [`ConnRecorder`]'s when one is installed, else a
    /// [`WindowRecorder`]'s (the window it keeps), else everything the trace recorded.
    pub fn recorded_events(&self) -> &[podnet::trace::Event] {
        if let Some(c) = self.cluster.observer::<ConnRecorder>() {
            return c.events();
        }
        match self.cluster.observer::<WindowRecorder>() {
            Some(w) => w.events(),
            None => self.cluster.trace().events(),
        }
    }

    /// The tuples connection `r` (of a flow with IP protocol `proto`) carries anywhere: as
    /// sent, as translated by any node, both ways.
    pub fn connection_tuples(&self, r: &ConnRecord, proto: u8) -> BTreeSet<Tuple> {
        inspect::tuples_of(self, r, proto)
    }

    /// The tuples the DNS lookup of connection `r` carries (see [`Session::trace_dns`]).
    pub fn dns_tuples(&self, r: &ConnRecord) -> BTreeSet<Tuple> {
        inspect::dns_tuples(self, r)
    }

    /// `podnet trace --dns`: the walk of the DNS queries connection `conn` of flow `flow`
    /// waited for (on a node with several CPUs: each packet's CPU, and the insert clash that
    /// dropped one).
    pub fn trace_dns(&self, flow: &str, conn: usize) -> Result<String, Failure> {
        inspect::trace_dns(self, flow, conn)
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Result<NodeId, Failure> {
        self.cluster.node_by_name(name).ok_or_else(|| {
            let names: Vec<_> = self
                .cluster
                .nodes()
                .map(|(_, n)| n.name().to_string())
                .collect();
            Failure::input(format!("no node {name:?} (nodes: {})", names.join(", ")))
        })
    }

    /// The report of the run so far (`podnet run --json`).
    pub fn report(&self) -> Report {
        report::report(self)
    }

    /// [`Report::flows`] with only the connections `keep` keeps (every flow listed): cheap
    /// when it keeps few, as nothing is computed for the others.
    pub fn flows_where(&self, keep: impl Fn(&Kept) -> bool) -> Vec<Flow> {
        report::flows_where(self, keep)
    }

    /// Each node's part of [`Session::report`] alone (much cheaper with many connections).
    pub fn node_reports(&self) -> Vec<NodeReport> {
        report::node_reports(self)
    }

    /// The human summary `podnet run` prints.
    pub fn summary(&self, r: &Report) -> String {
        summary::of_report(self, r)
    }

    /// [`Session::summary`] of the report now, without building the report (whose line of
    /// every connection costs much more than the twenty the summary lists per flow).
    pub fn summary_now(&self) -> String {
        summary::now(self)
    }

    /// Each flow's failed `expect`.
    pub fn failed_expectations(&self, r: &Report) -> Vec<String> {
        report::failed_expectations(self, r)
    }

    /// `podnet trace`: every hop and hook of connection `conn` (0-based, in start order) of
    /// flow `flow`, headers before and after each rewrite.
    pub fn trace(&self, flow: &str, conn: usize) -> Result<String, Failure> {
        inspect::trace(self, flow, conn)
    }

    /// `podnet explain`: starts one HTTP connection from pod (or external host) `from` to `to`
    /// (`IP:PORT`, `SERVICE:PORT` or `POD:PORT`) now, runs it (at most `limit`), and prints
    /// its walk with every node's routing decision, rule and NAT, and the NetworkPolicy verdict.
    pub fn explain(&mut self, from: &str, to: &str, limit: Duration) -> Result<String, Failure> {
        let r = self.explain_start(from, to, limit)?;
        Ok(self.explain_text(&r, from, to))
    }

    /// The first half of [`Session::explain`]: starts the connection from `from` to `to` now
    /// and runs it (at most `limit`); returns its record.
    pub fn explain_start(
        &mut self,
        from: &str,
        to: &str,
        limit: Duration,
    ) -> Result<ConnRecord, Failure> {
        inspect::explain_start(self, from, to, "/", limit)
    }

    /// [`Session::explain_start`] with the HTTP request `GET path` (what an L7 policy judges).
    pub fn explain_start_path(
        &mut self,
        from: &str,
        to: &str,
        path: &str,
        limit: Duration,
    ) -> Result<ConnRecord, Failure> {
        inspect::explain_start(self, from, to, path, limit)
    }

    /// The second half of [`Session::explain`]: the walk of `r` (started by
    /// [`Session::explain_start`]) from the recorded events.
    pub fn explain_text(&self, r: &ConnRecord, from: &str, to: &str) -> String {
        inspect::explain_record(self, r, 6, &format!("explain {from} -> {to}"))
    }

    /// `podnet explain` for connection `conn` of flow `flow` as it ran: its walk with every
    /// node's routing decision, rule and NAT, and the NetworkPolicy verdict (changes nothing).
    pub fn explain_conn(&self, flow: &str, conn: usize) -> Result<String, Failure> {
        inspect::explain_conn(self, flow, conn)
    }

    /// `podnet tcpdump`: the frames of `iface` (`any`, `HOST/IFACE`, or a host name for all
    /// its interfaces) matching the pcap-filter `expr`, one line each.
    pub fn tcpdump(&self, iface: &str, expr: &str) -> Result<String, Failure> {
        inspect::tcpdump(self, iface, expr)
    }

    /// `podnet iptables-save`: node `node`'s rules (`nft list ruleset` in nftables mode).
    pub fn rules(&self, node: &str) -> Result<String, Failure> {
        inspect::rules(self, node, false)
    }

    /// `podnet iptables-save --counters`: node `node`'s rules with the packet and byte
    /// counters the packets so far left on them (`iptables-save -c`; in nftables mode `nft
    /// list ruleset` as it would read with a `counter` in every rule). See
    /// `podnet::kube_proxy::KubeProxy::rule_counters`.
    pub fn rules_with_counters(&self, node: &str) -> Result<String, Failure> {
        inspect::rules(self, node, true)
    }

    /// `podnet check`: the resolved cluster (nodes, pods, Services and endpoints, flows).
    pub fn check(&self) -> String {
        inspect::check(self)
    }

    /// Node `node`'s conntrack table now, in `conntrack -L` format.
    /// In eBPF mode, the CT maps as `cilium bpf ct list global` prints them.
    pub fn conntrack_text(&self, node: &str) -> Result<String, Failure> {
        if let Some(b) = self.ebpf(node)? {
            return Ok(b.ct_list(self.cluster.now()));
        }
        Ok(self.conntrack(node)?.list(self.cluster.now()))
    }

    /// The lines of [`Session::conntrack_text`] whose entries `pick` picks, given each
    /// entry's original and reply tuples as printed (in eBPF mode a CT map key and its
    /// inverse); only those are formatted.
    pub fn conntrack_picked(
        &self,
        node: &str,
        pick: impl Fn(&Tuple, &Tuple) -> bool,
    ) -> Result<String, Failure> {
        let now = self.cluster.now();
        if let Some(b) = self.ebpf(node)? {
            return Ok(b.ct_list_picked(now, |t| pick(t, &t.invert())));
        }
        Ok(self.conntrack(node)?.list_picked(now, pick))
    }

    /// How many lines [`Session::conntrack_text`] has, and the first `limit` of them (only
    /// those are formatted: cheap with a full table).
    pub fn conntrack_head(&self, node: &str, limit: usize) -> Result<(usize, String), Failure> {
        let now = self.cluster.now();
        if let Some(b) = self.ebpf(node)? {
            return Ok(b.ct_list_head(now, limit));
        }
        Ok(self.conntrack(node)?.list_head(now, limit))
    }

    /// Node `node`'s eBPF datapath (`None` unless `proxy: ebpf`).
    pub fn ebpf(&self, node: &str) -> Result<Option<&podnet::ebpf::EbpfDatapath>, Failure> {
        let id = self.node(node)?;
        Ok(self.cluster.dataplane(id).and_then(|d| d.ebpf()))
    }

    /// Node `node`'s conntrack table.
    pub fn conntrack(&self, node: &str) -> Result<&podnet::conntrack::Conntrack, Failure> {
        let id = self.node(node)?;
        self.cluster
            .conntrack(id)
            .ok_or_else(|| Failure::input("this cluster runs no conntrack (proxy: none)"))
    }

    /// The pcap of interface `iface` (`HOST/IFACE`, Ethernet), or of `any` (Linux cooked).
    pub fn pcap(&self, iface: &str) -> Result<Vec<u8>, Failure> {
        inspect::pcap(self, iface)
    }

    /// Every interface name (`node-a/eth0`, `client/eth0`, ...), in registration order.
    pub fn interfaces(&self) -> Vec<String> {
        self.cluster
            .trace()
            .ifaces()
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

fn v4(a: IpAddress) -> Ipv4Address {
    podnet::v4(a)
}

/// A connection's tuple as its client sent it.
/// The tuple the client's packets left with: to the backend when the socket-level load
/// balancer (eBPF mode) translated `connect()`, else to what the application dialled.
fn client_tuple(r: &ConnRecord, proto: u8) -> Tuple {
    let remote = r.peer.unwrap_or(r.remote);
    Tuple {
        src: v4(r.local.addr),
        dst: v4(remote.addr),
        sport: r.local.port,
        dport: remote.port,
        proto,
    }
}

/// `0.412ms`, `1.532s` (the report's duration format).
pub fn fmt_duration(d: Duration) -> String {
    let us = d.total_micros();
    if us < 1_000_000 {
        format!("{}.{:03}ms", us / 1000, us % 1000)
    } else {
        format!("{}.{:03}s", us / 1_000_000, (us % 1_000_000) / 1000)
    }
}

/// Virtual time as a duration since zero.
pub fn fmt_instant(t: Instant) -> String {
    fmt_duration(t - Instant::ZERO)
}
