//! The Kubernetes object types the loader reads, with only the fields podnet uses.
//!
//! They mirror k8s-openapi's (same module paths, names, field names and types, so the rest of
//! the crate reads them the same way) but leave out everything the network does not depend on:
//! a Pod's volumes, probes, security contexts and the rest are ignored like any unknown field
//! instead of being deserialized. That keeps the WebAssembly module small (k8s-openapi's
//! complete PodSpec alone is hundreds of KiB of deserialization code) and loads a
//! `kubectl get -o yaml` dump just the same. As with k8s-openapi, fields are camelCase and a
//! missing field reads as its zero value (the loader's `require` says which fields Kubernetes
//! requires); unknown fields are ignored.

#![allow(missing_docs)]

use std::collections::BTreeMap;

use crate::de::impl_from_node;

pub mod apimachinery {
    pub mod pkg {
        pub mod apis {
            pub mod meta {
                pub mod v1 {
                    use super::super::super::super::super::*;

                    #[derive(Clone, Debug, Default, PartialEq)]
                    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
                    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
                    pub struct ObjectMeta {
                        /// The object's name; required (pods are `NAME` in the core,
                        /// `NAME.NAMESPACE` when two namespaces use it).
                        pub name: Option<String>,
                        /// Read, not used.
                        pub generate_name: Option<String>,
                        /// The namespace (`default` when absent); ignored for cluster-scoped kinds.
                        pub namespace: Option<String>,
                        /// Labels, matched by Service selectors and NetworkPolicy pod and namespace
                        /// selectors.
                        pub labels: Option<BTreeMap<String, String>>,
                        /// Read, not used.
                        pub annotations: Option<BTreeMap<String, String>>,
                        /// A pod owned by a ReplicaSet `DEPLOYMENT-HASH` is a replica of that
                        /// Deployment.
                        pub owner_references: Option<Vec<OwnerReference>>,
                    }

                    impl_from_node!(
                        ObjectMeta,
                        default {
                            name: "name",
                            generate_name: "generateName",
                            namespace: "namespace",
                            labels: "labels",
                            annotations: "annotations",
                            owner_references: "ownerReferences"
                        }
                    );

                    #[derive(Clone, Debug, Default, PartialEq)]
                    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
                    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
                    pub struct OwnerReference {
                        /// Read, not used.
                        pub api_version: String,
                        /// `ReplicaSet` makes the pod a replica of the Deployment the name starts
                        /// with.
                        pub kind: String,
                        /// The owner's name (`DEPLOYMENT-HASH` for a ReplicaSet).
                        pub name: String,
                        /// Read, not used.
                        pub uid: String,
                        /// Read, not used.
                        pub controller: Option<bool>,
                    }

                    impl_from_node!(
                        OwnerReference,
                        default {
                            api_version: "apiVersion",
                            kind: "kind",
                            name: "name",
                            uid: "uid",
                            controller: "controller"
                        }
                    );

                    #[derive(Clone, Debug, Default, PartialEq)]
                    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
                    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
                    pub struct LabelSelector {
                        /// Labels that must all be equal.
                        pub match_labels: Option<BTreeMap<String, String>>,
                        /// Requirements that must all hold.
                        pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
                    }

                    impl_from_node!(
                        LabelSelector,
                        default {
                            match_labels: "matchLabels",
                            match_expressions: "matchExpressions"
                        }
                    );

                    #[derive(Clone, Debug, Default, PartialEq)]
                    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
                    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
                    pub struct LabelSelectorRequirement {
                        /// The label.
                        pub key: String,
                        /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
                        #[cfg_attr(
                            feature = "schema",
                            schemars(schema_with = "crate::schema::selector_operator")
                        )]
                        pub operator: String,
                        /// The values of `In` and `NotIn`.
                        pub values: Option<Vec<String>>,
                    }

