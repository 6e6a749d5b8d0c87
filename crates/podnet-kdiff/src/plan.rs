//! What to replay: a scenario run in podnet with a full trace, cut into one [`NodePlan`] per
//! node. A node is sans-IO and handles a frame synchronously, so its answer to a frame it
//! received on a wire interface (`vethN`, `eth0`) is every frame it sent on a wire interface
//! at the same virtual instant, after that frame and before the next one it received.

use std::collections::BTreeMap;

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
    /// The pod behind it (gone when the pod was deleted during the run).
    pub pod: Option<(Ipv4Address, EthernetAddress)>,
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
    /// `MASQUERADE --random-fully` in `chain`: the kernel gets an exact-tuple `SNAT` to the
    /// address and port podnet picked, inserted just before the MASQUERADE rule.
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
    /// nftables `masquerade fully-random` in `chain`.
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
    /// `iptables-restore` input: kube-proxy's (iptables mode) or flannel's (both modes).
    pub iptables: String,
    /// `nft list table ip kube-proxy` as podnet generated it (nftables mode).
    pub nft: Option<String>,
    /// The same with a `counter packets 0 bytes 0` where podnet counts each rule: what is
    /// loaded, so that the kernel counts where podnet does (nftables mode).
    pub nft_load: Option<String>,
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

/// A scenario in one mode, ready to replay.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Scenario file name.
    pub scenario: String,
    /// Mode.
    pub mode: Mode,
    /// Nodes.
    pub nodes: Vec<NodePlan>,
}

/// Virtual time podnet runs a scenario (what `podnet run` does by default).
pub const RUN_LIMIT_SECS: u64 = 30;

/// A session of scenario `text` in `mode`, traced in full (`full`: every frame, hook and note;
/// no pcap) or not at all.
pub fn load(path: &str, text: &str, mode: Mode, full: bool) -> Result<Session, String> {
    let loaded = podnet_scenario::load(&[(path, text)]).map_err(|e| e.to_string())?;
    let mut scenario = loaded.scenario;
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
    s.run(podnet::Duration::from_secs(RUN_LIMIT_SECS))
        .map_err(|e| e.to_string())?;
    let cluster = &s.cluster;
    let (mut nodes, ids) = cut(cluster, mode)?;

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

    Ok(Plan {
        scenario: path.to_string(),
        mode,
        nodes,
    })
}

/// Cuts the full trace of `cluster` (run in `mode`) into one [`NodePlan`] per node, with
/// their ids; each node's conntrack listing and counters are left empty for the caller.
pub fn cut(cluster: &podnet::Cluster, mode: Mode) -> Result<(Vec<NodePlan>, Vec<NodeId>), String> {
    let trace = cluster.trace();

    // Interface id -> (node index, Linux name, is a wire interface).
    let mut node_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut nodes: Vec<NodePlan> = Vec::new();
    let mut ids: Vec<NodeId> = Vec::new();
    for (id, node) in cluster.nodes() {
        let a = node.addrs();
        let dp = cluster
            .dataplane(id)
            .ok_or_else(|| "this scenario runs no Service proxy (proxy: none)".to_string())?;
        let (iptables, nft, nft_load) = match mode {
            Mode::Iptables => (dp.proxy().iptables_save(), None, None),
            Mode::Nftables => (
                dp.proxy().iptables_save(),
                Some(dp.proxy().nft_ruleset()),
                Some(zero_counters(&dp.proxy().nft_ruleset_counters())),
            ),
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
            iptables,
            nft,
            nft_load,
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
            let pod = u32::from_str_radix(hex, 16)
                .ok()
                .and_then(|p| cluster.pod(PodId(p)))
                .map(|p| {
                    let a = p.addrs();
                    let smoltcp::wire::IpCidr::Ipv4(c) = a.ip;
                    (c.address(), a.mac)
                });
            nodes[n].ports.push(PortPlan {
                dev: dev.to_string(),
                pod,
            });
        }
    }

    // The trace, cut per node.
    let mut current: Vec<Option<usize>> = vec![None; nodes.len()];
    // Hook notes of a step that name a numgen rule wait for the endpoint chain entered next.
    let mut pending_numgen: Vec<Option<(String, String, Tuple)>> = vec![None; nodes.len()];
    for ev in trace.events() {
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
                    if mode == Mode::Nftables && !is_ipt_rule(note) {
                        if body.starts_with("numgen random") {
                            pending_numgen[*n] = Some((chain.clone(), body.clone(), t));
                        } else if body.contains("masquerade fully-random") {
                            if let Some(a) = after_tuple {
                                step.choices.push(Choice::NftMasq {
                                    chain: chain.clone(),
                                    rule: body.clone(),
                                    tuple: t,
                                    seq,
                                    to: (a.src, a.sport),
                                });
                            }
                        }
                        continue;
                    }
                    if body.contains("-j MASQUERADE") && body.contains("--random-fully") {
                        if let Some(a) = after_tuple {
                            step.choices.push(Choice::IptMasq {
                                table: table.clone(),
                                chain: chain.clone(),
                                rule: body.clone(),
                                tuple: t,
                                seq,
                                to: (a.src, a.sport),
                            });
                        }
                    } else if let Some(target) = jump_target(&body) {
                        if crate::rules::chain_has_statistic(&node.iptables, &table, &chain) {
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
