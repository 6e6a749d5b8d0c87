//! Rulesets as text: iptables-save and `nft list` parsing, the harness rules that force the
//! kernel onto podnet's random choices, and per-rule packet counters.

mod harness;

use std::collections::BTreeMap;

pub use harness::{harness_inputs, Harness, HarnessBuilder};

/// The comment every harness rule carries, followed by its number.
pub const HARNESS_TAG: &str = "pnkd-harness-";

/// A chain's name and its rule bodies, in order.
pub type Chain = (String, Vec<String>);

/// An iptables-save text: table -> chain -> rule bodies (what follows `-A CHAIN `), in order.
#[derive(Clone, Debug, Default)]
pub struct IptRules {
    /// Tables in order, each with its chains in first-appearance order.
    pub tables: Vec<(String, Vec<Chain>)>,
}

impl IptRules {
    /// Parses `iptables-save` text (`[p:b] ` counters before rules are ignored here).
    pub fn parse(text: &str) -> IptRules {
        let mut r = IptRules::default();
        for line in text.lines() {
            let line = strip_counters(line.trim_end());
            if let Some(t) = line.strip_prefix('*') {
                r.tables.push((t.to_string(), Vec::new()));
            } else if let Some(c) = line.strip_prefix(':') {
                let name = c.split_whitespace().next().unwrap_or("").to_string();
                if let Some((_, chains)) = r.tables.last_mut() {
                    if !chains.iter().any(|(n, _)| *n == name) {
                        chains.push((name, Vec::new()));
                    }
                }
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let (chain, body) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Some((_, chains)) = r.tables.last_mut() {
                    match chains.iter_mut().find(|(n, _)| n == chain) {
                        Some((_, rules)) => rules.push(body.to_string()),
                        None => chains.push((chain.to_string(), vec![body.to_string()])),
                    }
                }
            }
        }
        r
    }

    /// The rules of `table`/`chain`.
    pub fn chain(&self, table: &str, chain: &str) -> &[String] {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .and_then(|(_, cs)| cs.iter().find(|(c, _)| c == chain))
            .map_or(&[], |(_, r)| r.as_slice())
    }
}

impl IptRules {
    /// Every (table, chain).
    pub fn chains(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.tables
            .iter()
            .flat_map(|(t, cs)| cs.iter().map(move |(c, _)| (t.clone(), c.clone())))
    }
}

/// kube-proxy's `iptables-restore --noflush` input `next` for a sync after `prev`, with the
/// chains `prev` declared and `next` does not flushed and deleted (`:CHAIN - [0:0]` and
/// `-X CHAIN` before the table's `COMMIT`, as `syncProxyRules` writes for stale chains).
/// Adds every (table, chain) whose rules it replaces to `flushed`.
pub fn restore_with_stale(
    prev: &str,
    next: &str,
    flushed: &mut std::collections::BTreeSet<(String, String)>,
) -> String {
    let declared = |text: &str| {
        let mut d: Vec<(String, String)> = Vec::new();
        let mut table = "";
        for l in text.lines() {
            if let Some(t) = l.strip_prefix('*') {
                table = t;
            } else if let Some(c) = l.strip_prefix(':') {
                let name = c.split_whitespace().next().unwrap_or("");
                d.push((table.to_string(), name.to_string()));
            }
        }
        d
    };
    let now = declared(next);
    let stale: Vec<(String, String)> = declared(prev)
        .into_iter()
        .filter(|c| !now.contains(c))
        .collect();
    flushed.extend(now.iter().cloned());
    flushed.extend(stale.iter().cloned());
    let mut out = String::new();
    let mut table = String::new();
    for l in next.lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = t.to_string();
        }
        if l == "COMMIT" {
            let gone = stale.iter().filter(|(t, _)| *t == table);
            for (_, c) in gone.clone() {
                out += &format!(":{c} - [0:0]\n");
            }
            for (_, c) in gone {
                out += &format!("-X {c}\n");
            }
        }
        out += l;
        out.push('\n');
    }
    out
}

fn strip_counters(line: &str) -> &str {
    if line.starts_with('[') {
        if let Some((_, rest)) = line.split_once("] ") {
            return rest;
        }
    }
    line
}

