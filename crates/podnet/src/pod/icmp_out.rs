//! The ICMP errors a pod's stack sends: built as Linux's `__icmp_send` builds them, and held
//! to Linux's limits (`crate::node::icmp_limit`), as a Linux pod's network namespace does.

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

    /// Rebuilds the ICMP errors smoltcp sent in answer to `orig` (a frame no socket took),
    /// `tx[from..]`, as Linux's `__icmp_send` does (`crate::node::reply::icmp_error`, as the
    /// nodes send them): the original packet quoted as it arrived (smoltcp quotes a header it
    /// emits again, IP ID 0), TOS `0xc0` with the original's TOS bits, no DF. The Ethernet
    /// header stays; one Linux would not send is dropped.
    pub(super) fn linux_icmp_errors(orig: &[u8], tx: &mut Vec<Frame>, from: usize) {
        let Some(orig_ip) = orig.get(14..).filter(|_| orig.get(12..14) == Some(&[8, 0])) else {
            return;
        };
        let mut i = from;
        while i < tx.len() {
            let Some((t, code, src)) = icmp_error_of(&tx[i]) else {
                i += 1;
                continue;
            };
            match crate::node::reply::icmp_error(orig_ip, t, code, src, 0) {
                Some(mut linux) => {
                    linux[..14].copy_from_slice(&tx[i][..14]);
                    tx[i] = linux;
                    i += 1;
                }
                None => {
                    tx.remove(i);
                }
            }
        }
    }
}

/// The type, code and source of an ICMP error (destination unreachable, time exceeded,
/// parameter problem) in Ethernet frame `f`.
fn icmp_error_of(f: &[u8]) -> Option<(u8, u8, smoltcp::wire::Ipv4Address)> {
    if f.get(12..14) != Some(&[8, 0]) {
        return None;
    }
    let ip = smoltcp::wire::Ipv4Packet::new_checked(f.get(14..)?).ok()?;
    if ip.next_header() != smoltcp::wire::IpProtocol::Icmp {
        return None;
    }
    let icmp = ip.payload();
    let (t, code) = (*icmp.first()?, *icmp.get(1)?);
    matches!(t, 3 | 11 | 12).then_some((t, code, ip.src_addr()))
}
