//! Defaults and resolution: pods (with programs chosen by image) and Deployment replicas.

use crate::k8s::api::core::v1::{Container, PodSpec as K8sPodSpec};
use podnet::kube_proxy::L4;
use smoltcp::wire::Ipv4Address;

use crate::load::{Object, ObjectKind};
use crate::model::*;
use crate::resolve::{l4, Ctx, MAX_REPLICAS};
use crate::units::{broadcast, contains, parse_ip};
use crate::Error;

/// The image's name without registry, `library/` and tag or digest.
pub(crate) fn image_name(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    let image = match image[last_slash..].find(':') {
        Some(i) => &image[..last_slash + i],
        None => image,
    };
    let image = match image.split_once('/') {
        Some((reg, rest)) if reg.contains('.') || reg.contains(':') || reg == "localhost" => rest,
        _ => image,
    };
    image.strip_prefix("library/").unwrap_or(image)
}

/// The programs an image runs on its ports, and a note when something is not simulated.
pub(crate) fn apps_for(
    image: Option<&str>,
    ports: &[ContainerPortDef],
) -> (Vec<App>, Option<String>) {
    let Some(image) = image else {
        return (Vec::new(), None);
    };
    let mut apps = Vec::new();
    match image_name(image) {
        "nginx" | "httpd" | "podnet/http" => {
            apps.extend(
                ports
                    .iter()
                    .filter(|p| p.protocol == L4::Tcp)
                    .map(|p| App::Http(p.port)),
            );
            if apps.is_empty() {
                apps.push(App::Http(80));
            }
        }
        "podnet/echo" => {
            let mut nums: Vec<u16> = ports.iter().map(|p| p.port).collect();
            nums.dedup();
            if nums.is_empty() {
                nums.push(7);
            }
            for p in nums {
                apps.push(App::TcpEcho(p));
                apps.push(App::UdpEcho(p));
            }
        }
        "podnet/discard" => {
            let mut nums: Vec<u16> = ports
                .iter()
                .filter(|p| p.protocol == L4::Tcp)
                .map(|p| p.port)
                .collect();
            nums.dedup();
            if nums.is_empty() {
                nums.push(9);
            }
            apps.extend(nums.into_iter().map(App::TcpDiscard));
        }
        "coredns/coredns" | "coredns" | "podnet/dns" => apps.push(App::Dns(53)),
        _ => {}
    }
    (apps, None)
}

fn container_ports(
    o: &Object,
    base: &str,
    containers: &[Container],
) -> Result<Vec<ContainerPortDef>, Error> {
    let mut out = Vec::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, p) in c.ports.iter().flatten().enumerate() {
            let path = format!("{base}.containers.{ci}.ports.{pi}");
            let port = u16::try_from(p.container_port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    Error::at(
                        &o.loc_of(&format!("{path}.containerPort")),
                        format!("containerPort {} is outside 1-65535", p.container_port),
                    )
                })?;
            let protocol = l4(p.protocol.as_deref().unwrap_or("TCP"))
                .map_err(|m| Error::at(&o.loc_of(&format!("{path}.protocol")), m))?;
            out.push(ContainerPortDef {
                name: p.name.clone().unwrap_or_default(),
                port,
                protocol,
            });
        }
    }
    Ok(out)
}

struct PodDraft<'a> {
    o: &'a Object,
    name: String,
    spec: Option<&'a K8sPodSpec>,
    labels: podnet::policy::Labels,
    ip: Option<(Ipv4Address, Loc)>,
    deployment: Option<usize>,
    /// Replica number for Deployment pods (round-robin from node 0).
    replica: Option<usize>,
    base: &'static str,
}