/// Whether `chain` of `table` in the iptables-save `text` has a `-m statistic` rule.
pub fn chain_has_statistic(text: &str, table: &str, chain: &str) -> bool {
    // Cheap pre-check before parsing.
    if !text.contains("-m statistic") {
        return false;
    }
    IptRules::parse(text)
        .chain(table, chain)
        .iter()
        .any(|r| r.contains("-m statistic"))
}

/// A rule's handle, and the handle of the rule before it in its chain (none: the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NftPlace {
    /// The rule's handle.
    pub handle: u64,
    /// The previous rule's.
    pub prev: Option<u64>,
}

impl NftPlace {
    /// The start of an nft command that puts a rule just before this one, above any rule put
    /// there before (`add ... position PREV` goes right after the previous rule; `insert`
    /// without a position goes first in the chain).
    pub fn before(&self, chain: &str) -> String {
        match self.prev {
            Some(p) => format!("add rule ip kube-proxy {chain} position {p}"),
            None => format!("insert rule ip kube-proxy {chain}"),
        }
    }
}

/// `nft -a list table ...` -> (chain, rule body) -> its place.
pub fn parse_nft_handles(text: &str) -> BTreeMap<(String, String), NftPlace> {
    let mut out = BTreeMap::new();
    let mut chain: Option<String> = None;
    let mut prev: Option<u64> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("chain ") {
            chain = rest.split_whitespace().next().map(str::to_string);
            prev = None;
            continue;
        }
        if l == "}" {
            chain = None;
            continue;
        }
        let Some(c) = &chain else { continue };
        let Some((body, handle)) = l.rsplit_once(" # handle ") else {
            continue;
        };
        if body.starts_with("type ") || body.starts_with("comment ") {
            continue;
        }
        if let Ok(h) = handle.trim().parse() {
            // Rules are loaded with counters (so that the kernel counts where podnet does);
            // podnet's trace names them without.
            let (body, _) = strip_nft_counter(body.trim());
            out.entry((c.clone(), body))
                .or_insert(NftPlace { handle: h, prev });
            prev = Some(h);
        }
    }
    out
}

/// A rule's place: (table, chain, index in the chain; `None` for a built-in chain's policy).
pub type RuleKey = (String, String, Option<usize>);

/// Packets and bytes.
pub type Count = (u64, u64);

fn add(m: &mut BTreeMap<RuleKey, Count>, k: RuleKey, c: Count) {
    let e = m.entry(k).or_default();
    e.0 += c.0;
    e.1 += c.1;
}

fn parse_count(s: &str) -> Count {
    let mut it = s.split(':');
    let p = it.next().and_then(|x| x.trim().parse().ok()).unwrap_or(0);
    let b = it.next().and_then(|x| x.trim().parse().ok()).unwrap_or(0);
    (p, b)
}

/// The kernel's counters from `iptables-save -c`, harness rules folded into the rule they
/// stand for (`ipt` is the ruleset as loaded, to find that rule's index).
pub fn kernel_ipt_counters(
    save_c: &str,
    harness: &[Harness],
    ipt: &IptRules,
) -> BTreeMap<RuleKey, Count> {
    let mut m = BTreeMap::new();
    let mut table = String::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for line in save_c.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
            index.clear();
            continue;
        }
        if let Some(c) = line.strip_prefix(':') {
            // `:PREROUTING ACCEPT [p:b]` (user chains: `- [0:0]`, no policy).
            let mut w = c.split_whitespace();
            let (Some(chain), Some(policy)) = (w.next(), w.next()) else {
                continue;
            };
            if policy != "-" {
                if let Some((_, cnt)) = c.rsplit_once('[') {
                    let cnt = cnt.trim_end_matches(']');
                    add(
                        &mut m,
                        (table.clone(), chain.to_string(), None),
                        parse_count(cnt),
                    );
                }
            }
            continue;
        }
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let Some((cnt, rest)) = rest.split_once("] ") else {
            continue;
        };
        let Some(rest) = rest.strip_prefix("-A ") else {
            continue;
        };
        let (chain, body) = rest.split_once(' ').unwrap_or((rest, ""));
        let c = parse_count(cnt);
        if let Some(id) = harness_id(body) {
            if let Some(Some((t, ch, b))) =
                harness.iter().find(|h| h.id == id).map(|h| &h.stands_for)
            {
                if b.is_empty() {
                    // Standing for the chain's policy.
                    add(&mut m, (t.clone(), ch.clone(), None), c);
                } else if let Some(i) = ipt.chain(t, ch).iter().position(|r| r == b) {
                    add(&mut m, (t.clone(), ch.clone(), Some(i)), c);
                }
            }
            continue;
        }
        let i = index.entry(chain.to_string()).or_default();
        add(&mut m, (table.clone(), chain.to_string(), Some(*i)), c);
        *i += 1;
    }
    m
}

