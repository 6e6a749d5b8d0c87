//! Tests of `pod::sockets`: its index and its egress against smoltcp's one `SocketSet`.

use super::*;
use crate::link::Frame;
use crate::pod::PodDevice;
use alloc::vec;
use smoltcp::iface::Config;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, HardwareAddress, IpCidr, Ipv4Cidr, Ipv4Packet, TcpPacket, TcpSeqNumber,
};

const ME: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
const MAC: EthernetAddress = EthernetAddress([2, 0, 10, 244, 0, 2]);
const GW: Ipv4Address = Ipv4Address::new(10, 244, 0, 1);
const GW_MAC: EthernetAddress = EthernetAddress([2, 0, 10, 244, 0, 1]);
const PEER: Ipv4Address = Ipv4Address::new(10, 244, 1, 5);

fn iface(dev: &mut PodDevice) -> Interface {
    let mut config = Config::new(HardwareAddress::Ethernet(MAC));
    config.random_seed = 7;
    let mut iface = Interface::new(config, dev, Instant::ZERO);
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(ME, 24)));
    });
    let _ = iface.routes_mut().add_default_ipv4_route(GW);
    iface
}

fn ethernet(ethertype: EthernetProtocol, payload: &[u8]) -> Frame {
    let mut f = vec![0; 14 + payload.len()];
    EthernetRepr {
        src_addr: GW_MAC,
        dst_addr: MAC,
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f[14..].copy_from_slice(payload);
    f.into()
}

fn arp_reply() -> Frame {
    let mut p = vec![0; 28];
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: GW_MAC,
        source_protocol_addr: GW,
        target_hardware_addr: MAC,
        target_protocol_addr: ME,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut p[..]));
    ethernet(EthernetProtocol::Arp, &p)
}

/// The peer's answer to a SYN from `port`: a SYN-ACK, an RST, or nothing.
fn answer(frame: &[u8]) -> Option<Frame> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let (port, seq) = (tcp.src_port(), tcp.seq_number() + 1);
    let ip = match (tcp.syn() && !tcp.ack(), port % 3) {
        (true, 0) => crate::packet::tcp(PEER, 80, ME, port, "R", 0, 0, 0),
        (true, 1) => crate::packet::tcp(PEER, 80, ME, port, "SA", 5000, to_u32(seq), 0),
        (false, _) if !tcp.payload().is_empty() && port % 2 == 0 => {
            let ack = seq + tcp.payload().len() - 1;
            crate::packet::tcp(PEER, 80, ME, port, "PA", 5001, to_u32(ack), 100)
        }
        _ => return None,
    };
    Some(ethernet(EthernetProtocol::Ipv4, &ip))
}

fn to_u32(s: TcpSeqNumber) -> u32 {
    s.0 as u32
}

fn socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 4096]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    )
}

/// The same program over one `SocketSet` polled as smoltcp's `poll` does it and over
/// `Sockets`: connects at different times, SYNs retransmitted while the gateway's address
/// is unknown and after, answers that establish or reset, data sent and received, aborts,
/// sockets removed and their handles reused. Every frame and every wake-up time is the
/// same, while `Sockets` serves far fewer sockets.
#[test]
fn the_busy_sockets_send_what_one_set_of_them_all_sends() {
    // Indexed from the start, never, from 24 (the default), and in and out of it often.
    for (from, below) in [(0, 0), (u32::MAX, 0), (INDEX_FROM, INDEX_BELOW), (4, 3)] {
        busy_sockets_as_one_set(from, below);
    }
}

