//! What to replay: a scenario run in podnet with a full trace, cut into one [`NodePlan`] per
//! node. A node is sans-IO and handles a frame synchronously, so its answer to a frame it
//! received on a wire interface (`vethN`, `eth0`) is every frame it sent on a wire interface
//! at the same virtual instant, after that frame and before the next one it received.

use std::collections::BTreeMap;

use podnet::conntrack::Kernel;
use podnet::conntrack::Tuple;
use podnet::route::Dev;
use podnet::trace::{EventKind, TraceConfig};
use podnet::{Instant, NodeId, PodId, Proxy};
use podnet_scenario::session::Session;
use smoltcp::wire::{EthernetAddress, Ipv4Address};

use crate::frame;

/// The proxy mode a scenario is replayed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// kube-proxy iptables mode (rules loaded with `iptables-restore`).
    Iptables,
    /// kube-proxy nftables mode (`nft -f`, flannel's chain with `iptables-restore`).
    Nftables,
}

impl Mode {
    /// `iptables` / `nftables`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Iptables => "iptables",
            Mode::Nftables => "nftables",
        }
    }
}

/// A route podnet's node holds that the kernel does not create from an address.
#[derive(Clone, Debug)]
pub struct RoutePlan {
    /// `ip route` text: `10.244.1.0/24 via 192.168.1.101 dev eth0 [onlink]`.
    pub spec: String,
}

/// One veth port of `cni0`.
#[derive(Clone, Debug)]
pub struct PortPlan {
    /// The Linux name, podnet's: `veth00000000`.
    pub dev: String,
    /// The pod behind it.
    pub pod: Option<(Ipv4Address, EthernetAddress)>,
    /// Whether the pod is there from the start (otherwise a [`Resync`] attaches it).
    pub at_start: bool,
}

/// A pod's port on its node: (veth name, pod IP, pod MAC).
pub type Port = (String, Ipv4Address, EthernetAddress);

/// The veth ports of node `id`'s pods now.
fn ports_of(cluster: &podnet::Cluster, id: NodeId) -> Vec<Port> {
    cluster
        .pods()
        .filter(|(p, _)| cluster.pod_node(*p) == Some(id))
        .map(|(p, pod)| {
            let a = pod.addrs();
            let smoltcp::wire::IpCidr::Ipv4(c) = a.ip;
            (format!("veth{:08x}", p.0), c.address(), a.mac)
        })
        .collect()
}

/// flannel.1 of a VXLAN node.
#[derive(Clone, Debug)]
pub struct VxlanPlan {
    /// The VTEP address (the pod CIDR's network address, as a /32).
    pub vtep: Ipv4Address,
    /// flannel.1's MAC.
    pub mac: EthernetAddress,
    /// Remote VTEP MAC -> remote node IP.
    pub fdb: Vec<(EthernetAddress, Ipv4Address)>,
}

