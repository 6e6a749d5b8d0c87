//! `nft list table ip kube-proxy`, following nftables' `src/rule.c` (`table_print`,
//! `set_print_declaration`, `chain_print_declaration`, `prio2str`) and `src/expression.c`
//! (`set_expr_print` / `calculate_delim`, `set_elem_expr_print`).
//!
//! - Sets and maps first, then chains, each in creation order, separated by a blank line.
//! - Base chain priorities by name within 10 of a standard one that fits the hook
//!   (`dstnat` only at prerouting/output, `srcnat` only at input/postrouting), else numeric
//!   (current nftables; releases whose `std_prio_family_hook_compat` allows `dstnat` at
//!   prerouting only print the output-hook chains as `-110`, `-90`, `-100`).
//! - Set elements sorted as `nft` sorts them (`list_expr_sort`: by value; a concatenation's
//!   value is its bytes read as a host-endian, i.e. little-endian, integer); maps, and sets
//!   with timeouts, one element per line; address sets two per line.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use smoltcp::time::Instant;

use super::affinity;
use super::counters::Counter;
use super::nftables::{Base, Elem, Rule, Ruleset, SetData, Stmt, Verdict};
use super::ServicePort;
use crate::netfilter::Hook;

const NEWLINE_DELIM: &str = ",\n\t\t\t     ";

fn chain_name(rs: &Ruleset, c: u32) -> &str {
    rs.chains.get(c as usize).map_or("", |c| c.name.as_str())
}

fn set_name(rs: &Ruleset, s: u32) -> &str {
    rs.sets.get(s as usize).map_or("", |s| s.name.as_str())
}

fn verdict(out: &mut String, rs: &Ruleset, v: Verdict) {
    match v {
        Verdict::Jump(c) => {
            out.push_str("jump ");
            out.push_str(chain_name(rs, c));
        }
        Verdict::Goto(c) => {
            out.push_str("goto ");
            out.push_str(chain_name(rs, c));
        }
        Verdict::Return => out.push_str("return"),
        Verdict::Drop => out.push_str("drop"),
        Verdict::Reject => out.push_str("reject"),
    }
}

/// `counter packets N bytes M` (nftables' `counter_stmt_print`).
fn counter(out: &mut String, c: Counter) {
    let _ = write!(out, "counter packets {} bytes {}", c.packets, c.bytes);
}

/// One rule as `nft list` prints it inside its chain; with `count`, with a `counter` statement
/// after its matching expressions (where [`super::nft_walk`] counts).
pub(crate) fn rule_text(
    out: &mut String,
    rs: &Ruleset,
    rule: &Rule,
    _services: &[ServicePort],
    mut count: Option<Counter>,
) {
    for (i, s) in rule.stmts.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if !s.is_match() {
            if let (Some(c), false) = (count, matches!(s, Stmt::DnatTo(..))) {
                counter(out, c);
                out.push(' ');
                count = None;
            }
        }
        let _ = match s {
            Stmt::CtStateNew => write!(out, "ct state new"),
            Stmt::DaddrEq(a) => write!(out, "ip daddr {a}"),
            Stmt::DaddrInSet(set) => write!(out, "ip daddr @{}", set_name(rs, *set)),
            Stmt::DaddrInCidr(net) => write!(out, "ip daddr {net}"),
            Stmt::SaddrEq(a) => write!(out, "ip saddr {a}"),
            Stmt::SaddrCidr { net, neg } => {
                write!(out, "ip saddr {}{net}", if *neg { "!= " } else { "" })
            }
            Stmt::SaddrInSet(set) => write!(out, "ip saddr @{}", set_name(rs, *set)),
            Stmt::Dport(p, port) => write!(out, "{} dport {port}", p.name()),
            Stmt::FibSaddrLocal => write!(out, "fib saddr type local"),
            Stmt::MarkAndZero(m) => write!(out, "meta mark & 0x{m:08x} == 0x00000000"),
            Stmt::MarkOr(m) => write!(out, "meta mark set meta mark | 0x{m:08x}"),
            Stmt::MarkXor(m) => write!(out, "meta mark set meta mark ^ 0x{m:08x}"),
            Stmt::UpdateSet(set) => write!(out, "update @{} {{ ip saddr }}", set_name(rs, *set)),
            Stmt::VmapDest(set) => write!(
                out,
                "ip daddr . meta l4proto . th dport vmap @{}",
                set_name(rs, *set)
            ),
            Stmt::VmapPort(set) => {
                write!(out, "meta l4proto . th dport vmap @{}", set_name(rs, *set))
            }
            Stmt::NumgenVmap(targets) => {
                let _ = write!(out, "numgen random mod {} vmap {{ ", targets.len());
                for (i, &c) in targets.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{i} : goto {}", chain_name(rs, c));
                }
                write!(out, " }}")
            }
            Stmt::Verdict(v) => {
                verdict(out, rs, *v);
                Ok(())
            }
            Stmt::Masquerade => write!(out, "masquerade fully-random"),
            Stmt::DnatTo(p, ip, port) => {
                let _ = write!(out, "meta l4proto {} ", p.name());
                if let Some(c) = count.take() {
                    counter(out, c);
                    out.push(' ');
                }
                write!(out, "dnat to {ip}:{port}")
            }
        };
    }
    if let Some(c) = count {
        out.push(' ');
        counter(out, c);
    }
    if let Some(c) = rule.comment {
        let _ = write!(out, " comment \"{c}\"");
    }
}

