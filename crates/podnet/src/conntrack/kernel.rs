//! The Linux version a node runs, and the conntrack and NAT rules that changed with it: what
//! `__nf_conntrack_confirm` does when a new entry clashes with one another CPU confirmed while
//! its packet was on the way (`nf_ct_resolve_clash`), which counter says so, and where
//! MASQUERADE starts looking for a free port when it cannot keep the original one.
//!
//! | rule | since | commit |
//! |---|---|---|
//! | UDP clash with an entry without NAT: the packet takes the winner's entry | 4.7 | 71d8c47fc653 "netfilter: conntrack: introduce clash resolution on insertion race" |
//! | UDP clash with an identical entry (same NAT both ways): same | 4.19 | ed07d9a021df "netfilter: nf_conntrack: resolve clash for matching conntracks" |
//! | port search starts at a random offset, no longer at the shared "rover" (the last port chosen) | 5.0 | 6ed5943f8735 "netfilter: nat: remove l4 protocol port rovers" |
//! | UDP clash with different NAT (another DNAT backend): the loser is inserted by its REPLY tuple only, 1 s fixed timeout (`IPS_NAT_CLASH`) | 5.6 | 6a757c07e51f "netfilter: conntrack: allow insertion of clashing entries" |
//! | a resolved clash counts in `clash_resolve`, no longer in `insert_failed` | 5.10 | bc92470413f3 "netfilter: conntrack: add clash resolution stat counter" |
//!
//! TCP has no `allow_clash`: a TCP clash always drops the packet (`insert_failed`, `drop`).

use core::fmt;

/// A kernel version, `MAJOR.MINOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kernel {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

impl Default for Kernel {
    /// 6.6, a current long-term kernel: every rule above applies.
    fn default() -> Self {
        Kernel::new(6, 6)
    }
}

impl Kernel {
    /// The oldest version podnet models (the clash rules before 4.7 differ again).
    pub const OLDEST: Kernel = Kernel::new(4, 7);

    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Kernel { major, minor }
    }

    /// Parses `"4.19"` (a third part, `"4.19.282"`, is accepted and ignored).
    pub fn parse(s: &str) -> Option<Kernel> {
        let mut it = s.trim().split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        if let Some(patch) = it.next() {
            patch.parse::<u32>().ok()?;
        }
        if it.next().is_some() {
            return None;
        }
        Some(Kernel::new(major, minor))
    }

    fn at_least(self, major: u16, minor: u16) -> bool {
        self >= Kernel::new(major, minor)
    }

    /// A UDP clash with an identical entry (same tuples both ways) takes the winner's entry
    /// (4.19, ed07d9a021df); before, only a winner without NAT did.
    pub fn resolves_matching_clash(self) -> bool {
        self.at_least(4, 19)
    }

    /// A UDP clash with different NAT inserts the loser by its REPLY tuple (5.6, 6a757c07e51f).
    pub fn inserts_clashing_reply(self) -> bool {
        self.at_least(5, 6)
    }

    /// Resolved clashes count in `clash_resolve` (5.10, bc92470413f3); before, every clash
    /// counted in `insert_failed`, resolved or not.
    pub fn counts_clash_resolve(self) -> bool {
        self.at_least(5, 10)
    }

    /// MASQUERADE's port search starts at the shared "rover" (the last port chosen) instead
    /// of a random offset (before 5.0, 6ed5943f8735).
    pub fn nat_port_rover(self) -> bool {
        !self.at_least(5, 0)
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parses_and_orders() {
        assert_eq!(Kernel::parse("4.19"), Some(Kernel::new(4, 19)));
        assert_eq!(Kernel::parse("5.15.0"), Some(Kernel::new(5, 15)));
        assert_eq!(Kernel::parse("6"), None);
        assert_eq!(Kernel::parse("6.x"), None);
        assert_eq!(Kernel::parse("6.6.1.2"), None);
        assert!(Kernel::new(4, 19) < Kernel::new(4, 20));
        assert!(Kernel::new(4, 20) < Kernel::new(5, 0));
        assert_eq!(Kernel::default().to_string(), "6.6");
    }

    #[test]
    fn rules_by_version() {
        let k = Kernel::new(4, 19);
        assert!(k.resolves_matching_clash() && !k.inserts_clashing_reply());
        assert!(!k.counts_clash_resolve() && k.nat_port_rover());
        let k = Kernel::new(5, 6);
        assert!(k.inserts_clashing_reply() && !k.counts_clash_resolve() && !k.nat_port_rover());
        let k = Kernel::default();
        assert!(k.resolves_matching_clash() && k.inserts_clashing_reply());
        assert!(k.counts_clash_resolve() && !k.nat_port_rover());
        assert!(!Kernel::new(4, 14).resolves_matching_clash());
    }
}
