//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy objects converted to the core's
//! [`podnet::cilium::CiliumPolicy`].

use crate::k8s::api::cilium::v2::{CidrRule, CiliumNetworkPolicy, CiliumRule, PortRule};
use crate::k8s::apimachinery::pkg::apis::meta::v1::LabelSelector;
use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;
use crate::load::{Object, ObjectKind};
use crate::units::parse_cidr;
use crate::Error;
use podnet::cilium::{self, CiliumPolicy, Entity, PeerSelector, PolicyRule, PortProtocol};
use podnet::policy::Selector;

/// A label key as Cilium writes it (`k8s:app`, `any:app`) as the identity labels hold it.
fn key(k: &str) -> &str {
    k.strip_prefix("k8s:")
        .or_else(|| k.strip_prefix("any:"))
        .unwrap_or(k)
}

fn selector(s: &LabelSelector) -> Result<Selector, String> {
    let mut sel = LabelSelector {
        // Inserted one by one: collecting or extending sorts (one more sort instance).
        match_labels: s.match_labels.as_ref().map(|m| {
            let mut labels = podnet::policy::Labels::new();
            for (k, v) in m.iter() {
                labels.insert(key(k).into(), v.clone());
            }
            labels
        }),
        match_expressions: s.match_expressions.clone(),
    };
    for r in sel.match_expressions.iter_mut().flatten() {
        r.key = key(&r.key).into();
    }
    crate::netpol::selector(&sel)
}

fn cidr_set(c: &CidrRule) -> Result<PeerSelector, String> {
    Ok(PeerSelector::Cidr {
        cidr: parse_cidr(&c.cidr).map_err(|m| format!("cidr: {m}"))?,
        except: c
            .except
            .iter()
            .flatten()
            .map(|e| parse_cidr(e).map_err(|m| format!("except: {m}")))
            .collect::<Result<_, _>>()?,
    })
}

fn protocol(p: Option<&str>) -> Result<u8, String> {
    Ok(match p.unwrap_or("ANY") {
        "ANY" => 0,
        "TCP" => 6,
        "UDP" => 17,
        "SCTP" => 132,
        o => return Err(format!("unknown protocol {o:?} (TCP, UDP, SCTP or ANY)")),
    })
}

