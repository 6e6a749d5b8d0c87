//! JSON Schemas of the scenario documents and of the `podnet run --json` report, generated from
//! the types that read and write them (feature `schema`).
//!
//! - [`report`]: the [`Report`](crate::session::Report) as `serde` writes it. Every object is
//!   closed (`additionalProperties: false`): a field the schema does not describe is an error.
//! - [`scenario`]: one document of a scenario stream, `oneOf` the kinds the loader reads (by
//!   `apiVersion` and `kind`), a `List` of them, or any other kind (skipped by the loader with
//!   a warning). The podnet kinds are built from the structs of `kinds.rs` and closed; the
//!   Kubernetes kinds from `k8s.rs` and open (the loader ignores the fields it does not read,
//!   as a `kubectl get -o yaml` dump has many). The fields the loader requires come from its
//!   own list ([`crate::load::required_paths`]), the kinds and their `apiVersion` from
//!   [`crate::load::KINDS`].
//!
//! Both are draft-07 (what editors' YAML and JSON plugins understand best), printed with sorted
//! keys so that the output does not depend on `serde_json`'s features. `cargo xtask schema`
//! writes them into `book/src/schema/`; `cargo xtask book --check` and this crate's tests fail
//! when the files there differ from what the types generate.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::transform::{transform_subschemas, Transform};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::de::At;
use crate::k8s::api::apps::v1::Deployment;
use crate::k8s::api::cilium::v2::CiliumNetworkPolicy;
use crate::k8s::api::core::v1::{Namespace, Node, Pod, Service};
use crate::k8s::api::discovery::v1::EndpointSlice;
use crate::k8s::api::networking::v1::NetworkPolicy;
use crate::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;
use crate::kinds::{
    ClusterSpec, ExpectationSpec, FaultSpec, NumOrStr, TrafficSpec, WithOptionalSpec, WithSpec,
};
use crate::load::{podnet_fields, required_paths, KINDS, PODNET_API};
use crate::session::Report;

/// The file names the book publishes the schemas under (`book/src/schema/`).
pub const FILES: [&str; 2] = ["report.schema.json", "scenario.schema.json"];

/// The schema in the file `name` of [`FILES`], as it is written there.
pub fn file_text(name: &str) -> Option<String> {
    let v = match name {
        "report.schema.json" => report(),
        "scenario.schema.json" => scenario(),
        _ => return None,
    };
    Some(pretty(&v))
}

/// Pretty JSON with sorted keys and a final newline.
pub fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(&sorted(v)).unwrap_or_default();
    s.push('\n');
    s
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `additionalProperties: false` on every object schema that lists its properties.
#[derive(Clone)]
struct CloseObjects;

impl Transform for CloseObjects {
    fn transform(&mut self, schema: &mut Schema) {
        if schema.get("properties").is_some() && schema.get("additionalProperties").is_none() {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
        transform_subschemas(self, schema);
    }
}

/// No `default` keywords: the types' `Default` is "not written" (`null`); the real defaults are
/// applied by the resolver and said in each field's description.
#[derive(Clone)]
struct NoDefaults;

impl Transform for NoDefaults {
    fn transform(&mut self, schema: &mut Schema) {
        schema.remove("default");
        transform_subschemas(self, schema);
    }
}

/// The JSON Schema of the report `podnet run --json` prints.
pub fn report() -> Value {
    let g = SchemaSettings::draft07()
        .for_serialize()
        .with_transform(CloseObjects)
        .into_generator();
    let mut s = g.into_root_schema_for::<Report>();
    s.insert("title".into(), json!("podnet run --json report"));
    s.into()
}

/// The JSON Schema of one document of a scenario stream.
pub fn scenario() -> Value {
    let mut g = SchemaSettings::draft07()
        .for_deserialize()
        .with_transform(NoDefaults)
        .into_generator();
    let mut branches = Vec::new();
    for (kind, api) in KINDS {
        branches.push(kind_branch(&mut g, kind, api));
    }
    branches.push(list_branch());
    branches.push(other_branch());
    let definitions = g.take_definitions(true);
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "podnet scenario document",
        "description": "One document of a podnet scenario (a YAML stream): a Kubernetes object podnet reads, a podnet kind (Cluster, Traffic, Fault, ConnectivityExpectation; apiVersion podnet.dev/v1alpha1), a List of them, or any other kind, which podnet skips with a warning.",
        "oneOf": branches,
        "definitions": definitions,
    })
}

