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
                    pub struct ObjectMeta {
                        pub name: Option<String>,
                        pub generate_name: Option<String>,
                        pub namespace: Option<String>,
                        pub labels: Option<BTreeMap<String, String>>,
                        pub annotations: Option<BTreeMap<String, String>>,
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
                    pub struct OwnerReference {
                        pub api_version: String,
                        pub kind: String,
                        pub name: String,
                        pub uid: String,
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
                    pub struct LabelSelector {
                        pub match_labels: Option<BTreeMap<String, String>>,
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
                    pub struct LabelSelectorRequirement {
                        pub key: String,
                        pub operator: String,
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

                impl Default for IntOrString {
                    fn default() -> Self {
                        IntOrString::Int(0)
                    }
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
            pub struct Namespace {
                pub metadata: ObjectMeta,
            }

            impl_from_node!(
                Namespace,
                default {
                    metadata: "metadata"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            pub struct Node {
                pub metadata: ObjectMeta,
                pub spec: Option<NodeSpec>,
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
            pub struct NodeSpec {
                pub pod_cidr: Option<String>,
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
            pub struct NodeStatus {
                pub addresses: Option<Vec<NodeAddress>>,
            }

            impl_from_node!(
                NodeStatus,
                default {
                    addresses: "addresses"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            pub struct NodeAddress {
                pub address: String,
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
            pub struct Pod {
                pub metadata: ObjectMeta,
                pub spec: Option<PodSpec>,
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
            pub struct PodSpec {
                pub containers: Vec<Container>,
                pub node_name: Option<String>,
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
            pub struct Container {
                pub name: String,
                pub image: Option<String>,
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
            pub struct ContainerPort {
                pub container_port: i32,
                pub name: Option<String>,
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
            pub struct PodTemplateSpec {
                pub metadata: Option<ObjectMeta>,
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
            pub struct PodStatus {
                pub pod_ip: Option<String>,
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
            pub struct Service {
                pub metadata: ObjectMeta,
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
            pub struct ServiceSpec {
                pub type_: Option<String>,
                pub cluster_ip: Option<String>,
                pub ports: Option<Vec<ServicePort>>,
                pub selector: Option<BTreeMap<String, String>>,
                pub session_affinity: Option<String>,
                pub session_affinity_config: Option<SessionAffinityConfig>,
                pub external_traffic_policy: Option<String>,
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
            pub struct ServicePort {
                pub name: Option<String>,
                pub port: i32,
                pub target_port: Option<IntOrString>,
                pub node_port: Option<i32>,
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
            pub struct SessionAffinityConfig {
                pub client_ip: Option<ClientIPConfig>,
            }

            impl_from_node!(
                SessionAffinityConfig,
                default {
                    client_ip: "clientIP"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            pub struct ClientIPConfig {
                pub timeout_seconds: Option<i32>,
            }

            impl_from_node!(
                ClientIPConfig,
                default {
                    timeout_seconds: "timeoutSeconds"
                }
            );

            #[derive(Clone, Debug, Default, PartialEq)]
            pub struct ObjectReference {
                pub kind: Option<String>,
                pub name: Option<String>,
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
            pub struct Deployment {
                pub metadata: ObjectMeta,
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
            pub struct DeploymentSpec {
                pub replicas: Option<i32>,
                pub selector: LabelSelector,
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
            pub struct EndpointSlice {
                pub metadata: ObjectMeta,
                pub address_type: String,
                pub endpoints: Vec<Endpoint>,
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
            pub struct Endpoint {
                pub addresses: Vec<String>,
                pub conditions: Option<EndpointConditions>,
                pub node_name: Option<String>,
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
            pub struct EndpointConditions {
                pub ready: Option<bool>,
                pub serving: Option<bool>,
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
            pub struct EndpointPort {
                pub name: Option<String>,
                pub port: Option<i32>,
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
            pub struct NetworkPolicy {
                pub metadata: ObjectMeta,
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
            pub struct NetworkPolicySpec {
                pub pod_selector: Option<LabelSelector>,
                pub policy_types: Option<Vec<String>>,
                pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
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
            pub struct NetworkPolicyIngressRule {
                pub from: Option<Vec<NetworkPolicyPeer>>,
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
            pub struct NetworkPolicyEgressRule {
                pub to: Option<Vec<NetworkPolicyPeer>>,
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
            pub struct NetworkPolicyPeer {
                pub ip_block: Option<IPBlock>,
                pub namespace_selector: Option<LabelSelector>,
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
            pub struct IPBlock {
                pub cidr: String,
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
            pub struct NetworkPolicyPort {
                pub end_port: Option<i32>,
                pub port: Option<IntOrString>,
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
