//! The podnet kinds as written (`apiVersion: podnet.dev/v1alpha1`): every field optional, read
//! with its position; defaults and checks are applied in [`crate::resolve`].

use std::collections::BTreeMap;

use crate::de::{impl_from_node, invalid_type, At, DeError, FromNode, Path};
use crate::node::{Node, Val};

mod ebpf;
pub(crate) use ebpf::Ebpf;

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

/// `Cluster.spec`: how the machines are built. At most one Cluster; every field has a default.
#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct ClusterSpec {
    /// The seed every random choice of the run derives from (backend picks, `--random-fully` ports,
    /// ISNs, loss). Default 1; `--seed` overrides it.
    pub seed: Option<u64>,
    /// The cluster's pod range, an IPv4 CIDR. Node `i` gets the `i`-th /24 of it unless it names
    /// its own `podCIDR`. Default `10.244.0.0/16`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidr"))]
    #[cfg_attr(feature = "schema", serde(rename = "podCIDR"))]
    pub pod_cidr: Option<At<String>>,
    /// The Service range ClusterIPs are allocated from, an IPv4 CIDR that must not overlap
    /// `podCIDR`. Default `10.96.0.0/12`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidr"))]
    #[cfg_attr(feature = "schema", serde(rename = "serviceCIDR"))]
    pub service_cidr: Option<At<String>>,
    /// Where external hosts live, behind the edge router (its `.1`), an IPv4 CIDR overlapping
    /// neither `podCIDR` nor `serviceCIDR`. Default `203.0.113.0/24`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidr"))]
    #[cfg_attr(feature = "schema", serde(rename = "externalCIDR"))]
    pub external_cidr: Option<At<String>>,
    /// How pods are networked: `bridge` (a `cni0` bridge per node and host-gw routes between
    /// nodes), `vxlan` (a flannel-style `flannel.1` overlay, VXLAN over UDP 8472) or `native`
    /// (routed pod addresses, as Cilium's native routing). Default `bridge`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cni"))]
    pub cni: Option<At<String>>,
    /// Hairpin mode on every pod's `cni0` port (the CNI bridge plugin's `hairpinMode`). `false`: a
    /// pod that reaches its own Service and is picked as the backend gets nothing back. Default
    /// `true`.
    pub hairpin_mode: Option<bool>,
    /// TCP segmentation offload on every pod's `eth0`, a veth's default (`ethtool -k eth0`:
    /// `tcp-segmentation-offload: on`): a pod's TCP sends super-segments of up to 45 full
    /// segments, which cross veths, bridges, conntrack and the rules as one packet and are cut
    /// into segments only on the wire between nodes. `false` is `ethtool -K eth0 tso off gso
    /// off` in every pod: one packet per segment everywhere. Default `true`.
    pub tso: Option<bool>,
    /// TCP timestamps in every pod (`net.ipv4.tcp_timestamps`, on in Linux): offered in every
    /// SYN and, when both ends did, sent on every segment (TSval from the virtual millisecond
    /// clock); options in Linux's order. `false`: no timestamps, 1460-byte segments. Default
    /// `true`.
    pub tcp_timestamps: Option<bool>,
    /// The Service proxy of every node: kube-proxy in `iptables` or `nftables` mode, a Cilium-style
    /// `ebpf` datapath, or `none` (no Service handling, no conntrack). `ipvs` is refused (not
    /// supported yet). Default `iptables`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::proxy"))]
    pub proxy: Option<At<String>>,
    /// kube-proxy's masquerading (`KUBE-MARK-MASQ` / `KUBE-POSTROUTING`).
    pub masquerade: Masquerade,
    /// Every node's connection tracking table: size and the `nf_conntrack_*` sysctls.
    pub conntrack: Conntrack,
    /// Every node's and pod's limits on the ICMP errors it sends (the `net.ipv4.icmp_*` sysctls).
    pub icmp: Icmp,
    /// The eBPF datapath (`proxy: ebpf` only), with Cilium's Helm value names.
    pub ebpf: Ebpf,
    /// The properties of every link (veths, uplinks, the underlay); a `Fault` changes one link for
    /// a while.
    pub link: Link,
    /// The nodes. Default: the `Node` objects of the stream, else the nodes the pods name in
    /// `spec.nodeName`, else `node-a` (192.168.1.100) and `node-b` (192.168.1.101).
    pub nodes: Option<At<Vec<At<NodeEntry>>>>,
    /// Hosts outside the cluster, in `externalCIDR`, behind the edge router. None by default.
    pub external: Vec<At<ExternalEntry>>,
    /// The Linux version of every node, `MAJOR.MINOR` (4.7 or later): how conntrack resolves
    /// an insert clash between two CPUs and where MASQUERADE starts looking for a free port.
    /// `4.19`: a UDP clash with a different DNAT is dropped (`insert_failed`), and every clash
    /// counts in `insert_failed`; `5.6`+: such a clash is inserted by its reply tuple;
    /// `5.10`+: resolved clashes count in `clash_resolve`. TCP clashes are always dropped.
    /// Default `6.6`.
    pub kernel: Option<At<String>>,
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
        tso: "tso",
        tcp_timestamps: "tcpTimestamps",
        proxy: "proxy",
        masquerade: "masquerade",
        conntrack: "conntrack",
        icmp: "icmp",
        ebpf: "ebpf",
        link: "link",
        nodes: "nodes",
        external: "external",
        kernel: "kernel"
    }
);

