//! The nftables interpreter: `nft_do_chain` over [`super::nftables`] rules.
//!
//! A rule's expressions run left to right and the rule stops at the first that does not
//! match; a verdict map lookup that finds no element also stops it. `jump` pushes a return
//! point, `goto` does not, `return` and the end of a regular chain pop it, the end of a base
//! chain applies its policy (accept). `numgen random mod N` is `reciprocal_scale` of a random
//! 32-bit value (`nft_ng_random_eval`). Every rule entered costs one evaluation, so a map
//! lookup is one rule however many elements the map holds.
//!
//! Counting: a rule counts the packet once every matching expression before its first
//! statement has matched, where a `counter` statement would stand (see [`super::counters`]).

use alloc::string::String;
use alloc::vec::Vec;

use super::counters::Counter;
use super::nftables::{ChainId, Ruleset, SetData, Stmt, Verdict};
use super::{nft_text, CtState, Env, Outcome, ServicePort};

const MAX_DEPTH: usize = 16;

fn in_set(rs: &Ruleset, env: &mut Env<'_>, set: u32, a: smoltcp::wire::Ipv4Address) -> bool {
    match rs.sets.get(set as usize).map(|s| (&s.data, &s.index)) {
        Some((SetData::Addrs(_), Some(ix))) => ix.get(super::nftables::pack(a, 0, 0)).is_some(),
        Some((&SetData::Affinity { list, timeout }, _)) => {
            let now = env.now.total_micros();
            env.affinity
                .get_mut(list as usize)
                .is_some_and(|t| t.nft_lookup(u32::from(a), now, timeout))
        }
        _ => false,
    }
}

/// How one rule ended: it did not match, it ran to its end without a verdict, it gave a
/// verdict, or it ended the walk (NAT).
enum Step {
    NoMatch,
    Continue,
    Verdict(Verdict),
    Done(Outcome),
}

/// Runs one rule; `counted` is set when the walk reaches the rule's counter position (after
/// its matching expressions, before its first statement).
fn run_rule(rs: &Ruleset, stmts: &[Stmt], env: &mut Env<'_>, counted: &mut bool) -> Step {
    let pkt = env.pkt;
    for s in stmts {
        if !*counted && !s.is_match() {
            *counted = !matches!(s, Stmt::DnatTo(..));
        }
        match s {
            Stmt::CtStateNew => {
                if env.ct != CtState::New {
                    return Step::NoMatch;
                }
            }
            Stmt::DaddrEq(a) => {
                if pkt.dst != *a {
                    return Step::NoMatch;
                }
            }
            Stmt::DaddrInSet(set) => {
                if !in_set(rs, env, *set, pkt.dst) {
                    return Step::NoMatch;
                }
            }
            Stmt::DaddrInCidr(net) => {
                if !net.contains_addr(&pkt.dst) {
                    return Step::NoMatch;
                }
            }
            Stmt::SaddrEq(a) => {
                if pkt.src != *a {
                    return Step::NoMatch;
                }
            }
            Stmt::SaddrCidr { net, neg } => {
                if net.contains_addr(&pkt.src) == *neg {
                    return Step::NoMatch;
                }
            }
            Stmt::SaddrInSet(set) => {
                if !in_set(rs, env, *set, pkt.src) {
                    return Step::NoMatch;
                }
            }
            Stmt::Dport(p, port) => {
                if pkt.proto != p.number() || pkt.dport != *port {
                    return Step::NoMatch;
                }
            }
            Stmt::FibSaddrLocal => {
                if !env.is_local(pkt.src) {
                    return Step::NoMatch;
                }
            }
            Stmt::MarkAndZero(m) => {
                if env.mark & m != 0 {
                    return Step::NoMatch;
                }
            }
            Stmt::MarkOr(m) => env.mark |= m,
            Stmt::MarkXor(m) => env.mark ^= m,
            Stmt::UpdateSet(set) => {
                if let Some(&SetData::Affinity { list, .. }) =
                    rs.sets.get(*set as usize).map(|s| &s.data)
                {
                    let now = env.now.total_micros();
                    if let Some(t) = env.affinity.get_mut(list as usize) {
                        t.nft_update(u32::from(pkt.src), now);
                    }
                }
            }
            Stmt::VmapDest(set) => {
                let found = rs
                    .sets
                    .get(*set as usize)
                    .and_then(|s| s.index.as_ref())
                    .and_then(|ix| ix.get(super::nftables::pack(pkt.dst, pkt.proto, pkt.dport)));
                return found.map_or(Step::NoMatch, |e| Step::Verdict(e.verdict));
            }
            Stmt::VmapPort(set) => {
                let found = match rs.sets.get(*set as usize).map(|s| &s.data) {
                    Some(SetData::PortMap(m)) => m.get(&(pkt.proto, pkt.dport)),
                    _ => None,
                };
                return found.map_or(Step::NoMatch, |e| Step::Verdict(e.verdict));
            }
            Stmt::NumgenVmap(targets) => {
                if env.rng.is_none() || targets.is_empty() {
                    return Step::NoMatch;
                }
                let r = u64::from(env.random_u32());
                let i = ((r * targets.len() as u64) >> 32) as usize;
                return Step::Verdict(Verdict::Goto(targets[i]));
            }
            Stmt::Verdict(v) => return Step::Verdict(*v),
            Stmt::Masquerade => return Step::Done(Outcome::Masquerade { random_fully: true }),
            Stmt::DnatTo(p, ip, port) => {
                // `meta l4proto P` (a match), then the `dnat to` statement.
                if pkt.proto != p.number() {
                    return Step::NoMatch;
                }
                *counted = true;
                return Step::Done(Outcome::Dnat(*ip, *port));
            }
        }
    }
    *counted = true;
    Step::Continue
}

