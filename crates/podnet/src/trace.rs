//! Observability: a structured event for every frame sent, delivered and dropped (where, when,
//! why) and for every netfilter hook a packet crosses, plus per-interface pcap capture.
//!
//! Interfaces are registered here once (`node-a/eth0`, `client/eth0`, ...) and referred to by
//! [`IfaceId`]. What is recorded is chosen by [`TraceConfig`]; recording costs nothing when off.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use smoltcp::time::Instant;

use crate::netfilter::{Hook, Verdict};
use crate::pcap::PcapBuffer;
use crate::tcpdump::{self, Direction};

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

/// The first bytes of a frame and its full length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Full frame length.
    pub len: usize,
    /// The first `snaplen` bytes.
    pub bytes: Vec<u8>,
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

/// One trace event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Virtual time.
    pub time: Instant,
    /// What happened.
    pub kind: EventKind,
}

/// The recorder shared by every part of a cluster.
#[derive(Debug, Default)]
pub struct Trace {
    config: TraceConfig,
    names: Vec<String>,
    events: Vec<Event>,
    pcaps: Vec<Option<PcapBuffer>>,
    drops: u64,
}

impl Trace {
    /// A recorder.
    pub fn new(config: TraceConfig) -> Self {
        Trace {
            config,
            ..Trace::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TraceConfig {
        &self.config
    }

    /// Registers an interface by its display name (`node-a/eth0`).
    pub fn register(&mut self, name: String) -> IfaceId {
        self.names.push(name);
        self.pcaps.push(self.config.pcap.then(PcapBuffer::ethernet));
        IfaceId(self.names.len() as u32 - 1)
    }

    /// An interface's name.
    pub fn name(&self, iface: IfaceId) -> &str {
        self.names.get(iface.0 as usize).map_or("?", |s| s.as_str())
    }

    /// Every registered interface, in registration order.
    pub fn ifaces(&self) -> impl Iterator<Item = (IfaceId, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (IfaceId(i as u32), n.as_str()))
    }

    /// The frames received on the interface named `iface` (`node-a/eth0`), with their time.
    pub fn received_on<'a>(
        &'a self,
        iface: &'a str,
    ) -> impl Iterator<Item = (Instant, &'a [u8])> + 'a {
        self.events.iter().filter_map(move |e| match &e.kind {
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

    /// The recorded events, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Drops recorded so far (counted even when events are off).
    pub fn drop_count(&self) -> u64 {
        self.drops
    }

    /// The pcap of one interface, when capture is on.
    pub fn pcap(&self, iface: IfaceId) -> Option<&PcapBuffer> {
        self.pcaps.get(iface.0 as usize).and_then(|p| p.as_ref())
    }

    fn snap(&self, frame: &[u8]) -> Snapshot {
        let n = frame.len().min(self.config.snaplen);
        Snapshot {
            len: frame.len(),
            bytes: frame[..n].to_vec(),
        }
    }

    fn capture(&mut self, now: Instant, iface: IfaceId, frame: &[u8]) {
        if let Some(Some(p)) = self.pcaps.get_mut(iface.0 as usize) {
            p.record(now, frame);
        }
    }

    /// A frame left `iface`.
    pub fn sent(&mut self, now: Instant, iface: IfaceId, frame: &[u8]) {
        self.capture(now, iface, frame);
        if self.config.frames {
            let frame = self.snap(frame);
            self.events.push(Event {
                time: now,
                kind: EventKind::Sent { iface, frame },
            });
        }
    }

    /// A frame arrived at `iface`.
    pub fn received(&mut self, now: Instant, iface: IfaceId, frame: &[u8]) {
        self.capture(now, iface, frame);
        if self.config.frames {
            let frame = self.snap(frame);
            self.events.push(Event {
                time: now,
                kind: EventKind::Received { iface, frame },
            });
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
        if self.config.frames {
            let frame = self.snap(frame);
            let reason = reason.into();
            self.events.push(Event {
                time: now,
                kind: EventKind::Dropped {
                    iface,
                    reason,
                    frame,
                },
            });
        }
    }

    /// Whether hook events are recorded (callers skip snapshot work otherwise).
    pub fn wants_hooks(&self) -> bool {
        self.config.hooks
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
        notes: crate::netfilter::Notes,
    ) {
        if !self.config.hooks {
            return;
        }
        let before = self.snap(before);
        let after = (before.bytes.as_slice() != &after[..after.len().min(self.config.snaplen)])
            .then(|| self.snap(after));
        self.events.push(Event {
            time: now,
            kind: EventKind::Hook {
                iface,
                hook,
                verdict,
                before,
                after,
                notes,
            },
        });
    }

    /// Every frame event as a `tcpdump -i any -n` line (hook events are skipped; drops are
    /// shown as `DROP <reason>` lines, which tcpdump cannot see).
    pub fn tcpdump(&self) -> String {
        let mut f = tcpdump::Formatter::new();
        let mut out = String::new();
        for e in &self.events {
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
