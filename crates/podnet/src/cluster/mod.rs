//! The cluster: nodes, pods, links and the underlay switch, driven by one virtual clock.
//!
//! The engine jumps from deadline to deadline: the earliest of every link's next frame arrival,
//! every pod's smoltcp `poll_at` (and its programs' timers) and every node's ARP timers. Events
//! at the same instant run in the order they were scheduled, so a seed and a scenario give the
//! same event sequence, byte for byte, on every platform.
//!
//! ```
//! use podnet::{Cluster, ClusterConfig, NodeSpec, PodSpec, Program, ClientSpec};
//! use smoltcp::time::Duration;
//!
//! let mut c = Cluster::new(ClusterConfig::default());
//! let a = c.add_node(NodeSpec::new("node-a", [192, 168, 1, 100])).unwrap();
//! let b = c.add_node(NodeSpec::new("node-b", [192, 168, 1, 101])).unwrap();
//! let web = c.add_pod(PodSpec::new("web", b).program(Program::HttpServer { port: 80 })).unwrap();
//! let web_ip = c.pod(web).unwrap().addrs().ip.address();
//! let web_ip = podnet::v4(web_ip);
//! let client = c
//!     .add_pod(PodSpec::new("client", a).program(Program::Client(ClientSpec::http("web", web_ip, 80).count(3))))
//!     .unwrap();
//! assert!(c.run_until_done(Duration::from_secs(10)));
//! let flow = c.pod(client).unwrap().clients().next().unwrap();
//! assert!(flow.records().iter().all(|r| r.outcome == podnet::Outcome::Ok));
//! ```

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, EthernetFrame, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::bridge::{Bridge, BridgePort, Forward};
use crate::link::{Channel, Frame, LinkConfig};
use crate::node::{Egress, Node, NodeAddrs, NodeIfaces, Output};
use crate::pod::{Pod, PodAddrs};
use crate::program::client::Client;
use crate::program::Program;
use crate::rng::{SimRng, Stream};
use crate::route::{Dev, Route};
use crate::trace::{IfaceId, Observer, Trace};

mod cilium;
mod inject;
mod links;
mod netpol;
mod queue;
mod run;
mod service;
mod spec;
pub use inject::Wire;
pub use links::InFlight;
pub use service::{Service, NODE_PORTS};
pub use spec::{ClusterConfig, Cni, Error, NodeSpec, PodSpec, Proxy, ServicePortSpec, ServiceSpec};

/// A node's index in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// A pod's index in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodId(pub u32);

/// What a link end is plugged into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attach {
    Pod(PodId),
    NodePort(NodeId),
    Uplink(NodeId),
    Switch,
}

#[derive(Debug)]
struct Link {
    ends: [(Attach, IfaceId); 2],
    /// `chans[d]` carries frames from `ends[d]` to `ends[1 - d]`.
    chans: [Channel; 2],
    /// The veth of a deleted pod: both ends are gone, frames still in flight are dropped.
    deleted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Deliver { link: u32, dir: u8 },
    PodWake(PodId),
    NodeWake(NodeId),
}

struct NodeSlot {
    node: Node,
    uplink: u32,
    wake: Option<Instant>,
    /// The edge router to external hosts, not a Kubernetes node.
    edge: bool,
    /// The address last handed to a pod here (host-local IPAM's `last_reserved_ip`).
    last_ip: Option<Ipv4Address>,
}

struct PodSlot {
    pod: Pod,
    node: NodeId,
    link: u32,
    wake: Option<Instant>,
    /// Services at `instant`, to catch a stack that keeps asking to be polled now.
    same_instant: u32,
    instant: Instant,
    /// Client programs of this pod not finished yet.
    unfinished: u32,
    /// Namespace, labels and named ports (for NetworkPolicy).
    meta: netpol::Meta,
}

