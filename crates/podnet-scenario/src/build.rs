//! From a [`Scenario`] to a running [`podnet::Cluster`]: nodes, external hosts, pods with their
//! programs, Services, the DNS servers of DNS pods, then every flow's client started in its
//! pods.
//!
//! DNS: a pod whose image is `coredns/coredns` or `podnet/dns` runs [`Program::DnsServer`] on
//! port 53 with an `A` record `SERVICE.NAMESPACE.svc.cluster.local` for every Service: its
//! ClusterIP, or each ready endpoint's pod IP for a headless one (a snapshot taken at build
//! time). When a Service with a ClusterIP sends UDP port 53 to such pods (`kube-system/kube-dns`
//! first), a pod whose Traffic names a Service (`web:80`, `web.prod:80`,
//! `web.prod.svc.cluster.local:80`) really resolves it: a UDP query to that ClusterIP, through
//! the node's conntrack and DNAT, with the kubelet's search list for the pod's namespace and
//! `ndots:5` (see [`podnet::program::dns`]). Without such pods and Service, names resolve
//! statically, as the answer would be; external hosts always do.

use std::collections::BTreeMap;

use podnet::kube_proxy::L4;
use podnet::program::Resolve;
use podnet::{
    ClientSpec, Cluster, ConnRecord, Instant, NodeId, NodeSpec, PodId, Program, ServicePortSpec,
    ServiceSpec,
};
use smoltcp::wire::{IpAddress, Ipv4Address};

use crate::model::*;
use crate::{Error, Warning};

/// Where each scenario object went in the built cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// Node ids, parallel to [`Scenario::nodes`].
    pub node_ids: Vec<NodeId>,
    /// Pod ids, parallel to [`Scenario::pods`].
    pub pod_ids: Vec<PodId>,
    /// External hosts' pod ids, parallel to [`Scenario::external`].
    pub external_ids: Vec<PodId>,
    /// ClusterIPs, parallel to [`Scenario::services`] (`None`: headless).
    pub cluster_ips: Vec<Option<Ipv4Address>>,
    /// NodePorts per Service port, parallel to [`Scenario::services`] and their ports.
    pub node_ports: Vec<Vec<Option<u16>>>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeId>,
    /// Pods by `NAMESPACE/NAME`.
    pub pods: BTreeMap<String, PodId>,
    /// External hosts by name.
    pub external: BTreeMap<String, PodId>,
    /// ClusterIPs by `NAMESPACE/NAME` (`None`: headless).
    pub services: BTreeMap<String, Option<Ipv4Address>>,
    /// Flows, parallel to [`Scenario::flows`].
    pub flows: Vec<FlowIndex>,
    /// The `A` records DNS pods serve (empty without DNS pods).
    pub dns_records: Vec<(String, Ipv4Address)>,
    /// The nameserver pods' clients ask (the ClusterIP of the Service in front of the DNS
    /// pods); `None`: Traffic names resolve statically.
    pub dns_server: Option<Ipv4Address>,
    /// What building approximated.
    pub warnings: Vec<Warning>,
}

/// Where one flow's clients run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowIndex {
    /// The Traffic name.
    pub name: String,
    /// Each client: its pod and its index among that pod's clients (`Pod::clients()`).
    pub clients: Vec<(PodId, usize)>,
    /// The resolved destination address (what DNS answers, for clients that ask it).
    pub to: Ipv4Address,
    /// The destination port.
    pub port: u16,
}

impl Index {
    /// A pod's id by namespace and name.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodId> {
        self.pods.get(&format!("{namespace}/{name}")).copied()
    }

    /// A node's id by name.
    pub fn node(&self, name: &str) -> Option<NodeId> {
        self.nodes.get(name).copied()
    }

    /// A flow's index by name.
    pub fn flow(&self, name: &str) -> Option<usize> {
        self.flows.iter().position(|f| f.name == name)
    }

    /// Every finished connection of flow `flow`, client by client, each client's in the order
    /// they finished.
    pub fn records(&self, cluster: &Cluster, flow: usize) -> Vec<ConnRecord> {
        self.record_refs(cluster, flow)
            .into_iter()
            .cloned()
            .collect()
    }

    /// [`Index::records`] without copying them.
    pub fn record_refs<'a>(&self, cluster: &'a Cluster, flow: usize) -> Vec<&'a ConnRecord> {
        let n = self.flows.get(flow).map_or(0, |f| f.clients.len());
        (0..n)
            .filter_map(|c| self.client(cluster, flow, c))
            .flat_map(|c| c.records().iter())
            .collect()
    }

    /// Client `client` (in [`FlowIndex::clients`] order) of flow `flow`.
    pub fn client<'a>(
        &self,
        cluster: &'a Cluster,
        flow: usize,
        client: usize,
    ) -> Option<&'a podnet::program::Client> {
        let &(pod, i) = self.flows.get(flow)?.clients.get(client)?;
        cluster.pod(pod)?.clients().nth(i)
    }
}

