//! `nf_conntrack_tcp_packet`: the state table's special cases and the timeout an entry gets.

use super::window::{in_window, set_scale, WindowVerdict, MAX_RETRANS};
use super::{before, flag, next, Kind, Next, Segment, State, TcpExt, TcpTimeouts};
use crate::conntrack::table::{bits, Entry, Seen};

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
