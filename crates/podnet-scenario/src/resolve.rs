//! Defaults and resolution, part one: the Cluster object, namespaces, nodes, pods and
//! Deployments.

use std::collections::BTreeMap;

use podnet::kube_proxy::L4;
use podnet::{ClusterConfig, Proxy};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::kinds::{loss_value, ClusterSpec, NumOrStr};
use crate::load::{Object, ObjectKind};
use crate::model::*;
use crate::resolve_pods::apps_for;
use crate::units::{
    broadcast, contains, overlaps, parse_cidr, parse_duration, parse_ip, parse_rate,
};
use crate::{Error, Warning};

/// Largest `conntrack.max` and `buckets` accepted: the core allocates the table up front.
pub const MAX_CONNTRACK: u32 = 1 << 22;

/// Most nodes a scenario may have.
pub const MAX_NODES: usize = 256;

/// Most replicas a Deployment may ask for.
pub const MAX_REPLICAS: u32 = 65_536;

/// Resolution state shared by the passes.
pub(crate) struct Ctx<'a> {
    pub objects: &'a [Object],
    pub warnings: &'a mut Vec<Warning>,
    pub sc: Scenario,
    /// Pods left out (hostNetwork, finished), by (namespace, name), with why.
    pub skipped_pods: BTreeMap<(String, String), &'static str>,
    /// Services left out (ExternalName), by (namespace, name).
    pub skipped_services: Vec<(String, String)>,
}

impl Ctx<'_> {
    pub fn warn(&mut self, loc: Loc, message: impl Into<String>) {
        self.warnings.push(Error::at(&loc, message));
    }

    pub fn pod_index(&self, ns: &str, name: &str) -> Option<usize> {
        self.sc
            .pods
            .iter()
            .position(|p| p.namespace == ns && p.name == name)
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.sc.nodes.iter().position(|n| n.name == name)
    }

    pub fn node_names(&self) -> String {
        let names: Vec<&str> = self.sc.nodes.iter().map(|n| n.name.as_str()).collect();
        names.join(", ")
    }
}

/// Resolves every object into a [`Scenario`].
pub(crate) fn resolve(objects: &[Object], warnings: &mut Vec<Warning>) -> Result<Scenario, Error> {
    let mut cluster: Option<(&Object, &ClusterSpec)> = None;
    for o in objects {
        if let ObjectKind::Cluster(spec) = &o.kind {
            if let Some((first, _)) = cluster {
                return Err(Error::at(
                    &o.loc(),
                    format!("a second Cluster object (the first is at {})", first.loc()),
                ));
            }
            cluster = Some((o, spec));
        }
    }
    let default_spec = ClusterSpec::default();
    let (config, name, cluster_loc) = match cluster {
        Some((o, spec)) => (cluster_config(o, spec)?, o.name.clone(), Some(o.loc())),
        None => (ClusterConfig::default(), "podnet".to_string(), None),
    };
    let mut cx = Ctx {
        objects,
        warnings,
        sc: Scenario {
            name,
            cluster_loc,
            config,
            namespaces: Vec::new(),
            nodes: Vec::new(),
            external: Vec::new(),
            pods: Vec::new(),
            deployments: Vec::new(),
            services: Vec::new(),
            network_policies: Vec::new(),
            cilium_policies: Vec::new(),
            flows: Vec::new(),
            faults: Vec::new(),
            expectations: Vec::new(),
        },
        skipped_pods: BTreeMap::new(),
        skipped_services: Vec::new(),
    };
    let (cobj, cspec) = match cluster {
        Some((o, s)) => (Some(o), s),
        None => (None, &default_spec),
    };
    namespaces(&mut cx)?;
    crate::resolve_nodes::nodes(&mut cx, cobj, cspec)?;
    external(&mut cx, cobj, cspec)?;
    crate::resolve_pods::pods(&mut cx)?;
    crate::resolve_pods::core_names(&mut cx);
    crate::resolve_net::services(&mut cx)?;
    crate::resolve_net::policies(&mut cx)?;
    cx.sc.cilium_policies =
        crate::cnp::policies(objects, cx.sc.config.proxy == podnet::Proxy::Ebpf)?;
    crate::resolve_flow::flows(&mut cx)?;
    crate::resolve_flow::faults(&mut cx)?;
    crate::resolve_expect::expectations(&mut cx)?;
    Ok(cx.sc)
}

pub(crate) fn at_err(o: &Object, pos: Pos, message: impl Into<String>) -> Error {
    Error::at(&o.loc_at(pos), message)
}

