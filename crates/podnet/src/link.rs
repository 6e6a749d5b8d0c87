//! Links: one direction of a veth pair or an uplink cable, as an in-memory frame queue.
//!
//! A [`Channel`] models what a frame meets between two interfaces: a transmit queue bounded
//! in bytes (tail drop, like a `txqueuelen` of full frames), serialization at the link's
//! bandwidth (a frame starts when the previous one has left), propagation latency, random
//! loss drawn from the link's own seeded stream, and an administrative down state.
//! Frames are delivered in the order they were sent. A wire (a node's uplink, not a veth)
//! carries a TCP super-segment as its segments: each is serialized and may be lost on its
//! own, and the receiving NIC's GRO merges what arrived (see [`crate::gso`]).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use smoltcp::time::{Duration, Instant};

use crate::rng::SimRng;

/// An Ethernet frame, as bytes without preamble or FCS, with the one piece of metadata that
/// travels with it: its TCP segmentation offload size (Linux's `skb_shinfo(skb)->gso_size`).
///
/// A frame derefs to its bytes. A frame with a segment size is a TCP super-segment built by a
/// pod's stack for its TSO-capable veth (see [`crate::gso`]): it crosses veths, bridges,
/// netfilter and routing whole, as a GSO packet does in Linux, and is cut into segments of
/// that size only where it goes out on a wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    bytes: Vec<u8>,
    gso_size: u16,
}

impl Frame {
    /// A frame of these bytes, not a super-segment.
    pub const fn new(bytes: Vec<u8>) -> Self {
        Frame { bytes, gso_size: 0 }
    }

    /// The TCP payload bytes per segment when this frame is a super-segment; 0 otherwise.
    pub fn gso_size(&self) -> u16 {
        self.gso_size
    }

    /// Marks the frame as a super-segment of `size`-byte segments (0: an ordinary frame).
    pub fn set_gso_size(&mut self, size: u16) {
        self.gso_size = size;
    }

    /// The bytes, giving up the metadata.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl From<Vec<u8>> for Frame {
    fn from(bytes: Vec<u8>) -> Self {
        Frame::new(bytes)
    }
}

impl core::ops::Deref for Frame {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl core::ops::DerefMut for Frame {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl PartialEq<Vec<u8>> for Frame {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.bytes == *other
    }
}

/// Bytes a frame occupies on the wire beyond its own length: preamble and SFD (8), FCS (4),
/// inter-frame gap (12).
pub const WIRE_OVERHEAD: usize = 24;

/// The physical properties of a link. Both directions of a link get the same configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub latency: Duration,
    /// Bits per second; `None` for no serialization delay.
    pub bandwidth_bps: Option<u64>,
    /// Bytes that may wait for transmission; a frame that would exceed it is tail-dropped.
    pub queue_bytes: usize,
    /// Probability that a transmitted frame is lost, in `[0, 1]`.
    pub loss: f64,
}

impl Default for LinkConfig {
    /// 50 µs latency, 10 Gbit/s, room for 1000 full-size frames, no loss.
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_micros(50),
            bandwidth_bps: Some(10_000_000_000),
            queue_bytes: 1000 * 1514,
            loss: 0.0,
        }
    }
}

/// Why a channel refused or lost a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkDrop {
    /// The transmit queue had no room (tail drop).
    QueueFull,
    /// The frame was transmitted and lost on the wire.
    Loss,
    /// The link is administratively down.
    Down,
}

impl LinkDrop {
    /// A short reason, as printed in traces and reports.
    pub fn reason(self) -> &'static str {
        match self {
            LinkDrop::QueueFull => "link queue full",
            LinkDrop::Loss => "link loss",
            LinkDrop::Down => "link down",
        }
    }
}

/// One direction of a link.
#[derive(Debug)]
pub struct Channel {
    config: LinkConfig,
    down: bool,
    /// When the transmitter is free again, in nanoseconds of virtual time.
    busy_until_ns: i64,
    /// Frames on their way, with their arrival time (non-decreasing).
    in_flight: VecDeque<(Instant, Frame)>,
    rng: SimRng,
    /// A wire, where super-segments travel as segments; a veth passes them whole.
    wire: bool,
}

