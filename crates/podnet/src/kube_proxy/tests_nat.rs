//! NAT, masquerade, affinity and filter behaviour of both backends.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::time::Instant;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::tests::{
    config, dnat_of, ep, ip, many_services, pkt, rng, small_cluster, svc, t, BOTH, NODE_IP,
};
use super::*;
use crate::netfilter::Hook;
use crate::rng::{SimRng, Stream};

#[test]
fn hairpin_is_marked_for_masquerade() {
    for mode in BOTH {
        let mut kp = KubeProxy::new(config(mode), small_cluster());
        let mut r = rng();
        let (mut hairpin, mut other) = (0, 0);
        for i in 0..60u16 {
            let p = Packet {
                sport: 20_000 + i,
                ..pkt(ip(10, 244, 1, 5), ip(10, 96, 0, 10), 80)
            };
            let d = kp.nat_pre(t(1), &p, false, &mut r);
            if dnat_of(&d) == Some((ip(10, 244, 1, 5), 8080)) {
                assert!(d.mark_masq, "{mode:?}");
                hairpin += 1;
            } else {
                assert!(
                    !d.mark_masq,
                    "{mode:?}: a pod reaching another pod keeps its address"
                );
                other += 1;
            }
        }
        assert!(hairpin > 0 && other > 0);
        // The mark makes POSTROUTING masquerade.
        let back = pkt(ip(10, 244, 1, 5), ip(10, 244, 1, 5), 8080);
        assert_eq!(
            kp.nat_post(&back, true).0,
            Some(Masquerade { random_fully: true })
        );
    }
}

#[test]
fn nodeport_cluster_policy_masquerades_local_policy_keeps_the_client() {
    for mode in BOTH {
        let mut services = small_cluster();
        let mut cluster_np = svc(
            "np-cluster",
            "http",
            ip(10, 96, 0, 50),
            vec![
                ep(ip(10, 244, 1, 7), 8080, "node-a"),
                ep(ip(10, 244, 2, 8), 8080, "node-b"),
            ],
        );
        cluster_np.node_port = Some(30081);
        services.push(cluster_np);
        let mut kp = KubeProxy::new(config(mode), services);
        let mut r = rng();
        let client = ip(203, 0, 113, 7);
        let d = kp.nat_pre(t(1), &pkt(client, NODE_IP, 30081), false, &mut r);
        assert!(dnat_of(&d).is_some());
        assert!(
            d.mark_masq,
            "{mode:?}: externalTrafficPolicy Cluster masquerades"
        );
        for _ in 0..20 {
            let d = kp.nat_pre(t(1), &pkt(client, NODE_IP, 30080), false, &mut r);
            assert_eq!(
                dnat_of(&d),
                Some((ip(10, 244, 1, 7), 8080)),
                "{mode:?}: only the local endpoint"
            );
            assert!(
                !d.mark_masq,
                "{mode:?}: externalTrafficPolicy Local keeps the client address"
            );
        }
        // A pod reaching the NodePort goes through the cluster-wide chain (both endpoints).
        let mut seen = BTreeSet::new();
        for _ in 0..40 {
            let d = kp.nat_pre(t(1), &pkt(ip(10, 244, 3, 3), NODE_IP, 30080), false, &mut r);
            seen.insert(dnat_of(&d).unwrap().0);
        }
        assert_eq!(seen.len(), 2, "{mode:?}");
        // The node itself reaching its NodePort is masqueraded.
        let d = kp.nat_pre(t(1), &pkt(NODE_IP, NODE_IP, 30080), true, &mut r);
        assert!(dnat_of(&d).is_some() && d.mark_masq, "{mode:?}");
        // Not a NodePort: untouched.
        let d = kp.nat_pre(t(1), &pkt(client, NODE_IP, 30099), false, &mut r);
        assert_eq!(d.action, Action::Continue);
    }
}

fn sticky(timeout: u32) -> Vec<ServicePort> {
    let mut s = small_cluster();
    s[3].session_affinity = Some(timeout);
    s
}

