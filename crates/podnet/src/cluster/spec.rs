//! What a cluster is built from: its configuration, node and pod specifications, and the
//! errors a change can meet.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::NodeId;
use crate::conntrack::CtConfig;
use crate::kube_proxy::L4;
use crate::link::LinkConfig;
use crate::program::Program;
use crate::trace::TraceConfig;

/// Cluster-wide settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Every random choice derives from it.
    pub seed: u64,
    /// Node `i` gets the `i`-th /24 of this range unless its spec names one.
    pub pod_cidr: Ipv4Cidr,
    /// Properties of every link (veths and uplinks).
    pub link: LinkConfig,
    /// What the trace records.
    pub trace: TraceConfig,
    /// Routes a node's table holds at most.
    pub route_capacity: usize,
    /// Receive and send buffer of every TCP socket, in bytes.
    pub tcp_buffer: usize,
    /// TCP segmentation offload on every pod's `eth0` (Linux's veth default): a pod's TCP
    /// sends super-segments that cross the node whole and are cut into segments only on a
    /// wire (see [`crate::gso`]). Off is `ethtool -K eth0 tso off gso off` in every pod.
    pub tso: bool,
    /// TCP timestamps in every pod (`net.ipv4.tcp_timestamps`, on in Linux): TSval from the
    /// virtual millisecond clock, options in Linux's order.
    pub tcp_timestamps: bool,
    /// ClusterIPs are allocated from this range.
    pub service_cidr: Ipv4Cidr,
    /// How Services are implemented on the nodes.
    pub proxy: Proxy,
    /// Every node's conntrack settings.
    pub conntrack: CtConfig,
    /// MASQUERADE with `--random-fully` (kube-proxy uses it when the kernel has it).
    pub random_fully: bool,
    /// kube-proxy `--masquerade-all`: masquerade every packet to a ClusterIP.
    pub masquerade_all: bool,
    /// The subnet of hosts outside the cluster, behind the edge router (the underlay's
    /// default gateway, at its last host address).
    pub external_cidr: Ipv4Cidr,
    /// How pod traffic crosses between nodes.
    pub cni: Cni,
    /// Hairpin mode on every pod's `cni0` port (the CNI bridge plugin's `hairpinMode`, on in
    /// flannel's and most Kubernetes configurations): a frame may go back out of the port it
    /// came in on, which a pod reaching itself through its Service needs. Off, that traffic
    /// is dropped by the bridge, as in Linux.
    pub hairpin_mode: bool,
    /// The eBPF datapath's settings (used with [`Proxy::Ebpf`]).
    pub ebpf: crate::ebpf::EbpfConfig,
    /// Every node's and pod's limits on the ICMP errors it sends (`net.ipv4.icmp_*`).
    pub icmp: crate::node::icmp_limit::IcmpConfig,
}

/// The pod network between nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cni {
    /// flannel's `host-gw`: each node routes every other node's pod CIDR via that node's IP on
    /// the shared L2 underlay; pods on `cni0`, MTU 1500.
    #[default]
    Bridge,
    /// flannel's `vxlan` backend: pod traffic between nodes is encapsulated by `flannel.1`
    /// (VNI 1, UDP 8472); pod MTU 1450 (see [`crate::node::vxlan`]).
    Vxlan,
    /// Pod CIDRs routed natively, without encapsulation. On the single L2 underlay this
    /// simulator has, that is exactly what [`Cni::Bridge`] does (direct routes to each node
    /// IP, `cni0` unchanged), and it is implemented as that.
    Native,
}

