//! Defaults and resolution, part three: Traffic (who, to where, what) and Faults.

use podnet::kube_proxy::L4;
use podnet::{Duration, Protocol, Request};

use crate::de::At;
use crate::kinds::{loss_value, FaultSpec, TrafficSpec};
use crate::load::{Object, ObjectKind};
use crate::model::*;
use crate::resolve::Ctx;
use crate::units::{parse_duration, parse_ip, parse_rate};
use crate::Error;

/// Outcomes an `expect` may name.
pub const OUTCOMES: [&str; 5] = ["ok", "refused", "timeout", "reset", "denied"];

fn loc(o: &Object, pos: Pos) -> Loc {
    o.loc_at(pos)
}

fn duration(o: &Object, v: &Option<At<String>>, default: Duration) -> Result<Duration, Error> {
    match v {
        None => Ok(default),
        Some(v) => parse_duration(&v.value).map_err(|m| Error::at(&loc(o, v.pos), m)),
    }
}

pub(crate) fn flows(cx: &mut Ctx<'_>) -> Result<(), Error> {
    for o in cx.objects {
        let ObjectKind::Traffic(t) = &o.kind else {
            continue;
        };
        if let Some(first) = cx.sc.flows.iter().find(|f| f.name == o.name) {
            return Err(Error::at(
                &o.loc(),
                format!(
                    "Traffic {} is declared twice (first at {})",
                    o.name, first.loc
                ),
            ));
        }
        let flow = flow(cx, o, t)?;
        cx.sc.flows.push(flow);
    }
    Ok(())
}

/// Finds a pod by `NAME` (in `ns`, else anywhere if unique) or `NS/NAME`.
pub(crate) fn find_pod(cx: &Ctx<'_>, ns: &str, text: &str) -> Result<Option<usize>, String> {
    if let Some((pns, name)) = text.split_once('/') {
        return Ok(cx.pod_index(pns, name));
    }
    if let Some(i) = cx.pod_index(ns, text) {
        return Ok(Some(i));
    }
    let all: Vec<usize> = (0..cx.sc.pods.len())
        .filter(|i| cx.sc.pods[*i].name == text)
        .collect();
    match all.len() {
        0 => Ok(None),
        1 => Ok(Some(all[0])),
        _ => Err(format!("pod name {text:?} is ambiguous: it exists in several namespaces (write NAMESPACE/{text})")),
    }
}

fn skipped_note(cx: &Ctx<'_>, ns: &str, text: &str) -> Option<String> {
    let (pns, name) = text.split_once('/').unwrap_or((ns, text));
    cx.skipped_pods
        .get(&(pns.to_string(), name.to_string()))
        .map(|why| format!("pod {pns}/{name} was skipped: {why}"))
}

fn sources(cx: &Ctx<'_>, o: &Object, from: &At<String>) -> Result<Vec<Source>, Error> {
    let ns = o.ns();
    let text = from.value.trim();
    let at = loc(o, from.pos);
    if let Some(p) = find_pod(cx, ns, text).map_err(|m| Error::at(&at, m))? {
        return Ok(vec![Source::Pod(p)]);
    }
    let (dns, dname) = text.split_once('/').unwrap_or((ns, text));
    if let Some(d) = cx
        .sc
        .deployments
        .iter()
        .find(|d| d.namespace == dns && d.name == dname)
    {
        if d.pods.is_empty() {
            return Err(Error::at(
                &at,
                format!("Deployment {dns}/{dname} has no replicas to run the client"),
            ));
        }
        return Ok(d.pods.iter().map(|p| Source::Pod(*p)).collect());
    }
    if let Some(h) = cx.sc.external.iter().position(|h| h.name == text) {
        return Ok(vec![Source::External(h)]);
    }
    if let Some(note) = skipped_note(cx, ns, text) {
        return Err(Error::at(&at, format!("from: {note}")));
    }
    Err(Error::at(
        &at,
        format!("from: no pod, Deployment or external host is named {text:?}"),
    ))
}

