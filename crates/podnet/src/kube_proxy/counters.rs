//! Per-rule packet and byte counters, kept the way the kernel keeps them.
//!
//! iptables (`ipt_do_table` in `net/ipv4/netfilter/ip_tables.c`): once a rule's IP part and
//! every match accept the packet, `ADD_COUNTER(counters, skb->len, 1)` runs on that rule,
//! before its target is looked at. So a rule counts the packets it *matched*, whatever its
//! target (a jump, `RETURN`, `MARK`, `DNAT`, ...); a rule whose match failed (a
//! `-m statistic --mode random` draw that lost, a `-m recent --rcheck` miss) counts nothing.
//! The end of a built-in chain, and `RETURN` with an empty jump stack, go to the chain's
//! *underflow* entry, an unconditional rule carrying the policy: it matches and counts too,
//! and those are the `[packets:bytes]` `iptables-save -c` prints after the policy. The end of
//! a user chain is an unconditional `RETURN` entry that counts as well but is never printed
//! (`iptables-save` shows user chains as `[0:0]`). Bytes are `skb->len`: for IPv4 at these
//! hooks, the IP datagram's total length.
//!
//! Which packets reach a table is up to the hooks: `filter` sees every packet that reaches
//! INPUT, FORWARD or OUTPUT; `nat` sees only the first packet of a connection (the NAT
//! binding is set up then, and `nf_nat_inet_fn` skips the table for the packets after it).
//!
//! nftables: kube-proxy's `table ip kube-proxy` has no `counter` statement. The counters kept
//! for it are what a `counter` statement would count if it stood in each rule right after the
//! rule's matching expressions, before its first statement (the verdict, `vmap` lookup,
//! `dnat`, `meta mark set`, `update`): the packets for which every expression before it
//! matched. For a verdict-map rule that is every packet that reached the lookup, found an
//! element or not, since a `counter` cannot stand inside the lookup.

use alloc::string::String;
use alloc::vec::Vec;

use super::iptables::Table;

/// A packet and byte count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes (the IP total length of each packet as it was at the hook).
    pub bytes: u64,
}

impl Counter {
    /// Counts one packet of `len` bytes.
    #[inline]
    pub(crate) fn add(&mut self, len: u16) {
        self.packets += 1;
        self.bytes += u64::from(len);
    }
}

/// The table a [`RuleCounters`] entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CounterTable {
    /// iptables `filter` (`iptables-save -c -t filter`).
    Filter,
    /// iptables `nat` (`iptables-save -c -t nat`).
    Nat,
    /// nftables `table ip kube-proxy` (`nft list table ip kube-proxy`, nftables mode only).
    NftKubeProxy,
}

impl CounterTable {
    /// The table's name as the tools print it: `filter`, `nat`, `kube-proxy`.
    pub fn name(self) -> &'static str {
        match self {
            CounterTable::Filter => "filter",
            CounterTable::Nat => "nat",
            CounterTable::NftKubeProxy => "kube-proxy",
        }
    }
}

/// One rule's counters, or a built-in chain policy's, for comparing rule by rule with
/// `iptables-save -c` or `nft list ruleset` (with counters) of a real kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCounters {
    /// The table.
    pub table: CounterTable,
    /// The chain's name.
    pub chain: String,
    /// The rule's 0-based position in its chain, in listing order (`iptables -L
    /// --line-numbers` and `nft -a list` number from 1: add one); `None` for a built-in
    /// iptables chain's policy.
    pub index: Option<usize>,
    /// The rule as the tool prints it without counters: `-A CHAIN ...` as `iptables-save`
    /// prints it; the rule inside its chain as `nft list` prints it; for a policy, the chain
    /// line without counters (`:PREROUTING ACCEPT`).
    pub text: String,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

/// The counters of one iptables chain: its rules' and, for a built-in chain, its policy's.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChainCounters {
    pub policy: Counter,
    pub rules: Vec<Counter>,
}

/// Zeroed counters shaped like `t`.
pub(crate) fn for_table(t: &Table) -> Vec<ChainCounters> {
    t.chains
        .iter()
        .map(|c| ChainCounters {
            policy: Counter::default(),
            rules: alloc::vec![Counter::default(); c.rules.len()],
        })
        .collect()
}

/// Counters for `new` after a sync that replaced `old`. The chains kube-proxy's
/// `iptables-restore` declares are flushed and refilled by it (a full sync), so their new
/// rules start at zero; the others (built-in chains with their jump rules, kubelet's and
/// flannel's chains) are not touched by the restore and keep their counters, matched by name,
/// as long as they hold as many rules as before.
pub(crate) fn carry(old: &Table, old_counts: &[ChainCounters], new: &Table) -> Vec<ChainCounters> {
    let mut counts = for_table(new);
    let kept = |t: &Table| {
        let mut k = alloc::vec![true; t.chains.len()];
        for &c in &t.restore_chains {
            if let Some(slot) = k.get_mut(c as usize) {
                *slot = false;
            }
        }
        k
    };
    let old_kept: Vec<usize> = kept(old)
        .iter()
        .enumerate()
        .filter_map(|(i, &k)| k.then_some(i))
        .collect();
    let new_kept = kept(new);
    for (i, chain) in new.chains.iter().enumerate() {
        if !new_kept[i] {
            continue;
        }
        let same = old_kept.iter().copied().find(|&o| {
            old.chains[o].name == chain.name && old.chains[o].rules.len() == chain.rules.len()
        });
        if let (Some(o), Some(slot)) = (same, counts.get_mut(i)) {
            if let Some(c) = old_counts.get(o) {
                *slot = c.clone();
            }
        }
    }
    counts
}