#[test]
fn session_affinity_sticks_until_the_timeout_passes() {
    for mode in BOTH {
        let mut kp = KubeProxy::new(config(mode), sticky(10));
        let mut r = rng();
        let client = ip(10, 244, 3, 3);
        let p = pkt(client, ip(10, 96, 0, 40), 80);
        let mut now = 100;
        let first = dnat_of(&kp.nat_pre(t(now), &p, false, &mut r)).unwrap();
        // Every new connection within the timeout of the previous one sticks.
        for _ in 0..40 {
            now += 9;
            assert_eq!(
                dnat_of(&kp.nat_pre(t(now), &p, false, &mut r)),
                Some(first),
                "{mode:?}"
            );
        }
        // Once the timeout has passed each time, the choice is random again.
        let mut seen = BTreeSet::new();
        for _ in 0..40 {
            now += 11;
            seen.insert(dnat_of(&kp.nat_pre(t(now), &p, false, &mut r)).unwrap());
        }
        assert_eq!(seen.len(), 2, "{mode:?}");
        // Other clients are independent; the list survives a resync.
        kp.set_services(sticky(10));
        let again = dnat_of(&kp.nat_pre(t(now + 1), &p, false, &mut r)).unwrap();
        for _ in 0..10 {
            assert_eq!(
                dnat_of(&kp.nat_pre(t(now + 2), &p, false, &mut r)),
                Some(again),
                "{mode:?}"
            );
        }
    }
}

#[test]
fn affinity_boundaries_follow_xt_recent_and_nft_timeouts() {
    for (mode, sticks_at_exactly_t) in [(Mode::Iptables, true), (Mode::Nftables, false)] {
        let mut stuck = 0;
        for seed in 0..40 {
            let mut kp = KubeProxy::new(config(mode), sticky(10));
            let mut r = SimRng::derive(seed, Stream::Node(9));
            let p = pkt(ip(10, 244, 3, 3), ip(10, 96, 0, 40), 80);
            let first = dnat_of(&kp.nat_pre(t(0), &p, false, &mut r));
            if dnat_of(&kp.nat_pre(t(10), &p, false, &mut r)) == first {
                stuck += 1;
            }
        }
        // `--rcheck --seconds 10` still matches a stamp exactly 10 s old; an nft element with
        // a 10 s timeout has expired by then (so about half the draws differ).
        if sticks_at_exactly_t {
            assert_eq!(stuck, 40, "{mode:?}");
        } else {
            assert!(stuck < 35, "{mode:?}: {stuck}");
        }
    }
}

#[test]
fn recent_lists_hold_at_most_100_addresses() {
    let mut kp = KubeProxy::new(config(Mode::Iptables), sticky(DEFAULT_AFFINITY_TIMEOUT));
    let mut r = rng();
    for i in 0..150u32 {
        let client = Ipv4Address::from(0x0AF4_0300 + i);
        kp.nat_pre(t(1), &pkt(client, ip(10, 96, 0, 40), 80), false, &mut r);
    }
    let total: usize = kp.affinity.tables.iter().map(|t| t.len()).sum();
    assert!(kp
        .affinity
        .tables
        .iter()
        .all(|t| t.len() <= affinity::IP_LIST_TOT));
    assert!(total > 100 && total <= 150, "{total}");
}

#[test]
fn nft_lists_affinity_elements_with_their_expiry() {
    let mut kp = KubeProxy::new(config(Mode::Nftables), small_cluster());
    let client = ip(10, 244, 3, 3);
    let d = kp.nat_pre(t(5), &pkt(client, ip(10, 96, 0, 40), 80), false, &mut rng());
    let (backend, _) = dnat_of(&d).unwrap();
    // A later walk moves the listing's clock (1.5 s on).
    kp.nat_pre(
        Instant::from_millis(6500),
        &pkt(client, ip(10, 96, 0, 10), 80),
        false,
        &mut rng(),
    );
    let list = kp.nft_ruleset();
    let header = alloc::format!("/tcp/__{backend}/9090 {{\n");
    let set = &list[list.find(&header).unwrap()..];
    let set = &set[..set.find("\t}\n").unwrap()];
    assert!(
        set.ends_with("\t\ttimeout 3h\n\t\telements = { 10.244.3.3 expires 2h59m58s500ms }\n"),
        "{list}"
    );
}

