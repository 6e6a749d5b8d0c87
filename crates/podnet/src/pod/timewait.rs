//! Connections in TIME-WAIT, kept out of the pod's `SocketSet`.
//!
//! smoltcp polls every socket of a set on every `poll_egress` and `poll_at`, so sockets waiting
//! out TIME-WAIT (10 s in smoltcp) would make every step of a busy pod cost time in proportion
//! to the connections it closed in the last 10 s, and each would keep its two socket buffers
//! (128 KiB with the default 64 KiB each way) for those 10 s. Linux swaps a socket that reaches
//! TIME-WAIT for a small `inet_timewait_sock` in its own hash table; a podnet pod does the same:
//!
//! - **A record** ([`Record`], about 60 bytes of frame plus four numbers) replaces the socket
//!   when the socket's last segment, the ACK of the peer's FIN, left in the same service: that
//!   ACK carries everything a TIME-WAIT socket still says. The socket goes back to the pod's
//!   pool at once, buffers included. The record answers later segments of its connection with
//!   exactly what smoltcp 0.14's `tcp::Socket::process` does in TIME-WAIT (see
//!   [`Record::segment`]), and ends at the same deadline.
//! - **The socket itself** is kept when it cannot be summed up that way (its last ACK left in
//!   an earlier service, unread data, TCP options on the ACK). It is stored keyed by (local
//!   port, remote endpoint) with the time smoltcp would close it; a frame for its connection is
//!   processed by the same smoltcp socket, placed alone in a scratch set, and it is polled once
//!   at its deadline, where it closes as it would in the full set.
//!
//! A connection waits 60 s, Linux's `TCP_TIMEWAIT_LEN`, where smoltcp closes its socket after
//! 10 s (`CLOSE_DELAY`): a record's deadline is smoltcp's plus 50 s, and each restart (a
//! retransmitted FIN, another segment outside the window) sets it 60 s on. A socket kept as a
//! socket closes when smoltcp closes it; its connection is then held, port and count, for the
//! 50 s left, without a socket to answer a late segment (the pod's stack sends a RST, where
//! Linux's TIME-WAIT would send an ACK).
//!
//! Where a record differs from the socket it replaces (smoltcp keeps these private):
//! - its challenge-ACK rate limit starts fresh, as if the connection sent no challenge ACK in
//!   its last second;
//! - its replies reuse the Ethernet header of the captured ACK, where smoltcp would look the
//!   neighbour up again (and refresh its expiry from the arriving frame).
//!
//! `keep_sockets` turns records off; the differential test below runs both ways and compares
//! every frame.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpEndpoint, IpProtocol,
    Ipv4Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use crate::link::Frame;

/// (local port, remote endpoint).
pub type Key = (u16, IpEndpoint);

/// Linux's TIME-WAIT length (`TCP_TIMEWAIT_LEN`), restarted by out-of-window segments.
const TIME_WAIT_LEN: Duration = Duration::from_secs(60);
/// smoltcp's TIME-WAIT length (`CLOSE_DELAY`): a socket kept as a socket closes then, and its
/// connection is held (port and count) for the rest of Linux's length.
const CLOSE_DELAY: Duration = Duration::from_secs(10);
/// smoltcp's challenge-ACK rate limit: one a second.
const CHALLENGE_EVERY: Duration = Duration::from_secs(1);

/// What a socket in TIME-WAIT still knows, taken from its last segment.
struct Record {
    /// That segment (the ACK of the peer's FIN), a whole frame: every answer is this frame.
    ack: Frame,
    /// SND.NXT: the only acknowledgement number the socket accepts.
    snd_nxt: TcpSeqNumber,
    /// RCV.NXT: the start of the receive window.
    rcv_nxt: TcpSeqNumber,
    /// The end of the window the ACK advertised.
    wnd_end: TcpSeqNumber,
    /// No challenge ACK before this.
    challenge_at: Instant,
}

/// What a record did with a segment.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Dropped without answer.
    Ignore,
    /// Answered with the record's ACK.
    Ack,
    /// An in-window RST: the connection is gone.
    Closed,
}

