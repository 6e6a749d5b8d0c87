//! Running a built scenario with its faults at their virtual times.
//!
//! Carrying out a fault change needs no memory of the earlier ones: a link's state at a change
//! is the scenario's link configuration with every link fault active at that moment applied in
//! file order (so overlapping windows on one link undo cleanly), and a Deployment's replicas
//! are found in the cluster by their names.
//!
//! - `deletePod` deletes the pod at once (grace period 0): it leaves every Service, and
//!   connections to it time out. No ReplicaSet brings a deleted replica back by itself; a later
//!   `scale` does.
//! - `scale` numbers a Deployment's replicas `0..`: its pods first (`NAME-0..N-1`, or the pods
//!   of its ReplicaSet in file order), then added ones `NAME-k`, replica `k` on node
//!   `k mod nodes` (a re-created replica of the file on its old node), running the first
//!   replica's programs (a DNS server with the records of build time). Scaling down deletes
//!   the highest-numbered replicas; scaling up creates the missing ones and adds them to every
//!   Service whose selector picks the template. Traffic clients run where they were started
//!   at build time: new replicas run none.
//! - `down: true` takes the link down in both directions (frames sent are dropped as
//!   `link down`).

use podnet::{Cluster, Duration, Instant, LinkConfig, NodeId, PodId};

use crate::build::{programs_with_dns, Index};
use crate::model::*;
use crate::resolve::MAX_REPLICAS;
use crate::resolve_net::selector_endpoints;
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

/// The order of fault changes: by time, undos before starts, then in file order.
fn order(at: Duration, step: FaultStep, fault: usize) -> (Duration, bool, usize) {
    (at, step == FaultStep::Apply, fault)
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
    podnet::sort::sort_by_key(&mut out, |e| order(e.at, e.step, e.fault));
    out
}

/// Fails on the first fault that cannot be carried out: a `scale` above the replicas podnet
/// simulates, or up from a Deployment with no replica to copy its pod template from.
pub fn check_faults(sc: &Scenario) -> Result<(), Error> {
    for f in &sc.faults {
        let FaultAction::Scale {
            deployment,
            replicas,
        } = f.action
        else {
            continue;
        };
        let fail = |what: String| Err(Error::at(&f.loc, format!("Fault {}: {what}", f.name)));
        if replicas > MAX_REPLICAS {
            return fail(format!(
                "scale: replicas {replicas} is more than podnet simulates ({MAX_REPLICAS})"
            ));
        }
        let Some(d) = sc.deployments.get(deployment) else {
            return fail(format!("scale: no Deployment {deployment}"));
        };
        if replicas > 0 && d.pods.is_empty() {
            return fail(format!(
                "scale: Deployment {}/{} starts with no replica, and podnet copies new replicas from the first one",
                d.namespace, d.name
            ));
        }
    }
    Ok(())
}

/// A link's configuration and down state with the link faults active at `at` (in fault-change
/// order) applied, in file order, to the scenario's link configuration.
fn link_state(
    sc: &Scenario,
    target: LinkTarget,
    at: (Duration, bool, usize),
) -> (LinkConfig, bool) {
    let mut cfg = sc.config.link.clone();
    let mut is_down = false;
    for (i, f) in sc.faults.iter().enumerate() {
        let FaultAction::Link {
            target: t,
            loss,
            latency,
            bandwidth,
            down,
        } = &f.action
        else {
            continue;
        };
        let started = order(f.at, FaultStep::Apply, i) <= at;
        let undone = f.until.is_some_and(|u| order(u, FaultStep::Undo, i) <= at);
        if *t != target || !started || undone {
            continue;
        }
        if let Some(l) = loss {
            cfg.loss = *l;
        }
        if let Some(l) = latency {
            cfg.latency = *l;
        }
        if let Some(b) = bandwidth {
            cfg.bandwidth_bps = *b;
        }
        is_down |= *down;
    }
    (cfg, is_down)
}

/// A scenario pod's id now (`None`: deleted, or scaled away).
fn pod_now(c: &Cluster, sc: &Scenario, pod: usize) -> Option<PodId> {
    c.pod_by_name(&sc.pods.get(pod)?.core_name)
}

/// The replicas of Deployment `d` that may exist: its pods and the most any `scale` asks for.
fn replica_slots(sc: &Scenario, d: usize) -> usize {
    let scaled = sc.faults.iter().filter_map(|f| match f.action {
        FaultAction::Scale {
            deployment,
            replicas,
        } if deployment == d => Some(replicas.min(MAX_REPLICAS) as usize),
        _ => None,
    });
    let pods = sc.deployments.get(d).map_or(0, |x| x.pods.len());
    scaled.fold(pods, usize::max)
}

