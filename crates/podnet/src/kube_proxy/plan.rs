//! kube-proxy's view of one Service port: its endpoints in kube-proxy's order and
//! `CategorizeEndpoints` (`kubernetes/pkg/proxy/topology.go`) with the traffic-policy flags
//! of `BaseServicePortInfo` (`pkg/proxy/serviceport.go`) and `syncProxyRules`.

use alloc::vec::Vec;
use core::fmt::Write as _;

use smoltcp::wire::Ipv4Address;

use super::{ProxyConfig, ServicePort};

/// kube-proxy's view of one Service port: `CategorizeEndpoints` and the traffic-policy flags
/// (`pkg/proxy/topology.go`, `pkg/proxy/serviceport.go`).
#[derive(Debug)]
pub(crate) struct Plan {
    /// Endpoint indexes into `ServicePort::endpoints`, sorted as kube-proxy sorts them
    /// (`byEndpoint`: by the `ip:port` string), duplicates removed.
    pub cluster: Vec<u32>,
    pub local: Vec<u32>,
    /// `allLocallyReachableEndpoints`: the endpoints that get an endpoint chain.
    pub reachable: Vec<u32>,
    pub has_endpoints: bool,
    pub ext_local: bool,
    pub int_local: bool,
    pub uses_cluster_chain: bool,
    pub uses_local_chain: bool,
    pub has_internal: bool,
    pub has_external: bool,
    pub uses_external_chain: bool,
}

pub(super) fn plan_all(cfg: &ProxyConfig, services: &[ServicePort]) -> Vec<Plan> {
    services.iter().map(|s| plan(cfg, s)).collect()
}

fn plan(cfg: &ProxyConfig, svc: &ServicePort) -> Plan {
    let sorted = sorted_endpoints(svc);
    let externally_accessible = svc.node_port.is_some();
    // BaseServicePortInfo only sets externalPolicyLocal for externally accessible Services.
    let ext_local = svc.external_local && externally_accessible;
    let int_local = svc.internal_local;
    let uses_cluster_eps = !int_local || (externally_accessible && !ext_local);
    let uses_local_eps = int_local || (externally_accessible && ext_local);
    let ready = |&i: &u32| svc.endpoints[i as usize].ready;
    let is_local = |&i: &u32| svc.endpoints[i as usize].node == cfg.node_name;

    let mut cluster = Vec::new();
    let mut has_endpoints = false;
    if uses_cluster_eps {
        cluster = sorted.iter().copied().filter(ready).collect();
        has_endpoints = !cluster.is_empty();
    }
    let mut local = Vec::new();
    let reachable;
    if !uses_local_eps {
        reachable = cluster.clone();
    } else {
        has_endpoints |= sorted.iter().any(ready);
        local = sorted
            .iter()
            .copied()
            .filter(|i| ready(i) && is_local(i))
            .collect();
        // Local endpoints are ready, so they are already among the cluster endpoints.
        reachable = if uses_cluster_eps {
            cluster.clone()
        } else {
            local.clone()
        };
    }
    let uses_cluster_chain = !cluster.is_empty() && uses_cluster_eps;
    let uses_local_chain = !local.is_empty() && uses_local_eps;
    let has_internal = has_endpoints && (!int_local || !local.is_empty());
    let has_external = has_endpoints && (!ext_local || !local.is_empty());
    Plan {
        cluster,
        local,
        reachable,
        has_endpoints,
        ext_local,
        int_local,
        uses_cluster_chain,
        uses_local_chain,
        has_internal,
        has_external,
        uses_external_chain: has_endpoints && externally_accessible,
    }
}

/// `ip:port` as kube-proxy's `BaseEndpointInfo.String()` prints it, in a stack buffer.
pub(crate) struct EpText {
    buf: [u8; 21],
    len: u8,
}

impl EpText {
    pub fn new(ip: Ipv4Address, port: u16) -> Self {
        let mut t = EpText {
            buf: [0; 21],
            len: 0,
        };
        let _ = write!(t, "{ip}:{port}");
        t
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl core::fmt::Write for EpText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let at = self.len as usize;
        let end = at + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[at..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

/// Endpoint indexes sorted by their `ip:port` string (`sort.Sort(byEndpoint(...))` in
/// `pkg/proxy/endpointslicecache.go`), one per distinct `ip:port`.
fn sorted_endpoints(svc: &ServicePort) -> Vec<u32> {
    let mut keyed: Vec<(EpText, u32)> = svc
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| (EpText::new(e.ip, e.port), i as u32))
        .collect();
    crate::sort::sort_by(&mut keyed, |a, b| {
        a.0.as_str().cmp(b.0.as_str()).then(a.1.cmp(&b.1))
    });
    keyed.dedup_by(|a, b| a.0.as_str() == b.0.as_str());
    keyed.into_iter().map(|(_, i)| i).collect()
}
