//! Observability: a structured event for every frame sent, delivered and dropped (where, when,
//! why) and for every netfilter hook a packet crosses, plus per-interface pcap capture.
//!
//! Interfaces are registered here once (`node-a/eth0`, `client/eth0`, ...) and referred to by
//! [`IfaceId`]. Each event is handed, as it happens, to whoever asked for it:
//!
//! * the built-in [`Recorder`], which keeps [`Event`]s in memory ([`Trace::events`]) as
//!   [`TraceConfig`] says (frames, hooks, snapshot length);
//! * each [`Observer`] installed with [`crate::Cluster::add_observer`], which sees a borrowed
//!   [`EventRef`] (no copy is made unless it keeps one): a tcpdump line writer, a pcap file
//!   writer, a filter keeping one connection's packets.
//!
//! When neither wants frames (or hooks), no event is built and no snapshot is taken: recording
//! costs nothing when off. Drops and delivered frames are always counted
//! ([`Trace::drop_count`], [`Trace::frames_delivered`]).

mod record;

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt::Write;

use smoltcp::time::Instant;

use crate::cluster::NodeId;
use crate::link::Frame;
use crate::netfilter::{Hook, Notes, Verdict};
use crate::pcap::PcapBuffer;
use crate::tcpdump::{self, Direction};

pub use record::{Event, EventKind, Recorder, Snapshot};

/// An interface anywhere in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfaceId(pub u32);

/// What to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceConfig {
    /// Record frame events (sent, received, dropped).
    pub frames: bool,
    /// Record a hook event for every netfilter hook a packet crosses.
    pub hooks: bool,
    /// Bytes of each frame kept in events (enough for headers; tcpdump's `-s`).
    pub snaplen: usize,
    /// Capture every interface to an in-memory pcap.
    pub pcap: bool,
}

impl TraceConfig {
    /// Everything: frame and hook events with whole frames (snaplen 65535), and pcaps.
    pub fn full() -> Self {
        TraceConfig {
            frames: true,
            hooks: true,
            snaplen: 65535,
            pcap: true,
        }
    }

    /// Frame events only, each keeping the first `snaplen` bytes of its frame (a test or a
    /// tool that reads headers).
    pub fn frames(snaplen: usize) -> Self {
        TraceConfig {
            frames: true,
            hooks: false,
            snaplen,
            pcap: false,
        }
    }

    /// Nothing (benchmarks, large runs).
    pub fn off() -> Self {
        TraceConfig {
            frames: false,
            hooks: false,
            snaplen: 0,
            pcap: false,
        }
    }
}

impl Default for TraceConfig {
    /// Frame and hook events, no pcaps.
    fn default() -> Self {
        TraceConfig {
            pcap: false,
            ..TraceConfig::full()
        }
    }
}

/// A TCP segment's addressing as received somewhere ([`Trace::tcp_received_on`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSeen {
    /// Source address.
    pub src: smoltcp::wire::Ipv4Address,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: smoltcp::wire::Ipv4Address,
    /// Destination port.
    pub dport: u16,
    /// SYN set.
    pub syn: bool,
}

/// One event as it happens, borrowed from the engine (frames whole, not cut to a snapshot
/// length; from [`Trace::replay`], as recorded).
#[derive(Clone, Copy, Debug)]
pub enum EventRef<'a> {
    /// A frame left an interface.
    Sent {
        /// Where.
        iface: IfaceId,
        /// The Ethernet frame.
        frame: &'a [u8],
    },
    /// A frame arrived at an interface (a delivered frame, see [`Trace::frames_delivered`]).
    Received {
        /// Where.
        iface: IfaceId,
        /// The Ethernet frame.
        frame: &'a [u8],
    },
    /// A frame or packet was discarded.
    Dropped {
        /// The interface it was on (sending side for link drops, receiving side otherwise).
        iface: IfaceId,
        /// Why.
        reason: &'a Cow<'static, str>,
        /// The Ethernet frame.
        frame: &'a [u8],
    },
    /// An IPv4 packet crossed a netfilter hook of a node.
    Hook {
        /// The interface it arrived on or leaves by.
        iface: IfaceId,
        /// The hook.
        hook: Hook,
        /// The verdict of the modules at this hook.
        verdict: &'a Verdict,
        /// The IP packet before the modules ran.
        before: &'a [u8],
        /// The IP packet after, when a module changed it.
        after: Option<&'a [u8]>,
        /// What the modules say they did (rule matched, NAT, conntrack entry).
        notes: &'a Notes,
    },
}

