//! When a pod's TCP acknowledges what it receives: Linux's delayed-ACK rules, which smoltcp's
//! own (an ACK after 10 ms, or at once past one segment unacknowledged) do not follow.
//!
//! Measured on Linux 6.18 in network namespaces (`tcpdump`), an HTTP exchange between two
//! Linux hosts is ten packets: `S`, `S.`, `.`, `P.`, `.`, `P.`, `.`, `F.`, `F.`, `.`. The client
//! acknowledges the SYN-ACK at once, and each side acknowledges the other's first data at once,
//! before its application has read it. On a kept-alive connection the next request and answer
//! carry the acknowledgements: two packets, no bare ACK. The rules behind that, from
//! `net/ipv4/tcp_input.c` and `tcp_output.c`, per connection:
//!
//! - **Quick ACKs** (`tcp_incr_quickack`): the first data received starts the delayed-ACK
//!   engine with 16 quick ACKs (`TCP_MAX_QUICKACKS`; fewer only for a receive window under 16
//!   segments: `rcv_wnd / (2 * rcv_mss)`), each spent by an ACK of new data. While any are
//!   left and the connection is not interactive, every segment is acknowledged at once. A gap
//!   of more than the RTO (200 ms) between data starts them again.
//! - **Ping-pong** (`inet_csk_inc_pingpong_cnt`, threshold 1): a connection that sends data
//!   within `ato` (40 ms, `TCP_ATO_MIN`) of receiving some is interactive; from then on its
//!   ACKs wait for data to ride on. A FIN received in ESTABLISHED makes it interactive too
//!   (`tcp_fin`: the application is expected to close). The delayed-ACK timer firing ends it.
//! - **At once anyway** (`__tcp_ack_snd_check`): more than one full segment (`rcv_mss`)
//!   unacknowledged; a FIN received after our own (`tcp_fin` in FIN-WAIT); and when the
//!   application reads a segment shorter than `rcv_mss` or pushed (`ICSK_ACK_PUSHED`,
//!   `tcp_measure_rcv_mss`) and the connection is not interactive, or two such in a row
//!   (`ICSK_ACK_PUSHED2`) whether or not it is (`tcp_cleanup_rbuf`). A pod's programs read
//!   what arrives at once, so that ACK leaves before their answer, as it does from Linux.
//! - **Otherwise delayed** (`tcp_send_delayed_ack`): by `ato`, at most the smoothed RTT's
//!   eighth but never under 40 ms (`TCP_DELACK_MIN`), so 40 ms on a cluster's links: 10 jiffies
//!   at `HZ=250`, rounded up to the next jiffy by the timer wheel (`calc_index`), so the ACK
//!   leaves 40 to 44 ms after the segment (Linux measured: 41.3 ms). Data or a FIN sent
//!   before then carries it.
//!
//! The pod applies the decision through smoltcp's own timer, before each segment goes in
//! (`set_ack_delay`: zero for at once, the time left for delayed), and sends an ACK due at
//! once right after the segment, before its programs run (as Linux sends it in softirq,
//! before the application is scheduled).
//!
//! Where smoltcp cannot follow: a FIN alone never starts smoltcp's delayed-ACK timer
//! (`process` returns before it for a segment without payload), so when a FIN's ACK waits in
//! Linux and the application does not close at once, the pod acknowledges the FIN at once;
//! and once a delayed ACK is pending, smoltcp sends another segment's ACK early only past one
//! full segment (`remote_mss`), not for a second short pushed one.

use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};

/// A jiffy at `CONFIG_HZ=250`, in milliseconds.
const JIFFY_MS: i64 = 4;
/// `TCP_ATO_MIN` and `TCP_DELACK_MIN`: 40 ms, in jiffies.
const ATO_MIN: u16 = 10;
/// `TCP_RTO_MIN` (200 ms), in jiffies: a cluster's RTO (its RTTs are far below it).
const RTO: u16 = 50;
/// `TCP_MAX_QUICKACKS`.
const MAX_QUICKACKS: u32 = 16;
/// `TCP_MSS_DEFAULT`: the first `rcv_mss` guess (`tcp_initialize_rcv_mss`).
const MSS_DEFAULT: u16 = 536;
/// `TCP_MIN_MSS`.
const MIN_MSS: u32 = 88;
/// `ICSK_ACK_PUSHED` and `ICSK_ACK_PUSHED2`.
const PUSHED: u8 = 1;
const PUSHED2: u8 = 2;

fn jiffy(now: Instant) -> u32 {
    (now.total_millis() / JIFFY_MS) as u32
}

/// An arriving TCP segment, as the delayed-ACK rules look at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Payload bytes.
    pub payload: u32,
    /// The segment size of a super-segment (0 for one segment).
    pub gso: u16,
    /// The TCP header's length, options included.
    pub header: u16,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub psh: bool,
    pub urg: bool,
}

