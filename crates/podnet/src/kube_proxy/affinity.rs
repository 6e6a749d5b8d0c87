//! Session-affinity state: the `recent` match's address lists (iptables) and the dynamic
//! `affinity-*` sets (nftables), one per endpoint, keyed by client source address.
//!
//! `recent` follows `net/netfilter/xt_recent.c`: a list holds at most `ip_list_tot` (100)
//! addresses and evicts the least recently set one; `--rcheck --seconds S` matches while the
//! last `--set` is at most S seconds old, and `--reap` then drops the oldest entry if it is
//! stale. An nftables set element added by `update @set { ip saddr }` lives for the set's
//! timeout from its last update and is gone once that has passed.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use litemap::LiteMap;

/// `xt_recent`'s `ip_list_tot` module parameter default.
pub(crate) const IP_LIST_TOT: usize = 100;

/// One list / set: flat sorted maps (a `recent` list holds at most 100 addresses; less code
/// in the wasm module than two more B-tree instances).
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Source address -> (time of the last set/update in µs, LRU sequence number).
    entries: LiteMap<u32, (i64, u64)>,
    /// LRU order: sequence number -> address (`xt_recent`'s `lru_list`).
    lru: LiteMap<u64, u32>,
    seq: u64,
}

impl Table {
    fn touch(&mut self, ip: u32, now_us: i64) {
        self.seq += 1;
        if let Some((_, old_seq)) = self.entries.insert(ip, (now_us, self.seq)) {
            self.lru.remove(&old_seq);
        }
        self.lru.insert(self.seq, ip);
    }

    fn remove(&mut self, ip: u32) {
        if let Some((_, seq)) = self.entries.remove(&ip) {
            self.lru.remove(&seq);
        }
    }

    /// `-m recent --set --rsource`: always matches.
    pub fn recent_set(&mut self, ip: u32, now_us: i64) {
        if !self.entries.contains_key(&ip) && self.entries.len() >= IP_LIST_TOT {
            // recent_entry_init: the head of the LRU list makes room.
            if let Some((_, &oldest)) = self.lru.iter().next() {
                self.remove(oldest);
            }
        }
        self.touch(ip, now_us);
    }

    /// `-m recent --rcheck --seconds S --reap --rsource`.
    pub fn recent_rcheck(&mut self, ip: u32, now_us: i64, seconds: u32) -> bool {
        let Some(&(stamp, _)) = self.entries.get(&ip) else {
            return false;
        };
        let horizon = now_us - i64::from(seconds) * 1_000_000;
        // `time_after(time, stamp)` skips stale stamps.
        let hit = stamp >= horizon;
        // recent_entry_reap: the oldest entry goes if its last stamp is stale.
        if let Some((_, &oldest)) = self.lru.iter().next() {
            if self.entries.get(&oldest).is_some_and(|&(s, _)| s < horizon) {
                self.remove(oldest);
            }
        }
        hit
    }

    /// nft `update @set { ip saddr }` on a set with `timeout`.
    pub fn nft_update(&mut self, ip: u32, now_us: i64) {
        self.touch(ip, now_us);
    }

    /// nft `ip saddr @set`: present and not expired (expired elements are collected).
    pub fn nft_lookup(&mut self, ip: u32, now_us: i64, timeout_s: u32) -> bool {
        let Some(&(stamp, _)) = self.entries.get(&ip) else {
            return false;
        };
        if now_us >= stamp + i64::from(timeout_s) * 1_000_000 {
            self.remove(ip);
            return false;
        }
        true
    }

    /// Live nft elements as (address, milliseconds until expiry), by address.
    pub fn nft_elements(
        &self,
        now_us: i64,
        timeout_s: u32,
    ) -> impl Iterator<Item = (u32, u64)> + '_ {
        let timeout_us = i64::from(timeout_s) * 1_000_000;
        self.entries.iter().filter_map(move |(&ip, &(stamp, _))| {
            let left = stamp + timeout_us - now_us;
            (left > 0).then_some((ip, (left / 1000) as u64))
        })
    }

    /// Number of addresses held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The lists of the current rule set, by id; ids are assigned per sync and lists carried over
/// by name.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    names: Vec<String>,
    pub tables: Vec<Table>,
}

impl Registry {
    /// Adopts the names of a new sync (index = id), keeping the state of names that persist.
    pub fn resync(&mut self, names: Vec<String>) {
        // `extend`, not `collect` (which sorts: one more sort in the wasm module).
        let mut old: BTreeMap<String, Table> = BTreeMap::new();
        old.extend(
            core::mem::take(&mut self.names)
                .into_iter()
                .zip(core::mem::take(&mut self.tables)),
        );
        self.tables = names
            .iter()
            .map(|n| old.remove(n).unwrap_or_default())
            .collect();
        self.names = names;
    }
}