/// The schema of the object a kind is read into, as `load::object` reads it: the type of a
/// Kubernetes kind (a reference), the spec wrapper of a podnet kind (inline).
fn kind_type(g: &mut SchemaGenerator, kind: &str) -> Schema {
    match kind {
        "Namespace" => g.subschema_for::<Namespace>(),
        "Node" => g.subschema_for::<Node>(),
        "Pod" => g.subschema_for::<Pod>(),
        "Service" => g.subschema_for::<Service>(),
        "Deployment" => g.subschema_for::<Deployment>(),
        "EndpointSlice" => g.subschema_for::<EndpointSlice>(),
        "NetworkPolicy" => g.subschema_for::<NetworkPolicy>(),
        "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" => {
            g.subschema_for::<CiliumNetworkPolicy>()
        }
        "Cluster" => WithOptionalSpec::<ClusterSpec>::json_schema(g),
        "Traffic" => WithSpec::<TrafficSpec>::json_schema(g),
        "Fault" => WithOptionalSpec::<FaultSpec>::json_schema(g),
        "ConnectivityExpectation" => WithSpec::<ExpectationSpec>::json_schema(g),
        other => panic!("load::KINDS has {other}, which the schema does not know"),
    }
}

/// The constraints a list of the loader's required paths (`spec.containers.*.name`, `?`: may
/// be absent, `*`: every item) puts on an object.
fn required_constraints(paths: &[&str]) -> Value {
    let mut root = json!({});
    for path in paths {
        let mut cur = &mut root;
        for seg in path.split('.') {
            if seg == "*" {
                cur = cur
                    .as_object_mut()
                    .expect("constraints are objects")
                    .entry("items")
                    .or_insert_with(|| json!({}));
                continue;
            }
            let (name, optional) = match seg.strip_suffix('?') {
                Some(n) => (n, true),
                None => (seg, false),
            };
            let obj = cur.as_object_mut().expect("constraints are objects");
            if !optional {
                let req = obj.entry("required").or_insert_with(|| json!([]));
                let list = req.as_array_mut().expect("required is a list");
                if !list.iter().any(|v| v == name) {
                    list.push(json!(name));
                }
            }
            cur = obj
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("properties is a map")
                .entry(name)
                .or_insert_with(|| json!({}));
        }
    }
    root
}

fn kind_branch(g: &mut SchemaGenerator, kind: &str, api: &str) -> Value {
    let ty = kind_type(g, kind);
    let mut paths: Vec<&str> = required_paths(kind).to_vec();
    let named = kind != "Cluster";
    if named {
        paths.push("metadata.name");
    }
    let mut header = required_constraints(&paths);
    let h = header.as_object_mut().expect("an object");
    let props = h
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("a map");
    props.insert("apiVersion".into(), json!({ "const": api }));
    props.insert("kind".into(), json!({ "const": kind }));
    if named {
        let meta = props.entry("metadata").or_insert_with(|| json!({}));
        meta["properties"]["name"] = json!({"type": "string", "minLength": 1});
    }
    let req = h.entry("required").or_insert_with(|| json!([]));
    let req = req.as_array_mut().expect("a list");
    req.insert(0, json!("kind"));
    req.insert(0, json!("apiVersion"));
    let body = match podnet_fields(kind) {
        // A Kubernetes kind: its type describes the whole object.
        None => Value::from(ty),
        // A podnet kind: the spec wrapper, with the other fields of the loader's list and
        // closed like it.
        Some(fields) => {
            let mut body = Value::from(ty);
            let root = fields
                .iter()
                .find(|(path, _)| path.is_empty())
                .map_or(&[][..], |(_, known)| *known);
            let props = body
                .as_object_mut()
                .expect("an object schema")
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("a map");
            for field in root {
                let s = match *field {
                    "metadata" => g.subschema_for::<ObjectMeta>().into(),
                    "apiVersion" | "kind" => json!({"type": "string"}),
                    "spec" => continue,
                    _ => json!({"description": "Allowed, and read by nothing."}),
                };
                props.insert((*field).to_string(), s);
            }
            body["additionalProperties"] = Value::Bool(false);
            // The wrapper's own doc comment is about Rust; the branch has a title.
            if let Some(o) = body.as_object_mut() {
                o.remove("description");
            }
            body
        }
    };
    json!({
        "title": format!("{kind} ({api})"),
        "allOf": [body, header],
    })
}

