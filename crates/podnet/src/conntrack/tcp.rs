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
    /// Options as `tcp_options` reads them.
    pub opts: Options,
}

/// What `tcp_options` and `tcp_sack` read from a segment's options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The header has option bytes at all (`tcp_options` resets nothing otherwise).
    pub present: bool,
    /// Window scale option, capped at 14 (`TCP_MAX_WSCALE`).
    pub wscale: Option<u8>,
    /// SACK permitted option present.
    pub sack_perm: bool,
    /// Right edges of the SACK blocks of the first SACK option.
    pub sack_ends: [u32; 4],
    /// How many of `sack_ends` are set.
    pub sack_n: u8,
}

impl Options {
    /// Parses TCP option bytes the way `tcp_options` and `tcp_sack` walk them: EOL ends the
    /// list, NOP is skipped, a silly (< 2) or partial length stops parsing.
    pub fn parse(bytes: &[u8]) -> Options {
        let mut o = Options {
            present: !bytes.is_empty(),
            ..Options::default()
        };
        let mut i = 0;
        let mut sack_done = false;
        while i < bytes.len() {
            match bytes[i] {
                0 => break,
                1 => i += 1,
                code => {
                    let Some(&size) = bytes.get(i + 1) else { break };
                    let size = usize::from(size);
                    if size < 2 || i + size > bytes.len() {
                        break;
                    }
                    let data = &bytes[i + 2..i + size];
                    match (code, size) {
                        (4, 2) => o.sack_perm = true,
                        (3, 3) => o.wscale = Some(data[0].min(14)),
                        (5, _) if !sack_done && size >= 10 && (size - 2) % 8 == 0 => {
                            sack_done = true;
                            for block in data.chunks_exact(8).take(4) {
                                o.sack_ends[usize::from(o.sack_n)] =
                                    u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
                                o.sack_n += 1;
                            }
                        }
                        _ => {}
                    }
                    i += size;
                }
            }
        }
        o
    }

    /// `tcp_sack`: the highest right edge of the SACK blocks that is after `ack`, or `ack`.
    pub fn sack(&self, ack: u32) -> u32 {
        let mut sack = ack;
        for &end in &self.sack_ends[..usize::from(self.sack_n)] {
            if after(end, sack) {
                sack = end;
            }
        }
        sack
    }
}

/// Per-direction flags (`IP_CT_TCP_FLAG_*`, same values as Linux).
pub mod flag {
    /// Window scale option seen.
    pub const WINDOW_SCALE: u8 = 0x01;
    /// SACK permitted option seen.
    pub const SACK_PERM: u8 = 0x02;
    /// This side sent the first FIN.
    pub const CLOSE_INIT: u8 = 0x04;
    /// Window checks skipped for this side (loose pickup).
    pub const BE_LIBERAL: u8 = 0x08;
    /// This side has sent data the other has not acknowledged.
    pub const DATA_UNACKNOWLEDGED: u8 = 0x10;
    /// `maxack` holds a value.
    pub const MAXACK_SET: u8 = 0x20;
    /// A SYN in LAST_ACK may draw an RFC 5961 challenge ACK (in `last_flags`).
    pub const EXP_CHALLENGE_ACK: u8 = 0x40;
    /// Simultaneous open seen (in `last_flags`).
    pub const SIMULTANEOUS_OPEN: u8 = 0x80;
}

/// What Linux's `ip_ct_tcp` keeps besides the window edges held in the entry itself: the
/// highest ACK each side sent, the per-direction flags and the last segment seen (for
/// retransmission counting, ignored-SYN resynchronisation and RST checks). Kept in a slab
/// parallel to the entries so lookups walk only the 64-byte entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpExt {
    /// `td_maxack` per direction.
    pub maxack: [u32; 2],
    /// `flags` per direction ([`flag`]).
    pub flags: [u8; 2],
    /// `last_seq`.
    pub last_seq: u32,
    /// `last_ack`.
    pub last_ack: u32,
    /// `last_end`.
    pub last_end: u32,
    /// `last_win` (raw).
    pub last_win: u16,
    /// `last_index` ([`Kind`] as a number; 5 = none).
    pub last_index: u8,
    /// `last_dir`.
    pub last_dir: u8,
    /// `last_wscale`.
    pub last_wscale: u8,
    /// `last_flags`.
    pub last_flags: u8,
    /// `retrans`: identical ACK segments in a row.
    pub retrans: u8,
}