/// A simulated cluster.
pub struct Cluster {
    config: ClusterConfig,
    now: Instant,
    seq: u64,
    queue: queue::EventQueue<Ev>,
    nodes: Vec<NodeSlot>,
    pods: Vec<Option<PodSlot>>,
    links: Vec<Link>,
    switch: Bridge,
    trace: Trace,
    names: BTreeSet<String>,
    ips: BTreeSet<Ipv4Address>,
    out: Output,
    events_run: u64,
    /// Client programs not finished, over all pods (kept by `service_pod`).
    unfinished_clients: u32,
    services: Vec<service::Service>,
    edge: Option<NodeId>,
    building_edge: bool,
    /// NetworkPolicies and namespace labels.
    netpol: netpol::State,
    /// A crafted frame has been handed to a node ([`Cluster::inject`]): from then on frames
    /// delivered over the underlay may carry a checksum no stack wrote, and the nodes verify
    /// them all (see [`Node::uplink_input_offloaded`]), as do the pods what reaches them (see
    /// [`Pod::deliver_offloaded`]).
    crafted: bool,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("pods", &self.pods.len())
            .finish_non_exhaustive()
    }
}

/// A stack asking to be polled "now" more often than this at one instant is polled 1 µs later.
const MAX_SERVICES_PER_INSTANT: u32 = 10_000;

fn pod_mac(ip: Ipv4Address) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x0a, 0x58, o[0], o[1], o[2], o[3]])
}

fn node_mac(ip: Ipv4Address) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x52, 0x54, 0x00, o[1], o[2], o[3]])
}

/// `flannel.1`'s MAC (the kernel gives it a random one; here it derives from the VTEP address,
/// locally administered).
fn vtep_mac(vtep: Ipv4Address) -> EthernetAddress {
    let o = vtep.octets();
    EthernetAddress([0x0e, 0xf1, o[0], o[1], o[2], o[3]])
}

fn contains(cidr: Ipv4Cidr, ip: Ipv4Address) -> bool {
    cidr.contains_addr(&ip)
}

fn overlaps(a: Ipv4Cidr, b: Ipv4Cidr) -> bool {
    a.contains_addr(&b.network().address()) || b.contains_addr(&a.network().address())
}

fn broadcast(c: Ipv4Cidr) -> Ipv4Address {
    let host_bits = 32 - u32::from(c.prefix_len());
    let mask = if host_bits == 32 {
        u32::MAX
    } else {
        (1u32 << host_bits) - 1
    };
    Ipv4Address::from(u32::from(c.network().address()) | mask)
}

impl Cluster {
    /// An empty cluster at virtual time zero.
    pub fn new(config: ClusterConfig) -> Self {
        let trace = Trace::new(config.trace.clone());
        Cluster {
            config,
            now: Instant::ZERO,
            seq: 0,
            queue: queue::EventQueue::new(),
            nodes: Vec::new(),
            pods: Vec::new(),
            links: Vec::new(),
            switch: Bridge::new(None),
            trace,
            names: BTreeSet::new(),
            ips: BTreeSet::new(),
            out: Vec::new(),
            events_run: 0,
            unfinished_clients: 0,
            services: Vec::new(),
            edge: None,
            building_edge: false,
            netpol: netpol::State::default(),
            crafted: false,
        }
    }

