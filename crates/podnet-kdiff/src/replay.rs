//! The replay: every node of a plan built as namespaces, its received frames injected in
//! order, what the kernel emitted captured and compared with what podnet sent; then conntrack
//! tables, conntrack counters, rules and per-rule packet counters.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use podnet::conntrack::Tuple;

use crate::ctlimit;
use crate::frame::{self, Mask};
use crate::netns::{self, ns_run, Namespaces};
use crate::plan::{Mode, NodePlan, Plan, Step};
use crate::rules::{self, Harness, HarnessBuilder, IptRules};
use crate::sys::{self, PacketSocket};

/// Replay settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// After the frames podnet predicts have arrived, how long to wait for more.
    pub grace: Duration,
    /// How long to wait for frames podnet predicts that have not arrived.
    pub timeout: Duration,
    /// Print every frame's outcome.
    pub verbose: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            grace: Duration::from_micros(500),
            timeout: Duration::from_millis(20),
            verbose: false,
        }
    }
}

/// What a disagreement is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A frame on the wire.
    Frame,
    /// A conntrack entry.
    Conntrack,
    /// A `conntrack -S` counter.
    CtStat,
    /// The ruleset as the kernel lists it.
    Rules,
    /// A rule's packet counter.
    Counter,
}

/// One disagreement.
#[derive(Clone, Debug)]
pub struct Disagreement {
    /// About what.
    pub kind: Kind,
    /// The node.
    pub node: String,
    /// The text to print (several lines).
    pub text: String,
    /// Why it is expected, when it is (the node's table size could not be reproduced).
    pub known: Option<String>,
}

impl Disagreement {
    /// The lines to print: `DISAGREE [kind] node: text`, and the reason it is known.
    pub fn render(&self) -> String {
        let mut s = format!("DISAGREE [{:?}] {}: {}", self.kind, self.node, self.text);
        if let Some(k) = &self.known {
            s += &format!("\n    known: {k}");
        }
        s
    }
}

/// Figures of one node.
#[derive(Clone, Debug, Default)]
pub struct NodeFigures {
    /// Frames injected.
    pub frames: usize,
    /// Frames whose answers agreed.
    pub frames_agreed: usize,
    /// Frames podnet sent in answer (non-ARP-request), compared.
    pub answers: usize,
    /// Conntrack entries compared (podnet's `conntrack -L` lines).
    pub ct_entries: usize,
    /// Connections podnet tracked (entries created).
    pub connections: usize,
    /// Rules compared (lines of the ruleset).
    pub rules: usize,
    /// Rule counters compared.
    pub counters: usize,
    /// Harness rules inserted.
    pub harness: usize,
    /// Entries deleted from the kernel's table where podnet's timer had expired them.
    pub ct_forgotten: usize,
    /// ARP requests podnet sent that the kernel (with permanent neighbours) never needs.
    pub arp_requests_skipped: usize,
    /// Frames podnet sent from timers (not compared).
    pub timer_frames: usize,
    /// `conntrack -S early_drop`: podnet's and the kernel's.
    pub early_drop: (u64, u64),
}

/// The result of one plan.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Per node.
    pub nodes: Vec<(String, NodeFigures)>,
    /// Everything that differed.
    pub disagreements: Vec<Disagreement>,
    /// Notes (what was not compared, and why).
    pub notes: Vec<String>,
    /// What was done about each node's conntrack table size (`nf_conntrack_max` set and
    /// restored, or why not), printed always.
    pub limits: Vec<String>,
}

/// A frame the kernel emitted that podnet did not send in answer to the same frame; it may
/// still be one podnet sent later, once ARP resolved.
struct Extra {
    step: usize,
    dev: String,
    frame: Vec<u8>,
}

/// Replays `plan`; namespaces are deleted before returning.
pub fn replay(plan: &Plan, settings: &Settings) -> Result<Outcome, String> {
    let mut ns = Namespaces::new();
    let r = replay_in(plan, settings, &mut ns);
    ns.delete_all();
    r
}