/// An `nft list table` text: chain -> rule lines, in order (sets, maps and chain headers
/// left out).
pub fn nft_chains(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_chain = false;
    let mut depth = 0usize;
    for line in text.lines() {
        let l = line.trim();
        if depth == 1 {
            if let Some(rest) = l.strip_prefix("chain ") {
                let name = rest.trim_end_matches('{').trim().to_string();
                out.push((name, Vec::new()));
                in_chain = true;
            } else {
                in_chain = false;
            }
        }
        let opens = l.ends_with('{');
        if l == "}" {
            depth = depth.saturating_sub(1);
            if depth <= 1 {
                in_chain = false;
            }
            continue;
        }
        if opens {
            depth += 1;
            continue;
        }
        if in_chain && depth == 2 && !l.is_empty() {
            if l.starts_with("type ") || l.starts_with("comment \"") || l.starts_with("policy ") {
                continue;
            }
            if let Some((_, rules)) = out.last_mut() {
                rules.push(l.to_string());
            }
        }
    }
    out
}

/// A rule line without its `counter packets N bytes M` (and the count).
pub fn strip_nft_counter(rule: &str) -> (String, Option<Count>) {
    let Some(i) = rule.find("counter packets ") else {
        return (rule.to_string(), None);
    };
    let after = &rule[i + "counter packets ".len()..];
    let w: Vec<&str> = after.splitn(4, ' ').collect();
    let p = w.first().and_then(|x| x.parse().ok()).unwrap_or(0);
    let b = w.get(2).and_then(|x| x.parse().ok()).unwrap_or(0);
    let rest = w.get(3).copied().unwrap_or("");
    let mut text = rule[..i].to_string();
    text.push_str(rest);
    (text.trim().to_string(), Some((p, b)))
}

/// The kernel's counters from `nft list table ip kube-proxy`, harness rules folded into the
/// rule they stand for (`plain` is podnet's listing without counters, to find its index).
pub fn kernel_nft_counters(
    listing: &str,
    harness: &[Harness],
    plain: &str,
) -> BTreeMap<RuleKey, Count> {
    let plain = nft_chains(plain);
    let mut m = BTreeMap::new();
    for (chain, rules) in nft_chains(listing) {
        let mut i = 0;
        for r in rules {
            let (_, c) = strip_nft_counter(&r);
            if let Some(id) = harness_id(&r) {
                let stand = harness
                    .iter()
                    .find(|h| h.id == id)
                    .and_then(|h| h.stands_for.as_ref());
                if let (Some((_, ch, body)), Some(c)) = (stand, c) {
                    let idx = plain
                        .iter()
                        .find(|(n, _)| n == ch)
                        .and_then(|(_, rs)| rs.iter().position(|x| x == body));
                    if let Some(idx) = idx {
                        add(&mut m, ("kube-proxy".into(), ch.clone(), Some(idx)), c);
                    }
                }
                continue;
            }
            if let Some(c) = c {
                add(&mut m, ("kube-proxy".into(), chain.clone(), Some(i)), c);
            }
            i += 1;
        }
    }
    m
}

/// The harness number in a rule's comment.
pub fn harness_id(rule: &str) -> Option<usize> {
    let (_, rest) = rule.split_once(HARNESS_TAG)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `iptables-save` text without comment lines, counters and harness rules; for comparison.
pub fn normalize_ipt(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let l = strip_counters(l);
            // Chain policy counters `:INPUT ACCEPT [0:0]`.
            match l.strip_prefix(':') {
                Some(c) => match c.rsplit_once(" [") {
                    Some((head, _)) => format!(":{head}"),
                    None => l.to_string(),
                },
                None => l.to_string(),
            }
        })
        .filter(|l| harness_id(l).is_none())
        .collect()
}

