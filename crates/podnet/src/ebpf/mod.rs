//! Building blocks of the Cilium-style eBPF datapath: its maps and its load-balancing table.
pub mod config;
pub mod ct;
pub mod datapath;
mod dsr;
pub mod lb;
pub mod lru;
pub mod maglev;

pub use config::{Algorithm, EbpfConfig, NodePortMode, HAIRPIN_SOURCE};
pub use datapath::EbpfDatapath;
pub use lb::{ConnectReq, LbMaps, SockXlate, SocketLb};
