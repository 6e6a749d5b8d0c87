//! The topology of a session's cluster now: nodes, pods, Services, external hosts, links and
//! flows.

use std::collections::{BTreeMap, BTreeSet};

use podnet::PodId;
use podnet_scenario::session::Session;

use crate::api::*;

fn lower_debug(v: impl core::fmt::Debug) -> String {
    format!("{v:?}").to_ascii_lowercase()
}

/// The topology of `s` now.
pub fn topology(s: &Session) -> Topology {
    let c = &s.cluster;
    let sc = &s.scenario;
    let cfg = c.config();
    let ifaces: Vec<&str> = c.trace().ifaces().map(|(_, n)| n).collect();
    // `extend`s, not `collect`s: collecting into a B-tree sorts, one more sort in the module.
    let mut known: BTreeSet<&str> = BTreeSet::new();
    known.extend(ifaces.iter().copied());
    let mut externals: BTreeSet<PodId> = BTreeSet::new();
    externals.extend(s.index.external_ids.iter().copied());
    // Pod id -> its definition in the scenario (scaled replicas: their Deployment's first).
    let mut defs: BTreeMap<PodId, usize> = BTreeMap::new();
    defs.extend(s.index.pod_ids.iter().enumerate().map(|(i, id)| (*id, i)));
    for (d, dep) in sc.deployments.iter().enumerate() {
        if let Some(first) = dep.pods.first() {
            for id in podnet_scenario::replicas(c, sc, d) {
                defs.entry(id).or_insert(*first);
            }
        }
    }
    let name_of = |id: PodId| c.pod(id).map(|p| p.name().to_string());
    // The cluster's nodes, then the edge router (which `Cluster::nodes` leaves out).
    let all_nodes = || {
        c.nodes()
            .chain(c.edge().and_then(|id| c.node(id).map(|n| (id, n))))
    };
    let nodes = all_nodes()
        .map(|(id, n)| {
            let prefix = format!("{}/", n.name());
            NodeInfo {
                name: n.name().to_string(),
                ip: n.addrs().eth0.address().to_string(),
                pod_cidr: n.addrs().pod_cidr.to_string(),
                role: if c.edge() == Some(id) { "edge" } else { "node" },
                interfaces: ifaces
                    .iter()
                    .filter(|i| i.starts_with(&prefix))
                    .map(|i| i.to_string())
                    .collect(),
                pods: c
                    .pods()
                    .filter(|(p, _)| c.pod_node(*p) == Some(id))
                    .map(|(_, p)| p.name().to_string())
                    .collect(),
            }
        })
        .collect();
    let node_name = |id: PodId| {
        c.pod_node(id)
            .and_then(|n| c.node(n))
            .map_or_else(String::new, |n| n.name().to_string())
    };
    let world = c.policy_world();
    let mut identities: BTreeMap<smoltcp::wire::IpAddress, u32> = BTreeMap::new();
    identities.extend(
        world
            .cilium
            .iter()
            .flat_map(|e| e.pods.iter())
            .map(|(ip, id)| (smoltcp::wire::IpAddress::Ipv4(*ip), *id)),
    );
    let pods = c
        .pods()
        .filter(|(id, _)| !externals.contains(id))
        .map(|(id, p)| {
            let def = defs.get(&id).and_then(|i| sc.pods.get(*i));
            PodInfo {
                name: p.name().to_string(),
                namespace: def.map_or_else(|| String::from("default"), |d| d.namespace.clone()),
                ip: p.addrs().ip.address().to_string(),
                node: node_name(id),
                labels: def.map(|d| d.labels.clone()).unwrap_or_default(),
                identity: identities.get(&p.addrs().ip.address()).copied(),
            }
        })
        .collect();
    let services = c
        .services()
        .iter()
        .map(|svc| ServiceInfo {
            name: svc.spec.name.clone(),
            namespace: svc.spec.namespace.clone(),
            cluster_ip: svc.cluster_ip().to_string(),
            ports: svc
                .spec
                .ports
                .iter()
                .map(|p| PortInfo {
                    name: (!p.name.is_empty()).then(|| p.name.clone()),
                    port: p.port,
                    target_port: p.target_port,
                    protocol: p.protocol.name().to_ascii_uppercase(),
                    node_port: p.node_port,
                })
                .collect(),
            backends: svc
                .spec
                .backends
                .iter()
                .filter_map(|b| name_of(*b))
                .collect(),
        })
        .collect();
    let externals_info = s
        .index
        .external_ids
        .iter()
        .filter_map(|id| c.pod(*id))
        .map(|p| ExternalInfo {
            name: p.name().to_string(),
            ip: p.addrs().ip.address().to_string(),
        })
        .collect();
    // The wires, named as the engine registers their ends.
    let mut links = Vec::new();
    for (id, p) in c.pods() {
        if let Some(n) = c.pod_node(id).and_then(|n| c.node(n)) {
            links.push((
                format!("{}/eth0", p.name()),
                format!("{}/veth{:08x}", n.name(), id.0),
            ));
        }
    }
    for (_, n) in all_nodes() {
        links.push((
            format!("{}/eth0", n.name()),
            format!("underlay/{}", n.name()),
        ));
    }
    let links = links
        .into_iter()
        .filter(|(a, b)| known.contains(a.as_str()) && known.contains(b.as_str()))
        .map(|(a, b)| LinkInfo { a, b })
        .collect();
    let flows = s
        .index
        .flows
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let def = sc.flows.get(i);
            FlowInfo {
                name: f.name.clone(),
                from: f.clients.iter().filter_map(|(p, _)| name_of(*p)).collect(),
                to: f.to.to_string(),
                port: f.port,
                protocol: def.map_or_else(
                    || String::from("TCP"),
                    |d| lower_debug(d.protocol).to_ascii_uppercase(),
                ),
                to_text: def.map_or_else(String::new, |d| d.to_text.clone()),
            }
        })
        .collect();
    Topology {
        cluster: ClusterInfo {
            name: sc.name.clone(),
            cni: lower_debug(cfg.cni),
            proxy: lower_debug(cfg.proxy),
            pod_cidr: cfg.pod_cidr.to_string(),
            service_cidr: cfg.service_cidr.to_string(),
        },
        nodes,
        pods,
        services,
        externals: externals_info,
        links,
        flows,
    }
}