impl EventRef<'_> {
    /// The interface the event happened on.
    pub fn iface(&self) -> IfaceId {
        match *self {
            EventRef::Sent { iface, .. }
            | EventRef::Received { iface, .. }
            | EventRef::Dropped { iface, .. }
            | EventRef::Hook { iface, .. } => iface,
        }
    }
}

/// Something that watches a cluster's events as they happen ([`crate::Cluster::add_observer`]).
///
/// [`Observer::wants_frames`], [`Observer::wants_passing_frames`] and
/// [`Observer::wants_hooks`] are asked once, when the observer is installed: the engine
/// skips the work of events nobody wants (hook events need a copy of each packet before the
/// modules run, and notes on what they did).
pub trait Observer: Any {
    /// Whether to be given frame events (sent, received, dropped). Default: yes.
    fn wants_frames(&self) -> bool {
        true
    }

    /// With [`Observer::wants_frames`], whether to be given the frames sent and received too,
    /// not only the drops. Default: yes. An observer of drops alone says no: a bulk transfer
    /// then makes no call to it per frame and hop.
    fn wants_passing_frames(&self) -> bool {
        true
    }

    /// Whether to be given hook events. Default: no.
    fn wants_hooks(&self) -> bool {
        false
    }

    /// One event at virtual time `time`; `ifaces` names the interfaces.
    fn observe(&mut self, ifaces: &Ifaces, time: Instant, event: EventRef<'_>);
}

/// What `observer` asked for: frame events (drops at least), the frames sent and received
/// too, hook events.
fn wants(observer: &dyn Observer) -> (bool, bool, bool) {
    let frames = observer.wants_frames();
    (
        frames,
        frames && observer.wants_passing_frames(),
        observer.wants_hooks(),
    )
}

/// The registered interfaces: names, and the node each belongs to.
#[derive(Clone, Debug, Default)]
pub struct Ifaces {
    names: Vec<String>,
    nodes: Vec<Option<NodeId>>,
}

impl Ifaces {
    /// An interface's name (`?` for an unknown id).
    pub fn name(&self, iface: IfaceId) -> &str {
        self.names.get(iface.0 as usize).map_or("?", |s| s.as_str())
    }

    /// The node an interface belongs to: its own interfaces (`eth0`, `cni0`, `flannel.1`) and
    /// the host ends of its pods' veths; `None` for pod interfaces and underlay switch ports.
    pub fn node(&self, iface: IfaceId) -> Option<NodeId> {
        self.nodes.get(iface.0 as usize).copied().flatten()
    }

    /// Every interface, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (IfaceId, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (IfaceId(i as u32), n.as_str()))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// An installed observer and what it asked for.
struct Installed {
    observer: Box<dyn Observer>,
    /// Drops (and, with `passing`, frames sent and received).
    frames: bool,
    passing: bool,
    hooks: bool,
}

/// The recorder shared by every part of a cluster: interface names, counters, the in-memory
/// [`Recorder`] and pcaps of [`TraceConfig`], and the installed [`Observer`]s.
#[derive(Default)]
pub struct Trace {
    config: TraceConfig,
    ifaces: Ifaces,
    recorder: Recorder,
    pcaps: Vec<Option<PcapBuffer>>,
    observers: Vec<Installed>,
    /// Whether any observer wants frames (drops at least), frames sent and received, hooks.
    observer_frames: bool,
    observer_passing: bool,
    observer_hooks: bool,
    drops: u64,
    /// Frames received, per interface.
    delivered: Vec<u64>,
    /// The first and the last delivery since [`Trace::mark_deliveries`].
    since_mark: Option<(Instant, Instant)>,
}

impl core::fmt::Debug for Trace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Trace")
            .field("config", &self.config)
            .field("ifaces", &self.ifaces)
            .field("events", &self.recorder.events().len())
            .field("observers", &self.observers.len())
            .field("drops", &self.drops)
            .finish_non_exhaustive()
    }
}

