//! The node's ARP neighbour table.
//!
//! A packet to an unresolved next hop waits in that neighbour's queue (bounded like Linux's
//! `unres_qlen_bytes`, 212992 bytes of the packets' truesize, see [`super::truesize`]; the
//! oldest packet is dropped first) while ARP requests go
//! out every `retrans_time` (1 s), up to `mcast_solicit` (3) probes. When the last probe goes
//! unanswered the queued packets are dropped and their senders get ICMP host unreachable.
//! Resolved entries are kept (Linux would move them through STALE and re-probe; a simulated
//! network never changes MACs behind an IP, so the difference is not observable here, except
//! in the bridged DNAT path: see [`BridgedDnat`]).

use alloc::vec::Vec;
use litemap::LiteMap;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

use crate::link::Frame;
use crate::route::Dev;

/// The packets waiting for a neighbour, oldest first.
pub type Waiting = alloc::collections::VecDeque<Pending>;

/// Linux `neigh/default/retrans_time_ms`.
pub const RETRANS_TIME: Duration = Duration::from_secs(1);
/// Linux `neigh/default/mcast_solicit`.
pub const MAX_PROBES: u8 = 3;
/// Linux `neigh/default/unres_qlen_bytes`.
pub const UNRES_QLEN_BYTES: usize = 212_992;

/// A bridged frame whose destination PREROUTING rewrote (DNAT) to an address behind the same
/// bridge: br_netfilter hands it to the neighbour layer of `cni0` only to learn the new
/// destination's MAC (`br_nf_pre_routing_finish_bridge`, `nf_bridge->bridged_dnat`), then
/// puts its original source MAC back and bridges it on from its ingress port
/// (`br_nf_pre_routing_finish_bridge_slow`, from `br_dev_xmit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgedDnat {
    /// The `cni0` port it came in on (`nf_bridge->physindev`).
    pub port: u32,
    /// Its source MAC as it arrived (saved in `nf_bridge->neigh_header`).
    pub src: EthernetAddress,
}

/// A packet on its way to the neighbour layer.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    /// The frame (its Ethernet header is rewritten on transmission).
    pub frame: Frame,
    /// Set for a bridged-and-DNATed frame, which goes back to the bridge once resolved.
    pub bridged: Option<BridgedDnat>,
    /// For a bridged DNAT frame that waited for ARP: it already crossed FORWARD and
    /// POSTROUTING (this simulator's conntrack follows one packet at a time, so it confirms
    /// before queueing), and this is the packet as it was before them, which `cni0` sends.
    pub before_hooks: Option<Frame>,
    /// The packet came out of the node's VXLAN device (its buffer is the tunnel's).
    pub decapsulated: bool,
}

impl Pending {
    /// What the packet counts for in a neighbour's queue (`skb->truesize`) on a node whose
    /// VXLAN address is `vtep`.
    pub fn truesize(&self, vtep: Option<Ipv4Address>) -> usize {
        super::truesize::truesize(&self.frame, self.decapsulated, vtep)
    }
}

impl From<Frame> for Pending {
    fn from(frame: Frame) -> Self {
        Pending {
            frame,
            bridged: None,
            before_hooks: None,
            decapsulated: false,
        }
    }
}

#[derive(Debug)]
enum State {
    Reachable(EthernetAddress),
    Incomplete {
        probes: u8,
        next_probe: Instant,
        queue: Waiting,
        queued_bytes: usize,
    },
}

/// What the caller must do after [`Neighbours::resolve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Send the packet now to this MAC.
    Known(EthernetAddress, Pending),
    /// Queued; send an ARP request now (first packet to this neighbour).
    Probe,
    /// Queued behind a probe already under way.
    Queued,
}

/// Work for the caller from [`Neighbours::poll`].
#[derive(Debug, Default)]
pub struct Expired {
    /// Neighbours to probe again.
    pub reprobe: Vec<(Dev, Ipv4Address)>,
    /// Packets whose neighbour never answered.
    pub failed: Vec<Pending>,
}

/// The neighbour table of one node.
#[derive(Debug, Default)]
pub struct Neighbours {
    table: LiteMap<(Dev, Ipv4Address), State>,
}

impl Neighbours {
    /// The MAC of a resolved neighbour.
    pub fn lookup(&self, dev: Dev, ip: Ipv4Address) -> Option<EthernetAddress> {
        match self.table.get(&(dev, ip)) {
            Some(State::Reachable(mac)) => Some(*mac),
            _ => None,
        }
    }

    /// Resolves `ip` on `dev` for `frame`; when unknown, the frame is queued. Frames pushed out
    /// of a full queue are returned in `evicted`. `vtep`: the node's VXLAN address, if it has
    /// one (it decides how a VXLAN packet's buffer was built, see [`crate::node::truesize`]).
    pub fn resolve(
        &mut self,
        now: Instant,
        dev: Dev,
        ip: Ipv4Address,
        frame: Pending,
        vtep: Option<Ipv4Address>,
        evicted: &mut Vec<Pending>,
    ) -> Resolution {
        match self.table.get_mut(&(dev, ip)) {
            Some(State::Reachable(mac)) => Resolution::Known(*mac, frame),
            Some(State::Incomplete {
                queue,
                queued_bytes,
                ..
            }) => {
                *queued_bytes += frame.truesize(vtep);
                queue.push_back(frame);
                while *queued_bytes > UNRES_QLEN_BYTES && queue.len() > 1 {
                    let Some(old) = queue.pop_front() else {
                        break;
                    };
                    *queued_bytes -= old.truesize(vtep);
                    evicted.push(old);
                }
                Resolution::Queued
            }
            None => {
                let len = frame.truesize(vtep);
                self.table.insert(
                    (dev, ip),
                    State::Incomplete {
                        probes: 1,
                        next_probe: now + RETRANS_TIME,
                        queue: alloc::collections::VecDeque::from([frame]),
                        queued_bytes: len,
                    },
                );
                Resolution::Probe
            }
        }
    }

