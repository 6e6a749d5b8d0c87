//! From text to typed objects: every document of the stream (and every item of a `List`) is
//! dispatched on its `apiVersion` and `kind` to a Kubernetes type (`k8s`) or a podnet kind.

use crate::k8s::api::apps::v1::Deployment;
use crate::k8s::api::cilium::v2::CiliumNetworkPolicy;
use crate::k8s::api::core::v1::{Namespace, Node as K8sNode, Pod, Service};
use crate::k8s::api::discovery::v1::EndpointSlice;
use crate::k8s::api::networking::v1::NetworkPolicy;

use crate::de::{from_node, DeError, FromNode};
use crate::kinds::{
    ClusterSpec, ExpectationSpec, FaultSpec, TrafficSpec, WithOptionalSpec, WithSpec,
};
use crate::model::Loc;
use crate::node::{parse_stream, Node, Pos, Val};
use crate::{Error, Warning};

/// The podnet API group.
pub const PODNET_API: &str = "podnet.dev/v1alpha1";

/// The kinds podnet reads, with the `apiVersion` each must have.
pub(crate) const KINDS: [(&str, &str); 13] = [
    ("Namespace", "v1"),
    ("Node", "v1"),
    ("Pod", "v1"),
    ("Service", "v1"),
    ("Deployment", "apps/v1"),
    ("EndpointSlice", "discovery.k8s.io/v1"),
    ("NetworkPolicy", "networking.k8s.io/v1"),
    ("CiliumNetworkPolicy", "cilium.io/v2"),
    ("CiliumClusterwideNetworkPolicy", "cilium.io/v2"),
    ("Cluster", PODNET_API),
    ("Traffic", PODNET_API),
    ("Fault", PODNET_API),
    ("ConnectivityExpectation", PODNET_API),
];

/// How deep `List`s may nest.
const MAX_LIST_DEPTH: usize = 4;

/// One object of the stream.
#[derive(Clone, Debug)]
pub(crate) struct Object {
    /// The file it is in.
    pub file: String,
    /// Its tree, for positions of fields.
    pub node: Node,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The typed object.
    pub kind: ObjectKind,
}

/// A typed object.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum ObjectKind {
    Namespace(Box<Namespace>),
    Node(Box<K8sNode>),
    Pod(Box<Pod>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    NetworkPolicy(Box<NetworkPolicy>),
    CiliumPolicy(Box<CiliumNetworkPolicy>),
    Cluster(Box<ClusterSpec>),
    Traffic(Box<TrafficSpec>),
    Fault(Box<FaultSpec>),
    Expectation(Box<ExpectationSpec>),
}

impl Object {
    /// Where the object starts.
    pub fn loc(&self) -> Loc {
        Loc::new(&self.file, self.node.pos)
    }

    /// Where the field at a dotted path is (or the nearest enclosing one).
    pub fn loc_of(&self, path: &str) -> Loc {
        Loc::new(&self.file, self.node.pos_of(path))
    }

    /// A position in this object's file.
    pub fn loc_at(&self, pos: Pos) -> Loc {
        Loc::new(&self.file, if pos.line == 0 { self.node.pos } else { pos })
    }

    /// The namespace, `default` when unset.
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

fn de_error(file: &str, doc: &Node, e: DeError) -> Error {
    Error::at(&Loc::new(file, e.pos.unwrap_or(doc.pos)), e.message)
}

fn typed<T: FromNode>(file: &str, node: &Node) -> Result<T, Error> {
    from_node::<T>(node).map_err(|e| de_error(file, node, e))
}

/// Parses one file into objects, with warnings for what was skipped.
pub(crate) fn parse(file: &str, text: &str) -> Result<(Vec<Object>, Vec<Warning>), Error> {
    let docs = parse_stream(text).map_err(|e| Error::at(&Loc::new(file, e.pos), e.message))?;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for doc in docs {
        object(file, doc, 0, &mut out, &mut warnings)?;
    }
    Ok((out, warnings))
}

fn header<'a>(file: &str, node: &'a Node, field: &str) -> Result<&'a str, Error> {
    match node.get(field) {
        None => Err(Error::at(
            &Loc::new(file, node.pos),
            format!("missing field `{field}`"),
        )),
        Some(v) => v.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::at(
                &Loc::new(file, v.pos),
                format!(
                    "{field}: expected a non-empty string, found {}",
                    v.kind_name()
                ),
            )
        }),
    }
}