impl Default for TcpExt {
    fn default() -> Self {
        TcpExt {
            maxack: [0; 2],
            flags: [0; 2],
            last_seq: 0,
            last_ack: 0,
            last_end: 0,
            last_win: 0,
            last_index: Kind::None as u8,
            last_dir: 0,
            last_wscale: 0,
            last_flags: 0,
            retrans: 0,
        }
    }
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

/// `nf_conntrack_tcp_max_retrans`: identical ACKs before the `max_retrans` timeout applies.
pub const MAX_RETRANS: u8 = 3;

fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

fn before(a: u32, b: u32) -> bool {
    after(b, a)
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

/// `tcp_options` into direction `dir`'s state.
fn take_options(e: &mut Entry, x: &mut TcpExt, dir: usize, o: &Options) {
    if !o.present {
        return;
    }
    set_scale(e, dir, 0);
    x.flags[dir] &= flag::BE_LIBERAL;
    if o.sack_perm {
        x.flags[dir] |= flag::SACK_PERM;
    }
    if let Some(s) = o.wscale {
        set_scale(e, dir, s);
        x.flags[dir] |= flag::WINDOW_SCALE;
    }
}

/// `tcp_init_sender`: a SYN-ACK in reply to a SYN, or a SYN from the reply direction. Only the
/// REPLY direction's first SYN knows whether both sides offered window scaling (RFC 7323); the
/// client's SYN records its own option and nothing else.
fn init_sender(e: &mut Entry, x: &mut TcpExt, dir: usize, seg: &Segment) {
    e.seen[dir] = Seen {
        end: seg.end,
        maxend: seg.end,
        maxwin: seg.win.max(1),
    };
    take_options(e, x, dir, &seg.opts);
    let both = x.flags[dir] & x.flags[1 - dir] & flag::WINDOW_SCALE != 0;
    if dir == 1 && !both {
        set_scale(e, 0, 0);
        set_scale(e, 1, 0);
    }
}

/// `tcp_new`: the first segment of an entry (a SYN, or with `tcp_loose` a mid-stream pickup).
pub fn new_entry(e: &mut Entry, x: &mut TcpExt, seg: &Segment) {
    *x = TcpExt::default();
    e.scales = 0;
    e.seen = [Seen::default(); 2];
    let maxwin = seg.win.max(1);
    if seg.kind == Kind::Syn {
        e.seen[0] = Seen {
            end: seg.end,
            maxend: seg.end,
            maxwin,
        };
        take_options(e, x, 0, &seg.opts);
    } else {
        e.seen[0] = Seen {
            end: seg.end,
            maxend: seg.end.wrapping_add(maxwin),
            maxwin,
        };
        // "We assume SACK and liberal window checking to handle window scaling."
        x.flags = [flag::SACK_PERM | flag::BE_LIBERAL; 2];
    }
}

/// `tcp_in_window`'s three outcomes (`enum nf_ct_tcp_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowVerdict {
    /// In window: state updated.
    Accept,
    /// Out of window in a way current kernels let pass untouched (`NFCT_TCP_IGNORE`).
    Ignore,
    /// Out of window: INVALID.
    Invalid,
}

/// Why a segment was out of window, as the kernel logs it (`nf_ct_tcp: ...`).
pub type WindowReason = &'static str;

/// `tcp_in_window` (Linux 6.x): checks the segment against the windows seen so far and updates
/// them when it fits. `be_liberal` is `nf_conntrack_tcp_be_liberal`.
pub fn in_window(
    e: &mut Entry,
    x: &mut TcpExt,
    dir: usize,
    state: State,
    seg: &Segment,
    be_liberal: bool,
) -> (WindowVerdict, WindowReason) {
    let (mut seq, mut end) = (seg.seq, seg.end);
    let mut ack = seg.ack_no;
    let mut sack = if x.flags[1 - dir] & flag::SACK_PERM != 0 {
        seg.opts.sack(ack)
    } else {
        ack
    };
    let win_raw = seg.win;
    if e.seen[dir].maxwin == 0 {
        if seg.syn {
            init_sender(e, x, dir, seg);
            if !seg.ack {
                return (WindowVerdict::Accept, ""); // simultaneous open
            }
        } else {
            // Picked up mid-stream: take what the segment says.
            let swin = (win_raw << scale(e, dir)).max(1);
            e.seen[dir] = Seen {
                end,
                maxend: end.wrapping_add(swin),
                maxwin: swin,
            };
            let receiver = &mut e.seen[1 - dir];
            if receiver.maxwin == 0 {
                receiver.end = sack;
                receiver.maxend = sack;
            } else if sack == receiver.end.wrapping_add(1) {
                // Likely the answer to a keepalive.
                receiver.end = receiver.end.wrapping_add(1);
            }
        }
    } else if seg.syn
        && after(end, e.seen[dir].end)
        && matches!(state, State::SynSent | State::SynRecv)
    {
        // RFC 793: a reinitialised connection starts over from this segment.
        init_sender(e, x, dir, seg);
        if dir == 1 && !seg.ack {
            return (WindowVerdict::Accept, "");
        }
    }
    let receiver = e.seen[1 - dir];
    if !seg.ack || (seg.rst && ack == 0) {
        ack = receiver.end;
        sack = ack;
    }
    if seg.rst && seq == 0 && state == State::SynSent {
        // RST answering a SYN.
        seq = e.seen[dir].end;
        end = seq;
    }
    let sender = e.seen[dir];
    let liberal = be_liberal || x.flags[dir] & flag::BE_LIBERAL != 0;
    let verdict = |v: WindowVerdict, why: WindowReason| {
        if liberal {
            (WindowVerdict::Accept, why)
        } else {
            (v, why)
        }
    };
    let max_ack_window = sender.maxwin.max(MAX_ACK_WIN_CONST);
    let ack_floor = receiver.end.wrapping_sub(max_ack_window).wrapping_sub(1);
    let recv_floor = sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1);
    if !before(seq, sender.maxend.wrapping_add(1)) {
        let overshot = end.wrapping_sub(sender.maxend).wrapping_add(1);
        let in_recv_win = receiver.maxwin != 0 && after(end, recv_floor);
        if in_recv_win
            && after(sack, ack_floor)
            && overshot <= receiver.maxwin
            && before(sack, receiver.end.wrapping_add(1))
        {
            // A sender that overshot the receive window a little: remember its data so
            // the peer's ACK of it stays in window.
            e.seen[dir].end = end;
            x.flags[dir] |= flag::DATA_UNACKNOWLEDGED;
            return verdict(WindowVerdict::Ignore, "more bytes than expected");
        }
        return verdict(
            WindowVerdict::Invalid,
            "SEQ is over upper bound (over the window of the receiver)",
        );
    }
    if !before(sack, receiver.end.wrapping_add(1)) {
        return verdict(
            WindowVerdict::Invalid,
            "ACK is over upper bound (ACKed data not seen yet)",
        );
    }
    if receiver.maxwin != 0 && !after(end, recv_floor) {
        return verdict(
            WindowVerdict::Ignore,
            "SEQ is under lower bound (already ACKed data retransmitted)",
        );
    }
    if !after(sack, ack_floor) {
        return verdict(
            WindowVerdict::Ignore,
            "ignored ACK under lower bound (possible overly delayed)",
        );
    }
    let win = if seg.syn {
        win_raw
    } else {
        win_raw << scale(e, dir)
    };
    // Update the sender.
    let swin = win.wrapping_add(sack.wrapping_sub(ack));
    let s = &mut e.seen[dir];
    if s.maxwin < swin {
        s.maxwin = swin;
    }
    if after(end, s.end) {
        s.end = end;
        x.flags[dir] |= flag::DATA_UNACKNOWLEDGED;
    }
    let sender_maxend = s.maxend;
    if seg.ack {
        if x.flags[dir] & flag::MAXACK_SET == 0 {
            x.maxack[dir] = ack;
            x.flags[dir] |= flag::MAXACK_SET;
        } else if after(ack, x.maxack[dir]) {
            x.maxack[dir] = ack;
        }
    }
    // Update the receiver.
    let r = &mut e.seen[1 - dir];
    if r.maxwin != 0 && after(end, sender_maxend) {
        r.maxwin = r.maxwin.wrapping_add(end.wrapping_sub(sender_maxend));
    }
    if after(sack.wrapping_add(win), r.maxend.wrapping_sub(1)) {
        r.maxend = sack.wrapping_add(win);
        if win == 0 {
            r.maxend = r.maxend.wrapping_add(1);
        }
    }
    if ack == r.end {
        x.flags[1 - dir] &= !flag::DATA_UNACKNOWLEDGED;
    }
    // Count retransmissions: the same ACK segment again.
    if seg.kind == Kind::Ack {
        let same = x.last_dir == dir as u8
            && x.last_seq == seq
            && x.last_ack == ack
            && x.last_end == end
            && u32::from(x.last_win) == win_raw;
        if same {
            x.retrans = x.retrans.saturating_add(1);
        } else {
            x.last_dir = dir as u8;
            x.last_seq = seq;
            x.last_ack = ack;
            x.last_end = end;
            x.last_win = win_raw as u16;
            x.retrans = 0;
        }
    }
    (WindowVerdict::Accept, "")
}

