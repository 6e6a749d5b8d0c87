//! After the frames: the conntrack tables, the rules as the kernel lists them back and the
//! per-rule packet counters, compared with podnet's.

use std::collections::{BTreeMap, BTreeSet};

use super::{disagree, Kind, NodeFigures, Outcome};
use crate::netns::ns_run;
use crate::plan::{Mode, NodePlan, Rules};
use crate::rules::{self, Harness, IptRules};

/// A podnet `conntrack -L` line with its VXLAN source ports mapped to the kernel's.
fn map_vxlan_ports(line: &str, map: &BTreeMap<u16, u16>) -> String {
    if !line.contains("port=8472") {
        return line.to_string();
    }
    line.split(' ')
        .map(|w| {
            let port = w
                .strip_prefix("sport=")
                .map(|p| ("sport=", p))
                .or_else(|| w.strip_prefix("dport=").map(|p| ("dport=", p)));
            match port.and_then(|(k, p)| Some((k, p.parse::<u16>().ok()?))) {
                Some((k, p)) if p != 8472 => match map.get(&p) {
                    Some(m) => format!("{k}{m}"),
                    None => w.to_string(),
                },
                _ => w.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn ct_normalize(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 4 || words[1].parse::<u8>().is_err() {
        return None;
    }
    // proto name, number, seconds left (not compared), the rest.
    let mut v: Vec<&str> = vec![words[0], words[1]];
    v.extend(&words[3..]);
    Some(v.join(" "))
}

pub(super) fn compare_conntrack(
    node: &NodePlan,
    node_ns: &str,
    vxlan_ports: &BTreeMap<u16, u16>,
    fig: &mut NodeFigures,
    out: &mut Outcome,
) -> Result<(), String> {
    let name = node.name.as_str();
    let kernel = ns_run(node_ns, "conntrack", &["-L"], None)?;
    let mut k: Vec<String> = kernel.lines().filter_map(ct_normalize).collect();
    let mut p: Vec<String> = node
        .ct_list
        .lines()
        .filter_map(ct_normalize)
        .map(|l| {
            // Only the entries of packets this node encapsulated carry its own port.
            let own = format!("src={} ", node.eth0.0);
            if l.split("src=")
                .nth(1)
                .is_some_and(|_| l.contains(&own) && l.find(&own) == l.find("src="))
            {
                map_vxlan_ports(&l, vxlan_ports)
            } else {
                l
            }
        })
        .collect();
    k.sort();
    p.sort();
    fig.ct_entries = p.len();
    let (only_p, only_k) = rules::line_diff(&p, &k);
    // Pair entries of the same original tuple to show them side by side.
    let key = |l: &str| -> String {
        l.split_whitespace()
            .filter(|w| w.contains('='))
            .take(4)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut only_k = only_k;
    for l in only_p {
        let kk = key(&l);
        if let Some(i) = only_k.iter().position(|x| key(x) == kk) {
            let x = only_k.remove(i);
            disagree(
                out,
                Kind::Conntrack,
                name,
                format!("conntrack entry\n    podnet: {l}\n    kernel: {x}"),
            );
        } else {
            disagree(
                out,
                Kind::Conntrack,
                name,
                format!("conntrack entry\n    podnet: {l}\n    kernel: (none)"),
            );
        }
    }
    for x in only_k {
        disagree(
            out,
            Kind::Conntrack,
            name,
            format!("conntrack entry\n    podnet: (none)\n    kernel: {x}"),
        );
    }

    // conntrack -S, summed over CPUs.
    let stats = ns_run(node_ns, "conntrack", &["-S"], None)?;
    let mut sum: BTreeMap<String, u64> = BTreeMap::new();
    for line in stats.lines() {
        for w in line.split_whitespace() {
            if let Some((k, v)) = w.split_once('=') {
                if k != "cpu" {
                    *sum.entry(k.to_string()).or_default() += v.parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    let s = node.ct_stats;
    fig.early_drop = (s.early_drop, sum.get("early_drop").copied().unwrap_or(0));
    let podnet = [
        ("found", s.found),
        ("invalid", s.invalid),
        ("insert", s.insert),
        ("insert_failed", s.insert_failed),
        ("drop", s.drop),
        ("early_drop", s.early_drop),
        ("error", s.error),
        ("search_restart", s.search_restart),
        ("clash_resolve", s.clash_resolve),
        ("chaintoolong", s.chaintoolong),
    ];
    // A null binding the harness forced with an exact-tuple SNAT to one port never looks the
    // taken reply tuple up (`get_unique_tuple` tries the range's one port at once), where the
    // unforced kernel finds it taken twice (`nf_nat_used_tuple_new`, then
    // `nf_nat_used_tuple`), as podnet does: those lookups are added back.
    let forced_null = node
        .steps
        .iter()
        .flat_map(|s| &s.choices)
        .filter(|c| matches!(c, crate::plan::Choice::NullBinding { .. }))
        .count() as u64;
    // A masquerade the harness forced to podnet's port never searched: the taken tuples
    // podnet's search met are added back.
    let forced_masq: u64 = node
        .steps
        .iter()
        .flat_map(|s| &s.choices)
        .map(|c| match c {
            crate::plan::Choice::IptMasq { found, .. }
            | crate::plan::Choice::NftMasq { found, .. } => *found,
            _ => 0,
        })
        .sum();
    for (k, v) in podnet {
        let mut kv = sum.get(k).copied().unwrap_or(0);
        if k == "found" {
            kv += 2 * forced_null + forced_masq;
        }
        if kv != v {
            disagree(
                out,
                Kind::CtStat,
                name,
                format!("conntrack -S {k}: podnet {v}, kernel {kv}"),
            );
        }
    }
    Ok(())
}

pub(super) fn compare_rules(
    mode: Mode,
    node: &NodePlan,
    set: &Rules,
    when: &str,
    node_ns: &str,
    fig: &mut NodeFigures,
    out: &mut Outcome,
) -> Result<(), String> {
    let name = node.name.as_str();
    let mut pairs: Vec<(&str, Vec<String>, Vec<String>)> = Vec::new();
    if !set.iptables.trim().is_empty() {
        let kernel = ns_run(node_ns, "iptables-save", &[], None)?;
        let mut k = rules::normalize_ipt(&kernel);
        let p = rules::normalize_ipt(&set.iptables);
        // iptables-save also lists tables that exist but podnet does not write (none here
        // unless another tool made them).
        let tables: BTreeSet<&str> = p.iter().filter_map(|l| l.strip_prefix('*')).collect();
        let mut keep = true;
        k.retain(|l| {
            if let Some(t) = l.strip_prefix('*') {
                keep = tables.contains(t);
            }
            keep
        });
        pairs.push(("iptables-save", p, k));
    }
    if mode == Mode::Nftables {
        if let Some(nft) = &set.nft {
            let kernel = ns_run(node_ns, "nft", &["list", "table", "ip", "kube-proxy"], None)?;
            pairs.push((
                "nft list table ip kube-proxy",
                rules::normalize_nft(&rules::nft_loadable(nft)),
                rules::normalize_nft(&kernel),
            ));
        }
    }
    for (what, p, k) in pairs {
        fig.rules += p.len();
        if p == k {
            continue;
        }
        let (only_p, only_k) = rules::line_diff(&p, &k);
        if only_p.is_empty() && only_k.is_empty() {
            disagree(
                out,
                Kind::Rules,
                name,
                format!("{what}{when}: same lines, in another order"),
            );
            continue;
        }
        let mut text = format!("{what}{when}: the kernel lists the rules differently");
        for l in only_p.iter().take(10) {
            text += &format!("\n    podnet: {l}");
        }
        for l in only_k.iter().take(10) {
            text += &format!("\n    kernel: {l}");
        }
        disagree(out, Kind::Rules, name, text);
    }
    Ok(())
}

pub(super) fn compare_counters(
    mode: Mode,
    node: &NodePlan,
    node_ns: &str,
    harness: &[Harness],
    fig: &mut NodeFigures,
    out: &mut Outcome,
) -> Result<(), String> {
    use podnet::kube_proxy::CounterTable;
    let name = node.name.as_str();
    let mut kernel = BTreeMap::new();
    let last = node.final_rules();
    if !last.iptables.trim().is_empty() {
        let save_c = ns_run(node_ns, "iptables-save", &["-c"], None)?;
        kernel.extend(rules::kernel_ipt_counters(
            &save_c,
            harness,
            &IptRules::parse(&last.iptables),
        ));
    }
    if mode == Mode::Nftables {
        if let Some(plain) = &last.nft {
            let listing = ns_run(node_ns, "nft", &["list", "table", "ip", "kube-proxy"], None)?;
            kernel.extend(rules::kernel_nft_counters(&listing, harness, plain));
        }
    }
    for rc in &node.counters {
        if rc.table == CounterTable::NftKubeProxy && mode != Mode::Nftables {
            continue;
        }
        let key = (rc.table.name().to_string(), rc.chain.clone(), rc.index);
        fig.counters += 1;
        let (kp, kb) = kernel.get(&key).copied().unwrap_or((0, 0));
        if (kp, kb) != (rc.packets, rc.bytes) {
            let what = match rc.index {
                Some(i) => format!("rule {} of", i + 1),
                None => "policy of".to_string(),
            };
            disagree(
                out,
                Kind::Counter,
                name,
                format!(
                    "counter of {what} {} {}: {}\n    podnet: {} packets, {} bytes\n    kernel: {kp} packets, {kb} bytes",
                    rc.table.name(),
                    rc.chain,
                    rc.text,
                    rc.packets,
                    rc.bytes
                ),
            );
        }
    }
    Ok(())
}