fn list_branch() -> Value {
    json!({
        "title": "List (v1)",
        "description": "A kubectl List (any kind ending in List, apiVersion v1): each item is a document of its own.",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"const": "v1"},
            "kind": {"type": "string", "pattern": "List$"},
            "items": {"type": ["array", "null"], "items": {"$ref": "#"}},
        },
    })
}

fn other_branch() -> Value {
    let k8s: Vec<&str> = KINDS
        .iter()
        .filter(|(_, api)| *api != PODNET_API)
        .map(|(k, _)| *k)
        .collect();
    let podnet: Vec<&str> = KINDS
        .iter()
        .filter(|(_, api)| *api == PODNET_API)
        .map(|(k, _)| *k)
        .collect();
    json!({
        "title": "any other kind",
        "description": "A kind podnet does not read (a ConfigMap, a CRD; a podnet kind of another API group): skipped with a warning.",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"type": "string", "minLength": 1},
            "kind": {"type": "string", "minLength": 1},
        },
        "not": {"anyOf": [
            {"properties": {"kind": {"enum": k8s}}},
            {"properties": {"kind": {"enum": podnet}, "apiVersion": {"pattern": "^podnet\\.dev/"}}},
            {"properties": {"kind": {"pattern": "List$"}, "apiVersion": {"const": "v1"}}},
        ]},
    })
}

// The wrappers the loader reads through.

impl<T: JsonSchema> JsonSchema for At<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        T::json_schema(g)
    }
}

impl JsonSchema for NumOrStr {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "NumOrStr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": ["number", "string"]})
    }
}

impl JsonSchema for IntOrString {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "IntOrString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number, or the name of a port.",
            "anyOf": [
                {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX},
                {"type": "string"},
            ]
        })
    }
}

// Field schemas (`#[schemars(schema_with = ...)]` in kinds.rs, k8s.rs and the report): the
// string forms the resolver parses (`crate::units`) and the values it accepts.

/// A Go duration as [`crate::units::parse_duration`] reads it.
pub(crate) const DURATION_PATTERN: &str =
    r"^(0|\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";
/// A rate as [`crate::units::parse_rate`] reads it (units in any case).
pub(crate) const RATE_PATTERN: &str = r"^(0|[uU][nN][lL][iI][mM][iI][tT][eE][dD]|([0-9]+(\.[0-9]*)?|\.[0-9]+)([kKmMgGtT]?[bB][iI][tT]|[kKmMgG]?[bB][pP][sS]))$";
const OCTET: &str = "(25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])";

fn ipv4_pattern() -> String {
    format!("^{OCTET}(\\.{OCTET}){{3}}$")
}

fn enum_of(values: &[&str]) -> Schema {
    json_schema!({"type": "string", "enum": values})
}

pub(crate) fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": DURATION_PATTERN})
}

pub(crate) fn rate(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": RATE_PATTERN})
}

pub(crate) fn loss(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"anyOf": [
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "string", "pattern": r"^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*%?\s*$"},
    ]})
}

pub(crate) fn ipv4(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": ipv4_pattern()})
}

