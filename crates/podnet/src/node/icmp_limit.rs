//! Linux's limits on the ICMP errors a host sends (`net/ipv4/icmp.c`, `icmp_global_allow`,
//! `icmpv4_xrlim_allow`, `inet_peer_xrlim_allow`), with its defaults:
//!
//! - Only the types in `icmp_ratemask` (6168: destination unreachable except "fragmentation
//!   needed", source quench, time exceeded, parameter problem) are limited; echo replies are
//!   not.
//! - **Per destination** (`icmp_ratelimit`, 1,000 ms): a token bucket in jiffies for each
//!   address the node sends errors to, holding at most six intervals (`XRLIM_BURST_FACTOR`),
//!   full when the address is new. So an address gets six errors at once, then one a second.
//!   Refused: `OutRateLimitHost` in `/proc/net/snmp`. An error to the host's own address is
//!   not limited this way (its route is the loopback device).
//! - **For the whole host** (`icmp_msgs_per_sec` 1,000, `icmp_msgs_burst` 50): credits
//!   refilled at most every 20 ms; each error sent consumes 0, 1 or 2 credits drawn at random
//!   (`icmp_global_consume`, the randomness that hides the limiter's state from probes; drawn
//!   here from the scenario seed). When no credit is left, errors are refused before the
//!   per-destination bucket is looked at: `OutRateLimitGlobal`.
//!
//! Time is counted in jiffies of `CONFIG_HZ=250` (Debian's kernels, and the kernel podnet is
//! compared with), 4 ms each. Measured on Linux 6.18.44: 20 UDP datagrams at once to a
//! node's closed port got 6 port-unreachables (14 `OutRateLimitHost`); 30 sent 100 ms apart
//! got 8.

use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;

use crate::pairset::{key, PairSet};
use crate::rng::SimRng;

/// `CONFIG_HZ`.
pub const HZ: u64 = 250;
/// `XRLIM_BURST_FACTOR`.
pub const BURST_FACTOR: u64 = 6;

/// The ICMP sysctls of a node (`net.ipv4.icmp_*`); Linux's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpConfig {
    /// `icmp_ratelimit`: milliseconds between errors to one address (a bucket holds six).
    /// 0: no per-destination limit.
    pub ratelimit_ms: u32,
    /// `icmp_ratemask`: the ICMP types limited, one bit each. 0: none.
    pub ratemask: u32,
    /// `icmp_msgs_per_sec`: the host's credits per second.
    pub msgs_per_sec: u32,
    /// `icmp_msgs_burst`: the host's credits at most.
    pub msgs_burst: u32,
}

impl Default for IcmpConfig {
    fn default() -> Self {
        IcmpConfig {
            ratelimit_ms: 1000,
            ratemask: 0x1818,
            msgs_per_sec: 1000,
            msgs_burst: 50,
        }
    }
}

/// Why an ICMP error was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The host's credits ran out (`OutRateLimitGlobal`).
    Global,
    /// The destination's bucket is empty (`OutRateLimitHost`).
    Host,
}

impl Refused {
    /// The drop reason shown in traces and reports.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Global => {
                "icmp_ratelimit: ICMP error not sent, host limit (OutRateLimitGlobal)"
            }
            Refused::Host => {
                "icmp_ratelimit: ICMP error not sent, per-destination limit (OutRateLimitHost)"
            }
        }
    }
}

/// One host's ICMP error limits.
#[derive(Debug)]
pub struct IcmpLimit {
    config: IcmpConfig,
    /// `icmp_ratelimit` in jiffies (`msecs_to_jiffies`).
    timeout: u64,
    credit: i64,
    /// Jiffies of the last refill; `None` before the first (a fresh host's stamp is far in the
    /// past, so its first refill is a whole second's).
    stamp: Option<u64>,
    /// Each destination's token bucket (`inet_peer.rate_tokens`, `rate_last`): the address
    /// and the tokens in the key, the jiffies of its last refill as the number (the engine's
    /// one packed B-tree type rather than a map of its own: see [`crate::pairset`]).
    peers: PairSet,
    rng: SimRng,
    /// How many buckets are kept before full ones are forgotten.
    prune_from: usize,
}

/// Whether errors of this type and code are limited under `ratemask` (`icmpv4_mask_allow`).
pub fn limited(ratemask: u32, icmp_type: u8, code: u8) -> bool {
    if icmp_type == 3 && code == 4 {
        return false;
    }
    icmp_type < 32 && ratemask & (1 << icmp_type) != 0
}