/// A random choice podnet made for a connection, which the kernel is told to make too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// An iptables rule in `chain` that matched after a `-m statistic` draw (or the chain's
    /// fall-through rule after draws that failed): the kernel gets a rule for this exact
    /// tuple that jumps to `target`, inserted before the chain's first `statistic` rule.
    IptJump {
        /// Table (`nat`).
        table: String,
        /// `KUBE-SVC-...`.
        chain: String,
        /// The rule podnet matched (iptables-save text, without `-A CHAIN`).
        rule: String,
        /// `KUBE-SEP-...`.
        target: String,
        /// The packet as it reached the hook.
        tuple: Tuple,
        /// Its TCP sequence number: a connection's first packet differs by it from an earlier
        /// connection of the same tuple, so the forced rule matches this one only.
        seq: Option<u32>,
    },
    /// `MASQUERADE --random-fully` in `chain`, or a `MASQUERADE` that had to move the source
    /// port (its search starts at a random offset in Linux 5.x and later): the kernel gets
    /// an exact-tuple `SNAT` to the address and port podnet picked, inserted just before the
    /// MASQUERADE rule. A port podnet took that was not free (two CPUs' races: the same
    /// search from the same rover) makes the kernel's insert clash at confirm too.
    IptMasq {
        /// Table (`nat`).
        table: String,
        /// `KUBE-POSTROUTING` or `FLANNEL-POSTRTG`.
        chain: String,
        /// The MASQUERADE rule (without `-A CHAIN`).
        rule: String,
        /// The packet as it reached the hook (after DNAT).
        tuple: Tuple,
        /// Its TCP sequence number (see `IptJump`).
        seq: Option<u32>,
        /// The source podnet gave it.
        to: (Ipv4Address, u16),
        /// Taken tuples podnet's port search met (`conntrack -S found`), which the forced
        /// kernel never searches for.
        found: u64,
    },
    /// nftables `numgen random mod N vmap { ... }` in `chain`: the kernel gets an exact-tuple
    /// rule before it that goes to `target`, the endpoint chain podnet entered.
    NftGoto {
        /// `service-...`.
        chain: String,
        /// The numgen rule (nft text after the chain name).
        rule: String,
        /// `endpoint-...`.
        target: String,
        /// The packet as it reached the hook.
        tuple: Tuple,
        /// Its TCP sequence number: a connection's first packet differs by it from an earlier
        /// connection of the same tuple, so the forced rule matches this one only.
        seq: Option<u32>,
    },
    /// A NetworkPolicy verdict podnet enforced at a filter hook (before kube-proxy's filter
    /// rules). podnet models policies as a verdict, not as a CNI's rules, so the kernel gets
    /// an exact-tuple `drop` in a chain of its own at that hook, ahead of kube-proxy's.
    PolicyDrop {
        /// `input`, `forward` or `output`.
        hook: String,
        /// The packet as it reached the hook.
        tuple: Tuple,
        /// Its TCP sequence number: a connection's first packet differs by it from an earlier
        /// connection of the same tuple, so the forced rule matches this one only.
        seq: Option<u32>,
        /// podnet's reason.
        reason: String,
    },
    /// A null binding that moved the source port (ICMP: id) because the reply tuple was
    /// taken (`nf_nat_alloc_null_binding` -> `get_unique_tuple`, a random port): the kernel
    /// gets an exact-tuple `SNAT` to podnet's choice appended to iptables nat `POSTROUTING`,
    /// where the packet would have reached the chain's policy.
    NullBinding {
        /// The packet as it reached POSTROUTING (after DNAT).
        tuple: Tuple,
        /// Its TCP sequence number (see `IptJump`).
        seq: Option<u32>,
        /// The source podnet gave it.
        to: (Ipv4Address, u16),
    },
    /// nftables `masquerade fully-random` in `chain`, or a `masquerade` that moved the port
    /// (see `IptMasq`).
    NftMasq {
        /// `masquerading`.
        chain: String,
        /// The masquerade rule.
        rule: String,
        /// The packet as it reached the hook (after DNAT).
        tuple: Tuple,
        /// Its TCP sequence number (see `IptJump`).
        seq: Option<u32>,
        /// The source podnet gave it.
        to: (Ipv4Address, u16),
        /// See `IptMasq`.
        found: u64,
    },
}

/// A rule podnet's trace says a packet matched: (table, chain, rule text) where the text is
/// what follows `-A CHAIN ` (iptables) or `add rule ip kube-proxy CHAIN ` (nftables).
pub type RuleHit = (String, String, String);

/// One frame the node received, and what podnet did with it.
#[derive(Clone, Debug)]
pub struct Step {
    /// Virtual time.
    pub time: Instant,
    /// The wire interface (`eth0`, `veth00000000`).
    pub dev: String,
    /// The frame.
    pub frame: Vec<u8>,
    /// The frames podnet sent in answer, in order: (wire interface, frame).
    pub sent: Vec<(String, Vec<u8>)>,
    /// Random choices to force on the kernel before this frame.
    pub choices: Vec<Choice>,
    /// Conntrack entries podnet created for this frame (original tuples).
    pub ct_new: Vec<Tuple>,
    /// Rules podnet's trace says the frame's packet matched.
    pub hits: Vec<RuleHit>,
    /// Dropped with this reason somewhere in the node (trace `Dropped` events).
    pub dropped: Vec<String>,
    /// Its conntrack lookup could not see an entry of its own tuple that another CPU was
    /// confirming (podnet's two-CPU race).
    pub raced: bool,
}

/// A node's rules at one moment, as the replay loads and compares them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// `iptables-restore` input: kube-proxy's (iptables mode) or flannel's (both modes).
    pub iptables: String,
    /// kube-proxy's own `iptables-restore --noflush` input for a re-sync (iptables mode): the
    /// chains it declares are flushed and refilled, the others keep their rules and counters.
    pub restore: String,
    /// `nft list table ip kube-proxy` as podnet generated it (nftables mode).
    pub nft: Option<String>,
    /// The same with a `counter packets 0 bytes 0` where podnet counts each rule: what is
    /// loaded, so that the kernel counts where podnet does (nftables mode).
    pub nft_load: Option<String>,
}