/// The core name of replica `r` of Deployment `d`: its pod's for the replicas of the file, else
/// `NAME-r` (`NAME-r.NAMESPACE` when a Deployment of another namespace has the same name or the
/// name is taken, with `-2`, `-3`... after it if that is taken too).
fn replica_name(sc: &Scenario, d: usize, r: usize) -> Option<String> {
    let dep = sc.deployments.get(d)?;
    if let Some(p) = dep.pods.get(r) {
        return Some(sc.pods.get(*p)?.core_name.clone());
    }
    let taken = |n: &str| {
        n == "edge"
            || sc.pods.iter().any(|p| p.core_name == n)
            || sc.nodes.iter().any(|x| x.name == n)
            || sc.external.iter().any(|h| h.name == n)
    };
    let plain = format!("{}-{r}", dep.name);
    let shared = sc
        .deployments
        .iter()
        .any(|o| o.name == dep.name && o.namespace != dep.namespace);
    let base = if shared || taken(&plain) {
        format!("{plain}.{}", dep.namespace)
    } else {
        plain
    };
    let mut name = base.clone();
    let mut k = 1;
    while taken(&name) {
        k += 1;
        name = format!("{base}-{k}");
    }
    Some(name)
}

/// The replicas of Deployment `deployment` running now, in replica order (the scenario's
/// replicas and those a `scale` fault added).
pub fn replicas(c: &Cluster, sc: &Scenario, deployment: usize) -> Vec<PodId> {
    (0..replica_slots(sc, deployment))
        .filter_map(|r| c.pod_by_name(&replica_name(sc, deployment, r)?))
        .collect()
}