fn cluster_config(o: &Object, s: &ClusterSpec) -> Result<ClusterConfig, Error> {
    let mut c = ClusterConfig::default();
    if let Some(seed) = s.seed {
        c.seed = seed;
    }
    let cidr = |f: &Option<crate::de::At<String>>, default: Ipv4Cidr| -> Result<Ipv4Cidr, Error> {
        match f {
            None => Ok(default),
            Some(v) => {
                let cidr = parse_cidr(&v.value).map_err(|e| at_err(o, v.pos, e))?;
                if cidr.prefix_len() > 30 {
                    return Err(at_err(
                        o,
                        v.pos,
                        format!("CIDR {cidr} is too small (at most /30)"),
                    ));
                }
                Ok(cidr)
            }
        }
    };
    c.pod_cidr = cidr(&s.pod_cidr, c.pod_cidr)?;
    c.service_cidr = cidr(&s.service_cidr, c.service_cidr)?;
    c.external_cidr = cidr(&s.external_cidr, c.external_cidr)?;
    let pos = |f: &Option<crate::de::At<String>>| f.as_ref().map_or(Pos::default(), |v| v.pos);
    if overlaps(c.pod_cidr, c.service_cidr) {
        return Err(at_err(
            o,
            pos(&s.service_cidr),
            format!(
                "serviceCIDR {} overlaps podCIDR {}",
                c.service_cidr, c.pod_cidr
            ),
        ));
    }
    for (other, what) in [(c.pod_cidr, "podCIDR"), (c.service_cidr, "serviceCIDR")] {
        if overlaps(c.external_cidr, other) {
            return Err(at_err(
                o,
                pos(&s.external_cidr),
                format!("externalCIDR {} overlaps {what} {other}", c.external_cidr),
            ));
        }
    }
    if let Some(cni) = &s.cni {
        c.cni = match cni.value.as_str() {
            "bridge" => podnet::Cni::Bridge,
            "vxlan" => podnet::Cni::Vxlan,
            "native" => podnet::Cni::Native,
            other => {
                return Err(at_err(
                    o,
                    cni.pos,
                    format!("unknown cni {other:?} (bridge, vxlan or native)"),
                ))
            }
        }
    }
    if let Some(v) = s.hairpin_mode {
        c.hairpin_mode = v;
    }
    if let Some(v) = s.tso {
        c.tso = v;
    }
    if let Some(v) = s.tcp_timestamps {
        c.tcp_timestamps = v;
    }
    if let Some(p) = &s.proxy {
        c.proxy = match p.value.as_str() {
            "iptables" => Proxy::Iptables,
            "nftables" => Proxy::Nftables,
            "none" => Proxy::None,
            "ebpf" => Proxy::Ebpf,
            "ipvs" => {
                return Err(at_err(
                    o,
                    p.pos,
                    "proxy ipvs is not supported yet (iptables, nftables, ebpf or none)",
                ))
            }
            other => {
                return Err(at_err(
                    o,
                    p.pos,
                    format!("unknown proxy {other:?} (iptables, nftables, ipvs, ebpf or none)"),
                ))
            }
        };
    }
    resolve_ebpf(o, &s.ebpf, &mut c.ebpf)?;
    if let Some(v) = s.masquerade.random_fully {
        c.random_fully = v;
    }
    if let Some(v) = s.masquerade.all {
        c.masquerade_all = v;
    }
    let ct = &s.conntrack;
    for (field, target) in [
        (&ct.max, &mut c.conntrack.max),
        (&ct.buckets, &mut c.conntrack.buckets),
    ] {
        if let Some(v) = field {
            if v.value == 0 || v.value > MAX_CONNTRACK {
                return Err(at_err(
                    o,
                    v.pos,
                    format!(
                        "must be between 1 and {MAX_CONNTRACK} (the table is allocated up front)"
                    ),
                ));
            }
            *target = v.value;
        }
    }
    if let Some(v) = ct.tcp_be_liberal {
        c.conntrack.tcp_be_liberal = v;
    }
    if let Some(k) = &s.kernel {
        c.conntrack.kernel = podnet::conntrack::Kernel::parse(&k.value)
            .filter(|v| *v >= podnet::conntrack::Kernel::OLDEST)
            .ok_or_else(|| {
                at_err(
                    o,
                    k.pos,
                    format!(
                        "kernel: {:?} is not a Linux version MAJOR.MINOR, {} or later (e.g. 4.19, 5.15, 6.6)",
                        k.value,
                        podnet::conntrack::Kernel::OLDEST
                    ),
                )
            })?;
    }
    let icmp = &s.icmp;
    for (field, target) in [
        (&icmp.ratelimit, &mut c.icmp.ratelimit_ms),
        (&icmp.ratemask, &mut c.icmp.ratemask),
        (&icmp.msgs_per_sec, &mut c.icmp.msgs_per_sec),
        (&icmp.msgs_burst, &mut c.icmp.msgs_burst),
    ] {
        if let Some(v) = field {
            if v.value > i32::MAX as u32 {
                return Err(at_err(
                    o,
                    v.pos,
                    "must be at most 2147483647 (a sysctl int)",
                ));
            }
            *target = v.value;
        }
    }
    if let Some(v) = ct.tcp_loose {
        c.conntrack.tcp_loose = v;
    }
    if let Some(v) = ct.checksum {
        c.conntrack.checksum = v;
    }
    for (key, v) in &ct.timeouts {
        let secs = match &v.value {
            NumOrStr::Num(n) if *n >= 0.0 && *n <= f64::from(u32::MAX) && n.fract() == 0.0 => {
                *n as u32
            }
            NumOrStr::Num(n) => {
                return Err(at_err(
                    o,
                    v.pos,
                    format!("timeout {n} is not a whole number of seconds"),
                ))
            }
            NumOrStr::Str(s) => {
                let d = parse_duration(s).map_err(|e| at_err(o, v.pos, e))?;
                u32::try_from(d.secs()).unwrap_or(u32::MAX)
            }
        };
        let t = &mut c.conntrack;
        let slot = match key.as_str() {
            "tcpSynSent" => &mut t.tcp.syn_sent,
            "tcpSynRecv" => &mut t.tcp.syn_recv,
            "tcpEstablished" => &mut t.tcp.established,
            "tcpFinWait" => &mut t.tcp.fin_wait,
            "tcpCloseWait" => &mut t.tcp.close_wait,
            "tcpLastAck" => &mut t.tcp.last_ack,
            "tcpTimeWait" => &mut t.tcp.time_wait,
            "tcpClose" => &mut t.tcp.close,
            "tcpMaxRetrans" => &mut t.tcp.max_retrans,
            "tcpUnacknowledged" => &mut t.tcp.unacknowledged,
            "udp" => &mut t.udp,
            "udpStream" => &mut t.udp_stream,
            "icmp" => &mut t.icmp,
            "generic" => &mut t.generic,
            other => {
                return Err(at_err(
                    o,
                    o.node.pos_of("spec.conntrack.timeouts"),
                    format!("unknown conntrack timeout {other:?} (tcpSynSent, tcpSynRecv, tcpEstablished, tcpFinWait, tcpCloseWait, tcpLastAck, tcpTimeWait, tcpClose, tcpMaxRetrans, tcpUnacknowledged, udp, udpStream, icmp, generic)"),
                ))
            }
        };
        *slot = secs;
    }
    let l = &s.link;
    if let Some(v) = &l.latency {
        c.link.latency = parse_duration(&v.value).map_err(|e| at_err(o, v.pos, e))?;
    }
    if let Some(v) = &l.bandwidth {
        c.link.bandwidth_bps = parse_rate(&v.value).map_err(|e| at_err(o, v.pos, e))?;
    }
    if let Some(v) = &l.loss {
        c.link.loss = loss_value(&v.value).map_err(|e| at_err(o, v.pos, e))?;
    }
    if let Some(v) = &l.queue_bytes {
        c.link.queue_bytes = v.value as usize;
    }
    Ok(c)
}