impl Rules {
    /// The rules of node `id` of `cluster` now, in `mode`.
    fn of(cluster: &podnet::Cluster, id: NodeId, mode: Mode) -> Result<Rules, String> {
        let dp = cluster
            .dataplane(id)
            .ok_or_else(|| "this scenario runs no Service proxy (proxy: none)".to_string())?;
        let p = dp.proxy();
        Ok(match mode {
            Mode::Iptables => Rules {
                iptables: p.iptables_save(),
                restore: p.iptables_restore(),
                nft: None,
                nft_load: None,
            },
            Mode::Nftables => Rules {
                iptables: p.iptables_save(),
                restore: String::new(),
                nft: Some(p.nft_ruleset()),
                nft_load: Some(zero_counters(&p.nft_ruleset_counters())),
            },
        })
    }
}

/// A Fault deleted a pod or scaled a Deployment during the run: pods left or joined the
/// node's bridge, and kube-proxy re-synced its rules. The replay carries it out before the
/// node's step `before_step`.
#[derive(Clone, Debug)]
pub struct Resync {
    /// The first step (index into [`NodePlan::steps`]) that meets the change.
    pub before_step: usize,
    /// The virtual time of the change.
    pub time: Instant,
    /// The rules from then on (the same as before when only pods changed).
    pub rules: Rules,
    /// Ports of pods created then (veth name).
    pub attach: Vec<String>,
    /// Ports of pods deleted then.
    pub detach: Vec<String>,
}

/// The rules of every node at one point of the trace: from the trace event `from_event` on.
#[derive(Clone, Debug)]
pub struct Epoch {
    /// Index of the first trace event that meets these rules.
    pub from_event: usize,
    /// The virtual time the rules were synced.
    pub time: Instant,
    /// Per node, in `cluster.nodes()` order.
    pub rules: Vec<Rules>,
    /// Per node, its pods' ports.
    pub ports: Vec<Vec<Port>>,
}

/// A node, as the kernel namespace must reproduce it, and its traffic.
#[derive(Clone, Debug)]
pub struct NodePlan {
    /// Node name.
    pub name: String,
    /// eth0 address and prefix.
    pub eth0: (Ipv4Address, u8),
    /// eth0's MAC.
    pub eth0_mac: EthernetAddress,
    /// cni0's address (the pods' gateway) and the pod CIDR's prefix.
    pub cni0: (Ipv4Address, u8),
    /// cni0's MAC.
    pub cni0_mac: EthernetAddress,
    /// Pod MTU on the veths (1450 with VXLAN).
    pub pod_mtu: u32,
    /// The veth ports.
    pub ports: Vec<PortPlan>,
    /// flannel.1, with `cni: vxlan`.
    pub vxlan: Option<VxlanPlan>,
    /// Routes beyond the connected ones.
    pub routes: Vec<RoutePlan>,
    /// Every neighbour podnet resolved: (device, address, MAC).
    pub neigh: Vec<(String, Ipv4Address, EthernetAddress)>,
    /// The rules the node starts with (its first step meets them).
    pub rules: Rules,
    /// Later re-syncs, in order.
    pub resyncs: Vec<Resync>,
    /// podnet's per-rule counters after the run.
    pub counters: Vec<podnet::kube_proxy::RuleCounters>,
    /// The frames it received, in order.
    pub steps: Vec<Step>,
    /// Frames podnet sent on a wire interface not at the instant of a received frame
    /// (timers: ARP retransmissions, queued packets given up), with their time.
    pub timer_sent: Vec<(Instant, String, Vec<u8>)>,
    /// podnet's `conntrack -L` after the node's last frame.
    pub ct_list: String,
    /// podnet's `conntrack -S` counters then.
    pub ct_stats: podnet::conntrack::CtStats,
    /// The scenario's conntrack table size.
    pub ct_max: u32,
    /// The scenario's conntrack hash buckets (the kernel's are global and its hash differs:
    /// see [`crate::ctlimit`]).
    pub ct_buckets: u32,
    /// podnet's conntrack timeouts, as sysctls to set in the namespace.
    pub ct_sysctls: Vec<(String, u32)>,
}

impl NodePlan {
    /// The rules at the end of the run (after the last re-sync).
    pub fn final_rules(&self) -> &Rules {
        self.resyncs.last().map_or(&self.rules, |r| &r.rules)
    }
}

/// A scenario in one mode, ready to replay.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Scenario file name.
    pub scenario: String,
    /// Mode.
    pub mode: Mode,
    /// Nodes.
    pub nodes: Vec<NodePlan>,
    /// What was changed to make the scenario comparable on this machine (printed).
    pub notes: Vec<String>,
}

