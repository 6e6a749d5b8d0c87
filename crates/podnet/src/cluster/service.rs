//! Services and the world outside: kube-proxy's view of every Service pushed to each node's
//! dataplane, and external hosts behind an edge router on the underlay.

use alloc::string::ToString;
use alloc::vec::Vec;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::{
    broadcast, contains, Cluster, Error, NodeId, NodeSpec, PodId, PodSpec, Proxy, ServiceSpec,
};
use crate::conntrack::Conntrack;
use crate::dataplane::Dataplane;
use crate::ebpf::{EbpfDatapath, LbMaps};
use crate::kube_proxy::{self, Endpoint, ProxyConfig, ServicePort};
use crate::program::Program;
use crate::rng::{SimRng, Stream};
use crate::route::{Dev, Route};

/// Kubernetes' default NodePort range.
pub const NODE_PORTS: (u16, u16) = (30000, 32767);

/// A Service as the cluster holds it, with its allocated addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// What was asked for, with `cluster_ip` and every `node_port` filled in.
    pub spec: ServiceSpec,
}

impl Service {
    /// The ClusterIP.
    pub fn cluster_ip(&self) -> Ipv4Address {
        self.spec.cluster_ip.unwrap_or(Ipv4Address::UNSPECIFIED)
    }
}

