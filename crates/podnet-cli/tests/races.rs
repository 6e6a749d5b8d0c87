//! The conntrack races of nodes with several CPUs, as a user sees them: the DNS 5-second delay
//! (`examples/dns-5s.yaml`) and SNAT port clashes (`examples/snat-clash.yaml`), by kernel
//! version and with their workarounds.

mod common;

use common::{podnet, EditedCopy};

fn run(args: &[&str]) -> String {
    let (code, out, err) = podnet(args);
    assert_eq!(code, 0, "{args:?}: {out}\n{err}");
    out
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["--json", "--quiet"]);
    serde_json::from_str(&run(&a)).unwrap()
}

/// Per flow: (lookups over 1 s, lookups), one lookup per client address.
fn slow_lookups(r: &serde_json::Value, flow: &str) -> (usize, usize) {
    let f = r["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == flow)
        .unwrap();
    let mut by_client = std::collections::BTreeMap::new();
    for c in f["connections"].as_array().unwrap() {
        let from = c["from"].as_str().unwrap();
        let ip = from.rsplit_once(':').unwrap().0.to_string();
        let t = c["dnsTime"].as_str().expect("a lookup").to_string();
        by_client.insert(ip, t);
    }
    let slow = by_client
        .values()
        .filter(|t| t.ends_with('s') && !t.ends_with("ms"))
        .inspect(|t| assert!(t.starts_with("5.00"), "one 5 s timeout: {t}"))
        .count();
    (slow, by_client.len())
}

fn node_a_stats(r: &serde_json::Value) -> serde_json::Value {
    r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node-a")
        .unwrap()["conntrack"]["stats"]
        .clone()
}

#[test]
fn dns_5s_on_4_19_a_share_of_lookups_wait_for_the_timeout() {
    let r = json(&["run", "examples/dns-5s.yaml"]);
    let (slow, all) = slow_lookups(&r, "app");
    assert!(slow > 0 && slow < all, "{slow} of {all}");
    assert_eq!(slow_lookups(&r, "app-reopen").0, 0, "the workaround");
    let st = node_a_stats(&r);
    assert!(st["insert_failed"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(
        st["drop"].as_u64().unwrap() as usize,
        slow,
        "one drop per slow lookup"
    );
    let out = run(&["run", "examples/dns-5s.yaml"]);
    assert!(out.contains(&format!(
        "  dns: {slow} of {all} lookups took over 1s (max 5.00"
    )));
    assert!(out.contains("nf_conntrack: insert clash (insert_failed)"));
    let s = run(&[
        "conntrack",
        "examples/dns-5s.yaml",
        "--node",
        "node-a",
        "-S",
    ]);
    assert_eq!(s.lines().count(), 2, "one line per CPU: {s}");
}

#[test]
fn dns_5s_on_newer_kernels_none_wait() {
    for k in ["5.6", "6.6"] {
        let r = json(&["run", "examples/dns-5s.yaml", "--kernel", k]);
        assert_eq!(slow_lookups(&r, "app").0, 0, "{k}");
        let st = node_a_stats(&r);
        assert_eq!(st["drop"], 0, "{k}: {st}");
        let resolved = if k == "6.6" {
            st["clash_resolve"].as_u64()
        } else {
            st["insert_failed"].as_u64()
        };
        assert!(resolved.unwrap() > 0, "{k}: {st}");
    }
    let one_cpu = EditedCopy::new("dns1cpu", "examples/dns-5s.yaml", "cpus: 2", "cpus: 1");
    let r = json(&["run", one_cpu.path()]);
    assert_eq!(slow_lookups(&r, "app").0, 0);
    assert_eq!(node_a_stats(&r)["insert_failed"], 0);
}

#[test]
fn trace_dns_shows_the_clashing_pair() {
    let r = json(&["run", "examples/dns-5s.yaml"]);
    let conns = r["flows"][0]["connections"].as_array().unwrap();
    let slow = conns
        .iter()
        .position(|c| c["dnsTime"].as_str().unwrap().starts_with("5.00"))
        .unwrap()
        .to_string();
    let t = run(&[
        "trace",
        "examples/dns-5s.yaml",
        "--flow",
        "app",
        "--conn",
        &slow,
        "--dns",
    ]);
    assert!(t.contains("its DNS lookup (took 5.00"), "{t}");
    assert!(t.contains("conntrack: cpu 0") && t.contains("conntrack: cpu 1"));
    assert!(
        t.contains("this lookup cannot see udp"),
        "the hidden winner"
    );
    assert!(
        t.contains("conntrack: insert clash on cpu"),
        "the clash at confirm"
    );
    assert!(t.contains("DROP (nf_conntrack: insert clash (insert_failed))"));
    let (code, _, err) = podnet(&[
        "trace",
        "examples/snat-clash.yaml",
        "--flow",
        "out",
        "--dns",
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn snat_clash_without_random_fully_drops_syns_and_fewer_with_it() {
    let failed = |args: &[&str]| node_a_stats(&json(args))["insert_failed"].as_u64().unwrap();
    let r = json(&["run", "examples/snat-clash.yaml"]);
    let without = node_a_stats(&r)["insert_failed"].as_u64().unwrap();
    assert!(without > 0);
    let retried: Vec<_> = r["flows"][0]["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["connectTime"].as_str())
        .filter(|t| !t.ends_with("ms"))
        .collect();
    assert!(!retried.is_empty() && retried.iter().all(|t| t.ends_with(".000s")));
    let fully = EditedCopy::new(
        "snatrf",
        "examples/snat-clash.yaml",
        "randomFully: false",
        "randomFully: true",
    );
    assert!(failed(&["run", fully.path()]) < without);
    assert!(failed(&["run", "examples/snat-clash.yaml", "--kernel", "6.6"]) < without);
}

#[test]
fn bad_kernel_and_cpus_are_refused_with_their_line() {
    let k = EditedCopy::new(
        "badk",
        "examples/dns-5s.yaml",
        "kernel: \"4.19\"",
        "kernel: \"3.10\"",
    );
    let (code, _, err) = podnet(&["check", k.path()]);
    assert_eq!(code, 2);
    assert!(err.contains(":5:") || err.contains("kernel"), "{err}");
    assert!(err.contains("4.7 or later"), "{err}");
    let c = EditedCopy::new("badc", "examples/dns-5s.yaml", "cpus: 2", "cpus: 0");
    let (code, _, err) = podnet(&["check", c.path()]);
    assert_eq!(code, 2);
    assert!(err.contains("cpus: must be between 1 and 64"), "{err}");
    let o = EditedCopy::new(
        "badopt",
        "examples/dns-5s.yaml",
        "{name: single-request-reopen}",
        "{name: use-vc}",
    );
    let (code, _, err) = podnet(&["check", o.path()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("use-vc (DNS over TCP) is not supported yet"),
        "{err}"
    );
}