                    impl_from_node!(
                        LabelSelectorRequirement,
                        default {
                            key: "key",
                            operator: "operator",
                            values: "values"
                        }
                    );
                }
            }
        }

        pub mod util {
            pub mod intstr {
                use crate::de::{invalid_type, invalid_value, DeError, FromNode, Path};
                use crate::node::{Node, Val};

                /// A port given by number or by name.
                #[derive(Clone, Debug, PartialEq, Eq)]
                pub enum IntOrString {
                    Int(i32),
                    String(String),
                }

                impl FromNode for IntOrString {
                    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
                        let v = match &n.val {
                            Val::Str(s) => return Ok(IntOrString::String(s.clone())),
                            Val::Int(i) => i32::try_from(*i).ok(),
                            Val::UInt(u) => i32::try_from(*u).ok(),
                            _ => return Err(invalid_type(n, path, "IntOrString")),
                        };
                        v.map(IntOrString::Int)
                            .ok_or_else(|| invalid_value(n, path, "a 32-bit integer"))
                    }
                }

                impl Default for IntOrString {
                    fn default() -> Self {
                        IntOrString::Int(0)
                    }
                }
            }
        }
    }
}

pub mod api {
    pub mod core {
        pub mod v1 {
            use super::super::super::apimachinery::pkg::apis::meta::v1::*;
            use super::super::super::apimachinery::pkg::util::intstr::IntOrString;
            use super::super::super::*;

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct Namespace {
                /// Name and labels (`kubernetes.io/metadata.name` is implied).
                pub metadata: ObjectMeta,
            }

