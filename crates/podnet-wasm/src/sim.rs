//! The module's logic in plain Rust (tested natively): a [`SimCore`] wraps a
//! [`podnet_scenario::session::Session`] and turns its state into the [`crate::api`] values.

use std::any::Any;
use std::collections::BTreeMap;

use podnet::trace::{EventKind, Observer, Snapshot, TraceConfig};
use podnet::{Duration, Instant};
use podnet_scenario::diff::{diff, Diff};
use podnet_scenario::matrix::MatrixOptions;
use podnet_scenario::session::{
    packet_tuple, DropRecorder, Failure, Flow, NodeReport, Report, Session, TcpdumpWriter,
    WindowRecorder,
};
use podnet_scenario::Scenario;
use smoltcp::wire::Ipv4Address;

use crate::api::*;
use crate::conn_index::ConnIndex;

mod flights;
use crate::packet::packet_info;

/// The default limit of [`SimCore::run_to_end`], as `podnet run --until`'s default.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(30);

/// The file name errors give the scenario text unless told otherwise.
pub const DEFAULT_FILE: &str = "scenario.yaml";

/// How many trace events a simulation keeps at most by default (the oldest go first): about
/// 60 MiB of wasm memory with three-endpoints' small frames.
pub const DEFAULT_WINDOW_EVENTS: usize = 100_000;

/// The most drops [`SimCore::flights`] returns (the latest).
pub const MAX_DROPS: usize = 30;

/// A scenario being simulated.
///
/// The engine's own recorder is off: a [`DropRecorder`] keeps the report's drops, and while
/// recording is on a [`WindowRecorder`] keeps the latest `window` events (numbered from the
/// moment recording was turned on). With recording off a run costs no memory and little time,
/// which is how the page reaches a moment before the events it keeps: a new simulation run
/// there unrecorded, then recording.
pub struct SimCore {
    session: Session,
    /// Packet tuples to the connections that carried them (brought up to date when events
    /// are read).
    conns: ConnIndex,
    /// The report of the moment, once asked for (let go when the simulation moves).
    report: Option<Report>,
    snaplen: usize,
    window: usize,
    /// The links' ends to each other (interface numbers), with the number of interfaces
    /// they were built for.
    peers: Option<(usize, BTreeMap<u32, u32>)>,
}

/// Microseconds as a JavaScript number.
fn us(t: Instant) -> f64 {
    t.total_micros() as f64
}

/// A JavaScript number of microseconds as an instant (not a number, negative: zero).
pub fn instant(us: f64) -> Instant {
    if us.is_nan() || us <= 0.0 {
        Instant::ZERO
    } else {
        // `as` saturates; a century of virtual time is far past any run.
        Instant::from_micros((us as i64).min(100 * 365 * 86_400 * 1_000_000))
    }
}

impl SimCore {
    /// Loads and builds `yaml` (named `file` in errors), with `seed` overriding the Cluster's;
    /// records from the start unless `opts.record` is false.
    pub fn new(yaml: &str, opts: &SimOptions) -> Result<SimCore, Failure> {
        let file = opts.file_name.as_deref().unwrap_or(DEFAULT_FILE);
        let loaded = podnet_scenario::load(&[(file, yaml)])?;
        let mut scenario = loaded.scenario;
        if let Some(seed) = opts.seed {
            scenario.config.seed = seed;
        }
        let snaplen = scenario.config.trace.snaplen;
        scenario.config.trace = TraceConfig::off();
        let drops: Box<dyn Observer> = Box::new(DropRecorder::default());
        let mut session = Session::new_observed(scenario, vec![drops])?;
        session.check_faults()?;
        let mut core = SimCore {
            session,
            conns: ConnIndex::default(),
            report: None,
            snaplen,
            window: opts
                .window_events
                .map_or(DEFAULT_WINDOW_EVENTS, |n| n as usize),
            peers: None,
        };
        core.set_recording(opts.record.unwrap_or(true));
        Ok(core)
    }

