//! TCP connection tracking as in Linux `nf_conntrack_proto_tcp.c`: the state table indexed by
//! direction, segment kind and current state, window tracking (`tcp_in_window`), and the
//! timeouts.

use super::table::{bits, Entry, Seen};

/// TCP conntrack states, in Linux's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// No state (new).
    None = 0,
    /// SYN seen.
    SynSent = 1,
    /// SYN-ACK seen.
    SynRecv = 2,
    /// Handshake completed.
    Established = 3,
    /// FIN seen.
    FinWait = 4,
    /// ACK of the first FIN seen.
    CloseWait = 5,
    /// FIN seen in both directions.
    LastAck = 6,
    /// Last ACK seen.
    TimeWait = 7,
    /// RST seen.
    Close = 8,
    /// SYN from the reply direction (simultaneous open).
    SynSent2 = 9,
}

impl State {
    /// From the 4-bit field.
    pub fn from_bits(b: u16) -> State {
        match b & bits::STATE_MASK {
            1 => State::SynSent,
            2 => State::SynRecv,
            3 => State::Established,
            4 => State::FinWait,
            5 => State::CloseWait,
            6 => State::LastAck,
            7 => State::TimeWait,
            8 => State::Close,
            9 => State::SynSent2,
            _ => State::None,
        }
    }

    /// The name `conntrack -L` prints.
    pub fn name(self) -> &'static str {
        match self {
            State::None => "NONE",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::Established => "ESTABLISHED",
            State::FinWait => "FIN_WAIT",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::SynSent2 => "SYN_SENT2",
        }
    }
}

/// Timeouts in seconds (`net.netfilter.nf_conntrack_tcp_timeout_*`), Linux defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpTimeouts {
    /// SYN_SENT.
    pub syn_sent: u32,
    /// SYN_RECV.
    pub syn_recv: u32,
    /// ESTABLISHED.
    pub established: u32,
    /// FIN_WAIT.
    pub fin_wait: u32,
    /// CLOSE_WAIT.
    pub close_wait: u32,
    /// LAST_ACK.
    pub last_ack: u32,
    /// TIME_WAIT.
    pub time_wait: u32,
    /// CLOSE.
    pub close: u32,
    /// After 3 retransmissions (`tcp_timeout_max_retrans`).
    pub max_retrans: u32,
    /// With unacknowledged data (`tcp_timeout_unacknowledged`).
    pub unacknowledged: u32,
}

impl Default for TcpTimeouts {
    fn default() -> Self {
        TcpTimeouts {
            syn_sent: 120,
            syn_recv: 60,
            established: 432_000,
            fin_wait: 120,
            close_wait: 60,
            last_ack: 30,
            time_wait: 120,
            close: 10,
            max_retrans: 300,
            unacknowledged: 300,
        }
    }
}

impl TcpTimeouts {
    /// The timeout of a state.
    pub fn of(&self, s: State) -> u32 {
        match s {
            State::None => 0,
            State::SynSent | State::SynSent2 => self.syn_sent,
            State::SynRecv => self.syn_recv,
            State::Established => self.established,
            State::FinWait => self.fin_wait,
            State::CloseWait => self.close_wait,
            State::LastAck => self.last_ack,
            State::TimeWait => self.time_wait,
            State::Close => self.close,
        }
    }
}

/// Segment kinds indexing the state table (`get_conntrack_index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SYN without ACK.
    Syn = 0,
    /// SYN with ACK.
    SynAck = 1,
    /// FIN.
    Fin = 2,
    /// ACK only.
    Ack = 3,
    /// RST.
    Rst = 4,
    /// None of these.
    None = 5,
}

/// The parsed fields conntrack needs from a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Kind.
    pub kind: Kind,
    /// Flags: SYN, ACK, FIN, RST.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack_no: u32,
    /// Raw window.
    pub win: u32,
    /// seq + payload length + SYN + FIN.
    pub end: u32,
    /// Window scale option, if present.
    pub wscale: Option<u8>,
    /// SACK permitted option present.
    pub sack_perm: bool,
}

/// Flag combinations Linux rejects as invalid (`tcp_valid_flags`).
pub fn valid_flags(flags: u8) -> bool {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const PSH: u8 = 0x08;
    const ACK: u8 = 0x10;
    const URG: u8 = 0x20;
    let f = flags & !(0x40 | 0x80); // ECE and CWR are ignored
    matches!(
        f,
        x if x == SYN || x == SYN | URG || x == SYN | ACK || x == RST || x == RST | ACK
            || x == FIN | ACK || x == FIN | ACK | URG || x == ACK || x == ACK | URG
            || x == FIN | ACK | PSH || x == FIN | ACK | PSH | URG || x == ACK | PSH
            || x == ACK | PSH | URG
    )
}

