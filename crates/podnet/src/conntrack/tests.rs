//! Conntrack behaviour, packet by packet, against Linux's documented numbers.

use alloc::vec;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpProtocol, Ipv4Address};

use super::*;
pub(crate) use crate::packet::{ip, tcp, udp};

const C: Ipv4Address = Ipv4Address::new(10, 244, 1, 5);
const S: Ipv4Address = Ipv4Address::new(10, 244, 2, 7);

fn t(ms: i64) -> Instant {
    Instant::from_millis(ms)
}

fn ct(max: u32) -> Conntrack {
    Conntrack::new(
        CtConfig {
            max,
            buckets: 16,
            ..CtConfig::default()
        },
        1,
    )
}

/// Tracks and confirms, like a packet crossing a node (which lets go of its entry when it
/// leaves the hooks).
fn pass(c: &mut Conntrack, now: Instant, p: &[u8]) -> CtInfo {
    let info = c.track(now, p, true).expect("not dropped");
    if info.created {
        c.confirm(now, info.entry.unwrap()).unwrap();
    }
    if let Some(idx) = info.entry {
        c.discard(idx);
    }
    info
}

fn handshake(c: &mut Conntrack, sport: u16) -> u32 {
    let a = pass(c, t(0), &tcp(C, sport, S, 80, "S", 1000, 0, 0));
    assert_eq!(a.state, CtState::New);
    let b = pass(c, t(1), &tcp(S, 80, C, sport, "SA", 5000, 1001, 0));
    assert_eq!((b.state, b.dir), (CtState::Established, Dir::Reply));
    let idx = b.entry.unwrap();
    assert!(!c.entry(idx).has(bits::ASSURED));
    let d = pass(c, t(2), &tcp(C, sport, S, 80, "A", 1001, 5001, 0));
    assert_eq!(d.state, CtState::Established);
    idx
}

#[test]
fn handshake_states_timeouts_and_assured() {
    let mut c = ct(16);
    let a = pass(&mut c, t(0), &tcp(C, 40000, S, 80, "S", 1000, 0, 0));
    let idx = a.entry.unwrap();
    assert_eq!(
        c.line(idx, t(0)),
        "tcp      6 120 SYN_SENT src=10.244.1.5 dst=10.244.2.7 sport=40000 dport=80 [UNREPLIED] src=10.244.2.7 dst=10.244.1.5 sport=80 dport=40000 mark=0 use=1"
    );
    pass(&mut c, t(1), &tcp(S, 80, C, 40000, "SA", 5000, 1001, 0));
    assert_eq!(c.line(idx, t(1)), "tcp      6 60 SYN_RECV src=10.244.1.5 dst=10.244.2.7 sport=40000 dport=80 src=10.244.2.7 dst=10.244.1.5 sport=80 dport=40000 mark=0 use=1");
    pass(&mut c, t(2), &tcp(C, 40000, S, 80, "A", 1001, 5001, 0));
    assert_eq!(
        c.line(idx, t(1002)),
        "tcp      6 431999 ESTABLISHED src=10.244.1.5 dst=10.244.2.7 sport=40000 dport=80 src=10.244.2.7 dst=10.244.1.5 sport=80 dport=40000 [ASSURED] mark=0 use=1"
    );
    // Linux 6.x counts `insert` only for ctnetlink insertions, not at confirm.
    assert_eq!(c.stats().insert, 0);
}

#[test]
fn close_sequence_reaches_time_wait_with_its_timeout() {
    let mut c = ct(16);
    let idx = handshake(&mut c, 40001);
    pass(&mut c, t(3), &tcp(C, 40001, S, 80, "FA", 1001, 5001, 0));
    assert_eq!(
        tcp::State::from_bits(c.entry(idx).bits),
        tcp::State::FinWait
    );
    pass(&mut c, t(4), &tcp(S, 80, C, 40001, "A", 5001, 1002, 0));
    assert_eq!(
        tcp::State::from_bits(c.entry(idx).bits),
        tcp::State::CloseWait
    );
    pass(&mut c, t(5), &tcp(S, 80, C, 40001, "FA", 5001, 1002, 0));
    assert_eq!(
        tcp::State::from_bits(c.entry(idx).bits),
        tcp::State::LastAck
    );
    pass(&mut c, t(6), &tcp(C, 40001, S, 80, "A", 1002, 5002, 0));
    assert!(
        c.line(idx, t(6)).starts_with("tcp      6 120 TIME_WAIT "),
        "{}",
        c.line(idx, t(6))
    );
    c.expire(t(6) + Duration::from_secs(121));
    assert_eq!(c.count(), 0);
}

