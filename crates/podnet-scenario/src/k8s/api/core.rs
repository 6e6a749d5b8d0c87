//! `core/v1`: Namespace, Node, Pod, Service and what they hold (see [`crate::k8s`]).

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
        /// What the kubelet adds to the pod's `resolv.conf`: only `options` is used.
        pub dns_config: Option<PodDnsConfig>,
    }

    impl_from_node!(
        PodSpec,
        default {
            containers: "containers",
            node_name: "nodeName",
            host_network: "hostNetwork",
            dns_config: "dnsConfig"
        }
    );

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct PodDnsConfig {
        /// Extra `nameservers` (ignored: the pod asks the cluster's DNS Service).
        pub nameservers: Option<Vec<String>>,
        /// Extra search domains (ignored).
        pub searches: Option<Vec<String>>,
        /// `resolv.conf` options: `timeout` (seconds, default 5), `attempts` (default 2),
        /// `single-request`, `single-request-reopen` (glibc's workarounds for the parallel
        /// A/AAAA race), `ndots` (only 5, the kubelet's). `use-vc` (DNS over TCP) is refused.
        pub options: Option<Vec<PodDnsConfigOption>>,
    }

    impl_from_node!(
        PodDnsConfig,
        default {
            nameservers: "nameservers",
            searches: "searches",
            options: "options"
        }
    );

    #[derive(Clone, Debug, Default, PartialEq)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", serde(rename_all = "camelCase", default))]
    pub struct PodDnsConfigOption {
        /// The option's name; required.
        pub name: String,
        /// Its value, for `timeout`, `attempts` and `ndots`.
        pub value: Option<String>,
    }

    impl_from_node!(
        PodDnsConfigOption,
        default {
            name: "name",
            value: "value"
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
        #[cfg_attr(
            feature = "schema",
            schemars(with = "Option<BTreeMap<String, String>>")
        )]
        pub selector: Option<StringMap>,
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