/// The Service proxy on the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxy {
    /// No Service handling, no conntrack: plain routing.
    None,
    /// kube-proxy in iptables mode.
    Iptables,
    /// kube-proxy in nftables mode.
    Nftables,
    /// No kube-proxy: Cilium-style eBPF programs (socket-level and per-packet load
    /// balancing, LRU CT and NAT maps), configured by [`ClusterConfig::ebpf`].
    Ebpf,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            seed: 1,
            pod_cidr: Ipv4Cidr::new(Ipv4Address::new(10, 244, 0, 0), 16),
            link: LinkConfig::default(),
            trace: TraceConfig::default(),
            route_capacity: 4096,
            tcp_buffer: 64 * 1024,
            tso: true,
            tcp_timestamps: true,
            service_cidr: Ipv4Cidr::new(Ipv4Address::new(10, 96, 0, 0), 12),
            proxy: Proxy::Iptables,
            conntrack: CtConfig::default(),
            random_fully: true,
            masquerade_all: false,
            external_cidr: Ipv4Cidr::new(Ipv4Address::new(203, 0, 113, 0), 24),
            cni: Cni::Bridge,
            hairpin_mode: true,
            ebpf: crate::ebpf::EbpfConfig::default(),
            icmp: crate::node::icmp_limit::IcmpConfig::default(),
        }
    }
}

/// A node to add.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Unique name.
    pub name: String,
    /// Address on the underlay.
    pub ip: Ipv4Address,
    /// Prefix length of the underlay subnet every node shares.
    pub underlay_prefix: u8,
    /// The node's pod CIDR (`None`: the next /24 of the cluster's range).
    pub pod_cidr: Option<Ipv4Cidr>,
    /// CPUs handling its packets (at least 1; see [`crate::race`]).
    pub cpus: u32,
}

impl NodeSpec {
    /// A node on a /24 underlay.
    pub fn new(name: &str, ip: impl Into<Ipv4Address>) -> Self {
        NodeSpec {
            name: name.to_string(),
            ip: ip.into(),
            underlay_prefix: 24,
            pod_cidr: None,
            cpus: 1,
        }
    }

    /// Sets the number of CPUs.
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus.max(1);
        self
    }

    /// Sets the pod CIDR.
    pub fn pod_cidr(mut self, cidr: Ipv4Cidr) -> Self {
        self.pod_cidr = Some(cidr);
        self
    }
}

/// A pod to add.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSpec {
    /// Unique name.
    pub name: String,
    /// The node it runs on.
    pub node: NodeId,
    /// Its address (`None`: the next free one of the node's pod CIDR, from .2 up).
    pub ip: Option<Ipv4Address>,
    /// What it runs.
    pub programs: Vec<Program>,
    /// Namespace (`default`).
    pub namespace: String,
    /// Labels.
    pub labels: crate::policy::Labels,
    /// Named container ports (for NetworkPolicy ports by name).
    pub ports: Vec<crate::policy::NamedPort>,
}

