//! NetworkPolicy objects converted to the core's [`podnet::policy::Policy`].

use crate::k8s::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use crate::k8s::apimachinery::pkg::apis::meta::v1::LabelSelector;
use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;
use podnet::policy::{Op, Peer, Policy, PortRule, PortSpec, Proto, Rule, Selector, Types};

use crate::model::PodDef;
use crate::units::parse_cidr;

/// A core pod spec named `name` on `node` with `p`'s namespace, labels and named ports.
pub(crate) fn pod_spec(p: &PodDef, name: &str, node: podnet::NodeId) -> podnet::PodSpec {
    let mut spec = podnet::PodSpec::new(name, node).namespace(&p.namespace);
    spec.labels = p.labels.clone();
    for cp in p.ports.iter().filter(|cp| !cp.name.is_empty()) {
        let proto = match cp.protocol {
            podnet::kube_proxy::L4::Tcp => Proto::Tcp,
            podnet::kube_proxy::L4::Udp => Proto::Udp,
        };
        spec = spec.named_port(&cp.name, proto, cp.port);
    }
    spec
}

pub(crate) fn selector(s: &LabelSelector) -> Result<Selector, String> {
    let mut out = Selector::all();
    for (k, v) in s.match_labels.iter().flatten() {
        out = out.and_label(k, v);
    }
    for r in s.match_expressions.iter().flatten() {
        let op = match r.operator.as_str() {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            o => return Err(format!("unknown matchExpressions operator {o:?}")),
        };
        let values: Vec<&str> = r.values.iter().flatten().map(String::as_str).collect();
        out = out.and_expr(&r.key, op, &values);
    }
    Ok(out)
}

/// A protocol name (TCP when omitted).
pub(crate) fn proto(p: Option<&str>) -> Result<Proto, String> {
    match p.unwrap_or("TCP") {
        "TCP" => Ok(Proto::Tcp),
        "UDP" => Ok(Proto::Udp),
        "SCTP" => Ok(Proto::Sctp),
        o => Err(format!("unknown protocol {o:?} (TCP, UDP or SCTP)")),
    }
}

fn peer(p: &NetworkPolicyPeer) -> Result<Peer, String> {
    if let Some(b) = &p.ip_block {
        if p.pod_selector.is_some() || p.namespace_selector.is_some() {
            return Err("a peer with ipBlock may have no other field".into());
        }
        let cidr = parse_cidr(&b.cidr).map_err(|m| format!("ipBlock.cidr: {m}"))?;
        let except = b
            .except
            .iter()
            .flatten()
            .map(|e| parse_cidr(e).map_err(|m| format!("ipBlock.except: {m}")))
            .collect::<Result<_, _>>()?;
        return Ok(Peer::IpBlock { cidr, except });
    }
    if p.pod_selector.is_none() && p.namespace_selector.is_none() {
        return Err("a peer needs podSelector, namespaceSelector or ipBlock".into());
    }
    Ok(Peer::Pods {
        ns_selector: p.namespace_selector.as_ref().map(selector).transpose()?,
        pod_selector: p.pod_selector.as_ref().map(selector).transpose()?,
    })
}

fn port(p: &NetworkPolicyPort) -> Result<PortRule, String> {
    let protocol = proto(p.protocol.as_deref())?;
    let port = match &p.port {
        None => None,
        Some(IntOrString::Int(n)) => Some(PortSpec::Number(
            u16::try_from(*n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("port {n} out of range"))?,
        )),
        Some(IntOrString::String(s)) => Some(PortSpec::Name(s.clone())),
    };
    let end_port = match p.end_port {
        None => None,
        Some(e) => {
            let Some(PortSpec::Number(start)) = port else {
                return Err("endPort needs a numeric port".into());
            };
            let e = u16::try_from(e)
                .ok()
                .filter(|e| *e >= start)
                .ok_or_else(|| format!("endPort {e} is below port {start} or out of range"))?;
            Some(e)
        }
    };
    Ok(PortRule {
        protocol,
        port,
        end_port,
    })
}

fn rule(
    peers: Option<&Vec<NetworkPolicyPeer>>,
    ports: Option<&Vec<NetworkPolicyPort>>,
) -> Result<Rule, String> {
    Ok(Rule {
        peers: peers
            .into_iter()
            .flatten()
            .map(peer)
            .collect::<Result<_, _>>()?,
        ports: ports
            .into_iter()
            .flatten()
            .map(port)
            .collect::<Result<_, _>>()?,
    })
}

/// The core policy of a NetworkPolicy object.
pub(crate) fn convert(p: &NetworkPolicy, namespace: &str, name: &str) -> Result<Policy, String> {
    let spec = p.spec.clone().unwrap_or_default();
    let pod_selector = spec
        .pod_selector
        .as_ref()
        .map(selector)
        .transpose()?
        .unwrap_or_default();
    let mut out = Policy::new(namespace, name, pod_selector);
    for r in spec.ingress.iter().flatten() {
        out.ingress
            .push(rule(r.from.as_ref(), r.ports.as_ref()).map_err(|m| format!("ingress: {m}"))?);
    }
    for r in spec.egress.iter().flatten() {
        out.egress
            .push(rule(r.to.as_ref(), r.ports.as_ref()).map_err(|m| format!("egress: {m}"))?);
    }
    if let Some(types) = &spec.policy_types {
        let mut t = Types {
            ingress: false,
            egress: false,
        };
        for ty in types {
            match ty.as_str() {
                "Ingress" => t.ingress = true,
                "Egress" => t.egress = true,
                o => return Err(format!("unknown policyType {o:?} (Ingress or Egress)")),
            }
        }
        out.policy_types = Some(t);
    }
    Ok(out)
}