pub(crate) fn cidr(_: &mut SchemaGenerator) -> Schema {
    let p = format!("^{OCTET}(\\.{OCTET}){{3}}/(3[0-2]|[12]?[0-9])$");
    json_schema!({"type": "string", "pattern": p})
}

pub(crate) fn cidrs(g: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": cidr(g)})
}

pub(crate) fn cluster_ip(g: &mut SchemaGenerator) -> Schema {
    json_schema!({"anyOf": [ipv4(g), {"enum": ["None", ""]}]})
}

/// The conntrack timeouts [`crate::resolve`] knows.
pub(crate) const TIMEOUTS: [&str; 14] = [
    "tcpSynSent",
    "tcpSynRecv",
    "tcpEstablished",
    "tcpFinWait",
    "tcpCloseWait",
    "tcpLastAck",
    "tcpTimeWait",
    "tcpClose",
    "tcpMaxRetrans",
    "tcpUnacknowledged",
    "udp",
    "udpStream",
    "icmp",
    "generic",
];

pub(crate) fn timeouts(g: &mut SchemaGenerator) -> Schema {
    let props: Map<String, Value> = TIMEOUTS
        .iter()
        .map(|k| {
            let v = json!({"anyOf": [
                {"type": "integer", "minimum": 0, "maximum": u32::MAX},
                duration(g),
            ]});
            (k.to_string(), v)
        })
        .collect();
    json_schema!({"type": "object", "properties": props, "additionalProperties": false})
}

/// Field schemas that are one string out of a list: the values the resolver accepts (the test
/// `every_enumerated_value_loads` feeds each one to the loader).
macro_rules! string_enums {
    ($($(#[$doc:meta])* $name:ident: $values:expr;)*) => {$(
        $(#[$doc])*
        pub(crate) fn $name(_: &mut SchemaGenerator) -> Schema {
            enum_of(&$values)
        }
    )*};
}

string_enums! {
    cni: ["bridge", "vxlan", "native"];
    proxy: ["iptables", "nftables", "ebpf", "none"];
    lb_algorithm: ["random", "maglev"];
    lb_mode: ["snat", "dsr"];
    /// A protocol where podnet simulates TCP and UDP (ports, Traffic).
    l4: ["TCP", "UDP"];
    netpol_protocol: ["TCP", "UDP", "SCTP"];
    cilium_protocol: ["TCP", "UDP", "SCTP", "ANY"];
    outcome: crate::OUTCOMES;
    /// `getaddrinfo`'s family in a Traffic.
    address_family: ["inet", "unspec"];
    service_type: ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    session_affinity: ["None", "ClientIP"];
    traffic_policy: ["Cluster", "Local"];
    selector_operator: ["In", "NotIn", "Exists", "DoesNotExist"];
    /// What a ConnectivityExpectation expects of a probe.
    expected: ["allowed", "denied"];
    /// How a probe of the connectivity matrix ended.
    probe_result: ["allowed", "denied", "refused", "reset", "timeout"];
}

pub(crate) fn policy_types(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": {"type": "string", "enum": ["Ingress", "Egress"]}})
}

/// A time or duration of the report (`fmt_duration`: `0.412ms`, `1.532s`).
pub(crate) fn report_duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": r"^[0-9]+\.[0-9]{3}m?s$"})
}

/// Like [`report_duration`], or `null`.
pub(crate) fn report_duration_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": ["string", "null"], "pattern": r"^[0-9]+\.[0-9]{3}m?s$"})
}

/// `ADDRESS:PORT`.
pub(crate) fn endpoint(_: &mut SchemaGenerator) -> Schema {
    let p = format!("^{OCTET}(\\.{OCTET}){{3}}:[0-9]{{1,5}}$");
    json_schema!({"type": "string", "pattern": p})
}

/// `ADDRESS:PORT` or `null`.
pub(crate) fn endpoint_or_null(_: &mut SchemaGenerator) -> Schema {
    let p = format!("^{OCTET}(\\.{OCTET}){{3}}:[0-9]{{1,5}}$");
    json_schema!({"type": ["string", "null"], "pattern": p})
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
