//! Golden lines and no-panic checks for the tcpdump formatter.
use super::*;
use alloc::vec::Vec;
use alloc::{format, vec};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress as Mac, Icmpv4DstUnreachable as Unreachable, Icmpv4Repr, Icmpv4TimeExceeded,
    IpAddress, Ipv4Repr, TcpControl as Ctl, TcpRepr, TcpSeqNumber, UdpRepr,
};

const A: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
const B: Ipv4Address = Ipv4Address::new(10, 244, 1, 20);
const GW: Ipv4Address = Ipv4Address::new(10, 244, 0, 1);
const DNS: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
const MAC_A: Mac = Mac([0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x05]);
const MAC_GW: Mac = Mac([0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x01]);
const T: Instant = Instant::from_micros_const(412);
const PING: [u8; 56] = [0x42; 56];

fn caps() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

fn ether(ethertype: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
    let ethertype = u16::from(ethertype).to_be_bytes();
    [&MAC_GW.0[..], &MAC_A.0, &ethertype, payload].concat()
}

/// An IPv4 frame whose `len`-byte payload `emit` fills in.
fn ipv4(addrs: Addrs, proto: IpProtocol, len: usize, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: addrs.0,
        dst_addr: addrs.1,
        next_header: proto,
        payload_len: len,
        hop_limit: 64,
    };
    let mut packet = vec![0; 20 + len];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut packet[..]), &caps());
    emit(&mut packet[20..]);
    ether(EthernetProtocol::Ipv4, &packet)
}

fn seg(ports: (u16, u16), control: Ctl, seq: i32, ack: Option<i32>) -> TcpRepr<'static> {
    TcpRepr {
        src_port: ports.0,
        dst_port: ports.1,
        control,
        seq_number: TcpSeqNumber(seq),
        ack_number: ack.map(TcpSeqNumber),
        window_len: 502,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    }
}

fn tcp(addrs: Addrs, repr: &TcpRepr) -> Vec<u8> {
    let (src, dst) = (IpAddress::Ipv4(addrs.0), IpAddress::Ipv4(addrs.1));
    ipv4(addrs, IpProtocol::Tcp, repr.buffer_len(), |buf| {
        let mut packet = TcpPacket::new_unchecked(buf);
        repr.emit(&mut packet, &src, &dst, &caps())
    })
}

/// A SYN with Linux's options (smoltcp's `TcpRepr` emits its own option order).
fn linux_syn() -> Vec<u8> {
    let options = [
        TcpOption::MaxSegmentSize(1460),
        TcpOption::SackPermitted,
        TcpOption::TimeStamp { tsval: 1, tsecr: 0 },
        TcpOption::NoOperation,
        TcpOption::WindowScale(7),
    ];
    let (src, dst) = (IpAddress::Ipv4(A), IpAddress::Ipv4(B));
    ipv4((A, B), IpProtocol::Tcp, 40, |buf| {
        let mut packet = TcpPacket::new_unchecked(buf);
        seg((40000, 80), Ctl::Syn, 1234, None).emit(&mut packet, &src, &dst, &caps());
        packet.set_header_len(40);
        packet.set_window_len(64240);
        let rest = options
            .iter()
            .fold(packet.options_mut(), |rest, opt| opt.emit(rest));
        assert!(rest.is_empty());
        packet.fill_checksum(&src, &dst);
    })
}

fn udp(addrs: Addrs, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (IpAddress::Ipv4(addrs.0), IpAddress::Ipv4(addrs.1));
    let (src_port, dst_port, len) = (ports.0, ports.1, payload.len());
    ipv4(addrs, IpProtocol::Udp, 8 + len, |buf| {
        let fill = |data: &mut [u8]| data.copy_from_slice(payload);
        let mut packet = UdpPacket::new_unchecked(buf);
        let repr = UdpRepr { src_port, dst_port };
        repr.emit(&mut packet, &src, &dst, len, fill, &caps())
    })
}

fn icmp(addrs: Addrs, repr: &Icmpv4Repr) -> Vec<u8> {
    ipv4(addrs, IpProtocol::Icmp, repr.buffer_len(), |buf| {
        repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps())
    })
}

fn echo_request() -> Vec<u8> {
    let (ident, seq_no, data) = (1, 2, &PING[..]);
    icmp(
        (A, B),
        &Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        },
    )
}

