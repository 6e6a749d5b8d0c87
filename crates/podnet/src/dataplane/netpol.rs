//! NetworkPolicy in the dataplane: the verdict on a new connection (egress for this node's
//! pods as sources, ingress as destinations), the flows it denied, and Cilium's identity and
//! L7-proxy marks.

use alloc::format;

use super::{Dataplane, DeniedFlow};
use crate::conntrack::Tuple;
use crate::netfilter::{HookCtx, Notes, Verdict};
use crate::policy::{self, World};

impl Dataplane {
    /// Cilium: the source's identity in the CT entry, and the redirect to the L7 proxy when
    /// the policy check asked for it.
    pub(super) fn cilium_marks(&mut self, ctx: &HookCtx<'_>, t: &Tuple, notes: &mut Notes) {
        let l7 = core::mem::take(&mut self.l7_pending);
        let Some((node, world)) = &self.policy else {
            return;
        };
        let Some(engine) = &world.cilium else { return };
        let id = engine.identity_of(world, t.src, *node);
        let Some(b) = self.bpf.as_deref_mut() else {
            return;
        };
        b.set_src_identity(t, id);
        if l7 {
            b.redirect_to_proxy(t);
            if ctx.explain {
                notes.push(format!(
                    "bpf: policy verdict REDIRECTED: to the node's L7 proxy (TPROXY: the packet is not rewritten; the proxy's socket gets {}:{} as its local address)",
                    t.dst, t.dport
                ));
            }
        }
    }

    /// Sets the NetworkPolicies to enforce on node `node` (`None`: enforce none).
    pub fn set_policies(&mut self, node: u32, world: Option<World>) {
        self.policy = world.map(|w| (node, w));
        if self.policy.is_some() && !self.events_indexed {
            // From now on a connection may be denied: its new connections are looked up.
            self.events_indexed = true;
            for (i, e) in self.events.iter().enumerate() {
                self.events_by_orig
                    .insert(super::tuple_key(&e.orig), i as u32);
            }
        }
    }

    /// New connections NetworkPolicies dropped here, in order.
    pub fn denied(&self) -> &[DeniedFlow] {
        &self.denied
    }

    /// The last of the denied flows whose ORIGINAL tuple is one of `origs` for which `pick`
    /// holds, with its position in [`Dataplane::denied`].
    pub fn last_denied_from(
        &self,
        origs: &[Tuple],
        mut pick: impl FnMut(&DeniedFlow) -> bool,
    ) -> Option<(usize, &DeniedFlow)> {
        origs
            .iter()
            .filter_map(|&o| {
                self.denied_by_orig
                    .with(super::tuple_key(&o))
                    .rev()
                    .map(|i| i as usize)
                    .find(|&i| self.denied.get(i).is_some_and(|d| d.orig == o && pick(d)))
            })
            .max()
            .and_then(|i| Some((i, self.denied.get(i)?)))
    }

    /// NetworkPolicy for a NEW connection (the packet after DNAT): egress when the source is
    /// a pod of this node, ingress when the destination is.
    pub(super) fn policy_check(
        &mut self,
        ctx: &HookCtx<'_>,
        orig: Option<Tuple>,
        t: &Tuple,
        notes: &mut Notes,
    ) -> Verdict {
        let Some((node, world)) = &self.policy else {
            return Verdict::Accept;
        };
        let flow = policy::Flow {
            src: t.src,
            dst: t.dst,
            proto: t.proto,
            dport: t.dport,
        };
        let local = |ip| world.pods.get(&ip).is_some_and(|p| p.node == *node);
        let mut checks = alloc::vec::Vec::new();
        self.l7_pending = false;
        if local(t.src) {
            checks.push(world.egress(&flow));
        }
        if local(t.dst) {
            checks.push(world.ingress(&flow));
        }
        for v in checks {
            if ctx.explain {
                let what = if world.cilium.is_some() {
                    "policy"
                } else {
                    "NetworkPolicy"
                };
                notes.push(format!("{what}: {}", v.reason));
                notes.extend(v.details.iter().map(|d| format!("{what}: {d}")));
            }
            self.l7_pending |= v.allowed && v.l7.is_some();
            if !v.allowed {
                let orig = orig.unwrap_or_else(|| {
                    self.cur
                        .and_then(|c| c.info.entry)
                        .map(|i| self.ct.entry(i).tuple(0))
                        .unwrap_or(*t)
                });
                self.denied_by_orig
                    .insert(super::tuple_key(&orig), self.denied.len() as u32);
                self.denied.push(DeniedFlow {
                    at: ctx.now,
                    orig,
                    judged: *t,
                    reason: v.reason.clone(),
                });
                let what = if world.cilium.is_some() {
                    "Policy denied"
                } else {
                    "NetworkPolicy"
                };
                return Verdict::Drop(format!("{what}: {}", v.reason).into());
            }
        }
        Verdict::Accept
    }
}
