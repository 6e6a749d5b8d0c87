//! Ephemeral ports for a pod's outgoing connections.

use alloc::collections::BTreeMap;

use litemap::LiteMap;
use smoltcp::wire::IpEndpoint;

use super::client::EPHEMERAL_PORTS;
use crate::rng::{splitmix, SimRng};

/// The ports a pod has in use: one bit for each of the 65,536, in a bitmap made when the first
/// one is taken (8 KiB; a pod that never binds a port, like the idle pods of the memory
/// example, has none). A pod whose range is nearly full of TIME-WAIT connections finds a free
/// port by reading 64 ports at a time, where an ordered set of the ports in use was walked one
/// taken port at a time (about 950 instructions a connection with 25,000 of 28,232 taken).
#[derive(Clone, Debug, Default)]
pub(crate) struct PortSet {
    bits: Option<alloc::boxed::Box<[u64]>>,
}

impl PortSet {
    /// Takes `port`; false when it was taken already.
    pub fn insert(&mut self, port: u16) -> bool {
        let bits = self
            .bits
            .get_or_insert_with(|| alloc::vec![0u64; 1024].into_boxed_slice());
        let (w, b) = (usize::from(port) / 64, 1u64 << (port % 64));
        let was = bits[w] & b != 0;
        bits[w] |= b;
        !was
    }

    /// Frees `port`; false when it was free.
    pub fn remove(&mut self, port: &u16) -> bool {
        let Some(bits) = self.bits.as_mut() else {
            return false;
        };
        let (w, b) = (usize::from(*port) / 64, 1u64 << (port % 64));
        let was = bits[w] & b != 0;
        bits[w] &= !b;
        was
    }

    /// Whether `port` is taken.
    #[cfg(test)]
    pub(crate) fn contains(&self, port: &u16) -> bool {
        self.bits
            .as_ref()
            .is_some_and(|bits| bits[usize::from(*port) / 64] & (1u64 << (port % 64)) != 0)
    }

    /// The bits of ports `64 * w` to `64 * w + 63`.
    fn word(&self, w: usize) -> u64 {
        self.bits.as_ref().map_or(0, |bits| bits[w])
    }
}

/// A TCP connection's key for port bookkeeping: its local port and its peer.
pub(crate) type Held = (u16, IpEndpoint);

/// The ports a pod's programs hold, and the state Linux keeps to choose the next one.
///
/// TCP and UDP ports are apart, as Linux keeps them. A TCP port a program bound (a server's
/// listening port) is its alone. A TCP port a `connect()` chose is held for that peer only:
/// Linux's `__inet_hash_connect` lets another connection to a different peer take the same
/// port, since the 4-tuples differ (the bind bucket's `fastreuse` is -1). So a pod runs out
/// of ephemeral ports at 28,232 connections to one peer at once, TIME-WAIT included, not at
/// 28,232 in all.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ports {
    /// TCP ports a program bound.
    bound: PortSet,
    /// UDP ports in use.
    udp: PortSet,
    /// The TCP ports connect()s took, per peer, with the peer's offset counter.
    peers: BTreeMap<IpEndpoint, Peer>,
    /// The key of the hash that places a peer's first port (Linux's `net_secret`), drawn
    /// from the pod's seeded stream at its first connect.
    secret: Option<u64>,
}

/// What a pod keeps per peer it connected to.
#[derive(Clone, Debug, Default)]
struct Peer {
    /// Linux's `table_perturb[]` entry for this peer: added to the hash's offset, and moved
    /// on after each connect by the distance searched plus 2, at least 2 to 16 at random.
    perturb: u32,
    /// The ports held to this peer, 64 to a word, by `port / 64`.
    words: LiteMap<u16, u64>,
    /// One bit per word of `words` whose even ports (`full[0]`) or odd ports (`full[1]`) are
    /// all held: a search skips 64 full words at a time, so that a pod with most of its ports
    /// in TIME-WAIT to one peer finds the next one as fast as an idle pod.
    full: [[u64; 16]; 2],
}

impl Peer {
    fn word(&self, w: usize) -> u64 {
        self.words.get(&(w as u16)).copied().unwrap_or(0)
    }

    /// Stores word `w` and its two bits in `full`.
    fn set_word(&mut self, w: u16, word: u64) {
        if word == 0 {
            self.words.remove(&w);
        } else {
            self.words.insert(w, word);
        }
        let (i, b) = (usize::from(w / 64), 1u64 << (w % 64));
        for (full, skip) in self.full.iter_mut().zip([ODD, EVEN]) {
            if word | skip == u64::MAX {
                full[i] |= b;
            } else {
                full[i] &= !b;
            }
        }
    }

