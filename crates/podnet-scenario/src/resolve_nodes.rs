//! Defaults and resolution: the nodes (from the Cluster, Node objects, the pods' nodeNames,
//! or two default nodes) and their pod CIDRs.

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::kinds::ClusterSpec;
use crate::load::{Object, ObjectKind};
use crate::model::*;
use crate::resolve::{at_err, Ctx, MAX_NODES};
use crate::units::{contains, overlaps, parse_cidr, parse_ip};
use crate::Error;

/// The most CPUs a node may have.
pub(crate) const MAX_CPUS: u32 = 64;

fn slots(range: Ipv4Cidr) -> impl Iterator<Item = Ipv4Cidr> {
    let base = u32::from(range.network().address());
    let n = if range.prefix_len() >= 24 {
        1
    } else {
        1u32 << (24 - range.prefix_len())
    };
    let len = range.prefix_len().max(24);
    (0..n).map(move |i| Ipv4Cidr::new(Ipv4Address::from(base + (i << 8)), len))
}

struct NodeDraft {
    name: String,
    ip: Ipv4Address,
    cidr: Option<Ipv4Cidr>,
    /// A pod address the CIDR should hold, for nodes named by pods.
    hint: Option<Ipv4Address>,
    cpus: u32,
    origin: NodeOrigin,
    loc: Option<Loc>,
}

