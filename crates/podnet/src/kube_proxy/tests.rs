//! Behaviour tests of both backends.

extern crate std;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::time::Instant;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::names::{ipt_endpoint_chain, ipt_service_chain, nft_endpoint_chain, nft_service_chain};
use super::*;
use crate::netfilter::Hook;
use crate::rng::{SimRng, Stream};

pub(super) const NODE_IP: Ipv4Address = Ipv4Address::new(192, 168, 0, 2);

pub(super) fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Address {
    Ipv4Address::new(a, b, c, d)
}

pub(super) fn ep(ip: Ipv4Address, port: u16, node: &str) -> Endpoint {
    Endpoint {
        ip,
        port,
        ready: true,
        node: String::from(node),
    }
}

pub(super) fn svc(
    name: &str,
    port_name: &str,
    cluster_ip: Ipv4Address,
    endpoints: Vec<Endpoint>,
) -> ServicePort {
    ServicePort {
        namespace: String::from("default"),
        name: String::from(name),
        port_name: String::from(port_name),
        protocol: L4::Tcp,
        cluster_ip,
        port: 80,
        node_port: None,
        endpoints,
        session_affinity: None,
        external_local: false,
        internal_local: false,
    }
}

pub(super) fn config(mode: Mode) -> ProxyConfig {
    ProxyConfig::new(
        mode,
        "node-a",
        vec![NODE_IP],
        Ipv4Cidr::new(ip(10, 244, 0, 0), 16),
    )
}

/// The small cluster of the golden tests.
pub(super) fn small_cluster() -> Vec<ServicePort> {
    let web = svc(
        "web",
        "http",
        ip(10, 96, 0, 10),
        vec![
            ep(ip(10, 244, 1, 5), 8080, "node-a"),
            ep(ip(10, 244, 2, 6), 8080, "node-b"),
            ep(ip(10, 244, 1, 10), 8080, "node-a"),
        ],
    );
    let empty = svc("empty", "", ip(10, 96, 0, 20), Vec::new());
    let mut np = svc(
        "np",
        "http",
        ip(10, 96, 0, 30),
        vec![
            ep(ip(10, 244, 1, 7), 8080, "node-a"),
            ep(ip(10, 244, 2, 8), 8080, "node-b"),
        ],
    );
    np.node_port = Some(30080);
    np.external_local = true;
    let mut sticky = svc(
        "sticky",
        "",
        ip(10, 96, 0, 40),
        vec![
            ep(ip(10, 244, 1, 9), 9090, "node-a"),
            ep(ip(10, 244, 2, 9), 9090, "node-b"),
        ],
    );
    sticky.session_affinity = Some(DEFAULT_AFFINITY_TIMEOUT);
    vec![web, empty, np, sticky]
}

pub(super) fn pkt(src: Ipv4Address, dst: Ipv4Address, dport: u16) -> Packet {
    Packet {
        src,
        dst,
        proto: 6,
        sport: 40000,
        dport,
        len: 60,
    }
}

pub(super) fn rng() -> SimRng {
    SimRng::derive(7, Stream::Node(1))
}

pub(super) const BOTH: [Mode; 2] = [Mode::Iptables, Mode::Nftables];

pub(super) fn t(secs: i64) -> Instant {
    Instant::from_secs(secs)
}

pub(super) fn dnat_of(d: &Decision) -> Option<(Ipv4Address, u16)> {
    match d.action {
        Action::Dnat { ip, port } => Some((ip, port)),
        _ => None,
    }
}

/// RFC 4648 base32 written out by hand, to check the chain-name hashing independently.
fn base32_by_hand(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut acc, mut bits) = (String::new(), 0u64, 0u32);
    for &b in data {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    out
}

