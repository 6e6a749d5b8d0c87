//! Running a built scenario with its faults at their virtual times.

use podnet::{Cluster, Duration, Instant, LinkConfig};

use crate::build::Index;
use crate::model::*;
use crate::Error;

/// Whether a fault starts or is undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStep {
    /// At `at`.
    Apply,
    /// At `until`.
    Undo,
}

/// One timed change of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    /// When, from time zero.
    pub at: Duration,
    /// Index into [`Scenario::faults`].
    pub fault: usize,
    /// Start or undo.
    pub step: FaultStep,
}

/// Every fault's changes in time order (ties in file order, undos before starts).
pub fn fault_events(sc: &Scenario) -> Vec<FaultEvent> {
    let mut out = Vec::new();
    for (i, f) in sc.faults.iter().enumerate() {
        out.push(FaultEvent {
            at: f.at,
            fault: i,
            step: FaultStep::Apply,
        });
        if let Some(u) = f.until {
            out.push(FaultEvent {
                at: u,
                fault: i,
                step: FaultStep::Undo,
            });
        }
    }
    out.sort_by_key(|e| (e.at, e.step == FaultStep::Apply, e.fault));
    out
}

/// Fails on the first fault the core cannot carry out yet.
pub fn check_faults(sc: &Scenario) -> Result<(), Error> {
    for f in &sc.faults {
        let what = match f.action {
            FaultAction::DeletePod { .. } => "deletePod",
            FaultAction::Scale { .. } => "scale",
            _ => continue,
        };
        return Err(Error::at(
            &f.loc,
            format!("Fault {}: {what} is not supported yet (the core cannot remove pods or change a Service's backends)", f.name),
        ));
    }
    Ok(())
}

fn link_config(base: &LinkConfig, action: &FaultAction, step: FaultStep) -> LinkConfig {
    let mut cfg = base.clone();
    if let (
        FaultAction::Link {
            loss,
            latency,
            bandwidth,
            down,
            ..
        },
        FaultStep::Apply,
    ) = (action, step)
    {
        if let Some(l) = loss {
            cfg.loss = *l;
        }
        if let Some(l) = latency {
            cfg.latency = *l;
        }
        if let Some(b) = bandwidth {
            cfg.bandwidth_bps = *b;
        }
        if *down {
            // The core has no "down" switch on a cluster link yet: every frame is lost instead.
            cfg.loss = 1.0;
        }
    }
    cfg
}

/// Carries out one fault change on the cluster.
pub fn apply_fault(
    c: &mut Cluster,
    sc: &Scenario,
    ix: &Index,
    ev: FaultEvent,
) -> Result<(), Error> {
    let f = sc.faults.get(ev.fault).ok_or_else(|| Error {
        loc: None,
        message: format!("no fault {}", ev.fault),
    })?;
    let fail = |what: &str| Error::at(&f.loc, format!("Fault {}: {what}", f.name));
    match &f.action {
        FaultAction::Link { target, .. } => {
            let cfg = link_config(&sc.config.link, &f.action, ev.step);
            let ok = match target {
                LinkTarget::Uplink(n) => c.set_uplink(ix.node_ids[*n], cfg),
                LinkTarget::Pod(p) => c.set_pod_link(ix.pod_ids[*p], cfg),
                LinkTarget::External(h) => c.set_pod_link(ix.external_ids[*h], cfg),
            };
            if !ok {
                return Err(fail("the link is gone"));
            }
        }
        FaultAction::ConntrackFlush { node } => {
            let dp = c
                .dataplane_mut(ix.node_ids[*node])
                .ok_or_else(|| fail("the node has no conntrack (proxy: none)"))?;
            dp.conntrack_mut().flush();
        }
        FaultAction::ConntrackMax { node, max } => {
            let max = if ev.step == FaultStep::Apply {
                *max
            } else {
                sc.config.conntrack.max
            };
            let dp = c
                .dataplane_mut(ix.node_ids[*node])
                .ok_or_else(|| fail("the node has no conntrack (proxy: none)"))?;
            dp.conntrack_mut().set_max(max);
        }
        FaultAction::DeletePod { .. } | FaultAction::Scale { .. } => {
            check_faults(sc)?;
        }
    }
    Ok(())
}

/// Runs until every client is done (true) or `limit` of virtual time has passed (false),
/// carrying out each fault at its time.
pub fn run(c: &mut Cluster, sc: &Scenario, ix: &Index, limit: Duration) -> Result<bool, Error> {
    check_faults(sc)?;
    let end = c.now() + limit;
    for ev in fault_events(sc) {
        let t = Instant::ZERO + ev.at;
        if t > end {
            break;
        }
        if t > c.now() && c.run_until_done(t - c.now()) {
            return Ok(true);
        }
        apply_fault(c, sc, ix, ev)?;
    }
    let rest = if end > c.now() {
        end - c.now()
    } else {
        Duration::ZERO
    };
    Ok(c.run_until_done(rest))
}