pub(crate) fn pods(cx: &mut Ctx<'_>) -> Result<(), Error> {
    let mut drafts: Vec<PodDraft<'_>> = Vec::new();
    // Deployments first: pods owned by one of their ReplicaSets replace the expansion.
    let mut deployments: Vec<(&Object, usize)> = Vec::new();
    for o in cx.objects {
        let ObjectKind::Deployment(d) = &o.kind else {
            continue;
        };
        if cx
            .sc
            .deployments
            .iter()
            .any(|x| x.name == o.name && x.namespace == o.ns())
        {
            return Err(Error::at(
                &o.loc(),
                format!("Deployment {}/{} is declared twice", o.ns(), o.name),
            ));
        }
        let spec = d
            .spec
            .as_ref()
            .ok_or_else(|| Error::at(&o.loc(), "Deployment: missing field `spec`"))?;
        let replicas = match spec.replicas {
            None => 1,
            Some(r) => u32::try_from(r).map_err(|_| {
                Error::at(
                    &o.loc_of("spec.replicas"),
                    format!("replicas {r} is negative"),
                )
            })?,
        };
        if replicas > MAX_REPLICAS {
            return Err(Error::at(
                &o.loc_of("spec.replicas"),
                format!("replicas {replicas} is more than podnet simulates ({MAX_REPLICAS})"),
            ));
        }
        let tlabels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        for (k, v) in spec.selector.match_labels.iter().flatten() {
            if tlabels.get(k) != Some(v) {
                return Err(Error::at(
                    &o.loc_of("spec.selector"),
                    format!("selector {k}={v} does not match the template labels"),
                ));
            }
        }
        deployments.push((o, cx.sc.deployments.len()));
        cx.sc.deployments.push(DeploymentDef {
            name: o.name.clone(),
            namespace: o.ns().into(),
            replicas,
            pods: Vec::new(),
            loc: o.loc(),
        });
    }
    let owner_of = |o: &Object, p: &crate::k8s::api::core::v1::Pod| -> Option<usize> {
        let refs = p.metadata.owner_references.as_ref()?;
        refs.iter()
            .filter(|r| r.kind == "ReplicaSet")
            .find_map(|r| {
                deployments.iter().find_map(|(d, i)| {
                    let (base, hash) = r.name.rsplit_once('-')?;
                    (base == d.name && d.ns() == o.ns() && !hash.is_empty()).then_some(*i)
                })
            })
    };
    let mut owned = vec![false; cx.sc.deployments.len()];
    for o in cx.objects {
        let ObjectKind::Pod(p) = &o.kind else {
            continue;
        };
        if p.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            cx.warn(
                o.loc(),
                format!(
                    "skipping Pod {}/{}: hostNetwork pods are not simulated",
                    o.ns(),
                    o.name
                ),
            );
            cx.skipped_pods.insert(
                (o.ns().into(), o.name.clone()),
                "it uses hostNetwork, which is not simulated",
            );
            continue;
        }
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            cx.warn(
                o.loc(),
                format!(
                    "skipping Pod {}/{}: it has finished ({})",
                    o.ns(),
                    o.name,
                    phase.unwrap_or("")
                ),
            );
            cx.skipped_pods
                .insert((o.ns().into(), o.name.clone()), "it has finished");
            continue;
        }
        let ip = match p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(ip) => {
                let loc = o.loc_of("status.podIP");
                Some((
                    parse_ip(ip).map_err(|m| Error::at(&loc, format!("status.podIP: {m}")))?,
                    loc,
                ))
            }
        };
        let deployment = owner_of(o, p);
        if let Some(d) = deployment {
            owned[d] = true;
        }
        drafts.push(PodDraft {
            o,
            name: o.name.clone(),
            spec: p.spec.as_ref(),
            labels: p.metadata.labels.clone().unwrap_or_default(),
            ip,
            deployment,
            replica: None,
            base: "spec",
        });
    }
    for (o, di) in &deployments {
        if owned[*di] {
            continue;
        }
        let ObjectKind::Deployment(d) = &o.kind else {
            continue;
        };
        let Some(spec) = d.spec.as_ref() else {
            continue;
        };
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        for r in 0..cx.sc.deployments[*di].replicas as usize {
            drafts.push(PodDraft {
                o,
                name: format!("{}-{r}", o.name),
                spec: spec.template.spec.as_ref(),
                labels: labels.clone(),
                ip: None,
                deployment: Some(*di),
                replica: Some(r),
                base: "spec.template.spec",
            });
        }
    }
    let mut rr = 0usize;
    let n_nodes = cx.sc.nodes.len();
    for d in drafts {
        let o = d.o;
        if let Some(i) = cx.pod_index(o.ns(), &d.name) {
            return Err(Error::at(
                &o.loc(),
                format!(
                    "pod {}/{} is declared twice (first at {})",
                    o.ns(),
                    d.name,
                    cx.sc.pods[i].loc
                ),
            ));
        }
        let node_name = d
            .spec
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty());
        let node = match node_name {
            Some(n) => cx.node_index(n).ok_or_else(|| {
                Error::at(
                    &o.loc_of(&format!("{}.nodeName", d.base)),
                    format!(
                        "nodeName {n:?} is not a node of the cluster (nodes: {})",
                        cx.node_names()
                    ),
                )
            })?,
            None => match (&d.ip, d.replica) {
                (Some((ip, _)), _) if cx.sc.nodes.iter().any(|n| contains(n.pod_cidr, *ip)) => cx
                    .sc
                    .nodes
                    .iter()
                    .position(|n| contains(n.pod_cidr, *ip))
                    .unwrap_or(0),
                (_, Some(r)) => r % n_nodes,
                _ => {
                    rr += 1;
                    (rr - 1) % n_nodes
                }
            },
        };
        if let Some((ip, loc)) = &d.ip {
            let n = &cx.sc.nodes[node];
            let c = n.pod_cidr;
            let gw = Ipv4Address::from(u32::from(c.network().address()) + 1);
            if !contains(c, *ip) || *ip == c.network().address() || *ip == gw || *ip == broadcast(c)
            {
                return Err(Error::at(loc, format!("podIP {ip} is not a usable address of node {}'s pod CIDR {c} (.1 is the node's cni0)", n.name)));
            }
            if let Some(other) = cx.sc.pods.iter().find(|p| p.ip == Some(*ip)) {
                return Err(Error::at(
                    loc,
                    format!(
                        "podIP {ip} is already used by pod {}/{} ({})",
                        other.namespace, other.name, other.loc
                    ),
                ));
            }
        }
        let dns = dns_options(o, d.base, d.spec)?;
        let containers: &[Container] = d.spec.map_or(&[], |s| &s.containers);
        let ports = container_ports(o, d.base, containers)?;
        let image = containers.iter().find_map(|c| c.image.clone());
        let mut apps = Vec::new();
        for c in containers {
            let mine = container_ports(o, d.base, std::slice::from_ref(c))?;
            let (a, note) = apps_for(c.image.as_deref(), &mine);
            if let Some(note) = note {
                cx.warn(o.loc(), format!("pod {}: {note}", d.name));
            }
            apps.extend(
                a.into_iter()
                    .filter(|a| !apps.contains(a))
                    .collect::<Vec<_>>(),
            );
        }
        let index = cx.sc.pods.len();
        if let Some(di) = d.deployment {
            cx.sc.deployments[di].pods.push(index);
        }
        cx.sc.pods.push(PodDef {
            core_name: d.name.clone(),
            name: d.name,
            namespace: o.ns().into(),
            node,
            ip: d.ip.map(|(ip, _)| ip),
            labels: d.labels,
            image,
            dns,
            ports,
            apps,
            deployment: d.deployment,
            loc: o.loc(),
        });
    }
    Ok(())
}

