//! The Service maps of the eBPF datapath (Cilium's `cilium_lb4_services_v2`,
//! `cilium_lb4_backends_v3` and `cilium_lb4_maglev`): frontends (ClusterIP:port, NodePort) to
//! backends, backend selection (random or Maglev), session affinity, and the socket-level
//! load balancer a pod's `connect()` goes through (`cgroup/connect4`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::Ipv4Address;

use super::config::{Algorithm, EbpfConfig};
use super::maglev::{self, Backend, Maglev};
use crate::kube_proxy::{Endpoint, ServicePort};
use crate::rng::SimRng;

/// A Service frontend as the maps key it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    /// ClusterIP, or the node's address for a NodePort.
    pub addr: Ipv4Address,
    /// Service port or node port.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// A backend chosen for a new connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Backend address.
    pub addr: Ipv4Address,
    /// Backend (target) port.
    pub port: u16,
    /// The node the backend runs on.
    pub node: String,
    /// Whether it runs on this node.
    pub local: bool,
    /// How it was chosen, for traces (`random 2 of 3`, `maglev slot 812 of 16381`, ...).
    pub how: String,
    /// The Service (`namespace/name:port`), for traces.
    pub service: String,
}

/// What `cgroup/connect4` did to a `connect()` (or a UDP `sendmsg()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockXlate {
    /// Not a Service address: the socket connects where the application asked.
    Pass,
    /// The socket connects to the backend instead; the application still sees the Service
    /// address (`getpeername()` is translated back).
    Backend(Selection),
    /// Translation skipped: the chosen backend is the connecting pod itself
    /// (`sock4_skip_xlate_if_same_netns`); the per-packet load balancer handles the connection.
    SameNetns(Selection),
    /// `connect()` fails with this errno (a Service without backends: `EHOSTUNREACH`).
    Reject {
        /// `EHOSTUNREACH` and why.
        error: String,
    },
}

/// A `connect()` a pod is about to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectReq {
    /// The pod's address.
    pub client: Ipv4Address,
    /// The local port the socket is bound to.
    pub sport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Where the application connects.
    pub dst: Ipv4Address,
    /// Destination port.
    pub dport: u16,
}

/// The socket-level load balancer a pod's programs consult before connecting.
pub trait SocketLb {
    /// `cgroup/connect4`.
    fn connect4(&mut self, now: Instant, req: ConnectReq) -> SockXlate;
}

#[derive(Clone, Debug)]
struct Svc {
    port: ServicePort,
    maglev: Option<Maglev>,
}

/// A socket-level translation made, for the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SockEvent {
    /// When.
    pub at: Instant,
    /// The request.
    pub req: ConnectReq,
    /// What was done.
    pub xlate: SockXlate,
}

/// A node's Service maps.
#[derive(Debug)]
pub struct LbMaps {
    cfg: EbpfConfig,
    node_name: String,
    node_ips: [Ipv4Address; 2],
    seed: u64,
    svcs: Vec<Svc>,
    /// Hash maps as the BPF maps are (a fixed-seed hasher; their order is never observed).
    by_frontend: HashMap<Frontend, usize, FixedState>,
    by_node_port: HashMap<(u16, u8), usize, FixedState>,
    affinity: BTreeMap<(usize, Ipv4Address), (Ipv4Address, u16, Instant)>,
    rng: SimRng,
    /// Map lookups made by selections (service + backend (+ maglev) per new connection).
    pub lookups: u64,
    sock_events: Vec<SockEvent>,
}

impl LbMaps {
    /// Empty maps for node `node_name` with addresses `node_ips`.
    pub fn new(
        cfg: EbpfConfig,
        node_name: &str,
        node_ips: [Ipv4Address; 2],
        seed: u64,
        rng: SimRng,
    ) -> Self {
        LbMaps {
            cfg,
            node_name: node_name.into(),
            node_ips,
            seed,
            svcs: Vec::new(),
            by_frontend: HashMap::with_hasher(FixedState::with_seed(0)),
            by_node_port: HashMap::with_hasher(FixedState::with_seed(0)),
            affinity: BTreeMap::new(),
            rng,
            lookups: 0,
            sock_events: Vec::new(),
        }
    }