fn object(
    file: &str,
    node: Node,
    depth: usize,
    out: &mut Vec<Object>,
    warnings: &mut Vec<Warning>,
) -> Result<(), Error> {
    let loc = Loc::new(file, node.pos);
    match &node.val {
        Val::Map(_) => {}
        Val::Null => return Ok(()),
        _ => {
            return Err(Error::at(
                &loc,
                format!(
                    "expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
                    node.kind_name()
                ),
            ))
        }
    }
    let api = header(file, &node, "apiVersion")?.to_string();
    let kind = header(file, &node, "kind")?.to_string();
    if kind.ends_with("List") && api == "v1" {
        if depth >= MAX_LIST_DEPTH {
            return Err(Error::at(&loc, "Lists nested too deeply"));
        }
        let items = match node.get("items") {
            None => return Ok(()),
            Some(n) if n.val == Val::Null => return Ok(()),
            Some(Node {
                val: Val::Seq(items),
                ..
            }) => items.clone(),
            Some(n) => {
                return Err(Error::at(
                    &Loc::new(file, n.pos),
                    format!("items: expected a sequence, found {}", n.kind_name()),
                ))
            }
        };
        for item in items {
            object(file, item, depth + 1, out, warnings)?;
        }
        return Ok(());
    }
    let Some(&(_, expected)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        warnings.push(Error::at(
            &loc,
            format!("skipping {kind} ({api}): not a kind podnet reads"),
        ));
        return Ok(());
    };
    if api != expected {
        if expected == PODNET_API && !api.starts_with("podnet.dev/") {
            warnings.push(Error::at(
                &loc,
                format!("skipping {kind} ({api}): not a kind podnet reads"),
            ));
            return Ok(());
        }
        return Err(Error::at(
            &Loc::new(file, node.pos_of("apiVersion")),
            format!("unsupported apiVersion {api:?} for kind {kind} (expected {expected})"),
        ));
    }
    let meta = node.get("metadata");
    let name = match meta.and_then(|m| m.get("name")) {
        Some(n) => n.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::at(
                &Loc::new(file, n.pos),
                format!(
                    "metadata.name: expected a non-empty string, found {}",
                    n.kind_name()
                ),
            )
        })?,
        None if kind == "Cluster" => "podnet",
        None => {
            return Err(Error::at(
                &Loc::new(file, meta.map_or(node.pos, |m| m.pos)),
                format!("{kind}: missing field `metadata.name`"),
            ))
        }
    }
    .to_string();
    let namespace = match meta.and_then(|m| m.get("namespace")) {
        None => None,
        Some(n) if n.val == Val::Null => None,
        Some(n) => Some(
            n.as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    Error::at(
                        &Loc::new(file, n.pos),
                        format!(
                            "metadata.namespace: expected a string, found {}",
                            n.kind_name()
                        ),
                    )
                })?
                .to_string(),
        ),
    };
    let namespaced = !matches!(
        kind.as_str(),
        "Namespace" | "Node" | "Cluster" | "CiliumClusterwideNetworkPolicy"
    );
    let namespace = namespace.filter(|_| namespaced);
    let kind_name = kind;
    let kind = match kind_name.as_str() {
        "Namespace" => ObjectKind::Namespace(Box::new(typed(file, &node)?)),
        "Node" => ObjectKind::Node(Box::new(typed(file, &node)?)),
        "Pod" => ObjectKind::Pod(Box::new(typed(file, &node)?)),
        "Deployment" => ObjectKind::Deployment(Box::new(typed(file, &node)?)),
        "Service" => ObjectKind::Service(Box::new(typed(file, &node)?)),
        "EndpointSlice" => ObjectKind::EndpointSlice(Box::new(typed(file, &node)?)),
        "NetworkPolicy" => ObjectKind::NetworkPolicy(Box::new(typed(file, &node)?)),
        "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" => {
            ObjectKind::CiliumPolicy(Box::new(typed(file, &node)?))
        }
        "Cluster" => {
            let o: WithOptionalSpec<ClusterSpec> = typed(file, &node)?;
            ObjectKind::Cluster(Box::new(o.spec))
        }
        "Traffic" => {
            let o: WithSpec<TrafficSpec> = typed(file, &node)?;
            ObjectKind::Traffic(Box::new(o.spec))
        }
        "ConnectivityExpectation" => {
            let o: WithSpec<ExpectationSpec> = typed(file, &node)?;
            ObjectKind::Expectation(Box::new(o.spec))
        }
        _ => {
            let o: WithOptionalSpec<FaultSpec> = typed(file, &node)?;
            ObjectKind::Fault(Box::new(o.spec))
        }
    };
    if let Some(fields) = podnet_fields(&kind_name) {
        for (path, known) in fields {
            unknown_fields(file, &node, path, known, warnings);
        }
    }
    for path in required_paths(&kind_name) {
        require(file, &node, path)?;
    }
    out.push(Object {
        file: file.to_string(),
        node,
        name,
        namespace,
        kind,
    });
    Ok(())
}