    /// The first word from `w` on whose ports of `parity` (0 even, 1 odd) are not all held.
    fn open_from(&self, w: usize, parity: usize) -> Option<usize> {
        let full = &self.full[parity];
        let mut i = w / 64;
        let mut chunk = *full.get(i)? | ((1u64 << (w % 64)) - 1);
        loop {
            if chunk != u64::MAX {
                return Some(i * 64 + (!chunk).trailing_zeros() as usize);
            }
            i += 1;
            chunk = *full.get(i)?;
        }
    }
}

/// A port [`Ports::choose_tcp`] found, taken by [`Ports::take_tcp`] once the socket
/// connected.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Choice {
    pub port: u16,
    peer: IpEndpoint,
    /// What the peer's counter moves on by.
    step: u32,
}

impl Ports {
    /// Takes TCP port `port` for a program that binds it (a listening server).
    pub fn bind_tcp(&mut self, port: u16) {
        self.bound.insert(port);
    }

    /// Takes UDP port `port`.
    pub fn bind_udp(&mut self, port: u16) {
        self.udp.insert(port);
    }

    /// Frees UDP port `port`.
    pub fn unbind_udp(&mut self, port: u16) {
        self.udp.remove(&port);
    }

    /// A free ephemeral UDP port: the first not in use from a random offset in
    /// [`EPHEMERAL_PORTS`] on, wrapping around once. (Linux's `udp_lib_get_port` also starts
    /// at random; it then walks the ports that share a hash slot, which this does not model.)
    pub fn choose_udp(&self, rng: &mut SimRng) -> Option<u16> {
        let (lo, hi) = EPHEMERAL_PORTS;
        let span = u32::from(hi - lo) + 1;
        let first = lo + rng.range_inclusive(0, span - 1) as u16;
        let taken = |w: usize| self.udp.word(w);
        first_free(first, hi, taken).or_else(|| first_free(lo, first - 1, taken))
    }

    /// The port a TCP `connect()` to `peer` gets, as Linux's `__inet_hash_connect` (4.6 and
    /// later) chooses it: from an offset (a keyed hash of the peer plus the peer's counter,
    /// modulo the range's 28,232 ports, made even), the even ports in turn, wrapping around
    /// once, then the odd ones from the offset plus one (`inet_csk_get_port`, for a bind,
    /// prefers the odd half). A port is free unless a program bound it or a connection to
    /// the same peer holds it. So a pod's successive connections to one peer take increasing
    /// even ports, 2 to 16 apart. None when every port is taken (`EADDRNOTAVAIL`).
    pub fn choose_tcp(&mut self, rng: &mut SimRng, peer: IpEndpoint) -> Option<Choice> {
        let (lo, hi) = EPHEMERAL_PORTS;
        let remaining = u32::from(hi - lo) + 1;
        let secret = *self.secret.get_or_insert_with(|| rng.next_u64());
        let addr = crate::v4(peer.addr);
        let hash = splitmix(secret ^ (u64::from(addr.to_bits()) << 16 | u64::from(peer.port)));
        let state = self.peers.get(&peer);
        let perturb = state.map_or(0, |p| p.perturb);
        let offset = (perturb.wrapping_add((hash >> 32) as u32) % remaining) & !1;
        for (parity, first) in [offset, offset + 1].into_iter().enumerate() {
            let start = lo + first as u16;
            let Some(port) = self
                .scan(state, start, hi, parity)
                .or_else(|| self.scan(state, lo, start - 1, parity))
            else {
                continue;
            };
            // How far the search went, then at least 0 to 14 more at random.
            let searched = (u32::from(port) + remaining - u32::from(start)) % remaining;
            let step = searched.max(rng.range_inclusive(0, 7) * 2) + 2;
            return Some(Choice { port, peer, step });
        }
        None
    }

    /// The lowest port in `from..=to` of `parity` (0 even, 1 odd) that no program bound and
    /// no connection to the peer whose ports are `state` holds.
    fn scan(&self, state: Option<&Peer>, from: u16, to: u16, parity: usize) -> Option<u16> {
        if from > to {
            return None;
        }
        let skip = [ODD, EVEN][parity];
        let (from, to) = (usize::from(from), usize::from(to));
        let mut w = from / 64;
        // The ports below `from` in its word count as taken.
        let mut below = (1u64 << (from % 64)) - 1;
        while w * 64 <= to {
            if let Some(p) = state {
                let open = p.open_from(w, parity)?;
                if open != w {
                    (w, below) = (open, 0);
                    if w * 64 > to {
                        return None;
                    }
                }
            }
            let word = self.bound.word(w) | state.map_or(0, |p| p.word(w)) | skip | below;
            if word != u64::MAX {
                let port = w * 64 + (!word).trailing_zeros() as usize;
                return (port <= to).then_some(port as u16);
            }
            (w, below) = (w + 1, 0);
        }
        None
    }

