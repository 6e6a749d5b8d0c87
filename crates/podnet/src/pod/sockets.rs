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

use alloc::vec::Vec;

use smoltcp::iface::{Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::{tcp, AnySocket, Socket};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket,
    UdpPacket,
};

/// A socket of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(u32);

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
}

impl Slot {
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
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            slots: Vec::new(),
            count: 0,
            marked: Vec::new(),
            everything: false,
            none: SocketSet::new(Vec::new()),
            due: Vec::new(),
            served: 0,
            tick: 0,
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
        };
        self.tick += 1;
        slot.seen = slot.seen();
        // The first empty slot, as `SocketSet::add` finds it.
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(slot);
                i as u32
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.count += 1;
        self.marked.push(i);
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
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        self.count -= 1;
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
        s.set.get_mut::<T>(s.inner)
    }

    /// A number that changes whenever the socket behind `h` may have changed other than by
    /// a program's own calls (a segment arrived for it, or it was served at an egress: its
    /// timers, the segments it sent). A program that looked at a socket at one version and
    /// finds the same one has nothing new to read from it.
    ///
    /// # Panics
    /// As [`Sockets::get`].
    pub fn version(&self, h: Handle) -> u64 {
        self.slot(h).version
    }

    /// How many sockets there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// The set to hand `frame` to (an arriving frame, before `poll_ingress_single`): that of
    /// the socket smoltcp would give it to, else an empty one. The socket is served at the
    /// next egress.
    pub fn for_frame(&mut self, iface: &Interface, frame: &[u8]) -> &mut SocketSet<'static> {
        match self.taker(iface, frame) {
            Some(i) => {
                let Some(s) = self.slots[i as usize].as_mut() else {
                    return &mut self.none;
                };
                self.tick += 1;
                s.version = self.tick;
                if s.mark == Mark::Clean {
                    self.marked.push(i);
                }
                s.mark = Mark::Dirty;
                &mut s.set
            }
            None => &mut self.none,
        }
    }

    /// The slot whose socket takes `frame`, as smoltcp's `process_tcp` and `process_udp` pick
    /// it (the first in order that `accepts` it); notes an ARP frame.
    fn taker(&mut self, iface: &Interface, frame: &[u8]) -> Option<u32> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        match eth.ethertype() {
            EthernetProtocol::Ipv4 => {}
            EthernetProtocol::Arp => {
                self.everything = true;
                return None;
            }
            _ => return None,
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        match ip.next_header() {
            IpProtocol::Tcp => {
                let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
                // smoltcp's `TcpControl::Rst` (other flag mixes with RST do not parse).
                let rst = tcp.rst() && !tcp.syn() && !tcp.fin();
                let (sport, dport, ack) = (tcp.src_port(), tcp.dst_port(), tcp.ack());
                self.position(|s| match s {
                    Socket::Tcp(s) => tcp_accepts(s, (src, sport), (dst, dport), ack, rst),
                    _ => false,
                })
            }
            IpProtocol::Udp => {
                let udp = UdpPacket::new_checked(ip.payload()).ok()?;
                let dport = udp.dst_port();
                let broadcast = dst.is_broadcast()
                    || iface.ip_addrs().iter().any(|c| match c {
                        smoltcp::wire::IpCidr::Ipv4(c) => c.broadcast() == Some(dst),
                    });
                self.position(|s| match s {
                    Socket::Udp(s) => {
                        let e = s.endpoint();
                        e.port == dport
                            && (e.addr.is_none()
                                || e.addr == Some(IpAddress::Ipv4(dst))
                                || broadcast
                                || dst.is_multicast())
                    }
                    _ => false,
                })
            }
            _ => None,
        }
    }

    fn position(&self, mut takes: impl FnMut(&Socket<'static>) -> bool) -> Option<u32> {
        self.slots.iter().enumerate().find_map(|(i, s)| {
            let s = s.as_ref()?;
            takes(s.set.get::<Socket<'static>>(s.inner)).then_some(i as u32)
        })
    }

    /// Transmits what the sockets have to send, as `poll_egress` on one set of them all would,
    /// called until it reports no change: in rounds, each socket in handle order once a round.
    pub fn egress<D: Device + ?Sized>(
        &mut self,
        iface: &mut Interface,
        now: Instant,
        device: &mut D,
    ) {
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        for &i in &self.marked {
            if let Some(Some(s)) = self.slots.get_mut(i as usize) {
                if s.mark == Mark::Dirty || (s.mark == Mark::Touched && s.seen() != s.seen) {
                    s.mark = Mark::Due;
                }
            }
        }
        // In handle order, as one set's poll visits them.
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(s) = s {
                if self.everything || s.mark == Mark::Due || s.at.is_some_and(|t| t <= now) {
                    due.push(i as u32);
                }
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
                    if iface.poll_egress(now, device, &mut s.set) == PollResult::SocketStateChanged
                    {
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        for &i in &due {
            if let Some(s) = self.slots[i as usize].as_mut() {
                s.seen = s.seen();
                s.at = iface.poll_at(now, &s.set);
                self.tick += 1;
                s.version = self.tick;
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
    }

    /// When a socket next needs an egress without any frame arriving (`Instant::ZERO`: now),
    /// as `Interface::poll_at` over one set of them all.
    pub fn poll_at(&mut self, iface: &mut Interface, now: Instant) -> Option<Instant> {
        // Sockets marked since the last egress (added or changed after it): their current
        // `poll_at` (they stay marked: the next egress serves them).
        for &i in &self.marked {
            if let Some(Some(s)) = self.slots.get_mut(i as usize) {
                s.at = iface.poll_at(now, &s.set);
            }
        }
        let own = iface.poll_at(now, &self.none);
        self.slots
            .iter()
            .flatten()
            .filter_map(|s| s.at)
            .chain(own)
            .min()
    }
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
mod tests {
    use super::*;
    use crate::link::Frame;
    use crate::pod::PodDevice;
    use alloc::vec;
    use smoltcp::iface::Config;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetRepr, HardwareAddress, IpCidr,
        Ipv4Cidr, TcpSeqNumber,
    };

    const ME: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 10, 244, 0, 2]);
    const GW: Ipv4Address = Ipv4Address::new(10, 244, 0, 1);
    const GW_MAC: EthernetAddress = EthernetAddress([2, 0, 10, 244, 0, 1]);
    const PEER: Ipv4Address = Ipv4Address::new(10, 244, 1, 5);

    fn iface(dev: &mut PodDevice) -> Interface {
        let mut config = Config::new(HardwareAddress::Ethernet(MAC));
        config.random_seed = 7;
        let mut iface = Interface::new(config, dev, Instant::ZERO);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(ME, 24)));
        });
        let _ = iface.routes_mut().add_default_ipv4_route(GW);
        iface
    }

    fn ethernet(ethertype: EthernetProtocol, payload: &[u8]) -> Frame {
        let mut f = vec![0; 14 + payload.len()];
        EthernetRepr {
            src_addr: GW_MAC,
            dst_addr: MAC,
            ethertype,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        f[14..].copy_from_slice(payload);
        f
    }

    fn arp_reply() -> Frame {
        let mut p = vec![0; 28];
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: GW_MAC,
            source_protocol_addr: GW,
            target_hardware_addr: MAC,
            target_protocol_addr: ME,
        }
        .emit(&mut ArpPacket::new_unchecked(&mut p[..]));
        ethernet(EthernetProtocol::Arp, &p)
    }

    /// The peer's answer to a SYN from `port`: a SYN-ACK, an RST, or nothing.
    fn answer(frame: &[u8]) -> Option<Frame> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        let (port, seq) = (tcp.src_port(), tcp.seq_number() + 1);
        let ip = match (tcp.syn() && !tcp.ack(), port % 3) {
            (true, 0) => crate::packet::tcp(PEER, 80, ME, port, "R", 0, 0, 0),
            (true, 1) => crate::packet::tcp(PEER, 80, ME, port, "SA", 5000, to_u32(seq), 0),
            (false, _) if !tcp.payload().is_empty() && port % 2 == 0 => {
                let ack = seq + tcp.payload().len() - 1;
                crate::packet::tcp(PEER, 80, ME, port, "PA", 5001, to_u32(ack), 100)
            }
            _ => return None,
        };
        Some(ethernet(EthernetProtocol::Ipv4, &ip))
    }

    fn to_u32(s: TcpSeqNumber) -> u32 {
        s.0 as u32
    }

    fn socket() -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 4096]),
            tcp::SocketBuffer::new(vec![0; 4096]),
        )
    }

    /// The same program over one `SocketSet` polled as smoltcp's `poll` does it and over
    /// `Sockets`: connects at different times, SYNs retransmitted while the gateway's address
    /// is unknown and after, answers that establish or reset, data sent and received, aborts,
    /// sockets removed and their handles reused. Every frame and every wake-up time is the
    /// same, while `Sockets` serves far fewer sockets.
    #[test]
    fn the_busy_sockets_send_what_one_set_of_them_all_sends() {
        let (mut da, mut db) = (PodDevice::default(), PodDevice::default());
        let (mut ia, mut ib) = (iface(&mut da), iface(&mut db));
        let mut set = SocketSet::new(Vec::new());
        let mut socks = Sockets::default();
        let (mut ha, mut hb) = (Vec::new(), Vec::new());
        let mut now = Instant::ZERO;
        let mut inbox: Vec<Frame> = Vec::new();
        let (mut frames, mut all) = (0, 0);
        for step in 0u32..600 {
            if step == 40 {
                inbox.push(arp_reply());
            }
            for f in inbox.drain(..) {
                da.rx.push_back(f.clone());
                db.rx.push_back(f);
                ia.poll_ingress_single(now, &mut da, &mut set);
                let s = socks.for_frame(&ib, db.rx.front().unwrap());
                ib.poll_ingress_single(now, &mut db, s);
            }
            if step % 5 == 0 && ha.len() < 40 {
                let port = 40_000 + step as u16;
                let mut s = socket();
                s.connect(ia.context(), (PEER, 80), port).unwrap();
                ha.push(set.add(s));
                let mut s = socket();
                s.connect(ib.context(), (PEER, 80), port).unwrap();
                hb.push(socks.add(s));
            }
            let k = step as usize % 40;
            if k < ha.len() {
                let (a, b) = (
                    set.get_mut::<tcp::Socket>(ha[k]),
                    socks.get_mut::<tcp::Socket>(hb[k]),
                );
                match step % 9 {
                    0 | 4 if a.can_send() => {
                        assert_eq!(a.send_slice(b"GET /"), b.send_slice(b"GET /"));
                    }
                    2 => {
                        let mut buf = [0; 64];
                        assert_eq!(a.recv_slice(&mut buf), b.recv_slice(&mut buf));
                    }
                    7 if step % 2 == 0 => {
                        a.abort();
                        b.abort();
                    }
                    8 if a.state() == tcp::State::Closed => {
                        set.remove(ha.swap_remove(k));
                        socks.remove(hb.swap_remove(k));
                    }
                    6 => {
                        a.close();
                        b.close();
                    }
                    _ => {}
                }
            }
            while ia.poll_egress(now, &mut da, &mut set) == PollResult::SocketStateChanged {}
            socks.egress(&mut ib, now, &mut db);
            assert_eq!(da.tx, db.tx, "step {step} at {now}");
            all += ha.len() as u64;
            frames += da.tx.len();
            inbox.extend(da.tx.iter().filter_map(|f| answer(f)));
            da.tx.clear();
            db.tx.clear();
            let (a, b) = (ia.poll_at(now, &set), socks.poll_at(&mut ib, now));
            assert_eq!(a, b, "step {step}: next wake-up");
            let next = now + smoltcp::time::Duration::from_millis(23);
            now = a.map_or(next, |t| t.max(now).min(next));
            if a.is_some_and(|t| t <= now) && inbox.is_empty() {
                now += smoltcp::time::Duration::from_micros(1);
            }
        }
        assert!(frames > 200, "{frames} frames");
        // Served: a socket per egress in all, against one set's every socket every time.
        assert!(socks.served * 4 < all, "{} of {all}", socks.served);
    }

    #[test]
    fn handles_are_reused_lowest_first_as_smoltcp_does() {
        let mut set = SocketSet::new(Vec::new());
        let mut ours = Sockets::default();
        let a: Vec<_> = (0..5).map(|_| set.add(socket())).collect();
        let b: Vec<_> = (0..5).map(|_| ours.add(socket())).collect();
        for i in [3, 1, 4] {
            set.remove(a[i]);
            ours.remove(b[i]);
        }
        assert_eq!(ours.len(), 2);
        for _ in 0..4 {
            let (x, y) = (set.add(socket()), ours.add(socket()));
            assert_eq!(alloc::format!("{x}"), alloc::format!("#{}", y.0));
        }
        // The last one out: the next goes where it was.
        let last = set.add(socket());
        set.remove(last);
        let y = ours.add(socket());
        ours.remove(y);
        let (x, y) = (set.add(socket()), ours.add(socket()));
        assert_eq!(alloc::format!("{x}"), alloc::format!("#{}", y.0));
        assert_eq!(ours.len(), 7);
    }
}
