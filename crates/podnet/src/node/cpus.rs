//! A node's CPUs: which one handles a packet (the sender's for a frame from a pod's veth, the
//! NIC's RSS choice for one from `eth0`), told to the netfilter modules so that packets on
//! different CPUs can race in conntrack ([`crate::race`]).

use smoltcp::time::Instant;

use super::reply::ETH_HDR;
use super::Node;

/// A node's CPUs and how packets are spread over them.
#[derive(Debug)]
pub(super) struct Cpus {
    pub(super) count: u32,
    /// The scheduler's choices (which CPU a pod's sending thread ran on).
    pub(super) rng: Option<crate::rng::SimRng>,
    /// The NIC's RSS hash key.
    pub(super) rss_key: u64,
}

impl Default for Cpus {
    /// One CPU: nothing drawn.
    fn default() -> Self {
        Cpus {
            count: 1,
            rng: None,
            rss_key: 0,
        }
    }
}

impl Node {
    /// Gives the node `cpus` CPUs (at least 1). A frame from a pod's veth is handled on the
    /// CPU its sender's thread ran on (`veth_xmit` queues it to the current CPU's backlog; veth
    /// has no RSS), which `rng` draws per frame (the scheduler's choice); a frame from `eth0`
    /// on the CPU the NIC's RSS hash of its addresses and ports (keyed by `rss_key`) picks,
    /// so a flow always lands on one CPU. With one CPU nothing is drawn.
    pub fn set_cpus(&mut self, cpus: u32, rng: crate::rng::SimRng, rss_key: u64) {
        self.cpus = Cpus {
            count: cpus.max(1),
            rng: (cpus > 1).then_some(rng),
            rss_key,
        };
    }

    /// The node's CPUs.
    pub fn cpus(&self) -> u32 {
        self.cpus.count
    }

    /// Tells the modules which CPU the frame arriving at `now` runs on.
    pub(super) fn steer(&mut self, now: Instant, cpu: u32) {
        for h in self.hooks.iter_mut() {
            h.steer(now, cpu);
        }
    }

    /// The CPU of a frame from a pod's veth: its sender's, drawn from the seed.
    pub(super) fn sender_cpu(&mut self) -> u32 {
        match self.cpus.rng.as_mut() {
            Some(rng) => rng.range_inclusive(0, self.cpus.count - 1),
            None => 0,
        }
    }

    /// The CPU RSS picks for a frame from `eth0`: a keyed hash of its IPv4 addresses and, for
    /// TCP and UDP, ports.
    pub(super) fn rss_cpu(&self, frame: &[u8]) -> u32 {
        if self.cpus.count <= 1 {
            return 0;
        }
        let t = frame
            .get(ETH_HDR..)
            .and_then(crate::conntrack::Tuple::of_packet);
        let Some(t) = t else { return 0 };
        let mut h = self.cpus.rss_key;
        for v in [
            u64::from(u32::from(t.src)),
            u64::from(u32::from(t.dst)),
            u64::from(t.sport) << 16 | u64::from(t.dport),
            u64::from(t.proto),
        ] {
            h = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        }
        ((h >> 32) % u64::from(self.cpus.count)) as u32
    }
}
