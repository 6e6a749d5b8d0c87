//! A learning Ethernet bridge: the node's `cni0` and the underlay switch between nodes.
//!
//! Like the Linux bridge: the source MAC of every frame is learned on its ingress port (the
//! forwarding database ages entries after 300 s); a frame to a known unicast MAC goes out of
//! that one port (or is filtered when that is the port it came in on); broadcast, multicast and
//! unknown unicast frames are flooded to every other port. A bridge may have a local port (the
//! host's own `cni0` interface) that receives frames addressed to its MAC and every broadcast.
//!
//! A port in hairpin mode (`bridge link set dev X hairpin on`, the `BR_HAIRPIN_MODE` flag that
//! `should_deliver` in `net/bridge/br_forward.c` checks) may send a frame back out of the port
//! it came in on: a known unicast frame whose destination was learned there goes back out of
//! it, and a flood includes it. CNI bridge plugins set it on pod ports (`hairpinMode: true`) so
//! that a pod can reach itself through its Service.

use alloc::vec::Vec;
use litemap::LiteMap;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::EthernetAddress;

/// Linux's default `ageing_time`.
pub const AGEING_TIME: Duration = Duration::from_secs(300);

/// A bridge port: an index into the bridge's attached links, or the host's own interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BridgePort {
    /// The bridge device itself (the host stack behind `cni0`).
    Local,
    /// An enslaved port (a veth host end, or a switch port).
    Port(u32),
}

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Out of exactly this port (known unicast, or the bridge's own MAC).
    One(BridgePort),
    /// Flooded to these ports (broadcast, multicast, unknown unicast).
    Flood(Vec<BridgePort>),
    /// Nowhere: the destination is on the port the frame came from, which is not in hairpin
    /// mode.
    Filtered,
}

#[derive(Clone, Copy, Debug)]
struct FdbEntry {
    port: BridgePort,
    seen: Instant,
}

/// A learning bridge with a forwarding database.
#[derive(Debug, Default)]
pub struct Bridge {
    mac: Option<EthernetAddress>,
    ports: Vec<u32>,
    /// Ports in hairpin mode.
    hairpin: Vec<u32>,
    /// Keyed by [`mac_key`] (the same order as the addresses' bytes, compared as one word).
    fdb: LiteMap<u64, FdbEntry>,
}