impl Segment {
    /// The TCP segment in an Ethernet frame, if it is one; `gso` as the frame says.
    pub(crate) fn parse(frame: &[u8], gso: u16) -> Option<Self> {
        if frame.get(12..14) != Some(&[8, 0]) {
            return None;
        }
        let ip = Ipv4Packet::new_checked(frame.get(14..)?).ok()?;
        if ip.next_header() != IpProtocol::Tcp {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        let header = tcp.header_len() as u16;
        Some(Segment {
            payload: (ip.payload().len() - usize::from(header)) as u32,
            gso,
            header,
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            psh: tcp.psh(),
            urg: tcp.urg(),
        })
    }
}

/// What the pod does about acknowledging an arriving segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Nothing to decide: smoltcp acknowledges as it would (a FIN alone: at its next
    /// output).
    Stack,
    /// At once, before the programs run.
    Now,
    /// By this time, unless data or a FIN carries it first.
    By(Instant),
}

impl Reply {
    /// The delay to give smoltcp's timer before the segment goes in.
    pub(crate) fn ack_delay(self, now: Instant) -> Option<Duration> {
        match self {
            Reply::Stack => None,
            Reply::Now => Some(Duration::ZERO),
            Reply::By(t) => Some(if t > now { t - now } else { Duration::ZERO }),
        }
    }
}

/// One connection's delayed-ACK state (`icsk_ack` and what it needs of `tcp_sock`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DelAck {
    /// Quick ACKs left.
    quick: u8,
    /// Interactive (`inet_csk_in_pingpong_mode`).
    pingpong: bool,
    /// An ACK of received data is owed (`ICSK_ACK_SCHED`).
    scheduled: bool,
    /// `ICSK_ACK_PUSHED` and `ICSK_ACK_PUSHED2`.
    pushed: u8,
    /// `ato` in jiffies; 0 until the first data arrives.
    ato: u16,
    /// `rcv_mss` (0: not guessed yet).
    rcv_mss: u16,
    /// `last_seg_size`.
    last_seg: u16,
    /// The jiffy the last data arrived (`lrcvtime`).
    lrcv: u32,
    /// Bytes received since the last ACK sent (`rcv_nxt - rcv_wup`).
    unacked: u32,
    /// The jiffy the delayed-ACK timer fires (0: not pending).
    timer: u32,
}

impl DelAck {
    /// The decision for `seg`, arriving at a socket in `state` whose receive buffer holds
    /// `window` bytes, as if it is taken in order (the caller restores the state if it is
    /// not).
    pub(crate) fn arriving(
        &mut self,
        seg: &Segment,
        state: tcp::State,
        window: usize,
        now: Instant,
    ) -> Reply {
        use tcp::State::*;
        if seg.syn {
            // A SYN-ACK completing our connect: acknowledged at once (no data written yet,
            // `tcp_rcv_synsent_state_process`).
            return if seg.ack && state == SynSent {
                Reply::Now
            } else {
                Reply::Stack
            };
        }
        if seg.payload == 0 && !seg.fin {
            return Reply::Stack;
        }
        let j = jiffy(now);
        let mut now_flag = false;
        if seg.payload > 0 {
            self.measure_rcv_mss(seg);
            self.data_recv(j, window);
            self.unacked = self.unacked.saturating_add(seg.payload);
        }
        if seg.fin {
            match state {
                SynReceived | Established => {
                    self.pingpong = true;
                    self.scheduled = true;
                }
                FinWait1 | FinWait2 => now_flag = true,
                _ => {}
            }
            if seg.payload == 0 {
                return if now_flag { Reply::Now } else { Reply::Stack };
            }
        }
        let rcv_mss = u32::from(self.rcv_mss);
        if now_flag
            || self.unacked > rcv_mss
            || (self.quick > 0 && !self.pingpong)
            || self.pushed & PUSHED2 != 0
            || (self.pushed & PUSHED != 0 && !self.pingpong)
        {
            return Reply::Now;
        }
        // `tcp_send_delayed_ack`: `ato` bounded by the RTT, never under `TCP_DELACK_MIN`.
        let ato = u32::from(self.ato.min(ATO_MIN));
        if self.timer != 0 {
            if self.timer <= j.wrapping_add(ato >> 2) {
                return Reply::Now;
            }
        } else {
            self.timer = j.wrapping_add(ato).wrapping_add(1);
        }
        Reply::By(Instant::from_millis(i64::from(self.timer) * JIFFY_MS))
    }