pub(crate) fn nodes(
    cx: &mut Ctx<'_>,
    cobj: Option<&Object>,
    spec: &ClusterSpec,
) -> Result<(), Error> {
    let range = cx.sc.config.pod_cidr;
    let mut drafts: Vec<NodeDraft> = Vec::new();
    if let (Some(o), Some(list)) = (cobj, &spec.nodes) {
        if list.value.is_empty() {
            return Err(at_err(o, list.pos, "nodes: at least one node is needed"));
        }
        for n in &list.value {
            let e = &n.value;
            let ip = parse_ip(&e.ip.value).map_err(|m| at_err(o, e.ip.pos, m))?;
            let cidr = match &e.pod_cidr {
                None => None,
                Some(c) => Some(parse_cidr(&c.value).map_err(|m| at_err(o, c.pos, m))?),
            };
            let cpus = match &e.cpus {
                None => 1,
                Some(c) if (1..=MAX_CPUS).contains(&c.value) => c.value,
                Some(c) => {
                    return Err(at_err(
                        o,
                        c.pos,
                        format!("cpus: must be between 1 and {MAX_CPUS}"),
                    ))
                }
            };
            drafts.push(NodeDraft {
                name: e.name.value.clone(),
                ip,
                cidr,
                hint: None,
                cpus,
                origin: NodeOrigin::Cluster,
                loc: Some(o.loc_at(n.pos)),
            });
        }
    } else if cx
        .objects
        .iter()
        .any(|o| matches!(o.kind, ObjectKind::Node(_)))
    {
        for o in cx.objects {
            let ObjectKind::Node(node) = &o.kind else {
                continue;
            };
            let addr = node
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| {
                    a.iter()
                        .find(|a| a.type_ == "InternalIP" && parse_ip(&a.address).is_ok())
                });
            let Some(addr) = addr else {
                return Err(Error::at(
                    &o.loc(),
                    format!("Node {} has no IPv4 InternalIP in status.addresses", o.name),
                ));
            };
            let ip = parse_ip(&addr.address).map_err(|m| Error::at(&o.loc(), m))?;
            let cidr = match node.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()) {
                Some(c) => {
                    Some(parse_cidr(c).map_err(|m| Error::at(&o.loc_of("spec.podCIDR"), m))?)
                }
                None => None,
            };
            drafts.push(NodeDraft {
                name: o.name.clone(),
                ip,
                cidr,
                hint: None,
                cpus: 1,
                origin: NodeOrigin::NodeObject,
                loc: Some(o.loc()),
            });
        }
    } else {
        // The nodes the pods name, in order of appearance.
        for o in cx.objects {
            let (spec, ip) = match &o.kind {
                ObjectKind::Pod(p) => (
                    p.spec.as_ref(),
                    p.status.as_ref().and_then(|s| s.pod_ip.as_deref()),
                ),
                ObjectKind::Deployment(d) => {
                    (d.spec.as_ref().and_then(|s| s.template.spec.as_ref()), None)
                }
                _ => continue,
            };
            let Some(name) = spec.and_then(|s| s.node_name.as_ref()) else {
                continue;
            };
            let hint = ip.and_then(|ip| parse_ip(ip).ok());
            match drafts.iter_mut().find(|d| &d.name == name) {
                Some(d) => d.hint = d.hint.or(hint),
                None => {
                    let i = drafts.len() as u32;
                    drafts.push(NodeDraft {
                        name: name.clone(),
                        ip: Ipv4Address::from(u32::from(Ipv4Address::new(192, 168, 1, 100)) + i),
                        cidr: None,
                        hint,
                        cpus: 1,
                        origin: NodeOrigin::PodNodeName,
                        loc: None,
                    });
                }
            }
        }
        if drafts.is_empty() {
            for (name, last) in [("node-a", 100), ("node-b", 101)] {
                drafts.push(NodeDraft {
                    name: name.into(),
                    ip: Ipv4Address::new(192, 168, 1, last),
                    cidr: None,
                    hint: None,
                    cpus: 1,
                    origin: NodeOrigin::Default,
                    loc: None,
                });
            }
        }
    }
    if drafts.len() > MAX_NODES {
        let loc = cobj.map(|o| o.loc()).unwrap_or_default();
        return Err(Error::at(
            &loc,
            format!(
                "{} nodes is more than podnet simulates ({MAX_NODES})",
                drafts.len()
            ),
        ));
    }
    let at = |d: &NodeDraft| {
        d.loc
            .clone()
            .or_else(|| cobj.map(|o| o.loc()))
            .unwrap_or_default()
    };
    for (i, d) in drafts.iter().enumerate() {
        if let Some(j) = drafts[..i].iter().position(|e| e.name == d.name) {
            return Err(Error::at(
                &at(d),
                format!("node name {:?} is used twice (also node {j})", d.name),
            ));
        }
        if drafts[..i].iter().any(|e| e.ip == d.ip) {
            return Err(Error::at(
                &at(d),
                format!("node address {} is used twice", d.ip),
            ));
        }
    }
    // Pod CIDRs: named ones, then ones holding their pods' addresses, then the next free slot.
    let mut taken: Vec<Ipv4Cidr> = drafts.iter().filter_map(|d| d.cidr).collect();
    for (i, d) in drafts.iter().enumerate() {
        if let Some(c) = d.cidr {
            if let Some(o) = drafts[..i]
                .iter()
                .filter_map(|e| e.cidr)
                .find(|e| overlaps(*e, c))
            {
                return Err(Error::at(
                    &at(d),
                    format!("pod CIDR {c} of node {} overlaps {o}", d.name),
                ));
            }
            if !contains(range, c.network().address()) {
                cx.warnings.push(Error::at(
                    &at(d),
                    format!(
                        "pod CIDR {c} of node {} is outside the cluster podCIDR {range}",
                        d.name
                    ),
                ));
            }
        }
    }
    for d in drafts.iter_mut().filter(|d| d.cidr.is_none()) {
        if let Some(h) = d.hint {
            if let Some(slot) = slots(range).find(|s| contains(*s, h)) {
                if !taken.iter().any(|t| overlaps(*t, slot)) {
                    d.cidr = Some(slot);
                    taken.push(slot);
                }
            }
        }
    }
    for d in drafts.iter_mut().filter(|d| d.cidr.is_none()) {
        let Some(slot) = slots(range).find(|s| !taken.iter().any(|t| overlaps(*t, *s))) else {
            let loc = d.loc.clone().unwrap_or_default();
            return Err(Error::at(
                &loc,
                format!("podCIDR {range} has no /24 left for node {}", d.name),
            ));
        };
        d.cidr = Some(slot);
        taken.push(slot);
    }
    for d in drafts {
        let pod_cidr = d.cidr.unwrap_or(range);
        if contains(pod_cidr, d.ip) {
            let loc = d.loc.clone().unwrap_or_default();
            return Err(Error::at(
                &loc,
                format!("node address {} is inside its pod CIDR {pod_cidr}", d.ip),
            ));
        }
        cx.sc.nodes.push(NodeDef {
            name: d.name,
            ip: d.ip,
            pod_cidr,
            cpus: d.cpus,
            origin: d.origin,
            loc: d.loc,
        });
    }
    Ok(())
}