const IV: u8 = 0xfe; // invalid
const IG: u8 = 0xff; // ignore
const SS: u8 = 1;
const SR: u8 = 2;
const ES: u8 = 3;
const FW: u8 = 4;
const CW: u8 = 5;
const LA: u8 = 6;
const TW: u8 = 7;
const CL: u8 = 8;
const S2: u8 = 9;

/// `tcp_conntracks[dir][kind][state]` (facts from Linux's table).
#[rustfmt::skip]
const TABLE: [[[u8; 10]; 6]; 2] = [
    [
        //   sNO sSS sSR sES sFW sCW sLA sTW sCL sS2
        [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2], // syn
        [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR], // synack
        [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV], // fin
        [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV], // ack
        [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL], // rst
        [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV], // none
    ],
    [
        [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2], // syn
        [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR], // synack
        [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV], // fin
        [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG], // ack
        [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL], // rst
        [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV], // none
    ],
];

/// The table's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Move to this state.
    To(State),
    /// Accept without changing state.
    Ignore,
    /// The segment is invalid.
    Invalid,
}

/// Looks the transition up.
pub fn next(dir: usize, kind: Kind, state: State) -> Next {
    match TABLE[dir][kind as usize][state as usize] {
        IV => Next::Invalid,
        IG => Next::Ignore,
        s => Next::To(State::from_bits(u16::from(s))),
    }
}

/// `MAXACKWINCONST`.
const MAX_ACK_WIN_CONST: u32 = 66000;

fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

fn before(a: u32, b: u32) -> bool {
    after(b, a)
}

fn init_sender(e: &mut Entry, dir: usize, seg: &Segment) {
    let win = seg.win;
    e.seen[dir] = Seen {
        end: seg.end,
        maxend: seg.end,
        maxwin: win.max(1),
    };
    e.bits &= !(bits::WSCALE[dir] | bits::SACK_PERM[dir]);
    set_scale(e, dir, 0);
    if let Some(s) = seg.wscale {
        e.bits |= bits::WSCALE[dir];
        set_scale(e, dir, s.min(14));
    }
    if seg.sack_perm {
        e.bits |= bits::SACK_PERM[dir];
    }
    // RFC 1323: scaling only when both sides offered it.
    if !(e.has(bits::WSCALE[dir]) && e.has(bits::WSCALE[1 - dir])) {
        set_scale(e, dir, 0);
        set_scale(e, 1 - dir, 0);
    }
}

fn scale(e: &Entry, dir: usize) -> u32 {
    u32::from(if dir == 0 {
        e.scales & 0x0f
    } else {
        e.scales >> 4
    })
}

fn set_scale(e: &mut Entry, dir: usize, s: u8) {
    if dir == 0 {
        e.scales = (e.scales & 0xf0) | (s & 0x0f);
    } else {
        e.scales = (e.scales & 0x0f) | (s << 4);
    }
}