#[test]
fn masquerade_all_marks_every_clusterip_connection() {
    for mode in BOTH {
        let mut cfg = config(mode);
        cfg.masquerade_all = true;
        let mut kp = KubeProxy::new(cfg, small_cluster());
        let d = kp.nat_pre(
            t(1),
            &pkt(ip(10, 244, 3, 3), ip(10, 96, 0, 10), 80),
            false,
            &mut rng(),
        );
        assert!(dnat_of(&d).is_some() && d.mark_masq, "{mode:?}");
        let d = KubeProxy::new(config(mode), small_cluster()).nat_pre(
            t(1),
            &pkt(ip(10, 244, 3, 3), ip(10, 96, 0, 10), 80),
            false,
            &mut rng(),
        );
        assert!(dnat_of(&d).is_some() && !d.mark_masq, "{mode:?}");
    }
    let mut cfg = config(Mode::Iptables);
    cfg.masquerade_all = true;
    let save = KubeProxy::new(cfg, small_cluster()).iptables_save();
    assert!(save.contains(
        "-A KUBE-SVC-CDGGSHYLG3RE2FKL -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ"
    ));
}

#[test]
fn off_cluster_sources_are_masqueraded() {
    for mode in BOTH {
        let mut kp = KubeProxy::new(config(mode), small_cluster());
        // The node itself (hostNetwork) reaching a ClusterIP: nat OUTPUT.
        let d = kp.nat_pre(t(1), &pkt(NODE_IP, ip(10, 96, 0, 10), 80), true, &mut rng());
        assert!(dnat_of(&d).is_some() && d.mark_masq, "{mode:?}");
    }
}

#[test]
fn postrouting_masquerades_marked_and_pod_egress_traffic() {
    for mode in BOTH {
        let mut cfg = config(mode);
        cfg.random_fully = false;
        let mut kp = KubeProxy::new(cfg, small_cluster());
        kp.set_node_pod_cidr(Some(Ipv4Cidr::new(ip(10, 244, 1, 0), 24)));
        // Marked by KUBE-MARK-MASQ: KUBE-POSTROUTING / masquerading, mark cleared.
        let (m, d) = kp.nat_post(&pkt(ip(203, 0, 113, 7), ip(10, 244, 2, 8), 8080), true);
        let fully = mode == Mode::Nftables;
        assert_eq!(
            m,
            Some(Masquerade {
                random_fully: fully
            }),
            "{mode:?}"
        );
        assert!(!d.mark_masq);
        // Pod to the internet: flannel.
        let (m, d) = kp.nat_post(&pkt(ip(10, 244, 1, 5), ip(8, 8, 8, 8), 443), false);
        assert_eq!(
            m,
            Some(Masquerade {
                random_fully: false
            }),
            "{mode:?}"
        );
        let want = "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE";
        assert_eq!(d.matched.last().unwrap(), want);
        // Pod to pod, multicast, outside to a local pod: untouched.
        for p in [
            pkt(ip(10, 244, 1, 5), ip(10, 244, 2, 6), 8080),
            pkt(ip(10, 244, 1, 5), ip(239, 1, 1, 1), 5353),
            pkt(ip(203, 0, 113, 7), ip(10, 244, 1, 7), 8080),
        ] {
            assert_eq!(kp.nat_post(&p, false).0, None, "{mode:?} {p:?}");
        }
        // The node reaching a pod on another node through the overlay: masqueraded.
        assert!(kp
            .nat_post(&pkt(NODE_IP, ip(10, 244, 2, 6), 8080), false)
            .0
            .is_some());
    }
}

