//! Where every conntrack entry went.

/// Where every entry went: podnet's own accounting (Linux has no such counters; `conntrack -E`
/// would show the same events one by one). At any time
/// `created = count + expired + early_dropped + killed + unconfirmed + flushed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtLife {
    /// Entries allocated for a packet (`init_conntrack`).
    pub created: u64,
    /// Confirmed entries removed when their timeout ran out (GC or a lookup that found them
    /// expired).
    pub expired: u64,
    /// Unassured entries evicted to make room (`early_drop`).
    pub early_dropped: u64,
    /// Confirmed entries killed by a packet (an RST, a new SYN reopening a closed connection).
    pub killed: u64,
    /// Entries freed before confirmation: their packet was dropped or INVALID, or clashed.
    pub unconfirmed: u64,
    /// Entries removed by `conntrack -F`.
    pub flushed: u64,
}

impl CtLife {
    /// Counts one entry that left the table.
    pub(super) fn count(&mut self, why: Gone) {
        match why {
            Gone::Expired => self.expired += 1,
            Gone::EarlyDropped => self.early_dropped += 1,
            Gone::Killed => self.killed += 1,
            Gone::Unconfirmed => self.unconfirmed += 1,
        }
    }

    /// Entries that left the table, for any reason.
    pub fn removed(&self) -> u64 {
        self.expired + self.early_dropped + self.killed + self.unconfirmed + self.flushed
    }
}

/// Why an entry is freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gone {
    Expired,
    EarlyDropped,
    Killed,
    Unconfirmed,
}