fn busy_sockets_as_one_set(index_from: u32, index_below: u32) {
    let (mut da, mut db) = (PodDevice::default(), PodDevice::default());
    let (mut ia, mut ib) = (iface(&mut da), iface(&mut db));
    let mut set = SocketSet::new(Vec::new());
    let mut socks = Sockets {
        index_from,
        index_below,
        ..Sockets::default()
    };
    let (mut ha, mut hb) = (Vec::new(), Vec::new());
    let mut now = Instant::ZERO;
    let mut inbox: Vec<Frame> = Vec::new();
    let (mut frames, mut all) = (0, 0);
    for step in 0u32..600 {
        if step == 40 {
            inbox.push(arp_reply());
        }
        for f in inbox.drain(..) {
            da.rx.push_back(f.clone());
            db.rx.push_back(f);
            ia.poll_ingress_single(now, &mut da, &mut set);
            let s = {
                let i = socks.take_frame(&ib, db.rx.front().unwrap());
                socks.set_of(i)
            };
            ib.poll_ingress_single(now, &mut db, s);
        }
        if step % 5 == 0 && ha.len() < 40 {
            let port = 40_000 + step as u16;
            let mut s = socket();
            s.connect(ia.context(), (PEER, 80), port).unwrap();
            ha.push(set.add(s));
            let mut s = socket();
            s.connect(ib.context(), (PEER, 80), port).unwrap();
            hb.push(socks.add(s));
        }
        let k = step as usize % 40;
        if k < ha.len() {
            let (a, b) = (
                set.get_mut::<tcp::Socket>(ha[k]),
                socks.get_mut::<tcp::Socket>(hb[k]),
            );
            match step % 9 {
                0 | 4 if a.can_send() => {
                    assert_eq!(a.send_slice(b"GET /"), b.send_slice(b"GET /"));
                }
                2 => {
                    let mut buf = [0; 64];
                    assert_eq!(a.recv_slice(&mut buf), b.recv_slice(&mut buf));
                }
                7 if step % 2 == 0 => {
                    a.abort();
                    b.abort();
                }
                8 if a.state() == tcp::State::Closed => {
                    set.remove(ha.swap_remove(k));
                    socks.remove(hb.swap_remove(k));
                }
                6 => {
                    a.close();
                    b.close();
                }
                _ => {}
            }
        }
        while ia.poll_egress(now, &mut da, &mut set) == PollResult::SocketStateChanged {}
        socks.egress(&mut ib, now, &mut db);
        // The same frames but for the IP IDs, which the pod writes (`pod::ipid`).
        let without = crate::pod::ipid::without_ip_ids;
        assert_eq!(without(&da.tx), without(&db.tx), "step {step} at {now}");
        all += ha.len() as u64;
        frames += da.tx.len();
        inbox.extend(da.tx.iter().filter_map(|f| answer(f)));
        da.tx.clear();
        db.tx.clear();
        let (a, b) = (ia.poll_at(now, &set), socks.poll_at(&mut ib, now));
        assert_eq!(a, b, "step {step}: next wake-up");
        let next = now + smoltcp::time::Duration::from_millis(23);
        now = a.map_or(next, |t| t.max(now).min(next));
        if a.is_some_and(|t| t <= now) && inbox.is_empty() {
            now += smoltcp::time::Duration::from_micros(1);
        }
    }
    assert!(frames > 200, "{frames} frames");
    // Served: a socket per egress in all, against one set's every socket every time.
    assert!(socks.served * 4 < all, "{} of {all}", socks.served);
}

#[test]
fn handles_are_reused_lowest_first_as_smoltcp_does() {
    let mut set = SocketSet::new(Vec::new());
    let mut ours = Sockets::default();
    let a: Vec<_> = (0..5).map(|_| set.add(socket())).collect();
    let b: Vec<_> = (0..5).map(|_| ours.add(socket())).collect();
    for i in [3, 1, 4] {
        set.remove(a[i]);
        ours.remove(b[i]);
    }
    assert_eq!(ours.len(), 2);
    for _ in 0..4 {
        let (x, y) = (set.add(socket()), ours.add(socket()));
        assert_eq!(alloc::format!("{x}"), alloc::format!("#{}", y.0));
    }
    // The last one out: the next goes where it was.
    let last = set.add(socket());
    set.remove(last);
    let y = ours.add(socket());
    ours.remove(y);
    let (x, y) = (set.add(socket()), ours.add(socket()));
    assert_eq!(alloc::format!("{x}"), alloc::format!("#{}", y.0));
    assert_eq!(ours.len(), 7);
}

/// What the index must find: the first socket in handle order that takes the segment, by
/// looking at every one (as smoltcp's `process_tcp` and `process_udp` do).
fn every_socket(
    socks: &Sockets,
    tcp: Option<(bool, bool)>,
    src: (Ipv4Address, u16),
    dst: (Ipv4Address, u16),
) -> Option<u32> {
    socks.slots.iter().enumerate().find_map(|(i, s)| {
        let s = s.as_ref()?;
        let takes = match (s.set.get::<Socket<'static>>(s.inner), tcp) {
            (Socket::Tcp(t), Some((ack, rst))) => tcp_accepts(t, src, dst, ack, rst),
            (Socket::Udp(u), None) => udp_accepts(u, dst.0, dst.1, dst.0.is_broadcast()),
            _ => false,
        };
        takes.then_some(i as u32)
    })
}

