//! A pod's sockets, each in a `SocketSet` of its own, so that a service of the pod costs what
//! its busy sockets cost, not what all its open sockets cost.
//!
//! smoltcp's `Interface::poll_egress` and `Interface::poll_at` visit every socket of the set
//! they are given: with 50 connections open and waiting for their answers, every frame the
//! pod received ran `dispatch` and `poll_at` on all 50 (half of all the work in a run with
//! that concurrency). Linux does nothing for a socket until a segment, a system call or one of
//! its timers concerns it. Here each socket lives in a one-socket set, and a service hands
//! smoltcp only the sets that can have something to send, in handle order, which is the order
//! smoltcp would have visited them in one set:
//! - the socket an arriving segment was for (found as smoltcp finds it: the first socket, in
//!   handle order, whose `accepts` takes the segment; the rules are mirrored from smoltcp 0.14
//!   with its public accessors);
//! - sockets added since the last service (a `connect` waits for its first `dispatch`);
//! - sockets a program changed: borrowed mutably and since then different in state, send
//!   queue or receive queue (a `send`, a `recv` that opens the window, a `close`);
//! - sockets whose own `poll_at` (smoltcp's, cached after each of their services) is due;
//! - every socket after an ARP frame: the neighbour cache may now hold the address a socket
//!   waits for.
//!
//! A socket none of these concern would find nothing to do in `dispatch`: smoltcp's `poll_at`
//! "mirrors the beginning of dispatch() closely", and it depends only on the socket's state
//! and its timers' absolute times, which only those events change. The frames, their order
//! and every timer stay as they were with one set (every test and example gives the same
//! bytes).
//!
//! Handles are this module's own ([`Handle`]): a freed slot is reused lowest first, as
//! smoltcp's `SocketSet::add` does, so handles (and the order of maps keyed by them) are the
//! same as they were.
//!
//! Nothing here looks at every socket, so a pod with 20,000 connections open and waiting
//! costs per frame what a pod with one costs (a look at each on every frame made a run with
//! 16,000 at once take ten times longer):
//! - the socket a segment is for is found in an index of the sockets by peer and port (and
//!   listening sockets by port), kept up to date after each service of a socket and each
//!   program's borrow; every socket that can take a segment is under one of its two keys;
//! - the sockets due at an egress, and the pod's next wake-up, come from a set of their
//!   `poll_at` times;
//! - programs learn which sockets changed since they last ran ([`Sockets::take_changed`]),
//!   as an application learns it from `epoll`, and find which of their connections it is
//!   from the socket's tag ([`Sockets::set_tag`], `epoll_event.data`).

use alloc::vec::Vec;

use super::delack::DelAck;
use super::ipid::{IpIds, Sender};
use super::sockets_index::{bits, time_key, time_of, FreeSlots, Index, Key};
use super::PodDevice;
use crate::link::Frame;
use crate::pairset::key;

mod ack;
mod lookup;

use smoltcp::iface::{Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp, AnySocket, Socket};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

/// A socket of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(u32);

impl Handle {
    /// The slot's number (handles sort as their numbers do).
    pub(crate) fn index(self) -> u32 {
        self.0
    }

    /// The handle of slot `i`.
    pub(crate) fn from_index(i: u32) -> Handle {
        Handle(i)
    }
}

/// What a service must do about a slot's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// Nothing happened to it since its last service.
    Clean,
    /// A program borrowed it mutably: egress only if that changed it.
    Touched,
    /// New, or a segment arrived for it: egress.
    Dirty,
    /// To be served by the egress in progress.
    Due,
}

/// What a program can change of a socket that makes it send: its state and its queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    state: Option<tcp::State>,
    send: usize,
    recv: usize,
}