    /// Replaces every Service (the agent's sync of Services and EndpointSlices). Maglev
    /// tables are rebuilt from the backends in the endpoints' order; the Maglev seed is the
    /// cluster's, so every node builds the same table.
    pub fn set_services(&mut self, ports: Vec<ServicePort>) {
        self.svcs.clear();
        self.by_frontend.clear();
        self.by_node_port.clear();
        self.affinity.clear();
        for p in ports {
            let i = self.svcs.len();
            let proto = p.protocol.number();
            self.by_frontend.insert(
                Frontend {
                    addr: p.cluster_ip,
                    port: p.port,
                    proto,
                },
                i,
            );
            if let Some(np) = p.node_port {
                self.by_node_port.insert((np, proto), i);
            }
            let maglev = (self.cfg.algorithm == Algorithm::Maglev).then(|| {
                let backends: Vec<Backend> = p
                    .endpoints
                    .iter()
                    .filter(|e| e.ready)
                    .map(|e| Backend::new(e.ip, e.port, proto))
                    .collect();
                Maglev::new(&backends, self.cfg.maglev_table_size, self.seed).ok()
            });
            self.svcs.push(Svc {
                port: p,
                maglev: maglev.flatten(),
            });
        }
    }

    /// Every Service port.
    pub fn services(&self) -> impl Iterator<Item = &ServicePort> {
        self.svcs.iter().map(|s| &s.port)
    }

    /// The Maglev table of the Service port `frontend`, if Maglev is on.
    pub fn maglev(&self, frontend: &Frontend) -> Option<&Maglev> {
        self.svcs[*self.by_frontend.get(frontend)?].maglev.as_ref()
    }

    /// The Service port at a ClusterIP frontend.
    pub fn lookup_cluster_ip(&mut self, f: &Frontend) -> Option<usize> {
        self.lookups += 1;
        self.by_frontend.get(f).copied()
    }

    /// The Service port at a NodePort of this node (`addr` one of its addresses).
    pub fn lookup_node_port(&mut self, f: &Frontend) -> Option<usize> {
        if !self.node_ips.contains(&f.addr) {
            return None;
        }
        self.lookups += 1;
        self.by_node_port.get(&(f.port, f.proto)).copied()
    }

    /// `namespace/name:port` of Service `svc`.
    pub fn name(&self, svc: usize) -> String {
        self.svcs[svc].port.port_name_string()
    }

    /// The frontend a reply must carry as its source: the ClusterIP, or `node_addr` and the
    /// node port for a NodePort connection.
    pub fn port(&self, svc: usize) -> &ServicePort {
        &self.svcs[svc].port
    }