fn port_rule(p: &PortRule, source: &str, deny: bool) -> Result<cilium::PortRule, String> {
    let mut ports = Vec::new();
    for pp in p.ports.iter().flatten() {
        let port = match &pp.port {
            None => 0,
            Some(IntOrString::Int(n)) => {
                u16::try_from(*n).map_err(|_| format!("port {n} out of range"))?
            }
            Some(IntOrString::String(s)) => s.parse::<u16>().map_err(|_| {
                format!(
                    "port {s:?}: podnet reads port numbers only (named ports are not supported)"
                )
            })?,
        };
        let end_port = match pp.end_port {
            None => None,
            Some(e) => Some(
                u16::try_from(e)
                    .ok()
                    .filter(|e| *e >= port && port != 0)
                    .ok_or_else(|| format!("endPort {e} is below port {port} or out of range"))?,
            ),
        };
        ports.push(PortProtocol {
            port,
            end_port,
            proto: protocol(pp.protocol.as_deref())?,
        });
    }
    let http = match p.rules.as_ref().and_then(|r| r.http.as_ref()) {
        None => None,
        Some(_) if deny => return Err("deny rules take no L7 rules".into()),
        Some(rules) => Some(
            rules
                .iter()
                .map(|r| {
                    for re in r.method.iter().chain(&r.path) {
                        cilium::l7::check(re).map_err(|m| format!("rules.http: {re:?}: {m}"))?;
                    }
                    Ok(cilium::HttpRule {
                        method: r.method.clone(),
                        path: r.path.clone(),
                        headers: r.headers.clone().unwrap_or_default(),
                        source: source.into(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
        ),
    };
    Ok(cilium::PortRule { ports, http })
}

fn rule(r: &CiliumRule, egress: bool, source: &str, deny: bool) -> Result<PolicyRule, String> {
    let (eps, ents, cidrs, sets, wrong) = if egress {
        (
            &r.to_endpoints,
            &r.to_entities,
            &r.to_cidr,
            &r.to_cidr_set,
            r.from_endpoints.is_some()
                || r.from_entities.is_some()
                || r.from_cidr.is_some()
                || r.from_cidr_set.is_some(),
        )
    } else {
        (
            &r.from_endpoints,
            &r.from_entities,
            &r.from_cidr,
            &r.from_cidr_set,
            r.to_endpoints.is_some()
                || r.to_entities.is_some()
                || r.to_cidr.is_some()
                || r.to_cidr_set.is_some(),
        )
    };
    if wrong {
        return Err(format!(
            "an {} rule takes {} peers",
            if egress { "egress" } else { "ingress" },
            if egress { "to*" } else { "from*" }
        ));
    }
    let mut peers = Vec::new();
    for s in eps.iter().flatten() {
        peers.push(PeerSelector::Endpoints(selector(s)?));
    }
    for e in ents.iter().flatten() {
        peers.push(PeerSelector::Entity(Entity::parse(e).ok_or_else(|| {
            format!("unknown entity {e:?} (world, cluster, host, remote-node, all, health, init, unmanaged, kube-apiserver, ingress)")
        })?));
    }
    for c in cidrs.iter().flatten() {
        peers.push(cidr_set(&CidrRule {
            cidr: c.clone(),
            except: None,
        })?);
    }
    for c in sets.iter().flatten() {
        peers.push(cidr_set(c)?);
    }
    let to_ports = r
        .to_ports
        .iter()
        .flatten()
        .map(|p| port_rule(p, source, deny))
        .collect::<Result<_, _>>()?;
    Ok(PolicyRule { peers, to_ports })
}

/// The core policy of one object (`namespace` `None` for a clusterwide policy).
pub(crate) fn convert(
    p: &CiliumNetworkPolicy,
    namespace: Option<&str>,
    name: &str,
) -> Result<CiliumPolicy, String> {
    let spec = p.spec.clone().unwrap_or_default();
    let sel = spec
        .endpoint_selector
        .as_ref()
        .ok_or("spec.endpointSelector is required")?;
    let mut out = CiliumPolicy::new(namespace, name, selector(sel)?);
    for (sect, rules, egress, deny) in [
        ("ingress", &spec.ingress, false, false),
        ("egress", &spec.egress, true, false),
        ("ingressDeny", &spec.ingress_deny, false, true),
        ("egressDeny", &spec.egress_deny, true, true),
    ] {
        for (i, r) in rules.iter().flatten().enumerate() {
            let source = format!("{} {sect}[{i}]", out.key());
            let core = rule(r, egress, &source, deny).map_err(|m| format!("{sect}[{i}]: {m}"))?;
            match (egress, deny) {
                (false, false) => out.ingress.push(core),
                (true, false) => out.egress.push(core),
                (false, true) => out.ingress_deny.push(core),
                (true, true) => out.egress_deny.push(core),
            }
        }
    }
    Ok(out)
}

/// Every Cilium policy of the stream, converted (they need `proxy: ebpf`).
pub(crate) fn policies(objects: &[Object], ebpf: bool) -> Result<Vec<CiliumPolicy>, Error> {
    let mut out = Vec::new();
    for o in objects {
        let ObjectKind::CiliumPolicy(p) = &o.kind else {
            continue;
        };
        let kind = if clusterwide_kind(o) {
            "CiliumClusterwideNetworkPolicy"
        } else {
            "CiliumNetworkPolicy"
        };
        if !ebpf {
            return Err(Error::at(
                &o.loc(),
                format!(
                    "{kind} {}: Cilium policies need `proxy: ebpf` in the Cluster",
                    o.name
                ),
            ));
        }
        let ns = (kind == "CiliumNetworkPolicy").then(|| o.ns());
        out.push(
            convert(p, ns, &o.name)
                .map_err(|m| Error::at(&o.loc_of("spec"), format!("{kind} {}: {m}", o.name)))?,
        );
    }
    Ok(out)
}

fn clusterwide_kind(o: &Object) -> bool {
    o.node
        .get("kind")
        .and_then(|k| k.as_str())
        .is_some_and(|k| k == "CiliumClusterwideNetworkPolicy")
}