    /// Records that `ip` on `dev` is at `mac`; returns the packets that waited for it.
    pub fn learn(&mut self, dev: Dev, ip: Ipv4Address, mac: EthernetAddress) -> Waiting {
        match self.table.insert((dev, ip), State::Reachable(mac)) {
            Some(State::Incomplete { queue, .. }) => queue,
            _ => Waiting::new(),
        }
    }

    /// Updates an existing entry only (what Linux does for ARP packets not aimed at us).
    pub fn refresh(&mut self, dev: Dev, ip: Ipv4Address, mac: EthernetAddress) -> Waiting {
        if self.table.contains_key(&(dev, ip)) {
            self.learn(dev, ip, mac)
        } else {
            Waiting::new()
        }
    }

    /// The next probe deadline.
    pub fn poll_at(&self) -> Option<Instant> {
        self.table
            .values()
            .filter_map(|s| match s {
                State::Incomplete { next_probe, .. } => Some(*next_probe),
                State::Reachable(_) => None,
            })
            .min()
    }

    /// Advances probe timers to `now`.
    pub fn poll(&mut self, now: Instant) -> Expired {
        let mut out = Expired::default();
        let mut dead = Vec::new();
        for (key, state) in self.table.iter_mut() {
            if let State::Incomplete {
                probes, next_probe, ..
            } = state
            {
                if *next_probe > now {
                    continue;
                }
                if *probes >= MAX_PROBES {
                    dead.push(*key);
                } else {
                    *probes += 1;
                    *next_probe = now + RETRANS_TIME;
                    out.reprobe.push(*key);
                }
            }
        }
        for key in dead {
            if let Some(State::Incomplete { queue, .. }) = self.table.remove(&key) {
                out.failed.extend(queue);
            }
        }
        out
    }

    /// Resolved entries, for `ip neigh`-like views.
    pub fn entries(&self) -> impl Iterator<Item = (Dev, Ipv4Address, EthernetAddress)> + '_ {
        self.table.iter().filter_map(|((d, ip), s)| match s {
            State::Reachable(mac) => Some((*d, *ip, *mac)),
            State::Incomplete { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const IP: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 5]);

    fn p(bytes: Vec<u8>) -> Pending {
        Frame::new(bytes).into()
    }

    #[test]
    fn queue_until_learned() {
        let mut n = Neighbours::default();
        let mut ev = Vec::new();
        assert_eq!(
            n.resolve(Instant::ZERO, Dev::Cni0, IP, p(vec![1]), None, &mut ev),
            Resolution::Probe
        );
        assert_eq!(
            n.resolve(Instant::ZERO, Dev::Cni0, IP, p(vec![2]), None, &mut ev),
            Resolution::Queued
        );
        assert_eq!(n.learn(Dev::Cni0, IP, MAC), vec![p(vec![1]), p(vec![2])]);
        assert_eq!(
            n.resolve(Instant::ZERO, Dev::Cni0, IP, p(vec![3]), None, &mut ev),
            Resolution::Known(MAC, p(vec![3]))
        );
        assert!(ev.is_empty());
    }

    #[test]
    fn three_probes_then_failure() {
        let mut n = Neighbours::default();
        let mut ev = Vec::new();
        let _ = n.resolve(Instant::ZERO, Dev::Eth0, IP, p(vec![1]), None, &mut ev);
        assert_eq!(n.poll_at(), Some(Instant::from_secs(1)));
        assert_eq!(n.poll(Instant::from_secs(1)).reprobe.len(), 1);
        assert_eq!(n.poll(Instant::from_secs(2)).reprobe.len(), 1);
        let last = n.poll(Instant::from_secs(3));
        assert!(last.reprobe.is_empty());
        assert_eq!(last.failed, vec![p(vec![1])]);
        assert_eq!(n.poll_at(), None);
    }

    #[test]
    fn full_queue_drops_oldest() {
        let mut n = Neighbours::default();
        let mut ev = Vec::new();
        for i in 0..200u8 {
            let _ = n.resolve(
                Instant::ZERO,
                Dev::Eth0,
                IP,
                p(vec![i; 1500]),
                None,
                &mut ev,
            );
        }
        // Not IPv4: a linear buffer of 1,500 bytes, 2,304 (see `truesize`), 92 of them fit.
        assert_eq!(ev.len(), 200 - UNRES_QLEN_BYTES / 2304);
        assert_eq!(ev[0].frame[0], 0, "oldest first");
    }

    #[test]
    fn refresh_only_known() {
        let mut n = Neighbours::default();
        assert!(n.refresh(Dev::Eth0, IP, MAC).is_empty());
        assert_eq!(n.lookup(Dev::Eth0, IP), None);
    }
}