/// The fields a kind must have, beyond `metadata.name`: a missing field reads as its zero value
/// (`crate::k8s`) where Kubernetes refuses the object. Dotted paths; `*` stands for every item
/// of a sequence, `?` marks a field that may be absent (what is under it is required when it is
/// there).
pub(crate) fn required_paths(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec",
            "spec.containers",
            "spec.containers.*.name",
            "spec.containers.*.ports?.*.containerPort",
            "spec.dnsConfig?.options?.*.name",
        ],
        "Deployment" => &[
            "spec",
            "spec.selector",
            "spec.template",
            "spec.template.spec",
            "spec.template.spec.containers",
            "spec.template.spec.containers.*.name",
            "spec.template.spec.containers.*.ports?.*.containerPort",
            "spec.template.spec.dnsConfig?.options?.*.name",
        ],
        "Service" => &["spec", "spec.ports?.*.port"],
        "EndpointSlice" => &["addressType", "endpoints", "endpoints.*.addresses"],
        _ => &[],
    }
}

/// The fields of the podnet kinds, by path, to warn about typos (they are otherwise ignored).
pub(crate) fn podnet_fields(
    kind: &str,
) -> Option<&'static [(&'static str, &'static [&'static str])]> {
    const OBJECT: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
    Some(match kind {
        "Cluster" => &[
            ("", OBJECT),
            (
                "spec",
                &[
                    "seed",
                    "podCIDR",
                    "serviceCIDR",
                    "externalCIDR",
                    "cni",
                    "hairpinMode",
                    "tso",
                    "tcpTimestamps",
                    "proxy",
                    "masquerade",
                    "conntrack",
                    "icmp",
                    "ebpf",
                    "link",
                    "nodes",
                    "external",
                    "kernel",
                ],
            ),
            ("spec.masquerade", &["randomFully", "all"]),
            ("spec.ebpf", &["socketLB", "loadBalancer", "maglev", "bpf"]),
            ("spec.ebpf.loadBalancer", &["algorithm", "mode"]),
            ("spec.ebpf.maglev", &["tableSize"]),
            (
                "spec.ebpf.bpf",
                &["ctTcpMax", "ctAnyMax", "natMax", "masquerade"],
            ),
            (
                "spec.conntrack",
                &[
                    "max",
                    "buckets",
                    "tcpBeLiberal",
                    "tcpLoose",
                    "checksum",
                    "timeouts",
                ],
            ),
            (
                "spec.icmp",
                &["ratelimit", "ratemask", "msgsPerSec", "msgsBurst"],
            ),
            ("spec.link", &["latency", "bandwidth", "loss", "queueBytes"]),
        ],
        "Traffic" => &[
            ("", OBJECT),
            (
                "spec",
                &[
                    "from",
                    "to",
                    "protocol",
                    "request",
                    "bytes",
                    "upload",
                    "count",
                    "concurrency",
                    "start",
                    "interval",
                    "timeout",
                    "expect",
                    "addressFamily",
                ],
            ),
        ],
        "ConnectivityExpectation" => &[
            ("", OBJECT),
            ("spec", &["port", "protocol", "allowed", "denied", "matrix"]),
            ("spec.allowed.*", &["from", "to", "port", "protocol"]),
            ("spec.denied.*", &["from", "to", "port", "protocol"]),
        ],
        "Fault" => &[
            ("", OBJECT),
            (
                "spec",
                &[
                    "at",
                    "until",
                    "link",
                    "loss",
                    "latency",
                    "bandwidth",
                    "down",
                    "deletePod",
                    "scale",
                    "conntrackFlush",
                    "conntrackMax",
                ],
            ),
        ],
        _ => return None,
    })
}