impl Cluster {
    /// Adds a Service; returns its ClusterIP. Every node's kube-proxy resyncs.
    pub fn add_service(&mut self, mut spec: ServiceSpec) -> Result<Ipv4Address, Error> {
        let key = (spec.namespace.clone(), spec.name.clone());
        if self
            .services
            .iter()
            .any(|s| (s.spec.namespace.clone(), s.spec.name.clone()) == key)
        {
            return Err(Error::BadService(alloc::format!(
                "{}/{} already exists",
                spec.namespace,
                spec.name
            )));
        }
        for b in &spec.backends {
            if self.pod(*b).is_none() {
                return Err(Error::UnknownPod(*b));
            }
        }
        let range = self.config.service_cidr.network();
        let used = |ip: Ipv4Address, svcs: &[Service]| svcs.iter().any(|s| s.cluster_ip() == ip);
        let ip = match spec.cluster_ip {
            Some(ip) if !contains(range, ip) || ip == range.address() || ip == broadcast(range) => {
                return Err(Error::BadService(alloc::format!(
                    "clusterIP {ip} is not in the service CIDR {range}"
                )));
            }
            Some(ip) if used(ip, &self.services) => {
                return Err(Error::BadService(alloc::format!(
                    "clusterIP {ip} is already allocated"
                )));
            }
            Some(ip) => ip,
            None => {
                let first = u32::from(range.address()) + 1;
                (first..u32::from(broadcast(range)))
                    .map(Ipv4Address::from)
                    .find(|ip| !used(*ip, &self.services))
                    .ok_or_else(|| {
                        Error::BadService(alloc::format!("service CIDR {range} is full"))
                    })?
            }
        };
        spec.cluster_ip = Some(ip);
        if spec.node_port {
            for i in 0..spec.ports.len() {
                let taken: Vec<u16> = self
                    .services
                    .iter()
                    .flat_map(|s| s.spec.ports.iter().filter_map(|p| p.node_port))
                    .chain(spec.ports.iter().filter_map(|p| p.node_port))
                    .collect();
                match spec.ports[i].node_port {
                    Some(p) if !(NODE_PORTS.0..=NODE_PORTS.1).contains(&p) => {
                        return Err(Error::BadService(alloc::format!(
                            "nodePort {p} is outside {}-{}",
                            NODE_PORTS.0,
                            NODE_PORTS.1
                        )));
                    }
                    Some(p) if taken.iter().filter(|t| **t == p).count() > 1 => {
                        return Err(Error::BadService(alloc::format!(
                            "nodePort {p} is already allocated"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        let p = (NODE_PORTS.0..=NODE_PORTS.1)
                            .find(|p| !taken.contains(p))
                            .ok_or_else(|| Error::BadService("no NodePort left".to_string()))?;
                        spec.ports[i].node_port = Some(p);
                    }
                }
            }
        } else if spec.ports.iter().any(|p| p.node_port.is_some()) {
            return Err(Error::BadService(
                "nodePort set on a ClusterIP Service".to_string(),
            ));
        }
        self.services.push(Service { spec });
        self.resync_services();
        Ok(ip)
    }

    /// The Services.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The pods behind a Service, in order (`None`: no such Service).
    pub fn service_backends(&self, namespace: &str, name: &str) -> Option<&[PodId]> {
        self.services
            .iter()
            .find(|s| s.spec.namespace == namespace && s.spec.name == name)
            .map(|s| s.spec.backends.as_slice())
    }

    /// Replaces the pods behind a Service (its endpoints changed: a scale, a rollout); every
    /// node's kube-proxy resyncs. Established connections keep their conntrack entries.
    pub fn set_service_backends(
        &mut self,
        namespace: &str,
        name: &str,
        backends: Vec<PodId>,
    ) -> Result<(), Error> {
        if let Some(b) = backends.iter().find(|b| self.pod(**b).is_none()) {
            return Err(Error::UnknownPod(*b));
        }
        let svc = self
            .services
            .iter_mut()
            .find(|s| s.spec.namespace == namespace && s.spec.name == name)
            .ok_or_else(|| Error::UnknownService(alloc::format!("{namespace}/{name}")))?;
        svc.spec.backends = backends;
        self.resync_services();
        Ok(())
    }

    /// kube-proxy's input: every Service port with its ready endpoints.
    pub(super) fn service_ports(&self) -> Vec<ServicePort> {
        let mut out = Vec::new();
        for s in &self.services {
            for p in &s.spec.ports {
                let endpoints = s
                    .spec
                    .backends
                    .iter()
                    .filter_map(|id| {
                        let pod = self.pod(*id)?;
                        let ip = crate::v4(pod.addrs().ip.address());
                        let node = self.node(self.pod_node(*id)?)?.name().to_string();
                        Some(Endpoint {
                            ip,
                            port: p.target_port,
                            ready: true,
                            node,
                        })
                    })
                    .collect();
                out.push(ServicePort {
                    namespace: s.spec.namespace.clone(),
                    name: s.spec.name.clone(),
                    port_name: p.name.clone(),
                    protocol: p.protocol,
                    cluster_ip: s.cluster_ip(),
                    port: p.port,
                    node_port: p.node_port,
                    endpoints,
                    session_affinity: s.spec.session_affinity,
                    external_local: s.spec.external_local,
                    internal_local: s.spec.internal_local,
                });
            }
        }
        out
    }

    /// Pushes the current Services and endpoints to every node's kube-proxy.
    pub(super) fn resync_services(&mut self) {
        if self.config.proxy == Proxy::None {
            return;
        }
        let ports = self.service_ports();
        for slot in self.nodes.iter_mut() {
            if let Some(dp) = slot
                .node
                .hooks_mut()
                .find_map(|h| h.as_any_mut()?.downcast_mut::<Dataplane>())
            {
                dp.set_services(ports.clone());
            }
        }
    }

    /// The dataplane of a node registered by the cluster.
    pub(super) fn new_dataplane(
        &self,
        id: NodeId,
        name: &str,
        node_ip: Ipv4Address,
        gateway: Ipv4Address,
        pod_cidr: Ipv4Cidr,
    ) -> Option<Dataplane> {
        let mode = match self.config.proxy {
            Proxy::None => return None,
            Proxy::Iptables | Proxy::Ebpf => kube_proxy::Mode::Iptables,
            Proxy::Nftables => kube_proxy::Mode::Nftables,
        };
        let proxy = ProxyConfig {
            mode,
            node_name: name.to_string(),
            node_ips: alloc::vec![node_ip, gateway],
            cluster_cidr: self.config.pod_cidr.network(),
            masquerade_all: self.config.masquerade_all,
            random_fully: self.config.random_fully,
            tcp_be_liberal: self.config.conntrack.tcp_be_liberal,
        };
        let mut rng = SimRng::derive(self.config.seed, Stream::Node(id.0));
        let seed = rng.next_u64();
        if self.config.proxy == Proxy::Ebpf {
            let mut lb = LbMaps::new(
                self.config.ebpf,
                name,
                [node_ip, gateway],
                self.config.seed,
                SimRng::derive(seed, Stream::Node(id.0)),
            );
            lb.set_services(self.service_ports());
            let bpf = EbpfDatapath::new(
                self.config.ebpf,
                self.config.pod_cidr.network(),
                pod_cidr,
                lb,
                rng,
            );
            return Some(Dataplane::new_ebpf(self.config.conntrack, proxy, bpf, seed));
        }
        Some(Dataplane::new(
            self.config.conntrack,
            proxy,
            self.service_ports(),
            rng,
            seed,
        ))
    }

    /// A node's dataplane (conntrack and kube-proxy), if the cluster runs one.
    pub fn dataplane(&self, node: NodeId) -> Option<&Dataplane> {
        self.node(node)?
            .hooks()
            .find_map(|h| h.as_any()?.downcast_ref::<Dataplane>())
    }

    /// A node's dataplane, mutably (flush or resize conntrack).
    pub fn dataplane_mut(&mut self, node: NodeId) -> Option<&mut Dataplane> {
        self.node_mut(node)?
            .hooks_mut()
            .find_map(|h| h.as_any_mut()?.downcast_mut::<Dataplane>())
    }

    /// A node's conntrack table.
    pub fn conntrack(&self, node: NodeId) -> Option<&Conntrack> {
        self.dataplane(node).map(|d| d.conntrack())
    }

    /// Adds a host outside the cluster (in `external_cidr`, `203.0.113.0/24` by default)
    /// running `programs`, behind the edge router.
    pub fn add_external(
        &mut self,
        name: &str,
        ip: impl Into<Ipv4Address>,
        programs: Vec<Program>,
    ) -> Result<PodId, Error> {
        let ip = ip.into();
        let edge = self.edge.ok_or_else(|| {
            Error::BadNodeIp(
                Ipv4Address::UNSPECIFIED,
                "add a node before external hosts".to_string(),
            )
        })?;
        let mut spec = PodSpec::new(name, edge).ip(ip);
        spec.programs = programs;
        self.add_pod(spec)
    }

    /// The edge router, created with the first node: the underlay's default gateway (`eth0` at
    /// the underlay's last host address, `192.168.1.254` for `192.168.1.0/24`), with a bridge
    /// for the external hosts' subnet. Every node routes `default` through it. It knows no pod
    /// CIDR: pod traffic leaving the cluster only comes back if a node masqueraded it, as on a
    /// real network.
    pub(super) fn add_edge(&mut self, underlay: Ipv4Cidr) -> Result<NodeId, Error> {
        let outside = self.config.external_cidr.network();
        let net = underlay.network();
        let ip = (u32::from(net.address()) + 1..u32::from(broadcast(net)))
            .rev()
            .map(Ipv4Address::from)
            .find(|ip| !self.ips.contains(ip))
            .ok_or_else(|| {
                Error::BadNodeIp(
                    underlay.address(),
                    "no address left on the underlay for the edge router".to_string(),
                )
            })?;
        let spec = NodeSpec {
            name: "edge".to_string(),
            ip,
            underlay_prefix: underlay.prefix_len(),
            pod_cidr: Some(outside),
            cpus: 1,
        };
        self.building_edge = true;
        let id = self.add_node(spec);
        self.building_edge = false;
        let id = id?;
        self.edge = Some(id);
        for slot in self.nodes.iter_mut().filter(|s| !s.edge) {
            let default = Route {
                dst: Ipv4Cidr::new(Ipv4Address::UNSPECIFIED, 0),
                via: Some(ip),
                dev: Dev::Eth0,
                src: None,
            };
            slot.node
                .add_route(default)
                .map_err(|_| Error::RouteTableFull(slot.node.name().to_string()))?;
        }
        Ok(id)
    }
}
