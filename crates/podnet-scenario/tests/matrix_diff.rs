//! Differential test of the connectivity matrix: random clusters and random NetworkPolicies
//! written as YAML, every cell probed with real connections by `matrix`, each compared with the
//! evaluator written only from the Kubernetes documentation. Zero disagreement allowed.

#[path = "../../podnet/tests/support/netpol_ref.rs"]
mod netpol_ref;
#[path = "../../podnet/tests/support/rng.rs"]
mod rng;

use std::fmt::Write as _;

use netpol_ref::Ref;
use podnet::kube_proxy::L4;
use podnet::policy::Flow;
use podnet_scenario::matrix::{matrix, MatrixOptions};
use podnet_scenario::{build, load_str};
use rng::Rng;

const NS: [&str; 3] = ["x", "y", "z"];
const KEYS: [&str; 2] = ["app", "tier"];
const VALS: [&str; 3] = ["a", "b", "c"];
/// Probed ports: 80 and 81, as the upstream e2e tests use, and 53.
const PORTS: [u16; 3] = [53, 80, 81];

fn labels(r: &mut Rng) -> String {
    let mut out = Vec::new();
    for k in KEYS {
        if r.chance(60) {
            out.push(format!("{k}: {}", r.word(&VALS)));
        }
    }
    format!("{{{}}}", out.join(", "))
}

fn selector(r: &mut Rng) -> String {
    let mut parts = Vec::new();
    if r.chance(40) {
        parts.push(format!(
            "matchLabels: {{{}: {}}}",
            r.word(&KEYS),
            r.word(&VALS)
        ));
    }
    if r.chance(30) {
        let op = r.word(&["In", "NotIn", "Exists", "DoesNotExist"]);
        let values = if matches!(op, "In" | "NotIn") {
            let n = r.below(2) + 1;
            let v: Vec<&str> = (0..n).map(|_| r.word(&VALS)).collect();
            format!(", values: [{}]", v.join(", "))
        } else {
            String::new()
        };
        parts.push(format!(
            "matchExpressions: [{{key: {}, operator: {op}{values}}}]",
            r.word(&KEYS)
        ));
    }
    format!("{{{}}}", parts.join(", "))
}

fn ns_selector(r: &mut Rng) -> String {
    if r.chance(30) {
        format!(
            "{{matchLabels: {{kubernetes.io/metadata.name: {}}}}}",
            r.word(&NS)
        )
    } else {
        selector(r)
    }
}

fn cidr(r: &mut Rng) -> String {
    let len = [16u32, 24, 25, 30, 32, 32][r.below(6)];
    let host = (10u32 << 24) | (244 << 16) | ((r.below(2) as u32) << 8) | (r.below(8) as u32 * 2);
    let net = host & (u32::MAX << (32 - len));
    let [a, b, c, d] = net.to_be_bytes();
    format!("{a}.{b}.{c}.{d}/{len}")
}

fn peer(r: &mut Rng) -> String {
    match r.below(4) {
        0 => {
            let except: Vec<String> = (0..r.below(2)).map(|_| cidr(r)).collect();
            if except.is_empty() {
                format!("{{ipBlock: {{cidr: {}}}}}", cidr(r))
            } else {
                // An except must lie inside the block: a /16 holds every pod.
                format!(
                    "{{ipBlock: {{cidr: 10.244.0.0/16, except: [{}]}}}}",
                    except.join(", ")
                )
            }
        }
        1 => format!("{{namespaceSelector: {}}}", ns_selector(r)),
        2 => format!("{{podSelector: {}}}", selector(r)),
        _ => format!(
            "{{namespaceSelector: {}, podSelector: {}}}",
            ns_selector(r),
            selector(r)
        ),
    }
}

fn port(r: &mut Rng) -> String {
    let protocol = r.word(&["TCP", "TCP", "UDP"]);
    match r.below(4) {
        0 => format!("{{protocol: {protocol}}}"),
        1 => format!(
            "{{protocol: {protocol}, port: {}}}",
            r.word(&["serve-80", "serve-81", "dns"])
        ),
        2 => format!(
            "{{protocol: {protocol}, port: 53, endPort: {}}}",
            53 + r.below(40)
        ),
        _ => format!(
            "{{protocol: {protocol}, port: {}}}",
            PORTS[r.below(PORTS.len())]
        ),
    }
}

fn rules(r: &mut Rng, key: &str, peer_key: &str) -> String {
    let mut out = String::new();
    let n = r.below(3);
    if n == 0 && r.chance(50) {
        return String::new();
    }
    let _ = writeln!(out, "  {key}:");
    for _ in 0..n {
        let peers: Vec<String> = (0..r.below(3)).map(|_| peer(r)).collect();
        let ports: Vec<String> = (0..r.below(3)).map(|_| port(r)).collect();
        let _ = writeln!(
            out,
            "    - {{{peer_key}: [{}], ports: [{}]}}",
            peers.join(", "),
            ports.join(", ")
        );
    }
    if n == 0 {
        out = format!("  {key}: []\n");
    }
    out
}