/// The type, code and destination of an ICMP error in Ethernet frame `frame`, if it is one of
/// a type `ratemask` limits (a cheap look at the headers, for a pod's outgoing frames).
pub fn limited_error(ratemask: u32, frame: &[u8]) -> Option<(u8, u8, Ipv4Address)> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 1 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let (t, c) = (*frame.get(14 + ihl)?, *frame.get(14 + ihl + 1)?);
    let dst = Ipv4Address::new(frame[30], frame[31], frame[32], frame[33]);
    limited(ratemask, t, c).then_some((t, c, dst))
}

fn jiffies(now: Instant) -> u64 {
    now.total_micros().max(0) as u64 * HZ / 1_000_000
}

impl IcmpLimit {
    /// Fresh limits under `config`, drawing from `rng`.
    pub fn new(config: IcmpConfig, rng: SimRng) -> Self {
        IcmpLimit {
            config,
            timeout: (u64::from(config.ratelimit_ms) * HZ).div_ceil(1000),
            credit: 0,
            stamp: None,
            peers: PairSet::default(),
            rng,
            prune_from: 1024,
        }
    }

    /// `icmp_global_allow`: true when the host may send (it does not consume).
    fn global_allow(&mut self, j: u64) -> bool {
        if self.credit > 0 {
            return true;
        }
        let delta = self.stamp.map_or(HZ, |s| j.saturating_sub(s).min(HZ));
        if delta < HZ / 50 {
            return false;
        }
        let incr = i64::from(self.config.msgs_per_sec) * delta as i64 / HZ as i64;
        if incr == 0 {
            return false;
        }
        self.stamp = Some(j);
        self.credit = (self.credit + incr).min(i64::from(self.config.msgs_burst));
        true
    }

    /// `inet_peer_xrlim_allow` for `dst`'s bucket.
    fn peer_allow(&mut self, dst: Ipv4Address, j: u64) -> bool {
        let (timeout, cap) = (self.timeout, BURST_FACTOR * self.timeout);
        let ip = dst.to_bits();
        let found = self
            .peers
            .range(key(ip, 0, 0, 0), key(ip, u16::MAX, u16::MAX, u32::MAX))
            .next();
        // A new peer's `rate_last` is 60 s back: its first refill fills the bucket.
        let (mut tokens, last) = match found {
            Some((k, last)) => {
                self.peers.remove(k, last);
                (u64::from(k as u32), u64::from(last))
            }
            None => (cap, j),
        };
        let delta = (j as u32).wrapping_sub(last as u32);
        if delta > 0 {
            tokens = (tokens + u64::from(delta)).min(cap);
        }
        let allowed = tokens >= timeout;
        if allowed {
            tokens -= timeout;
        }
        let tokens = tokens.min(u64::from(u32::MAX)) as u32;
        self.peers.insert(key(ip, 0, 0, tokens), j as u32);
        allowed
    }

    /// Whether an error of `icmp_type`/`code` to `dst` may leave at `now` (`to_self`: `dst`
    /// is the host's own address). Consumes the host's credits when it may.
    pub fn allow(
        &mut self,
        now: Instant,
        icmp_type: u8,
        code: u8,
        dst: Ipv4Address,
        to_self: bool,
    ) -> Result<(), Refused> {
        if !limited(self.config.ratemask, icmp_type, code) {
            return Ok(());
        }
        let j = jiffies(now);
        if !self.global_allow(j) {
            return Err(Refused::Global);
        }
        if !to_self {
            if !self.peer_allow(dst, j) {
                return Err(Refused::Host);
            }
            self.prune(j);
        }
        // `icmp_global_consume`: 0 to 2 credits; the credit may go negative.
        self.credit -= i64::from(self.rng.range_inclusive(0, 2));
        Ok(())
    }

