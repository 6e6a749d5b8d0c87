//! TCP connection tracking as in Linux `nf_conntrack_proto_tcp.c`: the state table indexed by
//! direction, segment kind and current state, window tracking (`tcp_in_window`), and the
//! timeouts.

mod packet;
mod window;

pub use packet::{packet, Action, Status};
pub use window::{in_window, new_entry, WindowReason, WindowVerdict, MAX_RETRANS};

use super::table::bits;

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
/// parallel to the entries: lookups never read it.
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

fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

fn before(a: u32, b: u32) -> bool {
    after(b, a)
}

#[cfg(test)]
mod tests;
