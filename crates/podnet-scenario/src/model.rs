//! The resolved scenario: plain data, every default applied, every name turned into an index.
//!
//! Addresses the user left out stay `None` here and are allocated by the cluster in
//! [`crate::build`] (pods from their node's pod CIDR, ClusterIPs from the service CIDR);
//! Traffic targets stay symbolic ([`Target`]) and get their address from the built cluster.

use std::fmt;

use crate::k8s::api::networking::v1::NetworkPolicy;
use podnet::kube_proxy::L4;
use podnet::{ClusterConfig, Duration, Protocol, Request};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

pub use crate::node::Pos;

/// Where something was written: file, line and column (line 0: not from a file).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line and column.
    pub pos: Pos,
}

impl Loc {
    /// A location in `file`.
    pub fn new(file: &str, pos: Pos) -> Self {
        Loc {
            file: file.to_string(),
            pos,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Pos { line: 0, .. } => write!(f, "{}", self.file),
            Pos { line, col: 0 } => write!(f, "{}:{line}", self.file),
            Pos { line, col } => write!(f, "{}:{line}:{col}", self.file),
        }
    }
}

/// A whole scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The `Cluster` object's name (`podnet` when there was none).
    pub name: String,
    /// Where the `Cluster` object was, if there was one.
    pub cluster_loc: Option<Loc>,
    /// The dataplane settings.
    pub config: ClusterConfig,
    /// Namespaces: declared ones and those implied by objects in them.
    pub namespaces: Vec<NamespaceDef>,
    /// The nodes.
    pub nodes: Vec<NodeDef>,
    /// Hosts outside the cluster.
    pub external: Vec<ExternalDef>,
    /// Every pod, Deployment replicas included.
    pub pods: Vec<PodDef>,
    /// Deployments (their replicas are in `pods`).
    pub deployments: Vec<DeploymentDef>,
    /// Services.
    pub services: Vec<ServiceDef>,
    /// NetworkPolicies, as read and converted for the core.
    pub network_policies: Vec<PolicyDef>,
    /// CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies, converted for the core.
    pub cilium_policies: Vec<podnet::cilium::CiliumPolicy>,
    /// Traffic flows.
    pub flows: Vec<FlowDef>,
    /// Faults, in the order written.
    pub faults: Vec<FaultDef>,
    /// ConnectivityExpectations, in the order written.
    pub expectations: Vec<ExpectationDef>,
}

/// A namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceDef {
    /// Name.
    pub name: String,
    /// Labels, `kubernetes.io/metadata.name` included.
    pub labels: podnet::policy::Labels,
    /// Where it was declared (`None`: implied).
    pub loc: Option<Loc>,
}

/// Where a node came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeOrigin {
    /// `Cluster.spec.nodes`.
    Cluster,
    /// A `Node` object.
    NodeObject,
    /// Named by a pod's `spec.nodeName` (no node list anywhere).
    PodNodeName,
    /// The default two nodes.
    Default,
}

/// A node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDef {
    /// Name.
    pub name: String,
    /// Underlay address.
    pub ip: Ipv4Address,
    /// Its pod CIDR.
    pub pod_cidr: Ipv4Cidr,
    /// CPUs handling its packets.
    pub cpus: u32,
    /// Where it came from.
    pub origin: NodeOrigin,
    /// Where it was written.
    pub loc: Option<Loc>,
}

/// A program a pod or external host runs, chosen by its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// HTTP/1.1 server on a TCP port.
    Http(u16),
    /// TCP echo server.
    TcpEcho(u16),
    /// UDP echo server.
    UdpEcho(u16),
    /// TCP discard server (RFC 863).
    TcpDiscard(u16),
    /// DNS server (UDP and TCP 53), started once the Services' addresses are known (see
    /// [`crate::build`]).
    Dns(u16),
}

/// A host outside the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalDef {
    /// Name.
    pub name: String,
    /// Address (in the cluster's external CIDR).
    pub ip: Ipv4Address,
    /// Image, as written.
    pub image: Option<String>,
    /// What it runs.
    pub apps: Vec<App>,
    /// Where it was written.
    pub loc: Option<Loc>,
}

/// A container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPortDef {
    /// Port name (`""`: unnamed).
    pub name: String,
    /// Port number.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: L4,
}

