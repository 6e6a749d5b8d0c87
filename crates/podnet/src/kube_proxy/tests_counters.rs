//! Rule counters: which rules a walk counts, policy counters, what a re-sync keeps, and the
//! dataplane calling the nat table for the first packet of a connection only.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::tests::{config, ip, pkt, rng, small_cluster, t, NODE_IP};
use super::*;
use crate::netfilter::Hook;

/// The counters of `table` with packets, as (rule text, packets, bytes).
fn hit(kp: &KubeProxy, table: CounterTable) -> Vec<(String, u64, u64)> {
    kp.rule_counters()
        .into_iter()
        .filter(|r| r.table == table && r.packets > 0)
        .map(|r| (r.text, r.packets, r.bytes))
        .collect()
}

fn policy(kp: &KubeProxy, table: CounterTable, chain: &str) -> (u64, u64) {
    let r = kp
        .rule_counters()
        .into_iter()
        .find(|r| r.table == table && r.chain == chain && r.index.is_none())
        .unwrap();
    (r.packets, r.bytes)
}

#[test]
fn a_walk_counts_exactly_the_rules_that_matched() {
    let mut kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    let mut r = rng();
    // Find a connection whose first statistic draw loses, so the walk evaluates a
    // `-m statistic` rule that must not count.
    for sport in 40_000..40_100 {
        kp.reset_counters();
        let p = Packet {
            sport,
            ..pkt(ip(10, 244, 3, 3), ip(10, 96, 0, 10), 80)
        };
        let d = kp.nat_pre(t(1), &p, false, &mut r);
        let counted = hit(&kp, CounterTable::Nat);
        let mut want: Vec<(String, u64, u64)> =
            d.matched.iter().map(|m| (m.clone(), 1, 60)).collect();
        let mut got = counted.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "exactly the matched rules count, once, 60 bytes");
        // DNAT ended the walk: nothing fell off PREROUTING.
        assert_eq!(policy(&kp, CounterTable::Nat, "PREROUTING"), (0, 0));
        assert!(hit(&kp, CounterTable::Filter).is_empty());
        if !d
            .matched
            .iter()
            .any(|m| m.contains("--probability 0.33333333349"))
        {
            // The first endpoint's rule was evaluated and lost its draw: zero.
            let first = kp
                .rule_counters()
                .into_iter()
                .find(|r| r.text.contains("--probability 0.33333333349"))
                .unwrap();
            assert_eq!((first.packets, first.bytes), (0, 0), "{}", first.text);
            return;
        }
    }
    panic!("no draw lost in 100 connections");
}

