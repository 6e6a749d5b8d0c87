//! A script run through podnet frame by frame: A's packets injected, B's end learned from what
//! the node emitted, ARP answered, and the trace cut into a [`Plan`].

use std::collections::BTreeMap;

use podnet::{Cluster, Duration, Wire};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

use super::{Op, Script, Side, EXTERNAL};
use crate::craft::{self, TcpOpt, ACK};
use crate::plan::{self, Plan};

/// B's end of a flow, as learned from the node's output.
#[derive(Clone, Debug)]
struct BView {
    wire: Wire,
    /// B's MAC and the node's (or the peer pod's) MAC it sends to.
    mac: EthernetAddress,
    peer_mac: EthernetAddress,
    /// B's address and port, and the address and port it sees A as.
    ip: Ipv4Address,
    port: u16,
    peer_ip: Ipv4Address,
    peer_port: u16,
    /// The last packet of the flow B received (IP header on), for ICMP errors.
    last: Vec<u8>,
}

/// A's end.
#[derive(Clone, Debug)]
struct AView {
    wire: Wire,
    mac: EthernetAddress,
    peer_mac: EthernetAddress,
    ip: Ipv4Address,
    dst: Ipv4Address,
}

/// What running a script in podnet gave, besides the plan.
#[derive(Clone, Debug, Default)]
pub struct RunFigures {
    /// Frames injected (ARP replies included).
    pub injected: usize,
    /// Ops skipped because B's end was never reached (A's first packet was dropped).
    pub skipped: usize,
}

struct Runner<'c> {
    cl: &'c mut Cluster,
    macs: BTreeMap<Ipv4Address, (Wire, EthernetAddress)>,
    own: [EthernetAddress; 2],
    router: (Ipv4Address, EthernetAddress),
    fig: RunFigures,
    ip_id: u16,
}

impl Runner<'_> {
    /// Injects a frame and answers every ARP request the node sends for it, on the wire it
    /// asked on; returns everything the node sent.
    fn inject(&mut self, wire: Wire, frame: Vec<u8>) -> Result<Vec<(Wire, Vec<u8>)>, String> {
        self.fig.injected += 1;
        let mut all = self
            .cl
            .inject(wire, frame)
            .ok_or_else(|| format!("no wire {wire:?}"))?
            .into_iter()
            .map(|(w, f)| (w, f.into_bytes()))
            .collect::<Vec<_>>();
        let mut i = 0;
        while i < all.len() && i < 64 {
            let (w, f) = (all[i].0, all[i].1.clone());
            i += 1;
            let own = f.len() >= 42 && self.own.iter().any(|m| f[6..12] == m.0);
            let Some(target) = crate::frame::arp_request_target(&f).filter(|_| own) else {
                continue;
            };
            let mac = match self.macs.get(&target) {
                Some((tw, m)) if *tw == w => *m,
                Some(_) => continue,
                None if matches!(w, Wire::Uplink(_)) => {
                    let o = target.octets();
                    EthernetAddress([0x02, 0x42, o[0], o[1], o[2], o[3]])
                }
                None => continue,
            };
            let req_mac = EthernetAddress([f[22], f[23], f[24], f[25], f[26], f[27]]);
            let req_ip = Ipv4Address::new(f[28], f[29], f[30], f[31]);
            let reply = craft::arp_reply(mac, target, req_mac, req_ip);
            self.fig.injected += 1;
            let more = self
                .cl
                .inject(w, reply)
                .ok_or_else(|| format!("no wire {w:?}"))?
                .into_iter()
                .map(|(w, f)| (w, f.into_bytes()));
            all.extend(more);
        }
        Ok(all)
    }

    fn next_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }
}

