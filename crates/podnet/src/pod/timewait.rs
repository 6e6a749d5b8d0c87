//! Sockets in TIME-WAIT, kept out of the pod's `SocketSet`.
//!
//! smoltcp polls every socket of a set on every `poll_egress` and `poll_at`, so sockets waiting
//! out TIME-WAIT (10 s in smoltcp) would make every step of a busy pod cost time in proportion
//! to the connections it closed in the last 10 s. Like Linux, which swaps a TIME-WAIT socket for
//! a small `inet_timewait_sock` in its own hash table, the pod moves a socket that reached
//! TIME-WAIT out of its set into this store, keyed by (local port, remote endpoint), with the
//! time smoltcp would close it. The socket itself is kept, so it behaves exactly as before:
//!
//! - a frame for its connection (a retransmitted FIN whose ACK was lost, an RST) is processed by
//!   the same smoltcp socket, placed alone in a scratch set for that service;
//! - the pod is woken at the deadline, where the socket is polled once and closes, as smoltcp
//!   would close it in the full set;
//! - its deadline is asked of smoltcp (`Interface::poll_at` on a one-socket set), never assumed.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpEndpoint;

/// (local port, remote endpoint).
pub type Key = (u16, IpEndpoint);

/// The TIME-WAIT store of one pod.
pub struct TimeWait {
    socks: BTreeMap<Key, (tcp::Socket<'static>, Instant)>,
    deadlines: BTreeSet<(Instant, Key)>,
    /// Sockets taken out for frames of the current service, with their key.
    scratch: SocketSet<'static>,
    taken: Vec<(Key, SocketHandle)>,
    /// Segments processed by sockets in the store.
    pub segments: u64,
}

impl Default for TimeWait {
    fn default() -> Self {
        TimeWait {
            socks: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            scratch: SocketSet::new(Vec::new()),
            taken: Vec::new(),
            segments: 0,
        }
    }
}

/// What to do with a socket after [`TimeWait::settle`] looked at it.
pub enum Settled {
    /// Closed: free its port, recycle it.
    Closed(tcp::Socket<'static>, u16),
    /// Not in TIME-WAIT with a future deadline: back to the pod's set.
    Active(tcp::Socket<'static>),
}

impl TimeWait {
    /// Sockets waiting.
    pub fn len(&self) -> usize {
        self.socks.len() + self.taken.len()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The key of an arriving frame when it may belong to a socket here (a TCP segment, and
    /// the store not empty).
    pub fn key_of(&self, frame: &[u8]) -> Option<Key> {
        if self.socks.is_empty() && self.taken.is_empty() {
            return None;
        }
        super::tcp_of(frame).map(|(from, port, _, _)| (port, from))
    }

    /// When the segment with `key` belongs to a socket here, the set to process it with (the
    /// socket alone).
    pub fn claim(&mut self, key: Key) -> Option<&mut SocketSet<'static>> {
        if !self.taken.iter().any(|(k, _)| *k == key) {
            let (sock, at) = self.socks.remove(&key)?;
            self.deadlines.remove(&(at, key));
            let h = self.scratch.add(sock);
            self.taken.push((key, h));
        }
        self.segments += 1;
        Some(&mut self.scratch)
    }

    /// Polls the sockets taken out for frames (and any whose deadline passed) for egress at
    /// `now`, as the pod's full set would have been.
    pub fn poll_egress(
        &mut self,
        iface: &mut Interface,
        now: Instant,
        device: &mut super::PodDevice,
    ) {
        while let Some(&(at, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((sock, _)) = self.socks.remove(&key) {
                let h = self.scratch.add(sock);
                self.taken.push((key, h));
            }
        }
        if self.taken.is_empty() {
            return;
        }
        while iface.poll_egress(now, device, &mut self.scratch)
            == smoltcp::iface::PollResult::SocketStateChanged
        {}
    }

    /// Moves the sockets taken out back into the store, or hands them out (`out`) when closed
    /// or no longer waiting.
    pub fn put_back(&mut self, iface: &mut Interface, now: Instant, out: &mut Vec<Settled>) {
        for (key, h) in core::mem::take(&mut self.taken) {
            let Some(sock) = into_tcp(self.scratch.remove(h)) else {
                continue;
            };
            if let Some(s) = self.settle(iface, now, sock, key) {
                out.push(s);
            }
        }
    }

    /// Stores `sock` (whose local port and remote endpoint are `key`) if it is in TIME-WAIT
    /// with a deadline after `now`; otherwise returns it.
    pub fn settle(
        &mut self,
        iface: &mut Interface,
        now: Instant,
        sock: tcp::Socket<'static>,
        key: Key,
    ) -> Option<Settled> {
        match sock.state() {
            tcp::State::Closed => return Some(Settled::Closed(sock, key.0)),
            tcp::State::TimeWait => {}
            _ => return Some(Settled::Active(sock)),
        }
        let h = self.scratch.add(sock);
        let at = iface.poll_at(now, &self.scratch);
        let sock = into_tcp(self.scratch.remove(h))?;
        match at {
            Some(at) if at > now => {
                self.deadlines.insert((at, key));
                self.socks.insert(key, (sock, at));
                None
            }
            _ => Some(Settled::Active(sock)),
        }
    }
}

/// Only TCP sockets enter the store.
fn into_tcp(s: smoltcp::socket::Socket<'static>) -> Option<tcp::Socket<'static>> {
    match s {
        smoltcp::socket::Socket::Tcp(t) => Some(t),
        _ => None,
    }
}