fn service_index(cx: &Ctx<'_>, ns: &str, name: &str) -> Option<usize> {
    cx.sc
        .services
        .iter()
        .position(|s| s.namespace == ns && s.name == name)
}

/// A Service found from a DNS-style name: `SVC.NS.svc.cluster.local`, `SVC.NS.svc`, `SVC.NS`.
fn service_by_dns(cx: &Ctx<'_>, host: &str) -> Option<usize> {
    let h = host.trim_end_matches('.');
    let h = h
        .strip_suffix(".svc.cluster.local")
        .or_else(|| h.strip_suffix(".svc"))
        .unwrap_or(h);
    let (svc, ns) = h.split_once('.')?;
    service_index(cx, ns, svc)
}

/// Resolves `to` into a target, and the protocol a Service port implies.
fn target(
    cx: &mut Ctx<'_>,
    o: &Object,
    ns: &str,
    to: &At<String>,
) -> Result<(Target, Option<L4>), Error> {
    let at = loc(o, to.pos);
    let text = to.value.trim();
    let (host, port_text) = text.rsplit_once(':').ok_or_else(|| {
        Error::at(&at, format!("to: expected HOST:PORT (like web:80, web.prod.svc.cluster.local:80, 10.96.0.10:80), found {text:?}"))
    })?;
    let number = port_text.parse::<u16>().ok().filter(|p| *p > 0);
    let bad_port = || Error::at(&at, format!("to: invalid port {port_text:?} in {text:?}"));
    if let Ok(ip) = parse_ip(host) {
        return Ok((
            Target::Ip {
                ip,
                port: number.ok_or_else(bad_port)?,
            },
            None,
        ));
    }
    let svc = service_by_dns(cx, host).or_else(|| {
        if host.contains('.') {
            None
        } else {
            service_index(cx, ns, host)
        }
    });
    if let Some(si) = svc {
        let s = &cx.sc.services[si];
        let port = match number {
            Some(n) => s.ports.iter().find(|p| p.port == n),
            None => s.ports.iter().find(|p| p.name == port_text),
        };
        let proto = port
            .filter(|p| {
                !s.ports
                    .iter()
                    .any(|q| q.port == p.port && q.protocol != p.protocol)
            })
            .map(|p| p.protocol);
        let n = match (port, number) {
            (Some(p), _) => p.port,
            (None, Some(n)) => {
                let what = format!(
                    "Service {}/{} has no port {n}: connections will find no rule",
                    s.namespace, s.name
                );
                cx.warnings.push(Error::at(&at, what));
                n
            }
            (None, None) => {
                return Err(Error::at(
                    &at,
                    format!(
                        "to: Service {}/{} has no port named {port_text:?}",
                        s.namespace, s.name
                    ),
                ))
            }
        };
        let t = if s.cluster_ip == ClusterIp::Headless {
            Target::HeadlessService {
                service: si,
                port: n,
            }
        } else {
            Target::Service {
                service: si,
                port: n,
            }
        };
        return Ok((t, proto));
    }
    if let Some(p) = find_pod(cx, ns, host).map_err(|m| Error::at(&at, m))? {
        let port = match number {
            Some(n) => n,
            None => cx.sc.pods[p]
                .ports
                .iter()
                .find(|c| c.name == port_text)
                .map(|c| c.port)
                .ok_or_else(|| {
                    Error::at(
                        &at,
                        format!(
                            "to: pod {} has no containerPort named {port_text:?}",
                            cx.sc.pods[p].name
                        ),
                    )
                })?,
        };
        return Ok((Target::Pod { pod: p, port }, None));
    }
    let port = number.ok_or_else(bad_port)?;
    if let Some(n) = cx.node_index(host) {
        return Ok((Target::Node { node: n, port }, None));
    }
    if let Some(h) = cx.sc.external.iter().position(|h| h.name == host) {
        return Ok((Target::External { host: h, port }, None));
    }
    if cx.skipped_services.iter().any(|(sns, s)| {
        s == host.split('.').next().unwrap_or(host) && (sns == ns || host.contains(sns.as_str()))
    }) {
        return Err(Error::at(
            &at,
            format!("to: Service {host} is an ExternalName Service, which is not simulated"),
        ));
    }
    if let Some(note) = skipped_note(cx, ns, host) {
        return Err(Error::at(&at, format!("to: {note}")));
    }
    Err(Error::at(
        &at,
        format!("to: {host:?} is no Service (in namespace {ns}), pod, node or external host"),
    ))
}

