//! A generated script's ops per category (TCP's in [`super::tcp`]): UDP, ICMP, NAT, NodePort,
//! REJECT and early-drop flows, and the short conversations they share.

use super::tcp::{gen_tcp, Tcp};
use super::{Category, Flow, Op, Path, Rng, Side};

pub(super) fn flow(r: &mut Rng, path: Path, proto: u8) -> Flow {
    Flow {
        path,
        proto,
        sport: r.range(32768, 60999) as u16,
        isn_a: r.next_u64() as u32,
        isn_b: r.next_u64() as u32,
    }
}

#[allow(clippy::too_many_lines)]
pub(super) fn gen_category(c: Category, r: &mut Rng, flows: &mut Vec<Flow>, ops: &mut Vec<Op>) {
    use Category::*;
    match c {
        TcpHandshake | TcpSimultaneousOpen | TcpRst | TcpFin | TcpRetransmission
        | TcpReordering | TcpLoss | TcpWindowScaling | TcpSack | TcpZeroWindow | TcpOutOfWindow
        | TcpTimeWaitReopen => gen_tcp(c, r, flows, ops),
        UdpUnreplied | UdpReplied | UdpStream => {
            let path = r.pick(&[
                Path::SvcMulti,
                Path::SvcRemote,
                Path::SvcLocal,
                Path::PodRemote,
                Path::PodLocal,
                Path::Egress,
                Path::Hairpin,
            ]);
            flows.push(flow(r, path, 17));
            let n = r.range(1, 3);
            let len = |r: &mut Rng| r.range(0, 1200) as u16;
            match c {
                UdpUnreplied => {
                    for _ in 0..n {
                        ops.push(Op::Udp {
                            flow: 0,
                            from: Side::A,
                            len: len(r),
                            ttl: 64,
                        });
                    }
                }
                UdpReplied => {
                    ops.push(Op::Udp {
                        flow: 0,
                        from: Side::A,
                        len: len(r),
                        ttl: 64,
                    });
                    for _ in 0..n {
                        ops.push(Op::Udp {
                            flow: 0,
                            from: Side::B,
                            len: len(r),
                            ttl: 64,
                        });
                    }
                }
                _ => {
                    for _ in 0..n + 1 {
                        ops.push(Op::Udp {
                            flow: 0,
                            from: Side::A,
                            len: len(r),
                            ttl: 64,
                        });
                        ops.push(Op::Udp {
                            flow: 0,
                            from: Side::B,
                            len: len(r),
                            ttl: 64,
                        });
                    }
                }
            }
        }
        IcmpEcho => {
            let path = r.pick(&[Path::PodRemote, Path::PodLocal, Path::Egress, Path::Egress2]);
            for _ in 0..r.range(1, 2) {
                flows.push(flow(r, path, 1));
            }
            if flows.len() == 2 && r.pct(30) {
                // Two pings with the same id (one flow's requests again, later).
                flows[1].sport = flows[0].sport;
            }
            for f in 0..flows.len() {
                for s in 0..r.range(1, 3) as u16 {
                    ops.push(Op::Echo {
                        flow: f,
                        from: Side::A,
                        seq: s,
                    });
                    if r.pct(80) {
                        ops.push(Op::Echo {
                            flow: f,
                            from: Side::B,
                            seq: s,
                        });
                    }
                }
            }
        }
        IcmpError => {
            let path = r.pick(&[
                Path::SvcMulti,
                Path::SvcRemote,
                Path::SvcLocal,
                Path::PodRemote,
                Path::Egress,
                Path::NodePortCluster,
            ]);
            let proto = if path == Path::NodePortCluster {
                6
            } else {
                r.pick(&[6, 17])
            };
            flows.push(flow(r, path, proto));
            if r.pct(20) {
                // TTL 1: the node itself answers time exceeded.
                if proto == 6 {
                    let mut t = Tcp::new(ops, 0);
                    t.syn(r, Some(7), true);
                    if let Some(Op::Tcp { ttl, .. }) = t.ops.last_mut() {
                        *ttl = 1;
                    }
                } else {
                    ops.push(Op::Udp {
                        flow: 0,
                        from: Side::A,
                        len: 20,
                        ttl: 1,
                    });
                }
                return;
            }
            if proto == 6 {
                let mut t = Tcp::new(ops, 0);
                t.syn(r, Some(7), true);
                if r.pct(40) {
                    t.synack(r, Some(7), true);
                    t.ack(Side::A);
                    t.data(Side::A, r.range(1, 1400) as u16);
                }
            } else {
                ops.push(Op::Udp {
                    flow: 0,
                    from: Side::A,
                    len: r.range(1, 1400) as u16,
                    ttl: 64,
                });
            }
            let (ty, code, rest) = match r.range(0, 3) {
                0 => (3, 3, [0; 4]),
                1 => (3, 1, [0; 4]),
                2 => (3, 4, [0, 0, 0x05, 0x00]), // fragmentation needed, MTU 1280
                _ => (11, 0, [0; 4]),
            };
            ops.push(Op::IcmpError {
                flow: 0,
                ty,
                code,
                rest,
                router: r.pct(40),
            });
            if r.pct(40) {
                // The flow goes on (or the error comes twice).
                ops.push(Op::IcmpError {
                    flow: 0,
                    ty,
                    code,
                    rest,
                    router: false,
                });
            }
        }
        NatDnat => {
            for _ in 0..r.range(1, 3) {
                let p = r.pick(&[Path::SvcMulti, Path::SvcRemote, Path::SvcLocal]);
                let proto = r.pick(&[6, 6, 17]);
                flows.push(flow(r, p, proto));
            }
            if flows.len() > 1 && r.pct(50) {
                flows[1].sport = flows[0].sport; // same client port, another Service or protocol
            }
            for (f, fl) in flows.iter().enumerate() {
                conversation(r, fl.proto, f, ops);
            }
        }
        NatMasqueradeClash => {
            let proto = r.pick(&[6, 17]);
            let a = flow(r, Path::Egress, proto);
            let b = Flow {
                path: Path::Egress2,
                isn_a: r.next_u64() as u32,
                isn_b: r.next_u64() as u32,
                ..a.clone()
            };
            flows.push(a);
            flows.push(b);
            if r.pct(40) {
                let c = flow(r, Path::Egress, proto);
                flows.push(c);
            }
            // Both open before either answer comes.
            let n = flows.len();
            for f in 0..n {
                first_packet(r, proto, f, ops);
            }
            for f in 0..n {
                rest_of_conversation(r, proto, f, ops);
            }
        }
        NatHairpin => {
            let proto = r.pick(&[6, 17]);
            flows.push(flow(r, Path::Hairpin, proto));
            conversation(r, proto, 0, ops);
        }
        NodePortCluster => {
            for _ in 0..r.range(1, 2) {
                flows.push(flow(r, Path::NodePortCluster, 6));
            }
            for f in 0..flows.len() {
                conversation(r, 6, f, ops);
            }
        }
        NodePortLocal => {
            let p = if r.pct(65) {
                Path::NodePortLocal
            } else {
                Path::NodePortLocalNone
            };
            flows.push(flow(r, p, 6));
            conversation(r, 6, 0, ops);
        }
        RejectNoEndpoints => {
            let p = r.pick(&[
                Path::NoEndpoints,
                Path::NoEndpoints,
                Path::NodePortNoEndpoints,
            ]);
            let proto = if p == Path::NoEndpoints {
                r.pick(&[6, 17])
            } else {
                6
            };
            flows.push(flow(r, p, proto));
            for _ in 0..r.range(1, 2) {
                first_packet(r, proto, 0, ops);
            }
        }
        EarlyDrop => {
            // A table of 6: some connections established (assured), others left at SYN or
            // unreplied, then more new ones than there is room for.
            let n = r.range(7, 10) as usize;
            for _ in 0..n {
                let p = r.pick(&[
                    Path::PodRemote,
                    Path::SvcRemote,
                    Path::Egress,
                    Path::PodLocal,
                ]);
                let proto = r.pick(&[6, 6, 17]);
                flows.push(flow(r, p, proto));
            }
            for (f, fl) in flows.iter().enumerate() {
                if r.pct(40) {
                    conversation(r, fl.proto, f, ops);
                } else {
                    first_packet(r, fl.proto, f, ops);
                }
            }
        }
    }
}

