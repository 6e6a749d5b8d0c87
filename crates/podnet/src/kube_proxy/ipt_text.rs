//! Text renderings of the iptables rules.
//!
//! `iptables-save`: what the kernel hands back, printed by iptables 1.8 — builtin chains then
//! user chains sorted by name, each rule as `-A CHAIN`, the IP part (`[!] -s a/len`,
//! `[!] -d a/len`, `-p proto`), the matches in order with their `save` functions
//! (`libxt_comment`: `xtables_save_string` quoting; `libxt_statistic`: `--probability %.11f`
//! of the 31-bit fixed point; `libxt_recent`: `--rcheck --seconds S --reap --name N --mask
//! 255.255.255.255 --rsource`; `libxt_mark`, `libxt_conntrack`, `libxt_addrtype`), then the
//! target (`MARK --set-xmark v/m`, `REJECT --reject-with icmp-port-unreachable`,
//! `DNAT --to-destination`, `MASQUERADE --random-fully`).
//!
//! `iptables-restore` input: the lines `syncProxyRules` writes (`kubernetes/pkg/proxy/
//! iptables/proxier.go`), in its argument order, `%0.10f` probabilities and the Go
//! `%#08x` mark `0x00004000`.

use alloc::string::String;
use core::fmt::Write as _;

use super::counters::{ChainCounters, Counter};
use super::iptables::{ct, Arg, ChainId, Comment, Rule, Ruleset, SvcText, Table, Target};
use super::ServicePort;

/// The comment's text.
fn comment_text(c: Comment, services: &[ServicePort]) -> String {
    let (si, t) = match c {
        Comment::Text(s) => return String::from(s),
        Comment::Svc(si, t) => (si, t),
    };
    let spn = services
        .get(si as usize)
        .map(ServicePort::port_name_string)
        .unwrap_or_default();
    match t {
        SvcText::Name => spn,
        SvcText::ClusterIp => alloc::format!("{spn} cluster IP"),
        SvcText::Endpoint(ip, port) => alloc::format!("{spn} -> {ip}:{port}"),
        SvcText::NoEndpoints => alloc::format!("{spn} has no endpoints"),
        SvcText::NoLocalEndpoints => alloc::format!("{spn} has no local endpoints"),
        SvcText::MasqExternal => {
            alloc::format!("masquerade traffic for {spn} external destinations")
        }
        SvcText::PodExternal => alloc::format!("pod traffic for {spn} external destinations"),
        SvcText::MasqLocalExternal => {
            alloc::format!("masquerade LOCAL traffic for {spn} external destinations")
        }
        SvcText::RouteLocalExternal => {
            alloc::format!("route LOCAL traffic for {spn} external destinations")
        }
    }
}