/// A MAC address as a number whose order is the order of its bytes.
fn mac_key(mac: EthernetAddress) -> u64 {
    let [a, b, c, d, e, f] = mac.0;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

impl Bridge {
    /// A bridge whose own interface has `mac` (`None`: a plain switch with no local port).
    pub fn new(mac: Option<EthernetAddress>) -> Self {
        Bridge {
            mac,
            ports: Vec::new(),
            hairpin: Vec::new(),
            fdb: LiteMap::new(),
        }
    }

    /// Enslaves a port.
    pub fn add_port(&mut self, port: u32) {
        if !self.ports.contains(&port) {
            self.ports.push(port);
        }
    }

    /// Turns hairpin mode on or off for a port (`bridge link set dev X hairpin on|off`).
    pub fn set_hairpin(&mut self, port: u32, on: bool) {
        self.hairpin.retain(|p| *p != port);
        if on {
            self.hairpin.push(port);
        }
    }

    /// Whether `port` is a port in hairpin mode (never the local port).
    pub fn hairpin(&self, port: BridgePort) -> bool {
        matches!(port, BridgePort::Port(p) if self.hairpin.contains(&p))
    }

    /// Releases a port and forgets the addresses learned on it.
    pub fn remove_port(&mut self, port: u32) {
        self.ports.retain(|p| *p != port);
        self.hairpin.retain(|p| *p != port);
        self.fdb.retain(|_, e| e.port != BridgePort::Port(port));
    }

    /// The learned port of a MAC, if fresh.
    pub fn lookup(&self, now: Instant, mac: EthernetAddress) -> Option<BridgePort> {
        self.fdb
            .get(&mac_key(mac))
            .filter(|e| now - e.seen < AGEING_TIME || now < e.seen)
            .map(|e| e.port)
    }

    /// Number of learned addresses (for `bridge fdb show`-like views).
    pub fn fdb_len(&self) -> usize {
        self.fdb.len()
    }

    /// Decides where a frame from `src` to `dst` that entered on `ingress` goes, learning `src`.
    pub fn forward(
        &mut self,
        now: Instant,
        ingress: BridgePort,
        src: EthernetAddress,
        dst: EthernetAddress,
    ) -> Forward {
        if src.is_unicast() && Some(src) != self.mac.filter(|_| ingress != BridgePort::Local) {
            let learned = FdbEntry {
                port: ingress,
                seen: now,
            };
            let key = mac_key(src);
            match self.fdb.get_mut(&key) {
                Some(e) => *e = learned,
                None => {
                    self.fdb.insert(key, learned);
                }
            }
        }
        if Some(dst) == self.mac {
            return if ingress == BridgePort::Local {
                Forward::Filtered
            } else {
                Forward::One(BridgePort::Local)
            };
        }
        if dst.is_unicast() {
            if let Some(port) = self.lookup(now, dst) {
                return if port == ingress && !self.hairpin(ingress) {
                    Forward::Filtered
                } else {
                    Forward::One(port)
                };
            }
        }
        let flood_local = self.mac.is_some() && ingress != BridgePort::Local && !dst.is_unicast();
        let back = self.hairpin(ingress);
        let mut out: Vec<BridgePort> = self
            .ports
            .iter()
            .map(|p| BridgePort::Port(*p))
            .filter(|p| *p != ingress || back)
            .collect();
        if flood_local {
            out.push(BridgePort::Local);
        }
        Forward::Flood(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const BR: EthernetAddress = EthernetAddress([0x0a, 0x58, 10, 244, 0, 1]);
    const A: EthernetAddress = EthernetAddress([0x0a, 0x58, 10, 244, 0, 2]);
    const B: EthernetAddress = EthernetAddress([0x0a, 0x58, 10, 244, 0, 3]);

    fn bridge() -> Bridge {
        let mut b = Bridge::new(Some(BR));
        b.add_port(0);
        b.add_port(1);
        b.add_port(2);
        b
    }

    #[test]
    fn floods_unknown_then_learns() {
        let mut b = bridge();
        let t = Instant::ZERO;
        assert_eq!(
            b.forward(t, BridgePort::Port(0), A, B),
            Forward::Flood(vec![BridgePort::Port(1), BridgePort::Port(2)])
        );
        assert_eq!(
            b.forward(t, BridgePort::Port(1), B, A),
            Forward::One(BridgePort::Port(0))
        );
        assert_eq!(
            b.forward(t, BridgePort::Port(0), A, B),
            Forward::One(BridgePort::Port(1))
        );
    }

    #[test]
    fn broadcast_reaches_local_and_other_ports() {
        let mut b = bridge();
        assert_eq!(
            b.forward(
                Instant::ZERO,
                BridgePort::Port(2),
                A,
                EthernetAddress::BROADCAST
            ),
            Forward::Flood(vec![
                BridgePort::Port(0),
                BridgePort::Port(1),
                BridgePort::Local
            ])
        );
    }

    #[test]
    fn to_bridge_mac_goes_local_and_hairpin_is_filtered() {
        let mut b = bridge();
        let t = Instant::ZERO;
        assert_eq!(
            b.forward(t, BridgePort::Port(0), A, BR),
            Forward::One(BridgePort::Local)
        );
        b.forward(t, BridgePort::Port(1), B, A);
        assert_eq!(b.forward(t, BridgePort::Port(0), B, A), Forward::Filtered);
    }

    #[test]
    fn hairpin_mode_sends_known_unicast_back_out_of_its_port() {
        let mut b = bridge();
        let t = Instant::ZERO;
        b.forward(t, BridgePort::Port(0), A, BR);
        // Off (the default): a frame to a MAC learned on the ingress port is filtered.
        assert_eq!(b.forward(t, BridgePort::Port(0), B, A), Forward::Filtered);
        b.set_hairpin(0, true);
        assert!(b.hairpin(BridgePort::Port(0)) && !b.hairpin(BridgePort::Port(1)));
        assert_eq!(
            b.forward(t, BridgePort::Port(0), A, A),
            Forward::One(BridgePort::Port(0))
        );
        // Only the ingress port's flag counts.
        b.forward(t, BridgePort::Port(1), B, BR);
        assert_eq!(b.forward(t, BridgePort::Port(1), A, B), Forward::Filtered);
        b.set_hairpin(0, false);
        assert_eq!(b.forward(t, BridgePort::Port(0), A, A), Forward::Filtered);
    }

    #[test]
    fn hairpin_mode_floods_back_out_of_the_ingress_port() {
        let mut b = bridge();
        b.set_hairpin(1, true);
        let t = Instant::ZERO;
        assert_eq!(
            b.forward(t, BridgePort::Port(1), A, EthernetAddress::BROADCAST),
            Forward::Flood(vec![
                BridgePort::Port(0),
                BridgePort::Port(1),
                BridgePort::Port(2),
                BridgePort::Local
            ])
        );
        // Unknown unicast too (no local copy), and not from a port without the flag.
        assert_eq!(
            b.forward(t, BridgePort::Port(1), A, B),
            Forward::Flood(vec![
                BridgePort::Port(0),
                BridgePort::Port(1),
                BridgePort::Port(2)
            ])
        );
        assert_eq!(
            b.forward(t, BridgePort::Port(2), B, EthernetAddress::BROADCAST),
            Forward::Flood(vec![
                BridgePort::Port(0),
                BridgePort::Port(1),
                BridgePort::Local
            ])
        );
        // Removing the port clears its flag.
        b.remove_port(1);
        b.add_port(1);
        assert!(!b.hairpin(BridgePort::Port(1)));
    }

    #[test]
    fn entries_age_out_and_ports_forget() {
        let mut b = bridge();
        b.forward(Instant::ZERO, BridgePort::Port(0), A, B);
        assert_eq!(
            b.lookup(Instant::from_secs(299), A),
            Some(BridgePort::Port(0))
        );
        assert_eq!(b.lookup(Instant::from_secs(301), A), None);
        b.remove_port(0);
        assert_eq!(b.fdb_len(), 0);
    }
}