/// A random cluster: 2 nodes, 3 namespaces, 4-7 pods with random labels and named ports, 1-4
/// NetworkPolicies.
fn random_yaml(r: &mut Rng) -> String {
    let mut y = String::from(
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nmetadata: {name: diff}\nspec:\n  nodes: [{name: n0, ip: 192.168.1.100}, {name: n1, ip: 192.168.1.101}]\n",
    );
    for ns in NS {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {}}}\n",
            labels(r)
        );
    }
    for i in 0..r.below(4) + 4 {
        let mut ports = Vec::new();
        for (name, p) in [("serve-80", 80), ("serve-81", 81), ("dns", 53)] {
            if r.chance(50) {
                let proto = r.word(&["TCP", "UDP"]);
                ports.push(format!(
                    "{{name: {name}, containerPort: {p}, protocol: {proto}}}"
                ));
            }
        }
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: {}, labels: {}}}\nspec:\n  nodeName: n{}\n  containers: [{{name: c, image: agnhost, ports: [{}]}}]\n",
            r.word(&NS),
            labels(r),
            r.below(2),
            ports.join(", ")
        );
    }
    for i in 0..r.below(4) + 1 {
        let _ = write!(
            y,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: pol{i}, namespace: {}}}\nspec:\n  podSelector: {}\n",
            r.word(&NS),
            selector(r)
        );
        y.push_str(&rules(r, "ingress", "from"));
        y.push_str(&rules(r, "egress", "to"));
        if r.chance(50) {
            let mut types = Vec::new();
            if r.chance(60) {
                types.push("Ingress");
            }
            if r.chance(60) {
                types.push("Egress");
            }
            let _ = writeln!(y, "  policyTypes: [{}]", types.join(", "));
        }
    }
    y
}

#[test]
fn every_matrix_cell_agrees_with_the_documentation_reference() {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let (mut cells, mut denied) = (0u32, 0u32);
    let opts = MatrixOptions {
        ports: PORTS.to_vec(),
        protocols: vec![L4::Tcp, L4::Udp],
        services: false,
        ..MatrixOptions::default()
    };
    for case in 0..40 {
        let yaml = random_yaml(&mut r);
        let loaded =
            load_str("random.yaml", &yaml).unwrap_or_else(|e| panic!("case {case}: {e}\n{yaml}"));
        let sc = &loaded.scenario;
        let (c, _) = build(sc).unwrap();
        let world = c.policy_world();
        let reference = Ref { w: &world };
        let m = matrix(sc, &opts).unwrap();
        for t in &m.tables {
            let proto = if t.protocol == "TCP" { 6 } else { 17 };
            for (i, row) in t.cells.iter().enumerate() {
                for (j, cell) in row.iter().enumerate() {
                    if cell.result == "self" {
                        continue;
                    }
                    let ip = |k: usize| t.columns[k].ip.parse().unwrap();
                    let src_col = t
                        .columns
                        .iter()
                        .position(|col| col.name == t.rows[i])
                        .unwrap();
                    let flow = Flow {
                        src: ip(src_col),
                        dst: ip(j),
                        proto,
                        dport: t.port,
                    };
                    let want = if reference.allows(&flow) {
                        "allowed"
                    } else {
                        "denied"
                    };
                    assert_eq!(
                        cell.result, want,
                        "case {case}: {} -> {} {}/{}: {}\n{yaml}",
                        t.rows[i], t.columns[j].name, t.protocol, t.port, cell.why
                    );
                    cells += 1;
                    denied += u32::from(want == "denied");
                }
            }
        }
    }
    assert!(cells > 3_000, "{cells}");
    assert!(
        denied > cells / 10 && denied < cells * 9 / 10,
        "{denied}/{cells}"
    );
    println!("{cells} cells, {denied} denied");
}

/// `sources` keeps the rows to the pods named (what a ConnectivityExpectation needs) and every
/// column, with the same cells as the whole matrix.
#[test]
fn sources_restrict_the_rows_only() {
    let mut r = Rng(7);
    let yaml = random_yaml(&mut r);
    let sc = load_str("random.yaml", &yaml).unwrap().scenario;
    let all = MatrixOptions {
        ports: vec![80],
        protocols: vec![L4::Tcp],
        services: false,
        ..MatrixOptions::default()
    };
    let whole = matrix(&sc, &all).unwrap();
    let some = matrix(
        &sc,
        &MatrixOptions {
            sources: Some(vec![1]),
            ..all.clone()
        },
    )
    .unwrap();
    let (w, s) = (&whole.tables[0], &some.tables[0]);
    assert_eq!(s.rows, [w.rows[1].clone()]);
    assert_eq!(s.columns, w.columns);
    assert_eq!(s.cells[0], w.cells[1]);
}