impl Record {
    /// A record of `sock` (in TIME-WAIT, nothing pending) from `ack`, the last frame it sent:
    /// `None` unless that is a bare ACK with no option but a timestamp and the socket holds
    /// no unread data (so its window is still the one the frame advertised).
    fn capture(sock: &tcp::Socket<'static>, ack: &[u8]) -> Option<Record> {
        let eth = EthernetFrame::new_checked(ack).ok()?;
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        let bare = tcp.ack() && !(tcp.syn() || tcp.fin() || tcp.rst() || tcp.psh());
        let options = tcp.header_len() == 20 || ts_echo_at(tcp.options()).is_some();
        if !bare || !options || !tcp.payload().is_empty() || sock.recv_queue() != 0 {
            return None;
        }
        // smoltcp's window shift: the bits of the receive capacity beyond 16, or 0 when the
        // peer did not offer window scaling; the advertised window tells which.
        let cap = sock.recv_capacity();
        let bits = usize::BITS - cap.leading_zeros();
        let scaled = bits.saturating_sub(16);
        let field = |shift: u32| u16::try_from(cap >> shift).unwrap_or(u16::MAX);
        let win = tcp.window_len();
        let shift = if win == field(scaled) {
            scaled
        } else if win == field(0) {
            0
        } else {
            return None;
        };
        let rcv_nxt = tcp.ack_number();
        let mut ack: Frame = ack.to_vec().into();
        // Linux answers from TIME-WAIT with TCP's control socket: IP ID 0 (`pod::ipid`), where
        // the last ACK took the connection's own.
        let mut ip = Ipv4Packet::new_unchecked(&mut ack[14..]);
        ip.set_ident(0);
        ip.fill_checksum();
        Some(Record {
            snd_nxt: tcp.seq_number(),
            rcv_nxt,
            wnd_end: rcv_nxt + ((win as usize) << shift),
            challenge_at: Instant::from_secs(0),
            ack,
        })
    }

    /// The ACK that answers a segment: the recorded one, echoing the segment's TSval as
    /// smoltcp's does, or without a timestamp when the segment had none (smoltcp's reply then
    /// carries none either). Its own TSval is the pod's to fill in as it leaves.
    fn answer(&self, tsval: Option<u32>) -> Frame {
        let mut f = self.ack.clone();
        let Some(t) = tcp_at(&f) else {
            return f;
        };
        let Some(ecr) = f.get(t + 20..t + 32).and_then(ts_echo_at) else {
            return f;
        };
        match tsval {
            Some(v) => f[t + 20 + ecr..t + 24 + ecr].copy_from_slice(&v.to_be_bytes()),
            None => {
                // The 12 bytes of options out: a 20-byte header, 12 bytes less in the packet.
                f.drain(t + 20..t + 32);
                f[t + 12] = 5 << 4;
                let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
                ip.set_total_len(ip.total_len() - 12);
                ip.fill_checksum();
            }
        }
        f
    }

    /// smoltcp's `tcp::Socket::process` for a socket in TIME-WAIT that has acknowledged
    /// everything (SND.UNA = SND.NXT, nothing to send, empty receive buffer): the
    /// acknowledgement check, the RFC 9293 acceptability test, the timer restart for segments
    /// outside the window and the state machine, which closes on an in-window RST and ignores
    /// everything else. `deadline` is restarted where smoltcp restarts its close timer.
    fn segment(&mut self, repr: &TcpRepr, now: Instant, deadline: &mut Instant) -> Outcome {
        if repr.control != TcpControl::Rst {
            match repr.ack_number {
                // Every segment after the SYN must acknowledge something.
                None => return Outcome::Ignore,
                // A duplicate ACK.
                Some(a) if a < self.snd_nxt => return Outcome::Ignore,
                // An ACK of something never sent.
                Some(a) if a > self.snd_nxt => return self.challenge(now),
                Some(_) => {}
            }
        }
        let (start, end) = (self.rcv_nxt, self.wnd_end);
        let seg_start = repr.seq_number;
        let seg_end = repr.seq_number + repr.payload.len();
        let in_window = match (seg_start == seg_end, start == end) {
            // A keep-alive (or a FIN retransmitted after our ACK of it was lost).
            (true, _) if seg_end == start - 1 => false,
            (true, true) => start == seg_start,
            (true, false) => start <= seg_start && seg_start < end,
            (false, true) => false,
            (false, false) => {
                (start <= seg_start && seg_start < end) || (start < seg_end && seg_end <= end)
            }
        };
        if !in_window {
            if repr.control == TcpControl::Rst {
                return Outcome::Ignore;
            }
            *deadline = now + TIME_WAIT_LEN;
            let data = !repr.payload.is_empty()
                && matches!(
                    repr.control,
                    TcpControl::None | TcpControl::Psh | TcpControl::Fin
                );
            return if data {
                Outcome::Ack
            } else {
                self.challenge(now)
            };
        }
        if repr.control == TcpControl::Rst {
            Outcome::Closed
        } else {
            Outcome::Ignore
        }
    }

