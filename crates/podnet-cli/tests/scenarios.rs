//! The `podnet` binary on the example scenarios in `examples/`, as a user runs it: expected
//! outcomes, the JSON report, determinism, pcaps, golden human outputs, and bad input.

mod common;

use std::path::PathBuf;

use common::{podnet, root};

fn report(file: &str) -> serde_json::Value {
    let (code, out, err) = podnet(&["run", file, "--json", "--quiet"]);
    assert_eq!(code, 0, "{file}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn connections<'a>(r: &'a serde_json::Value, flow: &str) -> &'a Vec<serde_json::Value> {
    r["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == flow)
        .unwrap()["connections"]
        .as_array()
        .unwrap()
}

#[test]
fn every_example_meets_its_expectations() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let (code, out, err) = podnet(&["run", path.to_str().unwrap(), "--quiet"]);
            assert_eq!(code, 0, "{}:\n{out}\n{err}", path.display());
            n += 1;
        }
    }
    assert!(n >= 7, "{n} examples");
}

#[test]
fn seed_report_names_the_backend_and_what_it_saw() {
    let r = report("examples/seed.yaml");
    assert_eq!(r["version"], "v1alpha1");
    for c in connections(&r, "web") {
        assert_eq!(c["to"], "10.96.0.10:80");
        assert_eq!(c["backend"], "10.244.1.20:80");
        assert_eq!(
            c["seenByBackend"], c["from"],
            "pod -> ClusterIP is not masqueraded"
        );
        assert!(c["from"].as_str().unwrap().starts_with("10.244.0.5:"));
        assert_eq!(c["outcome"], "ok");
        assert!(c["connectTime"].as_str().unwrap().ends_with("ms"));
        assert!(c["bytesReceived"].as_u64().unwrap() > 0);
    }
    let node_a = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node-a")
        .unwrap();
    assert_eq!(node_a["conntrack"]["max"], 262144);
    // Linux 6.x counts only ctnetlink insertions in `insert`.
    assert_eq!(node_a["conntrack"]["stats"]["insert"], 0);
}