/// A frame a channel took: when it arrives, and the segments of it that were lost (a
/// super-segment on a wire can lose some of its segments and deliver the rest).
#[derive(Debug)]
pub struct Sent {
    /// When the last of what arrives has arrived.
    pub at: Instant,
    /// Segments lost on the wire, each as a packet of its own.
    pub lost: Vec<Frame>,
}

impl Channel {
    /// An idle channel.
    pub fn new(config: LinkConfig, rng: SimRng) -> Self {
        Channel {
            config,
            down: false,
            busy_until_ns: 0,
            in_flight: VecDeque::new(),
            rng,
            wire: false,
        }
    }

    /// Makes the channel a wire (a NIC with TSO and GRO at its ends) or a veth (the default).
    pub fn set_wire(&mut self, wire: bool) {
        self.wire = wire;
    }

    /// The channel's configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Changes latency, bandwidth, queue or loss from now on; frames in flight keep their times.
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    /// Takes the link down (every frame sent is dropped) or brings it back up.
    pub fn set_down(&mut self, down: bool) {
        self.down = down;
    }

    /// Whether the link is down.
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// Bytes waiting for the transmitter at `now`.
    pub fn backlog_bytes(&self, now: Instant) -> usize {
        let wait_ns = self.busy_until_ns - now.total_micros() * 1000;
        match self.config.bandwidth_bps {
            // In 64 bits when the product fits (a wait under about 1.8 s at 10 Gbit/s), the
            // same quotient without the 128-bit division.
            Some(bps) if wait_ns > 0 => match (wait_ns as u64).checked_mul(bps) {
                Some(p) => (p / 8_000_000_000) as usize,
                None => ((wait_ns as u128 * bps as u128) / 8_000_000_000) as usize,
            },
            _ => 0,
        }
    }

    /// Puts a frame on the wire at `now`. Returns when it arrives (and what of it was lost),
    /// or why it was dropped whole (a lost frame still occupied the transmitter, as on a
    /// real wire).
    pub fn send(&mut self, now: Instant, frame: Frame) -> Result<Sent, (LinkDrop, Frame)> {
        if self.down {
            return Err((LinkDrop::Down, frame));
        }
        let shape = match self.wire {
            true => crate::gso::wire_shape(&frame),
            false => crate::gso::WireShape::whole(&frame),
        };
        let wire_len = shape.bytes + shape.segments * WIRE_OVERHEAD;
        if self.backlog_bytes(now) + wire_len > self.config.queue_bytes {
            return Err((LinkDrop::QueueFull, frame));
        }
        let now_ns = now.total_micros() * 1000;
        let start_ns = self.busy_until_ns.max(now_ns);
        let bps = self.config.bandwidth_bps.filter(|b| *b > 0);
        let tx_ns = |bytes: usize| match bps {
            Some(bps) => ((bytes as u64 * 8 * 1_000_000_000).div_ceil(bps)) as i64,
            None => 0,
        };
        self.busy_until_ns = start_ns + tx_ns(wire_len);
        if shape.segments == 1 {
            if self.rng.chance(self.config.loss) {
                return Err((LinkDrop::Loss, frame));
            }
            let at = self.arrival(self.busy_until_ns);
            self.in_flight.push_back((at, frame));
            return Ok(Sent {
                at,
                lost: Vec::new(),
            });
        }
        // Each segment is lost or not on its own; GRO merges each run between the gaps.
        let lost: Vec<usize> = (0..shape.segments)
            .filter(|_| self.rng.chance(self.config.loss))
            .collect();
        if lost.is_empty() {
            let at = self.arrival(self.busy_until_ns);
            self.in_flight.push_back((at, frame));
            return Ok(Sent {
                at,
                lost: Vec::new(),
            });
        }
        if lost.len() == shape.segments {
            return Err((LinkDrop::Loss, frame));
        }
        let mut at = Instant::ZERO;
        let mut first = 0;
        for gap in lost.iter().copied().chain([shape.segments]) {
            if gap > first {
                let end_ns = start_ns + tx_ns(shape.bytes_through(gap) + gap * WIRE_OVERHEAD);
                at = self.arrival(end_ns);
                self.in_flight
                    .push_back((at, crate::gso::piece(&frame, first, gap)));
            }
            first = gap + 1;
        }
        let lost = lost
            .iter()
            .map(|&k| crate::gso::piece(&frame, k, k + 1))
            .collect();
        Ok(Sent { at, lost })
    }