#[test]
fn a_new_syn_replaces_a_time_wait_entry() {
    let mut c = ct(16);
    let idx = handshake(&mut c, 40002);
    for (i, (from_client, f, seq, ack)) in [
        (true, "FA", 1001, 5001),
        (false, "FA", 5001, 1002),
        (true, "A", 1002, 5002),
    ]
    .into_iter()
    .enumerate()
    {
        let p = if from_client {
            tcp(C, 40002, S, 80, f, seq, ack, 0)
        } else {
            tcp(S, 80, C, 40002, f, seq, ack, 0)
        };
        pass(&mut c, t(10 + i as i64), &p);
    }
    assert_eq!(
        tcp::State::from_bits(c.entry(idx).bits),
        tcp::State::TimeWait
    );
    let again = pass(&mut c, t(20), &tcp(C, 40002, S, 80, "S", 9000, 0, 0));
    assert_eq!(again.state, CtState::New);
    let e = c.entry(again.entry.unwrap());
    assert_eq!(tcp::State::from_bits(e.bits), tcp::State::SynSent);
    assert!(!e.has(bits::ASSURED));
    assert_eq!(c.count(), 1);
    assert_eq!(c.stats().insert, 0, "not counted at confirm (Linux 6.x)");
}

/// Linux `nf_conntrack_tcp_packet`: a SYN in TIME_WAIT reopens whichever side sends it; from
/// the reply side the new entry's original tuple is that SYN's own (kdiff corpus trace
/// `--seed 1 --corpus-trace 35`).
#[test]
fn a_syn_from_the_reply_side_reopens_time_wait_in_its_own_direction() {
    let mut c = ct(16);
    handshake(&mut c, 40003);
    pass(&mut c, t(10), &tcp(C, 40003, S, 80, "FA", 1001, 5001, 0));
    pass(&mut c, t(11), &tcp(S, 80, C, 40003, "FA", 5001, 1002, 0));
    pass(&mut c, t(12), &tcp(C, 40003, S, 80, "A", 1002, 5002, 0));
    let again = pass(&mut c, t(20), &tcp(S, 80, C, 40003, "S", 900_000, 0, 0));
    assert_eq!((again.state, again.dir), (CtState::New, Dir::Original));
    let idx = again.entry.unwrap();
    assert!(
        c.line(idx, t(20)).contains(
            "SYN_SENT src=10.244.2.7 dst=10.244.1.5 sport=80 dport=40003 [UNREPLIED] src=10.244.1.5 dst=10.244.2.7 sport=40003 dport=80"
        ),
        "{}",
        c.line(idx, t(20))
    );
    assert_eq!(c.count(), 1);
}

#[test]
fn a_rst_as_the_only_reply_deletes_the_entry() {
    let mut c = ct(16);
    pass(&mut c, t(0), &tcp(C, 40003, S, 81, "S", 1000, 0, 0));
    assert_eq!(c.count(), 1);
    pass(&mut c, t(1), &tcp(S, 81, C, 40003, "RA", 0, 1001, 0));
    assert_eq!(c.count(), 0);
}

