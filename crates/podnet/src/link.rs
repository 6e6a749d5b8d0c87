//! Links: one direction of a veth pair or an uplink cable, as an in-memory frame queue.
//!
//! A [`Channel`] models what a frame meets between two interfaces: a transmit queue bounded
//! in bytes (tail drop, like a `txqueuelen` of full frames), serialization at the link's
//! bandwidth (a frame starts when the previous one has left), propagation latency, random
//! loss drawn from the link's own seeded stream, and an administrative down state.
//! Frames are delivered in the order they were sent.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use smoltcp::time::{Duration, Instant};

use crate::rng::SimRng;

/// An Ethernet frame, as bytes, without preamble or FCS.
pub type Frame = Vec<u8>;

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
        }
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

    /// Puts a frame on the wire at `now`. Returns its arrival time, or why it was dropped (a
    /// lost frame still occupied the transmitter, as on a real wire).
    pub fn send(&mut self, now: Instant, frame: Frame) -> Result<Instant, (LinkDrop, Frame)> {
        if self.down {
            return Err((LinkDrop::Down, frame));
        }
        let wire_len = frame.len() + WIRE_OVERHEAD;
        if self.backlog_bytes(now) + wire_len > self.config.queue_bytes {
            return Err((LinkDrop::QueueFull, frame));
        }
        let now_ns = now.total_micros() * 1000;
        let start_ns = self.busy_until_ns.max(now_ns);
        let tx_ns = match self.config.bandwidth_bps {
            Some(bps) if bps > 0 => ((wire_len as u64 * 8 * 1_000_000_000).div_ceil(bps)) as i64,
            _ => 0,
        };
        self.busy_until_ns = start_ns + tx_ns;
        if self.rng.chance(self.config.loss) {
            return Err((LinkDrop::Loss, frame));
        }
        let arrive_us =
            (self.busy_until_ns + 999) / 1000 + self.config.latency.total_micros() as i64;
        let mut arrive = Instant::from_micros(arrive_us);
        if let Some((last, _)) = self.in_flight.back() {
            arrive = arrive.max(*last);
        }
        self.in_flight.push_back((arrive, frame));
        Ok(arrive)
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
        let at = c.send(Instant::ZERO, vec![0; 976]).unwrap();
        assert_eq!(at, Instant::from_micros(58));
        // The second frame waits for the first to leave the transmitter.
        let at2 = c.send(Instant::ZERO, vec![0; 976]).unwrap();
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
            match c.send(Instant::ZERO, vec![0; 1000]) {
                Ok(_) => sent += 1,
                Err((LinkDrop::QueueFull, _)) => dropped += 1,
                Err(e) => panic!("unexpected {:?}", e.0),
            }
        }
        assert_eq!((sent, dropped), (2, 8));
        // Once the queue drains, frames are accepted again.
        assert!(c.send(Instant::from_secs(1), vec![0; 1000]).is_ok());
    }

    #[test]
    fn loss_and_down() {
        let mut c = chan(LinkConfig {
            loss: 0.5,
            ..LinkConfig::default()
        });
        let lost = (0..1000)
            .filter(|_| matches!(c.send(Instant::ZERO, vec![0; 64]), Err((LinkDrop::Loss, _))))
            .count();
        assert!((400..600).contains(&lost), "{lost}");
        c.set_down(true);
        assert!(matches!(
            c.send(Instant::ZERO, vec![0; 64]),
            Err((LinkDrop::Down, _))
        ));
    }

    #[test]
    fn unlimited_bandwidth_keeps_order() {
        let mut c = chan(LinkConfig {
            bandwidth_bps: None,
            ..LinkConfig::default()
        });
        let a = c.send(Instant::ZERO, vec![1]).unwrap();
        c.set_config(LinkConfig {
            latency: Duration::from_micros(1),
            bandwidth_bps: None,
            ..LinkConfig::default()
        });
        let b = c.send(Instant::ZERO, vec![2]).unwrap();
        assert!(b >= a, "frames never overtake each other");
        assert_eq!(c.receive(a).unwrap(), vec![1]);
        assert_eq!(c.receive(a).unwrap(), vec![2]);
    }
}