/// A pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDef {
    /// Kubernetes name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The name in the core cluster (and so in traces and pcaps): the pod name, or
    /// `NAME.NAMESPACE` when another pod or a node has the same name.
    pub core_name: String,
    /// Index into [`Scenario::nodes`].
    pub node: usize,
    /// Address (`None`: allocated by the cluster).
    pub ip: Option<Ipv4Address>,
    /// Labels.
    pub labels: podnet::policy::Labels,
    /// The image of the first container.
    pub image: Option<String>,
    /// Its `resolv.conf` options (`spec.dnsConfig.options`).
    pub dns: podnet::program::ResolvOptions,
    /// Every container's ports.
    pub ports: Vec<ContainerPortDef>,
    /// What it runs.
    pub apps: Vec<App>,
    /// Index into [`Scenario::deployments`] for a replica.
    pub deployment: Option<usize>,
    /// Where it was written.
    pub loc: Loc,
}

impl PodDef {
    /// `NAMESPACE/NAME`, as the index, the matrix and expectations name a pod.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentDef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Replicas.
    pub replicas: u32,
    /// Indices into [`Scenario::pods`].
    pub pods: Vec<usize>,
    /// Where it was written.
    pub loc: Loc,
}

/// A Service's ClusterIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterIp {
    /// Allocated from the service CIDR.
    Auto,
    /// This address.
    Ip(Ipv4Address),
    /// `None`: headless, no virtual IP and no kube-proxy rules.
    Headless,
}

/// A Service port's target port as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    /// A number.
    Number(u16),
    /// A container port name, looked up in each backend.
    Name(String),
}

/// One endpoint of a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointDef {
    /// Index into [`Scenario::pods`].
    pub pod: usize,
    /// The backend port.
    pub port: u16,
}

/// A Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortDef {
    /// Name (`""`: unnamed).
    pub name: String,
    /// TCP or UDP.
    pub protocol: L4,
    /// The Service port.
    pub port: u16,
    /// The target port as written.
    pub target: TargetPort,
    /// The NodePort (`None`: allocated for NodePort Services).
    pub node_port: Option<u16>,
    /// Ready endpoints with their resolved port.
    pub endpoints: Vec<EndpointDef>,
}

/// A Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// ClusterIP.
    pub cluster_ip: ClusterIp,
    /// `type: NodePort` or `LoadBalancer`.
    pub node_port: bool,
    /// Ports.
    pub ports: Vec<ServicePortDef>,
    /// The selector (`None`: none, endpoints only from EndpointSlices).
    pub selector: Option<podnet::policy::Labels>,
    /// Whether the endpoints came from EndpointSlices.
    pub from_slices: bool,
    /// `sessionAffinity: ClientIP` with its timeout in seconds.
    pub session_affinity: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// Where it was written.
    pub loc: Loc,
}

impl ServiceDef {
    /// Every pod that backs at least one port, in first-seen order.
    pub fn backends(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for e in self.ports.iter().flat_map(|p| &p.endpoints) {
            if !out.contains(&e.pod) {
                out.push(e.pod);
            }
        }
        out
    }
}

/// A NetworkPolicy as read.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyDef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The object.
    pub policy: NetworkPolicy,
    /// What the core enforces.
    pub core: podnet::policy::Policy,
    /// Where it was written.
    pub loc: Loc,
}

/// Who runs a flow's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A pod (index into [`Scenario::pods`]).
    Pod(usize),
    /// An external host (index into [`Scenario::external`]).
    External(usize),
}

/// Where a flow goes, by name; addresses come from the built cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Service's ClusterIP and port (index into [`Scenario::services`]).
    Service {
        /// The Service.
        service: usize,
        /// The Service port.
        port: u16,
    },
    /// A headless Service's name: the first endpoint pod, as DNS would answer first.
    HeadlessService {
        /// The Service.
        service: usize,
        /// The port (the backend's).
        port: u16,
    },
    /// A pod.
    Pod {
        /// The pod.
        pod: usize,
        /// Port.
        port: u16,
    },
    /// An external host.
    External {
        /// The host.
        host: usize,
        /// Port.
        port: u16,
    },
    /// A node's address (a NodePort).
    Node {
        /// The node.
        node: usize,
        /// Port.
        port: u16,
    },
    /// An address.
    Ip {
        /// Address.
        ip: Ipv4Address,
        /// Port.
        port: u16,
    },
}