struct Slot {
    /// Holds this socket only.
    set: SocketSet<'static>,
    inner: SocketHandle,
    seen: Seen,
    /// smoltcp's `poll_at` for this socket after its last service (`Instant::ZERO`: now).
    at: Option<Instant>,
    mark: Mark,
    /// Changes whenever the socket is served (a segment for it, or an egress), the only
    /// times its state can change but by a program's own calls.
    version: u64,
    /// Where the socket is in `Sockets::index`, as of its last refresh.
    key: Key,
    /// In `Sockets::stale`: may have changed since `key` was computed.
    stale: bool,
    /// In `Sockets::changed`: served since the programs last looked.
    logged: bool,
    /// Who holds the socket and its number there (`Sockets::set_tag`).
    tag: (u32, u32),
    /// How its packets are numbered (`pod::ipid`).
    sender: Sender,
    /// When it acknowledges what arrives (`pod::delack`), for a TCP socket.
    ack: DelAck,
}

/// The sockets from which a pod keeps its indexes (a look at each costs less for fewer).
const INDEX_FROM: u32 = 24;
/// The sockets below which it stops keeping them.
const INDEX_BELOW: u32 = 8;

impl Slot {
    /// How the packets it sends now are numbered: from its counter, but `stack` for a
    /// socket that was in TIME-WAIT before this service, whose acknowledgements Linux sends
    /// from TCP's control socket (`tcp_v4_timewait_ack`) with ID 0. The last ACK, which took
    /// it there, still counts (`seen` is of the last service).
    fn sender_now<'a>(&'a mut self, stack: &'a mut Sender) -> &'a mut Sender {
        if self.seen.state == Some(tcp::State::TimeWait) {
            return stack;
        }
        &mut self.sender
    }

    fn seen(&self) -> Seen {
        match self.set.get::<Socket<'static>>(self.inner) {
            Socket::Tcp(s) => Seen {
                state: Some(s.state()),
                send: s.send_queue(),
                recv: s.recv_queue(),
            },
            Socket::Udp(s) => Seen {
                state: None,
                send: s.send_queue(),
                recv: s.recv_queue(),
            },
            #[allow(unreachable_patterns)]
            _ => Seen {
                state: None,
                send: 0,
                recv: 0,
            },
        }
    }
}

/// The sockets of one pod.
pub struct Sockets {
    slots: Vec<Option<Slot>>,
    /// The indexes, kept from [`INDEX_FROM`] sockets on until fewer than [`INDEX_BELOW`] are
    /// left; without them, a look at each socket finds what they would, and costs less for a
    /// few (and a pod that never has many does not carry them).
    ix: Option<alloc::boxed::Box<Index>>,
    /// [`INDEX_FROM`] and [`INDEX_BELOW`] (tests change them).
    index_from: u32,
    index_below: u32,
    /// Empty slots below `slots.len()` (nothing until the first).
    free: Option<alloc::boxed::Box<FreeSlots>>,
    /// Slots served since the programs last looked ([`Sockets::take_changed`]).
    changed: Vec<u32>,
    /// Sockets in `slots`.
    count: usize,
    /// Slots marked since the last egress.
    marked: Vec<u32>,
    /// The neighbour cache may have changed since the last egress.
    everything: bool,
    /// For frames no socket takes (smoltcp answers them itself: an RST, an ICMP error).
    none: SocketSet<'static>,
    /// Scratch list of the slots one egress serves.
    due: Vec<u32>,
    /// Sockets served by egresses so far (each counted once per egress).
    pub served: u64,
    /// The last version given to a slot.
    tick: u64,
    /// The IP IDs of what the sockets send.
    ip_ids: IpIds,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            slots: Vec::new(),
            ix: None,
            index_from: INDEX_FROM,
            index_below: INDEX_BELOW,
            free: None,
            changed: Vec::new(),
            count: 0,
            marked: Vec::new(),
            everything: false,
            none: SocketSet::new(Vec::new()),
            due: Vec::new(),
            served: 0,
            tick: 0,
            ip_ids: IpIds::default(),
        }
    }
}