/// The address of a pod in the cluster.
pub(crate) fn pod_ip(cluster: &Cluster, id: PodId) -> Option<Ipv4Address> {
    #[allow(unreachable_patterns)]
    match cluster.pod(id)?.addrs().ip.address() {
        IpAddress::Ipv4(ip) => Some(ip),
        _ => None,
    }
}

/// The programs `apps` run, DNS servers with the cluster's records (see [`programs`]).
pub(crate) fn programs_with_dns(apps: &[App], ix: &Index) -> Vec<Program> {
    let mut out = programs(apps);
    out.extend(apps.iter().filter_map(|a| match *a {
        App::Dns(port) => Some(Program::DnsServer {
            port,
            records: ix.dns_records.clone(),
        }),
        _ => None,
    }));
    out
}

/// The programs `apps` run, but DNS servers, which need the Services' addresses first (see
/// [`programs_with_dns`]).
pub(crate) fn programs(apps: &[App]) -> Vec<Program> {
    apps.iter()
        .filter_map(|a| match *a {
            App::Http(port) => Some(Program::HttpServer { port }),
            App::TcpEcho(port) => Some(Program::TcpEcho { port }),
            App::UdpEcho(port) => Some(Program::UdpEcho { port }),
            App::TcpDiscard(port) => Some(Program::TcpDiscard { port }),
            App::Dns(_) => None,
        })
        .collect()
}

fn core_err(loc: &Loc, what: &str, e: podnet::Error) -> Error {
    Error::at(loc, format!("{what}: {e}"))
}

/// Builds the cluster a scenario describes, clients started, at virtual time zero.
pub fn build(sc: &Scenario) -> Result<(Cluster, Index), Error> {
    build_observed(sc, Vec::new())
}

/// [`build`] with `observers` installed on the new cluster first, so that they see every
/// event from the very first (a pod's first ARP request is sent while it is being built).
pub fn build_observed(
    sc: &Scenario,
    observers: Vec<Box<dyn podnet::trace::Observer>>,
) -> Result<(Cluster, Index), Error> {
    let mut c = Cluster::new(sc.config.clone());
    for o in observers {
        c.add_observer(o);
    }
    let mut ix = Index::default();
    let cluster_loc = sc.cluster_loc.clone().unwrap_or_default();
    for n in &sc.nodes {
        let loc = n.loc.clone().unwrap_or_else(|| cluster_loc.clone());
        let spec = NodeSpec::new(&n.name, n.ip)
            .pod_cidr(n.pod_cidr)
            .cpus(n.cpus);
        let id = c
            .add_node(spec)
            .map_err(|e| core_err(&loc, &format!("node {}", n.name), e))?;
        ix.node_ids.push(id);
        ix.nodes.insert(n.name.clone(), id);
    }
    for h in &sc.external {
        let loc = h.loc.clone().unwrap_or_else(|| cluster_loc.clone());
        let id = c
            .add_external(&h.name, h.ip, programs(&h.apps))
            .map_err(|e| core_err(&loc, &format!("external host {}", h.name), e))?;
        ix.external_ids.push(id);
        ix.external.insert(h.name.clone(), id);
    }
    // Pods with a fixed address first, so that allocation never takes one of theirs.
    let mut order: Vec<usize> = (0..sc.pods.len())
        .filter(|i| sc.pods[*i].ip.is_some())
        .collect();
    order.extend((0..sc.pods.len()).filter(|i| sc.pods[*i].ip.is_none()));
    let mut pod_ids = vec![PodId(u32::MAX); sc.pods.len()];
    for i in order {
        let p = &sc.pods[i];
        let node = *ix
            .node_ids
            .get(p.node)
            .ok_or_else(|| Error::at(&p.loc, format!("pod {}: no node {}", p.name, p.node)))?;
        let mut spec = crate::netpol::pod_spec(p, &p.core_name, node);
        spec.ip = p.ip;
        spec.programs = programs(&p.apps);
        let id = c
            .add_pod(spec)
            .map_err(|e| core_err(&p.loc, &format!("pod {}/{}", p.namespace, p.name), e))?;
        pod_ids[i] = id;
        ix.pods.insert(p.key(), id);
    }
    ix.pod_ids = pod_ids;
    for ns in &sc.namespaces {
        c.set_namespace_labels(&ns.name, ns.labels.clone());
    }
    for p in &sc.network_policies {
        c.add_network_policy(p.core.clone());
    }
    for p in &sc.cilium_policies {
        c.add_cilium_policy(p.clone());
    }
    services(sc, &mut c, &mut ix)?;
    dns(sc, &mut c, &mut ix)?;
    flows(sc, &mut c, &mut ix)?;
    Ok((c, ix))
}

