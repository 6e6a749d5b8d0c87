//! The replay: every node of a plan built as namespaces, its received frames injected in
//! order, what the kernel emitted captured and compared with what podnet sent; then conntrack
//! tables, conntrack counters, rules and per-rule packet counters.

mod frames;
mod race;
mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use podnet::conntrack::Tuple;

use crate::ctlimit;
use crate::frame;
use crate::netns::{self, ns_run, Namespaces};
use crate::plan::{Mode, NodePlan, Plan, Rules};
use crate::rules::{self, Harness, HarnessBuilder};
use crate::sys::{self, PacketSocket};

use frames::{collect, compare_step, match_released, note_vxlan_port};
use tables::{compare_conntrack, compare_counters, compare_rules};

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
    let mut out = Outcome {
        notes: plan.notes.clone(),
        ..Outcome::default()
    };
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
    compare_rules(plan.mode, node, &node.rules, "", node_ns, &mut fig, out)?;

    // Sockets on the wire ends.
    let socks: Vec<PacketSocket> = {
        let _g = sys::enter_netns(wire_ns).map_err(|e| format!("setns {wire_ns}: {e}"))?;
        wires
            .iter()
            .map(|w| PacketSocket::open(w).map_err(|e| format!("{wire_ns}: AF_PACKET on {w}: {e}")))
            .collect::<Result<_, _>>()?
    };
    let gso_socks: Vec<sys::GsoSender> = {
        let _g = sys::enter_netns(wire_ns).map_err(|e| format!("setns {wire_ns}: {e}"))?;
        wires
            .iter()
            .map(|w| {
                sys::GsoSender::open(w).map_err(|e| format!("{wire_ns}: GSO sender on {w}: {e}"))
            })
            .collect::<Result<_, _>>()?
    };
    let sock_of: BTreeMap<&str, usize> = wires
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    let all: Vec<&PacketSocket> = socks.iter().collect();

    // Harness rules: within the steps that meet the same rules (all of them, unless kube-proxy
    // re-synced during the run), a connection's first occurrence is loaded up front; a tuple
    // that comes back with another choice gets its rule just before its frame (inserted above
    // the earlier one).
    let mut hb = HarnessBuilder::new(&node.rules.iptables, &nft_listing(plan.mode, node_ns)?);
    let mut harness: Vec<Harness> = Vec::new();
    let mut late_choice: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let first_end = node
        .resyncs
        .first()
        .map_or(node.steps.len(), |r| r.before_step);
    let upfront = plan_harness(node, 0..first_end, &mut hb, &mut harness, &mut late_choice);
    load_harness(
        node_ns,
        &upfront.iter().map(|&i| &harness[i]).collect::<Vec<_>>(),
    )?;
    let mut next_resync = 0;

    // Races: a raced step `l` and the latest step `w` before it that created an entry of the
    // same tuple (the one its lookup could not see), with no re-sync between them, replay
    // with both held (see `race`): `l` is injected right after `w` (the steps between are
    // other flows of the same few microseconds) and released at its own turn.
    let (race_pairs, held) = race::pairs(node);
    // Without NFQUEUE in this kernel (nfnetlink_queue, the xt NFQUEUE target), the races
    // replay one after the other, and the run says so.
    let mut racer = match race_pairs.is_empty() {
        true => None,
        false => match race::Racer::open(node_ns).and_then(|r| r.hold(&held).map(|()| r)) {
            Ok(r) => Some(r),
            Err(e) => {
                out.notes.push(format!(
                    "{name}: no NFQUEUE ({e}): its {} races replayed one after the other",
                    race_pairs.len()
                ));
                None
            }
        },
    };
    // Raced steps already injected, with their packet held (None: it was not held).
    let mut raced: Vec<(usize, Option<race::Held>)> = Vec::new();
    // Entries the kernel inserted by their reply tuple for one second of wall clock (a UDP
    // clash with other NAT), when: a reply that comes later in the replay finds none, where
    // podnet's virtual second is not over. Said in a note, not hidden.
    let mut clash_entries: Vec<(Tuple, std::time::Instant, podnet::Instant)> = Vec::new();
    let race_wait = settings.timeout.max(Duration::from_millis(500));

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
        let frame_tuple = (!clash_entries.is_empty())
            .then(|| frame::hooked_ip(&step.frame).and_then(frame::ip_tuple))
            .flatten();
        if let Some(t) = frame_tuple {
            for (c, at, virt) in &clash_entries {
                let reply = t.proto == c.proto && t.dst == c.src && t.dport == c.sport;
                let alive = step.time < *virt + podnet::Duration::from_secs(1);
                if reply && alive && at.elapsed() >= Duration::from_millis(900) {
                    out.notes.push(format!(
                        "{name}: frame #{si} answers {c}, whose clash entry the kernel keeps \
                         for 1 s of wall clock: {:.2} s have passed in the replay, {} in \
                         podnet's virtual time, so the kernel may have let it go",
                        at.elapsed().as_secs_f64(),
                        step.time - *virt
                    ));
                }
            }
        }
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
        // Not so for an entry podnet created because its lookup could not see the live one
        // (another CPU was confirming it): the kernel's is live.
        for t in &step.ct_new {
            if !ct_seen.insert(*t) && !step.raced && forget(node_ns, t)? {
                fig.ct_forgotten += 1;
            }
        }
        // kube-proxy re-synced before this frame: the kernel gets the new rules the way
        // kube-proxy writes them, then this stretch's harness rules.
        while let Some(r) = node
            .resyncs
            .get(next_resync)
            .filter(|r| r.before_step == si)
        {
            let prev = match next_resync {
                0 => &node.rules,
                i => &node.resyncs[i - 1].rules,
            };
            next_resync += 1;
            if r.flush_conntrack {
                ns_run(node_ns, "conntrack", &["-F"], None)
                    .map_err(|e| format!("{name}: the conntrack flush at {}: {e}", r.time))?;
            }
            for d in &r.detach {
                netns::detach_port(node_ns, d)?;
            }
            for d in &r.attach {
                netns::attach_port(node, node_ns, d)?;
            }
            let flushed = resync(plan.mode, node_ns, prev, &r.rules)
                .map_err(|e| format!("{name}: the re-sync at {}: {e}", r.time))?;
            let when = format!(" after the re-sync at {}", r.time);
            compare_rules(plan.mode, node, &r.rules, &when, node_ns, &mut fig, out)?;
            hb.resync(
                &r.rules.iptables,
                &nft_listing(plan.mode, node_ns)?,
                &flushed,
            );
            let end = node
                .resyncs
                .get(next_resync)
                .map_or(node.steps.len(), |r| r.before_step);
            let up = plan_harness(node, si..end, &mut hb, &mut harness, &mut late_choice);
            load_harness(
                node_ns,
                &up.iter().map(|&i| &harness[i]).collect::<Vec<_>>(),
            )?;
        }
        let inject = |si: usize| -> Result<(), String> {
            let step = &node.steps[si];
            if let Some(hs) = late_choice.get(&si) {
                let hs: Vec<&Harness> = hs.iter().map(|&i| &harness[i]).collect();
                load_harness(node_ns, &hs)?;
            }
            let Some(&sock) = sock_of.get(step.dev.as_str()) else {
                return Err(format!("{name}: no wire {}", step.dev));
            };
            match crate::gso::vnet_packet(&step.frame) {
                Some((hdr, frame)) => gso_socks[sock].send(&hdr, &frame),
                None => socks[sock].send(&step.frame),
            }
            .map_err(|e| format!("{name}: injecting on {}: {e}", step.dev))
        };
        if let Some(p) = raced.iter().position(|r| r.0 == si) {
            // A raced packet, injected and held with the one its lookup missed: it goes on.
            let (_, held) = raced.remove(p);
            let rc = racer.as_mut().ok_or("no NFQUEUE")?;
            if let Some(h) = held {
                rc.release(h)?;
            }
            if step.clash_reply_only {
                if let Some(t) = step.ct_new.first() {
                    clash_entries.push((*t, std::time::Instant::now(), step.time));
                }
            }
        } else if let (Some(&l), Some(rc)) = (race_pairs.get(&si), racer.as_mut()) {
            inject(si)?;
            let w = rc.wait(race_wait)?;
            inject(l)?;
            let lh = rc.wait(race_wait)?;
            if w.is_none() || lh.is_none() {
                out.notes.push(format!(
                    "{name}: the race of frames #{si} and #{l} was not held in the kernel \
                     ({} held): replayed one after the other",
                    match (w.is_some(), lh.is_some()) {
                        (true, _) => "only the first",
                        (_, true) => "only the second",
                        _ => "neither",
                    }
                ));
            }
            if let Some(h) = w {
                rc.release(h)?;
            }
            raced.push((l, lh));
        } else {
            inject(si)?;
        }

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

    for u in &hb.unforced {
        out.notes.push(format!(
            "{name}: random choice not forced on the kernel: {u}"
        ));
    }
    fig.harness = harness.len();
    fig.frames_agreed = fig.frames - bad.len();
    fig.connections = node.steps.iter().map(|s| s.ct_new.len()).sum();
    compare_conntrack(node, node_ns, &vxlan_ports, &mut fig, out)?;
    compare_counters(plan.mode, node, node_ns, &harness, &mut fig, out)?;
    Ok(fig)
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

