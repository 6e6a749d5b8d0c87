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

/// The IPv4 address of `a`. podnet's stacks have IPv4 addresses only: smoltcp's IPv6 is
/// compiled in (its segmentation offload needs it) but never configured, so no IPv6 address
/// reaches here; one would read as 0.0.0.0.
pub fn v4(a: smoltcp::wire::IpAddress) -> smoltcp::wire::Ipv4Address {
    match a {
        smoltcp::wire::IpAddress::Ipv4(a) => a,
        smoltcp::wire::IpAddress::Ipv6(_) => smoltcp::wire::Ipv4Address::UNSPECIFIED,
    }
}
pub mod gso;
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
