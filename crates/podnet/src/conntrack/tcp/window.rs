//! `tcp_in_window` and the per-direction state it keeps: window edges, scales, options.

use super::{after, before, flag, Kind, Options, Segment, State, TcpExt};
use crate::conntrack::table::{Entry, Seen};

/// `MAXACKWINCONST`.
const MAX_ACK_WIN_CONST: u32 = 66000;

/// `nf_conntrack_tcp_max_retrans`: identical ACKs before the `max_retrans` timeout applies.
pub const MAX_RETRANS: u8 = 3;

pub(super) fn scale(e: &Entry, dir: usize) -> u32 {
    u32::from(if dir == 0 {
        e.scales & 0x0f
    } else {
        e.scales >> 4
    })
}

pub(super) fn set_scale(e: &mut Entry, dir: usize, s: u8) {
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