impl Trace {
    /// A recorder.
    pub fn new(config: TraceConfig) -> Self {
        Trace {
            recorder: Recorder::new(&config),
            config,
            ..Trace::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TraceConfig {
        &self.config
    }

    /// Registers an interface by its display name (`node-a/eth0`) that belongs to no node.
    pub fn register(&mut self, name: String) -> IfaceId {
        self.register_on(name, None)
    }

    /// Registers an interface of `node` (or of none), counted in its
    /// [`Trace::frames_delivered_to`].
    pub fn register_on(&mut self, name: String, node: Option<NodeId>) -> IfaceId {
        self.ifaces.names.push(name);
        self.ifaces.nodes.push(node);
        self.pcaps.push(self.config.pcap.then(PcapBuffer::ethernet));
        self.delivered.push(0);
        IfaceId(self.ifaces.names.len() as u32 - 1)
    }

    /// An interface's name.
    pub fn name(&self, iface: IfaceId) -> &str {
        self.ifaces.name(iface)
    }

    /// Every registered interface, in registration order.
    pub fn ifaces(&self) -> impl Iterator<Item = (IfaceId, &str)> {
        self.ifaces.iter()
    }

    /// The registered interfaces.
    pub fn iface_table(&self) -> &Ifaces {
        &self.ifaces
    }

    /// Installs `observer` after those installed before: from now on it is given every event
    /// it wants, as it happens.
    pub fn add_observer(&mut self, observer: Box<dyn Observer>) {
        let (frames, passing, hooks) = wants(&*observer);
        self.observer_frames |= frames;
        self.observer_passing |= passing;
        self.observer_hooks |= hooks;
        self.observers.push(Installed {
            observer,
            frames,
            passing,
            hooks,
        });
    }

    /// Removes every installed observer and returns them, in the order installed.
    pub fn take_observers(&mut self) -> Vec<Box<dyn Observer>> {
        self.observer_frames = false;
        self.observer_passing = false;
        self.observer_hooks = false;
        self.observers.drain(..).map(|i| i.observer).collect()
    }

    /// The first installed observer that is a `T`.
    pub fn observer<T: Observer>(&self) -> Option<&T> {
        self.observers.iter().find_map(|i| {
            let any: &dyn Any = &*i.observer;
            any.downcast_ref()
        })
    }

    /// The first installed observer that is a `T`, mutably.
    pub fn observer_mut<T: Observer>(&mut self) -> Option<&mut T> {
        self.observers.iter_mut().find_map(|i| {
            let any: &mut dyn Any = &mut *i.observer;
            any.downcast_mut()
        })
    }

    /// Gives `observer` every recorded event it wants, in order (what it would have seen
    /// installed from the start, frames cut to the recorder's snapshot length).
    pub fn replay(&self, observer: &mut dyn Observer) {
        let (frames, passing, hooks) = wants(observer);
        for e in self.recorder.events() {
            let wanted = match e.kind {
                EventKind::Hook { .. } => hooks,
                EventKind::Dropped { .. } => frames,
                _ => passing,
            };
            if wanted {
                observer.observe(&self.ifaces, e.time, e.view());
            }
        }
    }

    /// The frames received on the interface named `iface` (`node-a/eth0`), with their time.
    pub fn received_on<'a>(
        &'a self,
        iface: &'a str,
    ) -> impl Iterator<Item = (Instant, &'a [u8])> + 'a {
        self.events().iter().filter_map(move |e| match &e.kind {
            EventKind::Received { iface: i, frame } if self.name(*i) == iface => {
                Some((e.time, frame.bytes.as_slice()))
            }
            _ => None,
        })
    }

    /// The TCP segments received on the interface named `iface`, in order, as
    /// (source, source port, destination, destination port, SYN flag): what `tcpdump -i
    /// IFACE tcp` would show of their addressing.
    pub fn tcp_received_on<'a>(&'a self, iface: &'a str) -> impl Iterator<Item = TcpSeen> + 'a {
        self.received_on(iface).filter_map(|(_, frame)| {
            let eth = smoltcp::wire::EthernetFrame::new_checked(frame).ok()?;
            if eth.ethertype() != smoltcp::wire::EthernetProtocol::Ipv4 {
                return None;
            }
            let ip = smoltcp::wire::Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != smoltcp::wire::IpProtocol::Tcp {
                return None;
            }
            let t = smoltcp::wire::TcpPacket::new_checked(ip.payload()).ok()?;
            Some(TcpSeen {
                src: ip.src_addr(),
                sport: t.src_port(),
                dst: ip.dst_addr(),
                dport: t.dst_port(),
                syn: t.syn(),
            })
        })
    }

    /// The events recorded by the built-in recorder, in order (none for what
    /// [`TraceConfig`] leaves off).
    pub fn events(&self) -> &[Event] {
        self.recorder.events()
    }

    /// Drops so far (counted even when events are off).
    pub fn drop_count(&self) -> u64 {
        self.drops
    }

    /// Frames delivered so far, anywhere: a frame is delivered each time an interface
    /// receives it (a `Received` event, what `tcpdump -i IFACE` shows inbound), so a frame
    /// crossing a pod's veth, a bridge and the underlay counts once per interface that took it
    /// in. Counted even when events are off.
    pub fn frames_delivered(&self) -> u64 {
        self.delivered.iter().sum()
    }

    /// Starts a new span for [`Trace::deliveries_since_mark`].
    pub fn mark_deliveries(&mut self) {
        self.since_mark = None;
    }

    /// When the first and the last frame since the last [`Trace::mark_deliveries`] (or since
    /// the start) were delivered; `None` when none was. Counted whether or not anything is
    /// recorded: a run that keeps no events can still tell where its frames were (the
    /// playground's scout notes it, so that a step back lands on the last frame before the
    /// time shown).
    pub fn deliveries_since_mark(&self) -> Option<(Instant, Instant)> {
        self.since_mark
    }

    /// Frames delivered to interface `iface` so far.
    pub fn frames_delivered_on(&self, iface: IfaceId) -> u64 {
        self.delivered.get(iface.0 as usize).copied().unwrap_or(0)
    }

    /// Frames delivered to node `node`'s interfaces so far: its `eth0`, `cni0`, `flannel.1`
    /// and the host ends of its pods' veths (not the pods' own `eth0`, nor the underlay
    /// switch's ports).
    pub fn frames_delivered_to(&self, node: NodeId) -> u64 {
        self.ifaces
            .nodes
            .iter()
            .zip(&self.delivered)
            .filter(|(n, _)| **n == Some(node))
            .map(|(_, d)| d)
            .sum()
    }

    /// The pcap of one interface, when capture is on.
    pub fn pcap(&self, iface: IfaceId) -> Option<&PcapBuffer> {
        self.pcaps.get(iface.0 as usize).and_then(|p| p.as_ref())
    }

    /// Whether frame events are wanted (by the recorder or the observer).
    pub fn wants_frames(&self) -> bool {
        self.config.frames || self.observer_frames
    }

    /// Whether hook events are wanted (callers skip snapshot work otherwise).
    pub fn wants_hooks(&self) -> bool {
        self.config.hooks || self.observer_hooks
    }

    fn capture(&mut self, now: Instant, iface: IfaceId, frame: &[u8]) {
        if let Some(Some(p)) = self.pcaps.get_mut(iface.0 as usize) {
            p.record(now, frame);
        }
    }

    /// Hands a frame event to whoever wants it.
    fn frame_event(&mut self, now: Instant, event: EventRef<'_>) {
        let passing = !matches!(event, EventRef::Dropped { .. });
        if (passing && self.observer_passing) || (!passing && self.observer_frames) {
            for i in self
                .observers
                .iter_mut()
                .filter(|i| if passing { i.passing } else { i.frames })
            {
                i.observer.observe(&self.ifaces, now, event);
            }
        }
        if self.config.frames {
            self.recorder.keep_frame(now, event);
        }
    }

    /// A frame left `iface`.
    pub fn sent(&mut self, now: Instant, iface: IfaceId, frame: &[u8]) {
        self.capture(now, iface, frame);
        self.frame_event(now, EventRef::Sent { iface, frame });
    }

    /// A frame arrived at `iface` (counted as delivered).
    pub fn received(&mut self, now: Instant, iface: IfaceId, frame: &[u8]) {
        if let Some(n) = self.delivered.get_mut(iface.0 as usize) {
            *n += 1;
        }
        self.since_mark = Some((self.since_mark.map_or(now, |(first, _)| first), now));
        self.capture(now, iface, frame);
        self.frame_event(now, EventRef::Received { iface, frame });
    }

    /// A frame arrived at `iface`, a port of the underlay switch, which sees a super-segment
    /// as the wire carries it: one event (and one delivery) per segment ([`crate::gso`]).
    pub fn received_on_wire(&mut self, now: Instant, iface: IfaceId, frame: &Frame) {
        self.on_wire(now, iface, frame, true);
    }

    /// A frame left `iface`, a port of the underlay switch, as the wire carries it (see
    /// [`Trace::received_on_wire`]).
    pub fn sent_on_wire(&mut self, now: Instant, iface: IfaceId, frame: &Frame) {
        self.on_wire(now, iface, frame, false);
    }

    fn on_wire(&mut self, now: Instant, iface: IfaceId, frame: &Frame, arrived: bool) {
        let event = match arrived {
            true => Self::received,
            false => Self::sent,
        };
        let segments = crate::gso::wire_shape(frame).segments;
        if segments == 1 {
            return event(self, now, iface, frame);
        }
        // Passing frames go to the recorder and to observers that asked for them.
        let captured = matches!(self.pcaps.get(iface.0 as usize), Some(Some(_)));
        if self.config.frames || self.observer_passing || captured {
            for k in 0..segments {
                event(self, now, iface, &crate::gso::piece(frame, k, k + 1));
            }
        } else if arrived {
            // Nobody looks at the bytes: only the count of deliveries moves.
            if let Some(n) = self.delivered.get_mut(iface.0 as usize) {
                *n += segments as u64;
            }
            self.since_mark = Some((self.since_mark.map_or(now, |(first, _)| first), now));
        }
    }

    /// A frame was discarded at `iface`.
    pub fn dropped(
        &mut self,
        now: Instant,
        iface: IfaceId,
        reason: impl Into<Cow<'static, str>>,
        frame: &[u8],
    ) {
        self.drops += 1;
        if self.wants_frames() {
            let reason = reason.into();
            self.frame_event(
                now,
                EventRef::Dropped {
                    iface,
                    reason: &reason,
                    frame,
                },
            );
        }
    }

    /// An IPv4 packet crossed `hook` (`before` and `after` are IP packets, not frames).
    #[allow(clippy::too_many_arguments)]
    pub fn hook(
        &mut self,
        now: Instant,
        iface: IfaceId,
        hook: Hook,
        verdict: Verdict,
        before: &[u8],
        after: &[u8],
        notes: Notes,
    ) {
        let after = (before != after).then_some(after);
        if self.observer_hooks {
            let event = EventRef::Hook {
                iface,
                hook,
                verdict: &verdict,
                before,
                after,
                notes: &notes,
            };
            for i in self.observers.iter_mut().filter(|i| i.hooks) {
                i.observer.observe(&self.ifaces, now, event);
            }
        }
        if self.config.hooks {
            // The verdict and notes are moved into the recorded event, not cloned.
            let event = (iface, hook, verdict, before, after, notes);
            self.recorder.keep_hook(now, event);
        }
    }

    /// Every frame event as a `tcpdump -i any -n` line (hook events are skipped; drops are
    /// shown as `DROP <reason>` lines, which tcpdump cannot see).
    pub fn tcpdump(&self) -> String {
        let mut f = tcpdump::Formatter::new();
        let mut out = String::new();
        for e in self.events() {
            match &e.kind {
                EventKind::Sent { iface, frame } => {
                    out.push_str(&f.line_on(
                        e.time,
                        self.name(*iface),
                        Direction::Out,
                        &frame.bytes,
                    ));
                }
                EventKind::Received { iface, frame } => {
                    out.push_str(&f.line_on(
                        e.time,
                        self.name(*iface),
                        Direction::In,
                        &frame.bytes,
                    ));
                }
                EventKind::Dropped {
                    iface,
                    reason,
                    frame,
                } => {
                    let line = f.line(e.time, &frame.bytes);
                    let _ = write!(out, "{} DROP ({}) {}", self.name(*iface), reason, line);
                }
                EventKind::Hook { .. } => continue,
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    use smoltcp::time::Instant;

    use super::{EventRef, Ifaces, Observer, Trace, TraceConfig};

    /// What it was given: "sent", "received" or "dropped <reason>", in order.
    struct Seen {
        passing: bool,
        seen: Vec<String>,
    }

    impl Observer for Seen {
        fn wants_passing_frames(&self) -> bool {
            self.passing
        }

        fn observe(&mut self, _: &Ifaces, _: Instant, event: EventRef<'_>) {
            self.seen.push(match event {
                EventRef::Sent { .. } => "sent".to_string(),
                EventRef::Received { .. } => "received".to_string(),
                EventRef::Dropped { reason, .. } => alloc::format!("dropped {reason}"),
                EventRef::Hook { .. } => "hook".to_string(),
            });
        }
    }

    fn seen(passing: bool) -> Seen {
        Seen {
            passing,
            seen: Vec::new(),
        }
    }

    fn events(trace: &mut Trace) {
        let eth0 = trace.register("a/eth0".to_string());
        let t = Instant::from_micros(1);
        trace.sent(t, eth0, &[0; 60]);
        trace.received(t, eth0, &[0; 60]);
        trace.dropped(t, eth0, "full", &[0; 60]);
        trace.received(t, eth0, &[0; 60]);
    }

    #[test]
    fn an_observer_of_drops_alone_is_given_only_the_drops_live_and_in_replay() {
        let mut trace = Trace::new(TraceConfig::full());
        trace.add_observer(Box::new(seen(false)));
        trace.add_observer(Box::new(seen(true)));
        events(&mut trace);
        let all = ["sent", "received", "dropped full", "received"];
        let observers = trace.take_observers();
        let got: Vec<&Seen> = observers
            .iter()
            .map(|o| {
                let any: &dyn core::any::Any = &**o;
                any.downcast_ref::<Seen>().unwrap()
            })
            .collect();
        assert_eq!(got[0].seen, ["dropped full"]);
        assert_eq!(got[1].seen, all);
        // Replayed from the recording: the same.
        for (passing, want) in [(false, &["dropped full"][..]), (true, &all[..])] {
            let mut o = seen(passing);
            trace.replay(&mut o);
            assert_eq!(o.seen, want);
        }
        // Frames are still delivered and counted with no observer of passing frames.
        let mut quiet = Trace::new(TraceConfig::off());
        quiet.add_observer(Box::new(seen(false)));
        events(&mut quiet);
        assert_eq!((quiet.frames_delivered(), quiet.drop_count()), (2, 1));
    }

    #[test]
    fn deliveries_since_a_mark_span_the_first_to_the_last_frame_received() {
        let mut trace = Trace::new(TraceConfig::off());
        let eth0 = trace.register("a/eth0".to_string());
        let at = Instant::from_micros;
        trace.received(at(5), eth0, &[0; 60]);
        assert_eq!(trace.deliveries_since_mark(), Some((at(5), at(5))));
        trace.mark_deliveries();
        assert_eq!(trace.deliveries_since_mark(), None);
        // Frames sent or dropped are not delivered.
        trace.sent(at(7), eth0, &[0; 60]);
        trace.dropped(at(8), eth0, "full", &[0; 60]);
        assert_eq!(trace.deliveries_since_mark(), None);
        trace.received(at(9), eth0, &[0; 60]);
        trace.received(at(12), eth0, &[0; 60]);
        trace.received(at(12), eth0, &[0; 60]);
        assert_eq!(trace.deliveries_since_mark(), Some((at(9), at(12))));
    }
}
