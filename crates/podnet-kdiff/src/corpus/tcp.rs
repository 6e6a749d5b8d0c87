//! TCP in the generated scripts: the op builder that keeps each side's sequence numbers, and
//! the script of every TCP category.

use super::script::flow;
use super::{Category, Flow, Op, Path, Rng, Side};
use crate::craft::{TcpOpt, ACK, FIN, PSH, RST, SYN};

/// Builds TCP ops for one flow, keeping each side's next sequence offset.
pub(super) struct Tcp<'a> {
    pub(super) ops: &'a mut Vec<Op>,
    flow: usize,
    /// Next sequence offset of A, B.
    pub(super) nxt: [u32; 2],
    /// Raw window each side advertises.
    win: [u16; 2],
}

fn idx(s: Side) -> usize {
    match s {
        Side::A => 0,
        Side::B => 1,
    }
}

fn other(s: Side) -> Side {
    match s {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

impl<'a> Tcp<'a> {
    pub(super) fn new(ops: &'a mut Vec<Op>, flow: usize) -> Self {
        Tcp {
            ops,
            flow,
            nxt: [0, 0],
            win: [502, 509],
        }
    }
    #[allow(clippy::too_many_arguments)]
    fn raw(
        &mut self,
        from: Side,
        flags: u8,
        seq: u32,
        ack: u32,
        len: u16,
        opts: Vec<TcpOpt>,
        win: u16,
    ) {
        self.ops.push(Op::Tcp {
            flow: self.flow,
            from,
            flags,
            seq,
            ack: if flags & ACK != 0 { ack } else { 0 },
            win,
            opts,
            len,
            ttl: 64,
        });
    }
    /// A segment at the sender's next sequence, acking everything of the peer's.
    fn seg(&mut self, from: Side, flags: u8, len: u16) {
        let (s, o) = (idx(from), idx(other(from)));
        let (seq, ack, win) = (self.nxt[s], self.nxt[o], self.win[s]);
        self.raw(from, flags, seq, ack, len, Vec::new(), win);
        self.nxt[s] = seq.wrapping_add(u32::from(len) + u32::from(flags & (SYN | FIN) != 0));
    }
    fn syn_opts(r: &mut Rng, ws: Option<u8>, sack: bool) -> Vec<TcpOpt> {
        let mut o = vec![TcpOpt::Mss(r.pick(&[1460, 1400, 536]))];
        if sack {
            o.push(TcpOpt::SackPerm);
        }
        if r.pct(50) {
            o.push(TcpOpt::Ts(r.next_u64() as u32, 0));
        }
        if let Some(w) = ws {
            o.push(TcpOpt::Wscale(w));
        }
        o
    }
    pub(super) fn syn(&mut self, r: &mut Rng, ws: Option<u8>, sack: bool) {
        let o = Self::syn_opts(r, ws, sack);
        let w = self.win[0].max(64240 / 2);
        self.raw(Side::A, SYN, 0, 0, 0, o, w);
        self.nxt[0] = 1;
    }
    pub(super) fn synack(&mut self, r: &mut Rng, ws: Option<u8>, sack: bool) {
        let o = Self::syn_opts(r, ws, sack);
        self.raw(Side::B, SYN | ACK, 0, 1, 0, o, 65160);
        self.nxt[1] = 1;
    }
    /// SYN, SYN-ACK, ACK with the usual Linux options.
    fn handshake(&mut self, r: &mut Rng) {
        let ws = Some(7);
        self.syn(r, ws, true);
        self.synack(r, ws, true);
        self.seg(Side::A, ACK, 0);
    }
    pub(super) fn data(&mut self, from: Side, len: u16) {
        self.seg(from, PSH | ACK, len);
    }
    pub(super) fn ack(&mut self, from: Side) {
        self.seg(from, ACK, 0);
    }
    fn fin(&mut self, from: Side) {
        self.seg(from, FIN | ACK, 0);
    }
    /// Both ends close, `first` first.
    pub(super) fn close(&mut self, first: Side) {
        self.fin(first);
        self.ack(other(first));
        self.fin(other(first));
        self.ack(first);
    }
}

/// A TCP path, as most TCP categories pick one.
fn tcp_path(r: &mut Rng) -> Path {
    r.pick(&[
        Path::SvcMulti,
        Path::SvcRemote,
        Path::SvcLocal,
        Path::PodRemote,
        Path::PodLocal,
        Path::Egress,
        Path::NodePortCluster,
        Path::Hairpin,
    ])
}

/// The script of a TCP category (the others: [`super::script`]).
#[allow(clippy::too_many_lines)]
pub(super) fn gen_tcp(c: Category, r: &mut Rng, flows: &mut Vec<Flow>, ops: &mut Vec<Op>) {
    use Category::*;
    match c {
        TcpHandshake => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            let ws = r.pct(70).then(|| r.range(0, 14) as u8);
            let sack = r.pct(70);
            t.syn(r, ws, sack);
            if r.pct(30) {
                t.syn(r, ws, sack); // retransmitted SYN
            }
            let wsb = if ws.is_some() && r.pct(80) {
                Some(r.range(0, 14) as u8)
            } else {
                None
            };
            let sb = sack && r.pct(80);
            t.synack(r, wsb, sb);
            if r.pct(25) {
                t.synack(r, wsb, sack); // retransmitted SYN-ACK
            }
            t.ack(Side::A);
            if r.pct(60) {
                t.data(Side::A, r.range(1, 1000) as u16);
                t.data(Side::B, r.range(1, 1400) as u16);
                t.ack(Side::A);
            }
        }
        TcpSimultaneousOpen => {
            let p = r.pick(&[
                Path::PodRemote,
                Path::PodLocal,
                Path::SvcRemote,
                Path::Egress,
            ]);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            let ws = r.pct(60).then_some(7);
            t.syn(r, ws, true);
            let o = Tcp::syn_opts(r, ws, true);
            t.raw(Side::B, SYN, 0, 0, 0, o, 65160);
            t.nxt[1] = 1;
            let variant = r.range(0, 2);
            let o = Tcp::syn_opts(r, ws, true);
            t.raw(Side::A, SYN | ACK, 0, 1, 0, o, 64240);
            if variant >= 1 {
                let o = Tcp::syn_opts(r, ws, true);
                t.raw(Side::B, SYN | ACK, 0, 1, 0, o, 65160);
            }
            if variant != 1 {
                t.ack(Side::B);
            }
            t.ack(Side::A);
            if r.pct(50) {
                t.data(Side::A, r.range(1, 500) as u16);
                t.ack(Side::B);
            }
        }
        TcpRst => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            // The state the RST finds: 0 SYN_SENT, 1 SYN_RECV, 2 ESTABLISHED, 3 FIN_WAIT,
            // 4 CLOSE_WAIT, 5 LAST_ACK, 6 TIME_WAIT.
            let state = r.range(0, 6);
            t.syn(r, Some(7), true);
            if state >= 1 {
                t.synack(r, Some(7), true);
            }
            if state >= 2 {
                t.ack(Side::A);
                t.data(Side::A, r.range(1, 300) as u16);
                t.ack(Side::B);
            }
            let closer = r.pick(&[Side::A, Side::B]);
            if state >= 3 {
                t.fin(closer);
            }
            if state >= 4 {
                t.ack(other(closer));
            }
            if state >= 5 {
                t.fin(other(closer));
            }
            if state >= 6 {
                t.ack(closer);
            }
            let from = if state == 0 {
                Side::B
            } else {
                r.pick(&[Side::A, Side::B])
            };
            let (s, o) = (idx(from), idx(other(from)));
            let seq = match r.range(0, 3) {
                0 | 1 => t.nxt[s],                                    // exact
                2 => t.nxt[s].wrapping_add(r.range(1, 20000) as u32), // in window, not exact
                _ => t.nxt[s].wrapping_add(0x4000_0000),              // out of window
            };
            let (flags, ack) = if state == 0 || r.pct(50) {
                (RST | ACK, t.nxt[o])
            } else {
                (RST, 0)
            };
            // In SYN_SENT the RST answers the SYN: seq 0 with the SYN acked.
            let seq = if state == 0 { 0 } else { seq };
            t.raw(from, flags, seq, ack, 0, Vec::new(), 0);
            if r.pct(50) {
                // What comes after: more data, or the RST again.
                if r.pct(50) {
                    t.data(other(from), 10);
                } else {
                    t.raw(from, RST, seq, 0, 0, Vec::new(), 0);
                }
            }
        }
        TcpFin => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            t.data(Side::A, r.range(1, 800) as u16);
            t.data(Side::B, r.range(1, 800) as u16);
            let first = r.pick(&[Side::A, Side::B]);
            match r.range(0, 4) {
                0 => t.close(first),
                1 => {
                    // Simultaneous close.
                    t.fin(Side::A);
                    let a_fin = t.nxt[0];
                    let keep = a_fin.wrapping_sub(1);
                    // B's FIN does not ack A's.
                    let (bseq, back) = (t.nxt[1], keep);
                    t.raw(Side::B, FIN | ACK, bseq, back, 0, Vec::new(), t.win[1]);
                    t.nxt = [a_fin, bseq.wrapping_add(1)];
                    t.ack(Side::A);
                    t.ack(Side::B);
                }
                2 => {
                    // FIN carrying data, half close, data the other way, then close.
                    let n = r.range(1, 500) as u16;
                    t.seg(first, FIN | PSH | ACK, n);
                    t.ack(other(first));
                    t.data(other(first), r.range(1, 500) as u16);
                    t.ack(first);
                    t.fin(other(first));
                    t.ack(first);
                }
                3 => {
                    // FIN retransmitted before its ACK.
                    let s = idx(first);
                    let seq = t.nxt[s];
                    t.fin(first);
                    let (o, w) = (t.nxt[1 - s], t.win[s]);
                    t.raw(first, FIN | ACK, seq, o, 0, Vec::new(), w);
                    t.ack(other(first));
                    t.fin(other(first));
                    t.ack(first);
                }
                _ => {
                    // Closed, then a late ACK and a late data segment.
                    t.close(first);
                    let (s, o) = (idx(first), idx(other(first)));
                    let (seq, ack) = (t.nxt[s], t.nxt[o]);
                    t.raw(first, ACK, seq, ack, 0, Vec::new(), 502);
                    t.raw(
                        other(first),
                        PSH | ACK,
                        t.nxt[o].wrapping_sub(1),
                        seq,
                        5,
                        Vec::new(),
                        502,
                    );
                }
            }
        }
        TcpRetransmission => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            for _ in 0..r.range(1, 3) {
                let from = r.pick(&[Side::A, Side::B]);
                let s = idx(from);
                let (seq, ack, win) = (t.nxt[s], t.nxt[1 - s], t.win[s]);
                let n = r.range(1, 1200) as u16;
                t.data(from, n);
                for _ in 0..r.range(1, 4) {
                    t.raw(from, PSH | ACK, seq, ack, n, Vec::new(), win);
                }
                t.ack(other(from));
                if r.pct(40) {
                    t.ack(other(from)); // duplicate ACK
                }
            }
        }
        TcpReordering => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            let from = r.pick(&[Side::A, Side::B]);
            let s = idx(from);
            let k = r.range(2, 4) as usize;
            let mut segs = Vec::new();
            for _ in 0..k {
                let n = r.range(1, 1000) as u16;
                segs.push((t.nxt[s], n));
                t.nxt[s] = t.nxt[s].wrapping_add(u32::from(n));
            }
            // A permutation that is not the identity.
            let mut order: Vec<usize> = (0..k).collect();
            order.rotate_left(r.range(1, k as u64 - 1) as usize);
            if r.pct(50) {
                order.swap(0, k - 1);
            }
            let (ack, win) = (t.nxt[1 - s], t.win[s]);
            for i in order {
                t.raw(from, PSH | ACK, segs[i].0, ack, segs[i].1, Vec::new(), win);
            }
            t.ack(other(from));
        }
        TcpLoss => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            let from = r.pick(&[Side::A, Side::B]);
            let s = idx(from);
            let k = r.range(3, 5) as usize;
            let lost = r.range(0, k as u64 - 2) as usize;
            let mut segs = Vec::new();
            for _ in 0..k {
                let n = r.range(100, 1000) as u16;
                segs.push((t.nxt[s], n));
                t.nxt[s] = t.nxt[s].wrapping_add(u32::from(n));
            }
            let (ack, win) = (t.nxt[1 - s], t.win[s]);
            for (i, &(seq, n)) in segs.iter().enumerate() {
                if i != lost {
                    t.raw(from, PSH | ACK, seq, ack, n, Vec::new(), win);
                }
            }
            // Duplicate ACKs at the hole, then the retransmission and the full ACK.
            let hole = segs[lost].0;
            let (oseq, owin) = (t.nxt[1 - s], t.win[1 - s]);
            for _ in 0..3 {
                t.raw(other(from), ACK, oseq, hole, 0, Vec::new(), owin);
            }
            t.raw(from, PSH | ACK, hole, ack, segs[lost].1, Vec::new(), win);
            t.ack(other(from));
            if r.pct(30) {
                // A lost ACK: the next data is acked twice ahead.
                t.data(from, 100);
                t.data(from, 100);
                t.ack(other(from));
            }
        }
        TcpWindowScaling => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            let (wa, wb) = match r.range(0, 3) {
                0 => (None, None),
                1 => (Some(r.range(0, 14) as u8), None),
                2 => (None, Some(r.range(0, 14) as u8)),
                _ => (Some(r.range(0, 14) as u8), Some(r.range(0, 14) as u8)),
            };
            t.syn(r, wa, true);
            t.synack(r, wb, true);
            t.ack(Side::A);
            // The receiver advertises a small raw window; the sender writes up to, and past,
            // its edge as scaled (or not).
            let to = r.pick(&[Side::A, Side::B]);
            let raw = r.range(1, 12) as u16;
            t.win[idx(to)] = raw;
            t.ack(to);
            let from = other(to);
            let shift = match (wa, wb) {
                (Some(a), Some(b)) => u32::from(if to == Side::A { a } else { b }),
                _ => 0,
            };
            let edge = (u32::from(raw) << shift).clamp(1, 1400);
            let n = match r.range(0, 2) {
                0 => edge,
                1 => (edge + r.range(1, 200) as u32).min(1400),
                _ => edge.saturating_sub(r.range(0, 50) as u32).max(1),
            };
            t.data(from, n as u16);
            t.ack(to);
            if r.pct(50) {
                t.data(from, r.range(1, 400) as u16);
            }
        }
        TcpSack => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            let (sa, sb) = (r.pct(80), r.pct(80));
            t.syn(r, Some(7), sa);
            t.synack(r, Some(7), sb);
            t.ack(Side::A);
            let from = r.pick(&[Side::A, Side::B]);
            let s = idx(from);
            let mut segs = Vec::new();
            for _ in 0..3 {
                let n = r.range(100, 800) as u16;
                segs.push((t.nxt[s], n));
                t.nxt[s] = t.nxt[s].wrapping_add(u32::from(n));
            }
            let (ack, win) = (t.nxt[1 - s], t.win[s]);
            for (i, &(seq, n)) in segs.iter().enumerate() {
                if i != 1 {
                    t.raw(from, PSH | ACK, seq, ack, n, Vec::new(), win);
                }
            }
            let (oseq, owin) = (t.nxt[1 - s], t.win[1 - s]);
            let right = if r.pct(20) {
                // A SACK block beyond anything sent.
                t.nxt[s].wrapping_add(5000)
            } else {
                t.nxt[s]
            };
            let block = vec![TcpOpt::Sack(vec![(segs[2].0, right)])];
            t.raw(other(from), ACK, oseq, segs[1].0, 0, block, owin);
            t.raw(from, PSH | ACK, segs[1].0, ack, segs[1].1, Vec::new(), win);
            t.ack(other(from));
        }
        TcpZeroWindow => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            let from = r.pick(&[Side::A, Side::B]);
            let to = other(from);
            t.data(from, r.range(100, 1000) as u16);
            t.win[idx(to)] = 0;
            t.ack(to);
            // Window probes: one byte at the next sequence, or the last byte again.
            for _ in 0..r.range(1, 3) {
                let s = idx(from);
                let (seq, ack, win) = (t.nxt[s], t.nxt[1 - s], t.win[s]);
                if r.pct(50) {
                    t.raw(from, PSH | ACK, seq, ack, 1, Vec::new(), win);
                } else {
                    t.raw(from, ACK, seq.wrapping_sub(1), ack, 0, Vec::new(), win);
                }
                t.ack(to);
            }
            if r.pct(50) {
                // Data into the closed window.
                t.data(from, r.range(1, 500) as u16);
            }
            t.win[idx(to)] = 502;
            t.ack(to);
            t.data(from, r.range(1, 500) as u16);
            t.ack(to);
        }
        TcpOutOfWindow => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            t.data(Side::A, r.range(1, 1000) as u16);
            t.data(Side::B, r.range(1, 1000) as u16);
            for _ in 0..r.range(1, 3) {
                let from = r.pick(&[Side::A, Side::B]);
                let s = idx(from);
                let (seq, ack, win) = (t.nxt[s], t.nxt[1 - s], t.win[s]);
                match r.range(0, 4) {
                    // Beyond the peer's window.
                    0 => t.raw(
                        from,
                        PSH | ACK,
                        seq.wrapping_add(r.range(70000, 1 << 30) as u32),
                        ack,
                        100,
                        Vec::new(),
                        win,
                    ),
                    // An overly delayed segment: far behind what was acked.
                    1 => t.raw(
                        from,
                        PSH | ACK,
                        seq.wrapping_sub(r.range(70000, 1 << 30) as u32),
                        ack,
                        100,
                        Vec::new(),
                        win,
                    ),
                    // An ACK of data never sent.
                    2 => t.raw(
                        from,
                        ACK,
                        seq,
                        ack.wrapping_add(r.range(1, 1 << 30) as u32),
                        0,
                        Vec::new(),
                        win,
                    ),
                    // An old duplicate just behind the window (inside max_win).
                    3 => t.raw(
                        from,
                        PSH | ACK,
                        seq.wrapping_sub(r.range(1, 3000) as u32),
                        ack,
                        50,
                        Vec::new(),
                        win,
                    ),
                    // A SYN in ESTABLISHED.
                    _ => t.raw(
                        from,
                        SYN,
                        seq.wrapping_add(r.range(0, 100000) as u32),
                        0,
                        0,
                        Vec::new(),
                        win,
                    ),
                }
                if r.pct(50) {
                    t.ack(other(from));
                }
            }
            t.data(Side::A, 10);
            t.ack(Side::B);
        }
        TcpTimeWaitReopen => {
            let p = tcp_path(r);
            let mut f = flow(r, p, 6);
            let f2 = Flow {
                isn_a: f.isn_a.wrapping_add(r.range(100_000, 1 << 30) as u32),
                isn_b: r.next_u64() as u32,
                ..f.clone()
            };
            if r.pct(20) {
                // The new SYN's sequence is below the old connection's.
                f.isn_a = f2.isn_a.wrapping_add(1 << 20);
            }
            flows.push(f);
            flows.push(f2);
            {
                let mut t = Tcp::new(ops, 0);
                t.handshake(r);
                t.data(Side::A, r.range(1, 500) as u16);
                t.ack(Side::B);
                t.close(r.pick(&[Side::A, Side::B]));
            }
            if r.pct(15) {
                // A SYN from the responder's side first, on the connection in TIME_WAIT.
                let o = Tcp::syn_opts(r, Some(7), true);
                let seq = r.range(100_000, 1 << 30) as u32;
                ops.push(Op::Tcp {
                    flow: 0,
                    from: Side::B,
                    flags: SYN,
                    seq,
                    ack: 0,
                    win: 65160,
                    opts: o,
                    len: 0,
                    ttl: 64,
                });
            }
            let mut t = Tcp::new(ops, 1);
            t.handshake(r);
            t.data(Side::A, 20);
        }
        _ => unreachable!("{c:?} is not a TCP category"),
    }
}
