//! The frames on the wires at a moment, as the page draws them: paired from the kept events,
//! or read from the links' queues.

use std::collections::{BTreeMap, VecDeque};

use podnet::trace::{EventKind, Snapshot};
use podnet::{Duration, Instant};

use super::{instant, us, SimCore, MAX_DROPS};
use crate::api::{Flight, Flights};
use crate::packet::packet_info;

impl SimCore {
    /// The frames on the wires at `t` µs, from the kept events: each frame sent on one end of
    /// a link at or before `t` (at most `max_flight_us` before, and among the last
    /// `max_events` events up to `t`) is paired with the first receipt of the same bytes on
    /// the other end after `t` (among the kept events at most `max_flight_us` after the last
    /// one up to `t`, and at most `max_events` of them): only frames whose receipt is kept
    /// are in flight. Also the drops among the events looked at (the last [`MAX_DROPS`]).
    pub fn flights(&mut self, t: f64, max_flight_us: f64, max_events: usize) -> Flights {
        self.update_peers();
        let Some((_, peers)) = self.peers.as_ref() else {
            return Flights::default();
        };
        let kept = self.kept();
        let at = instant(t);
        let to = kept.partition_point(|e| e.time <= at);
        let since = instant(t - max_flight_us.max(0.0));
        let from = kept
            .partition_point(|e| e.time <= since)
            .max(to.saturating_sub(max_events));
        // Frames sent and not yet received, by (receiving interface, bytes), oldest first.
        let mut open: BTreeMap<(u32, &[u8]), VecDeque<usize>> = BTreeMap::new();
        let mut drops = Vec::new();
        for (i, e) in kept.iter().enumerate().take(to).skip(from) {
            match &e.kind {
                EventKind::Sent { iface, frame } => {
                    if let Some(&peer) = peers.get(&iface.0) {
                        open.entry((peer, &frame.bytes[..]))
                            .or_default()
                            .push_back(i);
                    }
                }
                EventKind::Received { iface, frame } => {
                    if let Some(q) = open.get_mut(&(iface.0, &frame.bytes[..])) {
                        q.pop_front();
                    }
                }
                EventKind::Dropped { .. } => drops.push(i),
                EventKind::Hook { .. } => {}
            }
        }
        let mut left: usize = open.values().map(VecDeque::len).sum();
        let mut pairs = Vec::new();
        if left > 0 {
            let until = to
                .checked_sub(1)
                .map(|l| kept[l].time)
                .unwrap_or(Instant::ZERO)
                + Duration::from_micros(max_flight_us.max(0.0) as u64);
            let end = (to + kept[to..].partition_point(|e| e.time <= until))
                .min(to.saturating_add(max_events));
            for (i, e) in kept.iter().enumerate().take(end).skip(to) {
                let EventKind::Received { iface, frame } = &e.kind else {
                    continue;
                };
                if let Some(sent) = open
                    .get_mut(&(iface.0, &frame.bytes[..]))
                    .and_then(VecDeque::pop_front)
                {
                    pairs.push((sent, i));
                    left -= 1;
                    if left == 0 {
                        break;
                    }
                }
            }
        }
        let base = self.event_base();
        let trace = self.session.cluster.trace();
        let flights = pairs
            .into_iter()
            .filter_map(|(s, r)| {
                let (se, re) = (&kept[s], &kept[r]);
                let (EventKind::Sent { iface: a, frame }, EventKind::Received { iface: b, .. }) =
                    (&se.kind, &re.kind)
                else {
                    return None; // paired events are a sent and a received
                };
                Some(Flight {
                    sent: base + s as f64,
                    received: Some(base + r as f64),
                    sent_time: us(se.time),
                    received_time: us(re.time),
                    from: trace.name(*a).to_string(),
                    to: trace.name(*b).to_string(),
                    packet: packet_info(&frame.bytes, false),
                })
            })
            .collect();
        self.with_drops(flights, drops)
    }

    /// The frames on the wires now, as the simulation holds them (each link's queue, with
    /// their arrival times), each paired with the kept event of its sending (among the last
    /// `max_events` kept events; frames sent before are left out), in the order they arrive
    /// on each link; and the last drops among those events ([`MAX_DROPS`]). The same frames
    /// as [`SimCore::flights`] at the time now, without running past it.
    pub fn flights_now(&mut self, max_events: usize) -> Flights {
        let kept = self.kept();
        let from = kept.len().saturating_sub(max_events);
        // The sent events looked at, by interface, oldest first.
        let mut sent: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        let mut drops = Vec::new();
        for (i, e) in kept.iter().enumerate().skip(from) {
            match &e.kind {
                EventKind::Sent { iface, .. } => sent.entry(iface.0).or_default().push(i),
                EventKind::Dropped { .. } => drops.push(i),
                _ => {}
            }
        }
        let same = |s: &Snapshot, frame: &[u8]| {
            s.len == frame.len() && frame.get(..s.bytes.len()) == Some(&s.bytes[..])
        };
        let trace = self.session.cluster.trace();
        let base = self.event_base();
        // Each link direction's frames (the engine gives them one direction after another),
        // the last first: the last sent with the same bytes before the sending matched to the
        // frame after it.
        let queued: Vec<podnet::cluster::InFlight> = self.session.cluster.in_flight().collect();
        let mut flights = Vec::new();
        for frames in queued.chunk_by(|a, b| (a.from, a.to) == (b.from, b.to)) {
            let Some(list) = frames.first().and_then(|f| sent.get(&f.from.0)) else {
                continue;
            };
            let mut upto = list.len();
            let mut paired = Vec::new();
            for f in frames.iter().rev() {
                let found = list[..upto].iter().rposition(|&i| {
                    matches!(&kept[i].kind, EventKind::Sent { frame, .. } if same(frame, f.frame))
                });
                let Some(at) = found else {
                    // Sent before the events looked at, or not as one frame: a super-segment
                    // leaves a wire's end as segments.
                    continue;
                };
                upto = at;
                let i = list[at];
                paired.push(Flight {
                    sent: base + i as f64,
                    received: None,
                    sent_time: us(kept[i].time),
                    received_time: us(f.arrives),
                    from: trace.name(f.from).to_string(),
                    to: trace.name(f.to).to_string(),
                    packet: packet_info(f.frame, false),
                });
            }
            flights.extend(paired.into_iter().rev());
        }
        self.with_drops(flights, drops)
    }

    /// `flights` with the last [`MAX_DROPS`] of the kept drop events `drops` (positions),
    /// without their connections (finding them indexes every connection finished so far).
    fn with_drops(&self, flights: Vec<Flight>, mut drops: Vec<usize>) -> Flights {
        let last = drops.split_off(drops.len().saturating_sub(MAX_DROPS));
        Flights {
            flights,
            drops: last.into_iter().map(|i| self.event(i, false)).collect(),
        }
    }

    /// Each end of a link to its other end (interface numbers), built again when interfaces
    /// were added.
    fn update_peers(&mut self) {
        let trace = self.session.cluster.trace();
        let count = trace.ifaces().count();
        if self.peers.as_ref().is_none_or(|(n, _)| *n != count) {
            let ids: BTreeMap<&str, u32> = trace.ifaces().map(|(id, n)| (n, id.0)).collect();
            let mut map = BTreeMap::new();
            for l in self.topology().links {
                if let (Some(&a), Some(&b)) = (ids.get(l.a.as_str()), ids.get(l.b.as_str())) {
                    map.insert(a, b);
                    map.insert(b, a);
                }
            }
            self.peers = Some((count, map));
        }
    }
}