impl Target {
    /// The destination port.
    pub fn port(&self) -> u16 {
        match self {
            Target::Service { port, .. }
            | Target::HeadlessService { port, .. }
            | Target::Pod { port, .. }
            | Target::External { port, .. }
            | Target::Node { port, .. }
            | Target::Ip { port, .. } => *port,
        }
    }
}

/// A Traffic flow.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowDef {
    /// Name.
    pub name: String,
    /// Namespace of the Traffic object (short Service names resolve in it... or in the
    /// client pod's namespace, which wins).
    pub namespace: String,
    /// Every client (a Deployment gives one per replica).
    pub from: Vec<Source>,
    /// `from` as written.
    pub from_text: String,
    /// The target.
    pub to: Target,
    /// `to` as written.
    pub to_text: String,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// What each connection sends.
    pub request: Request,
    /// Connections (or datagrams) per client.
    pub count: u32,
    /// At most this many at once per client.
    pub concurrency: u32,
    /// First start.
    pub start: Duration,
    /// Minimum time between starts.
    pub interval: Duration,
    /// Per-connection timeout.
    pub timeout: Duration,
    /// `addressFamily: unspec`: the client's lookup asks for `A` and `AAAA`.
    pub unspec: bool,
    /// `expect.outcome`: the outcome every connection should have.
    pub expect: Option<String>,
    /// `expect.httpStatus`: the HTTP status every connection should get.
    pub expect_status: Option<u16>,
    /// Where it was written.
    pub loc: Loc,
}

/// A link a fault acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// A node's uplink (`node-a/eth0`, or `node-a`).
    Uplink(usize),
    /// A pod's veth (`POD/eth0`, or `POD`).
    Pod(usize),
    /// An external host's link.
    External(usize),
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    /// Changes a link's properties (until `until`, if set).
    Link {
        /// The link.
        target: LinkTarget,
        /// Loss probability.
        loss: Option<f64>,
        /// One-way latency.
        latency: Option<Duration>,
        /// Bandwidth (`Some(None)`: unlimited).
        bandwidth: Option<Option<u64>>,
        /// Administratively down.
        down: bool,
    },
    /// Deletes a pod.
    DeletePod {
        /// Index into [`Scenario::pods`].
        pod: usize,
    },
    /// Scales a Deployment.
    Scale {
        /// Index into [`Scenario::deployments`].
        deployment: usize,
        /// New replica count.
        replicas: u32,
    },
    /// Flushes a node's conntrack table.
    ConntrackFlush {
        /// Index into [`Scenario::nodes`].
        node: usize,
    },
    /// Sets a node's `nf_conntrack_max`.
    ConntrackMax {
        /// Index into [`Scenario::nodes`].
        node: usize,
        /// The new maximum.
        max: u32,
    },
}

/// A fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultDef {
    /// Name.
    pub name: String,
    /// When it starts.
    pub at: Duration,
    /// When it is undone (link changes and conntrackMax only).
    pub until: Option<Duration>,
    /// What it does.
    pub action: FaultAction,
    /// Where it was written.
    pub loc: Loc,
}

/// A `ConnectivityExpectation`: which probes (see [`crate::matrix`]) must be allowed or denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectationDef {
    /// Name.
    pub name: String,
    /// Every expected cell, pairs expanded.
    pub cells: Vec<ExpectedCell>,
    /// Where it was written.
    pub loc: Loc,
}

/// What a probe is expected to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedCell {
    /// The probing pod (index into [`Scenario::pods`]).
    pub from: usize,
    /// The probed pod or Service.
    pub to: ExpectTarget,
    /// The port (a Service port for a Service).
    pub port: u16,
    /// The protocol.
    pub protocol: L4,
    /// Allowed (true) or denied.
    pub allowed: bool,
    /// Where it was written.
    pub loc: Loc,
}

/// The destination of an expected probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExpectTarget {
    /// A pod (index into [`Scenario::pods`]).
    Pod(usize),
    /// A Service (index into [`Scenario::services`]).
    Service(usize),
}
