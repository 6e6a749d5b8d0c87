//! The `podnet demo` command, run as a user runs it.

mod common;

use common::podnet;

#[test]
fn demo_calls_the_service_and_conntrack_shows_the_dnat() {
    let (code, out, _) = podnet(&["demo", "--count", "2", "--conntrack"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("10.244.1.0/24 via 192.168.1.101 dev eth0"),
        "{out}"
    );
    assert!(out.contains("-> 10.96.0.10:80  ok"), "{out}");
    assert!(out.contains("2/2 ok"), "{out}");
    let ct: Vec<_> = out
        .lines()
        .filter(|l| l.starts_with("tcp      6 "))
        .collect();
    assert_eq!(ct.len(), 2, "{out}");
    for l in ct {
        assert!(
            l.contains(" TIME_WAIT src=10.244.0.5 dst=10.96.0.10 "),
            "{l}"
        );
        assert!(
            l.contains(" dport=80 src=10.244.1.20 dst=10.244.0.5 sport=80 "),
            "{l}"
        );
    }
    // Linux 6.x does not count packet-path confirmations in `insert`.
    assert!(out.contains("insert=0 insert_failed=0 drop=0"), "{out}");
}

#[test]
fn demo_masquerade_all_shows_the_node_in_the_reply_tuple() {
    let (code, out, _) = podnet(&["demo", "--count", "1", "--conntrack", "--masquerade-all"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(" src=10.244.1.20 dst=192.168.1.100 sport=80 "),
        "{out}"
    );
}

#[test]
fn demo_tcpdump_shows_the_rewrite_hop_by_hop() {
    let (code, out, _) = podnet(&["demo", "--count", "1", "--tcpdump"]);
    assert_eq!(code, 0);
    let syn_on = |iface: &str, dst: &str| {
        out.lines()
            .any(|l| l.contains(iface) && l.contains(&format!("> {dst}: Flags [S]")))
    };
    for iface in ["pod-a/eth0 Out", "node-a/veth00000001 In "] {
        assert!(
            syn_on(iface, "10.96.0.10.80"),
            "no SYN to the ClusterIP on {iface}:\n{out}"
        );
    }
    // br_netfilter runs PREROUTING before cni0 receives the frame: cni0 sees it DNATed.
    for iface in [
        "node-a/cni0 In ",
        "node-a/eth0 Out",
        "node-b/eth0 In ",
        "backend/eth0 In ",
    ] {
        assert!(
            syn_on(iface, "10.244.1.20.80"),
            "no SYN to the backend on {iface}:\n{out}"
        );
    }
}

#[test]
fn demo_prints_the_rules_of_both_proxy_modes() {
    let (code, out, _) = podnet(&["demo", "--count", "1", "--rules"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("node-a# iptables-save")
            && out.contains("-j DNAT --to-destination 10.244.1.20:80"),
        "{out}"
    );
    let (code, out, _) = podnet(&["demo", "--count", "1", "--rules", "--proxy", "nftables"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("node-a# nft list ruleset") && out.contains("table ip kube-proxy"),
        "{out}"
    );
}

#[test]
fn demo_is_deterministic_per_seed() {
    let a = podnet(&["demo", "--seed", "9", "--tcpdump"]).1;
    let b = podnet(&["demo", "--seed", "9", "--tcpdump"]).1;
    let c = podnet(&["demo", "--seed", "10", "--tcpdump"]).1;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn demo_writes_pcaps() {
    let dir = std::env::temp_dir().join(format!("podnet-demo-pcap-{}", std::process::id()));
    let (code, _, err) = podnet(&["demo", "--count", "1", "--pcap", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let pcap = std::fs::read(dir.join("node-a_eth0.pcap")).unwrap();
    assert_eq!(&pcap[..4], &0xa1b2c3d4u32.to_ne_bytes());
    assert!(pcap.len() > 24 + 16 * 10, "header plus at least ten frames");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let (code, _, err) = podnet(&["demo", "--loss", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("--loss must be between 0 and 1"), "{err}");
    let (code, _, err) = podnet(&["demo", "--count", "x"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value"), "{err}");
}

#[test]
fn help_has_examples() {
    let (code, out, _) = podnet(&["demo", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Examples:") && out.contains("podnet demo --count 1 --tcpdump --conntrack"),
        "{out}"
    );
}
