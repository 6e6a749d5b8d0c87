//! The iptables interpreter: `ipt_do_table` over [`super::iptables`] rules.
//!
//! Each rule costs one evaluation. The IP header part (`-s`, `-d`, `-p`) is checked first, then
//! the matches in order, stopping at the first that fails (`ip_packet_match`, then each
//! `xt_match`), so `statistic` draws and `recent` updates happen only when everything before
//! them matched. A jump pushes the return point; the end of a user chain or `RETURN` pops it;
//! the end of a builtin chain applies its policy (ACCEPT). `MARK` continues, every other
//! target ends the table's traversal.
//!
//! Counting follows the same loop: a rule whose IP part and matches all accept the packet
//! counts it (packets + 1, bytes + the packet's length) before its target runs; falling off a
//! builtin chain, or `RETURN` with nothing to return to, counts on the chain's policy (the
//! kernel's underflow entry). See [`super::counters`].

use alloc::string::String;
use alloc::vec::Vec;

use super::counters::ChainCounters;
use super::iptables::{ct, Arg, ChainId, Rule, Ruleset, TableId, Target};
use super::{ipt_text, CtState, Env, Outcome};

/// Deepest jump nesting (kube-proxy needs 4: KUBE-SERVICES, KUBE-EXT, KUBE-SVC, KUBE-SEP).
const MAX_DEPTH: usize = 16;

fn ct_bit(s: CtState) -> u8 {
    match s {
        CtState::New => ct::NEW,
        CtState::Established => ct::ESTABLISHED,
        CtState::Related => ct::RELATED,
        CtState::Invalid => ct::INVALID,
    }
}

fn matches(rule: &Rule, env: &mut Env<'_>) -> bool {
    let pkt = env.pkt;
    // The IP header part first.
    if rule.ip_part {
        for a in &rule.args {
            let ok = match a {
                Arg::Src(addr) => addr.matches(pkt.src),
                Arg::Dst(addr) => addr.matches(pkt.dst),
                Arg::Proto(p) => pkt.proto == p.number(),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
    }
    for a in &rule.args {
        let ok = match *a {
            Arg::Src(_) | Arg::Dst(_) | Arg::Proto(_) | Arg::Comment(_) => true,
            Arg::Module(p) => pkt.proto == p.number(),
            Arg::Dport(port) => pkt.dport == port,
            Arg::Statistic { prob, .. } => {
                env.rng.is_some() && env.random_u32() & 0x7FFF_FFFF < prob
            }
            Arg::RecentSet { list, .. } => {
                let now = env.now.total_micros();
                if let Some(t) = env.affinity.get_mut(list as usize) {
                    t.recent_set(u32::from(pkt.src), now);
                }
                true
            }
            Arg::RecentCheck { list, seconds, .. } => {
                let now = env.now.total_micros();
                env.affinity
                    .get_mut(list as usize)
                    .is_some_and(|t| t.recent_rcheck(u32::from(pkt.src), now, seconds))
            }
            Arg::AddrType { src } => env.is_local(if src { pkt.src } else { pkt.dst }),
            Arg::Mark { value, mask, neg } => (env.mark & mask == value) != neg,
            // The DNAT status bit is not known here; it only matters for 127.0.0.0/8.
            Arg::CtState { states, neg } => (states & ct_bit(env.ct) != 0) != neg,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Walks `table` from builtin chain `start`, counting on `counters` (shaped like the table).
pub(crate) fn walk(
    rs: &Ruleset,
    table: TableId,
    start: ChainId,
    env: &mut Env<'_>,
    mut record: Option<&mut Vec<String>>,
    services: &[super::ServicePort],
    counters: &mut [ChainCounters],
) -> Outcome {
    let t = rs.table(table);
    let len = env.pkt.len;
    let policy = |counters: &mut [ChainCounters]| {
        if let Some(c) = counters.get_mut(start as usize) {
            c.policy.add(len);
        }
        Outcome::Accept
    };
    let mut stack = [(0 as ChainId, 0u32); MAX_DEPTH];
    let mut depth = 0;
    let (mut chain, mut next) = (start, 0u32);
    loop {
        let c = &t.chains[chain as usize];
        let Some(rule) = c.rules.get(next as usize) else {
            if depth == 0 {
                return policy(counters);
            }
            depth -= 1;
            (chain, next) = stack[depth];
            continue;
        };
        next += 1;
        env.walked += 1;
        if !matches(rule, env) {
            continue;
        }
        if let Some(n) = counters
            .get_mut(chain as usize)
            .and_then(|c| c.rules.get_mut(next as usize - 1))
        {
            n.add(len);
        }
        if let Some(lines) = record.as_deref_mut() {
            let mut line = String::new();
            ipt_text::save_rule(&mut line, t, chain, rule, services);
            lines.push(line);
        }
        match rule.target {
            Target::Jump(to) => {
                if depth == MAX_DEPTH {
                    return Outcome::Drop;
                }
                stack[depth] = (chain, next);
                depth += 1;
                (chain, next) = (to, 0);
            }
            Target::Return => {
                if depth == 0 {
                    return policy(counters);
                }
                depth -= 1;
                (chain, next) = stack[depth];
            }
            Target::OrMark(m) => env.mark |= m,
            Target::XorMark(m) => env.mark ^= m,
            Target::Accept => return Outcome::Accept,
            Target::Drop => return Outcome::Drop,
            Target::Reject => return Outcome::Reject,
            Target::Dnat(ip, port) => return Outcome::Dnat(ip, port),
            Target::Masquerade { random_fully } => return Outcome::Masquerade { random_fully },
        }
    }
}
