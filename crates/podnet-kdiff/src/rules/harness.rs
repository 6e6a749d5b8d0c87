//! The harness rules that force the kernel onto podnet's random choices: per connection, an
//! exact-tuple rule standing in for the rule podnet matched by chance.

use std::collections::BTreeMap;

use podnet::conntrack::Tuple;

use super::{parse_nft_handles, IptRules, NftPlace, HARNESS_TAG};
use crate::plan::Choice;

/// What a forced rule can match a tuple by.
enum Key {
    /// TCP or UDP ports (and a TCP first packet's sequence number).
    Ports(&'static str),
    /// An ICMP echo request's id (the tuple's `sport`).
    EchoId,
}

fn key(t: &Tuple) -> Option<Key> {
    match t.proto {
        6 => Some(Key::Ports("tcp")),
        17 => Some(Key::Ports("udp")),
        1 if t.dport >> 8 == 8 => Some(Key::EchoId),
        _ => None,
    }
}

/// Match expressions for one tuple: iptables (no match names an echo id or a sequence
/// number: `u32` reads them at their offsets).
pub(super) fn ipt_match(t: &Tuple, seq: Option<u32>) -> Option<String> {
    let (src, dst) = (t.src, t.dst);
    Some(match key(t)? {
        Key::EchoId => format!(
            "-s {src}/32 -d {dst}/32 -p icmp -m icmp --icmp-type 8 -m u32 --u32 \"0x0>>0x16&0x3c@0x4>>0x10={:#x}\"",
            t.sport
        ),
        Key::Ports(p) => {
            let seq = seq
                .filter(|_| p == "tcp")
                .map(|s| format!(" -m u32 --u32 \"0x0>>0x16&0x3c@0x4={s:#x}\""))
                .unwrap_or_default();
            format!(
                "-s {src}/32 -d {dst}/32 -p {p} -m {p} --sport {} --dport {}{seq}",
                t.sport, t.dport
            )
        }
    })
}

/// Match expressions for one tuple: nftables.
pub(super) fn nft_match(t: &Tuple, seq: Option<u32>) -> Option<String> {
    let (src, dst) = (t.src, t.dst);
    Some(match key(t)? {
        Key::EchoId => format!(
            "ip saddr {src} ip daddr {dst} icmp type echo-request icmp id {}",
            t.sport
        ),
        Key::Ports(p) => {
            let seq = seq
                .filter(|_| p == "tcp")
                .map(|s| format!(" tcp sequence {s}"))
                .unwrap_or_default();
            format!(
                "ip saddr {src} ip daddr {dst} {p} sport {} {p} dport {}{seq}",
                t.sport, t.dport
            )
        }
    })
}

/// A rule that stands in, for one connection, for the rule podnet matched by chance.
#[derive(Clone, Debug)]
pub struct Harness {
    /// Its number (in its comment).
    pub id: usize,
    /// (table, chain, body) of the rule whose counters it takes (`None`: a NetworkPolicy
    /// drop, which stands for no rule of podnet's).
    pub stands_for: Option<(String, String, String)>,
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
    nft_handles: BTreeMap<(String, String), NftPlace>,
    next: usize,
    policy_table: bool,
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