fn services(sc: &Scenario, c: &mut Cluster, ix: &mut Index) -> Result<(), Error> {
    ix.cluster_ips = vec![None; sc.services.len()];
    ix.node_ports = sc
        .services
        .iter()
        .map(|s| vec![None; s.ports.len()])
        .collect();
    let mut order: Vec<usize> = (0..sc.services.len())
        .filter(|i| matches!(sc.services[*i].cluster_ip, ClusterIp::Ip(_)))
        .collect();
    order.extend((0..sc.services.len()).filter(|i| sc.services[*i].cluster_ip == ClusterIp::Auto));
    for s in sc
        .services
        .iter()
        .filter(|s| s.cluster_ip == ClusterIp::Headless)
    {
        ix.services
            .insert(format!("{}/{}", s.namespace, s.name), None);
    }
    for i in order {
        let s = &sc.services[i];
        let mut ports = Vec::new();
        for p in &s.ports {
            let target_port = match (p.endpoints.first(), &p.target) {
                (Some(e), _) => e.port,
                (None, TargetPort::Number(n)) => *n,
                (None, TargetPort::Name(_)) => p.port,
            };
            if p.endpoints.iter().any(|e| e.port != target_port) {
                ix.warnings.push(Error::at(
                    &s.loc,
                    format!(
                        "Service {}/{} port {}: its backends listen on different ports for targetPort {:?}; the core takes one targetPort per Service port, so all get {target_port}",
                        s.namespace, s.name, p.port, p.target
                    ),
                ));
            }
            ports.push(ServicePortSpec {
                name: p.name.clone(),
                protocol: p.protocol,
                port: p.port,
                target_port,
                node_port: p.node_port,
            });
        }
        let backends: Vec<PodId> = s.backends().iter().map(|b| ix.pod_ids[*b]).collect();
        if s.ports.iter().any(|p| p.endpoints.len() != backends.len()) {
            ix.warnings.push(Error::at(
                &s.loc,
                format!(
                    "Service {}/{}: some backends lack some of its ports; the core sends every port to every backend",
                    s.namespace, s.name
                ),
            ));
        }
        let spec = ServiceSpec {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            cluster_ip: match s.cluster_ip {
                ClusterIp::Ip(ip) => Some(ip),
                _ => None,
            },
            ports,
            backends,
            session_affinity: s.session_affinity,
            node_port: s.node_port,
            external_local: s.external_local,
            internal_local: s.internal_local,
        };
        let ip = c
            .add_service(spec)
            .map_err(|e| core_err(&s.loc, &format!("Service {}/{}", s.namespace, s.name), e))?;
        ix.cluster_ips[i] = Some(ip);
        ix.services
            .insert(format!("{}/{}", s.namespace, s.name), Some(ip));
        if let Some(added) = c
            .services()
            .iter()
            .find(|x| x.spec.name == s.name && x.spec.namespace == s.namespace)
        {
            ix.node_ports[i] = added.spec.ports.iter().map(|p| p.node_port).collect();
        }
    }
    Ok(())
}