/// A pod's `spec.dnsConfig.options`, as glibc reads them from `resolv.conf`.
fn dns_options(
    o: &Object,
    base: &str,
    spec: Option<&K8sPodSpec>,
) -> Result<podnet::program::ResolvOptions, Error> {
    let mut r = podnet::program::ResolvOptions::default();
    let opts = spec
        .and_then(|s| s.dns_config.as_ref())
        .and_then(|c| c.options.as_deref())
        .unwrap_or(&[]);
    for (i, opt) in opts.iter().enumerate() {
        let at = o.loc_of(&format!("{base}.dnsConfig.options.{i}"));
        let num = |max: u32| -> Result<u32, Error> {
            let v = opt.value.as_deref().unwrap_or("").trim();
            match v.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n.min(max)),
                _ => Err(Error::at(
                    &at,
                    format!(
                        "{}: value {v:?} is not a whole number of at least 1",
                        opt.name
                    ),
                )),
            }
        };
        match opt.name.as_str() {
            // glibc caps them: RES_MAXRETRANS 30 s, RES_MAXRETRY 5.
            "timeout" => r.timeout = podnet::Duration::from_secs(u64::from(num(30)?)),
            "attempts" => r.attempts = num(5)? as u8,
            "single-request" => r.single_request = true,
            "single-request-reopen" => r.single_request_reopen = true,
            "ndots" if num(15)? == 5 => {}
            "ndots" => {
                return Err(Error::at(
                    &at,
                    "ndots: only 5 (what the kubelet writes) is supported",
                ))
            }
            "use-vc" => {
                return Err(Error::at(
                    &at,
                    "use-vc (DNS over TCP) is not supported yet",
                ))
            }
            other => {
                return Err(Error::at(
                    &at,
                    format!("unknown resolv.conf option {other:?} (timeout, attempts, single-request, single-request-reopen, ndots)"),
                ))
            }
        }
    }
    Ok(r)
}

