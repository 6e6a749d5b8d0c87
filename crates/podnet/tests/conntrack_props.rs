//! Property tests of the connection tracker: random sequences of packets (TCP segments both
//! ways, UDP, ICMP echo and errors, another protocol), confirmations, discards, NAT bindings,
//! expiry, flushes and changes of `nf_conntrack_max`, over a few addresses and ports so that
//! tuples collide and slots are reused. After every step the table must be consistent:
//!
//! * it never holds more entries than the maximum in force (an entry above a lowered maximum
//!   may stay, but none is added while the table is over it);
//! * every confirmed entry is found by both of its tuples, in the right direction, and an
//!   unconfirmed one by neither;
//! * no tuple belongs to two confirmed entries (ORIGINAL or REPLY, either way round);
//! * every hash chain holds only confirmed entries whose tuples hash to it;
//!
//! and once the unconfirmed entries are let go, expiring past every timeout empties it.

use std::collections::HashMap;

use podnet::conntrack::table::bits;
use podnet::conntrack::{proto, Confirmed, Conntrack, CtConfig, Tuple};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use smoltcp::time::Instant;
use smoltcp::wire::{IpProtocol, Ipv4Address};

// ---------------------------------------------------------------------------------------------
// Packet builders (as in src/conntrack/tests.rs)

use podnet::packet::{ip, tcp, udp};

/// An ICMP message of `typ`/`code` whose bytes 4.. are `rest`, checksum filled.
fn icmp(src: Ipv4Address, dst: Ipv4Address, typ: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut l4 = vec![typ, code, 0, 0];
    l4.extend_from_slice(rest);
    smoltcp::wire::Icmpv4Packet::new_unchecked(&mut l4[..]).fill_checksum();
    ip(src, dst, IpProtocol::Icmp, &l4)
}

// ---------------------------------------------------------------------------------------------
// The address space: three hosts, three ports, two ICMP ids

const ADDRS: [Ipv4Address; 3] = [
    Ipv4Address::new(10, 244, 1, 5),
    Ipv4Address::new(10, 244, 2, 7),
    Ipv4Address::new(10, 96, 0, 10),
];
const PORTS: [u16; 3] = [80, 40000, 40001];
const SEQS: [u32; 10] = [
    0,
    1,
    1000,
    1001,
    1002,
    5000,
    5001,
    5002,
    0x8000_0000,
    u32::MAX,
];
const FLAGS: [&str; 7] = ["S", "SA", "A", "PA", "FA", "R", "RA"];
/// One connection's segments: (from the client, flags, seq, ack, payload length).
const CONN: [(bool, &str, u32, u32, usize); 9] = [
    (true, "S", 1000, 0, 0),
    (false, "SA", 5000, 1001, 0),
    (true, "A", 1001, 5001, 0),
    (true, "PA", 1001, 5001, 2),
    (false, "A", 5001, 1003, 0),
    (true, "FA", 1003, 5001, 0),
    (false, "A", 5001, 1004, 0),
    (false, "FA", 5001, 1004, 0),
    (true, "A", 1004, 5002, 0),
];
/// A protocol conntrack tracks generically (GRE).
const GRE: u8 = 47;

/// Two different hosts: `a` and the one `1 + off` after it.
fn pair(a: u8, off: u8) -> (Ipv4Address, Ipv4Address) {
    let a = usize::from(a) % ADDRS.len();
    let b = (a + 1 + usize::from(off) % (ADDRS.len() - 1)) % ADDRS.len();
    (ADDRS[a], ADDRS[b])
}

fn port(i: u8) -> u16 {
    PORTS[usize::from(i) % PORTS.len()]
}