            impl_from_node!(
                Namespace,
                default {
                    metadata: "metadata"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct Node {
                /// The node's name.
                pub metadata: ObjectMeta,
                /// Its pod range.
                pub spec: Option<NodeSpec>,
                /// Its addresses.
                pub status: Option<NodeStatus>,
            }

            impl_from_node!(
                Node,
                default {
                    metadata: "metadata",
                    spec: "spec",
                    status: "status"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NodeSpec {
                /// The node's pod range (IPv4 CIDR).
                #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidr"))]
                #[cfg_attr(feature = "schema", serde(rename = "podCIDR"))]
                pub pod_cidr: Option<String>,
                /// Read, not used (dual stack is not simulated).
                #[cfg_attr(feature = "schema", serde(rename = "podCIDRs"))]
                pub pod_cidrs: Option<Vec<String>>,
            }

            impl_from_node!(
                NodeSpec,
                default {
                    pod_cidr: "podCIDR",
                    pod_cidrs: "podCIDRs"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NodeStatus {
                /// The first `InternalIP` that is an IPv4 address becomes the node's underlay
                /// address.
                pub addresses: Option<Vec<NodeAddress>>,
            }

            impl_from_node!(
                NodeStatus,
                default {
                    addresses: "addresses"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NodeAddress {
                /// The address.
                pub address: String,
                /// `InternalIP` is used; the other types are ignored.
                #[cfg_attr(feature = "schema", serde(rename = "type"))]
                pub type_: String,
            }

            impl_from_node!(
                NodeAddress,
                default {
                    address: "address",
                    type_: "type"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct Pod {
                /// Name, namespace, labels, owner references.
                pub metadata: ObjectMeta,
                /// Required.
                pub spec: Option<PodSpec>,
                /// Its address and phase.
                pub status: Option<PodStatus>,
            }

            impl_from_node!(
                Pod,
                default {
                    metadata: "metadata",
                    spec: "spec",
                    status: "status"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct PodSpec {
                /// Required. Each container's image chooses a program, its ports where it listens.
                pub containers: Vec<Container>,
                /// The node the pod runs on. Default: the node whose pod CIDR holds `status.podIP`,
                /// else round-robin in file order.
                pub node_name: Option<String>,
                /// `true`: the pod is skipped with a warning (host-network pods are not simulated).
                pub host_network: Option<bool>,
            }

            impl_from_node!(
                PodSpec,
                default {
                    containers: "containers",
                    node_name: "nodeName",
                    host_network: "hostNetwork"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct Container {
                /// Required by Kubernetes; not otherwise used.
                pub name: String,
                /// Chooses the program (the name before `:`, registry prefix ignored): `nginx`,
                /// `httpd`, `podnet/http` (HTTP/1.1 server), `podnet/echo` (TCP and UDP echo),
                /// `podnet/discard` (TCP discard), `coredns/coredns`, `podnet/dns` (DNS); anything
                /// else runs nothing.
                pub image: Option<String>,
                /// Where the program listens (default: 80 for HTTP, 7 for echo, 9 for discard);
                /// named ports are what a Service's named `targetPort` and a NetworkPolicy's named
                /// port refer to.
                pub ports: Option<Vec<ContainerPort>>,
            }

            impl_from_node!(
                Container,
                default {
                    name: "name",
                    image: "image",
                    ports: "ports"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct ContainerPort {
                /// The port number; required.
                pub container_port: i32,
                /// The port's name.
                pub name: Option<String>,
                /// `TCP` (default) or `UDP`.
                #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::l4"))]
                pub protocol: Option<String>,
            }

            impl_from_node!(
                ContainerPort,
                default {
                    container_port: "containerPort",
                    name: "name",
                    protocol: "protocol"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct PodTemplateSpec {
                /// The replicas' labels.
                pub metadata: Option<ObjectMeta>,
                /// The replicas' spec; required.
                pub spec: Option<PodSpec>,
            }

            impl_from_node!(
                PodTemplateSpec,
                default {
                    metadata: "metadata",
                    spec: "spec"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct PodStatus {
                /// The pod's address. Default: allocated from its node's pod CIDR.
                #[cfg_attr(feature = "schema", serde(rename = "podIP"))]
                pub pod_ip: Option<String>,
                /// `Succeeded` and `Failed` pods are skipped with a warning.
                pub phase: Option<String>,
            }

            impl_from_node!(
                PodStatus,
                default {
                    pod_ip: "podIP",
                    phase: "phase"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct Service {
                /// Name, namespace, labels.
                pub metadata: ObjectMeta,
                /// Required.
                pub spec: Option<ServiceSpec>,
            }

            impl_from_node!(
                Service,
                default {
                    metadata: "metadata",
                    spec: "spec"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct ServiceSpec {
                /// `ClusterIP` (default), `NodePort`, `LoadBalancer` (simulated as a NodePort) or
                /// `ExternalName` (skipped with a warning).
                #[cfg_attr(
                    feature = "schema",
                    schemars(schema_with = "crate::schema::service_type")
                )]
                #[cfg_attr(feature = "schema", serde(rename = "type"))]
                pub type_: Option<String>,
                /// The ClusterIP, inside `serviceCIDR`; `None`: headless (no proxying; the name
                /// resolves to an endpoint). Default: allocated from the Service range.
                #[cfg_attr(
                    feature = "schema",
                    schemars(schema_with = "crate::schema::cluster_ip")
                )]
                #[cfg_attr(feature = "schema", serde(rename = "clusterIP"))]
                pub cluster_ip: Option<String>,
                /// The Service's ports; at least one unless headless.
                pub ports: Option<Vec<ServicePort>>,
                /// The pods of the namespace it selects, when no EndpointSlice is labelled with its
                /// name.
                pub selector: Option<BTreeMap<String, String>>,
                /// `None` (default) or `ClientIP` (kube-proxy's `recent` match: a client keeps its
                /// backend).
                #[cfg_attr(
                    feature = "schema",
                    schemars(schema_with = "crate::schema::session_affinity")
                )]
                pub session_affinity: Option<String>,
                /// `clientIP.timeoutSeconds` of `ClientIP` affinity.
                pub session_affinity_config: Option<SessionAffinityConfig>,
                /// `Cluster` (default: any node forwards to any endpoint, masquerading) or `Local`
                /// (only local endpoints; the client address is kept).
                #[cfg_attr(
                    feature = "schema",
                    schemars(schema_with = "crate::schema::traffic_policy")
                )]
                pub external_traffic_policy: Option<String>,
                /// `Cluster` (default) or `Local` (pods reach only endpoints on their own node).
                #[cfg_attr(
                    feature = "schema",
                    schemars(schema_with = "crate::schema::traffic_policy")
                )]
                pub internal_traffic_policy: Option<String>,
            }

            impl_from_node!(
                ServiceSpec,
                default {
                    type_: "type",
                    cluster_ip: "clusterIP",
                    ports: "ports",
                    selector: "selector",
                    session_affinity: "sessionAffinity",
                    session_affinity_config: "sessionAffinityConfig",
                    external_traffic_policy: "externalTrafficPolicy",
                    internal_traffic_policy: "internalTrafficPolicy"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct ServicePort {
                /// The port's name (a Traffic may use it).
                pub name: Option<String>,
                /// The Service's port; required.
                pub port: i32,
                /// The backends' port, a number or a container port name. Default: `port`.
                pub target_port: Option<IntOrString>,
                /// The NodePort (30000-32767). Default for NodePort Services: one is allocated from
                /// that range.
                pub node_port: Option<i32>,
                /// `TCP` (default) or `UDP`.
                #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::l4"))]
                pub protocol: Option<String>,
            }

            impl_from_node!(
                ServicePort,
                default {
                    name: "name",
                    port: "port",
                    target_port: "targetPort",
                    node_port: "nodePort",
                    protocol: "protocol"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct SessionAffinityConfig {
                /// ClientIP affinity's settings.
                #[cfg_attr(feature = "schema", serde(rename = "clientIP"))]
                pub client_ip: Option<ClientIPConfig>,
            }

            impl_from_node!(
                SessionAffinityConfig,
                default {
                    client_ip: "clientIP"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct ClientIPConfig {
                /// How long a client keeps its backend, 1 to 86400 seconds. Default 10800 (3
                /// hours).
                #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 86400)))]
                pub timeout_seconds: Option<i32>,
            }

            impl_from_node!(
                ClientIPConfig,
                default {
                    timeout_seconds: "timeoutSeconds"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct ObjectReference {
                /// `Pod`: the endpoint is that pod.
                pub kind: Option<String>,
                /// The pod's name.
                pub name: Option<String>,
                /// The pod's namespace (default: the slice's).
                pub namespace: Option<String>,
            }

            impl_from_node!(
                ObjectReference,
                default {
                    kind: "kind",
                    name: "name",
                    namespace: "namespace"
                }
            );
        }
    }

    pub mod apps {
        pub mod v1 {
            use super::super::super::apimachinery::pkg::apis::meta::v1::*;
            use super::super::super::*;
            use super::super::core::v1::PodTemplateSpec;

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct Deployment {
                /// Name and namespace; replicas are named `NAME-0`, `NAME-1`, ...
                pub metadata: ObjectMeta,
                /// Required.
                pub spec: Option<DeploymentSpec>,
            }

            impl_from_node!(
                Deployment,
                default {
                    metadata: "metadata",
                    spec: "spec"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct DeploymentSpec {
                /// How many pods. Default 1; replica `i` runs on node `i mod nodes`.
                pub replicas: Option<i32>,
                /// Required by Kubernetes; not otherwise used.
                pub selector: LabelSelector,
                /// The pods' labels and spec; required.
                pub template: PodTemplateSpec,
            }

            impl_from_node!(
                DeploymentSpec,
                default {
                    replicas: "replicas",
                    selector: "selector",
                    template: "template"
                }
            );
        }
    }

    pub mod discovery {
        pub mod v1 {
            use super::super::super::apimachinery::pkg::apis::meta::v1::*;
            use super::super::super::*;
            use super::super::core::v1::ObjectReference;

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct EndpointSlice {
                /// The label `kubernetes.io/service-name` names the Service it belongs to.
                pub metadata: ObjectMeta,
                /// Required; `IPv4` slices are read, others are skipped with a warning.
                pub address_type: String,
                /// Required. The Service's endpoints.
                pub endpoints: Vec<Endpoint>,
                /// The endpoints' ports, matched to the Service's ports by name.
                pub ports: Option<Vec<EndpointPort>>,
            }

            impl_from_node!(
                EndpointSlice,
                default {
                    metadata: "metadata",
                    address_type: "addressType",
                    endpoints: "endpoints",
                    ports: "ports"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct Endpoint {
                /// Required; the endpoint's address(es), matched to a pod by `targetRef` or
                /// address.
                pub addresses: Vec<String>,
                /// `ready: false` endpoints are left out.
                pub conditions: Option<EndpointConditions>,
                /// Read, not used (the pod's node is).
                pub node_name: Option<String>,
                /// The pod the endpoint is.
                pub target_ref: Option<ObjectReference>,
            }

            impl_from_node!(
                Endpoint,
                default {
                    addresses: "addresses",
                    conditions: "conditions",
                    node_name: "nodeName",
                    target_ref: "targetRef"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct EndpointConditions {
                /// `false`: the endpoint receives no new connections.
                pub ready: Option<bool>,
                /// Read, not used.
                pub serving: Option<bool>,
                /// Read, not used.
                pub terminating: Option<bool>,
            }

            impl_from_node!(
                EndpointConditions,
                default {
                    ready: "ready",
                    serving: "serving",
                    terminating: "terminating"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct EndpointPort {
                /// Matches the Service port of the same name.
                pub name: Option<String>,
                /// The endpoints' port for it.
                pub port: Option<i32>,
                /// Matches the Service port's protocol (default `TCP`).
                pub protocol: Option<String>,
            }

            impl_from_node!(
                EndpointPort,
                default {
                    name: "name",
                    port: "port",
                    protocol: "protocol"
                }
            );
        }
    }

    pub mod networking {
        pub mod v1 {
            use super::super::super::apimachinery::pkg::apis::meta::v1::*;
            use super::super::super::apimachinery::pkg::util::intstr::IntOrString;
            use super::super::super::*;

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NetworkPolicy {
                /// Name and namespace.
                pub metadata: ObjectMeta,
                /// The policy.
                pub spec: Option<NetworkPolicySpec>,
            }

            impl_from_node!(
                NetworkPolicy,
                default {
                    metadata: "metadata",
                    spec: "spec"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NetworkPolicySpec {
                /// The pods of the namespace it selects (empty: all).
                pub pod_selector: Option<LabelSelector>,
                /// `Ingress`, `Egress` or both. Default: `Ingress`, plus `Egress` when there are
                /// egress rules.
                #[cfg_attr(
                    feature = "schema",
                    schemars(schema_with = "crate::schema::policy_types")
                )]
                pub policy_types: Option<Vec<String>>,
                /// What may come in (to the selected pods); none with `Ingress` in policyTypes:
                /// nothing.
                pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
                /// What may go out.
                pub egress: Option<Vec<NetworkPolicyEgressRule>>,
            }

            impl_from_node!(
                NetworkPolicySpec,
                default {
                    pod_selector: "podSelector",
                    policy_types: "policyTypes",
                    ingress: "ingress",
                    egress: "egress"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NetworkPolicyIngressRule {
                /// Who may connect (absent or empty: anyone).
                pub from: Option<Vec<NetworkPolicyPeer>>,
                /// To which ports (absent or empty: all).
                pub ports: Option<Vec<NetworkPolicyPort>>,
            }

            impl_from_node!(
                NetworkPolicyIngressRule,
                default {
                    from: "from",
                    ports: "ports"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NetworkPolicyEgressRule {
                /// Where to (absent or empty: anywhere).
                pub to: Option<Vec<NetworkPolicyPeer>>,
                /// Which ports (absent or empty: all).
                pub ports: Option<Vec<NetworkPolicyPort>>,
            }

            impl_from_node!(
                NetworkPolicyEgressRule,
                default {
                    to: "to",
                    ports: "ports"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NetworkPolicyPeer {
                /// Addresses (alone in its peer).
                pub ip_block: Option<IPBlock>,
                /// Pods of the namespaces it selects (with podSelector in the same peer: pods
                /// matching both).
                pub namespace_selector: Option<LabelSelector>,
                /// Pods of the policy's namespace it selects.
                pub pod_selector: Option<LabelSelector>,
            }

            impl_from_node!(
                NetworkPolicyPeer,
                default {
                    ip_block: "ipBlock",
                    namespace_selector: "namespaceSelector",
                    pod_selector: "podSelector"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct IPBlock {
                /// An IPv4 CIDR.
                #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidr"))]
                pub cidr: String,
                /// CIDRs inside it that are left out.
                #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidrs"))]
                pub except: Option<Vec<String>>,
            }

            impl_from_node!(
                IPBlock,
                default {
                    cidr: "cidr",
                    except: "except"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
            pub struct NetworkPolicyPort {
                /// With a numeric `port`: the last port of a range.
                pub end_port: Option<i32>,
                /// A number or a named container port (absent: every port).
                pub port: Option<IntOrString>,
                /// `TCP` (default), `UDP` or `SCTP`.
                #[cfg_attr(
                    feature = "schema",
                    schemars(schema_with = "crate::schema::netpol_protocol")
                )]
                pub protocol: Option<String>,
            }

            impl_from_node!(
                NetworkPolicyPort,
                default {
                    end_port: "endPort",
                    port: "port",
                    protocol: "protocol"
                }
            );
        }
    }
}