impl Sockets {
    /// Adds a socket; it is served at the next egress.
    pub fn add<T: AnySocket<'static>>(&mut self, socket: T) -> Handle {
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let inner = set.add(socket);
        let mut slot = Slot {
            set,
            inner,
            seen: Seen {
                state: None,
                send: 0,
                recv: 0,
            },
            at: Some(Instant::ZERO),
            mark: Mark::Dirty,
            version: self.tick + 1,
            key: Key::None,
            stale: true,
            logged: false,
            tag: (u32::MAX, 0),
            sender: Sender::Socket(None),
            ack: DelAck::default(),
        };
        self.tick += 1;
        slot.seen = slot.seen();
        // The first empty slot, as `SocketSet::add` finds it.
        let i = match self.free.as_ref().and_then(|f| f.lowest()) {
            Some(i) => {
                if let Some(f) = &mut self.free {
                    f.set(i, false);
                }
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.count += 1;
        self.marked.push(i);
        if let Some(ix) = &mut self.ix {
            ix.stale.push(i);
            ix.timers.insert(time_key(Instant::ZERO), i);
        } else if self.count >= self.index_from as usize {
            self.build_index();
        }
        Handle(i)
    }

    /// Removes a socket and returns it.
    ///
    /// # Panics
    /// When `h` does not refer to a socket (as `SocketSet::remove`).
    pub fn remove(&mut self, h: Handle) -> Socket<'static> {
        let Some(mut slot) = self.slots.get_mut(h.0 as usize).and_then(Option::take) else {
            panic!("handle does not refer to a valid socket");
        };
        if let Some(ix) = &mut self.ix {
            ix.remove(slot.key, h.0);
            if let Some(at) = slot.at {
                ix.timers.remove(time_key(at), h.0);
            }
        }
        if h.0 as usize + 1 < self.slots.len() {
            self.free
                .get_or_insert_with(Default::default)
                .set(h.0, true);
        }
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
            if let Some(f) = &mut self.free {
                f.set(self.slots.len() as u32, false);
            }
        }
        self.count -= 1;
        if self.ix.is_some() && self.count < self.index_below as usize {
            self.ix = None;
        }
        slot.set.remove(slot.inner)
    }

    fn slot(&self, h: Handle) -> &Slot {
        match self.slots.get(h.0 as usize) {
            Some(Some(s)) => s,
            _ => panic!("handle does not refer to a valid socket"),
        }
    }

    /// The socket behind `h`.
    ///
    /// # Panics
    /// When `h` does not refer to a socket of type `T` (as `SocketSet::get`).
    pub fn get<T: AnySocket<'static>>(&self, h: Handle) -> &T {
        let s = self.slot(h);
        s.set.get::<T>(s.inner)
    }

    /// The socket behind `h`, to change it.
    ///
    /// # Panics
    /// As [`Sockets::get`].
    pub fn get_mut<T: AnySocket<'static>>(&mut self, h: Handle) -> &mut T {
        let s = match self.slots.get_mut(h.0 as usize) {
            Some(Some(s)) => s,
            _ => panic!("handle does not refer to a valid socket"),
        };
        if s.mark == Mark::Clean {
            s.mark = Mark::Touched;
            self.marked.push(h.0);
        }
        if let Some(ix) = &mut self.ix {
            if !s.stale {
                s.stale = true;
                ix.stale.push(h.0);
            }
        }
        s.set.get_mut::<T>(s.inner)
    }

    /// A number that changes whenever what a program reads of the socket behind `h` may
    /// have changed other than by its own calls: a segment arrived for it, or an egress
    /// changed its state or its queues (a timer that closed it; an egress that only
    /// retransmits changes neither). A program that looked at a socket at one version and
    /// finds the same one has nothing new to read from it.
    ///
    /// # Panics
    /// As [`Sockets::get`].
    pub fn version(&self, h: Handle) -> u64 {
        self.slot(h).version
    }

    /// Sets who holds the socket behind `h` (a program, or the pod) and its number there
    /// (`(u32::MAX, 0)` until set), which [`Sockets::tag`] gives back: what
    /// `epoll_event.data` is to Linux's `epoll`. A program told of a changed socket
    /// ([`Sockets::take_changed`]) knows from it, without a search, whether and where it holds
    /// it.
    ///
    /// # Panics
    /// As [`Sockets::get`].
    pub fn set_tag(&mut self, h: Handle, tag: (u32, u32)) {
        if let Some(Some(s)) = self.slots.get_mut(h.0 as usize) {
            s.tag = tag;
        } else {
            panic!("handle does not refer to a valid socket");
        }
    }

    /// Seeds the random starts of the IP ID counters (`pod::ipid`).
    pub(crate) fn seed_ip_ids(&mut self, seed: u64) {
        self.ip_ids = IpIds::new(seed);
    }

    /// Marks the datagram socket behind `h` unconnected (a server answering each peer with
    /// `sendto`): its packets take the IP ID counters per address pair, not one of its own.
    pub(crate) fn set_unconnected(&mut self, h: Handle) {
        if let Some(Some(s)) = self.slots.get_mut(h.0 as usize) {
            s.sender = Sender::Pairs;
        }
    }

    /// Writes the IP IDs of `frames`, which smoltcp sent while a frame went in to the socket
    /// in `slot` ([`Sockets::take_frame`]), or to none (smoltcp itself, or a TIME-WAIT
    /// connection's scratch socket).
    pub(crate) fn stamp_ingress(&mut self, frames: &mut [Frame], now: Instant, slot: Option<u32>) {
        let mut stack = Sender::Stack;
        let mut slot = match slot.and_then(|i| self.slots.get_mut(i as usize)) {
            Some(Some(s)) => Some(s),
            _ => None,
        };
        let sender = match &mut slot {
            Some(s) => s.sender_now(&mut stack),
            None => &mut stack,
        };
        for f in frames.iter_mut() {
            self.ip_ids.stamp(f, sender, now);
        }
        if let Some(s) = slot {
            for f in frames.iter() {
                s.ack.sent(f, now);
            }
        }
    }

    /// The tag set for the socket behind `h`, if there is a socket there.
    pub fn tag(&self, h: Handle) -> Option<(u32, u32)> {
        match self.slots.get(h.0 as usize) {
            Some(Some(s)) => Some(s.tag),
            _ => None,
        }
    }

    /// The sockets served (a segment arrived for them, or an egress served them) since the
    /// last call, into `out` (cleared first), in no order: the only sockets whose
    /// [`Sockets::version`] changed, as `epoll_wait` gives the sockets with news. Some may
    /// have been removed since, or be new sockets in a freed slot, or be there twice.
    pub fn take_changed(&mut self, out: &mut Vec<Handle>) {
        out.clear();
        for &i in &self.changed {
            if let Some(Some(s)) = self.slots.get_mut(i as usize) {
                s.logged = false;
            }
            out.push(Handle(i));
        }
        self.changed.clear();
    }

    /// The sockets served since the last [`Sockets::take_changed`] (in no order, some more
    /// than once).
    pub fn changed_since_taken(&self) -> impl Iterator<Item = Handle> + '_ {
        self.changed.iter().map(|&i| Handle(i))
    }

    /// Notes that slot `i` was served: a new version, in the changed list, and its key to
    /// refresh.
    fn served(&mut self, i: u32) {
        let Some(Some(s)) = self.slots.get_mut(i as usize) else {
            return;
        };
        self.tick += 1;
        s.version = self.tick;
        if !s.logged {
            s.logged = true;
            self.changed.push(i);
        }
        if let Some(ix) = &mut self.ix {
            if !s.stale {
                s.stale = true;
                ix.stale.push(i);
            }
        }
    }

    /// Sets slot `i`'s `at`, in `timers` too.
    fn set_at(&mut self, i: u32, at: Option<Instant>) {
        let Some(Some(s)) = self.slots.get_mut(i as usize) else {
            return;
        };
        if s.at == at {
            return;
        }
        if let Some(ix) = &mut self.ix {
            if let Some(old) = s.at {
                ix.timers.remove(time_key(old), i);
            }
            if let Some(new) = at {
                ix.timers.insert(time_key(new), i);
            }
        }
        s.at = at;
    }

    /// The TCP sockets with peer `remote` and local port `port`, in handle order, with their
    /// tags (a program finds its own connection to a peer without looking at the others).
    pub fn tcp_peers(
        &mut self,
        remote: IpEndpoint,
        port: u16,
    ) -> impl Iterator<Item = (Handle, (u32, u32))> + '_ {
        self.refresh();
        let (raddr, rport) = (bits(remote.addr), remote.port);
        let (from, to) = (
            key(raddr, rport, port, 0),
            key(raddr, rport, port, u32::MAX),
        );
        let slots = &self.slots;
        let indexed = self
            .ix
            .as_ref()
            .map(|ix| ix.tcp.range(from, to).map(|(_, i)| i));
        // Without the index, each socket's key as the index would hold it.
        let each = self.ix.is_none().then(|| {
            slots.iter().enumerate().filter_map(move |(i, s)| {
                let s = s.as_ref()?;
                let k = Key::of(s.set.get::<Socket<'static>>(s.inner)).packed()?;
                (!k.0 && (from..=to).contains(&k.1)).then_some(i as u32)
            })
        });
        indexed
            .into_iter()
            .flatten()
            .chain(each.into_iter().flatten())
            .filter_map(move |i| {
                let s = slots.get(i as usize)?.as_ref()?;
                Some((Handle(i), s.tag))
            })
    }

    /// How many sockets there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// The slot of the socket smoltcp would hand `frame` to (an arriving frame, before
    /// `poll_ingress_single`), if any; that socket is served at the next egress. The set to
    /// hand the frame to is [`Sockets::set_of`] that slot.
    pub fn take_frame(&mut self, iface: &Interface, frame: &[u8]) -> Option<u32> {
        let i = self.taker(iface, frame)?;
        self.served(i);
        let s = self.slots.get_mut(i as usize)?.as_mut()?;
        if s.mark == Mark::Clean {
            self.marked.push(i);
        }
        s.mark = Mark::Dirty;
        Some(i)
    }

    /// The set holding the socket in `slot` ([`Sockets::take_frame`]), or an empty one for
    /// none (smoltcp answers such a frame itself).
    pub fn set_of(&mut self, slot: Option<u32>) -> &mut SocketSet<'static> {
        match slot.and_then(|i| self.slots.get_mut(i as usize)) {
            Some(Some(s)) => &mut s.set,
            _ => &mut self.none,
        }
    }

    /// Transmits what the sockets have to send, as `poll_egress` on one set of them all would,
    /// called until it reports no change: in rounds, each socket in handle order once a round.
    pub fn egress(&mut self, iface: &mut Interface, now: Instant, device: &mut PodDevice) {
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        if self.everything {
            due.extend((0..self.slots.len() as u32).filter(|&i| self.slots[i as usize].is_some()));
        } else {
            for &i in &self.marked {
                if let Some(Some(s)) = self.slots.get_mut(i as usize) {
                    if s.mark == Mark::Dirty || (s.mark == Mark::Touched && s.seen() != s.seen) {
                        s.mark = Mark::Due;
                        if self.ix.is_some() {
                            due.push(i);
                        }
                    }
                }
            }
            // In handle order, as one set's poll visits them.
            if let Some(ix) = &self.ix {
                due.extend(ix.timers.range(0, time_key(now)).map(|(_, i)| i));
                crate::sort::sort_dedup_u32(&mut due);
            } else {
                due.extend(self.slots.iter().enumerate().filter_map(|(i, s)| {
                    let s = s.as_ref()?;
                    (s.mark == Mark::Due || s.at.is_some_and(|t| t <= now)).then_some(i as u32)
                }));
            }
        }
        self.served += due.len() as u64;
        if due.is_empty() {
            // As a poll of the whole set (it only sets the interface's clock then).
            let _ = iface.poll_egress(now, device, &mut self.none);
        }
        loop {
            let mut changed = false;
            for &i in &due {
                if let Some(s) = self.slots[i as usize].as_mut() {
                    let from = device.tx.len();
                    if iface.poll_egress(now, device, &mut s.set) == PollResult::SocketStateChanged
                    {
                        changed = true;
                    }
                    let mut stack = Sender::Stack;
                    let sender = s.sender_now(&mut stack);
                    for f in &mut device.tx[from..] {
                        self.ip_ids.stamp(f, sender, now);
                    }
                    for f in &device.tx[from..] {
                        s.ack.sent(f, now);
                    }
                }
            }
            if !changed {
                break;
            }
        }
        for &i in &due {
            let (at, changed) = match self.slots[i as usize].as_mut() {
                Some(s) => {
                    let seen = s.seen();
                    let changed = seen != s.seen;
                    s.seen = seen;
                    (iface.poll_at(now, &s.set), changed)
                }
                None => continue,
            };
            self.set_at(i, at);
            // A program reads a socket's state and queues, which an egress changes only
            // through its state (a timer that closes it): a retransmission alone is no news.
            if changed {
                self.served(i);
            }
        }
        // Every marked slot was served (new, reached, or changed) or is as it was served
        // last (borrowed, unchanged: its `poll_at` stands).
        for &i in &self.marked {
            if let Some(Some(s)) = self.slots.get_mut(i as usize) {
                s.mark = Mark::Clean;
            }
        }
        self.marked.clear();
        self.everything = false;
        self.due = due;
        // The keys of the sockets just served, while they are in the cache (after a burst of
        // retransmissions, thousands of them).
        self.refresh();
    }

    /// When a socket next needs an egress without any frame arriving (`Instant::ZERO`: now),
    /// as `Interface::poll_at` over one set of them all.
    pub fn poll_at(&mut self, iface: &mut Interface, now: Instant) -> Option<Instant> {
        // Sockets marked since the last egress (added or changed after it): their current
        // `poll_at` (they stay marked: the next egress serves them).
        for k in 0..self.marked.len() {
            let i = self.marked[k];
            let at = match self.slots.get(i as usize) {
                Some(Some(s)) => iface.poll_at(now, &s.set),
                _ => continue,
            };
            self.set_at(i, at);
        }
        let own = iface.poll_at(now, &self.none);
        let first = if let Some(ix) = &self.ix {
            ix.timers.first().map(|(t, _)| time_of(t))
        } else {
            self.slots.iter().flatten().filter_map(|s| s.at).min()
        };
        first.into_iter().chain(own).min()
    }
}

