//! `podnet matrix` as a user runs it: the truth table of examples/network-policy.yaml, its
//! JSON, options, and bad input.

mod common;

use common::podnet;

#[test]
fn matrix_of_the_network_policy_example() {
    let (code, out, err) = podnet(&["matrix", "examples/network-policy.yaml", "-q"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("matrix_network_policy", out);
}

#[test]
fn matrix_json_cells_name_the_deciding_policy() {
    let (code, out, err) = podnet(&[
        "matrix",
        "examples/network-policy.yaml",
        "--json",
        "--port",
        "80",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    let t = &m["tables"][0];
    assert_eq!(t["protocol"], "TCP");
    assert_eq!(t["port"], 80);
    let row = |name: &str| {
        t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .position(|r| r == name)
            .unwrap()
    };
    let col = |name: &str| {
        t["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["name"] == name)
            .unwrap()
    };
    // The frontend reaches the backend directly and through the Service.
    let ok = &t["cells"][row("default/pod-a")][col("default/backend")];
    assert_eq!(ok["result"], "allowed");
    assert!(ok["why"]
        .as_str()
        .unwrap()
        .contains("default/allow-frontend"));
    let svc = &t["cells"][row("default/pod-a")][col("default/web")];
    assert_eq!(svc["result"], "allowed");
    // The intruder is denied by the backend's ingress isolation.
    let no = &t["cells"][row("default/intruder")][col("default/backend")];
    assert_eq!(no["result"], "denied");
    assert!(no["why"].as_str().unwrap().starts_with("ingress denied"));
    assert_eq!(m["allowed"], 2);
    assert_eq!(m["denied"], 7);
    assert_eq!(m["other"], 0);
}

#[test]
fn matrix_options_restrict_and_bad_input_exits_2() {
    let (code, out, _) = podnet(&[
        "matrix",
        "examples/network-policy.yaml",
        "--port",
        "80",
        "--protocol",
        "udp",
        "--no-services",
        "-q",
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("UDP/80:"), "{out}");
    assert!(!out.contains("(Service)"), "{out}");
    let (code, _, err) = podnet(&["matrix", "examples/network-policy.yaml", "-n", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no pod in namespace(s) nope"), "{err}");
    let (code, _, err) = podnet(&[
        "matrix",
        "examples/network-policy.yaml",
        "--protocol",
        "sctp",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("tcp or udp"), "{err}");
}

#[test]
fn a_wrong_connectivity_expectation_exits_1_with_the_differences() {
    let (code, out, err) = podnet(&["run", "examples/network-policy.yaml", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("connectivity only-frontends-reach-web: 8 probes checked, all as expected"),
        "{out}"
    );
    let wrong = common::EditedCopy::new(
        "expect",
        "examples/network-policy.yaml",
        "    pod-a      -      X         .",
        "    pod-a      -      .         .",
    );
    let (code, _, err) = podnet(&["run", wrong.path(), "-q"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("ConnectivityExpectation only-frontends-reach-web: 1 of 8 cells differ"),
        "{err}"
    );
    assert!(err.contains("FROM"), "{err}");
    assert!(
        err.contains("default/pod-a  default/intruder  TCP/80    allowed   denied"),
        "{err}"
    );
}

#[test]
fn diff_of_the_example_pair_prints_exactly_the_changed_cells() {
    let (code, out, err) = podnet(&[
        "diff",
        "examples/network-policy.yaml",
        "examples/network-policy-change.yaml",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("diff_network_policy_change", out);
    let (code, out, _) = podnet(&[
        "diff",
        "examples/network-policy.yaml",
        "examples/network-policy-change.yaml",
        "--json",
        "--fail-on-change",
        "-q",
    ]);
    assert_eq!(code, 1);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cells: Vec<(String, String)> = d["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["from"].as_str().unwrap().into(),
                c["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        cells,
        [
            ("default/pod-a".to_string(), "default/backend".to_string()),
            ("default/pod-a".to_string(), "default/web".to_string())
        ]
    );
    assert_eq!(
        d["probesCompared"]
            .as_u64()
            .or(d["probes_compared"].as_u64()),
        Some(9)
    );
    assert_eq!(d["connections"].as_array().unwrap().len(), 2);
}

#[test]
fn diff_without_a_change_is_empty_and_bad_usage_exits_2() {
    let (code, out, err) = podnet(&[
        "diff",
        "examples/network-policy.yaml",
        "examples/network-policy.yaml",
        "--fail-on-change",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("probes: 0 of 9 changed\n"), "{out}");
    assert!(out.contains("traffic: 0 of 3 connections changed"), "{out}");
    let (code, out, _) = podnet(&[
        "diff",
        "examples/network-policy.yaml",
        "--remove-policy",
        "default/allow-frontend",
        "--no-traffic",
        "-q",
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("probes: 2 of 9 changed\n"), "{out}");
    let (code, _, err) = podnet(&[
        "diff",
        "examples/network-policy.yaml",
        "--remove-policy",
        "default/nope",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no NetworkPolicy default/nope"), "{err}");
    let (code, _, err) = podnet(&["diff", "examples/network-policy.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("takes two files"), "{err}");
}
