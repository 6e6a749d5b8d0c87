use super::window::scale;
use super::*;
use crate::conntrack::table::Entry;

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
