//! The ICMP errors a pod's stack sends, held to Linux's limits (`crate::node::icmp_limit`):
//! a Linux pod's network namespace limits them as a node does.

use alloc::vec::Vec;

use smoltcp::time::Instant;

use super::Pod;
use crate::link::Frame;

impl Pod {
    /// Holds back the ICMP errors among `frames` (what [`Pod::service`] returned) that the
    /// pod's limits refuse, as a Linux pod's `icmp_send` would not send them; returns them
    /// with the reason. `limits` makes the pod's limiter on its first error (most pods never
    /// send one).
    pub(crate) fn limit_icmp(
        &mut self,
        now: Instant,
        frames: &mut Vec<Frame>,
        config: crate::node::icmp_limit::IcmpConfig,
        limits: impl FnOnce() -> crate::node::icmp_limit::IcmpLimit,
    ) -> Vec<(Frame, &'static str)> {
        use crate::node::icmp_limit::limited_error;
        if !frames
            .iter()
            .any(|f| limited_error(config.ratemask, f).is_some())
        {
            return Vec::new();
        }
        let me = self.addrs.ip.address();
        let limit = self
            .icmp
            .get_or_insert_with(|| alloc::boxed::Box::new(limits()));
        let mut refused = Vec::new();
        let mut kept = Vec::with_capacity(frames.len());
        for f in frames.drain(..) {
            let verdict = limited_error(config.ratemask, &f)
                .map(|(t, c, dst)| limit.allow(now, t, c, dst, me == dst.into()));
            match verdict {
                Some(Err(why)) => refused.push((f, why.reason())),
                _ => kept.push(f),
            }
        }
        *frames = kept;
        refused
    }
}
