//! The schemas against the loader and the report: the checked-in files are what the types
//! generate, every scenario the repository ships validates and loads, what the loader refuses
//! the schema refuses, the podnet kinds list exactly the fields the loader knows, the string
//! patterns agree with the parsers, and the report of every example validates.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jsonschema::Validator;
use serde_json::{json, Value};

use super::*;
use crate::node::{parse_stream, Val};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A YAML document as JSON, the way the loader's tree holds it.
fn to_json(n: &crate::node::Node) -> Value {
    match &n.val {
        Val::Null => Value::Null,
        Val::Bool(b) => json!(b),
        Val::Int(i) => json!(i),
        Val::UInt(u) => json!(u),
        Val::Float(f) => json!(f),
        Val::Str(s) => json!(s),
        Val::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or("?").to_string(), to_json(v)))
                .collect(),
        ),
    }
}

fn docs(text: &str) -> Vec<Value> {
    parse_stream(text).unwrap().iter().map(to_json).collect()
}

fn validator(schema: &Value) -> Validator {
    assert!(jsonschema::meta::is_valid(schema), "not a valid schema");
    jsonschema::validator_for(schema).unwrap()
}

/// Every error of `v` on `doc`, one line each.
fn errors(v: &Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The scenario files the repository ships: the examples and the book's, less the one that is
/// broken on purpose.
fn scenario_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples", "examples/scale", "book/src/scenarios"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("typo.yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    files
}

#[test]
fn the_checked_in_schemas_are_what_the_types_generate() {
    for name in FILES {
        let path = repo().join("book/src/schema").join(name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == file_text(name).unwrap(),
            "{} is stale: run `cargo xtask schema` and commit it",
            path.display()
        );
    }
}

#[test]
fn every_shipped_scenario_validates_and_loads() {
    let v = validator(&scenario());
    for path in scenario_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        crate::load_str(&path.display().to_string(), &text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (i, doc) in docs(&text).iter().enumerate() {
            let errs = errors(&v, doc);
            assert!(
                errs.is_empty(),
                "{} document {i}:\n{}",
                path.display(),
                errs.join("\n")
            );
        }
    }
}

/// Documents both the loader and the schema refuse, and near misses both accept.
#[test]
fn the_schema_refuses_what_the_loader_refuses() {
    let v = validator(&scenario());
    let typo = std::fs::read_to_string(repo().join("book/src/scenarios/typo.yaml")).unwrap();
    let refused = [
        typo.as_str(),
        "apiVersion: podnet.dev/v1alpha1\nkind: Traffic\nmetadata: {name: t}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Traffic\nspec: {from: a, to: 'b:80'}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Traffic\nmetadata: {name: t}\nspec: {from: a}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Traffic\nmetadata: {name: t}\nspec: {from: a, to: 'b:80', timeout: 5 sec}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Traffic\nmetadata: {name: t}\nspec: {from: a, to: 'b:80', expect: {outcome: fine}}\n",
        "apiVersion: podnet.dev/v2\nkind: Cluster\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nspec: {cni: calico}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nspec: {proxy: ipvs}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nspec: {link: {bandwidth: 10 gigs}}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nspec: {podCIDR: 10.244.0.0/33}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nspec: {conntrack: {timeouts: {tcpSomething: 5}}}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nspec: {conntrack: {max: 0}}\n",
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nspec: {conntrack: {buckets: 5000000}}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}, ports: [{port: 80}]}\n",
        "apiVersion: apps/v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: nginx}]}\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec: {containers: [{name: c}]}\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{name: http}]}]}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{name: http}]}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: Magic, ports: [{port: 80}]}\n",
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\nendpoints: []\n",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n",
    ];
    for text in refused {
        assert!(
            crate::load_str("t.yaml", text).is_err(),
            "the loader accepts:\n{text}"
        );
        assert!(
            docs(text).iter().any(|d| !v.is_valid(d)),
            "the schema accepts:\n{text}"
        );
    }
    let accepted = [
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\n",
        "apiVersion: example.com/v1\nkind: Cluster\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        "apiVersion: v1\nkind: PodList\nitems: []\n",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, uid: x}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: None, selector: {a: b}}\n",
    ];
    for text in accepted {
        crate::load_str("t.yaml", text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for d in docs(text) {
            assert!(v.is_valid(&d), "the schema refuses:\n{text}");
        }
    }
}

/// Follows `$ref`s to `#/definitions/NAME`, through the `allOf: [$ref]` and
/// `anyOf: [$ref, null]` schemars wraps them in.
fn deref<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/definitions/")
            .expect("a local definition");
        return deref(root, &root["definitions"][name]);
    }
    for key in ["allOf", "anyOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            let refs: Vec<&Value> = list.iter().filter(|x| x.get("$ref").is_some()).collect();
            if refs.len() == 1 {
                return deref(root, refs[0]);
            }
        }
    }
    s
}