#[test]
fn a_killed_entry_still_serves_its_rst_until_the_packet_leaves() {
    // Regression (kdiff corpus, tcp-rst traces 122 and 434): the backend's RST, the only
    // reply to a DNATed SYN, left untranslated because the entry was freed before NAT ran.
    // `nf_ct_kill_acct` only unhashes it; the RST keeps its reference for NAT.
    const B: Ipv4Address = Ipv4Address::new(10, 244, 0, 20);
    let mut c = ct(16);
    let syn = c
        .track(t(0), &tcp(C, 40005, S, 80, "S", 1000, 0, 0), true)
        .unwrap();
    let idx = syn.entry.unwrap();
    let mut reply = c.entry(idx).tuple(1);
    (reply.src, reply.sport) = (B, 8080);
    c.bind_nat(idx, &reply);
    c.confirm(Instant::ZERO, idx).unwrap();
    let rst = c
        .track(t(1), &tcp(B, 8080, C, 40005, "RA", 0, 1001, 0), true)
        .unwrap();
    assert_eq!(rst.entry, Some(idx), "NAT needs the entry");
    assert_eq!((rst.dir, rst.state), (Dir::Reply, CtState::Established));
    let e = c.entry(idx);
    assert!(e.has(bits::USED) && e.has(bits::DST_NAT) && !e.has(bits::CONFIRMED));
    assert_eq!(e.tuple(1), reply);
    assert_eq!(c.list(t(1)), "", "out of the table at once");
    assert!(!c.tuple_taken(t(1), &reply), "no lookup finds it");
    assert!(c.confirm(Instant::ZERO, idx).is_ok() && !c.entry(idx).has(bits::CONFIRMED));
    assert_eq!(c.count(), 1);
    c.discard(idx);
    assert_eq!(c.count(), 0, "freed when the RST leaves the hooks");
}

#[test]
fn attached_info_is_related_in_the_other_direction() {
    let mut c = ct(16);
    let syn = c
        .track(t(0), &tcp(C, 40006, S, 80, "S", 1000, 0, 0), true)
        .unwrap();
    let a = syn.attached().unwrap();
    assert_eq!(
        (a.entry, a.dir, a.state, a.created),
        (syn.entry, Dir::Reply, CtState::Related, false)
    );
    assert_eq!(a.attached().unwrap().dir, Dir::Original);
    assert_eq!(CtInfo::invalid().attached(), None);
}

#[test]
fn rst_after_establishment_gives_close_for_ten_seconds() {
    let mut c = ct(16);
    let idx = handshake(&mut c, 40004);
    pass(&mut c, t(10), &tcp(S, 80, C, 40004, "R", 5001, 0, 0));
    assert!(
        c.line(idx, t(10)).starts_with("tcp      6 10 CLOSE "),
        "{}",
        c.line(idx, t(10))
    );
}

#[test]
fn invalid_flags_window_and_checksum_are_counted() {
    let mut c = ct(16);
    let mut synfin = tcp(C, 40005, S, 80, "S", 1, 0, 0);
    synfin[20 + 13] |= 0x01;
    assert_eq!(
        c.track(t(0), &synfin, true).unwrap().state,
        CtState::Invalid
    );
    let mut bad = tcp(C, 40006, S, 80, "S", 1, 0, 0);
    bad[20 + 16] ^= 0xff;
    assert_eq!(c.track(t(0), &bad, true).unwrap().state, CtState::Invalid);
    let _ = handshake(&mut c, 40007);
    let far = tcp(C, 40007, S, 80, "A", 1001 + 50_000_000, 5001, 10);
    assert_eq!(c.track(t(5), &far, true).unwrap().state, CtState::Invalid);
    assert_eq!(c.stats().invalid, 3);
    // With tcpBeLiberal the out-of-window segment passes.
    let mut lib = Conntrack::new(
        CtConfig {
            tcp_be_liberal: true,
            ..CtConfig::default()
        },
        1,
    );
    let _ = handshake(&mut lib, 40007);
    assert_eq!(
        lib.track(t(5), &far, true).unwrap().state,
        CtState::Established
    );
}