/// A's first packet of flow `f`.
fn first_packet(r: &mut Rng, proto: u8, f: usize, ops: &mut Vec<Op>) {
    if proto == 6 {
        let mut t = Tcp::new(ops, f);
        t.syn(r, Some(7), true);
    } else {
        ops.push(Op::Udp {
            flow: f,
            from: Side::A,
            len: r.range(1, 512) as u16,
            ttl: 64,
        });
    }
}

/// The rest of a short exchange begun by [`first_packet`].
fn rest_of_conversation(r: &mut Rng, proto: u8, f: usize, ops: &mut Vec<Op>) {
    if proto == 6 {
        let mut t = Tcp::new(ops, f);
        t.nxt[0] = 1;
        t.synack(r, Some(7), true);
        t.ack(Side::A);
        t.data(Side::A, r.range(1, 600) as u16);
        t.data(Side::B, r.range(1, 1400) as u16);
        if r.pct(50) {
            t.close(r.pick(&[Side::A, Side::B]));
        } else {
            t.ack(Side::A);
        }
    } else {
        ops.push(Op::Udp {
            flow: f,
            from: Side::B,
            len: r.range(1, 512) as u16,
            ttl: 64,
        });
        if r.pct(50) {
            ops.push(Op::Udp {
                flow: f,
                from: Side::A,
                len: r.range(1, 512) as u16,
                ttl: 64,
            });
        }
    }
}

fn conversation(r: &mut Rng, proto: u8, f: usize, ops: &mut Vec<Op>) {
    first_packet(r, proto, f, ops);
    rest_of_conversation(r, proto, f, ops);
}