/// One step of a run.
#[derive(Clone, Debug)]
enum Op {
    /// A TCP segment from host `a` to the `off`-th other host. `hold`: a created entry stays
    /// unconfirmed (its packet is still on its way); otherwise it is confirmed at once.
    Tcp {
        a: u8,
        off: u8,
        sport: u8,
        dport: u8,
        flags: u8,
        seq: u8,
        ack: u8,
        len: u8,
        verify: bool,
        hold: bool,
    },
    /// The first `upto` segments of a whole connection `a:sport > b:dport` with consistent
    /// sequence numbers (handshake, data, FIN both ways, last ACK), then a RST from the client
    /// or the server if `rst` says so. The first segment's entry is held if `hold`.
    Conn {
        a: u8,
        off: u8,
        sport: u8,
        dport: u8,
        upto: u8,
        rst: Option<bool>,
        hold: bool,
    },
    /// A UDP datagram.
    Udp {
        a: u8,
        off: u8,
        sport: u8,
        dport: u8,
        hold: bool,
    },
    /// An ICMP echo request (or reply) with id `id`.
    Echo {
        a: u8,
        off: u8,
        id: u8,
        reply: bool,
        hold: bool,
    },
    /// A GRE packet (generic tracking).
    Gre { a: u8, off: u8, hold: bool },
    /// A port unreachable from `from` quoting a TCP/UDP packet `a:sport > b:dport`.
    IcmpError {
        from: u8,
        a: u8,
        off: u8,
        sport: u8,
        dport: u8,
        udp: bool,
    },
    /// Confirms the `i`-th unconfirmed entry.
    Confirm(u8),
    /// Discards the `i`-th unconfirmed entry.
    Discard(u8),
    /// Binds the `i`-th unconfirmed entry to a REPLY tuple `a:sport > b:dport`.
    BindNat {
        i: u8,
        a: u8,
        off: u8,
        sport: u8,
        dport: u8,
    },
    /// Moves virtual time forward.
    Advance(u64),
    /// Runs the garbage collector.
    Expire,
    /// `conntrack -F`.
    Flush,
    /// Writes `nf_conntrack_max`.
    SetMax(u32),
}

fn any_step() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..=10,
        4 => 0u64..=3_000,
        2 => 5_000u64..=200_000,
        1 => 400_000_000u64..=440_000_000,
    ]
}

fn packet_op() -> impl Strategy<Value = Op> {
    let hold = prop_oneof![3 => Just(false), 1 => Just(true)];
    prop_oneof![
        8 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), 0..FLAGS.len() as u8,
              0..SEQS.len() as u8, 0..SEQS.len() as u8, 0u8..3, any::<bool>(), hold.clone())
            .prop_map(|(a, off, sport, dport, flags, seq, ack, len, verify, hold)| Op::Tcp {
                a, off, sport, dport, flags, seq, ack, len, verify, hold
            }),
        4 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), 1..=CONN.len() as u8,
              proptest::option::of(any::<bool>()), hold.clone())
            .prop_map(|(a, off, sport, dport, upto, rst, hold)| Op::Conn {
                a, off, sport, dport, upto, rst, hold
            }),
        4 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), hold.clone())
            .prop_map(|(a, off, sport, dport, hold)| Op::Udp { a, off, sport, dport, hold }),
        2 => (any::<u8>(), any::<u8>(), 0u8..2, any::<bool>(), hold.clone())
            .prop_map(|(a, off, id, reply, hold)| Op::Echo { a, off, id, reply, hold }),
        1 => (any::<u8>(), any::<u8>(), hold)
            .prop_map(|(a, off, hold)| Op::Gre { a, off, hold }),
        1 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<bool>())
            .prop_map(|(from, a, off, sport, dport, udp)| Op::IcmpError {
                from, a, off, sport, dport, udp
            }),
    ]
}

fn control_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Confirm),
        1 => any::<u8>().prop_map(Op::Discard),
        2 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(i, a, off, sport, dport)| Op::BindNat { i, a, off, sport, dport }),
        3 => any_step().prop_map(Op::Advance),
        1 => Just(Op::Expire),
    ]
}

/// Steps without flushes or changes of the maximum.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![12 => packet_op(), 6 => control_op()]
}

/// Steps with rare flushes and frequent changes of the maximum (down and up).
fn op_with_max() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => packet_op(),
        6 => control_op(),
        2 => (0u32..=20).prop_map(Op::SetMax),
        1 => Just(Op::Flush),
    ]
}

