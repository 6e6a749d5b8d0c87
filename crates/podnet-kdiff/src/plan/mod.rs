//! What to replay: a scenario run in podnet with a full trace, cut into one [`NodePlan`] per
//! node. A node is sans-IO and handles a frame synchronously, so its answer to a frame it
//! received on a wire interface (`vethN`, `eth0`) is every frame it sent on a wire interface
//! at the same virtual instant, after that frame and before the next one it received.

use podnet::conntrack::Kernel;
use podnet::conntrack::Tuple;
use podnet::trace::TraceConfig;
use podnet::{Instant, NodeId, Proxy};
use podnet_scenario::session::Session;
use podnet_scenario::FaultAction;
use smoltcp::wire::{EthernetAddress, Ipv4Address};

mod cut;

pub use cut::cut;

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
            (
                format!("veth{:08x}", p.0),
                podnet::v4(a.ip.address()),
                a.mac,
            )
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
    /// Its entry's insertion clashed and was resolved by inserting it by its reply tuple
    /// only, for a fixed second (`IPS_NAT_CLASH`).
    pub clash_reply_only: bool,
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
    /// A Fault flushed the node's conntrack table then (`conntrack -F`).
    pub flush_conntrack: bool,
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
    /// Per node, whether a Fault flushed its conntrack table then.
    pub flush: Vec<bool>,
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
    // ICMP rate limits refill with time, which the replay compresses: off on both sides
    // (`net.ipv4.icmp_ratemask` 0 in the node namespaces), checked in real time on their own
    // (`crate::icmplimit`).
    scenario.config.icmp.ratemask = 0;
    // A VXLAN super-segment cannot be handed to the kernel whole (`crate::gso`).
    if scenario.config.cni == podnet::cluster::Cni::Vxlan {
        scenario.config.tso = false;
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
    // The nodes (in `cluster.nodes()` order) whose conntrack a Fault flushes at `t`.
    let flushed_at = |s: &Session, t: Instant| -> Vec<bool> {
        s.cluster
            .nodes()
            .map(|(id, _)| {
                s.scenario.faults.iter().any(|f| match f.action {
                    FaultAction::ConntrackFlush { node } => {
                        Instant::ZERO + f.at == t && s.index.node_ids.get(node) == Some(&id)
                    }
                    _ => false,
                })
            })
            .collect()
    };
    let mut epochs = vec![Epoch {
        from_event: 0,
        time: s.now(),
        rules: rules_now(&s)?,
        ports: ports_now(&s),
        flush: Vec::new(),
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
        let flush = flushed_at(&s, t);
        if flush.contains(&true)
            || epochs
                .last()
                .is_some_and(|e| e.rules != rules || e.ports != ports)
        {
            epochs.push(Epoch {
                from_event,
                time: t,
                rules,
                ports,
                flush,
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
    fn plan_of(file: &str, mode: super::Mode) -> super::Plan {
        let path = format!("{}/../../examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("example");
        super::build(file, &text, mode).expect("plan")
    }

    #[test]
    fn a_pod_deleted_and_a_deployment_scaled_are_replayed_as_re_syncs() {
        use super::Mode;
        for mode in [Mode::Iptables, Mode::Nftables] {
            let plan = plan_of("pod-replaced.yaml", mode);
            let node = |name: &str| plan.nodes.iter().find(|n| n.name == name).unwrap();
            // web-1 (node-b) dies at 1 s; at 2.2 s web-1 comes back on node-b, web-2 on node-a.
            let b = node("node-b");
            let times: Vec<String> = b.resyncs.iter().map(|r| r.time.to_string()).collect();
            assert_eq!(times, ["1.000s", "2.200s"], "{mode:?}");
            assert_eq!(
                (b.resyncs[0].detach.len(), b.resyncs[0].attach.len()),
                (1, 0)
            );
            assert_eq!(
                (b.resyncs[1].detach.len(), b.resyncs[1].attach.len()),
                (0, 1)
            );
            let new = &b.resyncs[1].attach[0];
            assert!(b
                .ports
                .iter()
                .any(|p| p.dev == *new && !p.at_start && p.pod.is_some()));
            let gone = &b.resyncs[0].detach[0];
            assert!(b
                .ports
                .iter()
                .any(|p| p.dev == *gone && p.at_start && p.pod.is_some()));
            // Every node's rules change at both (the Service's endpoints do).
            for n in &plan.nodes {
                assert_eq!(n.resyncs.len(), 2, "{} {mode:?}", n.name);
                assert_ne!(n.rules, n.resyncs[0].rules);
                assert_ne!(n.resyncs[0].rules, n.resyncs[1].rules);
                let steps: Vec<usize> = n.resyncs.iter().map(|r| r.before_step).collect();
                assert!(steps.windows(2).all(|w| w[0] <= w[1]) && steps[1] <= n.steps.len());
            }
        }
    }

    #[test]
    fn a_raced_lookup_is_planned_with_the_entry_it_missed() {
        let plan = plan_of("dns-5s.yaml", super::Mode::Iptables);
        let a = &plan.nodes[0];
        let raced: Vec<usize> = (0..a.steps.len()).filter(|&i| a.steps[i].raced).collect();
        assert!(raced.len() >= 24, "{} raced steps", raced.len());
        // As Linux 5.6 and later resolve it: the loser inserted by its reply tuple for 1 s.
        if super::host_kernel().is_some_and(|k| k >= podnet::conntrack::Kernel::new(5, 6)) {
            assert!(raced.iter().any(|&l| a.steps[l].clash_reply_only));
        }
        for &l in &raced {
            let t = &a.steps[l].ct_new;
            assert!(!t.is_empty(), "step {l}: a raced lookup creates an entry");
            assert!(
                a.steps[..l]
                    .iter()
                    .any(|w| w.ct_new.iter().any(|x| t.contains(x))),
                "step {l}: no earlier entry of its tuple"
            );
        }
        // podnet runs as this machine's kernel, and says so when the scenario asked otherwise.
        if super::host_kernel().is_some_and(|k| k >= podnet::conntrack::Kernel::new(5, 0)) {
            assert!(
                plan.notes.iter().any(|n| n.contains("Linux 4.19")),
                "{:?}",
                plan.notes
            );
        }
    }

    #[test]
    fn a_masquerade_that_moved_the_port_is_forced() {
        use super::Choice;
        let plan = plan_of("snat-clash.yaml", super::Mode::Iptables);
        let mut forced = 0;
        for step in &plan.nodes[0].steps {
            for c in &step.choices {
                let Choice::IptMasq {
                    tuple, to, rule, ..
                } = c
                else {
                    continue;
                };
                forced += 1;
                assert!(rule.contains("-j MASQUERADE") && !rule.contains("--random-fully"));
                assert_eq!(to.0.to_string(), "192.168.1.100");
                // Moved, or kept a port an entry it could not see held (the race: dropped).
                let clashed = step.dropped.iter().any(|d| d.contains("insert clash"));
                assert!(
                    to.1 != tuple.sport || clashed,
                    "{tuple} -> {to:?}: {:?}",
                    step.dropped
                );
            }
        }
        assert!(forced > 0);
    }
    #[test]
    fn a_conntrack_flush_is_replayed_on_its_node_only() {
        let path = format!("{}/../../examples/seed.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("example").replace("count: 3", "count: 6")
            + "---\napiVersion: podnet.dev/v1alpha1\nkind: Fault\nmetadata: {name: flush}\nspec: {at: 25ms, conntrackFlush: node-a}\n";
        let plan = super::build("flush.yaml", &text, super::Mode::Iptables).expect("plan");
        for n in &plan.nodes {
            let flushes: Vec<String> = n
                .resyncs
                .iter()
                .filter(|r| r.flush_conntrack)
                .map(|r| r.time.to_string())
                .collect();
            let want: &[&str] = if n.name == "node-a" { &["0.025s"] } else { &[] };
            assert_eq!(flushes, want, "{}", n.name);
            // Nothing else changed: the rules stay.
            assert!(n
                .resyncs
                .iter()
                .all(|r| r.rules == n.rules && r.attach.is_empty()));
        }
    }
}