#[test]
fn a_full_table_early_drops_unassured_entries_then_drops_packets() {
    // One bucket so the 8-bucket scan sees everything.
    let mut c = Conntrack::new(
        CtConfig {
            max: 2,
            buckets: 1,
            ..CtConfig::default()
        },
        1,
    );
    pass(&mut c, t(0), &tcp(C, 1, S, 80, "S", 1, 0, 0));
    pass(&mut c, t(0), &tcp(C, 2, S, 80, "S", 1, 0, 0));
    // Both unassured: a third SYN evicts them both and gets in.
    pass(&mut c, t(1), &tcp(C, 3, S, 80, "S", 1, 0, 0));
    assert_eq!((c.count(), c.stats().early_drop), (1, 2));
    // Fill with assured connections: nothing can be evicted, new SYNs drop.
    let mut c = Conntrack::new(
        CtConfig {
            max: 2,
            buckets: 1,
            ..CtConfig::default()
        },
        1,
    );
    handshake(&mut c, 10);
    handshake(&mut c, 11);
    assert_eq!(
        c.track(t(3), &tcp(C, 12, S, 80, "S", 1, 0, 0), true),
        Err(CtDrop::TableFull)
    );
    assert_eq!(c.stats().drop, 1);
    // Regression (kernel replay, corpus early-drop): a packet that cannot start a connection
    // (a FIN without an entry) is still given one to allocate first, so a full table drops it
    // (`init_conntrack` before `tcp_new`), as does a bad checksum; neither counts INVALID.
    assert_eq!(
        c.track(t(3), &tcp(C, 13, S, 80, "FA", 1, 1, 0), true),
        Err(CtDrop::TableFull)
    );
    assert_eq!((c.stats().drop, c.stats().invalid), (2, 0));
    // Established flows keep working.
    assert_eq!(
        c.track(t(4), &tcp(C, 10, S, 80, "PA", 1001, 5001, 10), true)
            .unwrap()
            .state,
        CtState::Established
    );
}

#[test]
fn udp_unreplied_then_stream_after_two_seconds() {
    let mut c = ct(16);
    let q = pass(&mut c, t(0), &udp(C, 5353, S, 53));
    let idx = q.entry.unwrap();
    assert!(c.line(idx, t(0)).starts_with(
        "udp      17 30 src=10.244.1.5 dst=10.244.2.7 sport=5353 dport=53 [UNREPLIED] "
    ));
    let a = pass(&mut c, t(1), &udp(S, 53, C, 5353));
    assert_eq!(a.state, CtState::Established);
    // A DNS query and its answer: never assured, 30 s.
    assert!(!c.entry(idx).has(bits::ASSURED));
    assert!(c.line(idx, t(1)).starts_with("udp      17 30 "));
    // Another packet after 2 s: a stream, assured, 120 s.
    pass(&mut c, t(2500), &udp(C, 5353, S, 53));
    assert!(c.entry(idx).has(bits::ASSURED));
    assert!(
        c.line(idx, t(2500)).starts_with("udp      17 120 "),
        "{}",
        c.line(idx, t(2500))
    );
}

/// An entry's timeout starts when it is confirmed, not when its packet set it: a packet held
/// for 20 days between the two (longer than the clock's wrap at 2^31 ms minus the timeout)
/// leaves a 30 s entry that expires 30 s after its confirmation (`__nf_conntrack_confirm`).
#[test]
fn the_timeout_runs_from_confirmation() {
    let mut c = ct(16);
    let q = c.track(t(0), &udp(C, 5353, S, 53), true).unwrap();
    let idx = q.entry.unwrap();
    assert!(c.line(idx, t(5_000)).starts_with("udp      17 30 "));
    let day = 86_400_000;
    c.confirm(t(20 * day), idx).unwrap();
    c.discard(idx);
    assert!(c.line(idx, t(20 * day)).starts_with("udp      17 30 "));
    c.expire(t(20 * day + 29_999));
    assert_eq!(c.count(), 1);
    c.expire(t(20 * day + 30_000));
    assert_eq!(c.count(), 0);
    // Past the wrap of the clock from the packet's time, too.
    let q = c.track(t(0), &udp(C, 5354, S, 53), true).unwrap();
    c.confirm(t(20 * day), q.entry.unwrap()).unwrap();
    c.discard(q.entry.unwrap());
    c.expire(t(25 * day));
    assert_eq!(c.count(), 0);
}

