//! The connectivity matrix of a large cluster: 30 namespaces of 10 pods each (300 pods over
//! 10 nodes) and 100 NetworkPolicies (default-deny, namespace AND pod selectors, egress to
//! labelled namespaces, ipBlock with except), every pod probing every pod on TCP 80: 89,700
//! real connections. The reference is the NetworkPolicy evaluator alone over the same cells,
//! without a packet: what the packets cost on top of the verdicts.
//!
//! `PODNET_MATRIX_YAML=FILE cargo bench -p podnet-scenario --bench matrix` also writes the
//! scenario to FILE, for timing `podnet matrix FILE --port 80` as a user runs it.

#[path = "../../podnet/tests/support/netpol_ref.rs"]
mod netpol_ref;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use podnet::kube_proxy::L4;
use podnet::policy::{verdict, Flow};
use podnet_scenario::matrix::{matrix, MatrixOptions};
use podnet_scenario::{build, load_str, Scenario};

const APPS: [&str; 5] = ["web", "api", "db", "cache", "queue"];

/// The cluster as a scenario file.
pub fn cluster_yaml(namespaces: usize, pods: usize, policies: usize) -> String {
    let mut y = String::from(
        "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nmetadata: {name: matrix-bench}\nspec:\n  nodes:\n",
    );
    for i in 0..10 {
        let _ = writeln!(y, "    - {{name: node-{i}, ip: 192.168.1.{}}}", 100 + i);
    }
    for n in 0..namespaces {
        let env = if n % 2 == 1 { "prod" } else { "dev" };
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{n}, labels: {{team: t{}, env: {env}}}}}\n",
            n % 5
        );
    }
    for n in 0..namespaces {
        for p in 0..pods {
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: pod-{p}, namespace: ns-{n}, labels: {{app: {}, tier: t{}}}}}\nspec:\n  nodeName: node-{}\n  containers: [{{name: c, image: agnhost, ports: [{{name: http, containerPort: 80}}]}}]\n",
                APPS[p % 5],
                p % 3,
                (n * pods + p) % 10
            );
        }
    }
    for i in 0..policies {
        let (n, app) = (i % namespaces, APPS[i % 5]);
        let spec = match i % 4 {
            0 => format!("  podSelector: {{matchLabels: {{app: {app}}}}}\n  policyTypes: [Ingress]\n"),
            1 => format!(
                "  podSelector: {{matchLabels: {{app: {app}}}}}\n  ingress:\n    - from: [{{namespaceSelector: {{matchLabels: {{team: t{}}}}}, podSelector: {{matchLabels: {{tier: t{}}}}}}}]\n      ports: [{{port: http}}]\n",
                i % 5,
                i % 3
            ),
            2 => format!(
                "  podSelector: {{matchLabels: {{tier: t{}}}}}\n  ingress:\n    - from: [{{podSelector: {{matchLabels: {{app: {}}}}}}}]\n  egress:\n    - to: [{{namespaceSelector: {{matchLabels: {{env: prod}}}}}}]\n",
                i % 3,
                APPS[(i + 1) % 5]
            ),
            _ => format!(
                "  podSelector: {{}}\n  ingress:\n    - from: [{{ipBlock: {{cidr: 10.244.0.0/16, except: [10.244.{}.0/24]}}}}]\n",
                i % 10
            ),
        };
        let _ = write!(
            y,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: pol-{i}, namespace: ns-{n}}}\nspec:\n{spec}"
        );
    }
    y
}

fn scenario() -> Scenario {
    let yaml = cluster_yaml(30, 10, 100);
    if let Some(path) = std::env::var_os("PODNET_MATRIX_YAML") {
        std::fs::write(path, &yaml).expect("write PODNET_MATRIX_YAML");
    }
    load_str("matrix-bench.yaml", &yaml).unwrap().scenario
}

fn bench(c: &mut Criterion) {
    let sc = scenario();
    let opts = MatrixOptions {
        ports: vec![80],
        protocols: vec![L4::Tcp],
        services: false,
        ..MatrixOptions::default()
    };
    // Before timing: every cell agrees with the evaluator written from the documentation.
    let (cluster, _) = build(&sc).unwrap();
    let world = cluster.policy_world();
    let m = matrix(&sc, &opts).unwrap();
    let reference = netpol_ref::Ref { w: &world };
    let t = &m.tables[0];
    let ip = |name: &str| -> smoltcp::wire::Ipv4Address {
        let c = t.columns.iter().find(|c| c.name == name).unwrap();
        c.ip.parse().unwrap()
    };
    let mut checked = 0u32;
    for (i, row) in t.cells.iter().enumerate() {
        for (j, cell) in row.iter().enumerate().filter(|(_, c)| c.result != "self") {
            let f = Flow {
                src: ip(&t.rows[i]),
                dst: t.columns[j].ip.parse().unwrap(),
                proto: 6,
                dport: 80,
            };
            let want = if reference.allows(&f) {
                "allowed"
            } else {
                "denied"
            };
            assert_eq!(cell.result, want, "{} -> {}", t.rows[i], t.columns[j].name);
            checked += 1;
        }
    }
    println!("every one of {checked} cells matches the documentation-only evaluator");
    let mut g = c.benchmark_group("matrix_300_pods_100_policies");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(30));
    g.bench_function("podnet_matrix_real_probes", |b| {
        b.iter(|| {
            let m = matrix(black_box(&sc), &opts).unwrap();
            assert_eq!(m.probes, 300 * 299);
            m.allowed
        })
    });
    // The reference: the evaluator alone, every cell, same world.
    let ips: Vec<_> = world.pods.keys().copied().collect();
    g.bench_function("evaluator_only", |b| {
        b.iter(|| {
            let mut allowed = 0u32;
            for &src in &ips {
                for &dst in ips.iter().filter(|d| **d != src) {
                    let f = Flow {
                        src,
                        dst,
                        proto: 6,
                        dport: 80,
                    };
                    allowed += u32::from(verdict(black_box(&world), &f).allowed);
                }
            }
            allowed
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
