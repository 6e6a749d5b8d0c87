//! Cilium policies through the `podnet` binary: the L7 example's report (HTTP statuses, what
//! the backend saw), its two TCP connections in `tcpdump -i any`, `explain` naming identities,
//! policy map entries and the L7 verdict, a scenario mixing every selector kind with a
//! Kubernetes NetworkPolicy, and bad input.

mod common;

use common::podnet;

fn report(file: &str) -> serde_json::Value {
    let (code, out, err) = podnet(&["run", file, "--json", "--quiet"]);
    assert_eq!(code, 0, "{file}: {err}\n{out}");
    serde_json::from_str(&out).unwrap()
}

fn conn<'a>(r: &'a serde_json::Value, flow: &str) -> &'a serde_json::Value {
    &r["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == flow)
        .unwrap()["connections"][0]
}

/// A scenario file in its own temporary directory (removed on drop).
struct Scenario(std::path::PathBuf);

impl Scenario {
    fn new(tag: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("podnet-cilium-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s.yaml");
        std::fs::write(&f, text).unwrap();
        Scenario(f)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

#[test]
fn l7_example_reports_each_status_and_what_the_backend_saw() {
    let r = report("examples/cilium-l7.yaml");
    let public = conn(&r, "public");
    assert_eq!(public["outcome"], "ok");
    assert_eq!(public["httpStatus"], 200);
    let (from, seen) = (
        public["from"].as_str().unwrap(),
        public["seenByBackend"].as_str().unwrap(),
    );
    assert_eq!(
        from.split(':').next(),
        seen.split(':').next(),
        "the client's address"
    );
    assert_ne!(from, seen, "but the proxy's own connection (another port)");
    let admin = conn(&r, "admin");
    assert_eq!(admin["outcome"], "ok", "the connection itself is allowed");
    assert_eq!(admin["httpStatus"], 403);
    assert!(
        admin["seenByBackend"].is_null(),
        "the backend never saw /admin"
    );
    let intruder = conn(&r, "intruder");
    assert_eq!(intruder["outcome"], "denied");
    assert!(intruder.get("httpStatus").is_none());
    assert!(intruder["error"]
        .as_str()
        .unwrap()
        .contains("no policy map entry allows identity"));
    // Without L7 policies the report has no httpStatus (existing reports are unchanged).
    let seed = report("examples/seed.yaml");
    assert!(conn(&seed, "web").get("httpStatus").is_none());
}

#[test]
fn tcpdump_any_shows_two_tcp_connections_for_the_allowed_request() {
    let (code, out, err) = podnet(&[
        "tcpdump",
        "examples/cilium-l7.yaml",
        "-i",
        "any",
        "--",
        "src",
        "10.244.0.5",
        "and",
        "dst",
        "port",
        "80",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut syn_ports: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("Flags [S]"))
        .filter_map(|l| l.split(" > ").next()?.rsplit('.').next())
        .collect();
    syn_ports.sort();
    syn_ports.dedup();
    // /public: the client's connection and the proxy's; /admin: the client's only.
    assert_eq!(syn_ports.len(), 3, "{out}");
    assert!(out.contains("cilium-envoy-node-b/eth0 In "), "{out}");
    assert!(out.contains("cilium-envoy-node-b/eth0 Out"), "{out}");
}

#[test]
fn explain_names_identities_entries_and_the_l7_rule() {
    let (code, out, _) = podnet(&[
        "explain",
        "examples/cilium-l7.yaml",
        "--from",
        "client",
        "--to",
        "web:80",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("10.244.0.5 is 256 (k8s:app=client,k8s:io.kubernetes.pod.namespace=default)"),
        "{out}"
    );
    assert!(out.contains("Allow  Ingress  256"), "{out}");
    assert!(
        out.contains("redirected to the L7 proxy (port 10000)"),
        "{out}"
    );
    assert!(
        out.contains("L7 proxy on node-b: GET / -> HTTP 403"),
        "{out}"
    );
    assert!(
        out.contains("method GET path /public (CiliumNetworkPolicy default/web-l7 ingress[0])"),
        "{out}"
    );
    let (_, out, _) = podnet(&[
        "explain",
        "examples/cilium-l7.yaml",
        "--from",
        "intruder",
        "--to",
        "web:80",
    ]);
    assert!(out.contains("): DENIED"), "{out}");
    assert!(out.contains("0 entries cover it"), "{out}");
    let (code, out, _) = podnet(&[
        "explain",
        "examples/cilium-l7.yaml",
        "--from",
        "client",
        "--to",
        "web:80",
        "--path",
        "/public",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("L7 proxy on node-b: GET /public -> HTTP 200 (allowed"),
        "{out}"
    );
    let (code, _, err) = podnet(&[
        "explain",
        "examples/cilium-l7.yaml",
        "--from",
        "client",
        "--to",
        "web:80",
        "--path",
        "public",
    ]);
    assert_eq!(code, 2, "{err}");
}

const MIX: &str = r#"
apiVersion: podnet.dev/v1alpha1
kind: Cluster
metadata: {name: mix}
spec:
  proxy: ebpf
  nodes:
    - {name: node-a, ip: 192.168.1.100}
    - {name: node-b, ip: 192.168.1.101}
  external:
    - {name: internet, ip: 203.0.113.10, image: nginx}
    - {name: elsewhere, ip: 203.0.113.200, image: nginx}
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {nodeName: node-a, containers: [{name: c, image: curlimages/curl}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: other}}
spec: {nodeName: node-a, containers: [{name: c, image: curlimages/curl}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {nodeName: node-b, containers: [{name: w, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {app: db}}
spec: {nodeName: node-b, containers: [{name: w, image: nginx}]}
---
# web: the whole cluster may come in, but `other` is denied (deny wins over the entity).
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: web-from-cluster}
spec:
  endpointSelector: {matchLabels: {"k8s:app": web}}
  ingress:
    - fromEntities: [cluster]
      toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  ingressDeny:
    - fromEndpoints: [{matchLabels: {app: other}}]
---
# db: a NetworkPolicy lets `other` in, a Cilium policy lets `client` in.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-other}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: other}}}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db-from-client}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
---
# client: only web, db and 203.0.113.0/24 but its upper half.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-out}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
    - toEndpoints: [{matchLabels: {app: web}}, {matchLabels: {app: db}}]
    - toCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: client-web}
spec: {from: client, to: "web:80", expect: {outcome: ok}}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: other-web}
spec: {from: other, to: "web:80", timeout: 2s, expect: {outcome: denied}}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: other-db}
spec: {from: other, to: "db:80", expect: {outcome: ok}}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: client-db}
spec: {from: client, to: "db:80", expect: {outcome: ok}}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: client-internet}
spec: {from: client, to: "203.0.113.10:80", expect: {outcome: ok}}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: client-elsewhere}
spec: {from: client, to: "203.0.113.200:80", timeout: 2s, expect: {outcome: denied}}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: other-elsewhere}
spec: {from: other, to: "203.0.113.200:80", expect: {outcome: ok}}
"#;

#[test]
fn every_selector_kind_with_deny_and_a_network_policy() {
    let s = Scenario::new("mix", MIX);
    let (code, out, err) = podnet(&["run", s.path()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Policy denied"), "{out}");
    let r = report(s.path());
    assert!(conn(&r, "other-web")["error"]
        .as_str()
        .unwrap()
        .contains("deny wins"));
}

#[test]
fn bad_cilium_policies_are_input_errors() {
    for (tag, from, to, want) in [
        ("iptables", "proxy: ebpf", "proxy: iptables", "need `proxy: ebpf`"),
        ("entity", "fromEntities: [cluster]", "fromEntities: [galaxy]", "unknown entity \"galaxy\""),
        ("regex", "{matchLabels: {app: db}}]\n", "{matchLabels: {app: db}}]\n      toPorts: [{ports: [{port: \"80\"}], rules: {http: [{path: \"/(a\"}]}}]\n", "missing )"),
        ("side", "ingress: [{fromEndpoints:", "ingress: [{toEndpoints:", "an ingress rule takes from* peers"),
    ] {
        let s = Scenario::new(tag, &MIX.replace(from, to));
        let (code, _, err) = podnet(&["check", s.path()]);
        assert_eq!(code, 2, "{tag}: {err}");
        assert!(err.contains(want), "{tag}: {err}");
        assert!(err.contains("s.yaml:"), "{tag}: a position: {err}");
    }
}

#[test]
fn egress_l7_rules_go_through_the_source_nodes_proxy() {
    let policy = "metadata: {name: web-l7}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress:\n    - fromEndpoints: [{matchLabels: {app: client}}]";
    let egress = "metadata: {name: client-l7}\nspec:\n  endpointSelector: {matchLabels: {app: client}}\n  egress:\n    - toEndpoints: [{matchLabels: {app: web}}]";
    let s = common::EditedCopy::new("egress-l7", "examples/cilium-l7.yaml", policy, egress);
    let (code, out, _) = podnet(&["run", s.path(), "--json", "--quiet"]);
    assert_eq!(code, 1, "the intruder is no longer denied: {out}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(conn(&r, "public")["httpStatus"], 200);
    assert_eq!(conn(&r, "admin")["httpStatus"], 403);
    assert_eq!(
        conn(&r, "intruder")["outcome"],
        "ok",
        "its egress is not enforced"
    );
    let (_, dump, _) = podnet(&["tcpdump", s.path(), "-i", "any", "--", "port", "80"]);
    assert!(
        dump.contains("cilium-envoy-node-a/eth0 In "),
        "node-a's proxy: {dump}"
    );
    assert!(
        !dump.contains("cilium-envoy-node-b/eth0 In "),
        "not node-b's"
    );
}

const RESTART: &str = r#"
apiVersion: podnet.dev/v1alpha1
kind: Cluster
metadata: {name: restart}
spec:
  proxy: ebpf
  nodes:
    - {name: node-a, ip: 192.168.1.100}
    - {name: node-b, ip: 192.168.1.101}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {nodeName: node-a, containers: [{name: c, image: curlimages/curl}]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-from-client}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
---
apiVersion: podnet.dev/v1alpha1
kind: Fault
metadata: {name: replica-dies}
spec: {at: 1s, deletePod: web-1}
---
apiVersion: podnet.dev/v1alpha1
kind: Fault
metadata: {name: replaced}
spec: {at: 1500ms, scale: {deployment: web, replicas: 2}}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: calls}
spec: {from: client, to: "web:80", count: 20, start: 1600ms, interval: 10ms, expect: {outcome: ok}}
"#;

#[test]
fn a_replaced_pod_keeps_its_identity_at_a_new_address() {
    let s = Scenario::new("restart", RESTART);
    let (code, out, err) = podnet(&["run", s.path()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let ipcache = |at: &str| {
        let (code, out, err) = podnet(&[
            "iptables-save",
            s.path(),
            "--node",
            "node-b",
            "-c",
            "--at",
            at,
        ]);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .filter(|l| l.contains("identity=") && l.contains("k8s:app=web"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let before = ipcache("500ms");
    let after = ipcache("2s");
    assert!(
        before
            .iter()
            .any(|l| l.starts_with("10.244.1.2/32 identity=257")),
        "{before:?}"
    );
    assert!(
        after
            .iter()
            .any(|l| l.starts_with("10.244.1.3/32 identity=257")),
        "{after:?}"
    );
    assert!(
        !after.iter().any(|l| l.starts_with("10.244.1.2/32")),
        "{after:?}"
    );
}

#[test]
fn pods_of_one_node_are_judged_by_cilium_policies_too() {
    // The L7 example with the backend moved onto the clients' node: the connection never
    // leaves node-a, and the identity policy and the L7 proxy decide as across nodes.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/cilium-l7.yaml"
    ))
    .unwrap()
    .replace("nodeName: node-b", "nodeName: node-a")
    .replace("10.244.1.20", "10.244.0.20");
    assert!(text.contains("10.244.0.20"));
    let s = Scenario::new("same-node", &text);
    let r = report(s.path());
    assert_eq!(conn(&r, "public")["httpStatus"], 200);
    assert_eq!(conn(&r, "admin")["httpStatus"], 403);
    assert!(conn(&r, "admin")["seenByBackend"].is_null());
    let intruder = conn(&r, "intruder");
    assert_eq!(intruder["outcome"], "denied");
    assert!(intruder["error"]
        .as_str()
        .unwrap()
        .contains("no policy map entry allows identity 257"));
}
