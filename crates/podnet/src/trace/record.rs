//! The in-memory recorder: [`Event`]s kept in a `Vec` (what [`super::Trace::events`] returns),
//! and the owned event types it stores.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use smoltcp::time::Instant;

use super::{EventRef, IfaceId, Ifaces, Observer, TraceConfig};
use crate::netfilter::{Hook, Verdict};

/// The first bytes of a frame and its full length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Full frame length.
    pub len: usize,
    /// The first `snaplen` bytes.
    pub bytes: Vec<u8>,
}

impl Snapshot {
    /// The first `snaplen` bytes of `frame`, and its length.
    pub fn of(frame: &[u8], snaplen: usize) -> Self {
        Snapshot {
            len: frame.len(),
            bytes: frame[..frame.len().min(snaplen)].to_vec(),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A frame left an interface.
    Sent {
        /// Where.
        iface: IfaceId,
        /// The frame.
        frame: Snapshot,
    },
    /// A frame arrived at an interface.
    Received {
        /// Where.
        iface: IfaceId,
        /// The frame.
        frame: Snapshot,
    },
    /// A frame or packet was discarded.
    Dropped {
        /// The interface it was on (sending side for link drops, receiving side otherwise).
        iface: IfaceId,
        /// Why.
        reason: Cow<'static, str>,
        /// The frame.
        frame: Snapshot,
    },
    /// An IPv4 packet crossed a netfilter hook of a node.
    Hook {
        /// The interface it arrived on or leaves by.
        iface: IfaceId,
        /// The hook.
        hook: Hook,
        /// The verdict of the modules at this hook.
        verdict: Verdict,
        /// The IP packet before the modules ran.
        before: Snapshot,
        /// The IP packet after, when a module rewrote it.
        after: Option<Snapshot>,
        /// What the modules say they did (rule matched, NAT, conntrack entry).
        notes: crate::netfilter::Notes,
    },
}

/// One trace event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Virtual time.
    pub time: Instant,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// The event as an observer sees it (frames cut to the snapshot length they were kept at).
    pub fn view(&self) -> EventRef<'_> {
        match &self.kind {
            EventKind::Sent { iface, frame } => EventRef::Sent {
                iface: *iface,
                frame: &frame.bytes,
            },
            EventKind::Received { iface, frame } => EventRef::Received {
                iface: *iface,
                frame: &frame.bytes,
            },
            EventKind::Dropped {
                iface,
                reason,
                frame,
            } => EventRef::Dropped {
                iface: *iface,
                reason,
                frame: &frame.bytes,
            },
            EventKind::Hook {
                iface,
                hook,
                verdict,
                before,
                after,
                notes,
            } => EventRef::Hook {
                iface: *iface,
                hook: *hook,
                verdict,
                before: &before.bytes,
                after: after.as_ref().map(|a| a.bytes.as_slice()),
                notes,
            },
        }
    }
}

/// An observer that keeps every event it is given (frames and hooks as its configuration
/// says, cut to `snaplen`): what [`super::Trace`] uses for [`super::Trace::events`], and
/// usable on its own (behind a filter, say) with [`crate::Cluster::add_observer`].
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    frames: bool,
    hooks: bool,
    snaplen: usize,
    events: Vec<Event>,
}

impl Recorder {
    /// A recorder of what `config` asks for (its `pcap` is not the recorder's business).
    pub fn new(config: &TraceConfig) -> Self {
        Recorder {
            frames: config.frames,
            hooks: config.hooks,
            snaplen: config.snaplen,
            events: Vec::new(),
        }
    }

    /// The events kept, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Gives the events kept, leaving none.
    pub fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    fn snap(&self, frame: &[u8]) -> Snapshot {
        Snapshot::of(frame, self.snaplen)
    }

    /// Keeps `event` when it is of a kind this recorder keeps.
    fn keep(&mut self, time: Instant, event: EventRef<'_>) {
        let kind = match event {
            EventRef::Sent { iface, frame } if self.frames => EventKind::Sent {
                iface,
                frame: self.snap(frame),
            },
            EventRef::Received { iface, frame } if self.frames => EventKind::Received {
                iface,
                frame: self.snap(frame),
            },
            EventRef::Dropped {
                iface,
                reason,
                frame,
            } if self.frames => EventKind::Dropped {
                iface,
                reason: reason.clone(),
                frame: self.snap(frame),
            },
            EventRef::Hook {
                iface,
                hook,
                verdict,
                before,
                after,
                notes,
            } if self.hooks => {
                let hook = (iface, hook, verdict.clone(), before, after, notes.clone());
                return self.keep_hook(time, hook);
            }
            _ => return,
        };
        self.events.push(Event { time, kind });
    }

    /// Keeps a frame event (if frames are kept).
    pub(super) fn keep_frame(&mut self, time: Instant, event: EventRef<'_>) {
        if !matches!(event, EventRef::Hook { .. }) {
            self.keep(time, event);
        }
    }

    /// Keeps a hook event (if hooks are kept): the interface, hook, verdict, the packet
    /// before and after (when changed), the notes; owned parts are moved in.
    pub(super) fn keep_hook(&mut self, time: Instant, event: HookParts<'_>) {
        if !self.hooks {
            return;
        }
        let (iface, hook, verdict, before, after, notes) = event;
        let before = self.snap(before);
        let after = after
            .filter(|a| before.bytes.as_slice() != &a[..a.len().min(self.snaplen)])
            .map(|a| self.snap(a));
        let kind = EventKind::Hook {
            iface,
            hook,
            verdict,
            before,
            after,
            notes,
        };
        self.events.push(Event { time, kind });
    }
}

/// A hook event's parts, as [`Recorder::keep_hook`] takes them.
pub(super) type HookParts<'a> = (
    IfaceId,
    Hook,
    Verdict,
    &'a [u8],
    Option<&'a [u8]>,
    crate::netfilter::Notes,
);

impl Observer for Recorder {
    fn wants_frames(&self) -> bool {
        self.frames
    }

    fn wants_hooks(&self) -> bool {
        self.hooks
    }

    fn observe(&mut self, _ifaces: &Ifaces, time: Instant, event: EventRef<'_>) {
        self.keep(time, event);
    }
}
