//! Cilium policies in the cluster: CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies
//! (enforced with the NetworkPolicies, see [`crate::cilium`]), pod relabelling (a new
//! identity), and the per-node L7 proxy that HTTP rules need.
//!
//! The proxy runs on every node as a pod `cilium-envoy-NODE` in `kube-system` (Cilium runs
//! Envoy as a DaemonSet in the host's network namespace; here it has its own veth on `cni0`
//! and a transparent stack). It has no identity and no policy of its own: what it sends is
//! not judged again by the datapath.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::IpAddress;

use super::{Cluster, PodId, PodSpec, Proxy};
use crate::cilium::CiliumPolicy;
use crate::dataplane::Dataplane;
use crate::policy::{Labels, World};
use crate::program::l7proxy::AccessLog;
use crate::program::Program;

impl Cluster {
    /// Adds a Cilium policy (replacing one with the same key); with L7 rules, in eBPF mode,
    /// every node gets its L7 proxy.
    pub fn add_cilium_policy(&mut self, policy: CiliumPolicy) {
        let key = policy.key();
        let l7 = policy
            .ingress
            .iter()
            .chain(&policy.egress)
            .flat_map(|r| &r.to_ports)
            .any(|p| p.http.is_some());
        self.netpol.cilium.retain(|p| p.key() != key);
        self.netpol.cilium.push(policy);
        if l7 && self.config.proxy == Proxy::Ebpf {
            // No policy is pushed while the proxies are added: they have no identity.
            self.netpol.quiet = true;
            self.ensure_l7_proxies();
            self.netpol.quiet = false;
        }
        self.resync_policies();
    }

    /// Removes a Cilium policy (`namespace` `None`: clusterwide); false when there was none.
    pub fn remove_cilium_policy(&mut self, namespace: Option<&str>, name: &str) -> bool {
        let before = self.netpol.cilium.len();
        self.netpol
            .cilium
            .retain(|p| p.namespace.as_deref() != namespace || p.name != name);
        let removed = self.netpol.cilium.len() != before;
        if removed {
            self.resync_policies();
        }
        removed
    }

    /// The Cilium policies.
    pub fn cilium_policies(&self) -> &[CiliumPolicy] {
        &self.netpol.cilium
    }

    /// Changes a pod's labels (`kubectl label pod`): policies see it at once; with Cilium
    /// policies, the pod gets the identity of its new label set.
    pub fn set_pod_labels(&mut self, pod: PodId, labels: Labels) -> Result<(), super::Error> {
        let slot = self
            .pods
            .get_mut(pod.0 as usize)
            .and_then(|s| s.as_mut())
            .ok_or(super::Error::UnknownPod(pod))?;
        slot.meta.labels = labels;
        self.resync_policies();
        Ok(())
    }

    /// Whether a pod is a node's L7 proxy.
    pub fn is_l7_proxy(&self, pod: PodId) -> bool {
        self.pods
            .get(pod.0 as usize)
            .and_then(|s| s.as_ref())
            .is_some_and(|s| s.meta.l7_proxy)
    }

    /// Every request the L7 proxies judged, with the proxy's node, in node order.
    pub fn l7_access_log(&self) -> Vec<(String, AccessLog)> {
        let mut out = Vec::new();
        for s in self.pods.iter().flatten().filter(|s| s.meta.l7_proxy) {
            let node = String::from(self.nodes[s.node.0 as usize].node.name());
            out.extend(
                s.pod
                    .l7_access_log()
                    .iter()
                    .map(|l| (node.clone(), l.clone())),
            );
        }
        crate::sort::sort_by_key(&mut out, |(_, l)| l.at);
        out
    }

    fn ensure_l7_proxies(&mut self) {
        for i in 0..self.nodes.len() {
            let node = super::NodeId(i as u32);
            let has = self
                .pods
                .iter()
                .flatten()
                .any(|s| s.meta.l7_proxy && s.node == node);
            if has || self.nodes[i].edge {
                continue;
            }
            let name = format!("cilium-envoy-{}", self.nodes[i].node.name());
            let mut spec = PodSpec::new(&name, node).namespace("kube-system");
            spec.labels.insert("k8s-app".into(), "cilium-envoy".into());
            spec.programs.push(Program::L7Proxy);
            let Ok(id) = self.add_pod(spec) else { continue };
            let Some(slot) = self.pods[id.0 as usize].as_mut() else {
                continue;
            };
            slot.meta.l7_proxy = true;
            slot.pod.make_transparent();
            let (link, mac) = (slot.link, slot.pod.addrs().mac);
            let n = &mut self.nodes[i].node;
            n.set_l7_proxy(Some((link, mac)));
            if let Some(b) = n
                .hooks_mut()
                .find_map(|h| h.as_any_mut()?.downcast_mut::<Dataplane>())
                .and_then(|dp| dp.ebpf_mut())
            {
                b.set_proxy_mac(Some(mac));
            }
        }
    }

    /// Gives each L7 proxy the policies of its node.
    pub(super) fn push_l7_policy(&mut self, world: Option<&World>) {
        let now = self.now;
        let mut woken = Vec::new();
        for (i, s) in self.pods.iter_mut().enumerate() {
            let Some(s) = s.as_mut().filter(|s| s.meta.l7_proxy) else {
                continue;
            };
            s.pod.set_l7_world(now, s.node.0, world.cloned());
            woken.push(PodId(i as u32));
        }
        for id in woken {
            self.service_pod(id);
        }
    }

    /// The identity of the pod at `ip` (Cilium policies only).
    pub fn pod_identity(&self, ip: IpAddress) -> Option<u32> {
        let ip = crate::v4(ip);
        let w = self.policy_world();
        w.cilium.as_ref()?.pods.get(&ip).copied()
    }
}