fn scale(c: &mut Cluster, sc: &Scenario, ix: &Index, d: usize, n: usize) -> Result<(), String> {
    let dep = sc
        .deployments
        .get(d)
        .ok_or_else(|| format!("no Deployment {d}"))?;
    let name = |r: usize| replica_name(sc, d, r).ok_or_else(|| format!("no replica {r}"));
    for r in (n..replica_slots(sc, d)).rev() {
        if let Some(id) = c.pod_by_name(&name(r)?) {
            c.remove_pod(id).map_err(|e| e.to_string())?;
        }
    }
    let template = dep.pods.first().and_then(|p| sc.pods.get(*p));
    let mut added = Vec::new();
    for r in 0..n {
        let pod_name = name(r)?;
        if c.pod_by_name(&pod_name).is_some() {
            continue;
        }
        let template = template.ok_or_else(|| {
            format!(
                "Deployment {}/{} has no replica to copy",
                dep.namespace, dep.name
            )
        })?;
        let node = match dep.pods.get(r).and_then(|p| sc.pods.get(*p)) {
            Some(p) => p.node,
            None => r % sc.nodes.len().max(1),
        };
        let node: NodeId = *ix
            .node_ids
            .get(node)
            .ok_or_else(|| format!("no node {node}"))?;
        let mut spec = crate::netpol::pod_spec(template, &pod_name, node);
        spec.programs = programs_with_dns(&template.apps, ix);
        let id = c
            .add_pod(spec)
            .map_err(|e| format!("replica {pod_name}: {e}"))?;
        added.push(id);
    }
    let Some(template) = template.filter(|_| !added.is_empty()) else {
        return Ok(());
    };
    for (i, s) in sc.services.iter().enumerate() {
        // Headless Services have no kube-proxy rules, so no backends in the core.
        let in_core = ix.cluster_ips.get(i).is_some_and(Option::is_some);
        if !in_core || selector_endpoints(s, template).is_empty() {
            continue;
        }
        let mut backends = c
            .service_backends(&s.namespace, &s.name)
            .map(<[PodId]>::to_vec)
            .unwrap_or_default();
        backends.extend(
            added
                .iter()
                .filter(|a| !backends.contains(a))
                .copied()
                .collect::<Vec<_>>(),
        );
        c.set_service_backends(&s.namespace, &s.name, backends)
            .map_err(|e| format!("Service {}/{}: {e}", s.namespace, s.name))?;
    }
    Ok(())
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
            let (cfg, down) = link_state(sc, *target, order(ev.at, ev.step, ev.fault));
            let ok = match target {
                LinkTarget::Uplink(n) => ix
                    .node_ids
                    .get(*n)
                    .is_some_and(|n| c.set_uplink(*n, cfg) && c.set_uplink_down(*n, down)),
                LinkTarget::Pod(p) => pod_now(c, sc, *p)
                    .is_some_and(|p| c.set_pod_link(p, cfg) && c.set_pod_link_down(p, down)),
                LinkTarget::External(h) => ix
                    .external_ids
                    .get(*h)
                    .is_some_and(|p| c.set_pod_link(*p, cfg) && c.set_pod_link_down(*p, down)),
            };
            if !ok {
                return Err(fail("the link is gone"));
            }
        }
        FaultAction::ConntrackFlush { node } => {
            let dp = ix
                .node_ids
                .get(*node)
                .and_then(|n| c.dataplane_mut(*n))
                .ok_or_else(|| fail("the node has no conntrack (proxy: none)"))?;
            dp.flush_conntrack();
        }
        FaultAction::ConntrackMax { node, max } => {
            let max = if ev.step == FaultStep::Apply {
                *max
            } else {
                sc.config.conntrack.max
            };
            let dp = ix
                .node_ids
                .get(*node)
                .and_then(|n| c.dataplane_mut(*n))
                .ok_or_else(|| fail("the node has no conntrack (proxy: none)"))?;
            dp.conntrack_mut().set_max(max);
        }
        FaultAction::DeletePod { .. } | FaultAction::Scale { .. } if ev.step == FaultStep::Undo => {
        }
        FaultAction::DeletePod { pod } => {
            let id =
                pod_now(c, sc, *pod).ok_or_else(|| fail("deletePod: the pod is already gone"))?;
            c.remove_pod(id)
                .map_err(|e| fail(&format!("deletePod: {e}")))?;
        }
        FaultAction::Scale {
            deployment,
            replicas,
        } => {
            check_faults(sc)?;
            scale(c, sc, ix, *deployment, *replicas as usize)
                .map_err(|e| fail(&format!("scale: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: podnet.dev/v1alpha1
kind: Cluster
metadata: {name: t}
spec:
  nodes: [{name: node-a, ip: 192.168.1.100}, {name: node-b, ip: 192.168.1.101}]
";

    fn scenario(rest: &str) -> Scenario {
        crate::load_str("t.yaml", &format!("{HEAD}{rest}"))
            .unwrap()
            .scenario
    }

    #[test]
    fn overlapping_link_windows_undo_to_what_is_still_active() {
        let sc = scenario(
            "---
apiVersion: podnet.dev/v1alpha1
kind: Fault
metadata: {name: lossy}
spec: {at: 1s, until: 3s, link: node-a/eth0, loss: 10%}
---
apiVersion: podnet.dev/v1alpha1
kind: Fault
metadata: {name: cut}
spec: {at: 2s, until: 4s, link: node-a, latency: 20ms, down: true}
",
        );
        let (mut c, ix) = crate::build(&sc).unwrap();
        let base = sc.config.link.clone();
        let a = ix.node("node-a").unwrap();
        let mut seen = Vec::new();
        for ev in fault_events(&sc) {
            apply_fault(&mut c, &sc, &ix, ev).unwrap();
            let cfg = c.uplink_config(a).unwrap();
            seen.push((
                ev.at.total_millis(),
                cfg.loss,
                cfg.latency.total_millis(),
                c.uplink_down(a).unwrap(),
            ));
        }
        let lat = base.latency.total_millis();
        assert_eq!(
            seen,
            [
                (1000, 0.1, lat, false),
                (2000, 0.1, 20, true),
                (3000, 0.0, 20, true),
                (4000, 0.0, lat, false)
            ]
        );
        assert_eq!(c.uplink_config(a), Some(&base));
    }

    #[test]
    fn added_replicas_get_names_no_one_else_has() {
        let deployment = |ns: &str| {
            format!(
                "---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: nginx}}]}}
"
            )
        };
        let sc = scenario(&format!("{}{}", deployment("default"), deployment("other")));
        let names: Vec<_> = (0..4).filter_map(|r| replica_name(&sc, 0, r)).collect();
        assert_eq!(
            names,
            [
                "web-0.default",
                "web-1.default",
                "web-2.default",
                "web-3.default"
            ]
        );
        let sc = scenario(&format!(
            "{}---
apiVersion: v1
kind: Pod
metadata: {{name: web-3}}
spec: {{containers: [{{name: c, image: busybox}}]}}
",
            deployment("default")
        ));
        let names: Vec<_> = (0..5).filter_map(|r| replica_name(&sc, 0, r)).collect();
        assert_eq!(names, ["web-0", "web-1", "web-2", "web-3.default", "web-4"]);
        assert_eq!(replica_name(&sc, 1, 0), None);
    }
}
