//! The observers the commands install so that a run records only what they print: the drops
//! of the report, tcpdump lines written as packets pass, and one connection's events for its
//! packet walk.

use std::collections::BTreeSet;
use std::io::Write;

use podnet::conntrack::Tuple;
use podnet::tcpdump::filter::Filter;
use podnet::tcpdump::{Direction, Formatter};
use podnet::trace::{Event, EventRef, Ifaces, Observer, Recorder, TraceConfig};
use podnet::Instant;

use super::inspect::{frame_tuple, frame_tuple_ip};
use super::report::{packet_summary, Drop};
use super::{fmt_instant, Failure};

/// Keeps the report's drops (time, place, reason, packet summary) and nothing else.
#[derive(Debug, Default)]
pub struct DropRecorder {
    drops: Vec<Drop>,
}

impl DropRecorder {
    /// The drops so far, in time order.
    pub fn drops(&self) -> &[Drop] {
        &self.drops
    }
}

impl Observer for DropRecorder {
    fn wants_passing_frames(&self) -> bool {
        false
    }

    fn observe(&mut self, ifaces: &Ifaces, time: Instant, event: EventRef<'_>) {
        if let EventRef::Dropped {
            iface,
            reason,
            frame,
        } = event
        {
            self.drops.push(Drop {
                time: fmt_instant(time),
                place: ifaces.name(iface).to_string(),
                reason: reason.to_string(),
                packet: packet_summary(frame),
            });
        }
    }
}

/// `podnet tcpdump` as packets pass: the frames sent or received on the chosen interfaces that
/// match the filter, one line each, written to `out`.
pub struct TcpdumpWriter<W: Write> {
    iface: String,
    filter: Filter,
    formatter: Formatter,
    out: W,
    error: Option<std::io::Error>,
}

impl<W: Write> TcpdumpWriter<W> {
    /// Lines of interface `iface` (`any`, `HOST/IFACE`, or a host name for all its
    /// interfaces) matching the pcap-filter `expr`, to `out`.
    pub fn new(iface: &str, expr: &str, out: W) -> Result<Self, Failure> {
        let filter = Filter::parse(expr).map_err(|e| Failure::input(e.to_string()))?;
        Ok(TcpdumpWriter {
            iface: iface.to_string(),
            filter,
            formatter: Formatter::new(),
            out,
            error: None,
        })
    }

    fn wanted(&self, name: &str) -> bool {
        self.iface == "any" || name == self.iface || name.split('/').next() == Some(&self.iface)
    }

    /// Fails unless some interface of `ifaces` is the one asked for (nothing was written then).
    pub fn check_iface(&self, ifaces: &Ifaces) -> Result<(), Failure> {
        if ifaces.iter().any(|(_, n)| self.wanted(n)) {
            return Ok(());
        }
        let names: Vec<&str> = ifaces.iter().map(|(_, n)| n).collect();
        Err(Failure::input(format!(
            "no interface {:?} (try any, a host name, or one of: {})",
            self.iface,
            names.join(", ")
        )))
    }

    /// Flushes the output; fails with the first write error.
    pub fn flush(&mut self) -> Result<(), Failure> {
        let e = match self.error.take() {
            Some(e) => e,
            None => match self.out.flush() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            },
        };
        Err(Failure::input(format!("writing tcpdump lines: {e}")))
    }

    /// Flushes the output and gives it back, or the first write error.
    pub fn finish(mut self) -> Result<W, Failure> {
        self.flush()?;
        Ok(self.out)
    }

    /// The frame of `event`, its interface's name and its direction, when `event` has a line.
    fn selected<'e>(
        &self,
        ifaces: &'e Ifaces,
        event: EventRef<'e>,
    ) -> Option<(&'e str, &'e [u8], Direction)> {
        let (iface, frame, dir) = match event {
            EventRef::Sent { iface, frame } => (iface, frame, Direction::Out),
            EventRef::Received { iface, frame } => (iface, frame, Direction::In),
            _ => return None,
        };
        let name = ifaces.name(iface);
        (self.wanted(name) && self.filter.matches(frame)).then_some((name, frame, dir))
    }

    /// Whether `event` has a line.
    pub fn selects(&self, ifaces: &Ifaces, event: EventRef<'_>) -> bool {
        self.selected(ifaces, event).is_some()
    }

    /// Takes in `event` as [`Observer::observe`] does, without writing its line: the lines
    /// after it are the same (see [`podnet::tcpdump::Formatter::learn`]). True when `event`
    /// has a line.
    pub fn skip(&mut self, ifaces: &Ifaces, event: EventRef<'_>) -> bool {
        let Some((_, frame, _)) = self.selected(ifaces, event) else {
            return false;
        };
        self.formatter.learn(frame);
        true
    }
}