    /// `tcp_measure_rcv_mss`.
    fn measure_rcv_mss(&mut self, seg: &Segment) {
        if self.rcv_mss == 0 {
            self.rcv_mss = MSS_DEFAULT;
        }
        let lss = self.last_seg;
        self.last_seg = 0;
        let len = if seg.gso > 0 {
            u32::from(seg.gso)
        } else {
            seg.payload
        };
        if len >= u32::from(self.rcv_mss) {
            // `min(len, advmss)`: a pod's MSS is its MTU's.
            self.rcv_mss = len.min(u32::from(u16::MAX)) as u16;
            if seg.psh {
                self.pushed |= PUSHED;
            }
            return;
        }
        let with_header = len + u32::from(seg.header);
        let remnant = seg.fin || seg.urg || seg.syn || seg.psh;
        if with_header >= u32::from(MSS_DEFAULT) + 20 || (with_header >= MIN_MSS + 20 && !remnant) {
            let l = len as u16;
            self.last_seg = l;
            if l == lss {
                self.rcv_mss = l;
                return;
            }
        }
        if self.pushed & PUSHED != 0 {
            self.pushed |= PUSHED2;
        }
        self.pushed |= PUSHED;
    }

    /// `tcp_event_data_recv`'s part in this: the quick ACKs and `ato`.
    fn data_recv(&mut self, j: u32, window: usize) {
        self.scheduled = true;
        if self.ato == 0 {
            self.incr_quickack(window);
            self.ato = ATO_MIN;
        } else {
            let m = j.wrapping_sub(self.lrcv);
            let ato = u32::from(self.ato);
            if m <= u32::from(ATO_MIN / 2) {
                self.ato = (self.ato >> 1) + ATO_MIN / 2;
            } else if m < ato {
                self.ato = ((ato >> 1) + m).min(u32::from(RTO)) as u16;
            } else if m > u32::from(RTO) {
                self.incr_quickack(window);
            }
        }
        self.lrcv = j;
    }

    /// `tcp_incr_quickack`.
    fn incr_quickack(&mut self, window: usize) {
        let per = 2 * u32::from(self.rcv_mss.max(1));
        let mut quick = (window.min(u32::MAX as usize) as u32) / per;
        if quick == 0 {
            quick = 2;
        }
        let quick = quick.min(MAX_QUICKACKS) as u8;
        if quick > self.quick {
            self.quick = quick;
        }
    }