#[test]
fn three_endpoints_share_the_load() {
    let r = report("examples/three-endpoints.yaml");
    let mut per: std::collections::BTreeMap<String, u32> = Default::default();
    for c in connections(&r, "load") {
        *per.entry(c["backend"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per.len(), 3, "{per:?}");
    assert!(per.values().all(|n| (910..=1090).contains(n)), "{per:?}");
}

#[test]
fn the_examples_tell_the_seed_story() {
    let full = report("examples/conntrack-full.yaml");
    let drops = full["drops"].as_array().unwrap();
    assert!(drops.iter().any(
        |d| d["reason"] == "nf_conntrack: table full, dropping packet"
            && d["packet"].as_str().unwrap().ends_with(" S")
    ));
    let hairpin = report("examples/hairpin.yaml");
    assert!(connections(&hairpin, "hairpin")
        .iter()
        .all(|c| c["seenByBackend"]
            .as_str()
            .unwrap()
            .starts_with("10.244.0.1:")));
    let np = report("examples/nodeport.yaml");
    assert!(connections(&np, "cluster-policy")
        .iter()
        .all(|c| c["seenByBackend"]
            .as_str()
            .unwrap()
            .starts_with("192.168.1.100:")));
    assert!(connections(&np, "local-policy")
        .iter()
        .all(|c| c["seenByBackend"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.10:")));
    let egress = report("examples/egress-to-internet.yaml");
    assert!(connections(&egress, "out")
        .iter()
        .all(|c| c["seenByBackend"]
            .as_str()
            .unwrap()
            .starts_with("192.168.1.100:")));
    let none = report("examples/no-endpoints.yaml");
    let c = &connections(&none, "empty")[0];
    assert_eq!(
        (c["outcome"].as_str(), c["backend"].is_null()),
        (Some("refused"), true)
    );
}

#[test]
fn same_file_and_seed_give_identical_reports_and_pcaps() {
    let dir = std::env::temp_dir().join(format!("podnet-det-{}", std::process::id()));
    let run = |seed: &str, sub: &str| {
        let d = dir.join(sub);
        let (code, out, err) = podnet(&[
            "run",
            "examples/seed.yaml",
            "--json",
            "--quiet",
            "--seed",
            seed,
            "--pcap",
            d.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let mut pcaps: Vec<(String, Vec<u8>)> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        pcaps.sort();
        (out, pcaps)
    };
    let a = run("1", "a");
    let b = run("1", "b");
    let c = run("2", "c");
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert!(a.1.iter().any(|(n, p)| n == "any.pcap" && p.len() > 24));
    assert_ne!(a.0, c.0, "--seed changes the run");
    assert_ne!(a.1, c.1);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_kubectl_dump_loads() {
    let (code, out, err) = podnet(&[
        "check",
        "crates/podnet-scenario/tests/fixtures/kubectl-dump.yaml",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SERVICE"), "{out}");
}

#[test]
fn bad_inputs_exit_2_with_a_line_number_and_never_panic() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("crates/podnet-scenario/tests/bad")).unwrap() {
        let path = e.unwrap().path();
        let (code, _, err) = podnet(&["check", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{}: {err}", path.display());
        assert!(!err.contains("panicked"), "{}: {err}", path.display());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let at = err
            .find(&name)
            .unwrap_or_else(|| panic!("{}: message names no file: {err}", path.display()));
        let rest = &err[at + name.len()..];
        assert!(
            rest.starts_with(':') && rest[1..].starts_with(|c: char| c.is_ascii_digit()),
            "{}: no line number: {err}",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 30, "{n} bad files");
    let (code, _, err) = podnet(&["run", "no/such/file.yaml"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn unknown_kinds_warn() {
    let dir = std::env::temp_dir().join(format!("podnet-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("w.yaml");
    std::fs::write(
        &f,
        std::fs::read_to_string(root().join("examples/no-endpoints.yaml")).unwrap()
            + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let (code, _, err) = podnet(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning:") && err.contains("ConfigMap"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// `iptables-save -c` on node-a of the seed at 100 ms, when its three connections have
/// closed. Each crosses node-a's FORWARD hook with 7 packets: SYN and SYN-ACK (52 bytes: 20 of
/// IP, 32 of TCP with options), the request (40 + 62 bytes of HTTP = 102), the response
/// (40 + 88 = 128), two FINs and the last ACK (40 each): 454 bytes, 1362 for three.
/// - filter: every forwarded packet matches the KUBE-FORWARD jump, [21:1362]; all but the SYNs
///   are ESTABLISHED and accepted there, [18:1206]; the 3 SYNs (NEW) take the three
///   `--ctstate NEW` jumps, come back from those chains (nothing in them matches) and fall
///   off FORWARD: its policy counts [3:156]. INPUT and OUTPUT see nothing: no local traffic.
/// - nat: only each connection's first packet, the SYN: KUBE-SERVICES, the Service's rule,
///   KUBE-SVC, KUBE-SEP and its DNAT, [3:156] each; DNAT ends the walk, so PREROUTING's policy
///   stays [0:0]. At POSTROUTING, KUBE-POSTROUTING's RETURN (no 0x4000 mark), flannel's pod to
///   pod RETURN, then POSTROUTING's policy, [3:156]. The masquerade rules do not match: the
///   client is a pod (KUBE-SVC's `! -s 10.244.0.0/16`) that is not its own backend.
/// - user chains print [0:0] (they have no policy to count).
#[test]
fn iptables_save_counters_of_the_seed() {
    let (code, rules, err) = podnet(&[
        "iptables-save",
        "examples/seed.yaml",
        "--node",
        "node-a",
        "--counters",
        "--at",
        "100ms",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("iptables_save_counters_seed", rules);
    // At the end of the run (no --at) the last client has its response but the third
    // connection's ACK of it, its two FINs and the last ACK have not crossed yet: 4 x 52
    // bytes fewer (40 and a timestamp option each) than the 30 packets of three exchanges.
    let (_, end, _) = podnet(&[
        "iptables-save",
        "examples/seed.yaml",
        "--node",
        "node-a",
        "-c",
        "--quiet",
    ]);
    assert!(end.contains(
        "[26:1850] -A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
    ));
    // Without -c nothing runs and nothing changes: the plain snapshot's text, [0:0] chains.
    let (_, plain, _) = podnet(&[
        "iptables-save",
        "examples/seed.yaml",
        "--node",
        "node-a",
        "--quiet",
    ]);
    let mut stripped = String::new();
    for line in rules.lines() {
        let line = line
            .strip_prefix('[')
            .map_or(line, |l| l.split_once("] ").map_or(line, |(_, rest)| rest));
        let line = match line.rfind(" [") {
            Some(i) if line.starts_with(':') => format!("{} [0:0]", &line[..i]),
            _ => line.to_string(),
        };
        stripped.push_str(&line);
        stripped.push('\n');
    }
    assert_eq!(stripped, plain);
}

#[test]
fn golden_outputs_of_the_seed() {
    let (_, run, _) = podnet(&["run", "examples/seed.yaml", "--quiet"]);
    insta::assert_snapshot!("run_seed", run);
    let (_, trace, _) = podnet(&["trace", "examples/seed.yaml", "--flow", "web", "--quiet"]);
    insta::assert_snapshot!("trace_seed", trace);
    let (_, ct, _) = podnet(&[
        "conntrack",
        "examples/seed.yaml",
        "--node",
        "node-a",
        "--quiet",
    ]);
    insta::assert_snapshot!("conntrack_seed", ct);
    let (_, rules, _) = podnet(&[
        "iptables-save",
        "examples/seed.yaml",
        "--node",
        "node-a",
        "--quiet",
    ]);
    insta::assert_snapshot!("iptables_save_seed", rules);
    let (_, dump, _) = podnet(&[
        "tcpdump",
        "examples/seed.yaml",
        "-i",
        "node-a/eth0",
        "--quiet",
        "--",
        "tcp",
        "and",
        "port",
        "80",
    ]);
    insta::assert_snapshot!("tcpdump_seed", dump);
    let (_, check, _) = podnet(&["check", "examples/seed.yaml", "--quiet"]);
    insta::assert_snapshot!("check_seed", check);
}

#[test]
fn explain_shows_routes_rules_and_nat() {
    let (code, out, err) = podnet(&[
        "explain",
        "examples/seed.yaml",
        "--from",
        "pod-a",
        "--to",
        "web:80",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("route: 10.244.1.20 -> 10.244.1.0/24 via 192.168.1.101 dev eth0"),
        "{out}"
    );
    assert!(
        out.contains("-j DNAT --to-destination 10.244.1.20:80"),
        "{out}"
    );
    assert!(out.contains("dst 10.96.0.10:80 -> 10.244.1.20:80"), "{out}");
}

#[test]
fn network_policy_denies_and_explain_says_why() {
    let r = report("examples/network-policy.yaml");
    assert!(connections(&r, "frontend")
        .iter()
        .all(|c| c["outcome"] == "ok"));
    let denied = &connections(&r, "intruder")[0];
    assert_eq!(denied["outcome"], "denied");
    assert!(
        denied["error"]
            .as_str()
            .unwrap()
            .contains("no policy allows it"),
        "{denied}"
    );
    let (code, out, err) = podnet(&[
        "explain",
        "examples/network-policy.yaml",
        "--from",
        "intruder",
        "--to",
        "web:80",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("NetworkPolicy (judged after DNAT, against 10.244.1.2:80): DENIED"),
        "{out}"
    );
    assert!(
        out.contains("selected by default/default-deny, default/allow-frontend"),
        "{out}"
    );
}

#[test]
fn ebpf_example_never_puts_the_cluster_ip_on_the_wire() {
    let r = report("examples/ebpf.yaml");
    for c in connections(&r, "web") {
        assert_eq!(
            c["to"], "10.96.0.10:80",
            "the application dialled the ClusterIP"
        );
        assert_eq!(c["backend"], "10.244.1.20:80");
        assert_eq!(c["seenByBackend"], c["from"]);
    }
    // DSR keeps the client address.
    for c in connections(&r, "from-outside") {
        assert_eq!(c["outcome"], "ok");
        assert!(c["seenByBackend"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.10:"));
    }
    let node_a = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node-a")
        .unwrap();
    assert_eq!(node_a["bpf"]["socketLb"], 3);
    assert_eq!(node_a["bpf"]["dsr"], 2);
    assert_eq!(
        node_a["conntrack"]["count"], 0,
        "nf_conntrack sees no pod flow"
    );
    // tcpdump in the client pod shows the backend, never the ClusterIP.
    let (code, dump, err) = podnet(&[
        "tcpdump",
        "examples/ebpf.yaml",
        "-i",
        "pod-a/eth0",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(dump.contains("10.244.0.5.") && dump.contains(" > 10.244.1.20.80:"));
    assert!(!dump.contains("10.96.0.10"), "{dump}");
    let dir = std::env::temp_dir().join(format!("podnet-ebpf-{}", std::process::id()));
    let (code, _, err) = podnet(&[
        "run",
        "examples/ebpf.yaml",
        "--quiet",
        "--pcap",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let pcap = std::fs::read(dir.join("pod-a_eth0.pcap")).unwrap();
    assert!(pcap.len() > 100);
    assert!(!pcap.windows(4).any(|w| w == [10, 96, 0, 10]));
    let _ = std::fs::remove_dir_all(&dir);
    // No kube-proxy rules; the Service is a map entry.
    let (_, rules, _) = podnet(&[
        "iptables-save",
        "examples/ebpf.yaml",
        "--node",
        "node-a",
        "--quiet",
    ]);
    assert!(!rules.contains("KUBE-SVC"));
    assert!(rules.contains("10.96.0.10:80/TCP"));
    let (_, ct, _) = podnet(&[
        "conntrack",
        "examples/ebpf.yaml",
        "--node",
        "node-a",
        "--quiet",
    ]);
    assert!(ct.contains("TCP OUT 10.244.0.5:"), "{ct}");
    // The walk starts at connect(), where the backend was chosen.
    let (_, walk, _) = podnet(&["trace", "examples/ebpf.yaml", "--flow", "web", "--quiet"]);
    assert!(
        walk.contains(
            "pod-a   cgroup/connect4 (socket LB): connect(10.96.0.10:80) -> 10.244.1.20:80"
        ),
        "{walk}"
    );
    let (_, walk, _) = podnet(&[
        "trace",
        "examples/ebpf.yaml",
        "--flow",
        "from-outside",
        "--quiet",
    ]);
    assert!(walk.contains("bpf_host from-netdev: lb4: service 192.168.1.100:30080"));
    assert!(walk.contains("DSR: IPv4 option 0x9a"));
}

/// The three-endpoint example in kube-proxy's iptables and nftables modes and in eBPF mode,
/// side by side: the same outcome, and the rules each first packet walked.
#[test]
fn three_endpoints_in_three_proxy_modes() {
    let text = std::fs::read_to_string(root().join("examples/three-endpoints.yaml")).unwrap();
    let dir = std::env::temp_dir().join(format!("podnet-modes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut per = Vec::new();
    for mode in ["iptables", "nftables", "ebpf"] {
        let file = dir.join(format!("{mode}.yaml"));
        let with_mode = text.replacen("  seed: 3\n", &format!("  seed: 3\n  proxy: {mode}\n"), 1);
        assert_ne!(with_mode, text);
        std::fs::write(&file, with_mode).unwrap();
        let r = report(file.to_str().unwrap());
        let conns = connections(&r, "load");
        assert_eq!(conns.len(), 3000);
        assert!(conns.iter().all(|c| c["outcome"] == "ok"), "{mode}");
        let backends: std::collections::BTreeSet<_> = conns
            .iter()
            .map(|c| c["backend"].as_str().unwrap())
            .collect();
        assert_eq!(backends.len(), 3, "{mode}: {backends:?}");
        let node_a = r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "node-a")
            .unwrap();
        let lookup = &node_a["serviceLookup"];
        println!(
            "{mode:<9} first packets {:>5}  rules walked per first packet {:.2}",
            lookup["firstPackets"],
            lookup["rulesPerFirstPacket"].as_f64().unwrap()
        );
        per.push(lookup["rulesPerFirstPacket"].as_f64().unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
    // iptables walks KUBE-SERVICES, KUBE-SVC-* and the statistic rules; nftables a constant
    // few; eBPF none (the socket LB chose the backend at connect(), map lookups only).
    assert!(per[0] > per[1] && per[1] > 0.0 && per[2] == 0.0, "{per:?}");
}

/// The filter may follow the interface without `--`, as `podnet tcpdump --help` shows.
#[test]
fn tcpdump_filter_words_without_double_dash() {
    let (code, plain, err) = podnet(&[
        "tcpdump",
        "examples/seed.yaml",
        "-i",
        "any",
        "host",
        "10.96.0.10",
        "and",
        "port",
        "80",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, dashed, _) = podnet(&[
        "tcpdump",
        "examples/seed.yaml",
        "-i",
        "any",
        "--quiet",
        "--",
        "host",
        "10.96.0.10",
        "and",
        "port",
        "80",
    ]);
    assert_eq!(plain, dashed);
    assert!(!plain.is_empty() && plain.lines().all(|l| l.contains("10.96.0.10.80")));
}

/// Every example (the slow 3000-connection one aside, run in all modes above) still meets its
/// expectations with Cilium's datapath in place of kube-proxy: socket LB, DNS through
/// per-packet LB, hairpin, NodePort, egress masquerade, policies, VXLAN.
#[test]
fn every_example_meets_its_expectations_in_ebpf_mode() {
    let dir = std::env::temp_dir().join(format!("podnet-ebpf-all-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".yaml") || name == "three-endpoints.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let cluster = text.find("kind: Cluster").expect("a Cluster");
        let spec = cluster + text[cluster..].find("\nspec:\n").expect("its spec") + 7;
        let rest: String = text[spec..]
            .lines()
            .filter(|l| !l.starts_with("  proxy:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let file = dir.join(&name);
        std::fs::write(&file, format!("{}  proxy: ebpf\n{rest}", &text[..spec])).unwrap();
        let (code, out, err) = podnet(&["run", file.to_str().unwrap(), "--quiet"]);
        assert_eq!(code, 0, "{name} in ebpf mode:\n{out}\n{err}");
        assert!(out.contains(": bpf ct "), "{name}: {out}");
        n += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(n >= 9, "{n}");
}

/// Regression (found by replaying podnet's frames through a Linux namespace): the server's data
/// in a long upload must be in window on both nodes, window scaling on both sides.
#[test]
fn uploads_with_window_scaling_stay_in_window_on_both_nodes() {
    let r = report("examples/upload.yaml");
    let conns = connections(&r, "upload");
    assert_eq!(conns.len(), 4);
    assert!(conns.iter().all(|c| c["outcome"] == "ok"), "{conns:?}");
    for node in r["nodes"].as_array().unwrap() {
        assert_eq!(
            node["conntrack"]["stats"]["invalid"], 0,
            "{}: INVALID segments",
            node["name"]
        );
    }
}

/// Regression: when a packet is both DNATed and SNATed (`masquerade.all`), the walk shows
/// node-a's FORWARD and POSTROUTING, where the packet carries the backend address but not yet
/// the node's (the walk used to know only the client-side and server-side tuples).
#[test]
fn trace_shows_the_hooks_between_dnat_and_snat() {
    let text = std::fs::read_to_string(root().join("examples/seed.yaml")).unwrap();
    let all = text.replacen("all: false", "all: true", 1);
    assert_ne!(all, text);
    let dir = std::env::temp_dir().join(format!("podnet-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("seed-masquerade-all.yaml");
    std::fs::write(&file, all).unwrap();
    let (code, walk, err) = podnet(&["trace", file.to_str().unwrap(), "--flow", "web", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        walk.contains("node-a FORWARD: tcp 10.244.0.5:") && walk.contains("> 10.244.1.20:80\n"),
        "{walk}"
    );
    assert!(
        walk.contains("node-a POSTROUTING: tcp 10.244.0.5:")
            && walk.contains("=> tcp 192.168.1.100:"),
        "{walk}"
    );
    assert!(walk.contains("MASQUERADE"), "{walk}");
}

/// The `life` counters of every node's conntrack balance in every example, and in a small
/// table churned by many short connections (expiry, reopened tuples, table-full drops):
/// `created = count + expired + earlyDropped + killed + unconfirmed + flushed`, `count <= max`.
#[test]
fn conntrack_life_counters_balance() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    let churn = std::env::temp_dir().join(format!("podnet-churn-{}.yaml", std::process::id()));
    let scale = std::fs::read_to_string(root().join("examples/scale/conntrack-churn-1m.yaml"))
        .unwrap()
        .replace("max: 65536", "max: 512")
        .replace("replicas: 20", "replicas: 4")
        .replace("count: 50000", "count: 4000");
    std::fs::write(&churn, scale).unwrap();
    files.push(churn.clone());
    let mut churned = false;
    for f in &files {
        let until = if f == &churn { "200s" } else { "30s" };
        let (code, out, err) = podnet(&[
            "run",
            f.to_str().unwrap(),
            "--json",
            "--quiet",
            "--until",
            until,
        ]);
        assert!(code == 0 || code == 1, "{}: {err}", f.display());
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        for n in r["nodes"].as_array().unwrap() {
            let ct = &n["conntrack"];
            if ct.is_null() {
                continue;
            }
            let l = &ct["life"];
            let g = |k: &str| l[k].as_u64().unwrap();
            let count = ct["count"].as_u64().unwrap();
            assert!(count <= ct["max"].as_u64().unwrap(), "{}", f.display());
            assert_eq!(
                g("created"),
                count
                    + g("expired")
                    + g("earlyDropped")
                    + g("killed")
                    + g("unconfirmed")
                    + g("flushed"),
                "{} {}: {l}",
                f.display(),
                n["name"]
            );
            if f == &churn
                && g("expired") > 0
                && g("killed") > 0
                && ct["stats"]["drop"].as_u64().unwrap() > 0
            {
                churned = true;
            }
        }
    }
    let _ = std::fs::remove_file(&churn);
    assert!(
        churned,
        "the small table churned: expiry, reopened tuples and drops"
    );
}

/// A run that outgrows `--max-memory` stops with a clear error (exit 2), not an OOM kill.
#[test]
fn a_run_over_its_memory_budget_stops_with_an_error() {
    let (code, _, err) = podnet(&["run", "examples/conntrack-full.yaml", "--max-memory", "1Mi"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("more than its budget of 1.0 MiB"), "{err}");
    assert!(err.contains("--max-memory"), "{err}");
    let (code, _, err) = podnet(&["run", "examples/seed.yaml", "--max-memory", "lots"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = podnet(&[
        "run",
        "examples/conntrack-full.yaml",
        "--max-memory",
        "none",
    ]);
    assert_eq!(code, 0, "{err}");
}

/// A reader that closes the pipe early (`podnet run --json | head -1`) ends podnet quietly
/// with 141, as a command killed by SIGPIPE, instead of a panic.
#[test]
fn a_closed_stdout_pipe_ends_the_run_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    for args in [
        &["run", "examples/three-endpoints.yaml", "--json", "-q"][..],
        &[
            "conntrack",
            "examples/three-endpoints.yaml",
            "--node",
            "node-a",
            "-q",
        ][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_podnet"))
            .current_dir(common::root())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run podnet");
        // Read one byte, then hang up.
        let mut first = [0u8; 1];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(141), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// A pod's successive connections to one Service take increasing even source ports, 2 to 16
/// apart (Linux's `__inet_hash_connect`: a per-destination offset moved on after each
/// connect); a connection to another Service starts elsewhere.
#[test]
fn source_ports_to_one_service_are_even_and_increase_by_2_to_16() {
    let text = std::fs::read_to_string(root().join("examples/seed.yaml")).unwrap();
    let many = text.replacen("count: 3\n", "count: 300\n", 1);
    assert_ne!(many, text);
    let file = std::env::temp_dir().join(format!("podnet-ports-{}.yaml", std::process::id()));
    std::fs::write(&file, many).unwrap();
    let (code, out, err) = podnet(&["run", file.to_str().unwrap(), "--json", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ports: Vec<u32> = r["flows"][0]["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let from = c["from"].as_str().unwrap();
            from.rsplit(':').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(ports.len(), 300);
    let mut gaps = std::collections::BTreeSet::new();
    for w in ports.windows(2) {
        assert!(
            (32768..=60999).contains(&w[1]) && w[1].is_multiple_of(2),
            "{w:?}"
        );
        let gap = (w[1] + 28_232 - w[0]) % 28_232;
        assert!((2..=16).contains(&gap), "{w:?}");
        gaps.insert(gap);
    }
    assert_eq!(gaps.len(), 8, "{gaps:?}");
}