fn replay_in(plan: &Plan, settings: &Settings, ns: &mut Namespaces) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    for (i, node) in plan.nodes.iter().enumerate() {
        if sys::interrupted() {
            return Err("interrupted".into());
        }
        let (node_ns, wire_ns) = netns::names(i);
        // The table size: the global nf_conntrack_max for the node's replay (restored below,
        // or by the guard on every early return).
        // Only where podnet's table can have filled up: a node that creates fewer entries
        // than either size never meets the limit.
        let created: usize = node.steps.iter().map(|s| s.ct_new.len()).sum();
        let global = ctlimit::global_max().unwrap_or(u32::MAX);
        let limit = if (created as u64) < u64::from(node.ct_max.min(global)) {
            ctlimit::Limit::Same
        } else {
            ctlimit::for_node(node.ct_max)
        };
        let first = out.disagreements.len();
        ns.add(&node_ns)?;
        ns.add(&wire_ns)?;
        let wires = netns::build_node(node, plan.mode, &node_ns, &wire_ns)?;
        let figures = replay_node(plan, node, &node_ns, &wire_ns, &wires, settings, &mut out);
        if let Some(secs) = std::env::var("PNKD_PAUSE")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            // Debugging aid: look at the namespaces before they go.
            eprintln!("PNKD_PAUSE: {node_ns} / {wire_ns} kept {secs}s");
            std::thread::sleep(Duration::from_secs(secs));
        }
        let figures = figures?;
        let early_drop = figures.early_drop;
        out.nodes.push((node.name.clone(), figures));
        // This node's namespaces are done with; free them before the next node.
        ns.delete_all();
        match limit {
            ctlimit::Limit::Same => {}
            ctlimit::Limit::Set(g) => {
                let line = g.restore()?;
                out.limits.push(format!("{}: {line}", node.name));
                if let Some(kernel) = ctlimit::global_buckets()
                    .ok()
                    .filter(|&b| b != node.ct_buckets)
                {
                    out.limits.push(format!(
                        "{}: nf_conntrack_buckets: podnet {}, kernel {kernel} (global, a page \
                         of buckets at least, siphash with a random seed); early drop evicted \
                         {} entries in podnet, {} in the kernel",
                        node.name, node.ct_buckets, early_drop.0, early_drop.1
                    ));
                    if early_drop != (0, 0) {
                        // Which entries early drop evicts, and whether it finds one in the 8
                        // buckets from the new tuple's, is the hash's doing.
                        let reason = format!(
                            "early drop ran (podnet evicted {}, the kernel {}) over hash \
                             tables that differ by nature (podnet {} buckets and its own \
                             hash, the kernel {kernel} and siphash with a random seed): which \
                             entries it evicts, and whether it finds any, depends on the hash",
                            early_drop.0, early_drop.1, node.ct_buckets
                        );
                        for d in &mut out.disagreements[first..] {
                            if d.kind != Kind::Rules {
                                d.known = Some(reason.clone());
                            }
                        }
                    }
                }
            }
            ctlimit::Limit::Refused(why) => {
                let kernel = ctlimit::global_max().unwrap_or(0);
                let reason = format!(
                    "the node's conntrack table holds {} entries in podnet, {kernel} in the \
                     kernel: nf_conntrack_max was not set ({why})",
                    node.ct_max
                );
                out.limits.push(format!("{}: {reason}", node.name));
                for d in &mut out.disagreements[first..] {
                    if d.kind != Kind::Rules {
                        d.known = Some(reason.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

fn disagree(out: &mut Outcome, kind: Kind, node: &str, text: String) {
    out.disagreements.push(Disagreement {
        kind,
        node: node.to_string(),
        text,
        known: None,
    });
}

#[allow(clippy::too_many_lines)]
fn replay_node(
    plan: &Plan,
    node: &NodePlan,
    node_ns: &str,
    wire_ns: &str,
    wires: &[String],
    settings: &Settings,
    out: &mut Outcome,
) -> Result<NodeFigures, String> {
    let mut fig = NodeFigures {
        timer_frames: node.timer_sent.len(),
        ..NodeFigures::default()
    };
    let name = node.name.as_str();

    // The rules as the kernel lists them back, against podnet's text.
    compare_rules(plan.mode, node, node_ns, &mut fig, out)?;

    // Sockets on the wire ends.
    let socks: Vec<PacketSocket> = {
        let _g = sys::enter_netns(wire_ns).map_err(|e| format!("setns {wire_ns}: {e}"))?;
        wires
            .iter()
            .map(|w| PacketSocket::open(w).map_err(|e| format!("{wire_ns}: AF_PACKET on {w}: {e}")))
            .collect::<Result<_, _>>()?
    };
    let sock_of: BTreeMap<&str, usize> = wires
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    let all: Vec<&PacketSocket> = socks.iter().collect();

    // Harness rules: a connection's first occurrence is loaded up front; a tuple that comes
    // back with another choice gets its rule just before its frame (inserted above the
    // earlier one).
    let nft_handles = if plan.mode == Mode::Nftables {
        ns_run(
            node_ns,
            "nft",
            &["-a", "list", "table", "ip", "kube-proxy"],
            None,
        )?
    } else {
        String::new()
    };
    let mut hb = HarnessBuilder::new(&node.iptables, &nft_handles);
    let mut harness: Vec<Harness> = Vec::new();
    let mut seen_choice: BTreeSet<String> = BTreeSet::new();
    let mut late_choice: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut upfront: Vec<usize> = Vec::new();
    let mut deferred: Vec<(usize, &crate::plan::Choice)> = Vec::new();
    for (si, step) in node.steps.iter().enumerate() {
        for c in &step.choices {
            let key = choice_key(c);
            // A null binding happens because of what came before (the reply tuple is taken
            // by then); the same tuple earlier was not moved, so its rule waits for its step.
            let now_only = matches!(c, crate::plan::Choice::NullBinding { .. });
            if seen_choice.insert(key) && !now_only {
                if let Some(h) = hb.rule(c) {
                    upfront.push(harness.len());
                    harness.push(h);
                }
            } else {
                deferred.push((si, c));
            }
        }
    }
    {
        let hs: Vec<&Harness> = upfront.iter().map(|&i| &harness[i]).collect();
        load_harness(node_ns, &hs)?;
    }
    for (si, c) in deferred {
        if let Some(h) = hb.rule(c) {
            late_choice.entry(si).or_default().push(harness.len());
            harness.push(h);
        }
    }
    for u in &hb.unforced {
        out.notes.push(format!(
            "{name}: random choice not forced on the kernel: {u}"
        ));
    }
    fig.harness = harness.len();

    let mut extras: Vec<Extra> = Vec::new();
    let mut bad: BTreeSet<usize> = BTreeSet::new();
    // VXLAN outer source ports: podnet's -> the kernel's (a flow hash with a random seed).
    let mut vxlan_ports: BTreeMap<u16, u16> = BTreeMap::new();
    let mut ct_seen: BTreeSet<Tuple> = BTreeSet::new();
    for (si, step) in node.steps.iter().enumerate() {
        if sys::interrupted() {
            return Err("interrupted".into());
        }
        fig.frames += 1;
        // Frames that came after the previous step's grace period belong to it.
        let late = collect(&all, wires, 0, Duration::ZERO, Duration::ZERO)?;
        for (dev, f) in late {
            extras.push(Extra {
                step: si.saturating_sub(1),
                dev,
                frame: f,
            });
        }
        // Timers: an entry podnet created anew for a tuple it had tracked before had expired
        // in podnet's virtual time; the replay runs in milliseconds, so the kernel forgets
        // it too.
        for t in &step.ct_new {
            if !ct_seen.insert(*t) && forget(node_ns, t)? {
                fig.ct_forgotten += 1;
            }
        }
        if let Some(hs) = late_choice.get(&si) {
            let hs: Vec<&Harness> = hs.iter().map(|&i| &harness[i]).collect();
            load_harness(node_ns, &hs)?;
        }
        let Some(&sock) = sock_of.get(step.dev.as_str()) else {
            return Err(format!("{name}: no wire {}", step.dev));
        };
        socks[sock]
            .send(&step.frame)
            .map_err(|e| format!("{name}: injecting on {}: {e}", step.dev))?;

        // podnet's answer, without the ARP requests it needed (the kernel has permanent
        // neighbours). When the ingress frame is ARP (a reply releasing packets podnet
        // queued), non-ARP frames are matched against the kernel's extras instead.
        let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
        let mut released: Vec<(String, Vec<u8>)> = Vec::new();
        let own_macs = [node.cni0_mac.0, node.eth0_mac.0];
        for (dev, f) in &step.sent {
            let own = f.len() >= 14 && own_macs.iter().any(|m| f[6..12] == m[..]);
            if own && frame::arp_request_target(f).is_some() {
                fig.arp_requests_skipped += 1;
                continue;
            }
            if frame::is_arp(&step.frame) && !frame::is_arp(f) {
                released.push((dev.clone(), f.clone()));
            } else {
                expected.push((dev.clone(), f.clone()));
            }
        }
        fig.answers += expected.len() + released.len();
        let got = collect(
            &all,
            wires,
            expected.len(),
            settings.grace,
            settings.timeout,
        )?;
        if settings.verbose {
            for (d, f) in &got {
                println!("      kernel sent on {d}: {}", frame::tcpdump_line(f));
            }
        }

        let ok = compare_step(
            name,
            si,
            step,
            &expected,
            got,
            &mut extras,
            &mut vxlan_ports,
            out,
        );
        // Packets podnet released after ARP: the kernel sent them when their frame came in.
        let mut released_ok = true;
        for (dev, f) in released {
            let found = match_released(&dev, &f, &extras, |s| node.steps[s].frame.as_slice());
            if let Some((p, true, _)) = found {
                let e = extras.remove(p);
                note_vxlan_port(&f, &e.frame, &mut vxlan_ports);
            } else if let Some((p, false, mask)) = found {
                // The same packet (same addresses, ports, lengths): it differs in detail.
                released_ok = false;
                let e = extras.remove(p);
                note_vxlan_port(&f, &e.frame, &mut vxlan_ports);
                disagree(
                    out,
                    Kind::Frame,
                    name,
                    format!(
                        "frame #{} on {} {}\n    podnet: on {dev} (after ARP resolved at frame #{si}): {}\n    kernel: on {dev}: {}\n    differs: {}",
                        e.step,
                        node.steps[e.step].dev,
                        frame::tcpdump_line(&node.steps[e.step].frame),
                        frame::tcpdump_line(&f),
                        frame::tcpdump_line(&e.frame),
                        frame::describe_diff(&f, &e.frame, &mask)
                    ),
                );
                bad.insert(e.step);
            } else {
                released_ok = false;
                disagree(
                    out,
                    Kind::Frame,
                    name,
                    format!(
                        "after frame #{si} {} (ARP resolved), podnet sent on {dev}: {}\n    kernel: never sent it",
                        frame::tcpdump_line(&step.frame),
                        frame::tcpdump_line(&f)
                    ),
                );
            }
        }
        if !(ok && released_ok) {
            bad.insert(si);
        }
        if settings.verbose {
            for (d, f) in &step.sent {
                println!("      podnet sent on {d}: {}", frame::tcpdump_line(f));
            }
            println!(
                "  {name} #{si} {} {}: {}",
                step.dev,
                frame::tcpdump_line(&step.frame),
                if ok { "same" } else { "DIFFERENT" }
            );
        }
    }
    let late = collect(&all, wires, 0, settings.grace, settings.grace)?;
    for (dev, f) in late {
        extras.push(Extra {
            step: node.steps.len().saturating_sub(1),
            dev,
            frame: f,
        });
    }
    for e in extras {
        let step = &node.steps[e.step];
        bad.insert(e.step);
        disagree(
            out,
            Kind::Frame,
            name,
            format!(
                "frame #{} on {} {}\n    podnet: sent nothing like it\n    kernel: on {}: {}",
                e.step,
                step.dev,
                frame::tcpdump_line(&step.frame),
                e.dev,
                frame::tcpdump_line(&e.frame)
            ),
        );
    }

    fig.frames_agreed = fig.frames - bad.len();
    fig.connections = node.steps.iter().map(|s| s.ct_new.len()).sum();
    compare_conntrack(node, node_ns, &vxlan_ports, &mut fig, out)?;
    compare_counters(plan.mode, node, node_ns, &harness, &mut fig, out)?;
    Ok(fig)
}

/// Which of the kernel's unexplained frames (`extras`) is the frame `f` podnet sent on `dev`
/// once ARP resolved: its index, whether it is identical outside the mask (else it is the same
/// packet of the same flow, different in detail), and the mask. Each candidate is masked for
/// the frame that made the kernel send it (`ingress(step)`), which is the frame that caused
/// podnet's too: a reset or ICMP error the node built in answer to it has its IP ID masked.
fn match_released<'a>(
    dev: &str,
    f: &[u8],
    extras: &[Extra],
    ingress: impl Fn(usize) -> &'a [u8],
) -> Option<(usize, bool, Mask)> {
    let mask_of = |e: &Extra| Mask::for_frame(f, ingress(e.step));
    let candidates = || extras.iter().enumerate().filter(|(_, e)| e.dev == dev);
    candidates()
        .find_map(|(i, e)| {
            let m = mask_of(e);
            m.equal(f, &e.frame).then_some((i, true, m))
        })
        .or_else(|| {
            candidates().find_map(|(i, e)| {
                let m = mask_of(e);
                m.same_flow(f, &e.frame).then_some((i, false, m))
            })
        })
}

/// One choice's identity: same kind, chain and tuple.
fn choice_key(c: &crate::plan::Choice) -> String {
    use crate::plan::Choice::*;
    match c {
        IptJump { chain, tuple, .. } | NftGoto { chain, tuple, .. } => {
            format!("jump {chain} {tuple}")
        }
        IptMasq { chain, tuple, .. } | NftMasq { chain, tuple, .. } => {
            format!("masq {chain} {tuple}")
        }
        PolicyDrop { hook, tuple, .. } => format!("policy {hook} {tuple}"),
        NullBinding { tuple, .. } => format!("null {tuple}"),
    }
}

fn load_harness(node_ns: &str, hs: &[&Harness]) -> Result<(), String> {
    if hs.is_empty() {
        return Ok(());
    }
    let (ipt, nft) = rules::harness_inputs(hs);
    if !ipt.is_empty() {
        ns_run(node_ns, "iptables-restore", &["--noflush"], Some(&ipt))
            .map_err(|e| format!("loading harness rules: {e}\n{ipt}"))?;
    }
    if !nft.is_empty() {
        ns_run(node_ns, "nft", &["-f", "-"], Some(&nft))
            .map_err(|e| format!("loading harness rules: {e}\n{nft}"))?;
    }
    Ok(())
}

/// `conntrack -D` of entries with original tuple `t`; whether one was there.
fn forget(node_ns: &str, t: &Tuple) -> Result<bool, String> {
    let proto = t.proto.to_string();
    let (src, dst) = (t.src.to_string(), t.dst.to_string());
    let (sp, dp) = (t.sport.to_string(), t.dport.to_string());
    let mut args = vec!["-D", "-p", &proto, "-s", &src, "-d", &dst];
    if matches!(t.proto, 6 | 17) {
        args.extend(["--sport", &sp, "--dport", &dp]);
    }
    Ok(ns_run(node_ns, "conntrack", &args, None).is_ok())
}

/// Reads frames from every socket: at least `want` (waiting up to `timeout`), then until
/// nothing arrives for `grace`.
fn collect(
    socks: &[&PacketSocket],
    wires: &[String],
    want: usize,
    grace: Duration,
    timeout: Duration,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut got = Vec::new();
    let start = Instant::now();
    loop {
        // Whatever is already queued.
        let mut any = false;
        for (i, s) in socks.iter().enumerate() {
            while let Some(f) = s
                .recv()
                .map_err(|e| format!("capture on {}: {e}", wires[i]))?
            {
                got.push((wires[i].clone(), f));
                any = true;
            }
        }
        if any {
            continue;
        }
        let wait = if got.len() < want {
            match timeout.checked_sub(start.elapsed()) {
                Some(left) => left,
                None => return Ok(got),
            }
        } else {
            grace
        };
        if wait.is_zero() {
            return Ok(got);
        }
        let ready =
            sys::poll_readable(socks, wait.as_micros() as u64).map_err(|e| format!("poll: {e}"))?;
        if ready.is_empty() && got.len() >= want {
            return Ok(got);
        }
    }
}

/// Compares podnet's answer to one frame with the kernel's; kernel frames not explained are
/// kept in `extras` (podnet may send them later, after ARP). True when they agree.
#[allow(clippy::too_many_arguments)]
fn compare_step(
    node: &str,
    si: usize,
    step: &Step,
    expected: &[(String, Vec<u8>)],
    mut got: Vec<(String, Vec<u8>)>,
    extras: &mut Vec<Extra>,
    vxlan_ports: &mut BTreeMap<u16, u16>,
    out: &mut Outcome,
) -> bool {
    let mut missing: Vec<(String, Vec<u8>, Mask)> = Vec::new();
    for (dev, f) in expected {
        let mask = Mask::for_frame(f, &step.frame);
        match got.iter().position(|(d, g)| d == dev && mask.equal(f, g)) {
            Some(p) => {
                let (_, g) = got.remove(p);
                note_vxlan_port(f, &g, vxlan_ports);
            }
            None => missing.push((dev.clone(), f.clone(), mask)),
        }
    }
    let mut ok = true;
    let head = format!(
        "frame #{si} on {} {}",
        step.dev,
        frame::tcpdump_line(&step.frame)
    );
    for (dev, f, mask) in missing {
        ok = false;
        // The kernel frame on the same wire, if any, differs from it: say where.
        // The kernel frame on the same wire for the same flow, else any on that wire.
        let same = got
            .iter()
            .position(|(d, g)| *d == dev && mask.same_flow(&f, g))
            .or_else(|| got.iter().position(|(d, _)| *d == dev));
        if let Some(p) = same {
            let (_, g) = got.remove(p);
            note_vxlan_port(&f, &g, vxlan_ports);
            disagree(
                out,
                Kind::Frame,
                node,
                format!(
                    "{head}\n    podnet: on {dev}: {}\n    kernel: on {dev}: {}\n    differs: {}",
                    frame::tcpdump_line(&f),
                    frame::tcpdump_line(&g),
                    frame::describe_diff(&f, &g, &mask)
                ),
            );
        } else if let Some((gd, g)) = got.first().cloned() {
            got.remove(0);
            disagree(
                out,
                Kind::Frame,
                node,
                format!(
                    "{head}\n    podnet: on {dev}: {}\n    kernel: on {gd}: {}",
                    frame::tcpdump_line(&f),
                    frame::tcpdump_line(&g)
                ),
            );
        } else {
            let why = if step.dropped.is_empty() {
                String::new()
            } else {
                format!(" (podnet also dropped: {})", step.dropped.join("; "))
            };
            disagree(
                out,
                Kind::Frame,
                node,
                format!(
                    "{head}\n    podnet: on {dev}: {}\n    kernel: sent nothing{why}",
                    frame::tcpdump_line(&f)
                ),
            );
        }
    }
    for (dev, f) in got {
        extras.push(Extra {
            step: si,
            dev,
            frame: f,
        });
        // Decided later (podnet may send it after ARP); count the frame as not agreeing
        // then.
    }
    ok
}

/// Records podnet's and the kernel's outer source port of one VXLAN packet.
fn note_vxlan_port(podnet: &[u8], kernel: &[u8], map: &mut BTreeMap<u16, u16>) {
    if let (Some(p), Some(k)) = (frame::vxlan_sport(podnet), frame::vxlan_sport(kernel)) {
        map.insert(p, k);
    }
}

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

fn compare_conntrack(
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
    for (k, v) in podnet {
        let mut kv = sum.get(k).copied().unwrap_or(0);
        if k == "found" {
            kv += 2 * forced_null;
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

fn compare_rules(
    mode: Mode,
    node: &NodePlan,
    node_ns: &str,
    fig: &mut NodeFigures,
    out: &mut Outcome,
) -> Result<(), String> {
    let name = node.name.as_str();
    let mut pairs: Vec<(&str, Vec<String>, Vec<String>)> = Vec::new();
    if !node.iptables.trim().is_empty() {
        let kernel = ns_run(node_ns, "iptables-save", &[], None)?;
        let mut k = rules::normalize_ipt(&kernel);
        let p = rules::normalize_ipt(&node.iptables);
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
        if let Some(nft) = &node.nft {
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
                format!("{what}: same lines, in another order"),
            );
            continue;
        }
        let mut text = format!("{what}: the kernel lists the rules differently");
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

fn compare_counters(
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
    if !node.iptables.trim().is_empty() {
        let save_c = ns_run(node_ns, "iptables-save", &["-c"], None)?;
        kernel.extend(rules::kernel_ipt_counters(
            &save_c,
            harness,
            &IptRules::parse(&node.iptables),
        ));
    }
    if mode == Mode::Nftables {
        if let Some(plain) = &node.nft {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::ETH;

    /// A TCP segment 10.0.0.2:40000 > 192.168.1.100:30081 (or the node's reset back), IP ID
    /// `id`, with a valid IP header checksum.
    fn tcp(from_client: bool, flags: u8, id: u16) -> Vec<u8> {
        let mut f = vec![0u8; ETH + 40];
        f[12] = 0x08;
        f[ETH] = 0x45;
        f[ETH + 3] = 40;
        f[ETH + 4..ETH + 6].copy_from_slice(&id.to_be_bytes());
        f[ETH + 8] = 64;
        f[ETH + 9] = 6;
        let (client, node) = ([10, 0, 0, 2], [192, 168, 1, 100]);
        let (src, dst, sport, dport) = if from_client {
            (client, node, 40000u16, 30081u16)
        } else {
            (node, client, 30081, 40000)
        };
        f[ETH + 12..ETH + 16].copy_from_slice(&src);
        f[ETH + 16..ETH + 20].copy_from_slice(&dst);
        let mut sum = 0u32;
        for i in (0..20).step_by(2) {
            sum += u32::from(u16::from_be_bytes([f[ETH + i], f[ETH + i + 1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[ETH + 10..ETH + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f[ETH + 20..ETH + 22].copy_from_slice(&sport.to_be_bytes());
        f[ETH + 22..ETH + 24].copy_from_slice(&dport.to_be_bytes());
        f[ETH + 32] = 0x50;
        f[ETH + 33] = flags;
        f
    }

    #[test]
    fn a_reset_sent_after_arp_has_its_ip_id_masked_for_the_frame_that_caused_it() {
        // Frame #3 (the client's SYN) made the kernel send a reset at once; podnet sent the
        // same reset once ARP resolved, with another IP ID.
        let steps = [
            tcp(false, 0x10, 7),
            tcp(false, 0x10, 8),
            tcp(false, 0x10, 9),
            tcp(true, 0x02, 0x1111),
        ];
        let podnet = tcp(false, 0x14, 0);
        let kernel = tcp(false, 0x14, 0x4242);
        let extras = [Extra {
            step: 3,
            dev: "eth0".into(),
            frame: kernel.clone(),
        }];
        let found = match_released("eth0", &podnet, &extras, |s| steps[s].as_slice());
        assert!(matches!(found, Some((0, true, _))));
        // Not on another wire.
        assert!(
            match_released("veth00000000", &podnet, &extras, |s| steps[s].as_slice()).is_none()
        );
        // Without the frame that caused it (as before), the IP ID and checksum differ.
        let found = match_released("eth0", &podnet, &extras, |_| &[][..]);
        let Some((0, false, mask)) = found else {
            panic!("{found:?}", found = found.map(|(i, eq, _)| (i, eq)));
        };
        assert!(frame::describe_diff(&podnet, &kernel, &mask).contains("IP ID"));
        // A frame that is not the node's own answer to its sender keeps its IP ID compared:
        // the client's SYN forwarded unchanged is not node-built.
        let fwd = tcp(true, 0x02, 0x1111);
        let mut fwd_k = fwd.clone();
        fwd_k[ETH + 4] = 0x22;
        let extras = [Extra {
            step: 3,
            dev: "eth0".into(),
            frame: fwd_k,
        }];
        let found = match_released("eth0", &fwd, &extras, |s| steps[s].as_slice());
        assert!(matches!(found, Some((0, false, _))));
    }
}
