//! `cilium.io/v2`: CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy, with the fields
//! podnet enforces (see [`crate::k8s`]; the conversion is in `crate::cnp`).

pub mod v2 {
    use super::super::super::apimachinery::pkg::apis::meta::v1::*;
    use super::super::super::apimachinery::pkg::util::intstr::IntOrString;
    use super::super::super::*;

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct CiliumNetworkPolicy {
        /// Name (and namespace: a CiliumClusterwideNetworkPolicy has none).
        pub metadata: ObjectMeta,
        /// The rule.
        pub spec: Option<CiliumPolicySpec>,
    }

    impl_from_node!(
        CiliumNetworkPolicy,
        default {
            metadata: "metadata",
            spec: "spec"
        }
    );

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct CiliumPolicySpec {
        /// The endpoints it applies to (labels of the pod, and `io.kubernetes.pod.namespace`;
        /// a `k8s:` prefix on a key is accepted). Empty: every endpoint (of the namespace).
        pub endpoint_selector: Option<LabelSelector>,
        /// Allowed incoming traffic; any rule here puts the selected endpoints in default deny
        /// for ingress.
        pub ingress: Option<Vec<CiliumRule>>,
        /// Allowed outgoing traffic; any rule here puts them in default deny for egress.
        pub egress: Option<Vec<CiliumRule>>,
        /// Denied incoming traffic (wins over every allow).
        pub ingress_deny: Option<Vec<CiliumRule>>,
        /// Denied outgoing traffic (wins over every allow).
        pub egress_deny: Option<Vec<CiliumRule>>,
        /// Read, not used.
        pub description: Option<String>,
    }

    impl_from_node!(
        CiliumPolicySpec,
        default {
            endpoint_selector: "endpointSelector",
            ingress: "ingress",
            egress: "egress",
            ingress_deny: "ingressDeny",
            egress_deny: "egressDeny",
            description: "description"
        }
    );

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct CiliumRule {
        /// Ingress: endpoints by labels (of the policy's namespace unless the selector names
        /// `io.kubernetes.pod.namespace`).
        pub from_endpoints: Option<Vec<LabelSelector>>,
        /// Ingress: `world`, `cluster`, `host`, `remote-node`, `all`, `health`, `init`,
        /// `unmanaged`, `kube-apiserver`, `ingress`.
        pub from_entities: Option<Vec<String>>,
        /// Ingress: addresses outside the cluster.
        #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidrs"))]
        #[cfg_attr(feature = "schema", serde(rename = "fromCIDR"))]
        pub from_cidr: Option<Vec<String>>,
        /// Ingress: CIDRs with exceptions.
        #[cfg_attr(feature = "schema", serde(rename = "fromCIDRSet"))]
        pub from_cidr_set: Option<Vec<CidrRule>>,
        /// Egress: endpoints by labels.
        pub to_endpoints: Option<Vec<LabelSelector>>,
        /// Egress: entities.
        pub to_entities: Option<Vec<String>>,
        /// Egress: addresses outside the cluster.
        #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidrs"))]
        #[cfg_attr(feature = "schema", serde(rename = "toCIDR"))]
        pub to_cidr: Option<Vec<String>>,
        /// Egress: CIDRs with exceptions.
        #[cfg_attr(feature = "schema", serde(rename = "toCIDRSet"))]
        pub to_cidr_set: Option<Vec<CidrRule>>,
        /// Destination ports, with L7 rules (allow rules only).
        pub to_ports: Option<Vec<PortRule>>,
    }

    impl_from_node!(
        CiliumRule,
        default {
            from_endpoints: "fromEndpoints",
            from_entities: "fromEntities",
            from_cidr: "fromCIDR",
            from_cidr_set: "fromCIDRSet",
            to_endpoints: "toEndpoints",
            to_entities: "toEntities",
            to_cidr: "toCIDR",
            to_cidr_set: "toCIDRSet",
            to_ports: "toPorts"
        }
    );

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct CidrRule {
        /// An IPv4 CIDR.
        #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidr"))]
        pub cidr: String,
        /// CIDRs inside it that are left out.
        #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::cidrs"))]
        pub except: Option<Vec<String>>,
    }

    impl_from_node!(
        CidrRule,
        default {
            cidr: "cidr",
            except: "except"
        }
    );

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct PortRule {
        /// Ports (absent: every port).
        pub ports: Option<Vec<PortProtocol>>,
        /// L7 rules: traffic to these ports goes through the node's proxy.
        pub rules: Option<L7Rules>,
    }

    impl_from_node!(
        PortRule,
        default {
            ports: "ports",
            rules: "rules"
        }
    );

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct PortProtocol {
        /// A port number (Cilium writes it as a string, `"80"`); `0`: every port.
        pub port: Option<IntOrString>,
        /// With a port: the last port of a range.
        pub end_port: Option<i32>,
        /// `TCP`, `UDP`, `SCTP` or `ANY` (the default).
        #[cfg_attr(
            feature = "schema",
            schemars(schema_with = "crate::schema::cilium_protocol")
        )]
        pub protocol: Option<String>,
    }

    impl_from_node!(
        PortProtocol,
        default {
            port: "port",
            end_port: "endPort",
            protocol: "protocol"
        }
    );

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct L7Rules {
        /// HTTP rules: a request any of them matches is allowed; the proxy answers the others
        /// with `403 Forbidden`.
        pub http: Option<Vec<HttpRule>>,
    }

    impl_from_node!(L7Rules, default { http: "http" });

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct HttpRule {
        /// A regular expression the whole method must match (`GET`, `GET|HEAD`).
        pub method: Option<String>,
        /// A regular expression the whole path must match (`/public`, `/api/v[0-9]+/.*`).
        pub path: Option<String>,
        /// Headers the request must carry: `Name` (present) or `Name: value`.
        pub headers: Option<Vec<String>>,
    }

    impl_from_node!(
        HttpRule,
        default {
            method: "method",
            path: "path",
            headers: "headers"
        }
    );
}