/// smoltcp 0.14's `udp::Socket::accepts` (crate-private), from the socket's public state.
fn udp_accepts(s: &udp::Socket<'_>, dst: Ipv4Address, dport: u16, broadcast: bool) -> bool {
    let e = s.endpoint();
    e.port == dport
        && (e.addr.is_none()
            || e.addr == Some(IpAddress::Ipv4(dst))
            || broadcast
            || dst.is_multicast())
}

/// smoltcp 0.14's `tcp::Socket::accepts` (crate-private), from the socket's public state.
fn tcp_accepts(
    s: &tcp::Socket<'_>,
    (src, sport): (Ipv4Address, u16),
    (dst, dport): (Ipv4Address, u16),
    ack: bool,
    rst: bool,
) -> bool {
    let state = s.state();
    if state == tcp::State::Closed {
        return false;
    }
    if state == tcp::State::Listen && (ack || rst) {
        return false;
    }
    match (s.local_endpoint(), s.remote_endpoint()) {
        (Some(l), Some(r)) => {
            l.addr == IpAddress::Ipv4(dst)
                && l.port == dport
                && r.addr == IpAddress::Ipv4(src)
                && r.port == sport
        }
        _ => {
            let l = s.listen_endpoint();
            l.addr.is_none_or(|a| a == IpAddress::Ipv4(dst)) && dport != 0 && dport == l.port
        }
    }
}

#[cfg(test)]
#[path = "sockets_tests.rs"]
mod tests;