/// The nftables text podnet generated, made loadable by this machine's nft: 1.0.6 rejects the
/// `dstnat` priority keyword at the output hook, so it becomes its number (-100), as nft
/// lists it back.
pub fn nft_loadable(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.contains("hook output priority dstnat") {
                l.replace("priority dstnat", "priority -100")
                    .replace("-100 - 10", "-110")
                    .replace("-100 + 10", "-90")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `nft list` text without harness rules, blank lines, handles and counter statements; for
/// comparison.
pub fn normalize_nft(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| harness_id(l).is_none())
        .map(|l| {
            let l = match l.rsplit_once(" # handle ") {
                Some((b, _)) => b,
                None => l,
            };
            let indent: String = l.chars().take_while(|c| c.is_whitespace()).collect();
            let (t, _) = strip_nft_counter(l.trim());
            format!("{indent}{t}")
        })
        .collect()
}

/// The lines of `a` not in `b` and of `b` not in `a`, in order (a multiset difference).
pub fn line_diff(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let mut bb: BTreeMap<&str, usize> = BTreeMap::new();
    for l in b {
        *bb.entry(l.as_str()).or_default() += 1;
    }
    let mut only_a = Vec::new();
    for l in a {
        match bb.get_mut(l.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => only_a.push(l.clone()),
        }
    }
    let mut aa: BTreeMap<&str, usize> = BTreeMap::new();
    for l in a {
        *aa.entry(l.as_str()).or_default() += 1;
    }
    let mut only_b = Vec::new();
    for l in b {
        match aa.get_mut(l.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => only_b.push(l.clone()),
        }
    }
    (only_a, only_b)
}

#[cfg(test)]
mod tests {
    use super::harness::{ipt_match, nft_match};
    use super::*;
    use crate::plan::Choice;
    use podnet::conntrack::Tuple;
    use smoltcp::wire::Ipv4Address;

    const SAVE: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-X - [0:0]\n\
-A PREROUTING -j KUBE-SERVICES\n\
-A KUBE-SVC-X ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ\n\
-A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A\n\
-A KUBE-SVC-X -j KUBE-SEP-B\nCOMMIT\n";

    fn tuple(sport: u16) -> Tuple {
        Tuple {
            src: Ipv4Address::new(10, 244, 0, 5),
            dst: Ipv4Address::new(10, 96, 0, 10),
            sport,
            dport: 80,
            proto: 6,
        }
    }

    #[test]
    fn harness_rules_go_before_the_first_statistic_rule_newest_first() {
        let mut hb = HarnessBuilder::new(SAVE, "");
        let c = |sport, target: &str, rule: &str| Choice::IptJump {
            table: "nat".into(),
            chain: "KUBE-SVC-X".into(),
            rule: rule.into(),
            target: target.into(),
            tuple: tuple(sport),
            seq: None,
        };
        let a = hb.rule(&c(1000, "KUBE-SEP-B", "-j KUBE-SEP-B")).unwrap();
        let b = hb
            .rule(&c(
                1001,
                "KUBE-SEP-A",
                "-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A",
            ))
            .unwrap();
        assert!(a.line.starts_with("-I KUBE-SVC-X 2 -s 10.244.0.5/32 -d 10.96.0.10/32 -p tcp -m tcp --sport 1000 --dport 80"));
        assert!(a
            .line
            .ends_with("-m comment --comment \"pnkd-harness-0\" -j KUBE-SEP-B"));
        assert!(b.line.starts_with("-I KUBE-SVC-X 2 "), "{}", b.line);
        let (ipt, nft) = harness_inputs(&[&a, &b]);
        assert!(ipt.starts_with("*nat\n-I KUBE-SVC-X 2 ") && ipt.ends_with("COMMIT\n"));
        assert!(nft.is_empty());
    }

    #[test]
    fn forced_rules_match_the_first_packet_by_its_sequence_and_echoes_by_id() {
        let m = ipt_match(&tuple(1000), Some(0x1234)).unwrap();
        assert!(
            m.ends_with(" -m u32 --u32 \"0x0>>0x16&0x3c@0x4=0x1234\""),
            "{m}"
        );
        assert!(nft_match(&tuple(1000), Some(7))
            .unwrap()
            .ends_with(" tcp sequence 7"));
        let echo = Tuple {
            proto: 1,
            sport: 0x4d2,
            dport: 8 << 8,
            ..tuple(0)
        };
        assert!(ipt_match(&echo, None)
            .unwrap()
            .ends_with("@0x4>>0x10=0x4d2\""));
        assert!(nft_match(&echo, None).unwrap().ends_with("icmp id 1234"));
    }

    #[test]
    fn kernel_counters_fold_harness_rules_into_the_rule_they_stand_for() {
        let mut hb = HarnessBuilder::new(SAVE, "");
        let h = hb
            .rule(&Choice::IptJump {
                table: "nat".into(),
                chain: "KUBE-SVC-X".into(),
                rule: "-j KUBE-SEP-B".into(),
                target: "KUBE-SEP-B".into(),
                tuple: tuple(1000),
                seq: None,
            })
            .unwrap();
        let save_c = "*nat\n:PREROUTING ACCEPT [3:180]\n:KUBE-SVC-X - [0:0]\n\
[3:180] -A PREROUTING -j KUBE-SERVICES\n\
[0:0] -A KUBE-SVC-X ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ\n\
[1:60] -A KUBE-SVC-X -s 10.244.0.5/32 -m comment --comment \"pnkd-harness-0\" -j KUBE-SEP-B\n\
[1:60] -A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A\n\
[1:60] -A KUBE-SVC-X -j KUBE-SEP-B\nCOMMIT\n";
        let m = kernel_ipt_counters(save_c, &[h], &IptRules::parse(SAVE));
        let k = |c: &str, i| m.get(&("nat".to_string(), c.to_string(), i)).copied();
        assert_eq!(k("PREROUTING", None), Some((3, 180)));
        assert_eq!(k("PREROUTING", Some(0)), Some((3, 180)));
        assert_eq!(k("KUBE-SVC-X", Some(1)), Some((1, 60)));
        assert_eq!(k("KUBE-SVC-X", Some(2)), Some((2, 120)));
    }

    #[test]
    fn nft_listing_chains_counters_and_handles() {
        let listing = "table ip kube-proxy {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n\n\tchain c {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tcounter packets 3 bytes 180 jump services # handle 7\n\t\tnumgen random mod 2 vmap { 0 : goto e0, 1 : goto e1 } # handle 8\n\t}\n}\n";
        let chains = nft_chains(listing);
        assert_eq!(chains.len(), 1);
        assert_eq!(chains[0].1.len(), 2);
        let (text, c) = strip_nft_counter(&chains[0].1[0]);
        assert_eq!(c, Some((3, 180)));
        assert_eq!(text, "jump services # handle 7");
        let h = parse_nft_handles(listing);
        let first = h.get(&("c".into(), "jump services".into())).copied();
        assert_eq!(
            first,
            Some(NftPlace {
                handle: 7,
                prev: None
            })
        );
        let numgen = h
            .get(&(
                "c".into(),
                "numgen random mod 2 vmap { 0 : goto e0, 1 : goto e1 }".into(),
            ))
            .copied();
        assert_eq!(
            numgen,
            Some(NftPlace {
                handle: 8,
                prev: Some(7)
            })
        );
        assert_eq!(
            numgen.unwrap().before("c"),
            "add rule ip kube-proxy c position 7"
        );
        assert_eq!(first.unwrap().before("c"), "insert rule ip kube-proxy c");
    }

    #[test]
    fn nft_text_is_made_loadable_for_nft_1_0_6() {
        let t = "\t\ttype filter hook output priority dstnat - 10; policy accept;\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n";
        let l = nft_loadable(t);
        assert!(l.contains("hook output priority -110;"), "{l}");
        assert!(l.contains("hook prerouting priority dstnat;"), "{l}");
    }
    #[test]
    fn a_resync_deletes_the_chains_it_no_longer_writes() {
        let prev = "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-OLD - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-OLD\nCOMMIT\n";
        let next = "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-NEW - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-NEW\nCOMMIT\n";
        let mut flushed = std::collections::BTreeSet::new();
        let input = super::restore_with_stale(prev, next, &mut flushed);
        assert_eq!(
            input,
            "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-NEW - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-NEW\n:KUBE-SEP-OLD - [0:0]\n-X KUBE-SEP-OLD\nCOMMIT\n"
        );
        let names: Vec<&str> = flushed.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "KUBE-SERVICES",
                "KUBE-SEP-NEW",
                "KUBE-SEP-OLD",
                "KUBE-SVC-A"
            ]
        );
    }
}
