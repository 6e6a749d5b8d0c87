//! Defaults and resolution, part two: Services, their endpoints (from EndpointSlices or the
//! selector, with named target ports looked up per backend) and NetworkPolicies.

use crate::k8s::api::core::v1::Service;
use crate::k8s::api::discovery::v1::EndpointSlice;
use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;
use podnet::cluster::NODE_PORTS;
use podnet::kube_proxy::L4;

use crate::load::{Object, ObjectKind};
use crate::model::*;
use crate::resolve::{l4, Ctx};
use crate::units::{broadcast, contains, parse_ip};
use crate::Error;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub(crate) fn services(cx: &mut Ctx<'_>) -> Result<(), Error> {
    for o in cx.objects {
        let ObjectKind::Service(svc) = &o.kind else {
            continue;
        };
        if let Some(def) = service(cx, o, svc)? {
            cx.sc.services.push(def);
        }
    }
    Ok(())
}

fn service(cx: &mut Ctx<'_>, o: &Object, svc: &Service) -> Result<Option<ServiceDef>, Error> {
    let ns = o.ns().to_string();
    if let Some(first) = cx
        .sc
        .services
        .iter()
        .find(|s| s.name == o.name && s.namespace == ns)
    {
        return Err(Error::at(
            &o.loc(),
            format!(
                "Service {ns}/{} is declared twice (first at {})",
                o.name, first.loc
            ),
        ));
    }
    let default_spec = Default::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let node_port = match spec.type_.as_deref() {
        None | Some("ClusterIP") => false,
        Some("NodePort" | "LoadBalancer") => true,
        Some("ExternalName") => {
            cx.warn(o.loc(), format!("skipping Service {ns}/{}: ExternalName Services are not simulated", o.name));
            cx.skipped_services.push((ns, o.name.clone()));
            return Ok(None);
        }
        Some(other) => {
            return Err(Error::at(&o.loc_of("spec.type"), format!("unknown Service type {other:?} (ClusterIP, NodePort, LoadBalancer or ExternalName)")))
        }
    };
    let range = cx.sc.config.service_cidr;
    let cluster_ip = match spec.cluster_ip.as_deref() {
        None | Some("") => ClusterIp::Auto,
        Some("None") => ClusterIp::Headless,
        Some(text) => {
            let loc = o.loc_of("spec.clusterIP");
            let ip = parse_ip(text).map_err(|m| Error::at(&loc, format!("clusterIP: {m}")))?;
            if !contains(range, ip) || ip == range.network().address() || ip == broadcast(range) {
                return Err(Error::at(
                    &loc,
                    format!("clusterIP {ip} is not a usable address of the serviceCIDR {range}"),
                ));
            }
            if let Some(other) = cx
                .sc
                .services
                .iter()
                .find(|s| s.cluster_ip == ClusterIp::Ip(ip))
            {
                return Err(Error::at(
                    &loc,
                    format!(
                        "clusterIP {ip} is already used by Service {}/{} ({})",
                        other.namespace, other.name, other.loc
                    ),
                ));
            }
            ClusterIp::Ip(ip)
        }
    };
    if cluster_ip == ClusterIp::Headless && node_port {
        return Err(Error::at(
            &o.loc_of("spec.type"),
            "a headless Service (clusterIP: None) cannot be of type NodePort or LoadBalancer",
        ));
    }
    let mut ports = Vec::new();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let path = format!("spec.ports.{i}");
        let port = u16::try_from(p.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Error::at(
                    &o.loc_of(&format!("{path}.port")),
                    format!("port {} is outside 1-65535", p.port),
                )
            })?;
        let protocol = l4(p.protocol.as_deref().unwrap_or("TCP"))
            .map_err(|m| Error::at(&o.loc_of(&format!("{path}.protocol")), m))?;
        let target = match &p.target_port {
            None => TargetPort::Number(port),
            Some(IntOrString::Int(n)) => {
                TargetPort::Number(u16::try_from(*n).ok().filter(|p| *p > 0).ok_or_else(|| {
                    Error::at(
                        &o.loc_of(&format!("{path}.targetPort")),
                        format!("targetPort {n} is outside 1-65535"),
                    )
                })?)
            }
            Some(IntOrString::String(s)) if s.is_empty() => TargetPort::Number(port),
            Some(IntOrString::String(s)) => TargetPort::Name(s.clone()),
        };
        let np = match p.node_port {
            None | Some(0) => None,
            Some(n) => {
                let loc = o.loc_of(&format!("{path}.nodePort"));
                if !node_port {
                    return Err(Error::at(
                        &loc,
                        "nodePort is set on a Service of type ClusterIP",
                    ));
                }
                let n = u16::try_from(n)
                    .ok()
                    .filter(|n| (NODE_PORTS.0..=NODE_PORTS.1).contains(n))
                    .ok_or_else(|| {
                        Error::at(
                            &loc,
                            format!("nodePort {n} is outside {}-{}", NODE_PORTS.0, NODE_PORTS.1),
                        )
                    })?;
                let used = cx
                    .sc
                    .services
                    .iter()
                    .flat_map(|s| s.ports.iter().map(move |q| (s, q)))
                    .find(|(_, q)| q.node_port == Some(n));
                if let Some((s, _)) = used {
                    return Err(Error::at(
                        &loc,
                        format!(
                            "nodePort {n} is already used by Service {}/{}",
                            s.namespace, s.name
                        ),
                    ));
                }
                if ports
                    .iter()
                    .any(|q: &ServicePortDef| q.node_port == Some(n))
                {
                    return Err(Error::at(&loc, format!("nodePort {n} is used twice")));
                }
                Some(n)
            }
        };
        let name = p.name.clone().unwrap_or_default();
        if ports
            .iter()
            .any(|q: &ServicePortDef| q.port == port && q.protocol == protocol)
        {
            return Err(Error::at(
                &o.loc_of(&format!("{path}.port")),
                format!("port {port}/{} is listed twice", protocol.name()),
            ));
        }
        ports.push(ServicePortDef {
            name,
            protocol,
            port,
            target,
            node_port: np,
            endpoints: Vec::new(),
        });
    }
    if ports.is_empty() && cluster_ip != ClusterIp::Headless {
        return Err(Error::at(
            &o.loc_of("spec.ports"),
            "spec.ports: a Service needs at least one port",
        ));
    }
    let session_affinity = match spec.session_affinity.as_deref() {
        None | Some("None") => None,
        Some("ClientIP") => {
            let t = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(10800);
            if !(1..=86400).contains(&t) {
                return Err(Error::at(
                    &o.loc_of("spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
                    format!("timeoutSeconds {t} is outside 1-86400"),
                ));
            }
            Some(t as u32)
        }
        Some(other) => {
            return Err(Error::at(
                &o.loc_of("spec.sessionAffinity"),
                format!("unknown sessionAffinity {other:?} (None or ClientIP)"),
            ))
        }
    };
    let policy = |field: &Option<String>, path: &str| -> Result<bool, Error> {
        match field.as_deref() {
            None | Some("Cluster") => Ok(false),
            Some("Local") => Ok(true),
            Some(other) => Err(Error::at(
                &o.loc_of(path),
                format!("unknown traffic policy {other:?} (Cluster or Local)"),
            )),
        }
    };
    let external_local = policy(&spec.external_traffic_policy, "spec.externalTrafficPolicy")?;
    let internal_local = policy(&spec.internal_traffic_policy, "spec.internalTrafficPolicy")?;
    let selector = spec.selector.clone().filter(|s| !s.is_empty());
    let mut def = ServiceDef {
        name: o.name.clone(),
        namespace: ns,
        cluster_ip,
        node_port,
        ports,
        selector,
        from_slices: false,
        session_affinity,
        external_local,
        internal_local,
        loc: o.loc(),
    };
    let slices: Vec<(&Object, &EndpointSlice)> = cx
        .objects
        .iter()
        .filter_map(|s| match &s.kind {
            ObjectKind::EndpointSlice(e) if s.ns() == def.namespace => Some((s, e.as_ref())),
            _ => None,
        })
        .filter(|(_, e)| {
            e.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                == Some(&def.name)
        })
        .collect();
    if slices.is_empty() {
        endpoints_from_selector(cx, &mut def);
    } else {
        def.from_slices = true;
        for (so, slice) in slices {
            endpoints_from_slice(cx, &mut def, so, slice);
        }
    }
    Ok(Some(def))
}

