//! `podnet-kdiff`: holds podnet's node dataplane against the Linux kernel it imitates.
//!
//! For each node of a scenario, a network namespace is built that *is* that node: podnet's
//! interface names, MACs, addresses, routes and neighbours, `cni0` with its veth ports
//! (hairpin on), `flannel.1` for VXLAN, the sysctls of a Kubernetes node, and the very rules
//! podnet generated, loaded with `iptables-restore` and `nft -f`. The frames podnet's node
//! received on its wires are injected in their order with `AF_PACKET` sockets on the other
//! ends, and what the kernel emits is captured and compared with what podnet sent, byte for
//! byte; then the conntrack tables and counters, the rules as the kernel lists them back, and
//! per-rule packet counters. Random choices (backend, `--random-fully` port) are forced onto
//! podnet's with exact-tuple harness rules; see the book's chapter *Kernel differential
//! testing* for what is compared, what differs by nature and every known divergence.
//!
//! Linux only, run as root. Not part of the wasm or no_std builds.

#![cfg_attr(not(target_os = "linux"), allow(unused))]

#[cfg(target_os = "linux")]
pub mod corpus;
#[cfg(target_os = "linux")]
pub mod corpus_run;
#[cfg(target_os = "linux")]
pub mod counts;
#[cfg(target_os = "linux")]
pub mod craft;
#[cfg(target_os = "linux")]
pub mod ctlimit;
#[cfg(target_os = "linux")]
pub mod frame;
#[cfg(target_os = "linux")]
pub mod gso;
#[cfg(target_os = "linux")]
pub mod icmplimit;
#[cfg(target_os = "linux")]
pub mod neighq;
#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(target_os = "linux")]
pub mod plan;
#[cfg(target_os = "linux")]
pub mod replay;
#[cfg(target_os = "linux")]
pub mod rules;
#[cfg(target_os = "linux")]
pub mod sys;