/// Parses `GET /path HTTP/1.1` into a request; other text is sent as is and echoed.
fn request(text: &str, host: &str) -> Result<Request, String> {
    let mut words = text.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next());
    let is_http = method.bytes().all(|b| b.is_ascii_uppercase())
        && !method.is_empty()
        && path.is_some_and(|p| p.starts_with('/'));
    if !is_http {
        return Ok(Request::Echo(text.as_bytes().to_vec()));
    }
    if method != "GET" {
        return Err(format!("only GET requests are supported, not {method}"));
    }
    if let Some(v) = words.next() {
        if !v.starts_with("HTTP/") {
            return Err(format!(
                "invalid HTTP request line {text:?} (expected like \"GET / HTTP/1.1\")"
            ));
        }
    }
    Ok(Request::Http {
        host: host.to_string(),
        path: path.unwrap_or("/").to_string(),
    })
}

fn flow(cx: &mut Ctx<'_>, o: &Object, t: &TrafficSpec) -> Result<FlowDef, Error> {
    let from = sources(cx, o, &t.from)?;
    let client_ns = match from.first() {
        Some(Source::Pod(p)) => cx.sc.pods[*p].namespace.clone(),
        _ => o.ns().to_string(),
    };
    let (to, implied) = target(cx, o, &client_ns, &t.to)?;
    let protocol = match &t.protocol {
        None => match implied {
            Some(L4::Udp) => Protocol::Udp,
            _ => Protocol::Tcp,
        },
        Some(p) => match p.value.to_ascii_uppercase().as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "ICMP" => {
                return Err(Error::at(
                    &loc(o, p.pos),
                    "protocol ICMP is not supported yet (the core client speaks TCP and UDP)",
                ))
            }
            other => {
                return Err(Error::at(
                    &loc(o, p.pos),
                    format!("unknown protocol {other:?} (TCP, UDP or ICMP)"),
                ))
            }
        },
    };
    let to_text = t.to.value.trim().to_string();
    let (host, port) = to_text.rsplit_once(':').unwrap_or((&to_text, ""));
    let host_header = if port == "80" {
        host.to_string()
    } else {
        to_text.clone()
    };
    let given = [t.request.is_some(), t.bytes.is_some(), t.upload.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(Error::at(
            &o.loc_of("spec"),
            "request, bytes and upload exclude each other",
        ));
    }
    let request = match (&t.request, &t.bytes, &t.upload) {
        (Some(r), _, _) if protocol == Protocol::Udp => Request::Echo(r.value.as_bytes().to_vec()),
        (Some(r), _, _) => {
            request(&r.value, &host_header).map_err(|m| Error::at(&loc(o, r.pos), m))?
        }
        (_, Some(b), _) | (_, _, Some(b)) if b.value == 0 => {
            return Err(Error::at(
                &loc(o, b.pos),
                "a transfer needs at least 1 byte",
            ))
        }
        (_, Some(b), _) if protocol == Protocol::Udp && b.value > 65507 => {
            return Err(Error::at(
                &loc(o, b.pos),
                "a UDP datagram holds at most 65507 bytes",
            ))
        }
        (_, Some(b), _) => Request::Bulk(usize::try_from(b.value).unwrap_or(usize::MAX)),
        (_, _, Some(u)) if protocol == Protocol::Udp => {
            return Err(Error::at(&loc(o, u.pos), "upload needs TCP"))
        }
        (_, _, Some(u)) => Request::Upload(usize::try_from(u.value).unwrap_or(usize::MAX)),
        _ if protocol == Protocol::Udp => Request::Echo(b"ping\n".to_vec()),
        _ => Request::Http {
            host: host_header,
            path: "/".into(),
        },
    };
    let count = t.count.as_ref().map_or(1, |c| c.value);
    let concurrency = match &t.concurrency {
        None => 1,
        Some(c) if c.value == 0 => {
            return Err(Error::at(&loc(o, c.pos), "concurrency must be at least 1"))
        }
        Some(c) => c.value,
    };
    let timeout = duration(o, &t.timeout, Duration::from_secs(5))?;
    if timeout == Duration::ZERO {
        return Err(Error::at(
            &o.loc_of("spec.timeout"),
            "timeout must be longer than 0s",
        ));
    }
    let unspec = match &t.address_family {
        None => false,
        Some(f) if f.value == "inet" => false,
        Some(f) if f.value == "unspec" => true,
        Some(f) => {
            return Err(Error::at(
                &loc(o, f.pos),
                format!("unknown addressFamily {:?} (inet or unspec)", f.value),
            ))
        }
    };
    let expect = match t.expect.as_ref().and_then(|e| e.outcome.as_ref()) {
        None => None,
        Some(v) if OUTCOMES.contains(&v.value.as_str()) => Some(v.value.clone()),
        Some(v) => {
            return Err(Error::at(
                &loc(o, v.pos),
                format!(
                    "unknown outcome {:?} (one of {})",
                    v.value,
                    OUTCOMES.join(", ")
                ),
            ))
        }
    };
    Ok(FlowDef {
        name: o.name.clone(),
        namespace: o.ns().into(),
        from,
        from_text: t.from.value.clone(),
        to,
        to_text,
        protocol,
        request,
        count,
        concurrency,
        start: duration(o, &t.start, Duration::ZERO)?,
        interval: duration(o, &t.interval, Duration::ZERO)?,
        timeout,
        unspec,
        expect,
        expect_status: t.expect.as_ref().and_then(|e| e.http_status),
        loc: o.loc(),
    })
}