#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct Masquerade {
    /// `--random-fully` on kube-proxy's MASQUERADE rule: the source port of a masqueraded
    /// connection is always random instead of kept when free. Default `true`.
    pub random_fully: Option<bool>,
    /// kube-proxy's `--masquerade-all`: every connection to a Service is masqueraded, so the
    /// backend sees the node's address. Default `false`.
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
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct Conntrack {
    /// `nf_conntrack_max`: entries the table holds (1 to 4,194,304; allocated up front). When
    /// full, a new connection early-drops an unassured entry or is dropped. Default 262144.
    #[cfg_attr(
        feature = "schema",
        schemars(range(min = 1, max = crate::resolve::MAX_CONNTRACK))
    )]
    pub max: Option<At<u32>>,
    /// `nf_conntrack_buckets`: hash buckets (1 to 4,194,304). Early drop scans 8 buckets from the
    /// new connection's. Default 65536.
    #[cfg_attr(
        feature = "schema",
        schemars(range(min = 1, max = crate::resolve::MAX_CONNTRACK))
    )]
    pub buckets: Option<At<u32>>,
    /// `nf_conntrack_tcp_be_liberal`: out-of-window TCP packets are not marked INVALID (so
    /// kube-proxy's INVALID drop does not hit them). Default `false`.
    pub tcp_be_liberal: Option<bool>,
    /// `nf_conntrack_tcp_loose`: a mid-stream TCP packet (no SYN) may create an entry. Default
    /// `true`.
    pub tcp_loose: Option<bool>,
    /// `nf_conntrack_checksum`: packets with a bad checksum are INVALID. Default `true`.
    pub checksum: Option<bool>,
    /// Conntrack timeouts by state (the `nf_conntrack_*_timeout` sysctls): whole seconds, or a Go
    /// duration (rounded down to the second). Linux defaults: tcpSynSent 120, tcpSynRecv 60,
    /// tcpEstablished 432000, tcpFinWait 120, tcpCloseWait 60, tcpLastAck 30, tcpTimeWait 120,
    /// tcpClose 10, tcpMaxRetrans 300, tcpUnacknowledged 300, udp 30, udpStream 120, icmp 30,
    /// generic 600.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::timeouts"))]
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

/// `Cluster.spec.icmp`: the `net.ipv4.icmp_*` sysctls of every node.
#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct Icmp {
    /// `icmp_ratelimit`: milliseconds between two ICMP errors to one address, after a burst of
    /// six; 0 turns the per-address limit off. Default 1000.
    pub ratelimit: Option<At<u32>>,
    /// `icmp_ratemask`: bit N limits ICMP type N (never fragmentation needed). Default 6168:
    /// destination unreachable, source quench, time exceeded, parameter problem.
    pub ratemask: Option<At<u32>>,
    /// `icmp_msgs_per_sec`: credits per second for limited errors (each takes 0 to 2). Default 1000.
    pub msgs_per_sec: Option<At<u32>>,
    /// `icmp_msgs_burst`: the node's credits at most. Default 50.
    pub msgs_burst: Option<At<u32>>,
}

impl_from_node!(
    Icmp,
    default {
        ratelimit: "ratelimit",
        ratemask: "ratemask",
        msgs_per_sec: "msgsPerSec",
        msgs_burst: "msgsBurst"
    }
);