    /// What the connection sent: `frame` left at `now` (`tcp_event_ack_sent`,
    /// `tcp_delack_timer_handler`, `tcp_event_data_sent`).
    pub(crate) fn sent(&mut self, frame: &[u8], now: Instant) {
        let Some(seg) = Segment::parse(frame, 0) else {
            return;
        };
        let j = jiffy(now);
        if seg.ack {
            let bare = seg.payload == 0 && !seg.fin && !seg.syn;
            if bare && self.scheduled && self.timer != 0 && j >= self.timer {
                // The delayed-ACK timer sent it.
                if self.pingpong {
                    self.pingpong = false;
                    self.ato = ATO_MIN;
                } else {
                    self.ato = (self.ato << 1).min(RTO);
                }
            }
            if self.scheduled && self.quick > 0 {
                if self.quick <= 1 {
                    self.quick = 0;
                    self.ato = ATO_MIN;
                } else {
                    self.quick -= 1;
                }
            }
            self.scheduled = false;
            self.pushed = 0;
            self.timer = 0;
            self.unacked = 0;
        }
        if seg.payload > 0 && self.ato != 0 && j.wrapping_sub(self.lrcv) < u32::from(self.ato) {
            self.pingpong = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcp::State::*;

    const WINDOW: usize = 64 * 1024;

    fn data(len: u32) -> Segment {
        Segment {
            payload: len,
            gso: 0,
            header: 32,
            syn: false,
            ack: true,
            fin: false,
            psh: true,
            urg: false,
        }
    }

    /// A frame that `sent` reads: an ACK with `len` bytes of payload.
    fn out(len: usize, fin: bool) -> alloc::vec::Vec<u8> {
        let flags = if fin { "FA" } else { "A" };
        let ip = crate::packet::tcp(
            smoltcp::wire::Ipv4Address::new(10, 0, 0, 1),
            1,
            smoltcp::wire::Ipv4Address::new(10, 0, 0, 2),
            2,
            flags,
            1,
            1,
            len,
        );
        let mut f = alloc::vec![0u8; 14];
        f[12] = 8;
        f.extend_from_slice(&ip);
        f
    }

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn the_syn_ack_is_acknowledged_at_once() {
        let mut d = DelAck::default();
        let mut synack = data(0);
        synack.syn = true;
        assert_eq!(d.arriving(&synack, SynSent, WINDOW, at(0)), Reply::Now);
        synack.ack = false;
        assert_eq!(d.arriving(&synack, Listen, WINDOW, at(0)), Reply::Stack);
        assert_eq!(
            d.arriving(&data(0), Established, WINDOW, at(0)),
            Reply::Stack
        );
    }

    #[test]
    fn an_exchange_is_quick_then_interactive() {
        // The server: a request arrives (quick ACK), it answers at once (ping-pong).
        let mut s = DelAck::default();
        assert_eq!(
            s.arriving(&data(80), Established, WINDOW, at(1)),
            Reply::Now
        );
        s.sent(&out(0, false), at(1));
        assert_eq!(s.quick, 15);
        s.sent(&out(200, false), at(1));
        assert!(s.pingpong);
        // The next request waits for the answer to carry its ACK: 40-44 ms at most.
        let r = s.arriving(&data(80), Established, WINDOW, at(9));
        assert_eq!(r, Reply::By(at((9 / 4 + 11) * 4)));
        s.sent(&out(200, false), at(9));
        assert_eq!(s.timer, 0);
        assert!(s.pingpong, "an answer within ato keeps it interactive");
        // A request answered late: the timer sends the ACK and ends ping-pong.
        let Reply::By(t) = s.arriving(&data(80), Established, WINDOW, at(100)) else {
            panic!("delayed");
        };
        assert_eq!(t, at(144));
        s.sent(&out(0, false), t);
        assert!(!s.pingpong);
        // Not interactive, quick ACKs left: at once.
        assert_eq!(
            s.arriving(&data(80), Established, WINDOW, at(300)),
            Reply::Now
        );
    }

    #[test]
    fn a_fin_makes_it_interactive_unless_it_answers_ours() {
        let mut s = DelAck::default();
        let mut fin = data(0);
        fin.fin = true;
        assert_eq!(s.arriving(&fin, Established, WINDOW, at(0)), Reply::Stack);
        assert!(s.pingpong && s.scheduled);
        let mut c = DelAck::default();
        assert_eq!(c.arriving(&fin, FinWait2, WINDOW, at(0)), Reply::Now);
        assert_eq!(c.arriving(&fin, FinWait1, WINDOW, at(0)), Reply::Now);
        // Data with the FIN, in ESTABLISHED: interactive, so a short answer waits.
        let mut d = DelAck::default();
        let mut last = data(200);
        last.fin = true;
        assert!(matches!(
            d.arriving(&last, Established, WINDOW, at(0)),
            Reply::By(_)
        ));
        // More than a segment of it: at once.
        let mut e = DelAck::default();
        let mut bulk = data(27600);
        bulk.gso = 1448;
        bulk.fin = true;
        assert_eq!(e.arriving(&bulk, Established, WINDOW, at(0)), Reply::Now);
    }

    #[test]
    fn quick_acks_run_out_after_sixteen() {
        let mut r = DelAck::default();
        let mut full = data(1448);
        full.psh = false;
        for i in 0..16 {
            assert_eq!(
                r.arriving(&full, Established, WINDOW, at(i)),
                Reply::Now,
                "{i}"
            );
            r.sent(&out(0, false), at(i));
        }
        assert_eq!(r.quick, 0);
        // Then a full segment waits for a second one, which is more than rcv_mss.
        assert!(matches!(
            r.arriving(&full, Established, WINDOW, at(20)),
            Reply::By(_)
        ));
        assert_eq!(r.arriving(&full, Established, WINDOW, at(20)), Reply::Now);
        r.sent(&out(0, false), at(20));
        // A pushed one is acknowledged when read (not interactive).
        let mut pushed = full;
        pushed.psh = true;
        assert_eq!(r.arriving(&pushed, Established, WINDOW, at(21)), Reply::Now);
    }

    #[test]
    fn the_rcv_mss_follows_what_arrives() {
        let mut r = DelAck::default();
        r.arriving(&data(1000), Established, WINDOW, at(0));
        assert_eq!(r.rcv_mss, 1000);
        let mut gso = data(7240);
        gso.gso = 1448;
        r.arriving(&gso, Established, WINDOW, at(0));
        assert_eq!(r.rcv_mss, 1448);
        // A small window: fewer quick ACKs (rcv_wnd / 2 rcv_mss, at least 2).
        let mut small = DelAck::default();
        small.arriving(&data(100), Established, 2000, at(0));
        assert_eq!(small.quick, 1);
        let mut tiny = DelAck::default();
        tiny.arriving(&data(100), Established, 500, at(0));
        assert_eq!(tiny.quick, 2);
    }

    #[test]
    fn a_long_gap_restarts_quick_acks() {
        let mut r = DelAck::default();
        r.arriving(&data(80), Established, WINDOW, at(0));
        r.quick = 0;
        r.sent(&out(0, false), at(0));
        r.arriving(&data(80), Established, WINDOW, at(1000));
        assert_eq!(r.quick, 16);
    }
}
