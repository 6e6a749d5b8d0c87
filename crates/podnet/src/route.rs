//! A node's IPv4 routing table with longest-prefix match.
//!
//! Routes are kept per prefix length, so a lookup costs one ordered-map probe per distinct
//! prefix length (a handful) whatever the number of routes: a 1000-node cluster's host-gw
//! table (one /24 per node) stays cheap. The capacity is fixed at construction; adding beyond
//! it fails with [`RouteTableFull`], as smoltcp's route table does.

use core::fmt;
use litemap::LiteMap;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// A node interface a route sends packets out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dev {
    /// The pod bridge.
    Cni0,
    /// The uplink to the underlay network.
    Eth0,
    /// flannel's VXLAN device (`cni: vxlan`): frames routed out of it are encapsulated in
    /// UDP and sent on `eth0`.
    Flannel,
}

impl Dev {
    /// The Linux interface name.
    pub fn name(self) -> &'static str {
        match self {
            Dev::Cni0 => "cni0",
            Dev::Eth0 => "eth0",
            Dev::Flannel => "flannel.1",
        }
    }
}

/// One route: `DST [via GW] dev DEV [src SRC]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub dst: Ipv4Cidr,
    /// Next hop; `None` for a directly connected (link scope) route.
    pub via: Option<Ipv4Address>,
    /// Outgoing interface.
    pub dev: Dev,
    /// Preferred source address for locally generated packets.
    pub src: Option<Ipv4Address>,
}

impl Route {
    /// The neighbour to resolve for a packet to `dst`: the gateway, or `dst` itself.
    pub fn next_hop(&self, dst: Ipv4Address) -> Ipv4Address {
        self.via.unwrap_or(dst)
    }
}

impl fmt::Display for Route {
    /// `ip route` style: `10.244.1.0/24 via 192.168.1.101 dev eth0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dst.prefix_len() == 0 {
            write!(f, "default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        write!(f, " dev {}", self.dev.name())?;
        if self.dev == Dev::Flannel && self.via.is_some() {
            // flannel's routes name the remote VTEP address, on no subnet of flannel.1.
            write!(f, " onlink")?;
        }
        if let Some(src) = self.src {
            write!(f, " proto kernel scope link src {src}")?;
        }
        Ok(())
    }
}

/// Adding a route to a full table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteTableFull;

impl fmt::Display for RouteTableFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("route table full")
    }
}

/// A fixed-capacity longest-prefix-match routing table.
#[derive(Clone, Debug)]
pub struct RouteTable {
    /// prefix length (longest first, via `Reverse` ordering) -> network -> route
    by_len: LiteMap<core::cmp::Reverse<u8>, LiteMap<u32, Route>>,
    len: usize,
    capacity: usize,
}

fn network(addr: Ipv4Address, prefix_len: u8) -> u32 {
    let bits = u32::from(addr);
    if prefix_len == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix_len)))
    }
}

impl RouteTable {
    /// An empty table holding at most `capacity` routes.
    pub fn new(capacity: usize) -> Self {
        RouteTable {
            by_len: LiteMap::new(),
            len: 0,
            capacity,
        }
    }

    /// Adds or replaces the route for `route.dst`.
    pub fn add(&mut self, route: Route) -> Result<(), RouteTableFull> {
        let len = route.dst.prefix_len();
        let net = network(route.dst.address(), len);
        let table = self.by_len.entry(core::cmp::Reverse(len)).or_default();
        if !table.contains_key(&net) {
            if self.len >= self.capacity {
                if table.is_empty() {
                    self.by_len.remove(&core::cmp::Reverse(len));
                }
                return Err(RouteTableFull);
            }
            self.len += 1;
        }
        table.insert(net, route);
        Ok(())
    }

    /// Removes the route for exactly `dst`, returning it.
    pub fn remove(&mut self, dst: Ipv4Cidr) -> Option<Route> {
        let key = core::cmp::Reverse(dst.prefix_len());
        let table = self.by_len.get_mut(&key)?;
        let removed = table.remove(&network(dst.address(), dst.prefix_len()));
        if table.is_empty() {
            self.by_len.remove(&key);
        }
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The most specific route covering `dst`.
    pub fn lookup(&self, dst: Ipv4Address) -> Option<&Route> {
        self.by_len
            .iter()
            .find_map(|(len, table)| table.get(&network(dst, len.0)))
    }

    /// All routes, most specific first (`ip route` order differs; this is lookup order).
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.by_len.values().flat_map(|t| t.values())
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn cidr(a: [u8; 4], len: u8) -> Ipv4Cidr {
        Ipv4Cidr::new(Ipv4Address::new(a[0], a[1], a[2], a[3]), len)
    }

    fn table() -> RouteTable {
        let mut t = RouteTable::new(8);
        t.add(Route {
            dst: cidr([10, 244, 0, 0], 24),
            via: None,
            dev: Dev::Cni0,
            src: Some(Ipv4Address::new(10, 244, 0, 1)),
        })
        .unwrap();
        t.add(Route {
            dst: cidr([192, 168, 1, 0], 24),
            via: None,
            dev: Dev::Eth0,
            src: None,
        })
        .unwrap();
        t.add(Route {
            dst: cidr([10, 244, 1, 0], 24),
            via: Some(Ipv4Address::new(192, 168, 1, 101)),
            dev: Dev::Eth0,
            src: None,
        })
        .unwrap();
        t.add(Route {
            dst: cidr([0, 0, 0, 0], 0),
            via: Some(Ipv4Address::new(192, 168, 1, 1)),
            dev: Dev::Eth0,
            src: None,
        })
        .unwrap();
        t
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(
            t.lookup(Ipv4Address::new(10, 244, 0, 5)).unwrap().dev,
            Dev::Cni0
        );
        let r = t.lookup(Ipv4Address::new(10, 244, 1, 20)).unwrap();
        assert_eq!(
            r.next_hop(Ipv4Address::new(10, 244, 1, 20)),
            Ipv4Address::new(192, 168, 1, 101)
        );
        let d = t.lookup(Ipv4Address::new(8, 8, 8, 8)).unwrap();
        assert_eq!(d.to_string(), "default via 192.168.1.1 dev eth0");
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn no_route_without_default() {
        let mut t = table();
        t.remove(cidr([0, 0, 0, 0], 0)).unwrap();
        assert!(t.lookup(Ipv4Address::new(8, 8, 8, 8)).is_none());
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn capacity_is_enforced_but_replacement_is_free() {
        let mut t = RouteTable::new(1);
        let r = Route {
            dst: cidr([10, 0, 0, 0], 8),
            via: None,
            dev: Dev::Eth0,
            src: None,
        };
        t.add(r).unwrap();
        t.add(r).unwrap();
        assert_eq!(
            t.add(Route {
                dst: cidr([11, 0, 0, 0], 8),
                ..r
            }),
            Err(RouteTableFull)
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn display_like_ip_route() {
        let t = table();
        let r = t.lookup(Ipv4Address::new(10, 244, 0, 9)).unwrap();
        assert_eq!(
            r.to_string(),
            "10.244.0.0/24 dev cni0 proto kernel scope link src 10.244.0.1"
        );
    }
}
