//! Insert clashes at confirmation, by kernel version (`nf_ct_resolve_clash`): two packets of
//! one flow tracked before either is confirmed (as on two CPUs), NAT bound on each, then
//! confirmed in turn.

use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;

use super::tests::{tcp, udp};
use super::*;

const C: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
const VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
const B1: Ipv4Address = Ipv4Address::new(10, 244, 1, 2);
const B2: Ipv4Address = Ipv4Address::new(10, 244, 1, 3);

fn ct(kernel: Kernel) -> Conntrack {
    Conntrack::new(
        CtConfig {
            kernel,
            ..CtConfig::default()
        },
        1,
    )
}

/// Tracks `p` (unconfirmed) and DNATs it to `to:53` when given.
fn new_entry(c: &mut Conntrack, p: &[u8], to: Option<Ipv4Address>) -> u32 {
    let info = c.track(Instant::ZERO, p, true).unwrap();
    assert!(info.created);
    let idx = info.entry.unwrap();
    if let Some(b) = to {
        let mut reply = c.entry(idx).tuple(0).invert();
        reply.src = b;
        c.bind_nat(idx, &reply);
    }
    idx
}

/// The A and AAAA queries of one socket: same tuple, DNATed to `b1` and `b2`.
fn race(c: &mut Conntrack, b1: Ipv4Address, b2: Ipv4Address) -> (u32, Result<Confirmed, CtDrop>) {
    let q = udp(C, 40000, VIP, 53);
    let a = new_entry(c, &q, Some(b1));
    let aaaa = new_entry(c, &q, Some(b2));
    assert_eq!(c.confirm(Instant::ZERO, a), Ok(Confirmed::Inserted));
    (a, c.confirm(Instant::ZERO, aaaa))
}

#[test]
fn tcp_clashes_are_always_dropped() {
    for k in [Kernel::new(4, 19), Kernel::default()] {
        let mut c = ct(k);
        let syn = tcp(C, 40000, VIP, 80, "S", 1, 0, 0);
        let a = new_entry(&mut c, &syn, None);
        let b = new_entry(&mut c, &syn, None);
        c.confirm(Instant::ZERO, a).unwrap();
        assert_eq!(c.confirm(Instant::ZERO, b), Err(CtDrop::InsertClash));
        let s = c.stats();
        assert_eq!((s.insert_failed, s.drop, s.clash_resolve), (1, 1, 0), "{k}");
        assert_eq!(c.count(), 1);
    }
}

#[test]
fn udp_same_backend_takes_the_winners_entry() {
    let mut c = ct(Kernel::new(4, 19));
    let (a, r) = race(&mut c, B1, B1);
    assert_eq!(r, Ok(Confirmed::Reused { winner: a }));
    // Before 5.10 the resolved clash still counts in insert_failed, and nothing is dropped.
    let s = c.stats();
    assert_eq!((s.insert_failed, s.drop, s.clash_resolve), (1, 0, 0));
    let mut c = ct(Kernel::default());
    race(&mut c, B1, B1).1.unwrap();
    let s = c.stats();
    assert_eq!((s.insert_failed, s.drop, s.clash_resolve), (0, 0, 1));
    assert_eq!(c.count(), 1);
    // Before 4.19 only a winner without NAT is reused: identical DNAT is dropped.
    let mut c = ct(Kernel::new(4, 14));
    assert_eq!(race(&mut c, B1, B1).1, Err(CtDrop::InsertClash));
}

#[test]
fn udp_other_backend_dropped_on_4_19_inserted_by_reply_on_5_6() {
    let mut c = ct(Kernel::new(4, 19));
    assert_eq!(race(&mut c, B1, B2).1, Err(CtDrop::InsertClash));
    let s = c.stats();
    assert_eq!((s.insert_failed, s.drop), (1, 1));

    let mut c = ct(Kernel::new(5, 6));
    let (a, r) = race(&mut c, B1, B2);
    let Ok(Confirmed::ReplyOnly { winner }) = r else {
        panic!("{r:?}")
    };
    assert_eq!(winner, a);
    assert_eq!((c.stats().insert_failed, c.stats().drop), (1, 0));
    // The original tuple still finds the winner; the loser's reply finds the loser, which
    // `conntrack -L` does not show and which lives 1 s whatever comes.
    let q = udp(C, 40000, VIP, 53);
    assert_eq!(c.track(Instant::ZERO, &q, true).unwrap().entry, Some(a));
    let ans = udp(B2, 53, C, 40000);
    let got = c.track(Instant::ZERO, &ans, true).unwrap();
    assert_eq!(got.dir, Dir::Reply);
    let loser = got.entry.unwrap();
    assert_ne!(loser, a);
    assert!(c.entry(loser).has(bits::NAT_CLASH));
    assert_eq!(c.list(Instant::ZERO).lines().count(), 1);
    assert!(c.list(Instant::from_millis(999)).lines().count() == 1);
    c.expire(Instant::from_millis(1000));
    assert_eq!(c.count(), 1, "the clash entry is gone after 1 s");

    let mut c = ct(Kernel::default());
    race(&mut c, B1, B2).1.unwrap();
    assert_eq!(c.stats().clash_resolve, 1);
}

#[test]
fn a_hidden_entry_is_missed_by_the_lookup_and_met_at_confirmation() {
    let mut c = ct(Kernel::new(4, 19));
    c.set_cpus(2);
    let q = udp(C, 40000, VIP, 53);
    c.on_cpu(0);
    let a = new_entry(&mut c, &q, Some(B1));
    c.confirm(Instant::ZERO, a).unwrap();
    c.on_cpu(1);
    c.hide(a);
    let b = new_entry(&mut c, &q, Some(B2));
    assert!(
        !c.tuple_taken(Instant::ZERO, &c.entry(a).tuple(1)),
        "NAT cannot see it"
    );
    assert_eq!(c.confirm(Instant::ZERO, b), Err(CtDrop::InsertClash));
    assert!(c.hidden().is_empty(), "confirmation sees everything again");
    let per = c.stats_per_cpu();
    assert_eq!((per[0].insert_failed, per[1].insert_failed), (0, 1));
    assert_eq!(c.stats_text().lines().count(), 2);
}