#[test]
fn kube_forward_drops_invalid_unless_liberal_and_accepts_marked() {
    let p = pkt(ip(203, 0, 113, 7), ip(10, 244, 2, 8), 8080);
    let mut kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    let d = kp.filter(Hook::Forward, &p, CtState::Invalid, false);
    assert_eq!(d.action, Action::Drop);
    assert_eq!(
        d.matched.last().unwrap(),
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
    );
    let d = kp.filter(Hook::Forward, &p, CtState::New, true);
    assert_eq!(d.action, Action::Continue);
    assert!(d
        .matched
        .iter()
        .any(|l| l
            .contains("\"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT")));
    let d = kp.filter(Hook::Forward, &p, CtState::Established, false);
    assert!(d
        .matched
        .last()
        .unwrap()
        .contains("--ctstate RELATED,ESTABLISHED -j ACCEPT"));
    let mut cfg = config(Mode::Iptables);
    cfg.tcp_be_liberal = true;
    let mut liberal = KubeProxy::new(cfg, small_cluster());
    assert_eq!(
        liberal
            .filter(Hook::Forward, &p, CtState::Invalid, false)
            .action,
        Action::Continue
    );
    assert!(!liberal.iptables_save().contains("INVALID"));
    // nftables mode has no INVALID rule.
    let mut nft = KubeProxy::new(config(Mode::Nftables), small_cluster());
    assert_eq!(
        nft.filter(Hook::Forward, &p, CtState::Invalid, false)
            .action,
        Action::Continue
    );
}

#[test]
fn udp_services_use_the_udp_match() {
    let mut dns = svc(
        "kube-dns",
        "dns",
        ip(10, 96, 0, 10),
        vec![ep(ip(10, 244, 1, 2), 53, "node-a")],
    );
    dns.namespace = String::from("kube-system");
    dns.protocol = L4::Udp;
    dns.port = 53;
    let mut kp = KubeProxy::new(config(Mode::Iptables), vec![dns.clone()]);
    let save = kp.iptables_save();
    assert!(save.contains("-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU"));
    assert!(save.contains("-p udp -m comment --comment \"kube-system/kube-dns:dns\" -m udp -j DNAT --to-destination 10.244.1.2:53"));
    let udp = Packet {
        proto: 17,
        ..pkt(ip(10, 244, 1, 5), ip(10, 96, 0, 10), 53)
    };
    assert_eq!(
        dnat_of(&kp.nat_pre(t(1), &udp, false, &mut rng())),
        Some((ip(10, 244, 1, 2), 53))
    );
    let tcp = pkt(ip(10, 244, 1, 5), ip(10, 96, 0, 10), 53);
    assert_eq!(
        kp.nat_pre(t(1), &tcp, false, &mut rng()).action,
        Action::Continue
    );
    let mut kn = KubeProxy::new(config(Mode::Nftables), vec![dns]);
    assert_eq!(
        dnat_of(&kn.nat_pre(t(1), &udp, false, &mut rng())),
        Some((ip(10, 244, 1, 2), 53))
    );
    assert!(kn
        .nft_ruleset()
        .contains("\t\tmeta l4proto udp dnat to 10.244.1.2:53\n"));
}

#[test]
fn recording_can_be_turned_off() {
    for mode in BOTH {
        let mut kp = KubeProxy::new(config(mode), small_cluster());
        let p = pkt(ip(10, 244, 3, 3), ip(10, 96, 0, 10), 80);
        assert!(!kp.nat_pre(t(1), &p, false, &mut rng()).matched.is_empty());
        kp.set_record_matches(false);
        let d = kp.nat_pre(t(1), &p, false, &mut rng());
        assert!(d.matched.is_empty() && d.rules_walked > 0);
    }
}

#[test]
fn rule_counts() {
    let kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    let lines = kp
        .iptables_save()
        .lines()
        .filter(|l| l.starts_with("-A "))
        .count();
    assert_eq!(kp.rule_count(), lines);
    let kn = KubeProxy::new(config(Mode::Nftables), small_cluster());
    // flannel's iptables rules (the POSTROUTING jump and 3 in its chain without a pod
    // subnet) plus the nft rules.
    let nft_rules = kn.nft.as_ref().unwrap().rule_count();
    assert_eq!(kn.rule_count(), nft_rules + 4);
    assert!(kp.rule_count() > kn.rule_count());
}