/// A pod's port for a target port, if it has it.
fn backend_port(pod: &PodDef, target: &TargetPort, protocol: L4) -> Option<u16> {
    match target {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => pod
            .ports
            .iter()
            .find(|p| &p.name == name && p.protocol == protocol)
            .map(|p| p.port),
    }
}

fn matches(labels: &podnet::policy::Labels, selector: &podnet::policy::Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// What a Service's selector makes of a pod: for each of the Service's ports the pod has, the
/// port's index and the backend port (empty: not an endpoint).
pub(crate) fn selector_endpoints(def: &ServiceDef, pod: &PodDef) -> Vec<(usize, u16)> {
    let Some(selector) = &def.selector else {
        return Vec::new();
    };
    if pod.namespace != def.namespace || !matches(&pod.labels, selector) {
        return Vec::new();
    }
    def.ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, backend_port(pod, &p.target, p.protocol)?)))
        .collect()
}

fn endpoints_from_selector(cx: &mut Ctx<'_>, def: &mut ServiceDef) {
    for (i, pod) in cx.sc.pods.iter().enumerate() {
        for (p, port) in selector_endpoints(def, pod) {
            def.ports[p].endpoints.push(EndpointDef { pod: i, port });
        }
    }
}

fn endpoints_from_slice(
    cx: &mut Ctx<'_>,
    def: &mut ServiceDef,
    so: &Object,
    slice: &EndpointSlice,
) {
    if slice.address_type != "IPv4" {
        cx.warn(
            so.loc(),
            format!(
                "skipping EndpointSlice {}: addressType {} (only IPv4 is simulated)",
                so.name, slice.address_type
            ),
        );
        return;
    }
    for (ei, ep) in slice.endpoints.iter().enumerate() {
        if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
            continue;
        }
        for addr in &ep.addresses {
            let by_ref = ep
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| {
                    let ns = r.namespace.as_deref().unwrap_or(&def.namespace);
                    cx.pod_index(ns, r.name.as_deref()?)
                });
            let by_ip = parse_ip(addr)
                .ok()
                .and_then(|ip| cx.sc.pods.iter().position(|p| p.ip == Some(ip)));
            let Some(pod) = by_ref.or(by_ip) else {
                cx.warn(
                    so.loc_of(&format!("endpoints.{ei}")),
                    format!(
                        "endpoint {addr} of Service {}/{} is not a pod of the scenario: skipped",
                        def.namespace, def.name
                    ),
                );
                continue;
            };
            for p in def.ports.iter_mut() {
                let from_slice = slice.ports.iter().flatten().find(|sp| {
                    sp.name.as_deref().unwrap_or("") == p.name
                        && sp.protocol.as_deref().unwrap_or("TCP")
                            == p.protocol.name().to_ascii_uppercase()
                });
                let port = match from_slice.and_then(|sp| sp.port) {
                    Some(n) => u16::try_from(n).ok().filter(|n| *n > 0),
                    None => backend_port(&cx.sc.pods[pod], &p.target, p.protocol),
                };
                if let Some(port) = port {
                    if !p.endpoints.iter().any(|e| e.pod == pod) {
                        p.endpoints.push(EndpointDef { pod, port });
                    }
                }
            }
        }
    }
}

pub(crate) fn policies(cx: &mut Ctx<'_>) -> Result<(), Error> {
    for o in cx.objects {
        if let ObjectKind::NetworkPolicy(p) = &o.kind {
            let core = crate::netpol::convert(p, o.ns(), &o.name).map_err(|m| {
                Error::at(&o.loc_of("spec"), format!("NetworkPolicy {}: {m}", o.name))
            })?;
            cx.sc.network_policies.push(PolicyDef {
                name: o.name.clone(),
                namespace: o.ns().into(),
                policy: (**p).clone(),
                core,
                loc: o.loc(),
            });
        }
    }
    Ok(())
}