    /// When a frame whose last bit left the transmitter at `sent_ns` arrives: after the
    /// propagation delay, and never before the frame ahead of it.
    fn arrival(&self, sent_ns: i64) -> Instant {
        let arrive_us = (sent_ns + 999) / 1000 + self.config.latency.total_micros() as i64;
        let mut arrive = Instant::from_micros(arrive_us);
        if let Some((last, _)) = self.in_flight.back() {
            arrive = arrive.max(*last);
        }
        arrive
    }

    /// The arrival time of the next frame, if any is in flight.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|(at, _)| *at)
    }

    /// Takes the next frame if it has arrived by `now`.
    pub fn receive(&mut self, now: Instant) -> Option<Frame> {
        match self.in_flight.front() {
            Some((at, _)) if *at <= now => self.in_flight.pop_front().map(|(_, f)| f),
            _ => None,
        }
    }

    /// Frames currently in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The frames in flight with their arrival times, in the order they arrive.
    pub fn frames(&self) -> impl Iterator<Item = (Instant, &Frame)> + '_ {
        self.in_flight.iter().map(|(at, f)| (*at, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use alloc::vec;

    fn chan(config: LinkConfig) -> Channel {
        Channel::new(config, SimRng::derive(1, Stream::Link(0)))
    }

    #[test]
    fn latency_plus_serialization() {
        let mut c = chan(LinkConfig {
            latency: Duration::from_micros(50),
            bandwidth_bps: Some(1_000_000_000), // 1 Gbit: 1 ns per 1/8 byte
            ..LinkConfig::default()
        });
        // 976 + 24 bytes = 8000 bits = 8 µs at 1 Gbit/s.
        let at = c.send(Instant::ZERO, Frame::new(vec![0; 976])).unwrap().at;
        assert_eq!(at, Instant::from_micros(58));
        // The second frame waits for the first to leave the transmitter.
        let at2 = c.send(Instant::ZERO, Frame::new(vec![0; 976])).unwrap().at;
        assert_eq!(at2, Instant::from_micros(66));
        assert_eq!(c.receive(Instant::from_micros(57)), None);
        assert!(c.receive(Instant::from_micros(58)).is_some());
        assert_eq!(c.next_arrival(), Some(Instant::from_micros(66)));
    }

    #[test]
    fn tail_drop_when_queue_full() {
        let mut c = chan(LinkConfig {
            bandwidth_bps: Some(1_000_000),
            queue_bytes: 3000,
            ..LinkConfig::default()
        });
        let mut sent = 0;
        let mut dropped = 0;
        for _ in 0..10 {
            match c.send(Instant::ZERO, Frame::new(vec![0; 1000])) {
                Ok(_) => sent += 1,
                Err((LinkDrop::QueueFull, _)) => dropped += 1,
                Err(e) => panic!("unexpected {:?}", e.0),
            }
        }
        assert_eq!((sent, dropped), (2, 8));
        // Once the queue drains, frames are accepted again.
        assert!(c
            .send(Instant::from_secs(1), Frame::new(vec![0; 1000]))
            .is_ok());
    }

    #[test]
    fn loss_and_down() {
        let mut c = chan(LinkConfig {
            loss: 0.5,
            ..LinkConfig::default()
        });
        let lost = (0..1000)
            .filter(|_| {
                matches!(
                    c.send(Instant::ZERO, Frame::new(vec![0; 64])),
                    Err((LinkDrop::Loss, _))
                )
            })
            .count();
        assert!((400..600).contains(&lost), "{lost}");
        c.set_down(true);
        assert!(matches!(
            c.send(Instant::ZERO, Frame::new(vec![0; 64])),
            Err((LinkDrop::Down, _))
        ));
    }

    #[test]
    fn unlimited_bandwidth_keeps_order() {
        let mut c = chan(LinkConfig {
            bandwidth_bps: None,
            ..LinkConfig::default()
        });
        let a = c.send(Instant::ZERO, Frame::new(vec![1])).unwrap().at;
        c.set_config(LinkConfig {
            latency: Duration::from_micros(1),
            bandwidth_bps: None,
            ..LinkConfig::default()
        });
        let b = c.send(Instant::ZERO, Frame::new(vec![2])).unwrap().at;
        assert!(b >= a, "frames never overtake each other");
        assert_eq!(c.receive(a).unwrap(), vec![1]);
        assert_eq!(c.receive(a).unwrap(), vec![2]);
    }
}
