//! Rulesets as text: iptables-save and `nft list` parsing, the harness rules that force the
//! kernel onto podnet's random choices, and per-rule packet counters.

use std::collections::BTreeMap;

use podnet::conntrack::Tuple;

use crate::plan::{Choice, RuleHit};

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

/// Match expressions for one tuple: iptables.
fn ipt_match(t: &Tuple) -> Option<String> {
    let p = match t.proto {
        6 => "tcp",
        17 => "udp",
        _ => return None,
    };
    Some(format!(
        "-s {}/32 -d {}/32 -p {p} -m {p} --sport {} --dport {}",
        t.src, t.dst, t.sport, t.dport
    ))
}

/// Match expressions for one tuple: nftables.
fn nft_match(t: &Tuple) -> Option<String> {
    let p = match t.proto {
        6 => "tcp",
        17 => "udp",
        _ => return None,
    };
    Some(format!(
        "ip saddr {} ip daddr {} {p} sport {} {p} dport {}",
        t.src, t.dst, t.sport, t.dport
    ))
}

/// A rule that stands in, for one connection, for the rule podnet matched by chance.
#[derive(Clone, Debug)]
pub struct Harness {
    /// Its number (in its comment).
    pub id: usize,
    /// (table, chain, body) of the rule whose counters it takes.
    pub stands_for: (String, String, String),
    /// The iptables table (`nat`); empty for nft.
    pub table: String,
    /// The rule: an `iptables-restore --noflush` line (`-I CHAIN N ...`) or an `nft -f` line.
    pub line: String,
    /// Which tool loads it.
    pub nft: bool,
}

/// Builds harness rules, keeping track of where earlier ones went.
#[derive(Debug, Default)]
pub struct HarnessBuilder {
    ipt: IptRules,
    /// (table, chain) -> base positions of the harness rules inserted so far.
    inserted: BTreeMap<(String, String), Vec<usize>>,
    /// nft (chain, rule body) -> handle.
    nft_handles: BTreeMap<(String, String), u64>,
    next: usize,
    /// Choices that could not be forced (protocol without ports), with why.
    pub unforced: Vec<String>,
}

impl HarnessBuilder {
    /// For a node whose iptables rules are `ipt_text` and whose `nft -a list table ip
    /// kube-proxy` is `nft_handles_text` (empty in iptables mode).
    pub fn new(ipt_text: &str, nft_handles_text: &str) -> HarnessBuilder {
        HarnessBuilder {
            ipt: IptRules::parse(ipt_text),
            nft_handles: parse_nft_handles(nft_handles_text),
            ..HarnessBuilder::default()
        }
    }

    /// The harness rule for one choice.
    pub fn rule(&mut self, c: &Choice) -> Option<Harness> {
        let id = self.next;
        let tag = format!("{HARNESS_TAG}{id}");
        let h = match c {
            Choice::IptJump {
                table,
                chain,
                rule,
                target,
                tuple,
            } => {
                let rules = self.ipt.chain(table, chain);
                let base = rules.iter().position(|r| r.contains("-m statistic"))? + 1;
                let m = self.ipt_match_or_note(tuple, c)?;
                let pos = self.position(table, chain, base);
                Harness {
                    id,
                    stands_for: (table.clone(), chain.clone(), rule.clone()),
                    table: table.clone(),
                    line: format!(
                        "-I {chain} {pos} {m} -m comment --comment \"{tag}\" -j {target}"
                    ),
                    nft: false,
                }
            }
            Choice::IptMasq {
                table,
                chain,
                rule,
                tuple,
                to,
            } => {
                let rules = self.ipt.chain(table, chain);
                let base = rules.iter().position(|r| r == rule)? + 1;
                let m = self.ipt_match_or_note(tuple, c)?;
                let pos = self.position(table, chain, base);
                Harness {
                    id,
                    stands_for: (table.clone(), chain.clone(), rule.clone()),
                    table: table.clone(),
                    line: format!(
                        "-I {chain} {pos} {m} -m comment --comment \"{tag}\" -j SNAT --to-source {}:{}",
                        to.0, to.1
                    ),
                    nft: false,
                }
            }
            Choice::NftGoto {
                chain,
                rule,
                target,
                tuple,
            } => {
                let handle = *self.nft_handles.get(&(chain.clone(), rule.clone()))?;
                let Some(m) = nft_match(tuple) else {
                    self.unforced.push(format!(
                        "{c:?}: no ports to match (protocol {})",
                        tuple.proto
                    ));
                    return None;
                };
                Harness {
                    id,
                    stands_for: ("nat".into(), chain.clone(), rule.clone()),
                    table: String::new(),
                    line: format!(
                        "insert rule ip kube-proxy {chain} position {handle} {m} counter goto {target} comment \"{tag}\""
                    ),
                    nft: true,
                }
            }
            Choice::NftMasq {
                chain,
                rule,
                tuple,
                to,
            } => {
                let handle = *self.nft_handles.get(&(chain.clone(), rule.clone()))?;
                let Some(m) = nft_match(tuple) else {
                    self.unforced.push(format!(
                        "{c:?}: no ports to match (protocol {})",
                        tuple.proto
                    ));
                    return None;
                };
                Harness {
                    id,
                    stands_for: ("nat".into(), chain.clone(), rule.clone()),
                    table: String::new(),
                    line: format!(
                        "insert rule ip kube-proxy {chain} position {handle} {m} counter snat to {}:{} comment \"{tag}\"",
                        to.0, to.1
                    ),
                    nft: true,
                }
            }
        };
        self.next += 1;
        Some(h)
    }

