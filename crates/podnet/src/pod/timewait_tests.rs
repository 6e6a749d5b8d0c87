//! The record a pod keeps for a connection in TIME-WAIT against the smoltcp socket it
//! replaces: two identical worlds (a client pod and a server pod wired back to back), one
//! keeping sockets, one keeping records, are fed the same segments at the same times after the
//! client's connection reached TIME-WAIT; every frame the client answers, its TIME-WAIT count,
//! its free ports and its next wake-up must be the same in both.

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpCidr, IpProtocol,
    Ipv4Address, Ipv4Cidr, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::{Pod, PodAddrs, StackConfig};
use crate::link::Frame;
use crate::program::{client::ClientSpec, Program};
use crate::rng::{SimRng, Stream};

const CLIENT: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
const SERVER: Ipv4Address = Ipv4Address::new(10, 244, 0, 3);

fn addrs(ip: Ipv4Address) -> PodAddrs {
    let o = ip.octets();
    PodAddrs {
        ip: IpCidr::Ipv4(Ipv4Cidr::new(ip, 24)),
        mac: EthernetAddress([2, 0, o[0], o[1], o[2], o[3]]),
        gateway: Ipv4Address::new(10, 244, 0, 1),
    }
}

/// A client that made one HTTP request to a server, both pods back to back, run until the
/// client's connection waits in TIME-WAIT. Returns the pods, the time, the client's last
/// segment (the ACK of the server's FIN) and its port.
fn world(seed: u64, keep_sockets: bool) -> (Pod, Pod, Instant, TcpRepr<'static>, u16) {
    let now = Instant::from_millis(0);
    let server = Pod::new(
        String::from("server"),
        addrs(SERVER),
        &[Program::HttpServer { port: 80 }],
        SimRng::derive(seed, Stream::Pod(1)),
        StackConfig::linux(1500),
        now,
    );
    let mut client = Pod::new(
        String::from("client"),
        addrs(CLIENT),
        &[Program::Client(
            ClientSpec::http("get", SERVER, 80).count(1),
        )],
        SimRng::derive(seed, Stream::Pod(0)),
        StackConfig::linux(1500),
        now,
    );
    if keep_sockets {
        client.timewait.keep_sockets();
    }
    let mut pods = [client, server];
    let mut now = now;
    let mut last = None;
    for _ in 0..10_000 {
        let mut moved = false;
        for i in 0..2 {
            for f in pods[i].service(now) {
                if i == 0 {
                    if let Some(t) = tcp(&f) {
                        last = Some(t);
                    }
                }
                pods[1 - i].deliver(f);
                moved = true;
            }
        }
        if pods[0].time_wait_count() == 1 && !moved {
            let [client, server] = pods;
            let (repr, port) = last.expect("the client sent TCP");
            return (client, server, now, repr, port);
        }
        if !moved {
            let next = [pods[0].poll_at(now), pods[1].poll_at(now)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_millis(1));
            now = next.max(now + Duration::from_micros(1));
        }
    }
    panic!("the connection never reached TIME-WAIT");
}

/// The TCP header of a frame the client sent, and its source port.
fn tcp(frame: &[u8]) -> Option<(TcpRepr<'static>, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    let repr = TcpRepr {
        src_port: t.src_port(),
        dst_port: t.dst_port(),
        control: TcpControl::None,
        seq_number: t.seq_number(),
        ack_number: t.ack().then(|| t.ack_number()),
        window_len: t.window_len(),
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    Some((repr, t.src_port()))
}

