//! Settings of the Cilium-style eBPF datapath, named after Cilium's Helm values.

/// How a Service backend is chosen for a new connection by the per-packet load balancer
/// (Helm `loadBalancer.algorithm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    /// A uniformly random backend (Cilium's default).
    #[default]
    Random,
    /// Maglev consistent hashing of the packet's 5-tuple into a table of
    /// [`EbpfConfig::maglev_table_size`] slots: every node picks the same backend for a flow.
    Maglev,
}

/// How NodePort traffic reaches a backend on another node (Helm `loadBalancer.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NodePortMode {
    /// The node that received the packet rewrites the destination to the backend and the
    /// source to its own IP; the reply comes back through it (Cilium's default).
    #[default]
    Snat,
    /// Direct Server Return: the source (the client) is kept, the Service address travels to
    /// the backend's node in an IPv4 option, and the backend's node answers the client
    /// directly with the Service address as the source.
    Dsr,
}

/// The eBPF datapath's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EbpfConfig {
    /// Socket-level load balancing (`socketLB.enabled`, default true): a pod's `connect()` to a
    /// ClusterIP is translated to a backend before any packet exists.
    pub socket_lb: bool,
    /// The per-packet backend selection.
    pub algorithm: Algorithm,
    /// Maglev table size M (`maglev.tableSize`): one of Cilium's primes, default 16381.
    pub maglev_table_size: u32,
    /// NodePort forwarding mode.
    pub node_port_mode: NodePortMode,
    /// Entries of the TCP CT map (`bpf.ctTcpMax`, default 524288).
    pub ct_tcp_max: u32,
    /// Entries of the non-TCP CT map (`bpf.ctAnyMax`, default 262144).
    pub ct_any_max: u32,
    /// Entries of the SNAT map (`bpf.natMax`, default 524288).
    pub nat_max: u32,
    /// BPF masquerading of pod traffic leaving the pod CIDR (`bpf.masquerade`, default true).
    pub masquerade: bool,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        EbpfConfig {
            socket_lb: true,
            algorithm: Algorithm::Random,
            maglev_table_size: super::maglev::DEFAULT_TABLE_SIZE,
            node_port_mode: NodePortMode::Snat,
            ct_tcp_max: 524_288,
            ct_any_max: 262_144,
            nat_max: 524_288,
            masquerade: true,
        }
    }
}

/// Cilium's CT timeouts (the agent's `--bpf-ct-timeout-*` defaults), in seconds.
pub mod timeouts {
    /// An established TCP connection (`regular-tcp`, 2h13m20s).
    pub const TCP: u64 = 8000;
    /// A TCP connection until it is established (`regular-tcp-syn`).
    pub const TCP_SYN: u64 = 60;
    /// A TCP connection once both sides closed, or after a RST (`regular-tcp-fin`).
    pub const TCP_FIN: u64 = 10;
    /// Any other protocol (`regular-any`).
    pub const ANY: u64 = 60;
}

/// The source address of a pod's connection to itself through a Service (Cilium's
/// `IPV4_LOOPBACK`, the service loopback address).
pub const HAIRPIN_SOURCE: smoltcp::wire::Ipv4Address =
    smoltcp::wire::Ipv4Address::new(169, 254, 42, 1);

/// Cilium's IPv4 option carrying the Service address to the backend's node in DSR mode: type
/// `IPOPT_COPY | 0x1a` (0x9a), length 8, then the Service port and address.
pub const DSR_OPTION_TYPE: u8 = 0x9a;
/// Length of the DSR option in bytes.
pub const DSR_OPTION_LEN: usize = 8;
