//! The podnet kinds as written (`apiVersion: podnet.dev/v1alpha1`): every field optional, read
//! with its position; defaults and checks are applied in [`crate::resolve`].

use crate::de::{impl_from_node, invalid_type, At, DeError, FromNode, Path};
use crate::node::{Node, Val};
use std::collections::BTreeMap;

/// A number or a string, for fields that take either (`loss: 0.1` or `loss: 10%`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NumOrStr {
    Num(f64),
    Str(String),
}

impl FromNode for NumOrStr {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        match &n.val {
            Val::Int(i) => Ok(NumOrStr::Num(*i as f64)),
            Val::UInt(u) => Ok(NumOrStr::Num(*u as f64)),
            Val::Float(f) => Ok(NumOrStr::Num(*f)),
            Val::Str(s) => Ok(NumOrStr::Str(s.clone())),
            _ => Err(invalid_type(n, path, "a number or a string")),
        }
    }
}

/// `Cluster.spec`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClusterSpec {
    pub seed: Option<u64>,
    pub pod_cidr: Option<At<String>>,
    pub service_cidr: Option<At<String>>,
    pub external_cidr: Option<At<String>>,
    pub cni: Option<At<String>>,
    pub hairpin_mode: Option<bool>,
    pub proxy: Option<At<String>>,
    pub masquerade: Masquerade,
    pub conntrack: Conntrack,
    pub ebpf: Ebpf,
    pub link: Link,
    pub nodes: Option<At<Vec<At<NodeEntry>>>>,
    pub external: Vec<At<ExternalEntry>>,
}

impl_from_node!(
    ClusterSpec,
    default {
        seed: "seed",
        pod_cidr: "podCIDR",
        service_cidr: "serviceCIDR",
        external_cidr: "externalCIDR",
        cni: "cni",
        hairpin_mode: "hairpinMode",
        proxy: "proxy",
        masquerade: "masquerade",
        conntrack: "conntrack",
        ebpf: "ebpf",
        link: "link",
        nodes: "nodes",
        external: "external"
    }
);

#[derive(Clone, Debug, Default)]
pub(crate) struct Masquerade {
    pub random_fully: Option<bool>,
    pub all: Option<bool>,
}

impl_from_node!(
    Masquerade,
    default {
        random_fully: "randomFully",
        all: "all"
    }
);

#[derive(Clone, Debug, Default)]
pub(crate) struct Conntrack {
    pub max: Option<At<u32>>,
    pub buckets: Option<At<u32>>,
    pub tcp_be_liberal: Option<bool>,
    pub tcp_loose: Option<bool>,
    pub checksum: Option<bool>,
    pub timeouts: BTreeMap<String, At<NumOrStr>>,
}

impl_from_node!(
    Conntrack,
    default {
        max: "max",
        buckets: "buckets",
        tcp_be_liberal: "tcpBeLiberal",
        tcp_loose: "tcpLoose",
        checksum: "checksum",
        timeouts: "timeouts"
    }
);