    /// A challenge ACK, at most one a second.
    fn challenge(&mut self, now: Instant) -> Outcome {
        if now < self.challenge_at {
            return Outcome::Ignore;
        }
        self.challenge_at = now + CHALLENGE_EVERY;
        Outcome::Ack
    }
}

/// The key and TCP header of an arriving frame addressed to `mac` and `ip`, when every layer
/// parses (smoltcp drops it otherwise). Its checksums are not verified again, as the pod's
/// Where the TCP header of an Ethernet frame holding IPv4 TCP starts.
fn tcp_at(frame: &[u8]) -> Option<usize> {
    let ip = Ipv4Packet::new_checked(frame.get(14..)?).ok()?;
    (ip.next_header() == IpProtocol::Tcp).then_some(14 + usize::from(ip.header_len()))
}

/// Where TSecr is in `opts`, when they are a timestamp and padding only (smoltcp's TS, EOL,
/// EOL or Linux's NOP, NOP, TS).
fn ts_echo_at(opts: &[u8]) -> Option<usize> {
    match opts {
        [8, 10, _, _, _, _, _, _, _, _, 0, 0] => Some(6),
        [1, 1, 8, 10, _, _, _, _, _, _, _, _] => Some(8),
        _ => None,
    }
}

/// stack does not verify them: [`super::Pod::deliver`] dropped a frame whose checksums fail.
fn arriving(frame: &[u8], mac: EthernetAddress, ip: IpAddress) -> Option<(Key, TcpRepr<'_>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.dst_addr() != mac || eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ipv4 = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ok = IpAddress::Ipv4(ipv4.dst_addr()) == ip
        && !ipv4.more_frags()
        && ipv4.frag_offset() == 0
        && ipv4.next_header() == IpProtocol::Tcp;
    if !ok {
        return None;
    }
    let (src, dst) = (
        IpAddress::Ipv4(ipv4.src_addr()),
        IpAddress::Ipv4(ipv4.dst_addr()),
    );
    let tcp = TcpPacket::new_checked(ipv4.payload()).ok()?;
    let repr = TcpRepr::parse(&tcp, &src, &dst, &ChecksumCapabilities::ignored()).ok()?;
    Some(((repr.dst_port, IpEndpoint::new(src, repr.src_port)), repr))
}