fn namespaces(cx: &mut Ctx<'_>) -> Result<(), Error> {
    for o in cx.objects {
        if let ObjectKind::Namespace(ns) = &o.kind {
            if let Some(first) = cx.sc.namespaces.iter().find(|n| n.name == o.name) {
                let first = first.loc.clone().unwrap_or_default();
                return Err(Error::at(
                    &o.loc(),
                    format!("Namespace {} is declared twice (first at {first})", o.name),
                ));
            }
            let mut labels = ns.metadata.labels.clone().unwrap_or_default();
            labels.insert("kubernetes.io/metadata.name".into(), o.name.clone());
            cx.sc.namespaces.push(NamespaceDef {
                name: o.name.clone(),
                labels,
                loc: Some(o.loc()),
            });
        }
    }
    for o in cx.objects {
        let ns = o.ns().to_string();
        if o.namespace.is_some() && !cx.sc.namespaces.iter().any(|n| n.name == ns) {
            let mut labels = podnet::policy::Labels::new();
            labels.insert("kubernetes.io/metadata.name".to_string(), ns.clone());
            cx.sc.namespaces.push(NamespaceDef {
                name: ns,
                labels,
                loc: None,
            });
        }
    }
    if !cx.sc.namespaces.iter().any(|n| n.name == "default") {
        let mut labels = podnet::policy::Labels::new();
        labels.insert(
            "kubernetes.io/metadata.name".to_string(),
            "default".to_string(),
        );
        cx.sc.namespaces.insert(
            0,
            NamespaceDef {
                name: "default".into(),
                labels,
                loc: None,
            },
        );
    }
    Ok(())
}