/// `xtables_save_string`: bare when only `[_0-9A-Za-z-]`, else double-quoted with `"`, `\`
/// and `'` escaped.
fn save_string(out: &mut String, s: &str) {
    out.push(' ');
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        out.push_str(s);
        return;
    }
    out.push('"');
    for ch in s.chars() {
        if matches!(ch, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

fn ctstate(out: &mut String, states: u8) {
    let mut sep = " ";
    for (bit, name) in [
        (ct::INVALID, "INVALID"),
        (ct::NEW, "NEW"),
        (ct::RELATED, "RELATED"),
        (ct::ESTABLISHED, "ESTABLISHED"),
        (ct::DNAT, "DNAT"),
    ] {
        if states & bit != 0 {
            out.push_str(sep);
            out.push_str(name);
            sep = ",";
        }
    }
}

fn chain_name(t: &Table, c: ChainId) -> &str {
    t.chains.get(c as usize).map_or("", |c| c.name.as_str())
}

/// One rule as `iptables-save` prints it (no newline).
pub(crate) fn save_rule(
    out: &mut String,
    t: &Table,
    chain: ChainId,
    rule: &Rule,
    services: &[ServicePort],
) {
    out.push_str("-A ");
    out.push_str(chain_name(t, chain));
    for a in &rule.args {
        if let Arg::Src(addr) = a {
            let _ = write!(out, "{} -s {}", if addr.neg { " !" } else { "" }, addr.net);
        }
    }
    for a in &rule.args {
        if let Arg::Dst(addr) = a {
            let _ = write!(out, "{} -d {}", if addr.neg { " !" } else { "" }, addr.net);
        }
    }
    for a in &rule.args {
        if let Arg::Proto(p) = a {
            let _ = write!(out, " -p {}", p.name());
        }
    }
    for (i, a) in rule.args.iter().enumerate() {
        match *a {
            Arg::Src(_) | Arg::Dst(_) | Arg::Proto(_) | Arg::Dport(_) => {}
            Arg::Module(p) => {
                let _ = write!(out, " -m {}", p.name());
                if let Some(Arg::Dport(port)) = rule.args[i + 1..]
                    .iter()
                    .find(|a| matches!(a, Arg::Dport(_)))
                {
                    let _ = write!(out, " --dport {port}");
                }
            }
            Arg::Comment(c) => {
                out.push_str(" -m comment --comment");
                save_string(out, &comment_text(c, services));
            }
            Arg::Statistic { prob, .. } => {
                let p = f64::from(prob) / 2_147_483_648.0;
                let _ = write!(out, " -m statistic --mode random --probability {p:.11}");
            }
            Arg::RecentSet { name, .. } => {
                let _ = write!(
                    out,
                    " -m recent --set --name {} --mask 255.255.255.255 --rsource",
                    chain_name(t, name)
                );
            }
            Arg::RecentCheck { name, seconds, .. } => {
                let _ = write!(
                    out,
                    " -m recent --rcheck --seconds {seconds} --reap --name {} --mask 255.255.255.255 --rsource",
                    chain_name(t, name)
                );
            }
            Arg::AddrType { src } => {
                out.push_str(if src {
                    " -m addrtype --src-type LOCAL"
                } else {
                    " -m addrtype --dst-type LOCAL"
                });
            }
            Arg::Mark { value, mask, neg } => {
                out.push_str(" -m mark");
                if neg {
                    out.push_str(" !");
                }
                if mask == u32::MAX {
                    let _ = write!(out, " --mark 0x{value:x}");
                } else {
                    let _ = write!(out, " --mark 0x{value:x}/0x{mask:x}");
                }
            }
            Arg::CtState { states, neg } => {
                out.push_str(" -m conntrack");
                if neg {
                    out.push_str(" !");
                }
                out.push_str(" --ctstate");
                ctstate(out, states);
            }
        }
    }
    match rule.target {
        Target::Jump(c) => {
            let _ = write!(out, " -j {}", chain_name(t, c));
        }
        Target::Return => out.push_str(" -j RETURN"),
        Target::Accept => out.push_str(" -j ACCEPT"),
        Target::Drop => out.push_str(" -j DROP"),
        Target::Reject => out.push_str(" -j REJECT --reject-with icmp-port-unreachable"),
        Target::Dnat(ip, port) => {
            let _ = write!(out, " -j DNAT --to-destination {ip}:{port}");
        }
        Target::Masquerade { random_fully } => {
            out.push_str(" -j MASQUERADE");
            if random_fully {
                out.push_str(" --random-fully");
            }
        }
        Target::OrMark(m) => {
            let _ = write!(out, " -j MARK --set-xmark 0x{m:x}/0x{m:x}");
        }
        Target::XorMark(m) => {
            let _ = write!(out, " -j MARK --set-xmark 0x{m:x}/0x0");
        }
    }
}

/// The order `iptables-save` lists chains in: builtin chains in hook order, then user chains
/// sorted by name (strcmp).
pub(crate) fn save_order(t: &Table) -> alloc::vec::Vec<ChainId> {
    let mut order: alloc::vec::Vec<ChainId> = (0..t.chains.len() as ChainId).collect();
    crate::sort::sort_by(&mut order, |&a, &b| {
        let (ca, cb) = (&t.chains[a as usize], &t.chains[b as usize]);
        match (ca.builtin, cb.builtin) {
            (true, true) => a.cmp(&b),
            (true, false) => core::cmp::Ordering::Less,
            (false, true) => core::cmp::Ordering::Greater,
            (false, false) => ca.name.as_bytes().cmp(cb.name.as_bytes()),
        }
    });
    order
}

/// `iptables-save` of the filter and nat tables; with `counts` (filter's, nat's),
/// `iptables-save -c`: `[packets:bytes]` after each builtin chain's policy and before each rule.
pub(crate) fn save(
    rs: &Ruleset,
    services: &[ServicePort],
    counts: Option<[&[ChainCounters]; 2]>,
) -> String {
    let mut out = String::new();
    for (ti, (name, t)) in [("filter", &rs.filter), ("nat", &rs.nat)]
        .into_iter()
        .enumerate()
    {
        let counts = counts.map(|c| c[ti]);
        if t.chains.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{name}");
        let order = save_order(t);
        let counter = |c: ChainId, rule: Option<usize>| -> Counter {
            let Some(cc) = counts.and_then(|k| k.get(c as usize)) else {
                return Counter::default();
            };
            match rule {
                Some(i) => cc.rules.get(i).copied().unwrap_or_default(),
                None => cc.policy,
            }
        };
        for &c in &order {
            let ch = &t.chains[c as usize];
            let policy = if ch.builtin { "ACCEPT" } else { "-" };
            // User chains have no policy: iptables-save prints them as [0:0].
            let n = if ch.builtin {
                counter(c, None)
            } else {
                Counter::default()
            };
            let _ = writeln!(out, ":{} {policy} [{}:{}]", ch.name, n.packets, n.bytes);
        }
        for &c in &order {
            for (i, rule) in t.chains[c as usize].rules.iter().enumerate() {
                if counts.is_some() {
                    let n = counter(c, Some(i));
                    let _ = write!(out, "[{}:{}] ", n.packets, n.bytes);
                }
                save_rule(&mut out, t, c, rule, services);
                out.push('\n');
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// Go's `%#08x` (zero padding counts digits only).
fn go_mark(out: &mut String, m: u32) {
    let _ = write!(out, "0x{m:08x}");
}

fn restore_addr(out: &mut String, flag: &str, a: &super::iptables::Addr) {
    if a.neg {
        out.push_str(" !");
    }
    if a.bare {
        let _ = write!(out, " {flag} {}", a.net.address());
    } else {
        let _ = write!(out, " {flag} {}", a.net);
    }
}

/// One rule as kube-proxy writes it for `iptables-restore`.
fn restore_rule(
    out: &mut String,
    t: &Table,
    chain: ChainId,
    rule: &Rule,
    services: &[ServicePort],
) {
    out.push_str("-A ");
    out.push_str(chain_name(t, chain));
    for a in &rule.args {
        match *a {
            Arg::Src(ref addr) => restore_addr(out, "-s", addr),
            Arg::Dst(ref addr) => restore_addr(out, "-d", addr),
            Arg::Proto(p) => {
                let _ = write!(out, " -p {}", p.name());
            }
            Arg::Module(p) => {
                let _ = write!(out, " -m {}", p.name());
            }
            Arg::Dport(port) => {
                let _ = write!(out, " --dport {port}");
            }
            Arg::Comment(c) => {
                let text = comment_text(c, services);
                // kube-proxy quotes the comments that contain spaces.
                if text.contains(' ') {
                    let _ = write!(out, " -m comment --comment \"{text}\"");
                } else {
                    let _ = write!(out, " -m comment --comment {text}");
                }
            }
            Arg::Statistic { n, .. } => {
                let _ = write!(
                    out,
                    " -m statistic --mode random --probability {:.10}",
                    1.0 / f64::from(n)
                );
            }
            Arg::RecentSet { name, .. } => {
                let _ = write!(out, " -m recent --name {} --set", chain_name(t, name));
            }
            Arg::RecentCheck { name, seconds, .. } => {
                let _ = write!(
                    out,
                    " -m recent --name {} --rcheck --seconds {seconds} --reap",
                    chain_name(t, name)
                );
            }
            Arg::AddrType { src } => {
                out.push_str(if src {
                    " -m addrtype --src-type LOCAL"
                } else {
                    " -m addrtype --dst-type LOCAL"
                });
            }
            Arg::Mark { value, mask, neg } => {
                out.push_str(" -m mark");
                if neg {
                    out.push_str(" !");
                }
                out.push_str(" --mark ");
                go_mark(out, value);
                out.push('/');
                go_mark(out, mask);
            }
            Arg::CtState { states, neg } => {
                out.push_str(" -m conntrack");
                if neg {
                    out.push_str(" !");
                }
                out.push_str(" --ctstate");
                ctstate(out, states);
            }
        }
    }
    match rule.target {
        Target::Jump(c) => {
            let _ = write!(out, " -j {}", chain_name(t, c));
        }
        Target::Return => out.push_str(" -j RETURN"),
        Target::Accept => out.push_str(" -j ACCEPT"),
        Target::Drop => out.push_str(" -j DROP"),
        Target::Reject => out.push_str(" -j REJECT"),
        Target::Dnat(ip, port) => {
            let _ = write!(out, " -j DNAT --to-destination {ip}:{port}");
        }
        Target::Masquerade { random_fully } => {
            out.push_str(" -j MASQUERADE");
            if random_fully {
                out.push_str(" --random-fully");
            }
        }
        Target::OrMark(m) => {
            out.push_str(" -j MARK --or-mark ");
            go_mark(out, m);
        }
        Target::XorMark(m) => {
            out.push_str(" -j MARK --xor-mark ");
            go_mark(out, m);
        }
    }
}

/// kube-proxy's `iptables-restore` input.
pub(crate) fn restore(rs: &Ruleset, services: &[ServicePort]) -> String {
    let mut out = String::new();
    for (name, t) in [("filter", &rs.filter), ("nat", &rs.nat)] {
        let _ = writeln!(out, "*{name}");
        for &c in &t.restore_chains {
            let _ = writeln!(out, ":{} - [0:0]", chain_name(t, c));
        }
        for &(c, i) in &t.restore_rules {
            if let Some(rule) = t.chains[c as usize].rules.get(i as usize) {
                restore_rule(&mut out, t, c, rule, services);
                out.push('\n');
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}