impl<W: Write + 'static> Observer for TcpdumpWriter<W> {
    fn observe(&mut self, ifaces: &Ifaces, time: Instant, event: EventRef<'_>) {
        if self.error.is_some() {
            return;
        }
        let Some((name, frame, dir)) = self.selected(ifaces, event) else {
            return;
        };
        let many = self.iface == "any" || !self.iface.contains('/');
        let mut line = if many {
            self.formatter.line_on(time, name, dir, frame)
        } else {
            self.formatter.line(time, frame)
        };
        line.push('\n');
        if let Err(e) = self.out.write_all(line.as_bytes()) {
            self.error = Some(e);
        }
    }
}

/// Whether `event` belongs to the connection whose packets carry one of `tuples`: a frame of
/// one of them (or an ICMP error quoting one), or a hook crossed by one.
pub(super) fn belongs(tuples: &BTreeSet<Tuple>, event: &EventRef<'_>) -> bool {
    match *event {
        EventRef::Sent { frame, .. }
        | EventRef::Received { frame, .. }
        | EventRef::Dropped { frame, .. } => {
            frame_tuple(frame).is_some_and(|t| tuples.contains(&t))
        }
        EventRef::Hook { before, .. } => {
            let Some(t) = Tuple::of_packet(before) else {
                return false;
            };
            tuples.contains(&t)
                || (t.proto == 1 && frame_tuple_ip(before).is_some_and(|t| tuples.contains(&t)))
        }
    }
}

/// Records the frame and hook events of one connection only: those whose packets carry one of
/// its tuples (as [`super::Session::connection_tuples`] finds them after a first run of the
/// same world), for `podnet trace` and `podnet explain`.
pub struct ConnRecorder {
    tuples: BTreeSet<Tuple>,
    recorder: Recorder,
}

impl ConnRecorder {
    /// Records the events of `tuples` with frames cut to `snaplen`.
    pub fn new(tuples: BTreeSet<Tuple>, snaplen: usize) -> Self {
        ConnRecorder {
            tuples,
            recorder: Recorder::new(&TraceConfig {
                snaplen,
                ..TraceConfig::default()
            }),
        }
    }

    /// The events recorded, in order.
    pub fn events(&self) -> &[Event] {
        self.recorder.events()
    }
}

impl Observer for ConnRecorder {
    fn wants_hooks(&self) -> bool {
        true
    }

    fn observe(&mut self, ifaces: &Ifaces, time: Instant, event: EventRef<'_>) {
        if belongs(&self.tuples, &event) {
            self.recorder.observe(ifaces, time, event);
        }
    }
}

/// Records every frame and hook event (frames cut to `snaplen`) but keeps at most about
/// `max_events` of them: when there are more, the oldest quarter is let go. Installed part way
/// through a run ([`podnet::Cluster::add_observer`]) it records from then on, so a browser can
/// run to a moment without recording (fast, no memory) and keep only a window of events there.
///
/// Events are numbered from the first one this recorder was given: [`WindowRecorder::base`]
/// is the number of the first one still kept.
pub struct WindowRecorder {
    recorder: Recorder,
    /// The kept events (moved out of `recorder` in blocks).
    kept: Vec<Event>,
    base: u64,
    max_events: usize,
    since: Instant,
}

impl WindowRecorder {
    /// Records from `since` (the time it is installed), keeping about `max_events` at most.
    pub fn new(since: Instant, snaplen: usize, max_events: usize) -> Self {
        WindowRecorder {
            recorder: Recorder::new(&TraceConfig {
                snaplen,
                ..TraceConfig::default()
            }),
            kept: Vec::new(),
            base: 0,
            max_events: max_events.max(16),
            since,
        }
    }

    /// Moves what the inner recorder holds to the kept events, letting the oldest go past the
    /// bound (a quarter of the bound at a time, so that trimming is amortised).
    pub fn settle(&mut self) {
        self.kept.extend(self.recorder.take_events());
        if self.kept.len() > self.max_events {
            let cut = self.kept.len() - self.max_events * 3 / 4;
            self.kept.drain(..cut);
            self.base += cut as u64;
        }
    }

    /// The events kept, in order ([`WindowRecorder::settle`] first to include the newest).
    pub fn events(&self) -> &[Event] {
        &self.kept
    }

    /// The number of the first kept event (events numbered from 0 at `since`).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The number one past the last kept event.
    pub fn end(&self) -> u64 {
        self.base + (self.kept.len() + self.recorder.events().len()) as u64
    }

    /// When recording began.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// The bound on kept events.
    pub fn max_events(&self) -> usize {
        self.max_events
    }
}

impl Observer for WindowRecorder {
    fn wants_hooks(&self) -> bool {
        true
    }

    fn observe(&mut self, ifaces: &Ifaces, time: Instant, event: EventRef<'_>) {
        self.recorder.observe(ifaces, time, event);
        if self.recorder.events().len() >= 4096 {
            self.settle();
        }
    }
}