/// An ICMP error from `from` (code 0xff: time exceeded) quoting 10.244.0.5.40000 > `to`.
fn icmp_error(from: Ipv4Address, to: Endpoint, proto: IpProtocol, code: u8) -> Vec<u8> {
    let header = Ipv4Repr {
        src_addr: A,
        dst_addr: to.0,
        next_header: proto,
        payload_len: 100, // the quote keeps only 8 of these bytes
        hop_limit: 64,
    };
    let [hi, lo] = to.1.to_be_bytes();
    let data = &[0x9c, 0x40, hi, lo, 0, 0x6c, 0, 0];
    let repr = match code {
        0xff => {
            let reason = Icmpv4TimeExceeded::TtlExpired;
            Icmpv4Repr::TimeExceeded {
                reason,
                header,
                data,
            }
        }
        code => {
            let reason = Unreachable::from(code);
            Icmpv4Repr::DstUnreachable {
                reason,
                header,
                data,
            }
        }
    };
    icmp((from, A), &repr)
}

fn arp(request: bool, target_hardware_addr: Mac) -> Vec<u8> {
    let (operation, sha, spa, tpa) = match request {
        true => (ArpOperation::Request, MAC_A, A, GW),
        false => (ArpOperation::Reply, MAC_GW, GW, A),
    };
    let repr = ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr,
        target_protocol_addr: tpa,
    };
    let mut packet = vec![0; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut packet[..]));
    ether(EthernetProtocol::Arp, &packet)
}

fn vxlan() -> Vec<u8> {
    let payload = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &echo_request()].concat();
    let nodes = (
        Ipv4Address::new(192, 168, 1, 100),
        Ipv4Address::new(192, 168, 1, 101),
    );
    udp(nodes, (40000, VXLAN_PORT), &payload)
}

/// The lines for `frames` seen at `T`, without the timestamp, one per line.
fn render(f: &mut Formatter, frames: &[Vec<u8>]) -> String {
    let lines: Vec<String> = frames.iter().map(|frame| f.line(T, frame)).collect();
    let lines: Vec<&str> = lines
        .iter()
        .map(|l| l.strip_prefix("00:00:00.000412 ").unwrap())
        .collect();
    lines.join("\n")
}

#[test]
fn times_and_interfaces() {
    let times = [
        (0, "00:00:00.000000"),
        (412, "00:00:00.000412"),
        (3_723_000_001, "01:02:03.000001"),
        (360_000_000_000, "100:00:00.000000"),
        (-1_500_000, "-00:00:01.500000"),
        (i64::MIN, "-2562047788:00:54.775808"),
    ];
    for (micros, want) in times {
        assert_eq!(format_time(Instant::from_micros(micros)), want);
    }
    let mut f = Formatter::new();
    let line = f.line_on(T, "veth1", Direction::Out, &echo_request());
    assert!(line.starts_with("00:00:00.000412 veth1 Out IP 10.244.0.5 > 10.244.1.20: ICMP"));
    let line = f.line_on(T, "eth0", Direction::In, &arp(false, MAC_A));
    assert!(
        line.starts_with("00:00:00.000412 eth0  In  ARP, Reply"),
        "{line}"
    );
}

#[test]
fn tcp_conversation() {
    let mut syn_ack = seg((80, 40000), Ctl::Syn, 5000, Some(1235));
    syn_ack.window_len = 64240;
    (syn_ack.max_seg_size, syn_ack.window_scale) = (Some(1460), Some(7));
    syn_ack.sack_permitted = true;
    let mut data = seg((40000, 80), Ctl::Psh, 1235, Some(5001));
    data.payload = b"GET / HTTP/1.1\r\n";
    let mut reply = seg((80, 40000), Ctl::None, 5001, Some(1251));
    reply.payload = &[0; 1448];
    let mut sack = seg((40000, 80), Ctl::None, 1251, Some(5001));
    sack.sack_ranges[0] = Some((6449, 7897));
    let mut urgent = tcp((A, B), &seg((40000, 80), Ctl::None, 1251, Some(5001)));
    urgent[14 + 20 + 13] = 0xf1; // FIN, ACK, URG, ECE, CWR
    let frames = [
        linux_syn(),
        tcp((B, A), &syn_ack),
        tcp((A, B), &seg((40000, 80), Ctl::None, 1235, Some(5001))),
        tcp((A, B), &data),
        tcp((B, A), &reply),
        tcp((A, B), &sack),
        tcp((A, B), &seg((40000, 80), Ctl::Fin, 1251, Some(6449))),
        urgent,
        tcp((B, A), &seg((80, 40000), Ctl::Rst, 6449, None)),
    ];
    let relative = "\
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [S], seq 1234, win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0
IP 10.244.1.20.80 > 10.244.0.5.40000: Flags [S.], seq 5000, ack 1235, win 64240, options [mss 1460,wscale 7,sackOK,eol], length 0
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [.], ack 1, win 502, length 0
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [P.], seq 1:17, ack 1, win 502, length 16
IP 10.244.1.20.80 > 10.244.0.5.40000: Flags [.], seq 1:1449, ack 17, win 502, length 1448
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [.], ack 1, win 502, options [sack 1 {1449:2897},eol], length 0
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [F.], seq 17, ack 1449, win 502, length 0
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [F.UEW], seq 17, ack 1, win 502, urg 0, length 0
IP 10.244.1.20.80 > 10.244.0.5.40000: Flags [R], seq 6449, win 502, length 0";
    assert_eq!(render(&mut Formatter::new(), &frames), relative);
    let absolute = render(&mut Formatter::absolute(), &frames);
    let absolute: Vec<&str> = absolute.lines().collect();
    assert!(absolute[2].ends_with("Flags [.], ack 5001, win 502, length 0"));
    assert!(absolute[3].ends_with("Flags [P.], seq 1235:1251, ack 5001, win 502, length 16"));
    assert!(absolute[5].ends_with("options [sack 1 {6449:7897},eol], length 0"));
}