    /// Turns recording on (from now, numbering events from 0 again, when it was off) or off
    /// (the kept events are let go, and the packet-to-connection index with them: a parked
    /// simulation holds only its world).
    pub fn set_recording(&mut self, on: bool) {
        if on == self.recording() {
            return;
        }
        if on {
            let now = self.session.now();
            let w = WindowRecorder::new(now, self.snaplen, self.window);
            self.session.cluster.add_observer(Box::new(w));
        } else {
            self.conns = ConnIndex::default();
            for o in self.session.cluster.take_observers() {
                let any: &dyn Any = &*o;
                if !any.is::<WindowRecorder>() {
                    self.session.cluster.add_observer(o);
                }
            }
        }
    }

    /// Whether events are being recorded.
    pub fn recording(&self) -> bool {
        self.window().is_some()
    }

    /// When recording was turned on, µs (`None` while off).
    pub fn recording_since(&self) -> Option<f64> {
        self.window().map(|w| us(w.since()))
    }

    fn window(&self) -> Option<&WindowRecorder> {
        self.session.cluster.observer::<WindowRecorder>()
    }

    /// The kept events (empty while not recording).
    fn kept(&self) -> &[podnet::trace::Event] {
        self.window().map_or(&[], |w| w.events())
    }

    /// Moves the events of the last run into the window (and lets the oldest go).
    fn settle(&mut self) {
        self.report = None;
        if let Some(w) = self.session.cluster.observer_mut::<WindowRecorder>() {
            w.settle();
        }
    }

    /// The number of the first event still kept.
    pub fn event_base(&self) -> f64 {
        self.window().map_or(0.0, |w| w.base() as f64)
    }

    /// Frames delivered so far (every interface that took a frame in counts it once).
    pub fn frames_delivered(&self) -> f64 {
        self.session.cluster.frames_delivered() as f64
    }

    /// Starts a new span of deliveries (see [`SimCore::deliveries_since_mark`]).
    pub fn mark_deliveries(&mut self) {
        self.session.cluster.mark_deliveries();
    }