/// `Cluster.spec.ebpf`, with Cilium's Helm value names.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ebpf {
    pub socket_lb: Option<bool>,
    pub load_balancer: EbpfLb,
    pub maglev: EbpfMaglev,
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
pub(crate) struct EbpfLb {
    pub algorithm: Option<At<String>>,
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
pub(crate) struct EbpfMaglev {
    pub table_size: Option<At<u32>>,
}

impl_from_node!(
    EbpfMaglev,
    default {
        table_size: "tableSize"
    }
);

#[derive(Clone, Debug, Default)]
pub(crate) struct EbpfMaps {
    pub ct_tcp_max: Option<At<u32>>,
    pub ct_any_max: Option<At<u32>>,
    pub nat_max: Option<At<u32>>,
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

#[derive(Clone, Debug, Default)]
pub(crate) struct Link {
    pub latency: Option<At<String>>,
    pub bandwidth: Option<At<String>>,
    pub loss: Option<At<NumOrStr>>,
    pub queue_bytes: Option<At<u32>>,
}

impl_from_node!(
    Link,
    default {
        latency: "latency",
        bandwidth: "bandwidth",
        loss: "loss",
        queue_bytes: "queueBytes"
    }
);

#[derive(Clone, Debug)]
pub(crate) struct NodeEntry {
    pub name: At<String>,
    pub ip: At<String>,
    pub pod_cidr: Option<At<String>>,
}

impl_from_node!(NodeEntry {
    name: "name",
    ip: "ip",
    pod_cidr: "podCIDR"
});

#[derive(Clone, Debug)]
pub(crate) struct ExternalEntry {
    pub name: At<String>,
    pub ip: At<String>,
    pub image: Option<String>,
    pub ports: Vec<ExternalPort>,
}

impl_from_node!(ExternalEntry {
    name: "name",
    ip: "ip",
    image: "image",
    ports: "ports" = default
});

#[derive(Clone, Debug)]
pub(crate) struct ExternalPort {
    pub name: String,
    pub container_port: u16,
    pub protocol: Option<At<String>>,
}

impl_from_node!(ExternalPort {
    name: "name" = default,
    container_port: "containerPort",
    protocol: "protocol"
});

/// `Traffic.spec`.
#[derive(Clone, Debug)]
pub(crate) struct TrafficSpec {
    pub from: At<String>,
    pub to: At<String>,
    pub protocol: Option<At<String>>,
    pub request: Option<At<String>>,
    pub bytes: Option<At<u64>>,
    pub upload: Option<At<u64>>,
    pub count: Option<At<u32>>,
    pub concurrency: Option<At<u32>>,
    pub start: Option<At<String>>,
    pub interval: Option<At<String>>,
    pub timeout: Option<At<String>>,
    pub expect: Option<Expect>,
}

impl_from_node!(TrafficSpec {
    from: "from",
    to: "to",
    protocol: "protocol",
    request: "request",
    bytes: "bytes",
    upload: "upload",
    count: "count",
    concurrency: "concurrency",
    start: "start",
    interval: "interval",
    timeout: "timeout",
    expect: "expect"
});

#[derive(Clone, Debug)]
pub(crate) struct Expect {
    pub outcome: Option<At<String>>,
}

impl_from_node!(Expect { outcome: "outcome" });

/// `Fault.spec`.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultSpec {
    pub at: Option<At<String>>,
    pub until: Option<At<String>>,
    pub link: Option<At<String>>,
    pub loss: Option<At<NumOrStr>>,
    pub latency: Option<At<String>>,
    pub bandwidth: Option<At<String>>,
    pub down: Option<At<bool>>,
    pub delete_pod: Option<At<String>>,
    pub scale: Option<At<Scale>>,
    pub conntrack_flush: Option<At<String>>,
    pub conntrack_max: Option<At<ConntrackMax>>,
}

impl_from_node!(
    FaultSpec,
    default {
        at: "at",
        until: "until",
        link: "link",
        loss: "loss",
        latency: "latency",
        bandwidth: "bandwidth",
        down: "down",
        delete_pod: "deletePod",
        scale: "scale",
        conntrack_flush: "conntrackFlush",
        conntrack_max: "conntrackMax"
    }
);

#[derive(Clone, Debug)]
pub(crate) struct Scale {
    pub deployment: At<String>,
    pub replicas: At<u32>,
}

impl_from_node!(Scale {
    deployment: "deployment",
    replicas: "replicas"
});

#[derive(Clone, Debug)]
pub(crate) struct ConntrackMax {
    pub node: At<String>,
    pub max: At<u32>,
}

impl_from_node!(ConntrackMax {
    node: "node",
    max: "max"
});

/// `ConnectivityExpectation.spec`: pairs expected allowed or denied, and/or a truth table.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExpectationSpec {
    pub port: Option<At<u16>>,
    pub protocol: Option<At<String>>,
    pub allowed: Vec<At<PairEntry>>,
    pub denied: Vec<At<PairEntry>>,
    pub matrix: Option<At<String>>,
}

impl_from_node!(
    ExpectationSpec,
    default {
        port: "port",
        protocol: "protocol",
        allowed: "allowed",
        denied: "denied",
        matrix: "matrix"
    }
);

/// One `allowed` / `denied` entry.
#[derive(Clone, Debug, Default)]
pub(crate) struct PairEntry {
    pub from: Option<At<String>>,
    pub to: Option<At<String>>,
    pub port: Option<At<u16>>,
    pub protocol: Option<At<String>>,
}

impl_from_node!(
    PairEntry,
    default {
        from: "from",
        to: "to",
        port: "port",
        protocol: "protocol"
    }
);

/// A podnet object: its `spec` (the rest of the header is read by the loader).
#[derive(Clone, Debug)]
pub(crate) struct WithSpec<S> {
    pub spec: S,
}

impl<S: FromNode> FromNode for WithSpec<S> {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        let mut spec = None;
        crate::de::fields(n, path, "struct WithSpec", &mut |k, v, p| {
            if k == "spec" {
                spec = Some(S::from_node(v, p)?);
            }
            Ok(())
        })?;
        let spec = match spec {
            Some(s) => s,
            None => crate::de::absent(n, path, "spec")?,
        };
        Ok(WithSpec { spec })
    }
}

/// Like [`WithSpec`] for kinds whose spec may be left out.
#[derive(Clone, Debug, Default)]
pub(crate) struct WithOptionalSpec<S: Default> {
    pub spec: S,
}

impl<S: FromNode + Default> FromNode for WithOptionalSpec<S> {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        let mut out = Self::default();
        crate::de::fields(n, path, "struct WithOptionalSpec", &mut |k, v, p| {
            if k == "spec" {
                out.spec = S::from_node(v, p)?;
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// Turns `10%` or `0.1` into a probability.
pub(crate) fn loss_value(v: &NumOrStr) -> Result<f64, String> {
    let p = match v {
        NumOrStr::Num(n) => *n,
        NumOrStr::Str(s) => match s.trim().strip_suffix('%') {
            Some(pct) => pct
                .trim()
                .parse::<f64>()
                .map(|p| p / 100.0)
                .map_err(|_| format!("invalid loss {s:?} (expected 0.1 or 10%)"))?,
            None => s
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("invalid loss {s:?} (expected 0.1 or 10%)"))?,
        },
    };
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("loss {p} is outside 0 to 1"));
    }
    Ok(p)
}