/// The TIME-WAIT connections of one pod.
pub struct TimeWait {
    socks: BTreeMap<Key, (tcp::Socket<'static>, Instant)>,
    /// By key alone, never walked (so not ordered): every arriving frame of the pod looks its
    /// connection up here while any is in TIME-WAIT, and a hash lookup stays one or two
    /// cache lines however many there are.
    records: HashMap<Key, (Record, Instant), FixedState>,
    deadlines: BTreeSet<(Instant, Key)>,
    /// Sockets taken out for frames of the current service, with their key and the time
    /// smoltcp closes them.
    scratch: SocketSet<'static>,
    taken: Vec<(Key, SocketHandle, Instant)>,
    /// Connections whose socket smoltcp closed at the end of its 10 s, held until Linux's 60 s
    /// are over: their port stays taken, and they count as waiting.
    held: BTreeSet<Key>,
    /// Keys of records that ended, whose ports to free.
    ended: Vec<Key>,
    /// Keep every socket, never a record (for the differential test).
    keep_sockets: bool,
    /// Segments processed by connections here.
    pub segments: u64,
}

impl Default for TimeWait {
    fn default() -> Self {
        TimeWait {
            socks: BTreeMap::new(),
            records: HashMap::with_hasher(FixedState::with_seed(0)),
            deadlines: BTreeSet::new(),
            scratch: SocketSet::new(Vec::new()),
            taken: Vec::new(),
            held: BTreeSet::new(),
            ended: Vec::new(),
            keep_sockets: false,
            segments: 0,
        }
    }
}

/// What to do with a socket after [`TimeWait::settle`] looked at it.
pub enum Settled {
    /// Closed: free its port, recycle it.
    Closed(tcp::Socket<'static>, Key),
    /// Replaced by a record, or closed at the end of smoltcp's TIME-WAIT and held for the rest
    /// of Linux's: the port stays taken; recycle the socket.
    Recorded(tcp::Socket<'static>),
    /// Not in TIME-WAIT with a future deadline: back to the pod's set.
    Active(tcp::Socket<'static>, Key),
}

/// What [`TimeWait::answer`] did with an arriving frame.
pub enum Answered {
    /// No record of its connection: the stack handles it.
    No,
    /// Handled (the reply, if any, is in the device's output).
    Yes,
    /// Handled, and the connection ended (an RST): free its port.
    Closed(Key),
}

impl TimeWait {
    /// Keeps sockets instead of records (see the module's documentation).
    #[cfg(test)]
    pub fn keep_sockets(&mut self) {
        self.keep_sockets = true;
    }

    /// Connections held as records, as sockets, and past their socket's close.
    #[cfg(test)]
    pub fn kinds(&self) -> (usize, usize, usize) {
        (self.records.len(), self.socks.len(), self.held.len())
    }

    /// Connections waiting.
    pub fn len(&self) -> usize {
        self.socks.len() + self.records.len() + self.taken.len() + self.held.len()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The key of an arriving frame when it may belong to a connection here (a TCP segment,
    /// and the store not empty).
    pub fn key_of(&self, frame: &[u8]) -> Option<Key> {
        if self.socks.is_empty() && self.taken.is_empty() && self.records.is_empty() {
            return None;
        }
        super::tcp_of(frame).map(|(from, port, _, _)| (port, from))
    }

    /// Answers `frame` (for the pod at `mac`, `ip`) when a record holds its connection, as the
    /// socket would have; its reply, if any, is appended to `tx`.
    pub fn answer(
        &mut self,
        key: Key,
        frame: &[u8],
        (mac, ip): (EthernetAddress, IpAddress),
        now: Instant,
        tx: &mut Vec<Frame>,
    ) -> Answered {
        let Some((rec, at)) = self.records.get_mut(&key) else {
            return Answered::No;
        };
        let Some((k, repr)) = arriving(frame, mac, ip) else {
            return Answered::No;
        };
        if k != key {
            return Answered::No;
        }
        self.segments += 1;
        let before = *at;
        match rec.segment(&repr, now, at) {
            Outcome::Ignore => {}
            Outcome::Ack => tx.push(rec.answer(repr.timestamp.map(|t| t.tsval))),
            Outcome::Closed => {
                self.records.remove(&key);
                self.deadlines.remove(&(before, key));
                return Answered::Closed(key);
            }
        }
        if *at != before {
            self.deadlines.remove(&(before, key));
            self.deadlines.insert((*at, key));
        }
        Answered::Yes
    }

    /// When the segment with `key` belongs to a socket here, the set to process it with (the
    /// socket alone).
    pub fn claim(&mut self, key: Key) -> Option<&mut SocketSet<'static>> {
        if !self.taken.iter().any(|(k, _, _)| *k == key) {
            let (sock, at) = self.socks.remove(&key)?;
            self.deadlines.remove(&(at, key));
            let h = self.scratch.add(sock);
            self.taken.push((key, h, at));
        }
        self.segments += 1;
        Some(&mut self.scratch)
    }

    /// Ends the records whose deadline passed and polls the sockets taken out for frames (and
    /// any whose deadline passed) for egress at `now`, as the pod's full set would have been.
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
                self.taken.push((key, h, at));
            } else if self.records.remove(&key).is_some() || self.held.remove(&key) {
                self.ended.push(key);
            }
        }
        if self.taken.is_empty() {
            return;
        }
        while iface.poll_egress(now, device, &mut self.scratch)
            == smoltcp::iface::PollResult::SocketStateChanged
        {}
    }

    /// Keys of the records that ended since the last call.
    pub fn take_ended(&mut self) -> Vec<Key> {
        core::mem::take(&mut self.ended)
    }

    /// Moves the sockets taken out back into the store, or hands them out (`out`) when closed,
    /// recorded or no longer waiting. `tx` holds the frames sent in this service.
    pub fn put_back(
        &mut self,
        iface: &mut Interface,
        now: Instant,
        tx: &[Frame],
        out: &mut Vec<Settled>,
    ) {
        for (key, h, closes) in core::mem::take(&mut self.taken) {
            let Some(sock) = into_tcp(self.scratch.remove(h)) else {
                continue;
            };
            // Closed by its timer (not by an RST): Linux would keep the connection 50 s more.
            if sock.state() == tcp::State::Closed && now >= closes {
                self.held.insert(key);
                self.deadlines
                    .insert((closes + (TIME_WAIT_LEN - CLOSE_DELAY), key));
                out.push(Settled::Recorded(sock));
                continue;
            }
            if let Some(s) = self.settle(iface, now, sock, key, tx) {
                out.push(s);
            }
        }
    }

    /// Stores `sock` (whose local port and remote endpoint are `key`) if it is in TIME-WAIT
    /// with a deadline after `now`, as a record when its last segment is in `tx` (the frames
    /// sent in this service); otherwise returns it.
    pub fn settle(
        &mut self,
        iface: &mut Interface,
        now: Instant,
        mut sock: tcp::Socket<'static>,
        key: Key,
        tx: &[Frame],
    ) -> Option<Settled> {
        match sock.state() {
            tcp::State::Closed => return Some(Settled::Closed(sock, key)),
            tcp::State::TimeWait => {}
            _ => return Some(Settled::Active(sock, key)),
        }
        let h = self.scratch.add(sock);
        let at = iface.poll_at(now, &self.scratch);
        let sock_back = into_tcp(self.scratch.remove(h))?;
        sock = sock_back;
        let at = match at {
            Some(at) if at > now => at,
            _ => return Some(Settled::Active(sock, key)),
        };
        // Its last segment left in this service, and what it waits for next is its close timer
        // (a pending delayed ACK, 10 ms, would come first).
        let last = (!self.keep_sockets && at >= now + CHALLENGE_EVERY)
            .then(|| tx.iter().rev().find(|f| sent_by(f, key)))
            .flatten();
        if let Some(rec) = last.and_then(|f| Record::capture(&sock, f)) {
            // smoltcp's 10 s timer, lengthened to Linux's 60 s.
            let at = at + (TIME_WAIT_LEN - CLOSE_DELAY);
            self.deadlines.insert((at, key));
            self.records.insert(key, (rec, at));
            // The record answers from now on; the socket is only buffers to reuse.
            sock.abort();
            return Some(Settled::Recorded(sock));
        }
        self.deadlines.insert((at, key));
        self.socks.insert(key, (sock, at));
        None
    }
}

/// Whether `frame` is a TCP segment from local port `key.0` to `key.1`.
fn sent_by(frame: &[u8], (port, remote): Key) -> bool {
    let Some(eth) = EthernetFrame::new_checked(frame).ok() else {
        return false;
    };
    let Some(ip) = Ipv4Packet::new_checked(eth.payload()).ok() else {
        return false;
    };
    if ip.next_header() != IpProtocol::Tcp || IpAddress::Ipv4(ip.dst_addr()) != remote.addr {
        return false;
    }
    TcpPacket::new_checked(ip.payload())
        .is_ok_and(|t| t.src_port() == port && t.dst_port() == remote.port)
}

/// Only TCP sockets enter the store.
fn into_tcp(s: smoltcp::socket::Socket<'static>) -> Option<tcp::Socket<'static>> {
    match s {
        smoltcp::socket::Socket::Tcp(t) => Some(t),
        _ => None,
    }
}