#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct Link {
    /// One-way propagation delay of every link, a Go duration. Default `50us`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::duration"))]
    pub latency: Option<At<String>>,
    /// Link rate, tc's form (`10Gbit`, `100Mbit`, `1.5Gbit`, `kbps`-style bytes per second); `0` or
    /// `unlimited`: no serialization delay. Default `10Gbit`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::rate"))]
    pub bandwidth: Option<At<String>>,
    /// Random loss on every link: a probability (`0.01`) or a percentage string (`1%`). Default 0.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::loss"))]
    pub loss: Option<At<NumOrStr>>,
    /// Bytes a link's transmit queue holds before it tail-drops. Default 1514000 (1000 full-size
    /// frames).
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
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase"))]
pub(crate) struct NodeEntry {
    /// The node's name (`spec.nodeName` of its pods).
    pub name: At<String>,
    /// Its underlay address (`eth0`), IPv4.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::ipv4"))]
    pub ip: At<String>,
    /// Its pod range, an IPv4 CIDR inside the cluster's `podCIDR`. Default: the /24 holding its
    /// pods' `status.podIP`, else the next free /24.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::cidr", default)
    )]
    #[cfg_attr(feature = "schema", serde(rename = "podCIDR"))]
    pub pod_cidr: Option<At<String>>,
    /// CPUs handling its packets (1 to 64). A packet from a pod runs on the CPU its sender ran
    /// on (drawn from the seed), one from `eth0` on the CPU the NIC's RSS hash of its flow
    /// picks; packets on two CPUs can race in conntrack between lookup and confirmation (see
    /// `kernel`). `conntrack -S` prints one line per CPU. Default 1: one packet at a time.
    #[cfg_attr(
        feature = "schema",
        schemars(range(min = 1, max = crate::resolve_nodes::MAX_CPUS), default)
    )]
    pub cpus: Option<At<u32>>,
}

impl_from_node!(NodeEntry {
    name: "name",
    ip: "ip",
    pod_cidr: "podCIDR",
    cpus: "cpus"
});

#[derive(Clone, Debug)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase"))]
pub(crate) struct ExternalEntry {
    /// The host's name (a Traffic `from` or `to`).
    pub name: At<String>,
    /// Its address, IPv4, inside `externalCIDR`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::ipv4"))]
    pub ip: At<String>,
    /// The image that chooses what it runs, as for a pod's container (`nginx`, `podnet/echo`, ...).
    /// None: it is only a client.
    pub image: Option<String>,
    /// The ports its program listens on, as a container's `ports`.
    #[cfg_attr(feature = "schema", serde(default))]
    pub ports: Vec<ExternalPort>,
}

impl_from_node!(ExternalEntry {
    name: "name",
    ip: "ip",
    image: "image",
    ports: "ports" = default
});

#[derive(Clone, Debug)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase"))]
pub(crate) struct ExternalPort {
    /// The port's name.
    #[cfg_attr(feature = "schema", serde(default))]
    pub name: String,
    /// The port number.
    pub container_port: u16,
    /// `TCP` (default) or `UDP`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::l4", default)
    )]
    pub protocol: Option<At<String>>,
}

impl_from_node!(ExternalPort {
    name: "name" = default,
    container_port: "containerPort",
    protocol: "protocol"
});

/// `Traffic.spec`: what a client does; each Traffic is one flow of the report.
#[derive(Clone, Debug)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase"))]
pub(crate) struct TrafficSpec {
    /// The client: a pod (`NAME` or `NAMESPACE/NAME`), a Deployment (every replica is a client) or
    /// an external host.
    pub from: At<String>,
    /// The destination, `TARGET:PORT`: a Service (short name in the client's namespace, `SVC.NS`,
    /// `SVC.NS.svc`, `SVC.NS.svc.cluster.local`), a pod, a node (for a NodePort), an external host,
    /// or an IPv4 address. The port may be a Service port name (or a pod's container port name).
    pub to: At<String>,
    /// `TCP` (default) or `UDP`. `ICMP` is refused for now.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::l4", default)
    )]
    pub protocol: Option<At<String>>,
    /// For TCP, the HTTP request line to send (default `GET / HTTP/1.1`); for UDP, the datagram's
    /// text.
    pub request: Option<At<String>>,
    /// Send this many bytes and expect them echoed back (a `podnet/echo` server).
    pub bytes: Option<At<u64>>,
    /// Send this many bytes, then half-close; the connection is done when the server closes (a
    /// `podnet/discard` server).
    pub upload: Option<At<u64>>,
    /// Connections (or UDP exchanges) to open. Default 1.
    pub count: Option<At<u32>>,
    /// How many may be open at once. Default 1.
    pub concurrency: Option<At<u32>>,
    /// When the first connection starts, a Go duration of virtual time. Default `0s`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::duration", default)
    )]
    pub start: Option<At<String>>,
    /// The time between two connection starts, a Go duration. Default `0s`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::duration", default)
    )]
    pub interval: Option<At<String>>,
    /// Give up on a connection after this long (the errno is then `ETIMEDOUT`), a Go duration.
    /// Default `5s`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::duration", default)
    )]
    pub timeout: Option<At<String>>,
    /// What every connection of the flow must end with; `podnet run` exits with 1 when one does
    /// not.
    pub expect: Option<Expect>,
    /// The family the client's `getaddrinfo` asks for when it looks the Service name up:
    /// `inet` (`AF_INET`: an `A` query) or `unspec` (`AF_UNSPEC`, what most applications use:
    /// `A` and `AAAA` at once, from one socket). Default `inet`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::address_family", default)
    )]
    pub address_family: Option<At<String>>,
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
    expect: "expect",
    address_family: "addressFamily"
});