/// The properties of the object schema at a dotted path below `s`.
fn properties_at<'a>(root: &'a Value, mut s: &'a Value, path: &str) -> BTreeSet<String> {
    for seg in path.split('.').filter(|p| !p.is_empty()) {
        // `LIST.*`: the items of a list (as the loader's known-field lists write it).
        let key = if seg == "*" { "items" } else { "properties" };
        s = if seg == "*" {
            deref(root, &deref(root, s)[key])
        } else {
            deref(root, &deref(root, s)[key][seg])
        };
    }
    let s = deref(root, s);
    assert_eq!(
        s["additionalProperties"],
        json!(false),
        "{path} is not closed"
    );
    s["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{path} has no properties"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_podnet_kinds_list_the_fields_the_loader_knows() {
    let root = scenario();
    let branches = root["oneOf"].as_array().unwrap();
    let mut checked = 0;
    for (kind, api) in KINDS {
        let branch = branches
            .iter()
            .find(|b| b["title"] == json!(format!("{kind} ({api})")))
            .unwrap_or_else(|| panic!("no branch for {kind}"));
        let Some(fields) = podnet_fields(kind) else {
            continue;
        };
        let body = &branch["allOf"][0];
        for (path, known) in fields {
            let want: BTreeSet<String> = known.iter().map(|k| k.to_string()).collect();
            assert_eq!(properties_at(&root, body, path), want, "{kind} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 10);
    // Every kind the loader reads has its branch, plus List and the others.
    assert_eq!(branches.len(), KINDS.len() + 2);
}

/// The enumerations the schema offers are values the loader takes, one by one.
#[test]
fn every_enumerated_value_loads() {
    let root = scenario();
    let defs = &root["definitions"];
    let enum_at = |def: &str, field: &str| -> Vec<String> {
        let s = &defs[def]["properties"][field];
        let e = s.get("enum").or_else(|| s["items"].get("enum"));
        e.unwrap_or_else(|| panic!("{def}.{field} has no enum: {s}"))
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let cluster = "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nspec: ";
    let pods = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec: {containers: [{name: c, image: nginx, ports: [{containerPort: 80, name: http}]}]}\n---\n";
    let cases: Vec<(&str, &str, String)> = vec![
        ("ClusterSpec", "cni", format!("{cluster}{{cni: @V@}}")),
        ("ClusterSpec", "proxy", format!("{cluster}{{proxy: @V@}}")),
        ("EbpfLb", "algorithm", format!("{cluster}{{proxy: ebpf, ebpf: {{loadBalancer: {{algorithm: @V@}}}}}}")),
        ("EbpfLb", "mode", format!("{cluster}{{proxy: ebpf, ebpf: {{loadBalancer: {{mode: @V@}}}}}}")),
        ("Expect", "outcome", format!("{pods}apiVersion: podnet.dev/v1alpha1\nkind: Traffic\nmetadata: {{name: t}}\nspec: {{from: web, to: 'web:80', expect: {{outcome: @V@}}}}\n")),
        ("TrafficSpec", "addressFamily", format!("{pods}apiVersion: podnet.dev/v1alpha1\nkind: Traffic\nmetadata: {{name: t}}\nspec: {{from: web, to: 'web:80', addressFamily: @V@}}\n")),
        ("TrafficSpec", "protocol", format!("{pods}apiVersion: podnet.dev/v1alpha1\nkind: Traffic\nmetadata: {{name: t}}\nspec: {{from: web, to: 'web:80', protocol: @V@}}\n")),
        ("ServiceSpec", "type", format!("{pods}apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{type: @V@, selector: {{app: web}}, ports: [{{port: 80}}]}}\n")),
        ("ServiceSpec", "sessionAffinity", format!("{pods}apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{sessionAffinity: @V@, selector: {{app: web}}, ports: [{{port: 80}}]}}\n")),
        ("ServiceSpec", "externalTrafficPolicy", format!("{pods}apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{externalTrafficPolicy: @V@, selector: {{app: web}}, ports: [{{port: 80}}]}}\n")),
        ("ServicePort", "protocol", format!("{pods}apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{selector: {{app: web}}, ports: [{{port: 80, protocol: @V@}}]}}\n")),
        ("ContainerPort", "protocol", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{containerPort: 80, protocol: @V@}]}]}\n".to_string()),
        ("LabelSelectorRequirement", "operator", format!("{pods}apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: n}}\nspec: {{podSelector: {{matchExpressions: [{{key: app, operator: @V@, values: [web]}}]}}}}\n")),
        ("NetworkPolicySpec", "policyTypes", format!("{pods}apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: n}}\nspec: {{podSelector: {{}}, policyTypes: [@V@]}}\n")),
        ("NetworkPolicyPort", "protocol", format!("{pods}apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: n}}\nspec: {{podSelector: {{}}, ingress: [{{ports: [{{protocol: @V@, port: 80}}]}}]}}\n")),
    ];
    let v = validator(&root);
    for (def, field, template) in cases {
        let values = enum_at(def, field);
        assert!(values.len() >= 2, "{def}.{field}");
        for value in values.iter().map(String::as_str).chain(["Bogus"]) {
            let text = template.replace("@V@", value);
            let loaded = crate::load_str("t.yaml", &text);
            let valid = docs(&text).iter().all(|d| v.is_valid(d));
            assert_eq!(
                loaded.is_ok(),
                valid,
                "{def}.{field} = {value}: loader {:?}, schema valid {valid}\n{text}",
                loaded.err()
            );
            assert_eq!(valid, value != "Bogus", "{def}.{field} = {value}");
        }
    }
    // The conntrack timeouts, key by key.
    let keys: Vec<String> = defs["Conntrack"]["properties"]["timeouts"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys.len(), TIMEOUTS.len());
    for key in keys.iter().map(String::as_str).chain(["bogus"]) {
        let text = format!("{cluster}{{conntrack: {{timeouts: {{{key}: 7, }}}}}}\n");
        let loaded = crate::load_str("t.yaml", &text).is_ok();
        let valid = docs(&text).iter().all(|d| v.is_valid(d));
        assert_eq!((loaded, valid), (key != "bogus", key != "bogus"), "{key}");
    }
}

/// The string patterns agree with the parsers of `crate::units`, sample by sample.
#[test]
fn the_patterns_agree_with_the_parsers() {
    use crate::units::{parse_cidr, parse_duration, parse_ip, parse_rate};
    let check = |schema: Value, samples: &[&str], parse: &dyn Fn(&str) -> bool| {
        let v = jsonschema::validator_for(&schema).unwrap();
        for s in samples {
            assert_eq!(v.is_valid(&json!(s)), parse(s), "{s:?} against {schema}");
        }
    };
    let mut g = SchemaSettings::draft07().into_generator();
    check(
        duration(&mut g).into(),
        &[
            "0", "250ms", "2s", "1m30s", "1.5s", ".5s", "1.s", "+2s", "50us", "50µs", "1h2m3.5s",
            "3ns", "", "-1s", "2", "5 s", "1..2s", "1.2.3s", "s", "1d", "1sm", "0s",
        ],
        &|s| parse_duration(s).is_ok(),
    );
    check(
        rate(&mut g).into(),
        &[
            "10Gbit",
            "100Mbit",
            "1.5Gbit",
            "1bit",
            "0",
            "unlimited",
            "Unlimited",
            "10kbps",
            "8Mbps",
            "2tbit",
            "10",
            "10gb",
            "fast",
            "1Tbps",
            "",
            ".5gbit",
        ],
        &|s| parse_rate(s).is_ok(),
    );
    check(
        ipv4(&mut g).into(),
        &[
            "10.0.0.1",
            "255.255.255.255",
            "010.1.1.1",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "a.b.c.d",
            "1.2.3.4 ",
            "",
        ],
        &|s| s.trim() == s && parse_ip(s).is_ok(),
    );
    check(
        cidr(&mut g).into(),
        &[
            "10.244.0.0/16",
            "0.0.0.0/0",
            "10.0.0.0/32",
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0.0/",
        ],
        &|s| parse_cidr(s).is_ok(),
    );
}

/// The report of every shipped scenario, as `podnet run --json` prints it, validates.
#[test]
fn every_report_validates() {
    let v = validator(&report());
    for path in scenario_files() {
        if path.parent().is_some_and(|d| d.ends_with("scale")) {
            continue; // hundreds of thousands of connections: the documents are checked above
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let mut s = crate::session::Session::load(&[(&name, &text)], None).unwrap();
        s.run(podnet::Duration::from_secs(30)).unwrap();
        let r = serde_json::to_value(s.report()).unwrap();
        let errs = errors(&v, &r);
        assert!(errs.is_empty(), "{name}:\n{}", errs.join("\n"));
    }
    // A field the schema does not describe is an error.
    let mut r = json!({"version": "v1alpha1", "endTime": "1.000s", "frames": 0, "flows": [], "nodes": [], "drops": []});
    assert!(v.is_valid(&r));
    r["extra"] = json!(1);
    assert!(!v.is_valid(&r));
}

/// The words of a chapter's inline code spans and code blocks (`spec.nodeName` gives `spec`
/// and `nodeName`).
fn code_words(md: &str) -> BTreeSet<String> {
    md.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every property name of every object in a schema.
fn property_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            m.values().for_each(|x| property_names(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| property_names(x, out)),
        _ => {}
    }
}

/// The book's reference chapters name every field of the schemas: a field added to a type
/// without a word in the book fails here.
#[test]
fn the_book_names_every_field() {
    for (schema, chapter) in [(report(), "report.md"), (scenario(), "scenarios.md")] {
        let md = std::fs::read_to_string(repo().join("book/src").join(chapter)).unwrap();
        let words = code_words(&md);
        let mut names = BTreeSet::new();
        property_names(&schema["definitions"], &mut names);
        property_names(&schema["properties"], &mut names);
        assert!(names.len() > 40, "{chapter}: {names:?}");
        let missing: Vec<&String> = names.iter().filter(|n| !words.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "book/src/{chapter} does not name {missing:?}"
        );
    }
}