/// What conntrack does with a TCP segment of a known entry (`nf_conntrack_tcp_packet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Accepted; the state moved to `state`; the timeout becomes `timeout` seconds (`None`:
    /// left as it is, for a retransmitted SYN). `assure` sets ASSURED.
    Accept {
        /// The new state.
        state: State,
        /// The new timeout.
        timeout: Option<u32>,
        /// Set ASSURED.
        assure: bool,
    },
    /// Accepted and forwarded, nothing updated (`TCP_CONNTRACK_IGNORE`, `NFCT_TCP_IGNORE`,
    /// a challenge ACK). Carries the kernel's log text.
    Ignore(&'static str),
    /// INVALID, with the kernel's log text; `shrink` asks to lower an ASSURED entry's
    /// timeout to `unacknowledged` (`nf_tcp_handle_invalid`).
    Invalid {
        /// Why.
        why: &'static str,
        /// Lower the timeout.
        shrink: bool,
    },
    /// A SYN reopening a closed or aborted connection: delete the entry and track the SYN as
    /// the first packet of a new one.
    Reopen,
    /// The only reply is a RST: delete the entry at once.
    Kill,
}

/// Entry status bits the TCP tracker reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// IPS_SEEN_REPLY (before this packet).
    pub seen_reply: bool,
    /// IPS_ASSURED.
    pub assured: bool,
}