    /// After kube-proxy re-synced: the node's iptables rules are now `ipt_text`, its nft
    /// listing `nft_handles_text`; the harness rules in the chains of `flushed` (table,
    /// chain) went with the chain's old rules.
    pub fn resync(
        &mut self,
        ipt_text: &str,
        nft_handles_text: &str,
        flushed: &std::collections::BTreeSet<(String, String)>,
    ) {
        self.ipt = IptRules::parse(ipt_text);
        self.nft_handles = parse_nft_handles(nft_handles_text);
        self.inserted.retain(|k, _| !flushed.contains(k));
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
                seq,
            } => {
                let rules = self.ipt.chain(table, chain);
                let Some(base) = rules.iter().position(|r| r.contains("-m statistic")) else {
                    self.unforced
                        .push(format!("{c:?}: no statistic rule in {chain}"));
                    return None;
                };
                let base = base + 1;
                let m = self.ipt_match_or_note(tuple, *seq, c)?;
                let pos = self.position(table, chain, base);
                Harness {
                    id,
                    stands_for: Some((table.clone(), chain.clone(), rule.clone())),
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
                seq,
                to,
                ..
            } => {
                let rules = self.ipt.chain(table, chain);
                let Some(base) = rules.iter().position(|r| r == rule) else {
                    self.unforced
                        .push(format!("{c:?}: rule not found in {chain}"));
                    return None;
                };
                let base = base + 1;
                let m = self.ipt_match_or_note(tuple, *seq, c)?;
                let pos = self.position(table, chain, base);
                Harness {
                    id,
                    stands_for: Some((table.clone(), chain.clone(), rule.clone())),
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
                seq,
            } => {
                let Some(place) = self.nft_handles.get(&(chain.clone(), rule.clone())) else {
                    self.unforced
                        .push(format!("{c:?}: rule not found in the kernel's listing"));
                    return None;
                };
                let Some(m) = nft_match(tuple, *seq) else {
                    self.unforced.push(format!(
                        "{c:?}: no ports to match (protocol {})",
                        tuple.proto
                    ));
                    return None;
                };
                Harness {
                    id,
                    stands_for: Some(("kube-proxy".into(), chain.clone(), rule.clone())),
                    table: String::new(),
                    line: format!(
                        "{} {m} counter goto {target} comment \"{tag}\"",
                        place.before(chain)
                    ),
                    nft: true,
                }
            }
            Choice::PolicyDrop {
                hook,
                tuple,
                seq,
                reason,
            } => {
                let Some(m) = nft_match(tuple, *seq) else {
                    self.unforced.push(format!(
                        "{c:?}: no ports to match (protocol {})",
                        tuple.proto
                    ));
                    return None;
                };
                let mut line = String::new();
                if !self.policy_table {
                    self.policy_table = true;
                    line += "add table ip pnkd-policy\n";
                    for h in ["input", "forward", "output"] {
                        line += &format!(
                            "add chain ip pnkd-policy {h} {{ type filter hook {h} priority -200; policy accept; }}\n"
                        );
                    }
                }
                let why: String = reason
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || " :/-_.,".contains(*c))
                    .take(60)
                    .collect();
                line += &format!(
                    "add rule ip pnkd-policy {hook} {m} counter drop comment \"{tag} {why}\""
                );
                Harness {
                    id,
                    stands_for: None,
                    table: String::new(),
                    line,
                    nft: true,
                }
            }
            Choice::NullBinding { tuple, seq, to } => {
                let m = self.ipt_match_or_note(tuple, *seq, c)?;
                Harness {
                    id,
                    // Its counts are the packets podnet's chain let fall to its policy.
                    stands_for: Some(("nat".into(), "POSTROUTING".into(), String::new())),
                    table: "nat".into(),
                    line: format!(
                        "-A POSTROUTING {m} -m comment --comment \"{tag}\" -j SNAT --to-source {}:{}",
                        to.0, to.1
                    ),
                    nft: false,
                }
            }
            Choice::NftMasq {
                chain,
                rule,
                tuple,
                seq,
                to,
                ..
            } => {
                let Some(place) = self.nft_handles.get(&(chain.clone(), rule.clone())) else {
                    self.unforced
                        .push(format!("{c:?}: rule not found in the kernel's listing"));
                    return None;
                };
                let Some(m) = nft_match(tuple, *seq) else {
                    self.unforced.push(format!(
                        "{c:?}: no ports to match (protocol {})",
                        tuple.proto
                    ));
                    return None;
                };
                Harness {
                    id,
                    stands_for: Some(("kube-proxy".into(), chain.clone(), rule.clone())),
                    table: String::new(),
                    line: format!(
                        "{} {m} counter snat to {}:{} comment \"{tag}\"",
                        place.before(chain),
                        to.0,
                        to.1
                    ),
                    nft: true,
                }
            }
        };
        self.next += 1;
        Some(h)
    }

    fn ipt_match_or_note(&mut self, t: &Tuple, seq: Option<u32>, c: &Choice) -> Option<String> {
        let m = ipt_match(t, seq);
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