/// `tcp_in_window`: whether the segment fits the windows seen so far; updates them if so.
pub fn in_window(e: &mut Entry, dir: usize, state: State, seg: &Segment) -> bool {
    let (mut seq, mut end) = (seg.seq, seg.end);
    let mut ack = seg.ack_no;
    let win = seg.win;
    let sender = e.seen[dir];
    if sender.maxwin == 0 {
        if seg.syn {
            init_sender(e, dir, seg);
            if !seg.ack {
                return true; // simultaneous open
            }
        } else {
            // Picked up mid-stream: take what the segment says.
            let swin = (win << scale(e, dir)).max(1);
            e.seen[dir] = Seen {
                end,
                maxend: end.wrapping_add(swin),
                maxwin: swin,
            };
            let receiver = &mut e.seen[1 - dir];
            if receiver.maxwin == 0 {
                receiver.end = ack;
                receiver.maxend = ack;
            } else if ack == receiver.end.wrapping_add(1) {
                receiver.end = receiver.end.wrapping_add(1);
            }
        }
    } else if ((state == State::SynSent && dir == 0) || (state == State::SynRecv && dir == 1))
        && after(end, sender.end)
    {
        // A re-initialised connection (RFC 793): start over from this segment.
        e.seen[dir] = Seen {
            end,
            maxend: end,
            maxwin: win.max(1),
        };
    } else if seg.syn && dir == 1 && state == State::SynSent {
        init_sender(e, dir, seg);
        if !seg.ack {
            return true;
        }
    }
    let receiver = e.seen[1 - dir];
    if !seg.ack || (seg.rst && ack == 0) {
        ack = receiver.end;
    }
    if seg.rst && seq == 0 && state == State::SynSent {
        seq = e.seen[dir].end;
        end = seq;
    }
    let sender = e.seen[dir];
    let max_ack_window = sender.maxwin.max(MAX_ACK_WIN_CONST);
    let in_recv_win = receiver.maxwin == 0
        || after(
            end,
            sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
        );
    let ok = before(seq, sender.maxend.wrapping_add(1))
        && in_recv_win
        && before(ack, receiver.end.wrapping_add(1))
        && after(
            ack,
            receiver.end.wrapping_sub(max_ack_window).wrapping_sub(1),
        );
    if ok {
        let swin = if seg.syn { win } else { win << scale(e, dir) };
        let s = &mut e.seen[dir];
        if s.maxwin < swin {
            s.maxwin = swin;
        }
        if after(end, s.end) {
            s.end = end;
        }
        let r = &mut e.seen[1 - dir];
        if seg.ack {
            let edge = ack.wrapping_add(swin.max(1));
            if after(edge, r.maxend) {
                r.maxend = edge;
            }
        }
        if r.maxwin == 0 {
            // Not seen a packet the other way yet: make room for its first one.
            r.maxend = r.maxend.wrapping_add(1);
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_walks_the_table() {
        assert_eq!(next(0, Kind::Syn, State::None), Next::To(State::SynSent));
        assert_eq!(
            next(1, Kind::SynAck, State::SynSent),
            Next::To(State::SynRecv)
        );
        assert_eq!(
            next(0, Kind::Ack, State::SynRecv),
            Next::To(State::Established)
        );
        assert_eq!(
            next(0, Kind::Fin, State::Established),
            Next::To(State::FinWait)
        );
        assert_eq!(
            next(1, Kind::Ack, State::FinWait),
            Next::To(State::CloseWait)
        );
        assert_eq!(
            next(1, Kind::Fin, State::CloseWait),
            Next::To(State::LastAck)
        );
        assert_eq!(
            next(0, Kind::Ack, State::LastAck),
            Next::To(State::TimeWait)
        );
        assert_eq!(
            next(0, Kind::Syn, State::TimeWait),
            Next::To(State::SynSent),
            "reopen"
        );
        assert_eq!(next(0, Kind::SynAck, State::SynSent), Next::Invalid);
        assert_eq!(next(1, Kind::SynAck, State::Established), Next::Ignore);
        assert_eq!(
            next(0, Kind::Rst, State::Established),
            Next::To(State::Close)
        );
    }

    #[test]
    fn flag_validity() {
        assert!(valid_flags(0x02)); // SYN
        assert!(valid_flags(0x12)); // SYN ACK
        assert!(valid_flags(0x18)); // PSH ACK
        assert!(!valid_flags(0x03)); // SYN FIN
        assert!(!valid_flags(0x00)); // null scan
        assert!(!valid_flags(0x29)); // xmas-ish FIN PSH URG
    }

    fn seg(kind: Kind, seq: u32, ack: Option<u32>, len: u32, win: u32) -> Segment {
        let syn = matches!(kind, Kind::Syn | Kind::SynAck);
        let fin = kind == Kind::Fin;
        Segment {
            kind,
            syn,
            ack: ack.is_some(),
            fin,
            rst: kind == Kind::Rst,
            seq,
            ack_no: ack.unwrap_or(0),
            win,
            end: seq.wrapping_add(len + u32::from(syn) + u32::from(fin)),
            wscale: None,
            sack_perm: false,
        }
    }

    #[test]
    fn window_tracking_accepts_a_normal_exchange_and_rejects_far_segments() {
        let mut e = Entry::default();
        assert!(in_window(
            &mut e,
            0,
            State::None,
            &seg(Kind::Syn, 1000, None, 0, 65535)
        ));
        assert!(in_window(
            &mut e,
            1,
            State::SynSent,
            &seg(Kind::SynAck, 5000, Some(1001), 0, 65535)
        ));
        assert!(in_window(
            &mut e,
            0,
            State::SynRecv,
            &seg(Kind::Ack, 1001, Some(5001), 100, 65535)
        ));
        assert!(in_window(
            &mut e,
            1,
            State::Established,
            &seg(Kind::Ack, 5001, Some(1101), 200, 65535)
        ));
        // Far beyond anything the receiver allowed.
        assert!(!in_window(
            &mut e,
            0,
            State::Established,
            &seg(Kind::Ack, 1101 + 10_000_000, Some(5201), 100, 65535)
        ));
        // Acking data never sent.
        assert!(!in_window(
            &mut e,
            0,
            State::Established,
            &seg(Kind::Ack, 1101, Some(5201 + 1_000_000), 0, 65535)
        ));
    }
}
