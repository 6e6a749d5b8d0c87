//! What `pod::sockets` keeps beside the sockets to find them without looking at each: the
//! free slots, each socket's index key, and the indexes themselves.

use alloc::vec::Vec;

use smoltcp::socket::{tcp, Socket};
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;

use crate::pairset::{key, PairSet};

/// Numbers marked free in a bitmap with a summary of its non-empty words: the lowest in a
/// few word reads (a pod reuses its lowest free slot, as smoltcp's `SocketSet` does).
#[derive(Default)]
pub(super) struct FreeSlots {
    bits: Vec<u64>,
    /// Bit `j` is set when `bits[j]` is not 0.
    summary: Vec<u64>,
}

impl FreeSlots {
    pub(super) fn set(&mut self, i: u32, free: bool) {
        let (w, b) = (i as usize / 64, i % 64);
        if w >= self.bits.len() {
            if !free {
                return;
            }
            self.bits.resize(w + 1, 0);
            self.summary.resize(w / 64 + 1, 0);
        }
        if free {
            self.bits[w] |= 1 << b;
        } else {
            self.bits[w] &= !(1 << b);
        }
        let (s, sb) = (w / 64, w % 64);
        if self.bits[w] == 0 {
            self.summary[s] &= !(1 << sb);
        } else {
            self.summary[s] |= 1 << sb;
        }
    }

    pub(super) fn lowest(&self) -> Option<u32> {
        let (s, sw) = self.summary.iter().enumerate().find(|(_, &x)| x != 0)?;
        let w = s * 64 + sw.trailing_zeros() as usize;
        Some((w * 64) as u32 + self.bits[w].trailing_zeros())
    }
}

/// What a socket can take, as an index key: the frames it can take all carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    /// Nothing (a closed TCP socket without a peer, an ICMP socket).
    None,
    /// A TCP socket with a peer: segments from `remote` to `local`. The peer comes first so
    /// that a server can find its connections from one peer.
    Tcp {
        raddr: u32,
        rport: u16,
        lport: u16,
        laddr: u32,
    },
    /// A TCP socket without a peer that is not closed (listening): SYNs to this port.
    TcpListen(u16),
    /// A UDP socket: datagrams to this port.
    Udp(u16),
}

impl Key {
    /// Where the key goes: the TCP index or the UDP one, with its packed form. A listening
    /// socket's key has peer 0.0.0.0:0 and local address 0 (no connected socket has that
    /// peer; lookups check each candidate anyway).
    pub(super) fn packed(self) -> Option<(bool, crate::pairset::Key)> {
        match self {
            Key::None => None,
            Key::Tcp {
                raddr,
                rport,
                lport,
                laddr,
            } => Some((false, key(raddr, rport, lport, laddr))),
            Key::TcpListen(port) => Some((false, key(0, 0, port, 0))),
            Key::Udp(port) => Some((true, key(0, 0, port, 0))),
        }
    }

    pub(super) fn of(socket: &Socket<'static>) -> Key {
        match socket {
            Socket::Tcp(s) => match (s.local_endpoint(), s.remote_endpoint()) {
                (Some(l), Some(r)) => Key::Tcp {
                    raddr: bits(r.addr),
                    rport: r.port,
                    lport: l.port,
                    laddr: bits(l.addr),
                },
                _ if s.state() == tcp::State::Closed => Key::None,
                _ => Key::TcpListen(s.listen_endpoint().port),
            },
            Socket::Udp(s) => Key::Udp(s.endpoint().port),
            #[allow(unreachable_patterns)]
            _ => Key::None,
        }
    }
}

/// An instant as a key that sorts as the instants do.
pub(super) fn time_key(t: Instant) -> crate::pairset::Key {
    u128::from((t.total_micros() as u64) ^ (1 << 63))
}

/// [`time_key`] back.
pub(super) fn time_of(k: crate::pairset::Key) -> Instant {
    Instant::from_micros(((k as u64) ^ (1 << 63)) as i64)
}

pub(super) fn bits(a: IpAddress) -> u32 {
    crate::v4(a).to_bits()
}

/// A pod's indexes of its sockets.
#[derive(Default)]
pub(super) struct Index {
    /// Every TCP slot by what it can take (`Key::packed`): finds the socket an arriving
    /// segment is for without looking at the others.
    pub(super) tcp: PairSet,
    /// Every UDP slot by its port.
    pub(super) udp: PairSet,
    /// Slots whose `key` may be out of date: refreshed before `tcp` and `udp` are read.
    pub(super) stale: Vec<u32>,
    /// Every slot by its `at` ([`time_key`]): the sockets due at an egress, and the pod's
    /// next wake-up.
    pub(super) timers: PairSet,
}

impl Index {
    /// Takes slot `i` out of the index it is in under `key`.
    pub(super) fn remove(&mut self, key: Key, i: u32) {
        match key.packed() {
            Some((false, k)) => self.tcp.remove(k, i),
            Some((true, k)) => self.udp.remove(k, i),
            None => false,
        };
    }

    /// Puts slot `i` in under `key`.
    pub(super) fn insert(&mut self, key: Key, i: u32) {
        match key.packed() {
            Some((false, k)) => self.tcp.insert(k, i),
            Some((true, k)) => self.udp.insert(k, i),
            None => {}
        }
    }
}