#[test]
fn large_cluster_mode_drops_per_endpoint_comments() {
    let mut kp = KubeProxy::new(config(Mode::Iptables), many_services(1001));
    let save = kp.iptables_save();
    assert!(save.contains("-A KUBE-SVC-"));
    assert!(
        !save.contains(" -> 10.244"),
        "per-endpoint comments are dropped above 1000 endpoints"
    );
    assert!(save.contains("cluster IP\""));
    let last = Ipv4Address::from(0x0A60_0000 + 1001);
    let d = kp.nat_pre(t(1), &pkt(ip(10, 244, 200, 1), last, 80), false, &mut rng());
    assert!(d
        .matched
        .iter()
        .any(|l| l.starts_with("-A KUBE-SEP-") && l.contains(" -p tcp -m tcp -j DNAT")));
}

#[test]
fn thirty_thousand_services_build_and_walk() {
    let services = many_services(30_000);
    for mode in BOTH {
        let mut kp = KubeProxy::new(config(mode), services.clone());
        kp.set_record_matches(false);
        let last = Ipv4Address::from(0x0A60_0000 + 30_000);
        let d = kp.nat_pre(t(1), &pkt(ip(10, 244, 200, 1), last, 80), false, &mut rng());
        assert_eq!(
            dnat_of(&d),
            Some((Ipv4Address::from(0x0AF4_0000 + 30_000), 8080))
        );
        let want = if mode == Mode::Iptables { 30_005 } else { 6 };
        assert_eq!(d.rules_walked, want);
    }
}

/// Regression (kernel replay, corpus tcp-time-wait-reopen): the backend opened a connection
/// to the client's port itself (tracked in its own direction); the client's new SYN from that
/// port to the Service, DNATed to the backend, would take that entry's tuple as its reply.
/// Linux's null binding at POSTROUTING moves the client's source port (random, same class)
/// and the connection works; podnet dropped the SYN as an insert clash.
#[test]
fn a_dnat_whose_reply_tuple_is_taken_gets_a_new_source_port() {
    use crate::conntrack::CtConfig;
    use crate::dataplane::Dataplane;
    use crate::netfilter::{HookCtx, NetfilterHook, Notes, Verdict};
    use crate::packet::tcp;
    use crate::route::Dev;

    let (client, vip, backend) = (ip(10, 244, 0, 5), ip(10, 96, 0, 10), ip(10, 244, 2, 6));
    let services = vec![svc("web", "http", vip, vec![ep(backend, 8080, "node-b")])];
    let mut dp = Dataplane::new(
        CtConfig::default(),
        config(Mode::Iptables),
        services,
        rng(),
        1,
    );
    let cross = |dp: &mut Dataplane, packet: &mut Vec<u8>, from: Dev, to: Dev| {
        for hook in [Hook::Prerouting, Hook::Forward, Hook::Postrouting] {
            let ctx = HookCtx {
                now: t(1),
                node: "node-a",
                node_ip: NODE_IP,
                hook,
                in_dev: Some(from),
                out_dev: (hook != Hook::Prerouting).then_some(to),
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
    let mut own = tcp(backend, 8080, client, 40000, "S", 500, 0, 0);
    cross(&mut dp, &mut own, Dev::Eth0, Dev::Cni0);
    let mut syn = tcp(client, 40000, vip, 80, "S", 1, 0, 0);
    cross(&mut dp, &mut syn, Dev::Cni0, Dev::Eth0);
    let out = crate::conntrack::Tuple::of_packet(&syn).unwrap();
    assert_eq!((out.src, out.dst, out.dport), (client, backend, 8080));
    assert!((1024..=65535).contains(&out.sport) && out.sport != 40000);
    let s = dp.conntrack().stats();
    assert_eq!((dp.conntrack().count(), s.insert_failed, s.drop), (2, 0, 0));
    assert!(s.found >= 2, "{s:?}");
    // The backend's answer to the new port goes back to the client's own port, from the VIP.
    let mut syn_ack = tcp(backend, 8080, client, out.sport, "SA", 900, 2, 0);
    cross(&mut dp, &mut syn_ack, Dev::Eth0, Dev::Cni0);
    let back = crate::conntrack::Tuple::of_packet(&syn_ack).unwrap();
    assert_eq!(
        (back.src, back.sport, back.dst, back.dport),
        (vip, 80, client, 40000)
    );
}
