//! Cutting a traced run into node plans: each node's received frames as steps, with what
//! podnet sent in answer, the random choices to force, the entries created and the rules hit.

use std::collections::BTreeMap;

use podnet::conntrack::Tuple;
use podnet::route::Dev;
use podnet::trace::EventKind;
use podnet::{NodeId, PodId};

use super::{
    mac_of, Choice, Epoch, Mode, NodePlan, Port, PortPlan, Resync, RoutePlan, Rules, Step,
    VxlanPlan,
};
use crate::frame;

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
                    (podnet::v4(a.ip.address()), a.mac)
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
                let flush_conntrack = e.flush.get(n).copied().unwrap_or(false);
                if r != node.final_rules()
                    || !attach.is_empty()
                    || !detach.is_empty()
                    || flush_conntrack
                {
                    node.resyncs.push(Resync {
                        before_step: node.steps.len(),
                        time: e.time,
                        rules: r.clone(),
                        attach,
                        detach,
                        flush_conntrack,
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
                    clash_reply_only: false,
                });
                current[*n] = Some(nodes[*n].steps.len() - 1);
                pending_numgen[*n] = None;
            }
            EventKind::Sent { iface, frame } => {
                let Some(Some((n, dev, true))) = iface_node.get(iface.0 as usize) else {
                    continue;
                };
                let node = &mut nodes[*n];
                // A super-segment leaves the replay's node as the kernel cuts it
                // (`crate::gso`).
                for seg in crate::gso::segments(&frame.bytes) {
                    match current[*n] {
                        Some(i) if node.steps[i].time == ev.time => {
                            node.steps[i].sent.push((dev.clone(), seg));
                        }
                        _ => node.timer_sent.push((ev.time, dev.clone(), seg)),
                    }
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
                if notes
                    .iter()
                    .any(|n| n.contains("inserted by its REPLY tuple only"))
                {
                    nodes[*n].steps[i].clash_reply_only = true;
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
