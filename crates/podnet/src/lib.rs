//! podnet core: a deterministic, `no_std` userspace Kubernetes network.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod pcap;
pub mod tcpdump;
pub mod bridge;
pub mod link;
pub mod netfilter;
pub mod node;
pub mod rng;
pub mod route;
pub mod trace;
pub mod pod;
pub mod program;
pub mod cluster;

pub use cluster::{Cluster, ClusterConfig, Error, NodeId, NodeSpec, PodId, PodSpec};
pub use link::LinkConfig;
pub use program::{ClientSpec, ConnRecord, Outcome, Program, Protocol, Request};
pub use trace::TraceConfig;
pub use smoltcp::time::{Duration, Instant};