/// A segment from the server to the client's `port`.
fn segment(
    port: u16,
    control: TcpControl,
    seq: TcpSeqNumber,
    ack: Option<TcpSeqNumber>,
    payload: &'static [u8],
) -> Frame {
    let repr = TcpRepr {
        src_port: 80,
        dst_port: port,
        control,
        seq_number: seq,
        ack_number: ack,
        window_len: 1000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    };
    let ip = Ipv4Repr {
        src_addr: SERVER,
        dst_addr: CLIENT,
        next_header: IpProtocol::Tcp,
        payload_len: repr.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: addrs(SERVER).mac,
        dst_addr: addrs(CLIENT).mac,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut f = alloc::vec![0; 14 + 20 + repr.buffer_len()];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.emit(&mut ipp, &caps);
    repr.emit(
        &mut TcpPacket::new_unchecked(ipp.payload_mut()),
        &IpAddress::Ipv4(SERVER),
        &IpAddress::Ipv4(CLIENT),
        &caps,
    );
    f.into()
}

/// What the client shows after a step: its frames, TIME-WAIT count, whether its port is free
/// and its next wake-up.
type Seen = (Vec<Frame>, usize, bool, Option<Instant>);

fn step(client: &mut Pod, now: Instant, frame: Option<Frame>, port: u16) -> Seen {
    if let Some(f) = frame {
        client.deliver(f);
    }
    let out = client.service(now);
    let server = smoltcp::wire::IpEndpoint::new(SERVER.into(), 80);
    let free = !client.ports.holds_tcp((port, server));
    (out, client.time_wait_count(), free, client.poll_at(now))
}

#[test]
fn records_answer_as_the_sockets_they_replace() {
    let mut rng = SimRng::derive(7, Stream::Node(0));
    let mut answered = 0;
    let mut closed_by_rst = 0;
    let mut expired = 0;
    for case in 0..60u64 {
        let (mut a, _, t0, last, port) = world(case, false);
        let (mut b, _, t1, last_b, port_b) = world(case, true);
        assert_eq!((t0, port, last.seq_number), (t1, port_b, last_b.seq_number));
        assert_eq!(a.timewait.kinds(), (1, 0, 0), "case {case}: recorded");
        assert_eq!(b.timewait.kinds(), (0, 1, 0), "case {case}: kept");
        let (snd, rcv) = (last.seq_number, last.ack_number.unwrap());
        let mut now = t0;
        'events: for _ in 0..8 {
            // Once smoltcp has closed the kept socket (10 s after its timer's last restart),
            // only the timers are compared: the record still answers segments as a socket in
            // TIME-WAIT would, the held connection has no socket left to answer them.
            let held = b.timewait.kinds().2 > 0;
            let gap = [0, 1, 300, 999, 1000, 1500, 4000, 9000, 10_500];
            let target = if held {
                now + Duration::from_secs(61)
            } else {
                now + Duration::from_millis(gap[rng.range_inclusive(0, 8) as usize])
            };
            // Both show the same frames, count and port at every wake-up of either (the kept
            // socket also wakes when smoltcp closes it), and expire together, 60 s after the
            // last restart.
            for _ in 0..100 {
                let at = [a.poll_at(now), b.poll_at(now)].into_iter().flatten().min();
                let Some(at) = at.filter(|&at| at <= target) else {
                    break;
                };
                now = at.max(now + Duration::from_micros(1));
                let sa = step(&mut a, now, None, port);
                let sb = step(&mut b, now, None, port);
                assert_eq!(sa.0, sb.0, "case {case}: frames at {now}");
                assert_eq!(
                    (sa.1, sa.2),
                    (sb.1, sb.2),
                    "case {case}: count, port at {now}"
                );
                if sa.1 == 0 {
                    expired += 1;
                    break 'events;
                }
            }
            if b.timewait.kinds().2 > 0 {
                continue;
            }
            now = target;
            let r = rng.range_inclusive(0, 13);
            let (c, seq, ack, data): (_, _, _, &'static [u8]) = match r {
                0 => (TcpControl::Fin, rcv - 1, Some(snd), &[]),
                1 => (TcpControl::None, rcv, Some(snd), &[]),
                2 => (TcpControl::None, rcv, Some(snd + 1), &[]),
                3 => (TcpControl::None, rcv, Some(snd - 1), &[]),
                4 => (TcpControl::Rst, rcv, None, &[]),
                5 => (TcpControl::Rst, rcv + 5, Some(snd), &[]),
                6 => (TcpControl::Rst, rcv - 1, None, &[]),
                7 => (TcpControl::Rst, rcv + 200_000, None, &[]),
                8 => (TcpControl::Syn, rcv + 100_000, None, &[]),
                9 => (TcpControl::Psh, rcv, Some(snd), b"hello"),
                10 => (TcpControl::Psh, rcv - 5, Some(snd), b"hello"),
                11 => (TcpControl::Syn, rcv, Some(snd), &[]),
                12 => (TcpControl::Fin, rcv, Some(snd), &[]),
                _ => (TcpControl::None, rcv + 300_000, Some(snd), b"late"),
            };
            let f = segment(port, c, seq, ack, data);
            let sa = step(&mut a, now, Some(f.clone()), port);
            let sb = step(&mut b, now, Some(f), port);
            assert_eq!(
                (&sa.0, sa.1, sa.2),
                (&sb.0, sb.1, sb.2),
                "case {case}: segment {r} at {now}"
            );
            answered += sa.0.len();
            if sa.1 == 0 {
                closed_by_rst += 1;
                break;
            }
        }
    }
    // The cases reach every branch: answers, RSTs that close, and timers that expire.
    assert!(answered > 20, "{answered} answers");
    assert!(
        closed_by_rst > 0 && expired > 0,
        "{closed_by_rst} {expired}"
    );
}

/// A connection waits out Linux's 60 s in TIME-WAIT (`TCP_TIMEWAIT_LEN`), not smoltcp's 10 s,
/// whether a record or the socket itself holds it, and its port is taken until then.
#[test]
fn time_wait_lasts_60_s_as_in_linux() {
    for keep_sockets in [false, true] {
        let (mut client, _, t0, _, port) = world(3, keep_sockets);
        let kinds = if keep_sockets { (0, 1, 0) } else { (1, 0, 0) };
        assert_eq!(client.timewait.kinds(), kinds);
        let (_, count, free, _) = step(&mut client, t0 + Duration::from_secs(30), None, port);
        assert_eq!((count, free), (1, false), "keep {keep_sockets}: at 30 s");
        if keep_sockets {
            // smoltcp closed the socket at 10 s; the connection is held for the rest.
            assert_eq!(client.timewait.kinds(), (0, 0, 1));
        }
        let (_, count, free, _) = step(&mut client, t0 + Duration::from_millis(59_900), None, port);
        assert_eq!((count, free), (1, false), "keep {keep_sockets}: at 59.9 s");
        let (_, count, free, _) = step(&mut client, t0 + Duration::from_millis(60_100), None, port);
        assert_eq!((count, free), (0, true), "keep {keep_sockets}: at 60.1 s");
    }
}