#[test]
fn icmp_echo_and_related_errors() {
    let mut c = ct(16);
    let mut echo = [8u8, 0, 0, 0, 0, 7, 0, 1];
    smoltcp::wire::Icmpv4Packet::new_unchecked(&mut echo[..]).fill_checksum();
    let info = pass(&mut c, t(0), &ip(C, S, IpProtocol::Icmp, &echo));
    let idx = info.entry.unwrap();
    assert!(c.line(idx, t(0)).starts_with("icmp     1 30 src=10.244.1.5 dst=10.244.2.7 type=8 code=0 id=7 [UNREPLIED] src=10.244.2.7 dst=10.244.1.5 type=0 code=0 id=7 "));
    // An echo reply with no request is invalid.
    let mut reply = [0u8, 0, 0, 0, 0, 9, 0, 1];
    smoltcp::wire::Icmpv4Packet::new_unchecked(&mut reply[..]).fill_checksum();
    assert_eq!(
        pass(&mut c, t(1), &ip(S, C, IpProtocol::Icmp, &reply)).state,
        CtState::Invalid
    );
    // Port unreachable about a tracked UDP flow is RELATED.
    let q = udp(C, 4000, S, 53);
    pass(&mut c, t(2), &q);
    let mut err = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&q[..28]);
    smoltcp::wire::Icmpv4Packet::new_unchecked(&mut err[..]).fill_checksum();
    let rel = c
        .track(t(3), &ip(S, C, IpProtocol::Icmp, &err), true)
        .unwrap();
    assert_eq!((rel.state, rel.dir), (CtState::Related, Dir::Reply));
}

#[test]
fn nat_binding_is_found_by_the_translated_reply() {
    let mut c = ct(16);
    let vip = Ipv4Address::new(10, 96, 0, 10);
    let info = c
        .track(t(0), &tcp(C, 40000, vip, 80, "S", 1, 0, 0), true)
        .unwrap();
    let idx = info.entry.unwrap();
    let reply = Tuple {
        src: S,
        dst: C,
        sport: 8080,
        dport: 40000,
        proto: proto::TCP,
    };
    c.bind_nat(idx, &reply);
    c.confirm(Instant::ZERO, idx).unwrap();
    assert!(c.entry(idx).has(bits::DST_NAT) && !c.entry(idx).has(bits::SRC_NAT));
    let back = c
        .track(t(1), &tcp(S, 8080, C, 40000, "SA", 9, 2, 0), true)
        .unwrap();
    assert_eq!((back.entry, back.dir), (Some(idx), Dir::Reply));
    assert!(c.list(t(1)).contains("src=10.244.1.5 dst=10.96.0.10 sport=40000 dport=80 src=10.244.2.7 dst=10.244.1.5 sport=8080 dport=40000"));
}

#[test]
fn unconfirmed_entries_vanish_when_discarded_and_clashes_are_counted() {
    let mut c = ct(16);
    let a = c
        .track(t(0), &tcp(C, 1, S, 80, "S", 1, 0, 0), true)
        .unwrap();
    c.discard(a.entry.unwrap());
    assert_eq!(c.count(), 0);
    let x = c
        .track(t(0), &tcp(C, 2, S, 80, "S", 1, 0, 0), true)
        .unwrap();
    let y = c
        .track(t(0), &tcp(C, 2, S, 80, "S", 1, 0, 0), true)
        .unwrap();
    c.confirm(Instant::ZERO, x.entry.unwrap()).unwrap();
    assert_eq!(
        c.confirm(Instant::ZERO, y.entry.unwrap()),
        Err(CtDrop::InsertClash)
    );
    assert_eq!(
        (c.stats().insert, c.stats().insert_failed, c.stats().drop),
        (0, 1, 1)
    );
}

#[test]
fn stats_line_like_conntrack_s() {
    let c = ct(16);
    assert_eq!(
        c.stats_text(),
        "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n"
    );
}