/// Walks base chain `start`, counting on `counters` (one list per chain, one counter per rule).
pub(crate) fn walk(
    rs: &Ruleset,
    start: ChainId,
    env: &mut Env<'_>,
    mut record: Option<&mut Vec<String>>,
    services: &[ServicePort],
    counters: &mut [Vec<Counter>],
) -> Outcome {
    let mut stack = [(0 as ChainId, 0u32); MAX_DEPTH];
    let mut depth = 0;
    let (mut chain, mut next) = (start, 0u32);
    loop {
        let Some(rule) = rs.chains[chain as usize].rules.get(next as usize) else {
            if depth == 0 {
                return Outcome::Accept;
            }
            depth -= 1;
            (chain, next) = stack[depth];
            continue;
        };
        next += 1;
        env.walked += 1;
        let mut counted = false;
        let step = run_rule(rs, &rule.stmts, env, &mut counted);
        if counted {
            if let Some(n) = counters
                .get_mut(chain as usize)
                .and_then(|c| c.get_mut(next as usize - 1))
            {
                n.add(env.pkt.len);
            }
        }
        if matches!(step, Step::NoMatch) {
            continue;
        }
        if let Some(lines) = record.as_deref_mut() {
            let mut line = String::from("add rule ip kube-proxy ");
            line.push_str(&rs.chains[chain as usize].name);
            line.push(' ');
            nft_text::rule_text(&mut line, rs, rule, services, None);
            lines.push(line);
        }
        match step {
            Step::NoMatch | Step::Continue => {}
            Step::Done(out) => return out,
            Step::Verdict(v) => match v {
                Verdict::Jump(to) => {
                    if depth == MAX_DEPTH {
                        return Outcome::Drop;
                    }
                    stack[depth] = (chain, next);
                    depth += 1;
                    (chain, next) = (to, 0);
                }
                Verdict::Goto(to) => (chain, next) = (to, 0),
                Verdict::Return => {
                    if depth == 0 {
                        return Outcome::Accept;
                    }
                    depth -= 1;
                    (chain, next) = stack[depth];
                }
                Verdict::Drop => return Outcome::Drop,
                Verdict::Reject => return Outcome::Reject,
            },
        }
    }
}