    fn ipt_match_or_note(&mut self, t: &Tuple, c: &Choice) -> Option<String> {
        let m = ipt_match(t);
        if m.is_none() {
            self.unforced
                .push(format!("{c:?}: no ports to match (protocol {})", t.proto));
        }
        m
    }

    /// Where to insert (1-based, `-I CHAIN N`) so that the rule lands just before the rule at
    /// `base` of the original chain, before harness rules inserted there earlier.
    fn position(&mut self, table: &str, chain: &str, base: usize) -> usize {
        let list = self
            .inserted
            .entry((table.to_string(), chain.to_string()))
            .or_default();
        let before = list.iter().filter(|b| **b < base).count();
        list.push(base);
        base + before
    }
}

/// `nft -a list table ...` -> (chain, rule body) -> handle.
pub fn parse_nft_handles(text: &str) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    let mut chain: Option<String> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("chain ") {
            chain = rest.split_whitespace().next().map(str::to_string);
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
            out.entry((c.clone(), body.trim().to_string())).or_insert(h);
        }
    }
    out
}

/// podnet's per-rule packet counts from its trace: (table, chain, body) -> packets.
pub fn podnet_counts(hits: impl Iterator<Item = RuleHit>) -> BTreeMap<RuleHit, u64> {
    let mut m = BTreeMap::new();
    for h in hits {
        *m.entry(h).or_insert(0) += 1;
    }
    m
}

/// The kernel's per-rule packet counts from `iptables-save -c`, harness rules folded into the
/// rule they stand for: (table, chain, body) -> packets.
pub fn kernel_ipt_counts(save_c: &str, harness: &[Harness]) -> BTreeMap<RuleHit, u64> {
    let mut m: BTreeMap<RuleHit, u64> = BTreeMap::new();
    let mut table = String::new();
    for line in save_c.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
            continue;
        }
        if !line.starts_with('[') {
            continue;
        }
        let Some((counts, rest)) = line[1..].split_once("] ") else {
            continue;
        };
        let packets: u64 = counts
            .split(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let Some(rest) = rest.strip_prefix("-A ") else {
            continue;
        };
        let (chain, body) = rest.split_once(' ').unwrap_or((rest, ""));
        if let Some(id) = harness_id(body) {
            if let Some(h) = harness.iter().find(|h| h.id == id) {
                *m.entry(h.stands_for.clone()).or_insert(0) += packets;
            }
            continue;
        }
        *m.entry((table.clone(), chain.to_string(), body.to_string()))
            .or_insert(0) += packets;
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

/// `nft list` text without harness rules, blank lines and handles; for comparison.
pub fn normalize_nft(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| harness_id(l).is_none())
        .map(|l| match l.rsplit_once(" # handle ") {
            Some((b, _)) => b.to_string(),
            None => l.to_string(),
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

/// Loads harness rules in one go per tool: an `iptables-restore --noflush` input and an
/// `nft -f` input.
pub fn harness_inputs(hs: &[&Harness]) -> (String, String) {
    let mut ipt = String::new();
    let mut tables: Vec<&str> = hs
        .iter()
        .filter(|h| !h.nft)
        .map(|h| h.table.as_str())
        .collect();
    tables.sort_unstable();
    tables.dedup();
    for t in tables {
        ipt += &format!("*{t}\n");
        for h in hs.iter().filter(|h| !h.nft && h.table == t) {
            ipt += &h.line;
            ipt.push('\n');
        }
        ipt += "COMMIT\n";
    }
    let mut nft = String::new();
    for h in hs.iter().filter(|h| h.nft) {
        nft += &h.line;
        nft.push('\n');
    }
    (ipt, nft)
}