fn unknown_fields(
    file: &str,
    node: &Node,
    path: &str,
    known: &[&str],
    warnings: &mut Vec<Warning>,
) {
    // `LIST.*`: every item of a list.
    if let Some(list) = path.strip_suffix(".*") {
        if let Some(Node {
            val: Val::Seq(items),
            ..
        }) = node.get_path(list)
        {
            for item in items {
                unknown_fields(file, item, "", known, warnings);
            }
        }
        return;
    }
    let map = if path.is_empty() {
        Some(node)
    } else {
        node.get_path(path)
    };
    let Some(Node {
        val: Val::Map(entries),
        ..
    }) = map
    else {
        return;
    };
    for (k, _) in entries {
        let Some(key) = k.as_str() else { continue };
        if !known.contains(&key) {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" in {path}")
            };
            warnings.push(Error::at(
                &Loc::new(file, k.pos),
                format!(
                    "unknown field `{key}`{at} is ignored (known: {})",
                    known.join(", ")
                ),
            ));
        }
    }
}

/// A missing required field reads as its zero value (`crate::k8s`); Kubernetes refuses the
/// object. `path` is dotted, `*` standing for every item of a sequence.
fn require(file: &str, node: &Node, path: &str) -> Result<(), Error> {
    fn walk(file: &str, n: &Node, segs: &[&str], done: &str) -> Result<(), Error> {
        let Some((first, rest)) = segs.split_first() else {
            return Ok(());
        };
        if *first == "*" {
            if let Val::Seq(items) = &n.val {
                for (i, item) in items.iter().enumerate() {
                    walk(file, item, rest, &format!("{done}[{i}]"))?;
                }
            }
            return Ok(());
        }
        if !matches!(n.val, Val::Map(_)) {
            return Ok(());
        }
        let (name, optional) = match first.strip_suffix('?') {
            Some(name) => (name, true),
            None => (*first, false),
        };
        let here = if done.is_empty() {
            name.to_string()
        } else {
            format!("{done}.{name}")
        };
        match n.get(name) {
            Some(v) => walk(file, v, rest, &here),
            None if optional => Ok(()),
            None => {
                let prefix = if done.is_empty() {
                    String::new()
                } else {
                    format!("{done}: ")
                };
                Err(Error::at(
                    &Loc::new(file, n.pos),
                    format!("{prefix}missing field `{name}`"),
                ))
            }
        }
    }
    let segs: Vec<&str> = path.split('.').collect();
    walk(file, node, &segs, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_streams() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec: {containers: [{name: c}]}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n";
        let (objs, warns) = parse("f.yaml", text).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].loc().to_string(), "f.yaml:4:3");
        assert_eq!(warns.len(), 1);
        assert!(warns[0]
            .to_string()
            .starts_with("f.yaml:8:3: skipping ConfigMap"));
    }

    #[test]
    fn typed_errors_point_inside_list_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec:\n    containers:\n    - name: c\n      ports: [{containerPort: http}]\n";
        let e = parse("f.yaml", text).unwrap_err().to_string();
        assert!(
            e.starts_with("f.yaml:10:31: spec.containers[0].ports[0].containerPort: invalid type"),
            "{e}"
        );
    }
}