#[test]
fn chain_names_are_kube_proxys() {
    // By hand: KUBE-SVC- + base32(sha256("ns1/svc1:p80" + "tcp"))[:16].
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(b"ns1/svc1:p80tcp");
    let by_hand = alloc::format!("KUBE-SVC-{}", &base32_by_hand(&digest)[..16]);
    assert_eq!(by_hand, "KUBE-SVC-XPGD46QRK7WJZT7O");
    assert_eq!(
        ipt_service_chain("KUBE-SVC-", "ns1/svc1:p80", "tcp"),
        by_hand
    );
    // The names in kube-proxy's own tests (pkg/proxy/iptables/proxier_test.go) and on every
    // cluster (the kubernetes and kube-dns Services).
    let ep_text = |a, p| EpText::new(a, p);
    assert_eq!(
        ipt_endpoint_chain("ns1/svc1:p80", "tcp", &ep_text(ip(10, 180, 0, 1), 80)),
        "KUBE-SEP-SXIVWICOYRO3J4NJ"
    );
    assert_eq!(
        ipt_endpoint_chain("ns1/svc1:p80", "tcp", &ep_text(ip(10, 180, 2, 1), 80)),
        "KUBE-SEP-ZX7GRIZKSNUQ3LAJ"
    );
    assert_eq!(
        ipt_endpoint_chain("ns1/svc1:p80", "tcp", &ep_text(ip(10, 180, 0, 2), 80)),
        "KUBE-SEP-LXVODXWDISEETFEF"
    );
    assert_eq!(
        ipt_service_chain("KUBE-SVC-", "default/kubernetes:https", "tcp"),
        "KUBE-SVC-NPX46M4PTMTKRN6Y"
    );
    assert_eq!(
        ipt_service_chain("KUBE-SVC-", "kube-system/kube-dns:dns", "udp"),
        "KUBE-SVC-TCOU7JCQXEZGVUNU"
    );
    assert_eq!(
        ipt_service_chain("KUBE-SVC-", "kube-system/kube-dns:dns-tcp", "tcp"),
        "KUBE-SVC-ERIFXISQEP7F7OF4"
    );
    assert_eq!(
        ipt_service_chain("KUBE-SVC-", "kube-system/kube-dns:metrics", "tcp"),
        "KUBE-SVC-JD5MR3NA4I4DYORP"
    );

    // nftables (pkg/proxy/nftables/proxier_test.go and a real `nft list`).
    let mut s = svc(
        "svc1",
        "p80",
        ip(172, 30, 0, 41),
        vec![ep(ip(10, 180, 0, 1), 80, "node-a")],
    );
    s.namespace = String::from("ns1");
    assert_eq!(
        nft_service_chain("service-", &s),
        "service-ULMVA6XW-ns1/svc1/tcp/p80"
    );
    assert_eq!(
        nft_endpoint_chain("endpoint-", &s, &s.endpoints[0]),
        "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    );
    let mut k = svc("kubernetes", "https", ip(10, 96, 0, 1), Vec::new());
    assert_eq!(
        nft_service_chain("service-", &k),
        "service-2QRHZV4L-default/kubernetes/tcp/https"
    );
    k.namespace = String::from("kube-system");
    k.name = String::from("kube-dns");
    k.port_name = String::from("dns");
    k.protocol = L4::Udp;
    assert_eq!(
        nft_service_chain("service-", &k),
        "service-FY5PMXPG-kube-system/kube-dns/udp/dns"
    );
    assert_eq!(service_chain_name(&k), "KUBE-SVC-TCOU7JCQXEZGVUNU");
}

#[test]
fn probabilities_are_printed_as_kube_proxy_and_iptables_do() {
    let kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    let save = kp.iptables_save();
    // iptables-save: %.11f of the kernel's lround(2^31 * p).
    assert!(
        save.contains("--probability 0.33333333349 -j KUBE-SEP-"),
        "{save}"
    );
    assert!(
        save.contains("--probability 0.50000000000 -j KUBE-SEP-"),
        "{save}"
    );
    // kube-proxy's restore input: %0.10f.
    let restore = kp.iptables_restore();
    assert!(
        restore.contains("--probability 0.3333333333 -j KUBE-SEP-"),
        "{restore}"
    );
    assert!(
        restore.contains("--probability 0.5000000000 -j KUBE-SEP-"),
        "{restore}"
    );
    assert_eq!(iptables_probability(3), 715_827_883);
    assert_eq!(iptables_probability(2), 1 << 30);
}

fn iptables_probability(n: u32) -> u32 {
    let kp = KubeProxy::new(
        config(Mode::Iptables),
        vec![svc(
            "x",
            "",
            ip(10, 96, 0, 1),
            (1..=n as u8)
                .map(|i| ep(ip(10, 244, 1, i), 80, "node-a"))
                .collect(),
        )],
    );
    let chain = &kp
        .ipt
        .nat
        .chains
        .iter()
        .find(|c| c.name.starts_with("KUBE-SVC-"))
        .unwrap()
        .rules[1];
    match chain.args[1] {
        iptables::Arg::Statistic { prob, .. } => prob,
        _ => 0,
    }
}

#[test]
fn endpoints_are_sorted_as_strings() {
    // kube-proxy sorts by "ip:port": 10.244.1.10 before 10.244.1.5.
    let kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    let save = kp.iptables_save();
    let a = save.find("default/web:http -> 10.244.1.10:8080").unwrap();
    let b = save.find("default/web:http -> 10.244.1.5:8080").unwrap();
    let c = save.find("default/web:http -> 10.244.2.6:8080").unwrap();
    assert!(a < b && b < c);
}

#[test]
fn each_of_three_endpoints_gets_a_third() {
    for mode in BOTH {
        let mut kp = KubeProxy::new(config(mode), small_cluster());
        kp.set_record_matches(false);
        let mut r = rng();
        let mut counts = [0u32; 3];
        for i in 0..3000u32 {
            let p = Packet {
                sport: 10_000 + i as u16,
                ..pkt(ip(10, 244, 3, 3), ip(10, 96, 0, 10), 80)
            };
            let d = kp.nat_pre(t(1), &p, false, &mut r);
            let (to, port) = dnat_of(&d).unwrap();
            assert_eq!(port, 8080);
            let k = [ip(10, 244, 1, 10), ip(10, 244, 1, 5), ip(10, 244, 2, 6)]
                .iter()
                .position(|&a| a == to)
                .unwrap();
            counts[k] += 1;
            assert!(d.matched.is_empty());
        }
        for c in counts {
            let share = f64::from(c) / 3000.0;
            assert!((share - 1.0 / 3.0).abs() < 0.03, "{mode:?}: {counts:?}");
        }
    }
}

pub(super) fn many_services(n: u32) -> Vec<ServicePort> {
    (0..n)
        .map(|i| {
            let cip = Ipv4Address::from(0x0A60_0000 + i + 1);
            let backend = Ipv4Address::from(0x0AF4_0000 + i + 1);
            svc(
                &alloc::format!("s{i}"),
                "http",
                cip,
                vec![ep(backend, 8080, "node-b")],
            )
        })
        .collect()
}

#[test]
fn first_packet_cost_linear_in_iptables_constant_in_nftables() {
    let mut walked = Vec::new();
    for mode in BOTH {
        for n in [10u32, 100, 1000] {
            let mut kp = KubeProxy::new(config(mode), many_services(n));
            let last = Ipv4Address::from(0x0A60_0000 + n);
            let d = kp.nat_pre(t(1), &pkt(ip(10, 244, 3, 3), last, 80), false, &mut rng());
            assert_eq!(
                dnat_of(&d),
                Some((Ipv4Address::from(0x0AF4_0000 + n), 8080))
            );
            walked.push(d.rules_walked);
        }
    }
    // iptables: PREROUTING, n rules of KUBE-SERVICES, KUBE-SVC (masquerade check, endpoint),
    // KUBE-SEP (hairpin check, DNAT).
    assert_eq!(
        &walked[..3],
        &[1 + 10 + 2 + 2, 1 + 100 + 2 + 2, 1 + 1000 + 2 + 2]
    );
    // nftables: nat-prerouting, the service-ips lookup, service chain (masquerade check,
    // numgen), endpoint chain (hairpin check, DNAT).
    assert_eq!(&walked[3..], &[6, 6, 6]);
}

#[test]
fn service_without_endpoints_is_rejected() {
    for mode in BOTH {
        let mut kp = KubeProxy::new(config(mode), small_cluster());
        let p = pkt(ip(10, 244, 1, 5), ip(10, 96, 0, 20), 80);
        let d = kp.nat_pre(t(1), &p, false, &mut rng());
        assert_eq!(d.action, Action::Continue);
        for hook in [Hook::Forward, Hook::Output] {
            let d = kp.filter(hook, &p, CtState::New, false);
            assert_eq!(
                d.action,
                Action::Reject,
                "{mode:?} {hook:?}: {:#?}",
                d.matched
            );
        }
        let last = kp
            .filter(Hook::Forward, &p, CtState::New, false)
            .matched
            .pop()
            .unwrap();
        let want = match mode {
            Mode::Iptables => "-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment \"default/empty has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable",
            Mode::Nftables => "add rule ip kube-proxy reject-chain reject",
        };
        assert_eq!(last, want);
        // Established traffic is not looked at.
        assert_eq!(
            kp.filter(Hook::Forward, &p, CtState::Established, false)
                .action,
            Action::Continue
        );
        // Another port of a ClusterIP: iptables lets it through, nftables rejects it.
        let other = pkt(ip(10, 244, 1, 5), ip(10, 96, 0, 10), 81);
        let want = if mode == Mode::Nftables {
            Action::Reject
        } else {
            Action::Continue
        };
        assert_eq!(
            kp.filter(Hook::Forward, &other, CtState::New, false).action,
            want
        );
    }
}

#[test]
fn local_policy_without_local_endpoints_drops_external_traffic() {
    for mode in BOTH {
        let mut services = small_cluster();
        services[2].endpoints.retain(|e| e.node != "node-a");
        let mut kp = KubeProxy::new(config(mode), services);
        let outside = pkt(ip(203, 0, 113, 7), NODE_IP, 30080);
        let d = kp.nat_pre(t(1), &outside, false, &mut rng());
        assert_eq!(d.action, Action::Continue, "{mode:?}");
        let d = kp.filter(Hook::Input, &outside, CtState::New, false);
        assert_eq!(d.action, Action::Drop, "{mode:?}");
        if mode == Mode::Iptables {
            let want = "-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment \"default/np:http has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DROP";
            assert_eq!(d.matched.last().unwrap(), want);
        }
        // Pods still reach it (short-circuit to the cluster-wide chain).
        let from_pod = pkt(ip(10, 244, 1, 5), NODE_IP, 30080);
        let d = kp.nat_pre(t(1), &from_pod, false, &mut rng());
        assert_eq!(dnat_of(&d), Some((ip(10, 244, 2, 8), 8080)), "{mode:?}");
    }
}

#[test]
fn internal_local_without_local_endpoints_drops() {
    for mode in BOTH {
        let mut services = small_cluster();
        services[0].internal_local = true;
        services[0].endpoints.retain(|e| e.node != "node-a");
        let mut kp = KubeProxy::new(config(mode), services);
        let p = pkt(ip(10, 244, 1, 5), ip(10, 96, 0, 10), 80);
        assert_eq!(
            kp.nat_pre(t(1), &p, false, &mut rng()).action,
            Action::Continue
        );
        let d = kp.filter(Hook::Forward, &p, CtState::New, false);
        assert_eq!(d.action, Action::Drop, "{mode:?}");
    }
    let mut services = small_cluster();
    services[0].internal_local = true;
    services[0].endpoints.retain(|e| e.node != "node-a");
    let save = KubeProxy::new(config(Mode::Iptables), services).iptables_save();
    assert!(save.contains(
        "--comment \"default/web:http has no local endpoints\" -m tcp --dport 80 -j DROP"
    ));
}
