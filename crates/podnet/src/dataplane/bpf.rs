//! The dataplane on the eBPF datapath: the programs' CT, load balancing and NAT at a hook, then
//! NetworkPolicy and the `[NEW]` event for a new connection.

use super::{Dataplane, NewConnection};
use crate::netfilter::{Hook, HookCtx, Notes, Verdict};

impl Dataplane {
    /// The eBPF programs at one hook: CT, load balancing and NAT by the programs, then
    /// NetworkPolicy for new connections and the `[NEW]` log, as the Linux path does.
    pub(super) fn process_bpf(
        &mut self,
        ctx: &HookCtx<'_>,
        frame: &mut alloc::vec::Vec<u8>,
        l3: usize,
        notes: &mut Notes,
    ) -> Verdict {
        let Some(bpf) = self.bpf.as_deref_mut() else {
            return Verdict::Accept;
        };
        let nf = match bpf.process(ctx, frame, l3, notes) {
            crate::ebpf::datapath::Outcome::Drop(why) => return Verdict::Drop(why.into()),
            crate::ebpf::datapath::Outcome::Pass(None) => return Verdict::Accept,
            crate::ebpf::datapath::Outcome::Pass(Some(nf)) => nf,
        };
        if ctx.hook == Hook::Postrouting {
            // A new SNAT mapping: the connection's [NEW] event gets its final reply tuple.
            let ev = bpf.peek(&nf.orig).and_then(|e| e.event);
            if let Some(e) = ev.and_then(|i| self.events.get_mut(i as usize)) {
                e.reply.dst = nf.translated.src;
                e.reply.dport = nf.translated.sport;
            }
            self.stats.masquerade += 1;
            return Verdict::Accept;
        }
        self.stats.first_packets += 1;
        self.stats.last_rules_walked = 0;
        if nf.translated.dst != nf.orig.dst || nf.translated.dport != nf.orig.dport {
            self.stats.dnat += 1;
        }
        let from_proxy = self.bpf.as_deref().is_some_and(|b| b.from_proxy());
        if !from_proxy {
            if let v @ Verdict::Drop(_) =
                self.policy_check(ctx, Some(nf.orig), &nf.translated, notes)
            {
                if let Some(b) = self.bpf.as_deref_mut() {
                    b.forget(&nf);
                }
                return v;
            }
            self.cilium_marks(ctx, &nf.translated, notes);
        }
        let idx = self.push_event(NewConnection {
            at: ctx.now,
            orig: nf.orig,
            reply: nf.translated.invert(),
        });
        if let Some(b) = self.bpf.as_deref_mut() {
            b.set_event(&nf.translated, idx);
        }
        Verdict::Accept
    }
}