/// `prio2str` for the ip family.
fn priority(out: &mut String, base: &Base) {
    const STD: [(i32, &str); 6] = [
        (-300, "raw"),
        (-150, "mangle"),
        (-100, "dstnat"),
        (0, "filter"),
        (50, "security"),
        (100, "srcnat"),
    ];
    for (std, name) in STD {
        let offset = base.priority - std;
        if offset.abs() <= 10 {
            let compat = match std {
                -100 => matches!(base.hook, Hook::Prerouting | Hook::Output),
                100 => matches!(base.hook, Hook::Input | Hook::Postrouting),
                _ => true,
            };
            if !compat {
                break;
            }
            out.push_str(name);
            if offset > 0 {
                let _ = write!(out, " + {offset}");
            } else if offset < 0 {
                let _ = write!(out, " - {}", -offset);
            }
            return;
        }
    }
    let _ = write!(out, "{}", base.priority);
}

fn hook_name(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "prerouting",
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    }
}

/// `time_print`: `1d2h3m4s5ms`, zero parts left out.
fn time(out: &mut String, mut ms: u64) {
    let days = ms / 86_400_000;
    ms %= 86_400_000;
    let hours = ms / 3_600_000;
    ms %= 3_600_000;
    let minutes = ms / 60_000;
    ms %= 60_000;
    let seconds = ms / 1000;
    ms %= 1000;
    for (v, unit) in [
        (days, "d"),
        (hours, "h"),
        (minutes, "m"),
        (seconds, "s"),
        (ms, "ms"),
    ] {
        if v > 0 {
            let _ = write!(out, "{v}{unit}");
        }
    }
}

fn elem_value(out: &mut String, rs: &Ruleset, e: &Elem, services: &[ServicePort]) {
    if let Some(svc) = e.comment.and_then(|i| services.get(i as usize)) {
        let _ = write!(out, " comment \"{}\"", svc.port_name_string());
    }
    out.push_str(" : ");
    verdict(out, rs, e.verdict);
}

/// Prints `elements = { ... }` from already-rendered elements.
fn elements(out: &mut String, items: &[String], per_line: usize) {
    if items.is_empty() {
        return;
    }
    out.push_str("\t\telements = { ");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(if i % per_line == 0 {
                NEWLINE_DELIM
            } else {
                ", "
            });
        }
        out.push_str(item);
    }
    out.push_str(" }\n");
}