/// Runs `script` through podnet, frame by frame, and cuts the trace into a plan (only the
/// nodes that received something).
pub fn run(script: &Script) -> Result<(Plan, RunFigures), String> {
    let yaml = script.topo.yaml();
    let mut session = plan::load(&script.name, &yaml, script.mode, true)?;
    let cl = &mut session.cluster;
    let node = cl.node_by_name("node-a").ok_or("no node-a")?;
    let addrs = *cl.node(node).ok_or("no node-a")?.addrs();
    let mut macs = BTreeMap::new();
    for (id, p) in cl.pods() {
        let a = p.addrs();
        let ip = podnet::v4(a.ip.address());
        let wire = if cl.pod_node(id) == Some(node) {
            Wire::Veth(id)
        } else {
            Wire::Uplink(node)
        };
        macs.insert(ip, (Wire::Veth(id), a.mac));
        let _ = wire;
    }
    let mut router = None;
    for (id, n) in cl.nodes() {
        if id != node {
            macs.insert(
                n.addrs().eth0.address(),
                (Wire::Uplink(node), n.addrs().eth0_mac),
            );
        }
    }
    if let Some(e) = cl.edge() {
        let a = *cl.node(e).ok_or("no edge")?.addrs();
        router = Some((a.eth0.address(), a.eth0_mac));
        macs.insert(a.eth0.address(), (Wire::Uplink(node), a.eth0_mac));
    }
    let router = router.ok_or("the corpus topology has an external host")?;
    let pod_by = |name: &str| cl.pod_by_name(name);
    let mut a_views = Vec::new();
    for f in &script.flows {
        let (from, dst, _, _) = f.path.ends();
        let v = match from {
            Some(name) => {
                let id = pod_by(name).ok_or_else(|| format!("no pod {name}"))?;
                let p = cl.pod(id).ok_or("pod")?;
                let ip = podnet::v4(p.addrs().ip.address());
                let peer_mac = if addrs.pod_cidr.contains_addr(&dst) {
                    macs.get(&dst).map(|m| m.1).ok_or("peer pod")?
                } else {
                    addrs.cni0_mac
                };
                AView {
                    wire: Wire::Veth(id),
                    mac: p.addrs().mac,
                    peer_mac,
                    ip,
                    dst,
                }
            }
            None => AView {
                wire: Wire::Uplink(node),
                mac: router.1,
                peer_mac: addrs.eth0_mac,
                ip: EXTERNAL,
                dst,
            },
        };
        a_views.push(v);
    }
    let mut rn = Runner {
        cl,
        macs,
        own: [addrs.cni0_mac, addrs.eth0_mac],
        router,
        fig: RunFigures::default(),
        ip_id: (script.seed as u16) ^ (script.index as u16),
    };
    // Prologue: every pod of node-a asks for its gateway, as a pod does when it starts, so
    // that podnet's cni0 has learned each pod's MAC (the kernel's gets static entries).
    let pods: Vec<(podnet::PodId, EthernetAddress, Ipv4Address)> = rn
        .cl
        .pods()
        .filter(|(id, _)| rn.cl.pod_node(*id) == Some(node))
        .map(|(id, p)| {
            let ip = podnet::v4(p.addrs().ip.address());
            (id, p.addrs().mac, ip)
        })
        .collect();
    for (id, mac, ip) in pods {
        let mut req = craft::arp_reply(mac, ip, EthernetAddress([0; 6]), addrs.gateway());
        req[0..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
        req[21] = 1; // request
        rn.inject(Wire::Veth(id), req)?;
    }
    let mut b_views: Vec<Option<BView>> = vec![None; script.flows.len()];
    for op in &script.ops {
        let t = rn.cl.now() + Duration::from_millis(1);
        rn.cl.run_until(t);
        let (fi, from) = match op {
            Op::Tcp { flow, from, .. }
            | Op::Udp { flow, from, .. }
            | Op::Echo { flow, from, .. } => (*flow, *from),
            Op::IcmpError { flow, .. } => (*flow, Side::B),
        };
        let f = &script.flows[fi];
        let a = &a_views[fi];
        let (_, _, tport, uport) = f.path.ends();
        let dport = if f.proto == 6 { tport } else { uport };
        // (wire, src mac, dst mac, src ip, dst ip, sport, dport)
        let ends = match from {
            Side::A => (a.wire, a.mac, a.peer_mac, a.ip, a.dst, f.sport, dport),
            Side::B => match &b_views[fi] {
                Some(b) => (
                    b.wire,
                    b.mac,
                    b.peer_mac,
                    b.ip,
                    b.peer_ip,
                    b.port,
                    b.peer_port,
                ),
                None => {
                    rn.fig.skipped += 1;
                    continue;
                }
            },
        };
        let (wire, smac, dmac, sip, dip, sport, dp) = ends;
        let (own_isn, peer_isn) = match from {
            Side::A => (f.isn_a, f.isn_b),
            Side::B => (f.isn_b, f.isn_a),
        };
        let (l4, proto, ttl) = match op {
            Op::Tcp {
                flags,
                seq,
                ack,
                win,
                opts,
                len,
                ttl,
                ..
            } => {
                let opts: Vec<TcpOpt> = opts
                    .iter()
                    .map(|o| match o {
                        TcpOpt::Sack(bs) => TcpOpt::Sack(
                            bs.iter()
                                .map(|(l, r)| {
                                    (peer_isn.wrapping_add(*l), peer_isn.wrapping_add(*r))
                                })
                                .collect(),
                        ),
                        o => o.clone(),
                    })
                    .collect();
                let ackv = if flags & ACK != 0 {
                    peer_isn.wrapping_add(*ack)
                } else {
                    0
                };
                (
                    craft::tcp(
                        sip,
                        dip,
                        sport,
                        dp,
                        own_isn.wrapping_add(*seq),
                        ackv,
                        *flags,
                        *win,
                        &opts,
                        usize::from(*len),
                    ),
                    6,
                    *ttl,
                )
            }
            Op::Udp { len, ttl, .. } => {
                (craft::udp(sip, dip, sport, dp, usize::from(*len)), 17, *ttl)
            }
            Op::Echo { seq, .. } => {
                let id = match from {
                    Side::A => f.sport,
                    Side::B => b_views[fi].as_ref().map_or(0, |b| b.port),
                };
                let ty = if from == Side::A { 8 } else { 0 };
                let mut rest = [0; 4];
                rest[..2].copy_from_slice(&id.to_be_bytes());
                rest[2..].copy_from_slice(&seq.to_be_bytes());
                (craft::icmp(ty, 0, rest, b"podnet-kdiff-corpus-echo"), 1, 64)
            }
            Op::IcmpError {
                ty,
                code,
                rest,
                router: via_router,
                ..
            } => {
                let Some(b) = &b_views[fi] else {
                    rn.fig.skipped += 1;
                    continue;
                };
                let mut quoted = b.last.clone();
                let ihl = usize::from(quoted[0] & 0x0f) * 4;
                quoted.truncate(ihl + 8);
                let msg = craft::icmp(*ty, *code, *rest, &quoted);
                let src = if *via_router {
                    match b.wire {
                        Wire::Uplink(_) if b.ip == EXTERNAL => rn.router.0,
                        Wire::Uplink(_) => Ipv4Address::new(192, 168, 1, 101),
                        Wire::Veth(_) => b.ip,
                    }
                } else {
                    b.ip
                };
                let id = rn.next_id();
                let ip = craft::ipv4(src, b.peer_ip, 1, 64, id, &msg);
                let frame = craft::eth(b.peer_mac, b.mac, 0x0800, &ip);
                rn.inject(b.wire, frame)?;
                continue;
            }
        };
        let id = rn.next_id();
        let ip = craft::ipv4(sip, dip, proto, ttl, id, &l4);
        let frame = craft::eth(dmac, smac, 0x0800, &ip);
        let sent = rn.inject(wire, frame.clone())?;
        // Where it went: the node's forwarded copy (same protocol, same L4 bytes after the
        // ports, or the same echo).
        for (w, out) in &sent {
            let Some(s) = craft::seen(out) else { continue };
            if s.proto != proto {
                continue;
            }
            let ipb = &out[14..];
            let ihl = usize::from(ipb[0] & 0x0f) * 4;
            let l4o = &ipb[ihl..];
            let same = match proto {
                6 => l4o.len() >= 8 && l4o[4..8] == l4[4..8] && l4o.len() == l4.len(),
                17 => l4o.len() == l4.len() && l4o[8..] == l4[8..],
                _ => l4o.len() == l4.len() && l4o[0] == l4[0] && l4o[8..] == l4[8..],
            };
            if !same || (*w == wire && *out == frame) {
                continue;
            }
            match from {
                Side::A => {
                    if b_views[fi].is_none() {
                        b_views[fi] = Some(BView {
                            wire: *w,
                            mac: s.dst_mac,
                            peer_mac: s.src_mac,
                            ip: s.dst,
                            port: if proto == 1 { s.sport } else { s.dport },
                            peer_ip: s.src,
                            peer_port: s.sport,
                            last: Vec::new(),
                        });
                    }
                    if let Some(b) = b_views[fi].as_mut() {
                        if b.wire == *w && b.ip == s.dst {
                            b.last = ipb.to_vec();
                        }
                    }
                }
                Side::B => {}
            }
            break;
        }
    }
    let end = rn.cl.now();
    let cl = &*rn.cl;
    let (mut nodes, ids) = plan::cut(cl, script.mode, &[])?;
    for (n, id) in ids.iter().enumerate() {
        let ct = cl.conntrack(*id).ok_or("no conntrack")?;
        nodes[n].ct_list = ct.list(end);
        nodes[n].ct_stats = ct.stats();
    }
    let fig = rn.fig;
    nodes.retain(|n| !n.steps.is_empty());
    Ok((
        Plan {
            scenario: script.name.clone(),
            mode: script.mode,
            nodes,
            notes: Vec::new(),
        },
        fig,
    ))
}