    /// Takes the port of `choice` (the socket connected) and moves its peer's counter on.
    pub fn take_tcp(&mut self, choice: Choice) {
        let p = self.peers.entry(choice.peer).or_default();
        p.perturb = p.perturb.wrapping_add(choice.step);
        let w = choice.port / 64;
        p.set_word(w, p.word(usize::from(w)) | 1u64 << (choice.port % 64));
    }

    /// Frees TCP port `port` held to `peer` (a no-op when no connection holds it, like an
    /// accepted connection's: its port is its server's).
    pub fn release_tcp(&mut self, (port, peer): Held) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let w = port / 64;
        let word = p.word(usize::from(w));
        if word != 0 {
            p.set_word(w, word & !(1u64 << (port % 64)));
        }
    }

    /// Whether a connection to `peer` holds TCP port `port`.
    #[cfg(test)]
    pub(crate) fn holds_tcp(&self, (port, peer): Held) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| p.word(usize::from(port / 64)) & (1u64 << (port % 64)) != 0)
    }
}

/// Masks for [`first_free`]'s `taken`: the odd ports (to find even ones), the even ports (to
/// find odd ones). A word holds 64 ports from a multiple of 64, so bit parity is port parity.
const ODD: u64 = 0xAAAA_AAAA_AAAA_AAAA;
const EVEN: u64 = 0x5555_5555_5555_5555;

