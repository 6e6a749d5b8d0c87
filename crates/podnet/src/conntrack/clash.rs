//! Several CPUs in one tracker, and what confirmation does when a new entry clashes with one
//! another CPU confirmed while its packet was on the way (`__nf_conntrack_confirm`,
//! `nf_ct_resolve_clash`), by kernel version ([`Kernel`]). See [`crate::race`].

use smoltcp::time::Instant;

use super::life::Gone;
use super::table::bits;
use super::{ms, proto, Conntrack, CtDrop, CtStats};

/// What confirmation did with a new entry (`__nf_conntrack_confirm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// Inserted into the hash.
    Inserted,
    /// It clashed with entry `winner`, which the packet now carries instead (its own entry
    /// is freed): a UDP clash with an entry without NAT, or with an identical one.
    Reused {
        /// The entry the packet carries now.
        winner: u32,
    },
    /// It clashed (UDP, other NAT) and was inserted by its REPLY tuple only, for 1 s, so
    /// that the answer to this packet still finds its way back (Linux 5.6+).
    ReplyOnly {
        /// The entry holding its ORIGINAL tuple.
        winner: u32,
    },
}

impl CtStats {
    /// Both counter sets added up.
    pub(super) fn plus(self, s: &CtStats) -> CtStats {
        CtStats {
            found: self.found + s.found,
            invalid: self.invalid + s.invalid,
            insert: self.insert + s.insert,
            insert_failed: self.insert_failed + s.insert_failed,
            drop: self.drop + s.drop,
            early_drop: self.early_drop + s.early_drop,
            error: self.error + s.error,
            search_restart: self.search_restart + s.search_restart,
            clash_resolve: self.clash_resolve + s.clash_resolve,
            chaintoolong: self.chaintoolong + s.chaintoolong,
        }
    }
}

impl Conntrack {
    /// Counters of each CPU.
    pub fn stats_per_cpu(&self) -> &[CtStats] {
        &self.stats
    }

    pub(super) fn st(&mut self) -> &mut CtStats {
        &mut self.stats[self.cpu]
    }

    /// Sets the number of CPUs (one `conntrack -S` line each; at least 1).
    pub fn set_cpus(&mut self, cpus: u32) {
        self.stats.resize(cpus.max(1) as usize, CtStats::default());
        self.cpu = self.cpu.min(self.stats.len() - 1);
    }

    /// The CPUs.
    pub fn cpus(&self) -> u32 {
        self.stats.len() as u32
    }

    /// The packets handled from now on run on `cpu` (their counters go there).
    pub fn on_cpu(&mut self, cpu: u32) {
        self.cpu = (cpu as usize).min(self.stats.len() - 1);
    }

    /// The packet being handled sees every entry again.
    pub fn unhide_all(&mut self) {
        self.hidden.clear();
    }

    /// The CPU of the packet being handled.
    pub fn cpu(&self) -> u32 {
        self.cpu as u32
    }

    /// Makes entry `idx` invisible to the packet being handled, until it confirms: another
    /// CPU's packet confirmed it after this packet's lookup had already begun, so neither the
    /// lookup nor NAT's search for a free tuple (`nf_nat_used_tuple`, which sees only
    /// confirmed entries) could find it. Confirmation sees it, and clashes.
    pub fn hide(&mut self, idx: u32) {
        if !self.hidden.contains(&idx) {
            self.hidden.push(idx);
        }
    }

    /// The entries hidden from the packet being handled.
    pub fn hidden(&self) -> &[u32] {
        &self.hidden
    }

    /// Confirms an entry created by this packet (`__nf_conntrack_confirm`): into the hash, or
    /// a clash with an entry holding one of its tuples, handled as
    /// [`CtConfig::kernel`](super::CtConfig::kernel) does (`nf_ct_resolve_clash`, see
    /// [`Kernel`](super::Kernel)). Whatever happens, the packet sees every entry again
    /// afterwards.
    pub fn confirm(&mut self, now: Instant, idx: u32) -> Result<Confirmed, CtDrop> {
        self.hidden.clear();
        let e = self.table.get(idx);
        if e.has(bits::CONFIRMED) || e.has(bits::DYING) || !e.has(bits::USED) {
            return Ok(Confirmed::Inserted);
        }
        let (o, r) = (e.tuple(0), e.tuple(1));
        // The timeout the packet set runs from now (see `refresh`), which is this table's
        // latest use.
        self.touch(now);
        let e = self.table.get_mut(idx);
        e.expires_ms = e.expires_ms.wrapping_add(ms(now));
        let clash = self.table.lookup(&o).or_else(|| self.table.lookup(&r));
        let Some((winner, _)) = clash else {
            // Linux 6.x counts `insert` only for entries ctnetlink inserts
            // (`nf_conntrack_hash_check_insert`), not here in `__nf_conntrack_confirm`.
            self.table.link(idx);
            return Ok(Confirmed::Inserted);
        };
        self.resolve_clash(now, idx, winner)
    }

    /// `nf_ct_resolve_clash`: entry `idx` (this packet's, unconfirmed) lost the race to
    /// `winner`, which holds one of its tuples.
    fn resolve_clash(&mut self, now: Instant, idx: u32, winner: u32) -> Result<Confirmed, CtDrop> {
        let k = self.config.kernel;
        let (e, w) = (*self.table.get(idx), *self.table.get(winner));
        // Only UDP has `allow_clash` among the protocols modelled here.
        let udp = e.proto == proto::UDP && !w.has(bits::DYING);
        let nat = bits::SRC_NAT | bits::DST_NAT;
        let matching = e.keys == w.keys;
        let resolved = |me: &mut Self| {
            if k.counts_clash_resolve() {
                me.st().clash_resolve += 1;
            } else {
                // Before 5.10 every clash counted here, resolved or not.
                me.st().insert_failed += 1;
            }
        };
        if udp && (w.bits & nat == 0 || (matching && k.resolves_matching_clash())) {
            // `__nf_ct_resolve_clash`: the packet carries the winner's entry.
            self.free(idx, Gone::Unconfirmed);
            resolved(self);
            return Ok(Confirmed::Reused { winner });
        }
        if udp && k.inserts_clashing_reply() && self.table.lookup(&e.tuple(1)).is_none() {
            // `nf_ct_resolve_clash_harder`: in by the REPLY tuple only, gone within 1 s.
            self.table.get_mut(idx).expires_ms = ms(now).wrapping_add(1000);
            self.table.link_reply_only(idx);
            resolved(self);
            return Ok(Confirmed::ReplyOnly { winner });
        }
        self.free(idx, Gone::Unconfirmed);
        self.st().insert_failed += 1;
        self.st().drop += 1;
        Err(CtDrop::InsertClash)
    }
}