/// The pod CIDR slots of the cluster range: /24s (or the range itself when smaller).
fn external(cx: &mut Ctx<'_>, cobj: Option<&Object>, spec: &ClusterSpec) -> Result<(), Error> {
    let Some(o) = cobj else { return Ok(()) };
    let net = cx.sc.config.external_cidr;
    for e in &spec.external {
        let x = &e.value;
        let ip = parse_ip(&x.ip.value).map_err(|m| at_err(o, x.ip.pos, m))?;
        let gateway = Ipv4Address::from(u32::from(net.address()) + 1);
        if !contains(net, ip) || ip == net.address() || ip == gateway || ip == broadcast(net) {
            return Err(at_err(o, x.ip.pos, format!("external host address {ip} is not a usable address of the externalCIDR {net} (.1 is the edge router)")));
        }
        let name = &x.name.value;
        if cx.sc.external.iter().any(|h| &h.name == name) || cx.node_index(name).is_some() {
            return Err(at_err(
                o,
                x.name.pos,
                format!("name {name:?} is already used by another node or external host"),
            ));
        }
        if cx.sc.external.iter().any(|h| h.ip == ip) {
            return Err(at_err(
                o,
                x.ip.pos,
                format!("external address {ip} is used twice"),
            ));
        }
        let mut ports = Vec::new();
        for p in &x.ports {
            let protocol = match &p.protocol {
                None => L4::Tcp,
                Some(v) => l4(&v.value).map_err(|m| at_err(o, v.pos, m))?,
            };
            ports.push(ContainerPortDef {
                name: p.name.clone(),
                port: p.container_port,
                protocol,
            });
        }
        let (apps, note) = apps_for(x.image.as_deref(), &ports);
        if let Some(note) = note {
            cx.warn(o.loc_at(e.pos), note);
        }
        cx.sc.external.push(ExternalDef {
            name: name.clone(),
            ip,
            image: x.image.clone(),
            apps,
            loc: Some(o.loc_at(e.pos)),
        });
    }
    Ok(())
}

/// A protocol name as Kubernetes spells it.
pub(crate) fn l4(s: &str) -> Result<L4, String> {
    match s {
        "TCP" => Ok(L4::Tcp),
        "UDP" => Ok(L4::Udp),
        "SCTP" => Err("protocol SCTP is not supported (TCP or UDP)".into()),
        other => Err(format!("unknown protocol {other:?} (TCP or UDP)")),
    }
}

/// `Cluster.spec.ebpf` onto the eBPF datapath's settings.
fn resolve_ebpf(
    o: &crate::load::Object,
    e: &crate::kinds::Ebpf,
    c: &mut podnet::ebpf::EbpfConfig,
) -> Result<(), Error> {
    use podnet::ebpf::{Algorithm, NodePortMode};
    if let Some(v) = e.socket_lb {
        c.socket_lb = v;
    }
    if let Some(a) = &e.load_balancer.algorithm {
        c.algorithm = match a.value.as_str() {
            "random" => Algorithm::Random,
            "maglev" => Algorithm::Maglev,
            other => {
                return Err(at_err(
                    o,
                    a.pos,
                    format!("unknown loadBalancer.algorithm {other:?} (random or maglev)"),
                ))
            }
        };
    }
    if let Some(m) = &e.load_balancer.mode {
        c.node_port_mode = match m.value.as_str() {
            "snat" => NodePortMode::Snat,
            "dsr" => NodePortMode::Dsr,
            other => {
                return Err(at_err(
                    o,
                    m.pos,
                    format!("unknown loadBalancer.mode {other:?} (snat or dsr)"),
                ))
            }
        };
    }
    if let Some(t) = &e.maglev.table_size {
        if !podnet::ebpf::maglev::TABLE_SIZES.contains(&t.value) {
            return Err(at_err(
                o,
                t.pos,
                format!(
                    "maglev.tableSize {} is not one of Cilium's primes {:?}",
                    t.value,
                    podnet::ebpf::maglev::TABLE_SIZES
                ),
            ));
        }
        c.maglev_table_size = t.value;
    }
    for (field, target) in [
        (&e.bpf.ct_tcp_max, &mut c.ct_tcp_max),
        (&e.bpf.ct_any_max, &mut c.ct_any_max),
        (&e.bpf.nat_max, &mut c.nat_max),
    ] {
        if let Some(v) = field {
            if v.value == 0 || v.value > MAX_CONNTRACK {
                return Err(at_err(
                    o,
                    v.pos,
                    format!("must be between 1 and {MAX_CONNTRACK}"),
                ));
            }
            *target = v.value;
        }
    }
    if let Some(v) = e.bpf.masquerade {
        c.masquerade = v;
    }
    Ok(())
}
