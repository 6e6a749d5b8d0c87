//! `Cluster.spec.ebpf`: the eBPF datapath's settings, with Cilium's Helm value names.

use crate::de::{impl_from_node, At};

/// `Cluster.spec.ebpf`, with Cilium's Helm value names.
#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct Ebpf {
    /// Cilium's `socketLB.enabled`: a pod's `connect()` to a ClusterIP is translated to the backend
    /// at the socket, so no packet carries the ClusterIP. Default `true`.
    #[cfg_attr(feature = "schema", serde(rename = "socketLB"))]
    pub socket_lb: Option<bool>,
    /// Cilium's `loadBalancer.*`.
    pub load_balancer: EbpfLb,
    /// Cilium's `maglev.*`.
    pub maglev: EbpfMaglev,
    /// Cilium's `bpf.*`: the sizes of the CT and NAT maps (LRU: a full map evicts its least
    /// recently used entry, it never drops).
    pub bpf: EbpfMaps,
}

impl_from_node!(
    Ebpf,
    default {
        socket_lb: "socketLB",
        load_balancer: "loadBalancer",
        maglev: "maglev",
        bpf: "bpf"
    }
);

#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct EbpfLb {
    /// Backend selection: `random` or `maglev` (consistent hashing). Default `random`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::lb_algorithm")
    )]
    pub algorithm: Option<At<String>>,
    /// NodePort forwarding to a backend on another node: `snat` (the node masquerades; replies come
    /// back through it) or `dsr` (direct server return: the backend answers the client itself, the
    /// client address is kept). Default `snat`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::lb_mode"))]
    pub mode: Option<At<String>>,
}

impl_from_node!(
    EbpfLb,
    default {
        algorithm: "algorithm",
        mode: "mode"
    }
);

#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct EbpfMaglev {
    /// `maglev.tableSize`: slots of each Service's Maglev table, a prime. Default 16381.
    pub table_size: Option<At<u32>>,
}

impl_from_node!(
    EbpfMaglev,
    default {
        table_size: "tableSize"
    }
);

#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct EbpfMaps {
    /// `bpf.ctTcpMax`: entries of the TCP CT map. Default 524288.
    pub ct_tcp_max: Option<At<u32>>,
    /// `bpf.ctAnyMax`: entries of the non-TCP CT map. Default 262144.
    pub ct_any_max: Option<At<u32>>,
    /// `bpf.natMax`: entries of the SNAT map. Default 524288.
    pub nat_max: Option<At<u32>>,
    /// `bpf.masquerade`: pod traffic leaving the pod CIDR is masqueraded by the eBPF datapath (to
    /// the node's address). Default `true`.
    pub masquerade: Option<bool>,
}

impl_from_node!(
    EbpfMaps,
    default {
        ct_tcp_max: "ctTcpMax",
        ct_any_max: "ctAnyMax",
        nat_max: "natMax",
        masquerade: "masquerade"
    }
);
