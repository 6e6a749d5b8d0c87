//! Nodes with several CPUs: the conntrack insert race behind the DNS 5-second delay (A and
//! AAAA from one socket on two CPUs) and SNAT port clashes, by kernel version.

use podnet::conntrack::{CtStats, Kernel};
use podnet::kube_proxy::L4;
use podnet::program::{ResolvOptions, Resolve};
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeId, PodId, PodSpec, Program, ServicePortSpec,
    ServiceSpec,
};
use smoltcp::wire::Ipv4Address;

const DNS_VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);
const WEB_VIP: Ipv4Address = Ipv4Address::new(10, 96, 0, 20);
const CLIENTS: u8 = 40;

struct Run {
    c: Cluster,
    node_a: NodeId,
    clients: Vec<PodId>,
}

fn coredns() -> Program {
    Program::DnsServer {
        port: 53,
        records: vec![("web.default.svc.cluster.local.".into(), WEB_VIP)],
    }
}

/// node-a (with `cpus` CPUs) runs the clients, each resolving `web` once (A and AAAA when
/// `options.unspec`); node-b two CoreDNS pods behind kube-dns and a web server.
fn dns(kernel: Kernel, cpus: u32, options: ResolvOptions, seed: u64) -> Run {
    let mut config = ClusterConfig {
        seed,
        ..ClusterConfig::default()
    };
    config.conntrack.kernel = kernel;
    let mut c = Cluster::new(config);
    let a = c
        .add_node(podnet::NodeSpec::new("node-a", [192, 168, 1, 100]).cpus(cpus))
        .unwrap();
    let b = c
        .add_node(podnet::NodeSpec::new("node-b", [192, 168, 1, 101]))
        .unwrap();
    let dns: Vec<PodId> = (0..2u8)
        .map(|i| {
            c.add_pod(
                PodSpec::new(&format!("coredns-{i}"), b)
                    .ip(Ipv4Address::new(10, 244, 1, 53 + i))
                    .program(coredns()),
            )
            .unwrap()
        })
        .collect();
    let web = c
        .add_pod(
            PodSpec::new("web", b)
                .ip(Ipv4Address::new(10, 244, 1, 20))
                .program(Program::HttpServer { port: 80 }),
        )
        .unwrap();
    let mut kube_dns = ServiceSpec::new("kube-dns", 53, 53, dns).cluster_ip(DNS_VIP);
    kube_dns.namespace = "kube-system".into();
    kube_dns.ports = vec![ServicePortSpec {
        name: "dns".into(),
        protocol: L4::Udp,
        port: 53,
        target_port: 53,
        node_port: None,
    }];
    c.add_service(kube_dns).unwrap();
    c.add_service(ServiceSpec::new("web", 80, 80, vec![web]).cluster_ip(WEB_VIP))
        .unwrap();
    let clients = (0..CLIENTS)
        .map(|i| {
            let spec = ClientSpec::http("web", Ipv4Address::UNSPECIFIED, 80)
                .timeout(Duration::from_secs(30))
                .resolve(Resolve::cluster("web", DNS_VIP, "default").options(options));
            c.add_pod(
                PodSpec::new(&format!("client-{i}"), a)
                    .ip(Ipv4Address::new(10, 244, 0, 10 + i))
                    .program(Program::Client(spec)),
            )
            .unwrap()
        })
        .collect();
    Run {
        c,
        node_a: a,
        clients,
    }
}

fn unspec() -> ResolvOptions {
    ResolvOptions {
        unspec: true,
        ..ResolvOptions::default()
    }
}

impl Run {
    /// Every client's lookup time, and node-a's conntrack counters.
    fn finish(mut self) -> (Vec<Duration>, CtStats, String) {
        assert!(self.c.run_until_done(Duration::from_secs(60)));
        let mut times = Vec::new();
        for p in &self.clients {
            let recs: Vec<_> = self.c.pod(*p).unwrap().connections().cloned().collect();
            assert_eq!(recs.len(), 1);
            assert_eq!(recs[0].outcome, podnet::Outcome::Ok, "{recs:?}");
            times.push(recs[0].dns_time.expect("a lookup"));
        }
        let ct = self.c.dataplane(self.node_a).unwrap().conntrack();
        (times, ct.stats(), ct.stats_text())
    }
}

fn slow(times: &[Duration]) -> usize {
    times
        .iter()
        .filter(|t| **t >= Duration::from_secs(5))
        .count()
}

#[test]
fn on_4_19_with_two_cpus_some_lookups_take_5_seconds() {
    let (times, st, text) = dns(Kernel::new(4, 19), 2, unspec(), 1).finish();
    let n = slow(&times);
    assert!(
        n > 0 && n < times.len(),
        "{n} of {} lookups slow",
        times.len()
    );
    for t in times.iter().filter(|t| **t >= Duration::from_secs(5)) {
        assert!(
            *t < Duration::from_millis(5_100),
            "{t}: one timeout, then answers"
        );
    }
    // Every clash counts in insert_failed on 4.19, resolved or not; the dropped ones in drop.
    assert!(
        st.insert_failed >= n as u64 && st.drop == n as u64,
        "{st:?}"
    );
    assert_eq!(st.clash_resolve, 0);
    assert_eq!(text.lines().count(), 2, "one line per CPU:\n{text}");
    assert!(text.starts_with("cpu=0   \t") && text.contains("\ncpu=1   \t"));
}

#[test]
fn newer_kernels_resolve_every_clash() {
    let (times, st, _) = dns(Kernel::new(6, 6), 2, unspec(), 1).finish();
    assert_eq!(slow(&times), 0, "{times:?}");
    assert_eq!((st.insert_failed, st.drop), (0, 0));
    assert!(st.clash_resolve > 0, "{st:?}");
    // 5.6 to 5.9: resolved too, but still counted as insert_failed.
    let (times, st, _) = dns(Kernel::new(5, 6), 2, unspec(), 1).finish();
    assert_eq!(slow(&times), 0);
    assert!(st.insert_failed > 0 && st.drop == 0 && st.clash_resolve == 0);
}

#[test]
fn single_request_reopen_avoids_the_race() {
    let options = ResolvOptions {
        single_request_reopen: true,
        ..unspec()
    };
    let (times, st, _) = dns(Kernel::new(4, 19), 2, options, 1).finish();
    assert_eq!(slow(&times), 0);
    assert_eq!(st.insert_failed, 0);
    let options = ResolvOptions {
        single_request: true,
        ..unspec()
    };
    let (times, st, _) = dns(Kernel::new(4, 19), 2, options, 1).finish();
    assert_eq!((slow(&times), st.insert_failed), (0, 0));
}

#[test]
fn one_cpu_never_races() {
    let (times, st, text) = dns(Kernel::new(4, 19), 1, unspec(), 1).finish();
    assert_eq!(slow(&times), 0);
    assert_eq!((st.insert_failed, st.clash_resolve), (0, 0));
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn the_interleaving_follows_the_seed() {
    let a = dns(Kernel::new(4, 19), 2, unspec(), 1).finish();
    let b = dns(Kernel::new(4, 19), 2, unspec(), 1).finish();
    assert_eq!(a.0, b.0);
    assert_eq!(a.2, b.2);
    let others: Vec<_> = (2..6)
        .map(|seed| dns(Kernel::new(4, 19), 2, unspec(), seed).finish().0)
        .collect();
    assert!(
        others.iter().any(|t| *t != a.0),
        "the seed changes who races"
    );
}