/// Builds the harness rules for the choices of `steps` (which meet the same rules): the
/// indices in `harness` of those to load now; the others go to `late` under their step.
fn plan_harness(
    node: &NodePlan,
    steps: std::ops::Range<usize>,
    hb: &mut HarnessBuilder,
    harness: &mut Vec<Harness>,
    late: &mut BTreeMap<usize, Vec<usize>>,
) -> Vec<usize> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut upfront = Vec::new();
    let mut deferred: Vec<(usize, &crate::plan::Choice)> = Vec::new();
    for si in steps {
        for c in &node.steps[si].choices {
            // A null binding happens because of what came before (the reply tuple is taken
            // by then); the same tuple earlier was not moved, so its rule waits for its step.
            let now_only = matches!(c, crate::plan::Choice::NullBinding { .. });
            if seen.insert(choice_key(c)) && !now_only {
                if let Some(h) = hb.rule(c) {
                    upfront.push(harness.len());
                    harness.push(h);
                }
            } else {
                deferred.push((si, c));
            }
        }
    }
    for (si, c) in deferred {
        if let Some(h) = hb.rule(c) {
            late.entry(si).or_default().push(harness.len());
            harness.push(h);
        }
    }
    upfront
}

/// `nft -a list table ip kube-proxy` (nftables mode; empty otherwise).
fn nft_listing(mode: Mode, node_ns: &str) -> Result<String, String> {
    if mode != Mode::Nftables {
        return Ok(String::new());
    }
    ns_run(
        node_ns,
        "nft",
        &["-a", "list", "table", "ip", "kube-proxy"],
        None,
    )
}