/// `nf_conntrack_tcp_packet` for an entry in the table: the state table, the special cases
/// around ignored SYNs, challenge ACKs, simultaneous open and RSTs, window tracking, and the
/// timeout the entry gets.
pub fn packet(
    e: &mut Entry,
    x: &mut TcpExt,
    dir: usize,
    seg: &Segment,
    status: Status,
    t: &TcpTimeouts,
    be_liberal: bool,
) -> Action {
    let old = State::from_bits(e.bits);
    let index = seg.kind;
    let mut skip_window = false;
    let mut new = match next(dir, index, old) {
        Next::Invalid => {
            return Action::Invalid {
                why: "invalid state",
                shrink: false,
            }
        }
        Next::Ignore
            if index == Kind::SynAck
                && x.last_index == Kind::Syn as u8
                && usize::from(x.last_dir) != dir
                && seg.ack_no == x.last_end =>
        {
            // This SYN-ACK answers a SYN we let through: both ends are in sync and we were
            // not; take the ignored SYN's values.
            let ld = usize::from(x.last_dir);
            e.seen[ld] = Seen {
                end: x.last_end,
                maxend: x.last_end,
                maxwin: u32::from(x.last_win).max(1),
            };
            set_scale(e, ld, x.last_wscale);
            x.last_flags &= !flag::EXP_CHALLENGE_ACK;
            x.flags[ld] = x.last_flags;
            e.seen[dir] = Seen::default();
            set_scale(e, dir, 0);
            x.maxack[dir] = 0;
            x.flags[dir] &= flag::BE_LIBERAL;
            State::SynRecv
        }
        Next::Ignore => return ignore(x, dir, seg, old),
        Next::To(s) => s,
    };
    match new {
        State::SynSent if old >= State::TimeWait && old != State::SynSent2 => {
            if (x.flags[dir] | x.flags[1 - dir]) & flag::CLOSE_INIT != 0
                || (usize::from(x.last_dir) == dir && x.last_index == Kind::Rst as u8)
            {
                return Action::Reopen;
            }
            return ignore(x, dir, seg, old);
        }
        State::TimeWait
            if old == State::LastAck
                && index == Kind::Ack
                && usize::from(x.last_dir) != dir
                && x.last_index == Kind::Syn as u8
                && x.last_flags & flag::EXP_CHALLENGE_ACK != 0 =>
        {
            // An RFC 5961 challenge ACK answering a SYN, not the ACK of the last FIN.
            x.last_flags &= !flag::EXP_CHALLENGE_ACK;
            return Action::Ignore("challenge-ack ignored");
        }
        State::SynSent2 => x.last_flags |= flag::SIMULTANEOUS_OPEN,
        State::SynRecv
            if dir == 1 && index == Kind::Ack && x.last_flags & flag::SIMULTANEOUS_OPEN != 0 =>
        {
            new = State::Established;
        }
        State::Close if index == Kind::Rst => {
            if matches!(
                old,
                State::FinWait | State::LastAck | State::TimeWait | State::Close | State::CloseWait
            ) {
                // Closing: the tuple may be reused already; skip validation.
                skip_window = true;
            } else {
                let established = old == State::Established && status.assured;
                let other = 1 - dir;
                // `done`: the kernel's `break` out of this case, straight to window tracking.
                let mut done = false;
                if x.flags[other] & flag::MAXACK_SET != 0 && x.last_index != Kind::Syn as u8 {
                    if seg.seq == 0 && !established {
                        done = true;
                    } else if before(seg.seq, x.maxack[other]) {
                        return Action::Invalid {
                            why: "invalid rst",
                            shrink: false,
                        };
                    } else if !established
                        || seg.seq == x.maxack[other]
                        || (x.last_index == Kind::Ack as u8
                            && usize::from(x.last_dir) == dir
                            && seg.seq == x.last_end)
                    {
                        done = true;
                    } else {
                        // Not exactly at the expected sequence: keep the state, a challenge
                        // ACK may follow.
                        new = old;
                    }
                }
                // Without that: a RST answering a SYN or ACK we let through (a, c), or a
                // challenge ACK we let through, skips window checks.
                skip_window = !done
                    && ((((status.seen_reply && x.last_index == Kind::Syn as u8)
                        || (!status.assured && x.last_index == Kind::Ack as u8))
                        && seg.ack_no == x.last_end)
                        || (old == State::SynSent
                            && x.last_index == Kind::Ack as u8
                            && x.last_dir == 1
                            && seg.seq == x.last_ack));
            }
        }
        _ => {}
    }
    if !skip_window {
        match in_window(e, x, dir, old, seg, be_liberal) {
            (WindowVerdict::Accept, _) => {}
            (WindowVerdict::Ignore, why) => return Action::Ignore(why),
            (WindowVerdict::Invalid, why) => {
                return Action::Invalid {
                    why,
                    shrink: handle_invalid(x, dir, index, status.assured),
                }
            }
        }
    }
    // In window from here on.
    x.last_index = index as u8;
    x.last_dir = dir as u8;
    e.bits = (e.bits & !bits::STATE_MASK) | new as u16;
    if old != new && new == State::FinWait {
        x.flags[dir] |= flag::CLOSE_INIT;
    }
    let of_new = t.of(new);
    let mut timeout = if x.retrans >= MAX_RETRANS && of_new > t.max_retrans {
        t.max_retrans
    } else if index == Kind::Rst {
        t.close
    } else if (x.flags[0] | x.flags[1]) & flag::DATA_UNACKNOWLEDGED != 0
        && of_new > t.unacknowledged
    {
        t.unacknowledged
    } else if x.last_win == 0 && of_new > t.max_retrans {
        t.max_retrans
    } else {
        of_new
    };
    let mut assure = false;
    if !status.seen_reply {
        if seg.rst {
            return Action::Kill;
        }
        if index == Kind::Syn && old == State::SynSent {
            // A retransmitted SYN does not renew the timeout.
            return Action::Accept {
                state: new,
                timeout: None,
                assure: false,
            };
        }
        if new == State::Established && timeout > t.unacknowledged {
            // Picked up mid-stream without a reply yet.
            timeout = t.unacknowledged;
        }
    } else if !status.assured
        && matches!(old, State::SynRecv | State::Established)
        && new == State::Established
    {
        assure = true;
    }
    Action::Accept {
        state: new,
        timeout: Some(timeout),
        assure,
    }
}