#[test]
fn udp_icmp_arp_and_other_frames() {
    let (udp_proto, tcp_proto, far) = (
        IpProtocol::Udp,
        IpProtocol::Tcp,
        (Ipv4Address::new(10, 1, 1, 1), 80),
    );
    let (ident, seq_no, data) = (1, 2, &PING[..]);
    let mut padded_arp = arp(true, MAC_GW);
    padded_arp.resize(60, 0);
    let mut ipv6_arp = arp(true, Mac([0; 6]));
    ipv6_arp[14 + 2..14 + 4].copy_from_slice(&[0x86, 0xdd]);
    let frames = [
        udp((A, DNS), (40000, 53), &[0; 16]),
        echo_request(),
        icmp(
            (B, A),
            &Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            },
        ),
        icmp_error(GW, (B, 33434), udp_proto, 0xff),
        icmp_error(DNS, (DNS, 53), udp_proto, 3),
        icmp_error(B, (B, 80), tcp_proto, 3),
        icmp_error(GW, far, tcp_proto, 1),
        icmp_error(GW, far, tcp_proto, 0),
        icmp_error(GW, far, tcp_proto, 13),
        arp(true, Mac([0; 6])),
        arp(false, MAC_A),
        padded_arp,
        ipv6_arp,
        ether(EthernetProtocol::Ipv6, &[0x60; 48]),
        ipv4((A, B), IpProtocol::Unknown(47), 24, |_| {}),
        vxlan(),
    ];
    let want = "\
IP 10.244.0.5.40000 > 10.96.0.10.53: UDP, length 16
IP 10.244.0.5 > 10.244.1.20: ICMP echo request, id 1, seq 2, length 64
IP 10.244.1.20 > 10.244.0.5: ICMP echo reply, id 1, seq 2, length 64
IP 10.244.0.1 > 10.244.0.5: ICMP time exceeded in-transit, length 36
IP 10.96.0.10 > 10.244.0.5: ICMP 10.96.0.10 udp port 53 unreachable, length 36
IP 10.244.1.20 > 10.244.0.5: ICMP 10.244.1.20 tcp port 80 unreachable, length 36
IP 10.244.0.1 > 10.244.0.5: ICMP host 10.1.1.1 unreachable, length 36
IP 10.244.0.1 > 10.244.0.5: ICMP net 10.1.1.1 unreachable, length 36
IP 10.244.0.1 > 10.244.0.5: ICMP host 10.1.1.1 unreachable - admin prohibited filter, length 36
ARP, Request who-has 10.244.0.1 tell 10.244.0.5, length 28
ARP, Reply 10.244.0.1 is-at 0a:58:0a:f4:00:01, length 28
ARP, Request who-has 10.244.0.1 (0a:58:0a:f4:00:01) tell 10.244.0.5, length 46
ARP, Ethernet (len 6), IPv6 (len 4), length 28
0a:58:0a:f4:00:05 > 0a:58:0a:f4:00:01, ethertype IPv6 (0x86dd), length 62
IP 10.244.0.5 > 10.244.1.20:  ip-proto-47 24
IP 192.168.1.100.40000 > 192.168.1.101.4789: VXLAN, flags [I] (0x08), vni 1
IP 10.244.0.5 > 10.244.1.20: ICMP echo request, id 1, seq 2, length 64";
    assert_eq!(render(&mut Formatter::new(), &frames), want);
}

