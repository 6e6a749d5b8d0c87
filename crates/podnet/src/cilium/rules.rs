//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (`cilium.io/v2`) as plain data.
//!
//! A policy selects endpoints (`endpointSelector`) and lists rules per direction: `ingress` /
//! `egress` allow, `ingressDeny` / `egressDeny` deny. A rule names peers (endpoints by labels,
//! entities, CIDRs) and ports; an allow rule's port may carry L7 HTTP rules. A namespaced
//! policy selects endpoints of its namespace only, and its endpoint peers too unless their
//! selector names `io.kubernetes.pod.namespace`; a clusterwide one has no namespace.

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::Ipv4Cidr;

use crate::policy::Selector;

/// A Cilium entity: a group of peers known without their addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entity {
    /// Every peer (the wildcard identity 0).
    All,
    /// Outside the cluster (`reserved:world` and the CIDR identities).
    World,
    /// Everything inside the cluster: pods, host, remote nodes, health, init, ...
    Cluster,
    /// The local node.
    Host,
    /// The other nodes.
    RemoteNode,
    /// Health endpoints.
    Health,
    /// Endpoints not resolved yet.
    Init,
    /// Endpoints Cilium does not manage.
    Unmanaged,
    /// The API server.
    KubeApiserver,
    /// Cilium's Ingress.
    Ingress,
}

impl Entity {
    /// The entity of a `fromEntities` / `toEntities` name.
    pub fn parse(s: &str) -> Option<Entity> {
        Some(match s {
            "all" => Entity::All,
            "world" => Entity::World,
            "cluster" => Entity::Cluster,
            "host" => Entity::Host,
            "remote-node" => Entity::RemoteNode,
            "health" => Entity::Health,
            "init" => Entity::Init,
            "unmanaged" => Entity::Unmanaged,
            "kube-apiserver" => Entity::KubeApiserver,
            "ingress" => Entity::Ingress,
            _ => return None,
        })
    }
}

/// One peer selector of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerSelector {
    /// `fromEndpoints` / `toEndpoints`: endpoints whose identity labels match.
    Endpoints(Selector),
    /// `fromEntities` / `toEntities`.
    Entity(Entity),
    /// `fromCIDR` / `toCIDR` / `fromCIDRSet` / `toCIDRSet` (addresses outside the cluster).
    Cidr {
        /// The prefix.
        cidr: Ipv4Cidr,
        /// Prefixes carved out of it.
        except: Vec<Ipv4Cidr>,
    },
}

/// One port of `toPorts[].ports`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortProtocol {
    /// The port (0: every port).
    pub port: u16,
    /// With `endPort`: the last port of the range.
    pub end_port: Option<u16>,
    /// IP protocol number (0: `ANY`).
    pub proto: u8,
}

/// One `rules.http` entry: every field given must match (method and path are regular
/// expressions matched against the whole value; a header is `Name` (present) or
/// `Name: value`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRule {
    /// Method regex.
    pub method: Option<String>,
    /// Path regex.
    pub path: Option<String>,
    /// Required headers.
    pub headers: Vec<String>,
    /// Where the rule comes from (`CiliumNetworkPolicy default/web ingress[0]`).
    pub source: String,
}

/// One `toPorts` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortRule {
    /// `ports` (empty: every port).
    pub ports: Vec<PortProtocol>,
    /// `rules.http` (`None`: no L7 rules; traffic is not redirected to the proxy).
    pub http: Option<Vec<HttpRule>>,
}

/// One ingress / egress (deny) rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyRule {
    /// Peers (empty: every peer when the rule has `toPorts`, else none).
    pub peers: Vec<PeerSelector>,
    /// `toPorts` (empty: every port).
    pub to_ports: Vec<PortRule>,
}

/// A CiliumNetworkPolicy (with a namespace) or CiliumClusterwideNetworkPolicy (without).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumPolicy {
    /// The namespace (`None`: clusterwide).
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// `endpointSelector`.
    pub endpoint_selector: Selector,
    /// `ingress`.
    pub ingress: Vec<PolicyRule>,
    /// `egress`.
    pub egress: Vec<PolicyRule>,
    /// `ingressDeny`.
    pub ingress_deny: Vec<PolicyRule>,
    /// `egressDeny`.
    pub egress_deny: Vec<PolicyRule>,
}

impl CiliumPolicy {
    /// An empty policy selecting `endpoint_selector` (namespaced when `namespace` is given).
    pub fn new(namespace: Option<&str>, name: &str, endpoint_selector: Selector) -> Self {
        CiliumPolicy {
            namespace: namespace.map(String::from),
            name: name.into(),
            endpoint_selector,
            ingress: Vec::new(),
            egress: Vec::new(),
            ingress_deny: Vec::new(),
            egress_deny: Vec::new(),
        }
    }

    /// `CiliumNetworkPolicy ns/name` or `CiliumClusterwideNetworkPolicy name`.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => alloc::format!("CiliumNetworkPolicy {ns}/{}", self.name),
            None => alloc::format!("CiliumClusterwideNetworkPolicy {}", self.name),
        }
    }

    /// Whether the policy puts the endpoints it selects into default deny in this direction:
    /// it has allow or deny rules there (Cilium's `enableDefaultDeny` default).
    pub fn default_deny(&self, egress: bool) -> bool {
        if egress {
            !self.egress.is_empty() || !self.egress_deny.is_empty()
        } else {
            !self.ingress.is_empty() || !self.ingress_deny.is_empty()
        }
    }
}