impl PodSpec {
    /// A pod with no program.
    pub fn new(name: &str, node: NodeId) -> Self {
        PodSpec {
            name: name.to_string(),
            node,
            ip: None,
            programs: Vec::new(),
            namespace: "default".to_string(),
            labels: crate::policy::Labels::new(),
            ports: Vec::new(),
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.to_string();
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds a named container port.
    pub fn named_port(mut self, name: &str, protocol: crate::policy::Proto, port: u16) -> Self {
        self.ports.push(crate::policy::NamedPort {
            name: name.to_string(),
            protocol,
            port,
        });
        self
    }

    /// Sets the address.
    pub fn ip(mut self, ip: impl Into<Ipv4Address>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// Adds a program.
    pub fn program(mut self, p: Program) -> Self {
        self.programs.push(p);
        self
    }
}

/// A Service to add (the network-relevant part of a Kubernetes Service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The ClusterIP (`None`: the next free one of the service CIDR).
    pub cluster_ip: Option<Ipv4Address>,
    /// Ports.
    pub ports: Vec<ServicePortSpec>,
    /// The pods behind it (its endpoints, all ready).
    pub backends: Vec<super::PodId>,
    /// `sessionAffinity: ClientIP` with this `timeoutSeconds`.
    pub session_affinity: Option<u32>,
    /// `type: NodePort` (ports without a nodePort get one from 30000-32767).
    pub node_port: bool,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
}

impl ServiceSpec {
    /// A ClusterIP Service `default/NAME` with one TCP port to `target_port` on `backends`.
    pub fn new(name: &str, port: u16, target_port: u16, backends: Vec<super::PodId>) -> Self {
        ServiceSpec {
            name: name.to_string(),
            namespace: "default".to_string(),
            cluster_ip: None,
            ports: alloc::vec![ServicePortSpec {
                name: String::new(),
                protocol: L4::Tcp,
                port,
                target_port,
                node_port: None
            }],
            backends,
            session_affinity: None,
            node_port: false,
            external_local: false,
            internal_local: false,
        }
    }

    /// Sets the ClusterIP.
    pub fn cluster_ip(mut self, ip: impl Into<Ipv4Address>) -> Self {
        self.cluster_ip = Some(ip.into());
        self
    }
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortSpec {
    /// Port name (`""` when unnamed).
    pub name: String,
    /// TCP or UDP.
    pub protocol: L4,
    /// The Service port.
    pub port: u16,
    /// The backends' port.
    pub target_port: u16,
    /// The NodePort (with `node_port` Services; `None`: allocated).
    pub node_port: Option<u16>,
}

/// Why a cluster change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Another node or pod has this name.
    DuplicateName(String),
    /// Another node or pod has this address.
    DuplicateIp(Ipv4Address),
    /// No node with this id.
    UnknownNode(NodeId),
    /// Two nodes' pod CIDRs overlap.
    OverlappingPodCidr(Ipv4Cidr, Ipv4Cidr),
    /// The pod address is outside its node's pod CIDR, or is its network, gateway or broadcast.
    PodIpOutsideCidr(Ipv4Address, Ipv4Cidr),
    /// The node's pod CIDR has no free address.
    PodCidrExhausted(Ipv4Cidr),
    /// The cluster pod range has no /24 left for another node.
    NoPodCidrLeft,
    /// A pod CIDR too small to hold a gateway and a pod (longer than /30).
    PodCidrTooSmall(Ipv4Cidr),
    /// A node address that is not a usable host address of its underlay subnet, or not on the
    /// same subnet as the other nodes (host-gw routing needs one L2 segment).
    BadNodeIp(Ipv4Address, String),
    /// A node's route table is full.
    RouteTableFull(String),
    /// A Service's name is taken, its ClusterIP is outside the service CIDR or used, or its
    /// NodePort is taken or out of range.
    BadService(String),
    /// No such pod.
    UnknownPod(super::PodId),
    /// No Service with this `namespace/name`.
    UnknownService(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DuplicateName(n) => {
                write!(f, "name {n:?} is already used by another node or pod")
            }
            Error::DuplicateIp(ip) => write!(f, "address {ip} is already used"),
            Error::UnknownNode(id) => write!(f, "no node with id {}", id.0),
            Error::OverlappingPodCidr(a, b) => write!(f, "pod CIDR {a} overlaps {b}"),
            Error::PodIpOutsideCidr(ip, c) => write!(
                f,
                "pod address {ip} is not a usable address of the node's pod CIDR {c}"
            ),
            Error::PodCidrExhausted(c) => write!(f, "pod CIDR {c} has no free address"),
            Error::NoPodCidrLeft => {
                write!(f, "the cluster pod CIDR has no /24 left for another node")
            }
            Error::PodCidrTooSmall(c) => write!(f, "pod CIDR {c} is too small (at most /30)"),
            Error::BadNodeIp(ip, why) => write!(f, "node address {ip}: {why}"),
            Error::RouteTableFull(n) => write!(f, "route table of node {n} is full"),
            Error::BadService(why) => write!(f, "service: {why}"),
            Error::UnknownPod(id) => write!(f, "no pod with id {}", id.0),
            Error::UnknownService(n) => write!(f, "no Service {n}"),
        }
    }
}