#[derive(Clone, Debug)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase"))]
pub(crate) struct Expect {
    /// The outcome every connection must have: `ok`, `refused` (RST or ICMP unreachable to the
    /// SYN), `timeout`, `reset` (RST once established) or `denied` (dropped by a NetworkPolicy).
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::outcome", default)
    )]
    pub outcome: Option<At<String>>,
    /// The HTTP status every connection's response must have (`200`; `403` when an L7
    /// policy's proxy refused the request).
    #[cfg_attr(feature = "schema", schemars(default))]
    pub http_status: Option<u16>,
}

impl_from_node!(Expect {
    outcome: "outcome",
    http_status: "httpStatus"
});

/// `Fault.spec`: one thing that goes wrong at `at` (exactly one action: `link` with its
/// changes, `deletePod`, `scale`, `conntrackFlush` or `conntrackMax`).
#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct FaultSpec {
    /// When the fault happens, a Go duration of virtual time. Default `0s`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::duration"))]
    pub at: Option<At<String>>,
    /// When a link change or `conntrackMax` is undone, a Go duration of virtual time later than
    /// `at`. Default: never (only link changes and `conntrackMax` take it).
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::duration"))]
    pub until: Option<At<String>>,
    /// The link to change: `NODE/eth0` (a node's uplink), `POD/eth0` (a pod's veth) or an external
    /// host's name. Needs one of `loss`, `latency`, `bandwidth`, `down`.
    pub link: Option<At<String>>,
    /// The link's random loss meanwhile: a probability or a percentage string.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::loss"))]
    pub loss: Option<At<NumOrStr>>,
    /// The link's latency meanwhile, a Go duration.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::duration"))]
    pub latency: Option<At<String>>,
    /// The link's rate meanwhile, tc's form (`100Mbit`).
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::rate"))]
    pub bandwidth: Option<At<String>>,
    /// `true`: the link carries nothing meanwhile.
    pub down: Option<At<bool>>,
    /// Delete this pod at once (`kubectl delete pod --grace-period=0 --force`): its sockets
    /// vanish without sending anything and it leaves every Service's endpoints; conntrack
    /// entries to it stay until they expire. `NAME` or `NAMESPACE/NAME`.
    pub delete_pod: Option<At<String>>,
    /// Scale a Deployment.
    pub scale: Option<At<Scale>>,
    /// Flush this node's conntrack table (`conntrack -F`).
    pub conntrack_flush: Option<At<String>>,
    /// Shrink (or grow) a node's conntrack table, until `until`.
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
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase"))]
pub(crate) struct Scale {
    /// The Deployment's name.
    pub deployment: At<String>,
    /// Its new replica count.
    pub replicas: At<u32>,
}

impl_from_node!(Scale {
    deployment: "deployment",
    replicas: "replicas"
});

#[derive(Clone, Debug)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase"))]
pub(crate) struct ConntrackMax {
    /// The node.
    pub node: At<String>,
    /// Its new `nf_conntrack_max`.
    pub max: At<u32>,
}

impl_from_node!(ConntrackMax {
    node: "node",
    max: "max"
});

/// `ConnectivityExpectation.spec`: probes expected allowed or denied (see `podnet matrix`), as
/// pairs and/or a truth table. At least one entry.
#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct ExpectationSpec {
    /// The port every pair without its own `port`, and every `matrix` cell, probes (a Service
    /// port for a Service).
    pub port: Option<At<u16>>,
    /// `TCP` (default) or `UDP`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::l4"))]
    pub protocol: Option<At<String>>,
    /// Probes that must complete.
    pub allowed: Vec<At<PairEntry>>,
    /// Probes that a NetworkPolicy must drop.
    pub denied: Vec<At<PairEntry>>,
    /// A truth table: a first line of column names (pods or Services, after an optional corner
    /// label `from/to`, `from\\to` or `WORD:`), then per row a pod's name and one symbol per
    /// column: `.` allowed, `X` denied, `-` not checked. Needs `port`.
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
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
pub(crate) struct PairEntry {
    /// The probing pod: `NAME` (in the expectation's namespace, else unique), `NS/NAME`, `NS/*`
    /// (every pod of NS) or `*` (every pod). Required.
    pub from: Option<At<String>>,
    /// The probed pod (same forms) or Service (`NAME` or `NS/NAME`, with a port `port`).
    /// Required.
    pub to: Option<At<String>>,
    /// The port (default: the spec's `port`).
    pub port: Option<At<u16>>,
    /// `TCP` or `UDP` (default: the spec's `protocol`).
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::l4"))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct WithSpec<S> {
    /// The object's settings.
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", serde(default))]
pub(crate) struct WithOptionalSpec<S: Default> {
    /// The object's settings (may be left out).
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