/// Pod names in the core are global: a pod whose name is also another pod's (in another
/// namespace), a node's or an external host's becomes `NAME.NAMESPACE`.
pub(crate) fn core_names(cx: &mut Ctx<'_>) {
    let mut used: Vec<String> = cx.sc.nodes.iter().map(|n| n.name.clone()).collect();
    used.extend(cx.sc.external.iter().map(|h| h.name.clone()));
    used.push("edge".into());
    let pods = &cx.sc.pods;
    let names: Vec<String> = pods
        .iter()
        .map(|p| {
            let clash = pods.iter().filter(|q| q.name == p.name).count() > 1;
            if clash || used.contains(&p.name) {
                format!("{}.{}", p.name, p.namespace)
            } else {
                p.name.clone()
            }
        })
        .collect();
    for (p, mut name) in cx.sc.pods.iter_mut().zip(names) {
        let base = name.clone();
        let mut k = 1;
        while used.contains(&name) {
            k += 1;
            name = format!("{base}-{k}");
        }
        used.push(name.clone());
        p.core_name = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(image_name("nginx"), "nginx");
        assert_eq!(image_name("nginx:1.25"), "nginx");
        assert_eq!(
            image_name("docker.io/library/nginx:1.25@sha256:abc"),
            "nginx"
        );
        assert_eq!(
            image_name("registry.k8s.io/coredns/coredns:v1.11.1"),
            "coredns/coredns"
        );
        assert_eq!(image_name("localhost:5000/podnet/echo:dev"), "podnet/echo");
        assert_eq!(image_name("podnet/http"), "podnet/http");
    }

    #[test]
    fn programs_by_image() {
        let tcp = |port| ContainerPortDef {
            name: String::new(),
            port,
            protocol: L4::Tcp,
        };
        assert_eq!(apps_for(Some("nginx"), &[]).0, vec![App::Http(80)]);
        assert_eq!(
            apps_for(Some("httpd"), &[tcp(8080)]).0,
            vec![App::Http(8080)]
        );
        assert_eq!(
            apps_for(Some("podnet/echo"), &[tcp(9)]).0,
            vec![App::TcpEcho(9), App::UdpEcho(9)]
        );
        assert_eq!(
            apps_for(Some("coredns/coredns:1.11"), &[]),
            (vec![App::Dns(53)], None)
        );
        assert!(apps_for(Some("busybox"), &[tcp(80)]).0.is_empty());
    }
}
