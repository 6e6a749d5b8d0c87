//! Crafted frames: one frame handed to a node as if it had just come off one of its wires,
//! for tests and differential harnesses that need segments no pod's stack would send.

use super::*;

/// A wire a node is plugged into, seen from the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Wire {
    /// The veth of a pod: the host end is a port of its node's `cni0`.
    Veth(PodId),
    /// A node's uplink `eth0`.
    Uplink(NodeId),
}

impl Cluster {
    /// Hands `frame` to the node at the end of `wire` at the current virtual time, as if it
    /// had arrived there: the trace records it as received on the node's interface (the
    /// veth's host end or `eth0`) exactly like a delivered frame, the node handles it, and
    /// every frame the node emits on a wire in answer is recorded as sent and returned with
    /// its wire, in order, instead of being put on the link (the pod or the underlay at the
    /// other end never sees it). Timers the node armed are scheduled as usual.
    ///
    /// `None` when there is no such pod (or it was deleted) or node.
    pub fn inject(&mut self, wire: Wire, frame: impl Into<Frame>) -> Option<Vec<(Wire, Frame)>> {
        let frame = frame.into();
        let (node, link, node_end) = match wire {
            Wire::Veth(p) => {
                let slot = self.pods.get(p.0 as usize)?.as_ref()?;
                (slot.node, slot.link, 1)
            }
            Wire::Uplink(n) => (n, self.nodes.get(n.0 as usize)?.uplink, 0),
        };
        if self.links[link as usize].deleted {
            return None;
        }
        self.crafted = true;
        let now = self.now;
        let iface = self.links[link as usize].ends[node_end].1;
        self.trace.received(now, iface, &frame);
        let mut out = core::mem::take(&mut self.out);
        let slot = &mut self.nodes[node.0 as usize];
        match wire {
            Wire::Veth(_) => slot
                .node
                .bridge_input(now, link, frame, &mut out, &mut self.trace),
            Wire::Uplink(_) => slot
                .node
                .uplink_input(now, frame, &mut out, &mut self.trace),
        }
        let mut sent = Vec::with_capacity(out.len());
        for (egress, f) in out.drain(..) {
            let (w, l, end) = match egress {
                Egress::Port(l) => match self.links[l as usize].ends[0].0 {
                    Attach::Pod(p) => (Wire::Veth(p), l, 1),
                    _ => continue,
                },
                Egress::Uplink => (Wire::Uplink(node), self.nodes[node.0 as usize].uplink, 0),
            };
            self.trace.sent(now, self.links[l as usize].ends[end].1, &f);
            sent.push((w, f));
        }
        self.out = out;
        self.schedule_node_wake(node);
        Some(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{EventKind, TraceConfig};
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr,
    };

    #[test]
    fn an_arp_request_injected_on_a_veth_is_answered_and_traced() {
        let mut c = Cluster::new(ClusterConfig {
            trace: TraceConfig::full(),
            ..ClusterConfig::default()
        });
        let a = c
            .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
            .unwrap();
        let p = c.add_pod(PodSpec::new("p", a)).unwrap();
        let addrs = *c.pod(p).unwrap().addrs();
        let ip = crate::v4(addrs.ip.address());
        let gw = c.node(a).unwrap().addrs().gateway();
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: addrs.mac,
            source_protocol_addr: ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: gw,
        };
        let eth = EthernetRepr {
            src_addr: addrs.mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let mut frame = vec![0u8; eth.buffer_len() + arp.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut f);
        arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));

        let before = c.trace().events().len();
        let sent = c.inject(Wire::Veth(p), frame.clone()).unwrap();
        // The broadcast comes back through the hairpin port (as the kernel floods it), then
        // cni0's answer.
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0], (Wire::Veth(p), frame.clone().into()));
        assert_eq!(sent[1].0, Wire::Veth(p));
        let reply = EthernetFrame::new_checked(&sent[1].1[..]).unwrap();
        assert_eq!(reply.dst_addr(), addrs.mac);
        let reply = ArpRepr::parse(&ArpPacket::new_checked(reply.payload()).unwrap()).unwrap();
        let ArpRepr::EthernetIpv4 {
            operation,
            source_protocol_addr,
            ..
        } = reply
        else {
            panic!("not an ARP reply")
        };
        assert_eq!(operation, ArpOperation::Reply);
        assert_eq!(source_protocol_addr, gw);

        // Recorded like delivered traffic: received on the veth's host end, then sent there.
        let evs: Vec<_> = c.trace().events()[before..].iter().collect();
        let names: BTreeMap<_, String> = c
            .trace()
            .ifaces()
            .map(|(i, n)| (i, n.to_string()))
            .collect();
        let received = evs.iter().find_map(|e| match &e.kind {
            EventKind::Received { iface, frame: f } => {
                Some((names[iface].clone(), f.bytes.clone()))
            }
            _ => None,
        });
        let (name, bytes) = received.expect("a Received event");
        assert!(name.starts_with("node-a/veth"), "{name}");
        assert_eq!(bytes, frame);
        assert!(evs.iter().any(|e| matches!(&e.kind,
            EventKind::Sent { iface, frame: f } if names[iface] == name && f.bytes == *sent[1].1)));
        assert!(c.inject(Wire::Veth(PodId(99)), frame).is_none());
    }
}