pub(crate) fn faults(cx: &mut Ctx<'_>) -> Result<(), Error> {
    for o in cx.objects {
        let ObjectKind::Fault(f) = &o.kind else {
            continue;
        };
        let fault = fault(cx, o, f)?;
        cx.sc.faults.push(fault);
    }
    Ok(())
}

fn node_ref(cx: &Ctx<'_>, o: &Object, v: &At<String>) -> Result<usize, Error> {
    cx.node_index(v.value.trim()).ok_or_else(|| {
        Error::at(
            &loc(o, v.pos),
            format!(
                "{:?} is not a node of the cluster (nodes: {})",
                v.value,
                cx.node_names()
            ),
        )
    })
}

fn fault(cx: &Ctx<'_>, o: &Object, f: &FaultSpec) -> Result<FaultDef, Error> {
    let at = duration(o, &f.at, Duration::ZERO)?;
    let until = match &f.until {
        None => None,
        Some(u) => {
            let t = parse_duration(&u.value).map_err(|m| Error::at(&loc(o, u.pos), m))?;
            if t <= at {
                return Err(Error::at(
                    &loc(o, u.pos),
                    format!("until ({}) must be after at", u.value),
                ));
            }
            Some(t)
        }
    };
    let link_fields =
        f.loss.is_some() || f.latency.is_some() || f.bandwidth.is_some() || f.down.is_some();
    let kinds = [
        f.link.is_some() || link_fields,
        f.delete_pod.is_some(),
        f.scale.is_some(),
        f.conntrack_flush.is_some(),
        f.conntrack_max.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => return Err(Error::at(&o.loc_of("spec"), "a Fault needs one action: link (with loss, latency, bandwidth or down), deletePod, scale, conntrackFlush or conntrackMax")),
        1 => {}
        _ => return Err(Error::at(&o.loc_of("spec"), "a Fault has one action: split link, deletePod, scale, conntrackFlush and conntrackMax into several Faults")),
    }
    let action = if let Some(l) = &f.link {
        let text = l.value.trim();
        let name = match text.rsplit_once('/') {
            Some((n, "eth0")) => n,
            _ => text,
        };
        let target = if let Some(n) = cx.node_index(name) {
            LinkTarget::Uplink(n)
        } else if let Some(p) =
            find_pod(cx, o.ns(), name).map_err(|m| Error::at(&loc(o, l.pos), m))?
        {
            LinkTarget::Pod(p)
        } else if let Some(h) = cx.sc.external.iter().position(|h| h.name == name) {
            LinkTarget::External(h)
        } else {
            return Err(Error::at(
                &loc(o, l.pos),
                format!("link: {name:?} is no node, pod or external host"),
            ));
        };
        if !link_fields {
            return Err(Error::at(
                &loc(o, l.pos),
                "link: say what happens to it (loss, latency, bandwidth or down)",
            ));
        }
        let loss = match &f.loss {
            None => None,
            Some(v) => Some(loss_value(&v.value).map_err(|m| Error::at(&loc(o, v.pos), m))?),
        };
        let latency = match &f.latency {
            None => None,
            Some(v) => Some(parse_duration(&v.value).map_err(|m| Error::at(&loc(o, v.pos), m))?),
        };
        let bandwidth = match &f.bandwidth {
            None => None,
            Some(v) => Some(parse_rate(&v.value).map_err(|m| Error::at(&loc(o, v.pos), m))?),
        };
        FaultAction::Link {
            target,
            loss,
            latency,
            bandwidth,
            down: f.down.as_ref().is_some_and(|d| d.value),
        }
    } else if link_fields {
        return Err(Error::at(
            &o.loc_of("spec"),
            "loss, latency, bandwidth and down need a link (like node-a/eth0)",
        ));
    } else if let Some(p) = &f.delete_pod {
        let pod = find_pod(cx, o.ns(), p.value.trim())
            .map_err(|m| Error::at(&loc(o, p.pos), m))?
            .ok_or_else(|| {
                Error::at(
                    &loc(o, p.pos),
                    format!("deletePod: no pod is named {:?}", p.value),
                )
            })?;
        FaultAction::DeletePod { pod }
    } else if let Some(s) = &f.scale {
        let name = s.value.deployment.value.trim();
        let (dns, dname) = name.split_once('/').unwrap_or((o.ns(), name));
        let deployment = cx
            .sc
            .deployments
            .iter()
            .position(|d| d.namespace == dns && d.name == dname)
            .ok_or_else(|| {
                Error::at(
                    &loc(o, s.value.deployment.pos),
                    format!("scale: no Deployment {dns}/{dname}"),
                )
            })?;
        FaultAction::Scale {
            deployment,
            replicas: s.value.replicas.value,
        }
    } else if let Some(n) = &f.conntrack_flush {
        FaultAction::ConntrackFlush {
            node: node_ref(cx, o, n)?,
        }
    } else if let Some(m) = &f.conntrack_max {
        if m.value.max.value == 0 {
            return Err(Error::at(
                &loc(o, m.value.max.pos),
                "max must be at least 1",
            ));
        }
        FaultAction::ConntrackMax {
            node: node_ref(cx, o, &m.value.node)?,
            max: m.value.max.value,
        }
    } else {
        return Err(Error::at(&o.loc_of("spec"), "a Fault needs an action"));
    };
    if until.is_some()
        && !matches!(
            action,
            FaultAction::Link { .. } | FaultAction::ConntrackMax { .. }
        )
    {
        return Err(Error::at(
            &o.loc_of("spec.until"),
            "until only applies to link changes and conntrackMax",
        ));
    }
    Ok(FaultDef {
        name: o.name.clone(),
        at,
        until,
        action,
        loc: o.loc(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            request("GET /x HTTP/1.1", "web"),
            Ok(Request::Http {
                host: "web".into(),
                path: "/x".into()
            })
        );
        assert_eq!(
            request("hello", "web"),
            Ok(Request::Echo(b"hello".to_vec()))
        );
        assert!(request("POST / HTTP/1.1", "web").is_err());
        assert!(request("GET / FTP", "web").is_err());
    }
}