    /// Forgets buckets that have been full for a while: a new bucket starts full, so this
    /// changes nothing but the memory held (Linux's inet_peer GC does the same after 10 min).
    fn prune(&mut self, j: u64) {
        if self.peers.len() < self.prune_from {
            return;
        }
        let full = BURST_FACTOR * self.timeout;
        let old: alloc::vec::Vec<_> = self
            .peers
            .range(0, u128::MAX >> 32)
            .filter(|&(_, last)| u64::from((j as u32).wrapping_sub(last)) >= full)
            .collect();
        for (k, last) in old {
            self.peers.remove(k, last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    const A: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);

    fn lim() -> IcmpLimit {
        IcmpLimit::new(IcmpConfig::default(), SimRng::derive(1, Stream::Node(0)))
    }

    fn at_ms(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn six_at_once_then_one_a_second() {
        let mut l = lim();
        let sent = (0..20)
            .filter(|_| l.allow(at_ms(0), 3, 3, A, false).is_ok())
            .count();
        assert_eq!(sent, 6, "as the kernel: 6 of 20 sent at once");
        assert_eq!(l.allow(at_ms(500), 3, 3, A, false), Err(Refused::Host));
        assert_eq!(l.allow(at_ms(1000), 3, 3, A, false), Ok(()));
        assert_eq!(l.allow(at_ms(1004), 3, 3, A, false), Err(Refused::Host));
    }

    #[test]
    fn thirty_100ms_apart_give_eight() {
        let mut l = lim();
        let sent = (0..30)
            .filter(|i| l.allow(at_ms(i * 100), 3, 3, A, false).is_ok())
            .count();
        assert_eq!(sent, 8, "as the kernel measured");
    }

    #[test]
    fn unlimited_types_and_own_address() {
        let mut l = lim();
        assert!((0..100).all(|_| l.allow(at_ms(0), 0, 0, A, false).is_ok()));
        assert!((0..100).all(|_| l.allow(at_ms(0), 3, 4, A, false).is_ok()));
        let m = IcmpConfig::default().ratemask;
        assert!(limited(m, 11, 0) && limited(m, 12, 0) && limited(m, 4, 0) && limited(m, 3, 1));
        assert!(!limited(m, 8, 0) && !limited(m, 5, 0) && !limited(m, 200, 0));
    }

    #[test]
    fn the_host_limit_stops_many_destinations() {
        let mut l = lim();
        let mut global = 0;
        let mut sent = 0;
        for i in 0..200u8 {
            match l.allow(at_ms(0), 11, 0, Ipv4Address::new(10, 1, 0, i), false) {
                Ok(()) => sent += 1,
                Err(Refused::Global) => global += 1,
                Err(Refused::Host) => unreachable!("one error per destination"),
            }
        }
        // 50 credits, 0 to 2 each: about 50 errors, more than 25 and at most all of them.
        assert!((26..=120).contains(&sent), "{sent}");
        assert_eq!(sent + global, 200);
        // Within 20 ms nothing is refilled; 20 ms later 20 credits come back.
        assert_eq!(
            l.allow(at_ms(16), 11, 0, Ipv4Address::new(10, 2, 0, 1), false),
            Err(Refused::Global)
        );
        assert!(l
            .allow(at_ms(20), 11, 0, Ipv4Address::new(10, 2, 0, 1), false)
            .is_ok());
    }

    #[test]
    fn sysctls_turn_limits_off() {
        let rng = || SimRng::derive(1, Stream::Node(0));
        let mut no_mask = IcmpLimit::new(
            IcmpConfig {
                ratemask: 0,
                ..IcmpConfig::default()
            },
            rng(),
        );
        assert!((0..1000).all(|_| no_mask.allow(at_ms(0), 3, 3, A, false).is_ok()));
        let mut no_host = IcmpLimit::new(
            IcmpConfig {
                ratelimit_ms: 0,
                msgs_burst: 1_000_000,
                msgs_per_sec: 1_000_000,
                ..IcmpConfig::default()
            },
            rng(),
        );
        assert!((0..1000).all(|_| no_host.allow(at_ms(0), 3, 3, A, false).is_ok()));
    }

    #[test]
    fn pruning_keeps_the_outcome() {
        let mut a = lim();
        a.prune_from = usize::MAX;
        let mut b = lim();
        b.prune_from = 16;
        let mut sent = 0;
        for i in 0..20_000u32 {
            // 40 destinations in turn, a burst of 5 every 4 s each, with pauses.
            let dst = Ipv4Address::from_bits(0x0a00_0000 + (i / 5) % 40);
            let t = at_ms(i64::from(i) * 37 / 5 + i64::from(i / 1000) * 3000);
            let (x, y) = (a.allow(t, 3, 1, dst, false), b.allow(t, 3, 1, dst, false));
            assert_eq!(x.is_ok(), y.is_ok(), "{i}");
            sent += usize::from(x.is_ok());
        }
        assert!(sent > 1000, "{sent}");
    }
}