/// Loads a re-sync's rules as kube-proxy does: in iptables mode its `iptables-restore
/// --noflush` input, which flushes and refills the chains it declares, with the chains it
/// no longer writes flushed and deleted (`-X`, as `syncProxyRules` deletes stale chains); in
/// nftables mode its table anew (its sync flushes every chain and refills it). Returns the
/// (table, chain) pairs whose rules were replaced.
fn resync(
    mode: Mode,
    node_ns: &str,
    prev: &Rules,
    next: &Rules,
) -> Result<BTreeSet<(String, String)>, String> {
    let mut flushed = BTreeSet::new();
    if mode == Mode::Iptables && prev.restore != next.restore {
        let input = rules::restore_with_stale(&prev.restore, &next.restore, &mut flushed);
        ns_run(node_ns, "iptables-restore", &["--noflush"], Some(&input))
            .map_err(|e| format!("iptables-restore --noflush: {e}\n{input}"))?;
    } else if prev.iptables != next.iptables {
        // flannel's rules (nftables mode): not re-synced by kube-proxy; a full restore.
        ns_run(node_ns, "iptables-restore", &[], Some(&next.iptables))
            .map_err(|e| format!("iptables-restore: {e}"))?;
        for (table, chain) in rules::IptRules::parse(&prev.iptables).chains() {
            flushed.insert((table, chain));
        }
    }
    if mode == Mode::Nftables && prev.nft != next.nft {
        if let Some(nft) = next.nft_load.as_ref().or(next.nft.as_ref()) {
            let input = format!("delete table ip kube-proxy\n{}", rules::nft_loadable(nft));
            ns_run(node_ns, "nft", &["-f", "-"], Some(&input))
                .map_err(|e| format!("nft -f: {e}"))?;
        }
    }
    Ok(flushed)
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