#[test]
fn truncated_and_malformed_frames() {
    let syn = linux_syn();
    let patched = |frame: &[u8], at: usize, byte: u8| {
        let mut frame = frame.to_vec();
        frame[at] = byte;
        frame
    };
    let dns = udp((A, DNS), (40000, 53), &[0; 16]);
    let frames = [
        syn[..10].to_vec(),
        syn[..14 + 10].to_vec(),
        syn[..14 + 20 + 10].to_vec(),
        syn[..14 + 20 + 3].to_vec(),
        patched(&syn, 14, 0x43),
        patched(&syn, 14, 0x65),
        patched(&syn, 14 + 20 + 12, 0x30),
        patched(&syn, 14 + 20 + 12, 0xf0),
        patched(&syn, 14 + 20 + 21, 9), // the mss option runs past the header
        patched(&dns, 14 + 20 + 5, 200),
        patched(&dns, 14 + 20 + 5, 4),
        udp((A, B), (4789, 4789), &[0x08, 0, 0]),
        echo_request()[..14 + 20 + 4].to_vec(),
        icmp_error(GW, (B, 53), IpProtocol::Udp, 0xff)[..14 + 20 + 8 + 12].to_vec(),
        arp(true, MAC_GW)[..30].to_vec(),
    ];
    let want = "\
[|ether]
IP  [|ip]
IP truncated-ip - 30 bytes missing! 10.244.0.5.40000 > 10.244.1.20.80:  [|tcp]
IP truncated-ip - 37 bytes missing! 10.244.0.5 > 10.244.1.20: [|tcp]
IP bad-hlen 12
IP6, wrong link-layer encapsulation (invalid)
IP 10.244.0.5.40000 > 10.244.1.20.80:  tcp 28 [bad hdr length 12 - too short, < 20]
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [S] [bad hdr length 60 - too long, > 40]
IP 10.244.0.5.40000 > 10.244.1.20.80: Flags [S], seq 1234, win 64240, options [[bad opt]]
IP 10.244.0.5.40000 > 10.96.0.10.53: UDP, bad length 192 > 16
IP 10.244.0.5.40000 > 10.96.0.10.53: truncated-udplength 4
IP 10.244.0.5.4789 > 10.244.1.20.4789:  [|vxlan]
IP truncated-ip - 60 bytes missing! 10.244.0.5 > 10.244.1.20:  [|icmp]
IP truncated-ip - 16 bytes missing! 10.244.0.1 > 10.244.0.5:  [|icmp]
[|arp]";
    assert_eq!(render(&mut Formatter::new(), &frames), want);
}

#[test]
fn never_panics_on_truncations_mutations_or_garbage() {
    let mut data = seg((40000, 80), Ctl::Psh, 1, Some(1));
    data.payload = b"GET / HTTP/1.1\r\n";
    let valid = [
        linux_syn(),
        tcp((A, B), &data),
        udp((A, DNS), (40000, 53), &[7; 16]),
        vxlan(),
        icmp_error(DNS, (DNS, 53), IpProtocol::Udp, 3),
        icmp_error(GW, (B, 80), IpProtocol::Tcp, 0xff),
        arp(true, MAC_GW),
    ];
    let mut f = Formatter::new();
    let mut check = |frame: &[u8]| {
        let line = f.line(T, frame);
        assert!(
            line.len() > 16 && line.starts_with("00:00:00.000412 "),
            "{line}"
        );
        let _ = f.line_on(T, "veth0", Direction::In, frame);
    };
    for frame in &valid {
        (0..=frame.len()).for_each(|len| check(&frame[..len]));
    }
    // A tiny xorshift generator: deterministic mutations and garbage.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for frame in &valid {
        for _ in 0..2000 {
            let mut mutated = frame.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() as usize % mutated.len();
                mutated[at] = next() as u8;
            }
            check(&mutated[..mutated.len() - next() as usize % 8]);
        }
    }
    for _ in 0..5000 {
        let mut garbage: Vec<u8> = (0..next() % 160).map(|_| next() as u8).collect();
        if garbage.len() >= 15 && next() % 2 == 0 {
            // Steer into the IPv4 and ARP decoders.
            let ethertype = [0x00, 0x06][(next() % 2) as usize];
            garbage[12..15].copy_from_slice(&[0x08, ethertype, 0x45]);
        }
        check(&garbage);
    }
    assert!(!format!("{f:?}").is_empty());
}

#[test]
fn flannel_vxlan_on_8472_prints_as_tcpdump_s_otv() {
    let payload = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &echo_request()].concat();
    let nodes = (
        Ipv4Address::new(192, 168, 1, 100),
        Ipv4Address::new(192, 168, 1, 101),
    );
    let frames = [
        udp(nodes, (40000, 8472), &payload),
        udp(nodes, (40000, 8472), &[0x08, 0, 0]),
    ];
    let want = "\
IP 192.168.1.100.40000 > 192.168.1.101.8472: OTV, flags [I] (0x08), overlay 0, instance 1
IP 10.244.0.5 > 10.244.1.20: ICMP echo request, id 1, seq 2, length 64
IP 192.168.1.100.40000 > 192.168.1.101.8472: OTV, [length 3 < 8] (invalid)";
    assert_eq!(render(&mut Formatter::new(), &frames), want);
}