#[derive(Clone, Debug)]
enum Op {
    Listen(u16, bool),
    Connect(u8, u16, u16),
    Udp(u16),
    Close(usize),
    Abort(usize),
    Remove(usize),
    Segment(u8, u16, u16, u8),
    Datagram(u8, u16, u16),
    Egress(u16),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let port = || 79u16..83;
    prop_oneof![
        (port(), any::<bool>()).prop_map(|(p, a)| Op::Listen(p, a)),
        (0u8..3, port(), 40_000u16..40_004).prop_map(|(h, r, l)| Op::Connect(h, r, l)),
        port().prop_map(Op::Udp),
        (0usize..16).prop_map(Op::Close),
        (0usize..16).prop_map(Op::Abort),
        (0usize..16).prop_map(Op::Remove),
        (
            0u8..3,
            prop_oneof![port(), 40_000u16..40_004],
            prop_oneof![port(), 40_000u16..40_004],
            0u8..6
        )
            .prop_map(|(h, s, d, f)| Op::Segment(h, s, d, f)),
        (0u8..3, 50u16..52, port()).prop_map(|(h, s, d)| Op::Datagram(h, s, d)),
        (0u16..3000).prop_map(Op::Egress),
    ]
}

proptest::proptest! {
    /// Through any mix of listening, connecting, UDP, closed, aborted and removed sockets,
    /// and segments that move them (SYNs to listeners, answers, resets), the index finds
    /// the socket a segment or datagram is for that a look at every socket finds.
    #[test]
    fn the_index_finds_the_socket_every_socket_would(
        ops in proptest::collection::vec(op(), 1..60),
        (index_from, index_below) in proptest::prop_oneof![
            proptest::strategy::Just((0, 0)),
            proptest::strategy::Just((u32::MAX, 0)),
            (1u32..6, 0u32..4),
        ],
    ) {
        let mut dev = PodDevice::default();
        let mut ifc = iface(&mut dev);
        let mut socks = Sockets {
            index_from,
            index_below,
            ..Sockets::default()
        };
        let mut live: Vec<Handle> = Vec::new();
        let mut now = Instant::ZERO;
        let host = |h: u8| Ipv4Address::new(10, 244, 1, 5 + h);
        dev.rx.push_back(arp_reply());
        let s = {
                let i = socks.take_frame(&ifc, dev.rx.front().unwrap());
                socks.set_of(i)
            };
        ifc.poll_ingress_single(now, &mut dev, s);
        for op in ops {
            match op {
                Op::Listen(port, any) => {
                    let mut s = socket();
                    if any { s.listen(port).unwrap() } else { s.listen((ME, port)).unwrap() }
                    live.push(socks.add(s));
                }
                Op::Connect(h, rport, lport) => {
                    let mut s = socket();
                    if s.connect(ifc.context(), (host(h), rport), lport).is_ok() {
                        live.push(socks.add(s));
                    }
                }
                Op::Udp(port) => {
                    let mut s = smoltcp::socket::udp::Socket::new(
                        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
                        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
                    );
                    s.bind(port).unwrap();
                    live.push(socks.add(s));
                }
                Op::Close(k) | Op::Abort(k) if !live.is_empty() => {
                    let h = live[k % live.len()];
                    if let Socket::Tcp(t) = socks.get_mut::<Socket<'static>>(h) {
                        if matches!(op, Op::Close(_)) { t.close() } else { t.abort() }
                    }
                }
                Op::Remove(k) if !live.is_empty() => {
                    let h = live.swap_remove(k % live.len());
                    socks.remove(h);
                }
                Op::Segment(h, sport, dport, f) => {
                    let (flags, ack, rst) = match f {
                        0 => ("S", false, false),
                        1 => ("SA", true, false),
                        2 => ("A", true, false),
                        3 => ("R", false, true),
                        4 => ("RA", true, true),
                        _ => ("FA", true, false),
                    };
                    let ip = crate::packet::tcp(host(h), sport, ME, dport, flags, 7, 0, 0);
                    let frame = ethernet(EthernetProtocol::Ipv4, &ip);
                    let want = every_socket(&socks, Some((ack, rst)), (host(h), sport), (ME, dport));
                    proptest::prop_assert_eq!(socks.taker(&ifc, &frame), want);
                    dev.rx.push_back(frame);
                    let s = {
                let i = socks.take_frame(&ifc, dev.rx.front().unwrap());
                socks.set_of(i)
            };
                    ifc.poll_ingress_single(now, &mut dev, s);
                }
                Op::Datagram(h, sport, dport) => {
                    let ip = crate::packet::udp(host(h), sport, ME, dport);
                    let frame = ethernet(EthernetProtocol::Ipv4, &ip);
                    let want = every_socket(&socks, None, (host(h), sport), (ME, dport));
                    proptest::prop_assert_eq!(socks.taker(&ifc, &frame), want);
                }
                Op::Egress(ms) => {
                    now += smoltcp::time::Duration::from_millis(u64::from(ms));
                    socks.egress(&mut ifc, now, &mut dev);
                    dev.tx.clear();
                }
                _ => {}
            }
        }
    }
}