    /// Chooses a backend of Service `svc` for a new connection `src:sport -> *:dport`:
    /// the client's affinity entry if any, else random (`per_packet` false: the socket LB
    /// always picks at random) or the Maglev slot of the flow's hash. `external`: a NodePort
    /// connection from outside (externalTrafficPolicy Local keeps only local backends).
    #[allow(clippy::too_many_arguments)]
    pub fn select(
        &mut self,
        now: Instant,
        svc: usize,
        src: Ipv4Address,
        sport: u16,
        dport: u16,
        per_packet: bool,
        external: bool,
    ) -> Option<Selection> {
        let s = &self.svcs[svc];
        let local_only =
            (external && s.port.external_local) || (!external && s.port.internal_local);
        let ready: Vec<&Endpoint> = s
            .port
            .endpoints
            .iter()
            .filter(|e| e.ready && (!local_only || e.node == self.node_name))
            .collect();
        if ready.is_empty() {
            return None;
        }
        self.lookups += 1;
        let proto = s.port.protocol.number();
        let service = s.port.port_name_string();
        let pick = |e: &Endpoint, how: String, node_name: &str| Selection {
            addr: e.ip,
            port: e.port,
            node: e.node.clone(),
            local: e.node == node_name,
            how,
            service: service.clone(),
        };
        if let Some(timeout) = s.port.session_affinity {
            if let Some((ip, port, at)) = self.affinity.get(&(svc, src)).copied() {
                if now < at + Duration::from_secs(u64::from(timeout)) {
                    if let Some(e) = ready.iter().find(|e| e.ip == ip && e.port == port) {
                        self.affinity.insert((svc, src), (ip, port, now));
                        return Some(pick(e, "session affinity".into(), &self.node_name));
                    }
                }
            }
        }
        let maglev = s.maglev.as_ref().filter(|_| per_packet && !local_only);
        let chosen = match maglev {
            Some(m) => {
                let h = maglev::flow_hash(src, sport, dport, proto, self.seed);
                let slot = h % m.size();
                // The table was built over the ready endpoints in this same order.
                let idx = m.lookup(h)?;
                let e = *ready.get(idx)?;
                pick(
                    e,
                    format!("maglev slot {slot} of {}", m.size()),
                    &self.node_name,
                )
            }
            None => {
                let n = ready.len() as u32;
                let idx = self.rng.range_inclusive(0, n - 1);
                pick(
                    ready[idx as usize],
                    format!("random {} of {n}", idx + 1),
                    &self.node_name,
                )
            }
        };
        if s.port.session_affinity.is_some() {
            self.affinity
                .insert((svc, src), (chosen.addr, chosen.port, now));
        }
        Some(chosen)
    }

    /// The Service map as `cilium bpf lb list` prints it: each frontend (ClusterIP and, for
    /// NodePort Services, every address of this node) with its backends, numbered by slot.
    pub fn lb_list(&self) -> String {
        use core::fmt::Write;
        let mut out =
            String::from("SERVICE ADDRESS              BACKEND ADDRESS (REVNAT_ID) (SLOT)\n");
        for (i, s) in self.svcs.iter().enumerate() {
            let p = &s.port;
            let proto = p.protocol.name().to_ascii_uppercase();
            let mut fronts = alloc::vec![(p.cluster_ip, p.port, "ClusterIP")];
            if let Some(np) = p.node_port {
                for a in self.node_ips {
                    fronts.push((a, np, "NodePort"));
                }
            }
            for (addr, port, kind) in fronts {
                let id = i + 1;
                let front = format!("{addr}:{port}/{proto}");
                let _ = writeln!(out, "{front:<28} 0.0.0.0:0 ({id}) (0) [{kind}]");
                for (slot, e) in p.endpoints.iter().filter(|e| e.ready).enumerate() {
                    let _ = writeln!(
                        out,
                        "{:<28} {}:{}/{proto} ({id}) ({}){}",
                        "",
                        e.ip,
                        e.port,
                        slot + 1,
                        if e.node == self.node_name {
                            " [local]"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        out
    }

    /// Every `connect()` the socket-level load balancer translated or refused, in order.
    pub fn sock_events(&self) -> &[SockEvent] {
        &self.sock_events
    }
}

impl SocketLb for LbMaps {
    fn connect4(&mut self, now: Instant, req: ConnectReq) -> SockXlate {
        if !self.cfg.socket_lb {
            return SockXlate::Pass;
        }
        let f = Frontend {
            addr: req.dst,
            port: req.dport,
            proto: req.proto,
        };
        let Some(svc) = self.lookup_cluster_ip(&f) else {
            return SockXlate::Pass;
        };
        let xlate = match self.select(now, svc, req.client, req.sport, req.dport, false, false) {
            None => SockXlate::Reject {
                error: format!(
                    "EHOSTUNREACH: service {} has no backends (socket LB refused connect())",
                    self.name(svc)
                ),
            },
            Some(sel) if sel.addr == req.client => SockXlate::SameNetns(sel),
            Some(sel) => SockXlate::Backend(sel),
        };
        self.sock_events.push(SockEvent {
            at: now,
            req,
            xlate: xlate.clone(),
        });
        xlate
    }
}
