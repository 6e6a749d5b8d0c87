//! What a cluster is built from: its configuration, node and pod specifications, and the
//! errors a change can meet.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::NodeId;
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
}

impl NodeSpec {
    /// A node on a /24 underlay.
    pub fn new(name: &str, ip: impl Into<Ipv4Address>) -> Self {
        NodeSpec {
            name: name.to_string(),
            ip: ip.into(),
            underlay_prefix: 24,
            pod_cidr: None,
        }
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
}

impl PodSpec {
    /// A pod with no program.
    pub fn new(name: &str, node: NodeId) -> Self {
        PodSpec {
            name: name.to_string(),
            node,
            ip: None,
            programs: Vec::new(),
        }
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
        }
    }
}