/// The `nft list` text of the table.
pub(crate) fn list(
    rs: &Ruleset,
    services: &[ServicePort],
    aff: &[affinity::Table],
    now: Instant,
    counts: Option<&[Vec<Counter>]>,
) -> String {
    let mut out = String::from("table ip kube-proxy {\n\tcomment \"rules for kube-proxy\"\n");
    let mut delim = "";
    for set in &rs.sets {
        out.push_str(delim);
        delim = "\n";
        let kind = if matches!(set.data, SetData::DestMap(_) | SetData::PortMap(_)) {
            "map"
        } else {
            "set"
        };
        let _ = writeln!(out, "\t{kind} {} {{", set.name);
        let mut items: Vec<String> = Vec::new();
        let per_line = match &set.data {
            SetData::Addrs(addrs) => {
                out.push_str("\t\ttype ipv4_addr\n");
                items.extend(addrs.iter().map(|a| alloc::format!("{a}")));
                2
            }
            SetData::DestMap(m) => {
                out.push_str("\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n");
                let mut keyed: Vec<(u64, String)> = m
                    .iter()
                    .map(|(&(ip, proto, port), e)| {
                        let [a, b, c, d] = ip.octets();
                        let [ph, pl] = port.to_be_bytes();
                        let key = u64::from_le_bytes([a, b, c, d, proto, ph, pl, 0]);
                        let mut s = alloc::format!("{ip} . {} . {port}", proto_name(proto));
                        elem_value(&mut s, rs, e, services);
                        (key, s)
                    })
                    .collect();
                crate::sort::sort_by_key(&mut keyed, |(k, _)| *k);
                items.extend(keyed.into_iter().map(|(_, s)| s));
                1
            }
            SetData::PortMap(m) => {
                out.push_str("\t\ttype inet_proto . inet_service : verdict\n");
                let mut keyed: Vec<(u32, String)> = m
                    .iter()
                    .map(|(&(proto, port), e)| {
                        let [ph, pl] = port.to_be_bytes();
                        let key = u32::from_le_bytes([proto, ph, pl, 0]);
                        let mut s = alloc::format!("{} . {port}", proto_name(proto));
                        elem_value(&mut s, rs, e, services);
                        (key, s)
                    })
                    .collect();
                crate::sort::sort_by_key(&mut keyed, |(k, _)| *k);
                items.extend(keyed.into_iter().map(|(_, s)| s));
                1
            }
            &SetData::Affinity { list, timeout } => {
                out.push_str("\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout ");
                time(&mut out, u64::from(timeout) * 1000);
                out.push('\n');
                if let Some(t) = aff.get(list as usize) {
                    for (ip, left_ms) in t.nft_elements(now.total_micros(), timeout) {
                        let mut s = alloc::format!("{}", smoltcp::wire::Ipv4Address::from(ip));
                        s.push_str(" expires ");
                        time(&mut s, left_ms);
                        items.push(s);
                    }
                }
                1
            }
        };
        if let Some(c) = set.comment {
            let _ = writeln!(out, "\t\tcomment \"{c}\"");
        }
        elements(&mut out, &items, per_line);
        out.push_str("\t}\n");
    }
    for (ci, chain) in rs.chains.iter().enumerate() {
        out.push_str(delim);
        delim = "\n";
        let _ = write!(out, "\tchain {} {{", chain.name);
        if let Some(c) = chain.comment {
            let _ = write!(out, "\n\t\tcomment \"{c}\"");
        }
        out.push('\n');
        if let Some(base) = &chain.base {
            let kind = if base.nat { "nat" } else { "filter" };
            let _ = write!(
                out,
                "\t\ttype {kind} hook {} priority ",
                hook_name(base.hook)
            );
            priority(&mut out, base);
            out.push_str("; policy accept;\n");
        }
        for (ri, rule) in chain.rules.iter().enumerate() {
            out.push_str("\t\t");
            let count = counts.map(|c| {
                c.get(ci)
                    .and_then(|r| r.get(ri))
                    .copied()
                    .unwrap_or_default()
            });
            rule_text(&mut out, rs, rule, services, count);
            out.push('\n');
        }
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    out
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        _ => "unknown",
    }
}