/// `TCP_CONNTRACK_IGNORE`: note the segment as the last one seen and let it pass.
fn ignore(x: &mut TcpExt, dir: usize, seg: &Segment, old: State) -> Action {
    x.last_index = seg.kind as u8;
    x.last_dir = dir as u8;
    x.last_seq = seg.seq;
    x.last_end = seg.end;
    x.last_win = seg.win as u16;
    if seg.kind == Kind::Syn && dir == 0 {
        // A SYN the server may answer: keep its options for the resync.
        x.last_flags = 0;
        x.last_wscale = 0;
        if let Some(s) = seg.opts.wscale {
            x.last_flags |= flag::WINDOW_SCALE;
            x.last_wscale = s;
        }
        if seg.opts.sack_perm {
            x.last_flags |= flag::SACK_PERM;
        }
        if old == State::LastAck {
            x.last_flags |= flag::EXP_CHALLENGE_ACK;
        }
    }
    if old == State::SynSent && seg.kind == Kind::Ack && dir == 1 {
        // Possibly a challenge ACK answering the SYN.
        x.last_ack = seg.ack_no;
    }
    Action::Ignore("packet ignored")
}

/// `nf_tcp_handle_invalid`: an out-of-window FIN or RST answering the other side's FIN or RST
/// on an ASSURED entry lowers its timeout (true); otherwise it is remembered as the last one.
fn handle_invalid(x: &mut TcpExt, dir: usize, index: Kind, assured: bool) -> bool {
    if !assured || !matches!(index, Kind::Rst | Kind::Fin) {
        return false;
    }
    if usize::from(x.last_dir) != dir
        && (x.last_index == Kind::Fin as u8 || x.last_index == Kind::Rst as u8)
    {
        true
    } else {
        x.last_index = index as u8;
        x.last_dir = dir as u8;
        false
    }
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
            opts: Options::default(),
        }
    }

    fn with_wscale(mut s: Segment, ws: u8) -> Segment {
        s.opts = Options::parse(&[2, 4, 5, 0xb4, 3, 3, ws, 4, 2, 0]);
        s
    }

    /// One connection driven the way `Conntrack::packet` drives it.
    struct Conn {
        e: Entry,
        x: TcpExt,
        seen_reply: bool,
        assured: bool,
    }

    impl Conn {
        fn open(syn: &Segment) -> Conn {
            let mut c = Conn {
                e: Entry::default(),
                x: TcpExt::default(),
                seen_reply: false,
                assured: false,
            };
            new_entry(&mut c.e, &mut c.x, syn);
            assert!(matches!(c.feed(0, syn), Action::Accept { .. }));
            c
        }

        fn feed(&mut self, dir: usize, s: &Segment) -> Action {
            let status = Status {
                seen_reply: self.seen_reply,
                assured: self.assured,
            };
            let a = packet(
                &mut self.e,
                &mut self.x,
                dir,
                s,
                status,
                &TcpTimeouts::default(),
                false,
            );
            if let Action::Accept { assure: true, .. } = a {
                self.assured = true;
            }
            if dir == 1 && !matches!(a, Action::Invalid { .. }) {
                self.seen_reply = true;
            }
            a
        }

        fn state(&self) -> State {
            State::from_bits(self.e.bits)
        }
    }

    fn timeout(a: Action) -> Option<u32> {
        match a {
            Action::Accept { timeout, .. } => timeout,
            other => panic!("not accepted: {other:?}"),
        }
    }

    /// Client 1000 -> server 5000, both offering window scale `ws_c` / `ws_s`.
    fn established(ws_c: Option<u8>, ws_s: Option<u8>) -> Conn {
        let mut syn = seg(Kind::Syn, 1000, None, 0, 65535);
        if let Some(w) = ws_c {
            syn = with_wscale(syn, w);
        }
        let mut c = Conn::open(&syn);
        let mut synack = seg(Kind::SynAck, 5000, Some(1001), 0, 65535);
        if let Some(w) = ws_s {
            synack = with_wscale(synack, w);
        }
        assert!(matches!(c.feed(1, &synack), Action::Accept { .. }));
        assert!(matches!(
            c.feed(0, &seg(Kind::Ack, 1001, Some(5001), 0, 32768)),
            Action::Accept { .. }
        ));
        assert_eq!(c.state(), State::Established);
        c
    }

    #[test]
    fn the_clients_syn_keeps_its_window_scale_until_the_syn_ack() {
        // Regression: the client's SYN used to zero both scales because the reply direction
        // had not offered one yet; the SYN-ACK then set only the server's, so the client's
        // `win 32768` (65536 bytes at scale 1) was read as 32768 and the server's data
        // beyond it became INVALID.
        let mut c = established(Some(1), Some(1));
        assert_eq!(scale(&c.e, 0), 1);
        assert_eq!(scale(&c.e, 1), 1);
        // The server sends 60000 bytes: within 65536, beyond 32768.
        let mut seq = 5001;
        for _ in 0..40 {
            let a = c.feed(1, &seg(Kind::Ack, seq, Some(1001), 1500, 32768));
            assert!(matches!(a, Action::Accept { .. }), "seq {seq}: {a:?}");
            seq += 1500;
        }
    }

    #[test]
    fn scaling_needs_both_sides() {
        let c = established(Some(7), None);
        assert_eq!((scale(&c.e, 0), scale(&c.e, 1)), (0, 0));
        let c = established(None, Some(7));
        assert_eq!((scale(&c.e, 0), scale(&c.e, 1)), (0, 0));
        let c = established(Some(2), Some(9));
        assert_eq!((scale(&c.e, 0), scale(&c.e, 1)), (2, 9));
    }

    #[test]
    fn old_retransmissions_and_delayed_acks_are_ignored_not_invalid() {
        let mut c = established(None, None);
        // 200 KB from the client, acknowledged as it goes.
        let mut seq = 1001u32;
        for _ in 0..200 {
            assert!(matches!(
                c.feed(0, &seg(Kind::Ack, seq, Some(5001), 1000, 65535)),
                Action::Accept { .. }
            ));
            seq += 1000;
            assert!(matches!(
                c.feed(1, &seg(Kind::Ack, 5001, Some(seq), 0, 65535)),
                Action::Accept { .. }
            ));
        }
        // Data acknowledged long ago, resent: below the receiver's window.
        assert_eq!(
            c.feed(0, &seg(Kind::Ack, 1001, Some(5001), 1000, 65535)),
            Action::Ignore("SEQ is under lower bound (already ACKed data retransmitted)")
        );
        // An ACK far below what was already acknowledged.
        assert_eq!(
            c.feed(1, &seg(Kind::Ack, 5001, Some(2001), 0, 65535)),
            Action::Ignore("ignored ACK under lower bound (possible overly delayed)")
        );
        // Beyond anything the receiver allowed: INVALID.
        assert!(matches!(
            c.feed(0, &seg(Kind::Ack, seq + 10_000_000, Some(5001), 100, 65535)),
            Action::Invalid { .. }
        ));
        // Acknowledging data never sent: INVALID.
        assert!(matches!(
            c.feed(0, &seg(Kind::Ack, seq, Some(5001 + 1_000_000), 0, 65535)),
            Action::Invalid { .. }
        ));
        assert_eq!(c.state(), State::Established);
    }

    #[test]
    fn unacknowledged_data_gets_the_unacknowledged_timeout() {
        // Regression: `tcp_timeout_unacknowledged` (300 s) was defined but never applied.
        let mut c = established(None, None);
        let t = TcpTimeouts::default();
        let a = c.feed(0, &seg(Kind::Ack, 1001, Some(5001), 100, 65535));
        assert_eq!(timeout(a), Some(t.unacknowledged));
        let a = c.feed(1, &seg(Kind::Ack, 5001, Some(1101), 0, 65535));
        assert_eq!(timeout(a), Some(t.established));
    }

    #[test]
    fn three_identical_acks_give_the_max_retrans_timeout() {
        let mut c = established(None, None);
        let data = seg(Kind::Ack, 1001, Some(5001), 100, 65535);
        let t = TcpTimeouts::default();
        for _ in 0..3 {
            c.feed(0, &data);
        }
        assert_eq!(c.x.retrans, 2);
        assert_eq!(timeout(c.feed(0, &data)), Some(t.max_retrans));
        assert_eq!(c.x.retrans, MAX_RETRANS);
    }

    #[test]
    fn a_retransmitted_syn_does_not_renew_the_timeout() {
        let syn = seg(Kind::Syn, 1000, None, 0, 65535);
        let mut c = Conn::open(&syn);
        assert_eq!(timeout(c.feed(0, &syn)), None);
        assert_eq!(c.state(), State::SynSent);
    }

    #[test]
    fn simultaneous_open_reaches_established() {
        let mut c = Conn::open(&seg(Kind::Syn, 1000, None, 0, 65535));
        assert!(matches!(
            c.feed(1, &seg(Kind::Syn, 5000, None, 0, 65535)),
            Action::Accept { .. }
        ));
        assert_eq!(c.state(), State::SynSent2);
        c.feed(0, &seg(Kind::SynAck, 1000, Some(5001), 0, 65535));
        assert_eq!(c.state(), State::SynRecv);
        c.feed(1, &seg(Kind::Ack, 5001, Some(1001), 0, 65535));
        assert_eq!(c.state(), State::Established);
    }

    #[test]
    fn a_syn_in_established_is_ignored_and_a_matching_syn_ack_resyncs() {
        let mut c = established(None, None);
        // The client restarted: a new SYN far away.
        let syn = seg(Kind::Syn, 900_000, None, 0, 65535);
        assert_eq!(c.feed(0, &syn), Action::Ignore("packet ignored"));
        assert_eq!(c.state(), State::Established);
        // The server answers it: conntrack follows.
        let a = c.feed(1, &seg(Kind::SynAck, 700_000, Some(900_001), 0, 65535));
        assert!(matches!(a, Action::Accept { .. }), "{a:?}");
        assert_eq!(c.state(), State::SynRecv);
    }

    #[test]
    fn a_syn_after_fin_reopens_and_rst_in_window_closes() {
        let mut c = established(None, None);
        c.feed(0, &seg(Kind::Fin, 1001, Some(5001), 0, 65535));
        c.feed(1, &seg(Kind::Fin, 5001, Some(1002), 0, 65535));
        c.feed(0, &seg(Kind::Ack, 1002, Some(5002), 0, 65535));
        assert_eq!(c.state(), State::TimeWait);
        assert_eq!(
            c.feed(0, &seg(Kind::Syn, 2_000_000, None, 0, 65535)),
            Action::Reopen
        );
        let mut c = established(None, None);
        let a = c.feed(1, &seg(Kind::Rst, 5001, None, 0, 0));
        assert_eq!(timeout(a), Some(TcpTimeouts::default().close));
        assert_eq!(c.state(), State::Close);
    }

    #[test]
    fn a_rst_below_the_acked_sequence_is_invalid() {
        let mut c = established(None, None);
        c.feed(0, &seg(Kind::Ack, 1001, Some(5001), 500, 65535));
        c.feed(1, &seg(Kind::Ack, 5001, Some(1501), 0, 65535));
        assert!(matches!(
            c.feed(0, &seg(Kind::Rst, 1200, None, 0, 0)),
            Action::Invalid {
                why: "invalid rst",
                ..
            }
        ));
    }

    #[test]
    fn options_parse_like_tcp_options() {
        let o = Options::parse(&[1, 1, 3, 3, 20, 4, 2, 0, 3, 3, 1]);
        assert_eq!(o.wscale, Some(14), "capped at TCP_MAX_WSCALE, EOL stops");
        assert!(o.sack_perm);
        let o = Options::parse(&[5, 18, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 20, 0, 0, 0, 30]);
        assert_eq!(o.sack(5), 30);
        assert_eq!(o.sack(40), 40);
        let o = Options::parse(&[3, 9, 1]);
        assert_eq!(o.wscale, None, "partial option not parsed");
    }
}