/// Small tables: up to 16 entries over 1 to 8 chains, any TCP strictness.
fn config() -> impl Strategy<Value = (CtConfig, u64)> {
    (
        1u32..=16,
        1u32..=8,
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(max, buckets, tcp_be_liberal, tcp_loose, seed)| {
            (
                CtConfig {
                    max,
                    buckets,
                    tcp_be_liberal,
                    tcp_loose,
                    ..CtConfig::default()
                },
                seed,
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The run

struct Sim {
    ct: Conntrack,
    now_ms: i64,
    /// Entries created by a packet still "on its way": unconfirmed, awaiting confirm/discard.
    pending: Vec<u32>,
}

impl Sim {
    fn now(&self) -> Instant {
        Instant::from_millis(self.now_ms)
    }

    fn packet(&mut self, pkt: &[u8], verify: bool, hold: bool) -> Result<(), TestCaseError> {
        let now = self.now();
        let Ok(info) = self.ct.track(now, pkt, verify) else {
            return Ok(()); // dropped: table full
        };
        if let Some(idx) = info.entry {
            let e = self.ct.entry(idx);
            prop_assert!(e.has(bits::USED), "track returned a free slot {idx}");
            if e.has(bits::DYING) {
                // Killed by this packet (a RST as the only reply): out of the hash, freed
                // once the packet is done with it.
                prop_assert!(!info.created && !e.has(bits::CONFIRMED));
                self.ct.discard(idx);
                prop_assert!(!self.ct.entry(idx).has(bits::USED));
                return Ok(());
            }
            prop_assert_eq!(
                e.has(bits::CONFIRMED),
                !info.created,
                "entry {} created={} confirmed={}",
                idx,
                info.created,
                e.has(bits::CONFIRMED)
            );
            if info.created {
                prop_assert!(!self.pending.contains(&idx), "slot {idx} handed out twice");
                if hold {
                    self.pending.push(idx);
                } else if self.ct.confirm(self.now(), idx).is_err() {
                    prop_assert!(!self.ct.entry(idx).has(bits::USED), "clash left {idx}");
                }
            }
        } else {
            prop_assert!(!info.created);
        }
        Ok(())
    }

    fn take_pending(&mut self, i: u8) -> Option<u32> {
        if self.pending.is_empty() {
            return None;
        }
        let k = usize::from(i) % self.pending.len();
        Some(self.pending.remove(k))
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Tcp {
                a,
                off,
                sport,
                dport,
                flags,
                seq,
                ack,
                len,
                verify,
                hold,
            } => {
                let (s, d) = pair(a, off);
                let p = tcp(
                    s,
                    port(sport),
                    d,
                    port(dport),
                    FLAGS[usize::from(flags)],
                    SEQS[usize::from(seq)],
                    SEQS[usize::from(ack)],
                    usize::from(len),
                );
                self.packet(&p, verify, hold)?;
            }
            Op::Conn {
                a,
                off,
                sport,
                dport,
                upto,
                rst,
                hold,
            } => {
                let (c, srv) = pair(a, off);
                let (cp, sp) = (port(sport), port(dport));
                let seg = |client: bool, flags: &str, seq: u32, ack: u32, len: usize| {
                    if client {
                        tcp(c, cp, srv, sp, flags, seq, ack, len)
                    } else {
                        tcp(srv, sp, c, cp, flags, seq, ack, len)
                    }
                };
                let upto = usize::from(upto);
                for (k, &(client, flags, seq, ack, len)) in CONN[..upto].iter().enumerate() {
                    self.packet(&seg(client, flags, seq, ack, len), true, hold && k == 0)?;
                }
                if let Some(client) = rst {
                    // The next sequence number of the side that resets.
                    let (seq, ack) = CONN[..upto]
                        .iter()
                        .rev()
                        .find(|x| x.0 == client)
                        .map_or((if client { 1000 } else { 5000 }, 0), |x| {
                            (x.2.wrapping_add(x.4 as u32), x.3)
                        });
                    self.packet(&seg(client, "RA", seq, ack, 0), true, false)?;
                }
            }
            Op::Udp {
                a,
                off,
                sport,
                dport,
                hold,
            } => {
                let (s, d) = pair(a, off);
                self.packet(&udp(s, port(sport), d, port(dport)), true, hold)?;
            }
            Op::Echo {
                a,
                off,
                id,
                reply,
                hold,
            } => {
                let (s, d) = pair(a, off);
                let typ = if reply { 0 } else { 8 };
                self.packet(&icmp(s, d, typ, 0, &[0, id + 1, 0, 1]), true, hold)?;
            }
            Op::Gre { a, off, hold } => {
                let (s, d) = pair(a, off);
                self.packet(
                    &ip(s, d, IpProtocol::Unknown(GRE), &[0, 0, 0x08, 0]),
                    true,
                    hold,
                )?;
            }
            Op::IcmpError {
                from,
                a,
                off,
                sport,
                dport,
                udp: is_udp,
            } => {
                let (s, d) = pair(a, off);
                let inner = if is_udp {
                    udp(s, port(sport), d, port(dport))
                } else {
                    tcp(s, port(sport), d, port(dport), "S", 1000, 0, 0)
                };
                let mut rest = vec![0u8; 4];
                rest.extend_from_slice(&inner[..28]);
                let from = ADDRS[usize::from(from) % ADDRS.len()];
                let p = icmp(from, s, 3, 3, &rest);
                let now = self.now();
                let info = self.ct.track(now, &p, true);
                prop_assert!(
                    info.is_ok_and(|i| !i.created),
                    "an ICMP error created an entry: {info:?}"
                );
            }
            Op::Confirm(i) => {
                if let Some(idx) = self.take_pending(i) {
                    match self.ct.confirm(self.now(), idx) {
                        Ok(Confirmed::Reused { winner }) => {
                            // A UDP clash resolved: the packet took the winner's entry.
                            prop_assert!(!self.ct.entry(idx).has(bits::USED), "loser kept {idx}");
                            prop_assert!(self.ct.entry(winner).has(bits::CONFIRMED));
                        }
                        Ok(_) => prop_assert!(self.ct.entry(idx).has(bits::CONFIRMED)),
                        Err(_) => {
                            prop_assert!(!self.ct.entry(idx).has(bits::USED), "clash left {idx}")
                        }
                    }
                }
            }
            Op::Discard(i) => {
                if let Some(idx) = self.take_pending(i) {
                    self.ct.discard(idx);
                    prop_assert!(!self.ct.entry(idx).has(bits::USED));
                }
            }
            Op::BindNat {
                i,
                a,
                off,
                sport,
                dport,
            } => {
                if !self.pending.is_empty() {
                    let idx = self.pending[usize::from(i) % self.pending.len()];
                    let e = *self.ct.entry(idx);
                    let (s, d) = pair(a, off);
                    let (sport, dport) = match e.proto {
                        proto::TCP | proto::UDP => (port(sport), port(dport)),
                        // ICMP: a new id, the same reply type; GRE: no ports.
                        proto::ICMP => (u16::from(sport % 3), e.tuple(1).dport),
                        _ => (0, 0),
                    };
                    let reply = Tuple {
                        src: s,
                        dst: d,
                        sport,
                        dport,
                        proto: e.proto,
                    };
                    self.ct.bind_nat(idx, &reply);
                    prop_assert_eq!(self.ct.entry(idx).tuple(1), reply);
                    prop_assert_eq!(self.ct.entry(idx).tuple(0), e.tuple(0));
                }
            }
            Op::Advance(ms) => self.now_ms += ms as i64,
            Op::Expire => {
                let now = self.now();
                self.ct.expire(now);
            }
            Op::Flush => {
                self.ct.flush();
                self.pending.clear();
            }
            Op::SetMax(m) => self.ct.set_max(m),
        }
        Ok(())
    }
}

/// The table's structural invariants.
fn check_table(ct: &Conntrack) -> Result<(), TestCaseError> {
    let t = ct.table();
    let used: Vec<u32> = t.used().collect();
    prop_assert_eq!(used.len() as u32, ct.count(), "count() vs used slots");
    let life = ct.life();
    prop_assert_eq!(
        life.created,
        u64::from(ct.count()) + life.removed(),
        "every entry created is in the table or counted as removed: {:?}",
        life
    );
    prop_assert_eq!(t.capacity(), ct.config().max);
    let mut owner: HashMap<Tuple, (u32, usize)> = HashMap::new();
    let mut confirmed = 0;
    for &idx in &used {
        let e = t.get(idx);
        let (o, r) = (e.tuple(0), e.tuple(1));
        if e.has(bits::CONFIRMED) {
            confirmed += 1;
            // The loser of a UDP clash is in the hash by its REPLY tuple only; its ORIGINAL
            // tuple is the winner's.
            let clash = e.has(bits::NAT_CLASH);
            let dirs: &[(usize, Tuple)] = if clash { &[(1, r)] } else { &[(0, o), (1, r)] };
            for &(dir, tup) in dirs {
                let found = t.lookup(&tup);
                if o == r {
                    // A tuple that is its own inverse: one entry, either direction.
                    prop_assert_eq!(found.map(|f| f.0), Some(idx), "{} not found", tup);
                } else {
                    prop_assert_eq!(
                        found,
                        Some((idx, dir)),
                        "entry {} dir {} ({}) looked up wrong",
                        idx,
                        dir,
                        tup
                    );
                }
                if let Some(&(other, odir)) = owner.get(&tup) {
                    prop_assert!(
                        other == idx,
                        "tuple {} held by entry {} dir {} and entry {} dir {}",
                        tup,
                        other,
                        odir,
                        idx,
                        dir
                    );
                }
                owner.insert(tup, (idx, dir));
            }
        } else {
            for tup in [o, r] {
                prop_assert!(
                    t.lookup(&tup).is_none_or(|f| f.0 != idx),
                    "unconfirmed entry {} is in the hash by {}",
                    idx,
                    tup
                );
            }
        }
    }
    // Every chain holds only confirmed entries that hash to it, and each such entry is in
    // one or two chains.
    let mut in_chains: HashMap<u32, u32> = HashMap::new();
    let mut ids = [0u32; 64];
    for b in 0..t.bucket_count() {
        let n = t.bucket_entries(b, &mut ids);
        prop_assert!(n < ids.len(), "chain {b} too long to check");
        for &idx in &ids[..n] {
            let e = t.get(idx);
            prop_assert!(
                e.has(bits::USED) && e.has(bits::CONFIRMED),
                "chain {} holds entry {} with bits {:#06x}",
                b,
                idx,
                e.bits
            );
            prop_assert!(
                t.bucket_of(&e.tuple(0)) == b || t.bucket_of(&e.tuple(1)) == b,
                "entry {idx} in chain {b} hashes elsewhere"
            );
            *in_chains.entry(idx).or_default() += 1;
        }
    }
    prop_assert_eq!(
        in_chains.len(),
        confirmed,
        "confirmed entries vs chained entries"
    );
    for (&idx, &k) in &in_chains {
        let e = t.get(idx);
        let want = if e.has(bits::NAT_CLASH) || t.bucket_of(&e.tuple(0)) == t.bucket_of(&e.tuple(1))
        {
            1
        } else {
            2
        };
        prop_assert_eq!(k, want, "entry {} in {} chains", idx, k);
    }
    Ok(())
}

/// Runs `ops`; after each step checks the table and that it grew only within the maximum.
fn run(config: CtConfig, seed: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut sim = Sim {
        ct: Conntrack::new(config, seed),
        now_ms: 0,
        pending: Vec::new(),
    };
    for (step, op) in ops.iter().enumerate() {
        let before = sim.ct.count();
        sim.apply(op)?;
        let (after, max) = (sim.ct.count(), sim.ct.config().max);
        prop_assert!(
            after <= max.max(before),
            "step {step} {op:?}: {after} entries, max {max}, {before} before"
        );
        check_table(&sim.ct)
            .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
    }
    // The packets still on their way are dropped; then past every timeout nothing is left.
    for idx in std::mem::take(&mut sim.pending) {
        sim.ct.discard(idx);
    }
    let later = Instant::from_millis(sim.now_ms + 432_001_000);
    sim.ct.expire(later);
    prop_assert_eq!(
        sim.ct.count(),
        0,
        "left after expiry:\n{}",
        sim.ct.list(later)
    );
    prop_assert!(sim.ct.list(later).is_empty());
    prop_assert_eq!(sim.ct.table().used().count(), 0);
    check_table(&sim.ct)?;
    Ok(())
}

/// 256 cases each, or `PROPTEST_CASES` for a deeper search.
fn cfg() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cfg())]

    /// Traffic, confirmations, NAT and expiry with a fixed maximum.
    #[test]
    fn table_stays_consistent_and_within_max(
        (config, seed) in config(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run(config, seed, &ops)?;
    }

    /// The same with the maximum lowered and raised (and flushes) along the way.
    #[test]
    fn changing_max_never_admits_beyond_it(
        (config, seed) in config(),
        ops in proptest::collection::vec(op_with_max(), 1..200),
    ) {
        run(config, seed, &ops)?;
    }

    /// Many entries in one chain: a single bucket and room for 30 connections.
    #[test]
    fn one_long_chain_stays_consistent(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let config = CtConfig { max: 30, buckets: 1, ..CtConfig::default() };
        run(config, seed, &ops)?;
    }
}

/// Conntrack keeps time on a wrapping 32-bit millisecond clock (like jiffies): past 2^32 ms
/// (about 49.7 days of virtual time) a reply must still find its connection.
#[test]
fn a_reply_after_fifty_days_of_virtual_time_is_established() {
    let mut ct = Conntrack::new(CtConfig::default(), 1);
    let t0: i64 = 50 * 86_400_000;
    let (c, s) = (ADDRS[0], ADDRS[1]);
    let q = ct
        .track(Instant::from_millis(t0), &udp(c, 5353, s, 53), true)
        .unwrap();
    ct.confirm(Instant::from_millis(t0), q.entry.unwrap())
        .unwrap();
    let a = ct
        .track(Instant::from_millis(t0 + 1), &udp(s, 53, c, 5353), true)
        .unwrap();
    assert_eq!(
        (a.state, a.created, a.entry),
        (podnet::conntrack::CtState::Established, false, q.entry)
    );
}
