//! The netfilter hook walk of a node: each registered module in priority order, the verdict
//! acted on (drops recorded, rejects answered), and the hook event for the trace.

use alloc::vec::Vec;

use smoltcp::time::Instant;

use super::reply::{self, icmp_type, ETH_HDR};
use super::{Node, Output};
use crate::link::Frame;
use crate::netfilter::{Hook, HookCtx, Notes, RejectWith, Verdict};
use crate::route::Dev;
use crate::trace::Trace;

impl Node {
    /// Runs the modules at `hook`; returns whether the packet goes on. Drops and rejects are
    /// recorded and answered here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_hooks(
        &mut self,
        now: Instant,
        hook: Hook,
        in_dev: Option<Dev>,
        out_dev: Option<Dev>,
        frame: &mut Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) -> bool {
        self.run_hooks_on(now, hook, in_dev, out_dev, false, frame, out, trace)
    }

    /// [`Node::run_hooks`] for a packet that is `bridged` (br_netfilter) or routed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_hooks_on(
        &mut self,
        now: Instant,
        hook: Hook,
        in_dev: Option<Dev>,
        out_dev: Option<Dev>,
        bridged: bool,
        frame: &mut Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) -> bool {
        self.run_hooks_noted(now, hook, in_dev, out_dev, bridged, None, frame, out, trace)
    }

    /// [`Node::run_hooks_on`] with a first trace note from the node itself (what the bridge
    /// did with the packet before this hook).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_hooks_noted(
        &mut self,
        now: Instant,
        hook: Hook,
        in_dev: Option<Dev>,
        out_dev: Option<Dev>,
        bridged: bool,
        note: Option<alloc::string::String>,
        frame: &mut Frame,
        out: &mut Output,
        trace: &mut Trace,
    ) -> bool {
        let tracing = trace.wants_hooks();
        if self.hooks.is_empty() && !tracing {
            return true;
        }
        let before = if tracing {
            frame[ETH_HDR..].to_vec()
        } else {
            Vec::new()
        };
        let ctx = HookCtx {
            now,
            node: &self.name,
            node_ip: self.addrs.eth0.address(),
            hook,
            in_dev,
            out_dev,
            out_addr: out_dev.map(|d| self.addrs.addr(d)),
            local_addrs: [self.addrs.eth0.address(), self.addrs.gateway()],
            bridged,
            explain: tracing,
            csum_partial: hook == Hook::Prerouting && core::mem::take(&mut self.csum_partial),
        };
        let mut verdict = Verdict::Accept;
        let mut notes = Notes::new();
        if tracing {
            notes.extend(note);
        }
        for h in self.hooks.iter_mut() {
            verdict = h.process_frame(&ctx, frame, ETH_HDR, &mut notes);
            if verdict != Verdict::Accept {
                break;
            }
        }
        let dev = in_dev.or(out_dev).unwrap_or(Dev::Eth0);
        if tracing {
            trace.hook(
                now,
                self.iface(dev),
                hook,
                verdict.clone(),
                &before,
                &frame[ETH_HDR..],
                notes,
            );
        }
        match verdict {
            Verdict::Accept
                if hook == Hook::Prerouting
                    && self.l7_proxy.is_some()
                    && self.hooks.iter_mut().any(|h| h.take_redirect()) =>
            {
                !self.redirect_to_l7_proxy(now, frame, out, trace)
            }
            Verdict::Accept => true,
            Verdict::Drop(reason) => {
                self.drop_frame(now, dev, reason, frame, trace);
                false
            }
            Verdict::Reject(with, reason) => {
                self.drop_frame(now, dev, reason, frame, trace);
                let orig = &frame[ETH_HDR..];
                match with {
                    // `nf_send_unreach` (`icmp_send`) and `nf_send_reset` attach the
                    // rejected packet's entry to what they send.
                    RejectWith::IcmpPortUnreachable => {
                        self.icmp_error(now, orig, icmp_type::DST_UNREACHABLE, 3, true, out, trace)
                    }
                    RejectWith::IcmpHostUnreachable => {
                        self.icmp_error(now, orig, icmp_type::DST_UNREACHABLE, 1, true, out, trace)
                    }
                    RejectWith::TcpReset => {
                        let ident = self.next_ident();
                        if let Some(f) = reply::tcp_reset(orig, ident) {
                            self.attach_ct();
                            self.local_out(now, f, out, trace);
                        }
                    }
                }
                false
            }
        }
    }
}