/// This machine's Linux version, `MAJOR.MINOR` of `/proc/sys/kernel/osrelease`.
pub fn host_kernel() -> Option<Kernel> {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut it = rel.trim().split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some(Kernel::new(major, minor))
}

/// The version-dependent conntrack and NAT rules podnet applies for `k`, named.
fn kernel_rules(k: Kernel) -> [(&'static str, bool); 4] {
    [
        ("the shared port rover", k.nat_port_rover()),
        (
            "UDP clashes resolved for identical NAT",
            k.resolves_matching_clash(),
        ),
        (
            "UDP clashes with other NAT inserted by reply",
            k.inserts_clashing_reply(),
        ),
        ("the clash_resolve counter", k.counts_clash_resolve()),
    ]
}

/// Virtual time podnet runs a scenario (what `podnet run` does by default).
pub const RUN_LIMIT_SECS: u64 = 30;

/// A session of scenario `text` in `mode`, traced in full (`full`: every frame, hook and note;
/// no pcap) or not at all.
pub fn load(path: &str, text: &str, mode: Mode, full: bool) -> Result<Session, String> {
    let loaded = podnet_scenario::load(&[(path, text)]).map_err(|e| e.to_string())?;
    let mut scenario = loaded.scenario;
    // The kernel replays as the version it is: podnet runs the scenario as that version too
    // (`build` notes when the scenario asked for one whose rules differ).
    if let Some(host) = host_kernel() {
        scenario.config.conntrack.kernel = host;
    }
    scenario.config.proxy = match mode {
        Mode::Iptables => Proxy::Iptables,
        Mode::Nftables => Proxy::Nftables,
    };
    scenario.config.trace = if full {
        TraceConfig {
            pcap: false,
            ..TraceConfig::full()
        }
    } else {
        TraceConfig::off()
    };
    Session::new(scenario).map_err(|e| e.to_string())
}

/// The proxy a scenario file asks for (its Cluster's `proxy`).
pub fn scenario_proxy(path: &str, text: &str) -> Result<Proxy, String> {
    let loaded = podnet_scenario::load(&[(path, text)]).map_err(|e| e.to_string())?;
    Ok(loaded.scenario.config.proxy)
}

fn mac_of(a: EthernetAddress) -> EthernetAddress {
    a
}

/// Runs `text` in podnet in `mode` and cuts the trace into node plans.
pub fn build(path: &str, text: &str, mode: Mode) -> Result<Plan, String> {
    let mut s = load(path, text, mode, true)?;
    // The run as `podnet run` makes it, stopped at each fault to note the rules kube-proxy
    // re-synced then (a stop changes nothing: a run to a time always gives the same state).
    let rules_now = |s: &Session| -> Result<Vec<Rules>, String> {
        s.cluster
            .nodes()
            .map(|(id, _)| Rules::of(&s.cluster, id, mode))
            .collect()
    };
    let ports_now = |s: &Session| -> Vec<Vec<Port>> {
        s.cluster
            .nodes()
            .map(|(id, _)| ports_of(&s.cluster, id))
            .collect()
    };
    let mut epochs = vec![Epoch {
        from_event: 0,
        time: s.now(),
        rules: rules_now(&s)?,
        ports: ports_now(&s),
    }];
    let end = Instant::ZERO + podnet::Duration::from_secs(RUN_LIMIT_SECS);
    let mut done = false;
    while let Some(t) = s.next_fault_time().filter(|&t| t <= end && !done) {
        // To the fault's time (its events included), then the fault itself.
        done = s.advance(t).map_err(|e| e.to_string())?;
        if done {
            break;
        }
        let from_event = s.cluster.trace().events().len();
        done = s.advance(t).map_err(|e| e.to_string())?;
        let rules = rules_now(&s)?;
        let ports = ports_now(&s);
        if epochs
            .last()
            .is_some_and(|e| e.rules != rules || e.ports != ports)
        {
            epochs.push(Epoch {
                from_event,
                time: t,
                rules,
                ports,
            });
        }
    }
    if !done {
        s.advance(end).map_err(|e| e.to_string())?;
    }
    let cluster = &s.cluster;
    let (mut nodes, ids) = cut(cluster, mode, &epochs)?;

    // podnet's conntrack after each node's last frame: a second, untraced run to that instant
    // (a replay to a time always gives the same state).
    for (n, id) in ids.iter().enumerate() {
        let last = nodes[n].steps.last().map(|s| s.time);
        let (list, stats) = match last {
            Some(t) => {
                let mut s2 = load(path, text, mode, false)?;
                s2.run_until(t).map_err(|e| e.to_string())?;
                let ct = s2
                    .cluster
                    .conntrack(*id)
                    .ok_or("this scenario runs no conntrack")?;
                (ct.list(t), ct.stats())
            }
            None => {
                let ct = cluster.conntrack(*id).ok_or("no conntrack")?;
                (ct.list(cluster.now()), ct.stats())
            }
        };
        nodes[n].ct_list = list;
        nodes[n].ct_stats = stats;
    }

    let mut notes = Vec::new();
    let asked = podnet_scenario::load(&[(path, text)])
        .map_err(|e| e.to_string())?
        .scenario
        .config
        .conntrack
        .kernel;
    if let Some(host) = host_kernel().filter(|&h| h != asked) {
        let differ: Vec<&str> = kernel_rules(asked)
            .iter()
            .zip(kernel_rules(host))
            .filter(|(a, h)| a.1 != h.1)
            .map(|(a, _)| a.0)
            .collect();
        if !differ.is_empty() {
            notes.push(format!(
                "the scenario's nodes run Linux {asked}, this machine {host}: replayed as \
                 {host} on both sides (they differ in {}; podnet's unit tests cover {asked})",
                differ.join(", ")
            ));
        }
    }
    Ok(Plan {
        scenario: path.to_string(),
        mode,
        nodes,
        notes,
    })
}

/// Cuts the full trace of `cluster` (run in `mode`) into one [`NodePlan`] per node, with
/// their ids; each node's conntrack listing and counters are left empty for the caller.
/// `epochs`: the rules of every node from the start and after each re-sync (empty: the rules
/// never changed, the cluster's are the ones).
pub fn cut(
    cluster: &podnet::Cluster,
    mode: Mode,
    epochs: &[Epoch],
) -> Result<(Vec<NodePlan>, Vec<NodeId>), String> {
    let trace = cluster.trace();

    // Interface id -> (node index, Linux name, is a wire interface).
    let mut node_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut nodes: Vec<NodePlan> = Vec::new();
    let mut ids: Vec<NodeId> = Vec::new();
    for (ni, (id, node)) in cluster.nodes().enumerate() {
        let a = node.addrs();
        let dp = cluster
            .dataplane(id)
            .ok_or_else(|| "this scenario runs no Service proxy (proxy: none)".to_string())?;
        let rules = match epochs.first().and_then(|e| e.rules.get(ni)) {
            Some(r) => r.clone(),
            None => Rules::of(cluster, id, mode)?,
        };
        let counters = dp.proxy().rule_counters();
        let vxlan = node.ifaces().flannel.map(|_| VxlanPlan {
            vtep: a.vtep(),
            mac: mac_of(a.flannel_mac),
            fdb: node.fdb().collect(),
        });
        let mut routes = Vec::new();
        for r in node.routes().iter() {
            let connected = r.via.is_none()
                && ((r.dev == Dev::Cni0 && r.dst == a.pod_cidr.network())
                    || (r.dev == Dev::Eth0 && r.dst == a.eth0.network()));
            if connected {
                continue;
            }
            let dst = if r.dst.prefix_len() == 0 {
                "default".to_string()
            } else {
                r.dst.to_string()
            };
            let mut spec = dst;
            if let Some(via) = r.via {
                spec.push_str(&format!(" via {via}"));
            }
            spec.push_str(&format!(" dev {}", r.dev.name()));
            if r.dev == Dev::Flannel && r.via.is_some() {
                spec.push_str(" onlink");
            }
            if let Some(src) = r.src {
                spec.push_str(&format!(" src {src}"));
            }
            routes.push(RoutePlan { spec });
        }
        let neigh = node
            .neighbours()
            .entries()
            .map(|(dev, ip, mac)| (dev.name().to_string(), ip, mac))
            .collect();
        let cfg = cluster.config();
        let ct = &cfg.conntrack;
        let t = &ct.tcp;
        let ct_sysctls = vec![
            ("nf_conntrack_tcp_timeout_syn_sent".into(), t.syn_sent),
            ("nf_conntrack_tcp_timeout_syn_recv".into(), t.syn_recv),
            ("nf_conntrack_tcp_timeout_established".into(), t.established),
            ("nf_conntrack_tcp_timeout_fin_wait".into(), t.fin_wait),
            ("nf_conntrack_tcp_timeout_close_wait".into(), t.close_wait),
            ("nf_conntrack_tcp_timeout_last_ack".into(), t.last_ack),
            ("nf_conntrack_tcp_timeout_time_wait".into(), t.time_wait),
            ("nf_conntrack_tcp_timeout_close".into(), t.close),
            ("nf_conntrack_tcp_timeout_max_retrans".into(), t.max_retrans),
            (
                "nf_conntrack_tcp_timeout_unacknowledged".into(),
                t.unacknowledged,
            ),
            ("nf_conntrack_udp_timeout".into(), ct.udp),
            ("nf_conntrack_udp_timeout_stream".into(), ct.udp_stream),
            ("nf_conntrack_icmp_timeout".into(), ct.icmp),
            ("nf_conntrack_generic_timeout".into(), ct.generic),
        ];
        node_index.insert(node.name().to_string(), nodes.len());
        ids.push(id);
        nodes.push(NodePlan {
            name: node.name().to_string(),
            eth0: (a.eth0.address(), a.eth0.prefix_len()),
            eth0_mac: a.eth0_mac,
            cni0: (a.gateway(), a.pod_cidr.prefix_len()),
            cni0_mac: a.cni0_mac,
            pod_mtu: if vxlan.is_some() { 1450 } else { 1500 },
            ports: Vec::new(),
            vxlan,
            routes,
            neigh,
            rules,
            resyncs: Vec::new(),
            counters,
            steps: Vec::new(),
            timer_sent: Vec::new(),
            ct_list: String::new(),
            ct_stats: Default::default(),
            ct_max: ct.max,
            ct_buckets: ct.buckets,
            ct_sysctls,
        });
    }

    // Interfaces: `NODE/DEV`; the wire ones are eth0 and the veth ports.
    let mut iface_node: Vec<Option<(usize, String, bool)>> = Vec::new();
    for (id, name) in trace.ifaces() {
        let idx = id.0 as usize;
        if iface_node.len() <= idx {
            iface_node.resize(idx + 1, None);
        }
        let Some((host, dev)) = name.split_once('/') else {
            continue;
        };
        let Some(&n) = node_index.get(host) else {
            continue;
        };
        let wire = dev == "eth0" || dev.starts_with("veth");
        iface_node[idx] = Some((n, dev.to_string(), wire));
        if let Some(hex) = dev.strip_prefix("veth") {
            // The pod's addresses: now, or when it was last there.
            let pod = u32::from_str_radix(hex, 16)
                .ok()
                .and_then(|p| cluster.pod(PodId(p)))
                .map(|p| {
                    let a = p.addrs();
                    let smoltcp::wire::IpCidr::Ipv4(c) = a.ip;
                    (c.address(), a.mac)
                })
                .or_else(|| {
                    epochs
                        .iter()
                        .rev()
                        .filter_map(|e| e.ports.get(n)?.iter().find(|p| p.0 == dev))
                        .map(|p| (p.1, p.2))
                        .next()
                });
            let at_start = epochs
                .first()
                .and_then(|e| e.ports.get(n))
                .is_none_or(|ps| ps.iter().any(|p| p.0 == dev));
            nodes[n].ports.push(PortPlan {
                dev: dev.to_string(),
                pod,
                at_start,
            });
        }
    }

    // The trace, cut per node.
    let mut current: Vec<Option<usize>> = vec![None; nodes.len()];
    // Hook notes of a step that name a numgen rule wait for the endpoint chain entered next.
    let mut pending_numgen: Vec<Option<(String, String, Tuple)>> = vec![None; nodes.len()];
    // The rules each node's current step meets (the choices depend on them).
    let mut next_epoch = 1;
    for (ei, ev) in trace.events().iter().enumerate() {
        while let Some(e) = epochs.get(next_epoch).filter(|e| e.from_event <= ei) {
            let before = &epochs[next_epoch - 1];
            for (n, node) in nodes.iter_mut().enumerate() {
                let (Some(r), Some(now), Some(was)) =
                    (e.rules.get(n), e.ports.get(n), before.ports.get(n))
                else {
                    continue;
                };
                let names = |ps: &[Port], not: &[Port]| -> Vec<String> {
                    ps.iter()
                        .filter(|p| !not.iter().any(|q| q.0 == p.0))
                        .map(|p| p.0.clone())
                        .collect()
                };
                let (attach, detach) = (names(now, was), names(was, now));
                if r != node.final_rules() || !attach.is_empty() || !detach.is_empty() {
                    node.resyncs.push(Resync {
                        before_step: node.steps.len(),
                        time: e.time,
                        rules: r.clone(),
                        attach,
                        detach,
                    });
                }
            }
            next_epoch += 1;
        }
        match &ev.kind {
            EventKind::Received { iface, frame } => {
                let Some(Some((n, dev, true))) = iface_node.get(iface.0 as usize) else {
                    continue;
                };
                nodes[*n].steps.push(Step {
                    time: ev.time,
                    dev: dev.clone(),
                    frame: frame.bytes.clone(),
                    sent: Vec::new(),
                    choices: Vec::new(),
                    ct_new: Vec::new(),
                    hits: Vec::new(),
                    dropped: Vec::new(),
                    raced: false,
                });
                current[*n] = Some(nodes[*n].steps.len() - 1);
                pending_numgen[*n] = None;
            }
            EventKind::Sent { iface, frame } => {
                let Some(Some((n, dev, true))) = iface_node.get(iface.0 as usize) else {
                    continue;
                };
                let node = &mut nodes[*n];
                match current[*n] {
                    Some(i) if node.steps[i].time == ev.time => {
                        node.steps[i].sent.push((dev.clone(), frame.bytes.clone()));
                    }
                    _ => node
                        .timer_sent
                        .push((ev.time, dev.clone(), frame.bytes.clone())),
                }
            }
            EventKind::Dropped { iface, reason, .. } => {
                let Some(Some((n, _, _))) = iface_node.get(iface.0 as usize) else {
                    continue;
                };
                if let Some(i) = current[*n] {
                    if nodes[*n].steps[i].time == ev.time {
                        nodes[*n].steps[i].dropped.push(reason.to_string());
                    }
                }
            }
            EventKind::Hook {
                iface,
                hook,
                verdict,
                before,
                after,
                notes,
            } => {
                let Some(Some((n, _, _))) = iface_node.get(iface.0 as usize) else {
                    continue;
                };
                let Some(i) = current[*n] else { continue };
                if nodes[*n].steps[i].time != ev.time {
                    continue;
                }
                let tuple = frame::ip_tuple(&before.bytes);
                let seq = tcp_seq(&before.bytes);
                let clash = notes
                    .iter()
                    .any(|n| n.starts_with("conntrack: insert clash"));
                if notes
                    .iter()
                    .any(|n| n.starts_with("conntrack: this lookup cannot see "))
                {
                    nodes[*n].steps[i].raced = true;
                }
                let found = notes
                    .iter()
                    .find_map(|n| {
                        n.strip_prefix("MASQUERADE: the port search met ")?
                            .split(' ')
                            .next()?
                            .parse()
                            .ok()
                    })
                    .unwrap_or(0);
                let after_tuple = after.as_ref().and_then(|a| frame::ip_tuple(&a.bytes));
                let node = &mut nodes[*n];
                let step = &mut node.steps[i];
                if let (podnet::netfilter::Verdict::Drop(why), Some(t)) = (verdict, tuple) {
                    if why.starts_with("NetworkPolicy") {
                        step.choices.push(Choice::PolicyDrop {
                            hook: hook.chain().to_ascii_lowercase(),
                            tuple: t,
                            seq,
                            reason: why.to_string(),
                        });
                    }
                }
                for note in notes {
                    if note.contains(": null binding, reply tuple taken: ") {
                        if let (Some(t), Some(a)) = (tuple, after_tuple) {
                            step.choices.push(Choice::NullBinding {
                                tuple: t,
                                seq,
                                to: (a.src, a.sport),
                            });
                        }
                        continue;
                    }
                    if let Some(rest) = note.strip_prefix("conntrack: NEW, entry created: ") {
                        if let Some(t) = frame::ct_line_orig(rest) {
                            step.ct_new.push(t);
                        }
                        continue;
                    }
                    let Some((table, rule)) = parse_rule_note(note) else {
                        continue;
                    };
                    let (chain, body) = rule;
                    if let Some((nchain, nrule, ntuple)) = pending_numgen[*n].take() {
                        if chain.starts_with("endpoint-") {
                            step.choices.push(Choice::NftGoto {
                                chain: nchain,
                                rule: nrule,
                                target: chain.clone(),
                                tuple: ntuple,
                                seq,
                            });
                        }
                    }
                    step.hits.push((table.clone(), chain.clone(), body.clone()));
                    let Some(t) = tuple else { continue };
                    // A masquerade that moved the source port searched for a free one: from a
                    // random offset in Linux 5.x and later (from the shared rover in 4.19;
                    // anywhere with --random-fully), so the kernel cannot be expected to land
                    // on podnet's port and gets it forced. One that kept the port is compared.
                    // So does one whose port was taken by an entry the packet could not see
                    // (another CPU confirmed it meanwhile): serially, the kernel would see it
                    // and move the port; forced, it clashes at confirm as podnet's did.
                    let moved = after_tuple.is_some_and(|a| a.sport != t.sport) || clash;
                    if mode == Mode::Nftables && !is_ipt_rule(note) {
                        if body.starts_with("numgen random") {
                            pending_numgen[*n] = Some((chain.clone(), body.clone(), t));
                        } else if body.contains("masquerade fully-random")
                            || (moved && body.contains("masquerade"))
                        {
                            if let Some(a) = after_tuple {
                                step.choices.push(Choice::NftMasq {
                                    chain: chain.clone(),
                                    rule: body.clone(),
                                    tuple: t,
                                    seq,
                                    to: (a.src, a.sport),
                                    found,
                                });
                            }
                        }
                        continue;
                    }
                    if body.contains("-j MASQUERADE") && (body.contains("--random-fully") || moved)
                    {
                        if let Some(a) = after_tuple {
                            step.choices.push(Choice::IptMasq {
                                table: table.clone(),
                                chain: chain.clone(),
                                rule: body.clone(),
                                tuple: t,
                                seq,
                                to: (a.src, a.sport),
                                found,
                            });
                        }
                    } else if let Some(target) = jump_target(&body) {
                        // The rules now (not `final_rules()`: `step` borrows the steps).
                        let ipt = node
                            .resyncs
                            .last()
                            .map_or(&node.rules.iptables, |r| &r.rules.iptables);
                        if crate::rules::chain_has_statistic(ipt, &table, &chain) {
                            step.choices.push(Choice::IptJump {
                                table: table.clone(),
                                chain: chain.clone(),
                                rule: body.clone(),
                                target,
                                tuple: t,
                                seq,
                            });
                        }
                    }
                }
            }
        }
    }

    Ok((nodes, ids))
}

/// The sequence number of a TCP packet (an IPv4 packet's bytes).
fn tcp_seq(ip: &[u8]) -> Option<u32> {
    if ip.len() < 20 || ip[9] != 6 {
        return None;
    }
    let at = usize::from(ip[0] & 0x0f) * 4 + 4;
    Some(u32::from_be_bytes(ip.get(at..at + 4)?.try_into().ok()?))
}

fn is_ipt_rule(note: &str) -> bool {
    note.split_once(": ")
        .is_some_and(|(_, r)| r.starts_with("-A "))
}

/// `nat PREROUTING: -A CHAIN rest` or `nat PREROUTING: add rule ip kube-proxy CHAIN rest`
/// -> (table, (chain, rest)).
fn parse_rule_note(note: &str) -> Option<(String, (String, String))> {
    let (head, rule) = note.split_once(": ")?;
    let (table, _hook) = head.split_once(' ')?;
    if !matches!(table, "nat" | "filter" | "mangle" | "raw") {
        return None;
    }
    if let Some(r) = rule.strip_prefix("-A ") {
        let (chain, rest) = r.split_once(' ').unwrap_or((r, ""));
        return Some((table.to_string(), (chain.to_string(), rest.to_string())));
    }
    if let Some(r) = rule.strip_prefix("add rule ip ") {
        let (_t, r) = r.split_once(' ')?;
        let (chain, rest) = r.split_once(' ').unwrap_or((r, ""));
        return Some((table.to_string(), (chain.to_string(), rest.to_string())));
    }
    None
}

/// The `-j TARGET` of a rule jumping to a KUBE-SEP chain.
fn jump_target(rule: &str) -> Option<String> {
    let (_, t) = rule.rsplit_once("-j ")?;
    let t = t.split_whitespace().next()?;
    t.starts_with("KUBE-SEP-").then(|| t.to_string())
}

/// `counter packets N bytes M` -> `counter packets 0 bytes 0`.
fn zero_counters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("counter packets ") {
        out.push_str(&rest[..i]);
        out.push_str("counter packets 0 bytes 0");
        let after = &rest[i + "counter packets ".len()..];
        // Skip "N bytes M".
        let mut words = 0;
        let mut end = 0;
        for (j, c) in after.char_indices() {
            if c == '\n' {
                end = j;
                break;
            }
            if c == ' ' {
                words += 1;
                if words == 3 {
                    end = j;
                    break;
                }
            }
            end = j + c.len_utf8();
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_zeroed_where_they_stand() {
        let t = "\t\tct state new counter packets 3 bytes 156 jump x\n\t\tcounter packets 12 bytes 745\n\t\tmasquerade\n";
        assert_eq!(
            super::zero_counters(t),
            "\t\tct state new counter packets 0 bytes 0 jump x\n\t\tcounter packets 0 bytes 0\n\t\tmasquerade\n"
        );
    }
}
