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

use serde::Deserialize;

pub mod apimachinery {
    pub mod pkg {
        pub mod apis {
            pub mod meta {
                pub mod v1 {
                    use super::super::super::super::super::*;

                    #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
                    #[serde(rename_all = "camelCase", default)]
                    pub struct ObjectMeta {
                        pub name: Option<String>,
                        pub generate_name: Option<String>,
                        pub namespace: Option<String>,
                        pub labels: Option<BTreeMap<String, String>>,
                        pub annotations: Option<BTreeMap<String, String>>,
                        pub owner_references: Option<Vec<OwnerReference>>,
                    }

                    #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
                    #[serde(rename_all = "camelCase", default)]
                    pub struct OwnerReference {
                        pub api_version: String,
                        pub kind: String,
                        pub name: String,
                        pub uid: String,
                        pub controller: Option<bool>,
                    }

                    #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
                    #[serde(rename_all = "camelCase", default)]
                    pub struct LabelSelector {
                        pub match_labels: Option<BTreeMap<String, String>>,
                        pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
                    }

                    #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
                    #[serde(rename_all = "camelCase", default)]
                    pub struct LabelSelectorRequirement {
                        pub key: String,
                        pub operator: String,
                        pub values: Option<Vec<String>>,
                    }
                }
            }
        }

        pub mod util {
            pub mod intstr {
                use std::fmt;

                use serde::de::{self, Deserializer, Visitor};
                use serde::Deserialize;

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

                impl<'de> Deserialize<'de> for IntOrString {
                    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                        struct V;
                        impl Visitor<'_> for V {
                            type Value = IntOrString;
                            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                                f.write_str("IntOrString")
                            }
                            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                                v.try_into().map(IntOrString::Int).map_err(|_| {
                                    E::invalid_value(de::Unexpected::Signed(v), &"a 32-bit integer")
                                })
                            }
                            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                                v.try_into().map(IntOrString::Int).map_err(|_| {
                                    E::invalid_value(
                                        de::Unexpected::Unsigned(v),
                                        &"a 32-bit integer",
                                    )
                                })
                            }
                            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                                Ok(IntOrString::String(v.to_string()))
                            }
                        }
                        d.deserialize_any(V)
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

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct Namespace {
                pub metadata: ObjectMeta,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct Node {
                pub metadata: ObjectMeta,
                pub spec: Option<NodeSpec>,
                pub status: Option<NodeStatus>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NodeSpec {
                #[serde(rename = "podCIDR")]
                pub pod_cidr: Option<String>,
                #[serde(rename = "podCIDRs")]
                pub pod_cidrs: Option<Vec<String>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NodeStatus {
                pub addresses: Option<Vec<NodeAddress>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NodeAddress {
                pub address: String,
                #[serde(rename = "type")]
                pub type_: String,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct Pod {
                pub metadata: ObjectMeta,
                pub spec: Option<PodSpec>,
                pub status: Option<PodStatus>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct PodSpec {
                pub containers: Vec<Container>,
                pub node_name: Option<String>,
                pub host_network: Option<bool>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct Container {
                pub name: String,
                pub image: Option<String>,
                pub ports: Option<Vec<ContainerPort>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct ContainerPort {
                pub container_port: i32,
                pub name: Option<String>,
                pub protocol: Option<String>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct PodTemplateSpec {
                pub metadata: Option<ObjectMeta>,
                pub spec: Option<PodSpec>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct PodStatus {
                #[serde(rename = "podIP")]
                pub pod_ip: Option<String>,
                pub phase: Option<String>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct Service {
                pub metadata: ObjectMeta,
                pub spec: Option<ServiceSpec>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct ServiceSpec {
                #[serde(rename = "type")]
                pub type_: Option<String>,
                #[serde(rename = "clusterIP")]
                pub cluster_ip: Option<String>,
                pub ports: Option<Vec<ServicePort>>,
                pub selector: Option<BTreeMap<String, String>>,
                pub session_affinity: Option<String>,
                pub session_affinity_config: Option<SessionAffinityConfig>,
                pub external_traffic_policy: Option<String>,
                pub internal_traffic_policy: Option<String>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct ServicePort {
                pub name: Option<String>,
                pub port: i32,
                pub target_port: Option<IntOrString>,
                pub node_port: Option<i32>,
                pub protocol: Option<String>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct SessionAffinityConfig {
                #[serde(rename = "clientIP")]
                pub client_ip: Option<ClientIPConfig>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct ClientIPConfig {
                pub timeout_seconds: Option<i32>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct ObjectReference {
                pub kind: Option<String>,
                pub name: Option<String>,
                pub namespace: Option<String>,
            }
        }
    }

    pub mod apps {
        pub mod v1 {
            use super::super::super::apimachinery::pkg::apis::meta::v1::*;
            use super::super::super::*;
            use super::super::core::v1::PodTemplateSpec;

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct Deployment {
                pub metadata: ObjectMeta,
                pub spec: Option<DeploymentSpec>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct DeploymentSpec {
                pub replicas: Option<i32>,
                pub selector: LabelSelector,
                pub template: PodTemplateSpec,
            }
        }
    }

    pub mod discovery {
        pub mod v1 {
            use super::super::super::apimachinery::pkg::apis::meta::v1::*;
            use super::super::super::*;
            use super::super::core::v1::ObjectReference;

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct EndpointSlice {
                pub metadata: ObjectMeta,
                pub address_type: String,
                pub endpoints: Vec<Endpoint>,
                pub ports: Option<Vec<EndpointPort>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct Endpoint {
                pub addresses: Vec<String>,
                pub conditions: Option<EndpointConditions>,
                pub node_name: Option<String>,
                pub target_ref: Option<ObjectReference>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct EndpointConditions {
                pub ready: Option<bool>,
                pub serving: Option<bool>,
                pub terminating: Option<bool>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct EndpointPort {
                pub name: Option<String>,
                pub port: Option<i32>,
                pub protocol: Option<String>,
            }
        }
    }

    pub mod networking {
        pub mod v1 {
            use super::super::super::apimachinery::pkg::apis::meta::v1::*;
            use super::super::super::apimachinery::pkg::util::intstr::IntOrString;
            use super::super::super::*;

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NetworkPolicy {
                pub metadata: ObjectMeta,
                pub spec: Option<NetworkPolicySpec>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NetworkPolicySpec {
                pub pod_selector: Option<LabelSelector>,
                pub policy_types: Option<Vec<String>>,
                pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
                pub egress: Option<Vec<NetworkPolicyEgressRule>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NetworkPolicyIngressRule {
                pub from: Option<Vec<NetworkPolicyPeer>>,
                pub ports: Option<Vec<NetworkPolicyPort>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NetworkPolicyEgressRule {
                pub to: Option<Vec<NetworkPolicyPeer>>,
                pub ports: Option<Vec<NetworkPolicyPort>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NetworkPolicyPeer {
                pub ip_block: Option<IPBlock>,
                pub namespace_selector: Option<LabelSelector>,
                pub pod_selector: Option<LabelSelector>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct IPBlock {
                pub cidr: String,
                pub except: Option<Vec<String>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
            #[serde(rename_all = "camelCase", default)]
            pub struct NetworkPolicyPort {
                pub end_port: Option<i32>,
                pub port: Option<IntOrString>,
                pub protocol: Option<String>,
            }
        }
    }
}
