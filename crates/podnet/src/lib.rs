//! podnet core: a deterministic, `no_std` userspace Kubernetes network.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bridge;
pub mod cilium;
pub mod cluster;
pub mod conntrack;
pub mod dataplane;
pub mod ebpf;
pub mod kube_proxy;
pub mod link;
pub mod nat;
pub mod netfilter;
pub mod node;
pub mod packet;
mod pairset;
pub mod pcap;
pub mod pod;
pub mod policy;
pub mod program;
pub mod race;
pub mod rng;
pub mod route;
pub mod sort;
pub mod tcpdump;
pub mod trace;
mod window;

pub use cluster::{
    Cluster, ClusterConfig, Cni, Error, NodeId, NodeSpec, PodId, PodSpec, Proxy, Service,
    ServicePortSpec, ServiceSpec, Wire,
};
pub use link::LinkConfig;
pub use node::icmp_limit::IcmpConfig;
pub use program::{Client, ClientSpec, ConnRecord, Outcome, Program, Protocol, Request};
pub use smoltcp::time::{Duration, Instant};
pub use trace::TraceConfig;
