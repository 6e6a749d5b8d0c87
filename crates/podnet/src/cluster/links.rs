//! Link properties and faults: a pod's veth or a node's uplink, in both directions.

use super::*;

/// A frame on a link now: sent on one end, not yet delivered to the other.
#[derive(Clone, Copy, Debug)]
pub struct InFlight<'a> {
    /// The interface that sent it.
    pub from: IfaceId,
    /// The interface it arrives at.
    pub to: IfaceId,
    /// When it arrives.
    pub arrives: Instant,
    /// The frame.
    pub frame: &'a [u8],
}

impl Cluster {
    /// Every frame on a link now (a deleted pod's veth carries none that will arrive): link
    /// by link, each direction's frames in the order they arrive.
    pub fn in_flight(&self) -> impl Iterator<Item = InFlight<'_>> + '_ {
        self.links.iter().filter(|l| !l.deleted).flat_map(|l| {
            (0..2).flat_map(move |d| {
                let (from, to) = (l.ends[d].1, l.ends[1 - d].1);
                l.chans[d].frames().map(move |(arrives, f)| InFlight {
                    from,
                    to,
                    arrives,
                    frame: &f[..],
                })
            })
        })
    }

    /// Changes the link configuration of a pod's veth (both directions).
    pub fn set_pod_link(&mut self, pod: PodId, config: LinkConfig) -> bool {
        let Some(Some(slot)) = self.pods.get(pod.0 as usize) else {
            return false;
        };
        let link = slot.link as usize;
        for c in self.links[link].chans.iter_mut() {
            c.set_config(config.clone());
        }
        true
    }

    /// Changes the link configuration of a node's uplink (both directions).
    pub fn set_uplink(&mut self, node: NodeId, config: LinkConfig) -> bool {
        let Some(slot) = self.nodes.get(node.0 as usize) else {
            return false;
        };
        let link = slot.uplink as usize;
        for c in self.links[link].chans.iter_mut() {
            c.set_config(config.clone());
        }
        true
    }

    /// The link configuration of a pod's veth (`None`: no such pod).
    pub fn pod_link_config(&self, pod: PodId) -> Option<&LinkConfig> {
        let slot = self.pods.get(pod.0 as usize)?.as_ref()?;
        Some(self.links[slot.link as usize].chans[0].config())
    }

    /// The link configuration of a node's uplink (`None`: no such node).
    pub fn uplink_config(&self, node: NodeId) -> Option<&LinkConfig> {
        let slot = self.nodes.get(node.0 as usize)?;
        Some(self.links[slot.uplink as usize].chans[0].config())
    }

    /// Takes a pod's veth down (both directions: every frame sent is dropped as `link down`)
    /// or brings it back up; false when there is no such pod.
    pub fn set_pod_link_down(&mut self, pod: PodId, down: bool) -> bool {
        let Some(Some(slot)) = self.pods.get(pod.0 as usize) else {
            return false;
        };
        let link = slot.link as usize;
        for c in self.links[link].chans.iter_mut() {
            c.set_down(down);
        }
        true
    }

    /// Takes a node's uplink down (both directions) or brings it back up; false when there is
    /// no such node.
    pub fn set_uplink_down(&mut self, node: NodeId, down: bool) -> bool {
        let Some(slot) = self.nodes.get(node.0 as usize) else {
            return false;
        };
        let link = slot.uplink as usize;
        for c in self.links[link].chans.iter_mut() {
            c.set_down(down);
        }
        true
    }

    /// Whether a pod's veth is down (`None`: no such pod).
    pub fn pod_link_down(&self, pod: PodId) -> Option<bool> {
        let slot = self.pods.get(pod.0 as usize)?.as_ref()?;
        Some(self.links[slot.link as usize].chans[0].is_down())
    }

    /// Whether a node's uplink is down (`None`: no such node).
    pub fn uplink_down(&self, node: NodeId) -> Option<bool> {
        let slot = self.nodes.get(node.0 as usize)?;
        Some(self.links[slot.uplink as usize].chans[0].is_down())
    }
}