    /// When (µs) the first and the last frame since [`SimCore::mark_deliveries`] were
    /// delivered, if any was.
    pub fn deliveries_since_mark(&self) -> Option<[f64; 2]> {
        self.session
            .cluster
            .deliveries_since_mark()
            .map(|(first, last)| [us(first), us(last)])
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The scenario's name.
    pub fn name(&self) -> String {
        self.session.scenario.name.clone()
    }

    /// Virtual time now, µs.
    pub fn now(&self) -> f64 {
        us(self.session.now())
    }

    /// When the next engine event or fault change is due, µs.
    pub fn next_event_time(&self) -> Option<f64> {
        self.session.next_event_time().map(us)
    }

    /// One engine event (faults at their times); false when nothing is left.
    pub fn step(&mut self) -> Result<bool, Failure> {
        let r = self.session.step();
        self.settle();
        r
    }

    /// Runs to `t` µs.
    pub fn run_until(&mut self, t: f64) -> Result<(), Failure> {
        let r = self.session.run_until(instant(t));
        self.settle();
        r
    }

    /// Runs like `podnet run` for at most `limit` µs more; true when every client finished.
    pub fn run_to_end(&mut self, limit: Option<f64>) -> Result<bool, Failure> {
        let limit = limit.map_or(DEFAULT_LIMIT, |l| instant(l) - Instant::ZERO);
        let r = self.session.run(limit);
        self.settle();
        r?;
        Ok(self.session.finished)
    }

    /// Whether every client has finished.
    pub fn finished(&self) -> bool {
        self.session.cluster.clients_done()
    }

    /// The number one past the last event kept (events are numbered from 0 at
    /// [`SimCore::recording_since`]; 0 while not recording).
    pub fn event_count(&self) -> f64 {
        self.window().map_or(0.0, |w| w.end() as f64)
    }

    /// The report, as `podnet run --json` (built once per moment).
    pub fn report(&mut self) -> &Report {
        self.report.get_or_insert_with(|| self.session.report())
    }

    /// The human summary of `podnet run` (from the report when it was built for this moment,
    /// else without building it: much cheaper with many connections).
    pub fn summary(&self) -> String {
        match &self.report {
            Some(r) => self.session.summary(r),
            None => self.session.summary_now(),
        }
    }

    /// Each node's part of the report alone (frames, conntrack, Service lookup, eBPF maps):
    /// much cheaper than the whole report with many connections.
    pub fn node_reports(&self) -> Vec<NodeReport> {
        self.session.node_reports()
    }

    /// The report's flows with only the connections that ended with `outcome` (when given)
    /// and got HTTP status `http_status` (when given); flows with none left out.
    pub fn connections_with(
        &mut self,
        outcome: Option<&str>,
        http_status: Option<u16>,
    ) -> Vec<Flow> {
        self.session
            .flows_where(|c| {
                outcome.is_none_or(|o| c.outcome == o)
                    && http_status.is_none_or(|h| c.http_status == Some(h))
            })
            .into_iter()
            .filter(|f| !f.connections.is_empty())
            .collect()
    }

    /// The number of the first kept event later than `t` µs (`event_count` when none is;
    /// the first kept one's when every kept event is later).
    pub fn count_at(&self, t: f64) -> f64 {
        let kept = self.kept();
        let t = instant(t);
        self.event_base() + kept.partition_point(|e| e.time <= t) as f64
    }

    /// `podnet trace --flow F --conn N`.
    pub fn trace_text(&self, flow: &str, conn: u32) -> Result<String, Failure> {
        self.session.trace(flow, conn as usize)
    }

    /// `podnet explain` of connection `conn` of `flow`.
    pub fn explain(&self, flow: &str, conn: u32) -> Result<String, Failure> {
        self.session.explain_conn(flow, conn as usize)
    }

    /// Node `node`'s conntrack table now, in `conntrack -L` format.
    pub fn conntrack_text(&self, node: &str) -> Result<String, Failure> {
        self.session.conntrack_text(node)
    }

    /// How many entries node `node`'s conntrack table lists now, the first `limit` lines of
    /// `conntrack -L`, and the lines of the entries whose original or reply tuple is one of
    /// `selected` (`SRC:SPORT>DST:DPORT`); only those lines are formatted.
    pub fn conntrack_head(
        &self,
        node: &str,
        limit: usize,
        selected: &[String],
    ) -> Result<ConntrackHead, Failure> {
        let (count, text) = self.session.conntrack_head(node, limit)?;
        let lines = |t: &str| t.lines().map(str::to_string).collect();
        let wanted: std::collections::BTreeSet<_> =
            selected.iter().filter_map(|s| tuple_key(s)).collect();
        let picked = if wanted.is_empty() {
            String::new()
        } else {
            let key = |t: &podnet::conntrack::Tuple| (t.src, t.sport, t.dst, t.dport);
            self.session.conntrack_picked(node, |o, r| {
                wanted.contains(&key(o)) || wanted.contains(&key(r))
            })?
        };
        Ok(ConntrackHead {
            count: count as u32,
            lines: lines(&text),
            selected: lines(&picked),
        })
    }

    /// Node `node`'s conntrack entries now.
    pub fn conntrack(&self, node: &str) -> Result<Vec<ConntrackEntry>, Failure> {
        Ok(self
            .session
            .conntrack_text(node)?
            .lines()
            .map(parse_conntrack_line)
            .collect())
    }

    /// Node `node`'s rules: `iptables-save`, or `nft list ruleset`.
    pub fn rules(&self, node: &str) -> Result<String, Failure> {
        self.session.rules(node)
    }

    /// tcpdump lines of `iface` matching `filter`, of the kept events up to `until` µs (all
    /// of them without).
    pub fn tcpdump(
        &self,
        iface: &str,
        filter: &str,
        until: Option<f64>,
    ) -> Result<Vec<String>, Failure> {
        let mut w = TcpdumpWriter::new(iface, filter, Vec::new())?;
        let ifaces = self.session.cluster.trace().iface_table();
        w.check_iface(ifaces)?;
        for e in self.kept_until(until) {
            w.observe(ifaces, e.time, e.view());
        }
        let out = w.finish()?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// The last `last` lines of [`SimCore::tcpdump`], and how many it has: only those are
    /// formatted (the frames before them are only learnt, for their relative sequence
    /// numbers).
    pub fn tcpdump_tail(
        &self,
        iface: &str,
        filter: &str,
        until: Option<f64>,
        last: usize,
    ) -> Result<TcpdumpTail, Failure> {
        let mut w = TcpdumpWriter::new(iface, filter, Vec::new())?;
        let ifaces = self.session.cluster.trace().iface_table();
        w.check_iface(ifaces)?;
        let kept = self.kept_until(until);
        let count = kept.iter().filter(|e| w.selects(ifaces, e.view())).count();
        let mut skip = count.saturating_sub(last);
        for e in kept {
            if skip == 0 {
                w.observe(ifaces, e.time, e.view());
            } else if w.skip(ifaces, e.view()) {
                skip -= 1;
            }
        }
        let out = w.finish()?;
        Ok(TcpdumpTail {
            count: count as u32,
            lines: String::from_utf8_lossy(&out)
                .lines()
                .map(str::to_string)
                .collect(),
        })
    }

    /// The kept events up to `until` µs.
    fn kept_until(&self, until: Option<f64>) -> &[podnet::trace::Event] {
        let kept = self.kept();
        match until {
            Some(t) => {
                let t = instant(t);
                &kept[..kept.partition_point(|e| e.time <= t)]
            }
            None => kept,
        }
    }

    /// The pcap of `iface` (`any`: Linux cooked capture of every interface) of the kept
    /// events up to `until` µs.
    pub fn pcap(&self, iface: &str, until: Option<f64>) -> Result<Vec<u8>, Failure> {
        let trace = self.session.cluster.trace();
        let id = if iface == "any" {
            None
        } else {
            match trace.ifaces().find(|(_, n)| *n == iface) {
                Some((id, _)) => Some(id),
                None => {
                    let names: Vec<&str> = trace.ifaces().map(|(_, n)| n).collect();
                    return Err(Failure::input(format!(
                        "no interface {iface:?} (try any or one of: {})",
                        names.join(", ")
                    )));
                }
            }
        };
        let mut p = match id {
            None => podnet::pcap::PcapBuffer::linux_cooked(),
            Some(_) => podnet::pcap::PcapBuffer::ethernet(),
        };
        for e in self.kept_until(until) {
            let (i, frame, out) = match &e.kind {
                EventKind::Sent { iface, frame } => (*iface, frame, true),
                EventKind::Received { iface, frame } => (*iface, frame, false),
                _ => continue,
            };
            match id {
                None => p.record_cooked(e.time, out, &frame.bytes),
                Some(id) if id == i => p.record(e.time, &frame.bytes),
                Some(_) => {}
            }
        }
        Ok(p.into_bytes())
    }

    /// Every interface's name.
    pub fn interfaces(&self) -> Vec<String> {
        self.session.interfaces()
    }

    /// Kept events numbered `[from, to)` (clamped to those kept).
    pub fn events(&mut self, from: f64, to: Option<f64>) -> Vec<SimEvent> {
        self.events_with(from, to, true)
    }

    /// [`SimCore::events`], with each packet's connection only when `conns` (finding them
    /// first indexes every connection finished so far: with thousands, much more than the
    /// events cost).
    pub fn events_with(&mut self, from: f64, to: Option<f64>, conns: bool) -> Vec<SimEvent> {
        let base = self.event_base() as u64;
        let n = self.kept().len();
        let idx = |x: f64| {
            if x.is_nan() || x <= base as f64 {
                0
            } else {
                ((x as u64 - base) as usize).min(n)
            }
        };
        let (from, to) = (idx(from), to.map_or(n, idx));
        if from >= to {
            return Vec::new();
        }
        if conns {
            self.index_connections();
        }
        (from..to).map(|i| self.event(i, conns)).collect()
    }

    /// Kept event `i` (counted from the first kept), as the page reads it; with its
    /// connection when `conn` (the connection index must then be up to date).
    fn event(&self, i: usize, conn: bool) -> SimEvent {
        let e = &self.kept()[i];
        let trace = self.session.cluster.trace();
        let (kind, iface, packet, ip) = match &e.kind {
            EventKind::Sent { iface, frame } => ("sent", iface, frame, false),
            EventKind::Received { iface, frame } => ("received", iface, frame, false),
            EventKind::Dropped { iface, frame, .. } => ("dropped", iface, frame, false),
            EventKind::Hook { iface, before, .. } => ("hook", iface, before, true),
        };
        let name = trace.name(*iface);
        let mut ev = SimEvent {
            index: self.event_base() + i as f64,
            time: us(e.time),
            kind,
            iface: name.to_string(),
            host: name.split('/').next().unwrap_or(name).to_string(),
            hook: None,
            verdict: None,
            reason: None,
            packet: packet_info(&packet.bytes, ip),
            after: None,
            notes: Vec::new(),
            conn: if conn {
                self.conn_of(packet, ip, e.time)
            } else {
                None
            },
        };
        match &e.kind {
            EventKind::Dropped { reason, .. } => ev.reason = Some(reason.to_string()),
            EventKind::Hook {
                hook,
                verdict,
                after,
                notes,
                ..
            } => {
                ev.hook = Some(hook.chain());
                let (v, reason) = match verdict {
                    podnet::netfilter::Verdict::Accept => ("accept", None),
                    podnet::netfilter::Verdict::Drop(r) => ("drop", Some(r.to_string())),
                    podnet::netfilter::Verdict::Reject(_, r) => ("reject", Some(r.to_string())),
                };
                ev.verdict = Some(v);
                ev.reason = reason;
                ev.after = after.as_ref().map(|a| packet_info(&a.bytes, true));
                ev.notes = notes.clone();
            }
            _ => {}
        }
        ev
    }

    /// Brings the packet-tuple-to-connection index up to date (cheap when nothing finished).
    fn index_connections(&mut self) {
        self.conns.update(&self.session);
    }

    /// The connection a packet at `time` belongs to: of those whose packets carry its tuple,
    /// the last one started by then.
    fn conn_of(&self, snap: &Snapshot, ip: bool, time: Instant) -> Option<ConnRef> {
        let bytes = if ip {
            &snap.bytes[..]
        } else {
            snap.bytes.get(14..)?
        };
        let (fi, id) = self.conns.conn_of(&packet_tuple(bytes)?, time)?;
        Some(ConnRef {
            flow: self.session.index.flows.get(fi)?.name.clone(),
            id,
        })
    }

    /// What the network is made of, now.
    pub fn topology(&self) -> Topology {
        crate::topology::topology(&self.session)
    }
}

/// `ADDR:PORT` -> (address, port).
fn addr_port(s: &str) -> (String, u16) {
    match s.rsplit_once(':') {
        Some((a, p)) => (a.to_string(), p.parse().unwrap_or(0)),
        None => (s.to_string(), 0),
    }
}

/// A line of eBPF mode's CT map (`cilium bpf ct list global`:
/// `TCP OUT 10.244.0.5:41158 -> 10.244.1.20:80 expires=9 ... Flags=[... SeenReply]`) as an
/// entry: `state` holds the flags, `assured` is `SeenReply`, `reply` the inverted tuple.
fn parse_cilium_ct_line(line: &str) -> ConntrackEntry {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (src, sport) = addr_port(words.get(2).copied().unwrap_or_default());
    let (dst, dport) = addr_port(words.get(4).copied().unwrap_or_default());
    let flags = line
        .split_once("Flags=[")
        .and_then(|(_, f)| f.split_once(']'))
        .map(|(f, _)| f.to_string());
    let seen_reply = flags
        .as_deref()
        .is_some_and(|f| f.split(' ').any(|w| w == "SeenReply"));
    ConntrackEntry {
        proto: words
            .first()
            .map_or_else(String::new, |w| w.to_ascii_lowercase()),
        state: flags,
        timeout: words
            .iter()
            .find_map(|w| w.strip_prefix("expires="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        assured: seen_reply,
        unreplied: !seen_reply,
        orig: CtTuple {
            src: src.clone(),
            dst: dst.clone(),
            sport,
            dport,
        },
        reply: CtTuple {
            src: dst,
            dst: src,
            sport: dport,
            dport: sport,
        },
        text: line.to_string(),
    }
}

/// `SRC:SPORT>DST:DPORT` as addresses and ports; `None` for anything else.
fn tuple_key(s: &str) -> Option<(Ipv4Address, u16, Ipv4Address, u16)> {
    let (src, dst) = s.split_once('>')?;
    let end = |e: &str| -> Option<(Ipv4Address, u16)> {
        let (ip, port) = e.rsplit_once(':')?;
        Some((ip.parse().ok()?, port.parse().ok()?))
    };
    let ((a, p), (b, q)) = (end(src)?, end(dst)?);
    Some((a, p, b, q))
}

/// A `conntrack -L` line (or, in eBPF mode, a CT map line) as an entry.
pub fn parse_conntrack_line(line: &str) -> ConntrackEntry {
    if matches!(line.split_whitespace().nth(1), Some("OUT" | "IN")) {
        return parse_cilium_ct_line(line);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut e = ConntrackEntry {
        proto: words.first().map_or_else(String::new, |w| w.to_string()),
        state: None,
        timeout: words.get(2).and_then(|w| w.parse().ok()).unwrap_or(0),
        assured: false,
        unreplied: false,
        orig: CtTuple::default(),
        reply: CtTuple::default(),
        text: line.to_string(),
    };
    let mut dir = 0;
    let mut seen_src = 0;
    for (i, w) in words.iter().enumerate().skip(3) {
        match w.split_once('=') {
            None if i == 3 => e.state = Some(w.to_string()),
            None if *w == "[ASSURED]" => e.assured = true,
            None if *w == "[UNREPLIED]" => e.unreplied = true,
            None => {}
            Some((k, v)) => {
                if k == "src" {
                    seen_src += 1;
                    dir = seen_src;
                }
                let t = match dir {
                    1 => &mut e.orig,
                    2 => &mut e.reply,
                    _ => continue,
                };
                match k {
                    "src" => t.src = v.to_string(),
                    "dst" => t.dst = v.to_string(),
                    "sport" | "id" => {
                        t.sport = v.parse().unwrap_or(0);
                        if k == "id" {
                            t.dport = t.sport;
                        }
                    }
                    "dport" => t.dport = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
    }
    e
}

/// `whatIf(before, after)`: `podnet diff` of two texts (each named `file` in errors) with
/// their Traffic: the probes of both worlds (the matrix's defaults) and their connections,
/// each world run with the before text's seed, and what changed.
pub fn what_if(before: &str, after: &str, file: &str) -> Result<Diff, Failure> {
    let before = podnet_scenario::load(&[(file, before)])?.scenario;
    let mut after = podnet_scenario::load(&[(file, after)])?.scenario;
    // The same seed on both sides (as `podnet diff --seed`): only the edit differs.
    after.config.seed = before.config.seed;
    diff(
        &before,
        &after,
        &MatrixOptions::default(),
        true,
        DEFAULT_LIMIT,
    )
}

/// `check(yaml)`: the load or build error (if any) after the warnings; never fails.
pub fn check(yaml: &str, file: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let loaded = match podnet_scenario::load(&[(file, yaml)]) {
        Ok(l) => l,
        Err(e) => return vec![diagnostic("error", file, &e)],
    };
    out.extend(
        loaded
            .warnings
            .iter()
            .map(|w| diagnostic("warning", file, w)),
    );
    let sc: Scenario = loaded.scenario;
    if let Err(e) = podnet_scenario::check_faults(&sc) {
        out.push(diagnostic("error", file, &e));
        return out;
    }
    match podnet_scenario::build(&sc) {
        Ok((_, index)) => out.extend(
            index
                .warnings
                .iter()
                .map(|w| diagnostic("warning", file, w)),
        ),
        Err(e) => out.push(diagnostic("error", file, &e)),
    }
    out
}

/// A positioned error or warning as a diagnostic.
fn diagnostic(severity: &'static str, file: &str, e: &podnet_scenario::Error) -> Diagnostic {
    let pos = e.loc.as_ref().map(|l| l.pos);
    Diagnostic {
        severity,
        file: e
            .loc
            .as_ref()
            .map_or_else(|| file.to_string(), |l| l.file.clone()),
        line: pos.filter(|p| p.line > 0).map(|p| p.line),
        column: pos.filter(|p| p.col > 0).map(|p| p.col),
        message: e.message.clone(),
        text: e.to_string(),
    }
}