    /// A cluster of the two nodes a scenario gets by default: `node-a` (192.168.1.100) and
    /// `node-b` (192.168.1.101), each with its `cni0` and its uplink to the underlay switch.
    /// Fails as [`Cluster::add_node`] does (a pod range too small for two nodes' slices).
    pub fn two_nodes(config: ClusterConfig) -> Result<(Cluster, NodeId, NodeId), Error> {
        let mut c = Cluster::new(config);
        let a = c.add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))?;
        let b = c.add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))?;
        Ok((c, a, b))
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The trace: interface names, counters, the events recorded as [`TraceConfig`] says.
    ///
    /// [`TraceConfig`]: crate::TraceConfig
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Installs `observer` (after any installed before): from now on it is given every event
    /// it wants as it happens, besides what [`crate::TraceConfig`] records.
    pub fn add_observer(&mut self, observer: alloc::boxed::Box<dyn Observer>) {
        self.trace.add_observer(observer)
    }

    /// Removes every installed observer and returns them, in the order installed.
    pub fn take_observers(&mut self) -> Vec<alloc::boxed::Box<dyn Observer>> {
        self.trace.take_observers()
    }

    /// The first installed observer that is a `T`.
    pub fn observer<T: Observer>(&self) -> Option<&T> {
        self.trace.observer()
    }

    /// The first installed observer that is a `T`, mutably (to read or finish what it wrote).
    pub fn observer_mut<T: Observer>(&mut self) -> Option<&mut T> {
        self.trace.observer_mut()
    }

    /// Frames delivered so far, in total (see [`Trace::frames_delivered`]).
    pub fn frames_delivered(&self) -> u64 {
        self.trace.frames_delivered()
    }

    /// Starts a new span of deliveries (see [`Trace::deliveries_since_mark`]).
    pub fn mark_deliveries(&mut self) {
        self.trace.mark_deliveries();
    }

    /// When the first and the last frame since [`Cluster::mark_deliveries`] were delivered
    /// (see [`Trace::deliveries_since_mark`]).
    pub fn deliveries_since_mark(&self) -> Option<(Instant, Instant)> {
        self.trace.deliveries_since_mark()
    }

    /// Frames delivered to node `node`'s interfaces so far (see
    /// [`Trace::frames_delivered_to`]).
    pub fn frames_delivered_to(&self, node: NodeId) -> u64 {
        self.trace.frames_delivered_to(node)
    }

    /// Events processed so far.
    pub fn events_run(&self) -> u64 {
        self.events_run
    }

    fn claim_name(&mut self, name: &str) -> Result<(), Error> {
        if self.names.contains(name) {
            return Err(Error::DuplicateName(name.to_string()));
        }
        Ok(())
    }

    fn new_link(&mut self, a: (Attach, IfaceId), b: (Attach, IfaceId)) -> u32 {
        let id = self.links.len() as u32;
        // A node's uplink is a cable between NICs; a pod's link is a veth.
        let wire = [a.0, b.0]
            .iter()
            .any(|e| matches!(e, Attach::Uplink(_) | Attach::Switch));
        let mk = |d: u32| {
            let mut c = Channel::new(
                self.config.link.clone(),
                SimRng::derive(self.config.seed, Stream::Link(id * 2 + d)),
            );
            c.set_wire(wire);
            c
        };
        let chans = [mk(0), mk(1)];
        self.links.push(Link {
            ends: [a, b],
            chans,
            deleted: false,
        });
        id
    }

    /// Adds a node, its `cni0` and its uplink to the underlay switch, and host-gw routes between
    /// it and every other node.
    pub fn add_node(&mut self, spec: NodeSpec) -> Result<NodeId, Error> {
        self.claim_name(&spec.name)?;
        let underlay = Ipv4Cidr::new(spec.ip, spec.underlay_prefix);
        if spec.underlay_prefix > 30
            || spec.ip == underlay.network().address()
            || spec.ip == broadcast(underlay)
        {
            return Err(Error::BadNodeIp(
                spec.ip,
                alloc::format!("not a host address of {}", underlay.network()),
            ));
        }
        if let Some(first) = self.nodes.first() {
            let shared = first.node.addrs().eth0.network();
            if !contains(shared, spec.ip) {
                return Err(Error::BadNodeIp(spec.ip, alloc::format!("not on the nodes' underlay {shared} (host-gw routing needs one L2 segment)")));
            }
        }
        if self.ips.contains(&spec.ip) {
            return Err(Error::DuplicateIp(spec.ip));
        }
        let pod_cidr = match spec.pod_cidr {
            Some(c) => c.network(),
            None => self.next_pod_cidr()?,
        };
        if pod_cidr.prefix_len() > 30 {
            return Err(Error::PodCidrTooSmall(pod_cidr));
        }
        for n in &self.nodes {
            if overlaps(n.node.addrs().pod_cidr, pod_cidr) {
                return Err(Error::OverlappingPodCidr(pod_cidr, n.node.addrs().pod_cidr));
            }
        }
        if contains(pod_cidr, spec.ip) {
            return Err(Error::BadNodeIp(
                spec.ip,
                alloc::format!("inside its own pod CIDR {pod_cidr}"),
            ));
        }
        let id = NodeId(self.nodes.len() as u32);
        let addrs = NodeAddrs {
            eth0: underlay,
            eth0_mac: node_mac(spec.ip),
            pod_cidr,
            cni0_mac: pod_mac(Ipv4Address::from(u32::from(pod_cidr.address()) + 1)),
            flannel_mac: vtep_mac(pod_cidr.network().address()),
        };
        let vxlan = self.config.cni == Cni::Vxlan && !self.building_edge;
        let cni0 = self
            .trace
            .register_on(alloc::format!("{}/cni0", spec.name), Some(id));
        let eth0 = self
            .trace
            .register_on(alloc::format!("{}/eth0", spec.name), Some(id));
        let flannel = vxlan.then(|| {
            self.trace
                .register_on(alloc::format!("{}/flannel.1", spec.name), Some(id))
        });
        let swport = self
            .trace
            .register(alloc::format!("underlay/{}", spec.name));
        let mut node = Node::new(
            spec.name.clone(),
            addrs,
            NodeIfaces {
                cni0,
                eth0,
                flannel,
            },
            self.config.route_capacity,
        )
        .map_err(|_| Error::RouteTableFull(spec.name.clone()))?;
        // kube-proxy's iptables and nftables modes rely on br_netfilter; the eBPF datapath
        // does not use it.
        node.set_br_netfilter(self.config.proxy != Proxy::Ebpf);
        // host-gw: each node routes every other node's pod CIDR via that node's IP (the edge
        // router outside the cluster takes part in none of it).
        let edge = self.building_edge;
        for other in self.nodes.iter_mut().filter(|o| !o.edge && !edge) {
            let o = *other.node.addrs();
            if vxlan {
                // flannel vxlan: onlink routes via the peer's VTEP, its ARP and FDB entries.
                node.add_vxlan_peer(o.pod_cidr, o.flannel_mac, o.eth0.address())
                    .map_err(|_| Error::RouteTableFull(spec.name.clone()))?;
                other
                    .node
                    .add_vxlan_peer(pod_cidr, addrs.flannel_mac, spec.ip)
                    .map_err(|_| Error::RouteTableFull(other.node.name().to_string()))?;
                continue;
            }
            node.add_route(Route {
                dst: o.pod_cidr,
                via: Some(o.eth0.address()),
                dev: Dev::Eth0,
                src: None,
            })
            .map_err(|_| Error::RouteTableFull(spec.name.clone()))?;
            other
                .node
                .add_route(Route {
                    dst: pod_cidr,
                    via: Some(spec.ip),
                    dev: Dev::Eth0,
                    src: None,
                })
                .map_err(|_| Error::RouteTableFull(other.node.name().to_string()))?;
        }
        if let (false, Some(e)) = (edge, self.edge) {
            let via = self.nodes[e.0 as usize].node.addrs().eth0.address();
            let default = Route {
                dst: Ipv4Cidr::new(Ipv4Address::UNSPECIFIED, 0),
                via: Some(via),
                dev: Dev::Eth0,
                src: None,
            };
            node.add_route(default)
                .map_err(|_| Error::RouteTableFull(spec.name.clone()))?;
        }
        if !edge {
            if let Some(mut dp) =
                self.new_dataplane(id, &spec.name, spec.ip, addrs.gateway(), addrs.pod_cidr)
            {
                dp.set_cpus(spec.cpus);
                node.register_hook(alloc::boxed::Box::new(dp));
            }
            let seed = self.config.seed;
            node.set_cpus(
                spec.cpus,
                SimRng::derive(seed, Stream::Cpu(id.0)),
                SimRng::derive(seed, Stream::Cpu(id.0)).next_u64() ^ 0x5253_5300,
            );
        }
        node.set_icmp_limits(
            self.config.icmp,
            SimRng::derive(self.config.seed, Stream::Icmp(id.0)),
        );
        let uplink = self.new_link((Attach::Uplink(id), eth0), (Attach::Switch, swport));
        self.switch.add_port(uplink);
        self.nodes.push(NodeSlot {
            node,
            uplink,
            wake: None,
            edge,
            last_ip: None,
        });
        self.names.insert(spec.name);
        self.ips.insert(spec.ip);
        self.ips.insert(addrs.gateway());
        if !edge && self.edge.is_none() {
            self.add_edge(underlay)?;
        }
        Ok(id)
    }

    fn next_pod_cidr(&self) -> Result<Ipv4Cidr, Error> {
        let range = self.config.pod_cidr.network();
        let base = u32::from(range.address());
        let slots = if range.prefix_len() >= 24 {
            1
        } else {
            1u32 << (24 - range.prefix_len())
        };
        (0..slots)
            .map(|i| {
                Ipv4Cidr::new(
                    Ipv4Address::from(base + (i << 8)),
                    24.max(range.prefix_len()),
                )
            })
            .find(|c| {
                !self
                    .nodes
                    .iter()
                    .any(|n| overlaps(n.node.addrs().pod_cidr, *c))
            })
            .ok_or(Error::NoPodCidrLeft)
    }

    /// Adds a pod on its node: a veth pair to `cni0`, an address, and its programs started now.
    pub fn add_pod(&mut self, spec: PodSpec) -> Result<PodId, Error> {
        self.claim_name(&spec.name)?;
        let node_id = spec.node;
        let naddrs = *self
            .nodes
            .get(node_id.0 as usize)
            .ok_or(Error::UnknownNode(node_id))?
            .node
            .addrs();
        let cidr = naddrs.pod_cidr;
        let usable = |ip: Ipv4Address| {
            contains(cidr, ip)
                && ip != cidr.address()
                && ip != naddrs.gateway()
                && ip != broadcast(cidr)
        };
        let ip = match spec.ip {
            Some(ip) if !usable(ip) => return Err(Error::PodIpOutsideCidr(ip, cidr)),
            Some(ip) if self.ips.contains(&ip) => return Err(Error::DuplicateIp(ip)),
            Some(ip) => ip,
            None => {
                // Like the host-local IPAM plugin: the next free address after the one last
                // handed out, wrapping around, so a re-created pod gets a new address.
                let first = u32::from(cidr.address()) + 2;
                let last = u32::from(broadcast(cidr));
                let start = self.nodes[node_id.0 as usize]
                    .last_ip
                    .map_or(first, |l| (u32::from(l) + 1).clamp(first, last));
                let ip = (start..last)
                    .chain(first..start)
                    .map(Ipv4Address::from)
                    .find(|ip| !self.ips.contains(ip))
                    .ok_or(Error::PodCidrExhausted(cidr))?;
                self.nodes[node_id.0 as usize].last_ip = Some(ip);
                ip
            }
        };
        let id = PodId(self.pods.len() as u32);
        let eth0 = self.trace.register(alloc::format!("{}/eth0", spec.name));
        let link_id = self.links.len() as u32;
        let veth = self.trace.register_on(
            alloc::format!(
                "{}/veth{:08x}",
                self.nodes[node_id.0 as usize].node.name(),
                id.0
            ),
            Some(node_id),
        );
        let link = self.new_link((Attach::Pod(id), eth0), (Attach::NodePort(node_id), veth));
        debug_assert_eq!(link, link_id);
        let node = &mut self.nodes[node_id.0 as usize].node;
        node.attach_port(link, veth);
        node.set_port_hairpin(link, self.config.hairpin_mode);
        let addrs = PodAddrs {
            ip: IpCidr::Ipv4(Ipv4Cidr::new(ip, cidr.prefix_len())),
            mac: pod_mac(ip),
            gateway: naddrs.gateway(),
        };
        let rng = SimRng::derive(self.config.seed, Stream::Pod(id.0));
        let pod = Pod::new(
            spec.name.clone(),
            addrs,
            &spec.programs,
            rng,
            crate::pod::StackConfig {
                tcp_buffer: self.config.tcp_buffer,
                nic: crate::pod::Nic {
                    mtu: match self.config.cni {
                        Cni::Vxlan => crate::node::vxlan::POD_MTU,
                        Cni::Bridge | Cni::Native => crate::pod::POD_MTU,
                    },
                    tso: self.config.tso,
                },
                timestamps: self.config.tcp_timestamps,
            },
            self.now,
        );
        self.pods.push(Some(PodSlot {
            pod,
            node: node_id,
            link,
            wake: None,
            same_instant: 0,
            instant: self.now,
            unfinished: 0,
            meta: netpol::Meta {
                namespace: spec.namespace,
                labels: spec.labels,
                ports: spec.ports,
                l7_proxy: false,
            },
        }));
        self.names.insert(spec.name);
        self.ips.insert(ip);
        self.resync_policies();
        self.service_pod(id);
        Ok(id)
    }

    /// Deletes a pod at once (`kubectl delete pod --grace-period=0 --force`): its stack and
    /// sockets vanish without sending anything, its veth leaves the node's bridge (which
    /// forgets its MAC) and frames still in flight on it are dropped as `pod deleted`, its name
    /// and address are free again, and it leaves every Service's endpoints (every node's
    /// kube-proxy resyncs). Conntrack entries to it stay until they expire, as in Linux. Its
    /// [`PodId`] is never reused: [`Cluster::pod`] answers `None` from now on.
    pub fn remove_pod(&mut self, pod: PodId) -> Result<(), Error> {
        let slot = self
            .pods
            .get_mut(pod.0 as usize)
            .and_then(Option::take)
            .ok_or(Error::UnknownPod(pod))?;
        self.unfinished_clients -= slot.unfinished;
        self.nodes[slot.node.0 as usize].node.detach_port(slot.link);
        self.links[slot.link as usize].deleted = true;
        self.names.remove(slot.pod.name());
        let ip = crate::v4(slot.pod.addrs().ip.address());
        self.ips.remove(&ip);
        let mut changed = false;
        for s in self.services.iter_mut() {
            let before = s.spec.backends.len();
            s.spec.backends.retain(|b| *b != pod);
            changed |= s.spec.backends.len() != before;
        }
        if changed {
            self.resync_services();
        }
        self.resync_policies();
        Ok(())
    }

    /// Starts another program in a running pod (like `kubectl exec`).
    pub fn start_program(&mut self, pod: PodId, program: Program) -> Result<(), Error> {
        let now = self.now;
        let slot = self
            .pods
            .get_mut(pod.0 as usize)
            .and_then(|s| s.as_mut())
            .ok_or(Error::UnknownPod(pod))?;
        slot.pod.start(&program, now);
        self.service_pod(pod);
        Ok(())
    }

    /// Removes a pod's finished client programs and returns them with their records, in
    /// start order (a long-running embedder keeps a pod's program list short this way).
    pub fn take_finished_clients(&mut self, pod: PodId) -> Result<Vec<Client>, Error> {
        let slot = self
            .pods
            .get_mut(pod.0 as usize)
            .and_then(|s| s.as_mut())
            .ok_or(Error::UnknownPod(pod))?;
        Ok(slot.pod.take_finished_clients())
    }

    /// A pod.
    pub fn pod(&self, id: PodId) -> Option<&Pod> {
        self.pods.get(id.0 as usize)?.as_ref().map(|s| &s.pod)
    }

    /// Every pod, in creation order.
    pub fn pods(&self) -> impl Iterator<Item = (PodId, &Pod)> {
        self.pods
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (PodId(i as u32), &s.pod)))
    }

    /// The node a pod runs on.
    pub fn pod_node(&self, id: PodId) -> Option<NodeId> {
        self.pods.get(id.0 as usize)?.as_ref().map(|s| s.node)
    }

    /// A node.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.0 as usize).map(|s| &s.node)
    }

    /// A node, mutably (to register netfilter modules or add routes).
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id.0 as usize).map(|s| &mut s.node)
    }

    /// Every node, in creation order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.edge)
            .map(|(i, s)| (NodeId(i as u32), &s.node))
    }

    /// The edge router between the underlay and external hosts, once one was added.
    pub fn edge(&self) -> Option<NodeId> {
        self.edge
    }

    /// Looks a pod up by name.
    pub fn pod_by_name(&self, name: &str) -> Option<PodId> {
        self.pods()
            .find(|(_, p)| p.name() == name)
            .map(|(id, _)| id)
    }

    /// Looks a node up by name.
    pub fn node_by_name(&self, name: &str) -> Option<NodeId> {
        self.nodes()
            .find(|(_, n)| n.name() == name)
            .map(|(id, _)| id)
    }
}