/// Starts the DNS pods' servers and picks the nameserver (see the module docs).
fn dns(sc: &Scenario, c: &mut Cluster, ix: &mut Index) -> Result<(), Error> {
    let servers: Vec<usize> = (0..sc.pods.len())
        .filter(|i| sc.pods[*i].apps.iter().any(|a| matches!(a, App::Dns(_))))
        .collect();
    let Some(&first) = servers.first() else {
        return Ok(());
    };
    for (i, s) in sc.services.iter().enumerate() {
        let name = format!("{}.{}.svc.cluster.local", s.name, s.namespace);
        match ix.cluster_ips[i] {
            Some(ip) => ix.dns_records.push((name, ip)),
            None => {
                for b in s.backends() {
                    if let Some(ip) = pod_ip(c, ix.pod_ids[b]) {
                        ix.dns_records.push((name.clone(), ip));
                    }
                }
            }
        }
    }
    for &p in &servers {
        let pod = &sc.pods[p];
        for program in programs_with_dns(&pod.apps, ix) {
            if matches!(program, Program::DnsServer { .. }) {
                c.start_program(ix.pod_ids[p], program).map_err(|e| {
                    core_err(&pod.loc, &format!("pod {}/{}", pod.namespace, pod.name), e)
                })?;
            }
        }
    }
    let fronts = |s: &ServiceDef| {
        s.ports.iter().any(|p| {
            p.port == 53
                && p.protocol == L4::Udp
                && p.endpoints.iter().any(|e| servers.contains(&e.pod))
        })
    };
    let candidates: Vec<usize> = (0..sc.services.len())
        .filter(|i| ix.cluster_ips[*i].is_some() && fronts(&sc.services[*i]))
        .collect();
    let chosen = candidates
        .iter()
        .find(|i| {
            sc.services[**i].namespace == "kube-system" && sc.services[**i].name == "kube-dns"
        })
        .or(candidates.first());
    ix.dns_server = chosen.and_then(|i| ix.cluster_ips[*i]);
    if ix.dns_server.is_none() {
        let p = &sc.pods[first];
        ix.warnings.push(Error::at(
            &p.loc,
            format!(
                "pod {}/{} runs a DNS server, but no Service with a ClusterIP sends UDP port 53 to it: Traffic names resolve statically",
                p.namespace, p.name
            ),
        ));
    }
    Ok(())
}

/// The name a flow's client resolves over DNS, if it does: a Service's name, from a pod,
/// when the cluster has a nameserver.
fn resolve_for(sc: &Scenario, ix: &Index, f: &FlowDef, src: &Source) -> Option<Resolve> {
    let server = ix.dns_server?;
    if !matches!(
        f.to,
        Target::Service { .. } | Target::HeadlessService { .. }
    ) {
        return None;
    }
    let Source::Pod(p) = src else {
        return None;
    };
    let text = f.to_text.trim();
    let host = text.rsplit_once(':').map_or(text, |(h, _)| h).trim();
    let pod = &sc.pods[*p];
    let options = podnet::program::ResolvOptions {
        unspec: f.unspec,
        ..pod.dns
    };
    Some(Resolve::cluster(host, server, &pod.namespace).options(options))
}

fn destination(sc: &Scenario, c: &Cluster, ix: &Index, f: &FlowDef) -> Result<Ipv4Address, Error> {
    let missing = |what: String| Error::at(&f.loc, format!("flow {}: {what}", f.name));
    match &f.to {
        Target::Service { service, .. } => ix.cluster_ips[*service].ok_or_else(|| {
            missing(format!(
                "Service {} has no ClusterIP",
                sc.services[*service].name
            ))
        }),
        Target::HeadlessService { service, .. } => {
            let s = &sc.services[*service];
            let first = s.backends().first().copied().ok_or_else(|| {
                missing(format!(
                    "headless Service {}/{} has no endpoints: its name does not resolve",
                    s.namespace, s.name
                ))
            })?;
            pod_ip(c, ix.pod_ids[first]).ok_or_else(|| missing("backend has no address".into()))
        }
        Target::Pod { pod, .. } => {
            pod_ip(c, ix.pod_ids[*pod]).ok_or_else(|| missing("pod has no address".into()))
        }
        Target::External { host, .. } => Ok(sc.external[*host].ip),
        Target::Node { node, .. } => Ok(sc.nodes[*node].ip),
        Target::Ip { ip, .. } => Ok(*ip),
    }
}

fn flows(sc: &Scenario, c: &mut Cluster, ix: &mut Index) -> Result<(), Error> {
    let mut per_pod: BTreeMap<PodId, usize> = BTreeMap::new();
    for f in &sc.flows {
        let to = destination(sc, c, ix, f)?;
        let port = f.to.port();
        let mut spec = ClientSpec::http(&f.name, to, port)
            .protocol(f.protocol)
            .request(f.request.clone())
            .count(f.count)
            .concurrency(f.concurrency)
            .start(Instant::ZERO + f.start)
            .interval(f.interval)
            .timeout(f.timeout);
        spec.name = f.name.clone();
        let mut clients = Vec::new();
        for src in &f.from {
            let pod = match src {
                Source::Pod(p) => ix.pod_ids[*p],
                Source::External(h) => ix.external_ids[*h],
            };
            let mut spec = spec.clone();
            spec.resolve = resolve_for(sc, ix, f, src);
            c.start_program(pod, Program::Client(spec))
                .map_err(|e| core_err(&f.loc, &format!("flow {}", f.name), e))?;
            let n = per_pod.entry(pod).or_insert(0);
            clients.push((pod, *n));
            *n += 1;
        }
        ix.flows.push(FlowIndex {
            name: f.name.clone(),
            clients,
            to,
            port,
        });
    }
    Ok(())
}
