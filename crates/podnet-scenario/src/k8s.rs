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

#[cfg(feature = "schema")]
use std::collections::BTreeMap;

use crate::de::impl_from_node;

/// Labels, annotations and selectors: a flat sorted map (`podnet::policy::Labels`); in the
/// JSON Schema a map of strings.
pub type StringMap = podnet::policy::Labels;

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
                        #[cfg_attr(
                            feature = "schema",
                            schemars(with = "Option<BTreeMap<String, String>>")
                        )]
                        pub labels: Option<StringMap>,
                        /// Read, not used.
                        #[cfg_attr(
                            feature = "schema",
                            schemars(with = "Option<BTreeMap<String, String>>")
                        )]
                        pub annotations: Option<StringMap>,
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
                        #[cfg_attr(
                            feature = "schema",
                            schemars(with = "Option<BTreeMap<String, String>>")
                        )]
                        pub match_labels: Option<StringMap>,
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
    pub mod cilium;
    pub mod core;

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
