//! The IPv4 packets pods sent, from a run's trace.

#![allow(dead_code)]

use podnet::trace::{EventKind, Trace};
use smoltcp::wire::Ipv4Packet;

/// Every IPv4 packet sent by an interface that `which` names (`"client/eth0"` -> `Some(x)`),
/// whole in the trace, in trace order, with what `which` made of its interface.
pub fn sent_ipv4<T>(
    trace: &Trace,
    which: impl Fn(&str) -> Option<T>,
) -> Vec<(T, Ipv4Packet<&[u8]>)> {
    trace
        .events()
        .iter()
        .filter_map(|e| {
            let EventKind::Sent { iface, frame } = &e.kind else {
                return None;
            };
            let who = which(trace.name(*iface))?;
            let ip = Ipv4Packet::new_checked(frame.bytes.get(14..)?).ok()?;
            Some((who, ip))
        })
        .collect()
}