/// The lowest port in `from..=to` whose bit is clear in `taken(port / 64)`.
fn first_free(from: u16, to: u16, taken: impl Fn(usize) -> u64) -> Option<u16> {
    if from > to {
        return None;
    }
    let (from, to) = (usize::from(from), usize::from(to));
    let mut w = from / 64;
    // The ports below `from` in its word count as taken.
    let mut word = taken(w) | ((1u64 << (from % 64)) - 1);
    loop {
        if word != u64::MAX {
            let port = w * 64 + (!word).trailing_zeros() as usize;
            return (port <= to).then_some(port as u16);
        }
        w += 1;
        if w * 64 > to {
            return None;
        }
        word = taken(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    #[test]
    fn the_first_free_port_is_what_probing_each_in_turn_finds() {
        let probe = |used: &PortSet, from: u16, to: u16, keep: &dyn Fn(u16) -> bool| {
            (from..=to).find(|p| !used.contains(p) && keep(*p))
        };
        let none = PortSet::default();
        assert_eq!(first_free(3, 9, |w| none.word(w)), Some(3));
        assert_eq!(first_free(3, 9, |w| none.word(w) | ODD), Some(4));
        assert_eq!(first_free(3, 9, |w| none.word(w) | EVEN), Some(3));
        assert_eq!(first_free(4, 4, |w| none.word(w) | EVEN), None);
        let mut used = PortSet::default();
        // Runs across word boundaries (63, 64, 127, 128, ...).
        for p in [
            5, 6, 7, 9, 10, 12, 20, 62, 63, 64, 65, 126, 127, 128, 191, 192,
        ] {
            assert!(used.insert(p));
        }
        assert!(!used.insert(5));
        let all = |_: u16| true;
        let even = |p: u16| p.is_multiple_of(2);
        let odd = |p: u16| p % 2 == 1;
        for from in 0..200 {
            for to in from..200 {
                let any = first_free(from, to, |w| used.word(w));
                assert_eq!(any, probe(&used, from, to, &all), "{from}..={to}");
                let e = first_free(from, to, |w| used.word(w) | ODD);
                assert_eq!(e, probe(&used, from, to, &even), "even in {from}..={to}");
                let o = first_free(from, to, |w| used.word(w) | EVEN);
                assert_eq!(o, probe(&used, from, to, &odd), "odd in {from}..={to}");
            }
        }
        for p in 0..=u16::MAX {
            used.insert(p);
        }
        assert_eq!(first_free(0, u16::MAX, |w| used.word(w)), None);
        assert_eq!(first_free(7, 3, |w| used.word(w)), None);
        assert!(used.remove(&u16::MAX));
        assert!(!used.remove(&u16::MAX));
        assert_eq!(
            first_free(60_000, u16::MAX, |w| used.word(w)),
            Some(u16::MAX)
        );
        assert!(used.remove(&64));
        assert_eq!(first_free(0, 200, |w| used.word(w)), Some(64));
    }

    #[test]
    fn the_search_for_a_peer_is_what_probing_each_port_in_turn_finds() {
        let mut rng = SimRng::derive(11, crate::rng::Stream::Pod(2));
        let to = peer(10, 80);
        let mut ports = Ports::default();
        let mut held = alloc::collections::BTreeSet::new();
        // Whole words full of one parity or both, runs across word boundaries, bound ports.
        let runs = (32_768..33_600).chain(40_000..41_000);
        for p in runs.filter(|p| p % 3 != 0 || *p > 40_500) {
            ports.take_tcp(Choice {
                port: p,
                peer: to,
                step: 2,
            });
            held.insert(p);
        }
        for p in (50_000..52_000).step_by(2) {
            ports.take_tcp(Choice {
                port: p,
                peer: to,
                step: 2,
            });
            held.insert(p);
        }
        let bound = [33_601u16, 33_603, 50_001, 50_063];
        for p in bound {
            ports.bind_tcp(p);
        }
        for _ in 0..3000 {
            let from = 32_768 + rng.range_inclusive(0, 28_231) as u16;
            let last = from + rng.range_inclusive(0, u32::from(60_999 - from)) as u16;
            for parity in 0..2 {
                let want = (from..=last).find(|p| {
                    usize::from(p % 2) == parity && !held.contains(p) && !bound.contains(p)
                });
                let state = ports.peers.get(&to);
                let got = ports.scan(state, from, last, parity);
                assert_eq!(got, want, "{from}..={last}, parity {parity}");
            }
        }
        // Releasing a port reopens its word.
        ports.release_tcp((50_000, to));
        let state = ports.peers.get(&to);
        assert_eq!(ports.scan(state, 50_000, 60_999, 0), Some(50_000));
    }

    fn peer(last: u8, port: u16) -> IpEndpoint {
        IpEndpoint::new(
            smoltcp::wire::IpAddress::Ipv4(Ipv4Address::new(10, 96, 0, last)),
            port,
        )
    }

    fn connect(ports: &mut Ports, rng: &mut SimRng, to: IpEndpoint) -> Option<u16> {
        let c = ports.choose_tcp(rng, to)?;
        ports.take_tcp(c);
        Some(c.port)
    }

    #[test]
    fn connects_to_one_peer_take_increasing_even_ports_2_to_16_apart() {
        let mut rng = SimRng::derive(7, crate::rng::Stream::Pod(0));
        let mut ports = Ports::default();
        let to = peer(10, 80);
        let (lo, hi) = EPHEMERAL_PORTS;
        let mut last: Option<u16> = None;
        let mut gaps = alloc::collections::BTreeSet::new();
        for _ in 0..2000 {
            let p = connect(&mut ports, &mut rng, to).unwrap();
            assert!((lo..=hi).contains(&p) && p.is_multiple_of(2), "{p}");
            if let Some(l) = last {
                // Forward, modulo the range (it wraps past 60999 to 32768).
                let gap = (u32::from(p) + 28_232 - u32::from(l)) % 28_232;
                assert!((2..=16).contains(&gap), "{l} -> {p}");
                gaps.insert(gap);
            }
            last = Some(p);
            // Closed at once: the ports never run out.
            ports.release_tcp((p, to));
        }
        assert_eq!(
            gaps.len(),
            8,
            "every even gap from 2 to 16 occurs: {gaps:?}"
        );
    }

    #[test]
    fn a_port_is_shared_by_peers_and_the_odd_half_follows_the_even() {
        let mut rng = SimRng::derive(3, crate::rng::Stream::Pod(1));
        let mut ports = Ports::default();
        let (a, b) = (peer(10, 80), peer(11, 80));
        // Hold every port to peer a: all 14,116 even ports first, then the 14,116 odd ones.
        let mut held = alloc::vec::Vec::new();
        for i in 0..28_232u32 {
            let p = connect(&mut ports, &mut rng, a).unwrap();
            assert_eq!(
                u32::from(p % 2),
                u32::from(i >= 14_116),
                "connection {i}: {p}"
            );
            assert!(ports.holds_tcp((p, a)));
            held.push(p);
        }
        held.sort_unstable();
        held.dedup();
        assert_eq!(held.len(), 28_232);
        assert_eq!(connect(&mut ports, &mut rng, a), None, "EADDRNOTAVAIL");
        // Another peer still gets ports: the 4-tuples differ.
        let p = connect(&mut ports, &mut rng, b).unwrap();
        assert!(ports.holds_tcp((p, a)) && ports.holds_tcp((p, b)));
        // A port freed to peer a is the one it gets next; a bound port is never chosen.
        ports.release_tcp((40_000, a));
        assert!(!ports.holds_tcp((40_000, a)));
        assert_eq!(connect(&mut ports, &mut rng, a), Some(40_000));
        ports.release_tcp((40_002, a));
        ports.bind_tcp(40_002);
        assert_eq!(connect(&mut ports, &mut rng, a), None);
        // Releasing what no connection holds changes nothing.
        ports.release_tcp((80, peer(99, 1)));
    }
}