#[test]
fn packets_falling_off_a_builtin_chain_count_on_its_policy() {
    let mut kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    // Pod to pod: no Service matches.
    let p = Packet {
        len: 100,
        ..pkt(ip(10, 244, 1, 5), ip(10, 244, 2, 6), 8080)
    };
    let d = kp.nat_pre(t(1), &p, false, &mut rng());
    assert_eq!(d.action, Action::Continue);
    assert_eq!(policy(&kp, CounterTable::Nat, "PREROUTING"), (1, 100));
    let (masq, _) = kp.nat_post(&p, false);
    assert!(masq.is_none());
    assert_eq!(policy(&kp, CounterTable::Nat, "POSTROUTING"), (1, 100));
    assert_eq!(policy(&kp, CounterTable::Nat, "OUTPUT"), (0, 0));
    kp.nat_input(&p);
    assert_eq!(policy(&kp, CounterTable::Nat, "INPUT"), (1, 100));
    let save = kp.iptables_save_counters();
    assert!(save.contains(":PREROUTING ACCEPT [1:100]\n"), "{save}");
    assert!(save.contains(":INPUT ACCEPT [1:100]\n"), "{save}");
    assert!(save.contains(":POSTROUTING ACCEPT [1:100]\n"), "{save}");
    // User chains have no policy to count.
    assert!(save.contains(":KUBE-SERVICES - [0:0]\n"), "{save}");
    assert!(save.contains(
        "[1:100] -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    ));
    // KUBE-POSTROUTING's RETURN (no mark) counts, then flannel's pod-to-pod RETURN.
    assert!(save.contains("[1:100] -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"));
    assert!(save.contains(
        "[1:100] -A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j RETURN\n"
    ));
}

#[test]
fn invalid_packets_count_on_the_drop_rule() {
    let mut kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    let p = pkt(ip(10, 244, 1, 5), ip(10, 244, 2, 6), 8080);
    let d = kp.filter(Hook::Forward, &p, CtState::Invalid, false);
    assert_eq!(d.action, Action::Drop);
    let got = hit(&kp, CounterTable::Filter);
    assert_eq!(
        got,
        vec![
            (
                String::from(
                    "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"
                ),
                1,
                60
            ),
            (
                String::from("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"),
                1,
                60
            ),
        ]
    );
    assert_eq!(policy(&kp, CounterTable::Filter, "FORWARD"), (0, 0));
    // An established packet: accepted by the conntrack rule, nothing falls off FORWARD.
    kp.filter(Hook::Forward, &p, CtState::Established, false);
    assert!(kp.iptables_save_counters().contains(
        "[1:60] -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    ));
    assert_eq!(policy(&kp, CounterTable::Filter, "FORWARD"), (0, 0));
    // A new one falls off the end: the policy counts it.
    kp.filter(Hook::Forward, &p, CtState::New, false);
    assert_eq!(policy(&kp, CounterTable::Filter, "FORWARD"), (1, 60));
}

#[test]
fn without_traffic_the_counters_are_zero_and_the_rules_unchanged() {
    let kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    let plain = kp.iptables_save();
    let counted = kp.iptables_save_counters();
    assert_eq!(counted.replace("[0:0] -A", "-A"), plain);
    assert!(kp.rule_counters().iter().all(|r| r.packets == 0));
    let nft = KubeProxy::new(config(Mode::Nftables), small_cluster());
    assert_eq!(
        nft.nft_ruleset_counters()
            .replace("counter packets 0 bytes 0 ", "")
            .replace(" counter packets 0 bytes 0", ""),
        nft.nft_ruleset()
    );
}

#[test]
fn resync_zeroes_kube_proxys_chains_and_keeps_the_builtin_ones() {
    let mut kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    let p = pkt(ip(10, 244, 3, 3), ip(10, 96, 0, 10), 80);
    kp.nat_pre(t(1), &p, false, &mut rng());
    let other = pkt(ip(10, 244, 1, 5), ip(10, 244, 2, 6), 8080);
    kp.nat_pre(t(1), &other, false, &mut rng());
    kp.set_services(small_cluster());
    let save = kp.iptables_save_counters();
    // The builtin chain's jump and policy survive (kube-proxy's restore does not touch them).
    assert!(save.contains(":PREROUTING ACCEPT [1:60]\n"), "{save}");
    assert!(save.contains(
        "[2:120] -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    ));
    // KUBE-SERVICES and the Service's chains were flushed and refilled.
    let left = hit(&kp, CounterTable::Nat);
    assert!(
        left.iter()
            .all(|(text, _, _)| text.starts_with("-A PREROUTING") || text == ":PREROUTING ACCEPT"),
        "{left:?}"
    );
    // nftables: the whole table is flushed.
    let mut nft = KubeProxy::new(config(Mode::Nftables), small_cluster());
    nft.nat_pre(t(1), &p, false, &mut rng());
    assert!(!hit(&nft, CounterTable::NftKubeProxy).is_empty());
    nft.set_services(small_cluster());
    assert!(hit(&nft, CounterTable::NftKubeProxy).is_empty());
}

#[test]
fn nftables_counts_where_a_counter_statement_would_stand() {
    let mut kp = KubeProxy::new(config(Mode::Nftables), small_cluster());
    let p = pkt(ip(10, 244, 3, 3), ip(10, 96, 0, 10), 80);
    let d = kp.nat_pre(t(1), &p, false, &mut rng());
    assert!(matches!(d.action, Action::Dnat { .. }));
    let text = kp.nft_ruleset_counters();
    for want in [
        "\t\tcounter packets 1 bytes 60 jump services\n",
        "\t\tcounter packets 1 bytes 60 ip daddr . meta l4proto . th dport vmap @service-ips\n",
        // Not a NodePort: the `ip daddr @nodeport-ips` match failed before the counter.
        "\t\tip daddr @nodeport-ips counter packets 0 bytes 0 meta l4proto . th dport vmap @service-nodeports\n",
        "\t\tcounter packets 0 bytes 0 jump services\n",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    // Every rule that matched counted once; the DNAT rule counts between its l4proto match
    // and the dnat statement.
    let counted = hit(&kp, CounterTable::NftKubeProxy);
    assert_eq!(
        counted.len(),
        d.matched.len(),
        "{counted:?}\n{:?}",
        d.matched
    );
    assert!(text.contains("meta l4proto tcp counter packets 1 bytes 60 dnat to 10.244."));
    // kube-proxy's nft chain, registered after the iptables nat table at the same priority,
    // runs first; once it DNATs, the iptables nat PREROUTING chain is skipped (kernel replay:
    // its policy counter stays 0).
    assert_eq!(policy(&kp, CounterTable::Nat, "PREROUTING"), (0, 0));
    // A packet kube-proxy does not translate goes on to the iptables chain's policy.
    let plain = pkt(ip(10, 244, 3, 3), ip(10, 244, 1, 7), 80);
    kp.nat_pre(t(2), &plain, false, &mut rng());
    assert_eq!(policy(&kp, CounterTable::Nat, "PREROUTING"), (1, 60));
    // A new connection to another port of a ClusterIP: counted on the reject rule.
    let other = pkt(ip(10, 244, 1, 5), ip(10, 96, 0, 10), 81);
    kp.filter(Hook::Forward, &other, CtState::New, false);
    assert!(kp.nft_ruleset_counters().contains(
        "ip daddr @cluster-ips counter packets 1 bytes 60 reject comment \"Reject traffic to invalid ports of ClusterIPs\""
    ));
    // The iptables filter table (empty in nftables mode) counts on its policy what kube-proxy's
    // chains let through, and nothing they rejected.
    assert_eq!(policy(&kp, CounterTable::Filter, "FORWARD"), (0, 0));
    kp.filter(Hook::Forward, &p, CtState::Established, false);
    assert_eq!(policy(&kp, CounterTable::Filter, "FORWARD"), (1, 60));
}

/// The dataplane: one TCP connection through node-a (client pod -> ClusterIP -> a backend on
/// another node). The nat table sees the SYN only; the filter table every packet.
#[test]
fn only_the_first_packet_of_a_connection_walks_the_nat_table() {
    use crate::conntrack::CtConfig;
    use crate::dataplane::Dataplane;
    use crate::netfilter::{HookCtx, NetfilterHook, Notes, Verdict};
    use crate::packet::tcp;
    use crate::route::Dev;

    let services = vec![super::tests::svc(
        "web",
        "http",
        ip(10, 96, 0, 10),
        vec![super::tests::ep(ip(10, 244, 2, 6), 8080, "node-b")],
    )];
    let mut dp = Dataplane::new(
        CtConfig::default(),
        config(Mode::Iptables),
        services,
        rng(),
        1,
    );
    let client = ip(10, 244, 0, 5);
    let (vip, backend) = (ip(10, 96, 0, 10), ip(10, 244, 2, 6));
    let mut cross = |packet: &mut Vec<u8>, in_dev: Dev, out_dev: Dev| {
        for hook in [Hook::Prerouting, Hook::Forward, Hook::Postrouting] {
            let ctx = HookCtx {
                now: t(1),
                node: "node-a",
                node_ip: NODE_IP,
                hook,
                in_dev: Some(in_dev),
                out_dev: (hook != Hook::Prerouting).then_some(out_dev),
                out_addr: Some(NODE_IP),
                local_addrs: [NODE_IP, ip(10, 244, 0, 1)],
                bridged: false,
                explain: false,
                csum_partial: false,
            };
            let v = dp.process(&ctx, packet, &mut Notes::new());
            assert_eq!(v, Verdict::Accept, "{hook:?}");
        }
    };
    let mut syn = tcp(client, 40000, vip, 80, "S", 1, 0, 0);
    cross(&mut syn, Dev::Cni0, Dev::Eth0);
    let mut syn_ack = tcp(backend, 8080, client, 40000, "SA", 100, 2, 0);
    cross(&mut syn_ack, Dev::Eth0, Dev::Cni0);
    let mut ack = tcp(client, 40000, vip, 80, "A", 2, 101, 10);
    cross(&mut ack, Dev::Cni0, Dev::Eth0);
    // 40-byte SYN and SYN-ACK, a 50-byte ACK with 10 bytes of data.
    let kp = dp.proxy();
    let nat = hit(kp, CounterTable::Nat);
    assert!(!nat.is_empty());
    assert!(
        nat.iter().all(|(_, p, b)| (*p, *b) == (1, 40)),
        "nat counts the SYN only: {nat:?}"
    );
    assert_eq!(policy(kp, CounterTable::Nat, "POSTROUTING"), (1, 40));
    let save = kp.iptables_save_counters();
    for want in [
        "[3:130] -A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n",
        "[2:90] -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
        ":FORWARD ACCEPT [1:40]\n",
    ] {
        assert!(save.contains(want), "{want}\n{save}");
    }
}

/// Regression (kernel replay, corpus): the first packet of a pod-to-pod connection bridged on
/// one node walks nat PREROUTING too (br_netfilter runs it), so kube-proxy's `KUBE-SERVICES`
/// jump and the chain's policy count it; later packets do not.
#[test]
fn a_bridged_first_packet_walks_nat_prerouting() {
    use crate::conntrack::CtConfig;
    use crate::dataplane::Dataplane;
    use crate::netfilter::{HookCtx, NetfilterHook, Notes, Verdict};
    use crate::packet::tcp;
    use crate::route::Dev;

    let mut dp = Dataplane::new(
        CtConfig::default(),
        config(Mode::Iptables),
        small_cluster(),
        rng(),
        1,
    );
    let (a, b) = (ip(10, 244, 0, 5), ip(10, 244, 0, 6));
    let mut cross = |packet: &mut Vec<u8>| {
        for hook in [Hook::Prerouting, Hook::Forward, Hook::Postrouting] {
            let ctx = HookCtx {
                now: t(1),
                node: "node-a",
                node_ip: NODE_IP,
                hook,
                in_dev: Some(Dev::Cni0),
                out_dev: (hook != Hook::Prerouting).then_some(Dev::Cni0),
                out_addr: Some(ip(10, 244, 0, 1)),
                local_addrs: [NODE_IP, ip(10, 244, 0, 1)],
                bridged: true,
                explain: false,
                csum_partial: false,
            };
            let v = dp.process(&ctx, packet, &mut Notes::new());
            assert_eq!(v, Verdict::Accept, "{hook:?}");
        }
    };
    cross(&mut tcp(a, 40000, b, 80, "S", 1, 0, 0));
    cross(&mut tcp(b, 80, a, 40000, "SA", 100, 2, 0));
    let kp = dp.proxy();
    assert_eq!(policy(kp, CounterTable::Nat, "PREROUTING"), (1, 40));
    let save = kp.iptables_save_counters();
    assert!(
        save.contains("[1:40] -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"),
        "{save}"
    );
}
