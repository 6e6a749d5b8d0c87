//! The generated corpus: seeded scripts of crafted segments, datagrams and ICMP messages over a
//! few base topologies, run through podnet one frame at a time ([`podnet::Cluster::inject`])
//! and cut into a [`Plan`] the replay takes like a scenario's.
//!
//! A script is a list of [`Op`]s from either end of one or more flows. The initiating end
//! (`A`: a pod's veth, or an external host behind `eth0`) is fixed by the flow; the other end
//! (`B`) is learned from what the node emitted for A's first packet (the wire it came out of,
//! the addresses and ports after DNAT and SNAT), and B's packets are addressed to that. Every
//! ARP request the node sends is answered on the wire it asked on. Trace `i` of seed `s` is
//! generated from its own seed alone, so a failing trace is named by `s` and `i`.

use std::collections::BTreeMap;

use podnet::{Cluster, Duration, Wire};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

use crate::craft::{self, TcpOpt, ACK, FIN, PSH, RST, SYN};
use crate::plan::{self, Mode, Plan};

/// What a trace exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Three-way handshake (options, SYN/SYN-ACK retransmitted), data.
    TcpHandshake,
    /// Both ends send a SYN.
    TcpSimultaneousOpen,
    /// A RST in each state, from either side, in and out of window.
    TcpRst,
    /// FIN from either side, both, with data, retransmitted.
    TcpFin,
    /// Retransmitted data and ACKs.
    TcpRetransmission,
    /// Data segments out of order.
    TcpReordering,
    /// A segment lost (never reaches the node), duplicate ACKs, retransmission.
    TcpLoss,
    /// Window scaling on, off, one side only; data at the window's edge.
    TcpWindowScaling,
    /// SACK permitted, SACK blocks.
    TcpSack,
    /// Zero window, window probes, reopening.
    TcpZeroWindow,
    /// Segments beyond the window, old (overly delayed) segments, ACKs of unsent data.
    TcpOutOfWindow,
    /// A new SYN on the ports of a connection in TIME_WAIT.
    TcpTimeWaitReopen,
    /// UDP without an answer.
    UdpUnreplied,
    /// UDP answered.
    UdpReplied,
    /// UDP both ways several times.
    UdpStream,
    /// ICMP echo requests and replies, several ids.
    IcmpEcho,
    /// ICMP errors about a tracked flow (RELATED, quoted packet translated) and from the node.
    IcmpError,
    /// ClusterIP DNAT to remote and local backends.
    NatDnat,
    /// Masquerade of two pods using the same source port to the same destination.
    NatMasqueradeClash,
    /// A pod reaching itself through its Service.
    NatHairpin,
    /// NodePort, externalTrafficPolicy Cluster.
    NodePortCluster,
    /// NodePort, externalTrafficPolicy Local (with and without a local endpoint).
    NodePortLocal,
    /// A Service without endpoints: REJECT.
    RejectNoEndpoints,
    /// A full conntrack table: early drop.
    EarlyDrop,
}

/// Every category, in the order traces cycle through them.
pub const CATEGORIES: &[Category] = &[
    Category::TcpHandshake,
    Category::TcpSimultaneousOpen,
    Category::TcpRst,
    Category::TcpFin,
    Category::TcpRetransmission,
    Category::TcpReordering,
    Category::TcpLoss,
    Category::TcpWindowScaling,
    Category::TcpSack,
    Category::TcpZeroWindow,
    Category::TcpOutOfWindow,
    Category::TcpTimeWaitReopen,
    Category::UdpUnreplied,
    Category::UdpReplied,
    Category::UdpStream,
    Category::IcmpEcho,
    Category::IcmpError,
    Category::NatDnat,
    Category::NatMasqueradeClash,
    Category::NatHairpin,
    Category::NodePortCluster,
    Category::NodePortLocal,
    Category::RejectNoEndpoints,
    Category::EarlyDrop,
];

impl Category {
    /// A short name (`tcp-rst`).
    pub fn name(self) -> &'static str {
        use Category::*;
        match self {
            TcpHandshake => "tcp-handshake",
            TcpSimultaneousOpen => "tcp-simultaneous-open",
            TcpRst => "tcp-rst",
            TcpFin => "tcp-fin",
            TcpRetransmission => "tcp-retransmission",
            TcpReordering => "tcp-reordering",
            TcpLoss => "tcp-loss",
            TcpWindowScaling => "tcp-window-scaling",
            TcpSack => "tcp-sack",
            TcpZeroWindow => "tcp-zero-window",
            TcpOutOfWindow => "tcp-out-of-window",
            TcpTimeWaitReopen => "tcp-time-wait-reopen",
            UdpUnreplied => "udp-unreplied",
            UdpReplied => "udp-replied",
            UdpStream => "udp-stream",
            IcmpEcho => "icmp-echo",
            IcmpError => "icmp-error",
            NatDnat => "nat-dnat",
            NatMasqueradeClash => "nat-masquerade-clash",
            NatHairpin => "nat-hairpin",
            NodePortCluster => "nodeport-cluster",
            NodePortLocal => "nodeport-local",
            RejectNoEndpoints => "reject-no-endpoints",
            EarlyDrop => "early-drop",
        }
    }
}

/// The base topologies, as scenario YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topo {
    /// Two nodes, four pods, Services with one, two and no endpoints, NodePorts with both
    /// traffic policies, an external host.
    Main,
    /// The same with a conntrack table of 6 entries, hashed into podnet's default 65,536
    /// buckets: as sparse as the kernel's (a page of buckets at least, 262,144 by default),
    /// so that a full table drops new packets on both sides instead of early drop evicting
    /// whatever shares a bucket. With `buckets: 1` podnet's early drop would evict every
    /// unassured entry while the kernel's, whose 8 buckets hold one entry at most, almost
    /// never finds one: a difference of hashes, not of behaviour.
    Tiny,
}

const MAIN_YAML: &str = r#"apiVersion: podnet.dev/v1alpha1
kind: Cluster
metadata: {name: corpus}
spec:
  seed: 1
  masquerade: {randomFully: true, all: false}
  CONNTRACK
  nodes:
    - {name: node-a, ip: 192.168.1.100}
    - {name: node-b, ip: 192.168.1.101}
  external:
    - {name: internet, ip: 203.0.113.10, image: nginx}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: node-a, containers: [{name: c, image: curlimages/curl}]}
status: {podIP: 10.244.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: client2}
spec: {nodeName: node-a, containers: [{name: c, image: curlimages/curl}]}
status: {podIP: 10.244.0.6}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web, role: solo}}
spec: {nodeName: node-a, containers: [{name: w, image: curlimages/curl}]}
status: {podIP: 10.244.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web, role: remote}}
spec: {nodeName: node-b, containers: [{name: w, image: curlimages/curl}]}
status: {podIP: 10.244.1.20}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: remote}
spec:
  clusterIP: 10.96.0.11
  selector: {role: remote}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: solo}
spec:
  clusterIP: 10.96.0.12
  selector: {role: solo}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  clusterIP: 10.96.0.13
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30081}]
---
apiVersion: v1
kind: Service
metadata: {name: remote-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  clusterIP: 10.96.0.14
  selector: {role: remote}
  ports: [{port: 80, targetPort: 8080, nodePort: 30082}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  type: NodePort
  clusterIP: 10.96.0.40
  selector: {app: nothing}
  ports: [{name: http, port: 80, nodePort: 30090}, {name: dns, port: 53, protocol: UDP}]
"#;

impl Topo {
    /// The scenario text.
    pub fn yaml(self) -> String {
        MAIN_YAML.replace(
            "CONNTRACK",
            match self {
                Topo::Main => "",
                Topo::Tiny => "conntrack: {max: 6}",
            },
        )
    }
}

/// Where a flow goes from its initiator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `client` -> Service `web` (backends on node-a and node-b).
    SvcMulti,
    /// `client` -> Service `remote` (backend on node-b).
    SvcRemote,
    /// `client` -> Service `solo` (backend on node-a: bridged DNAT).
    SvcLocal,
    /// `client` -> web-b's pod IP.
    PodRemote,
    /// `client` -> web-a's pod IP (bridged).
    PodLocal,
    /// `client` -> the external host (masquerade).
    Egress,
    /// `client2` -> the external host (masquerade).
    Egress2,
    /// web-a -> Service `solo` -> web-a.
    Hairpin,
    /// external host -> node-a:30080 (Cluster policy).
    NodePortCluster,
    /// external host -> node-a:30081 (Local policy, local endpoint).
    NodePortLocal,
    /// external host -> node-a:30082 (Local policy, no local endpoint).
    NodePortLocalNone,
    /// `client` -> Service `empty`.
    NoEndpoints,
    /// external host -> node-a:30090 (Service `empty`).
    NodePortNoEndpoints,
}

const EXTERNAL: Ipv4Address = Ipv4Address::new(203, 0, 113, 10);
const NODE_A: Ipv4Address = Ipv4Address::new(192, 168, 1, 100);

impl Path {
    /// (initiating pod, or None for the external host; destination address; TCP port; UDP port).
    fn ends(self) -> (Option<&'static str>, Ipv4Address, u16, u16) {
        use Path::*;
        let ip = Ipv4Address::new;
        match self {
            SvcMulti => (Some("client"), ip(10, 96, 0, 10), 80, 53),
            SvcRemote => (Some("client"), ip(10, 96, 0, 11), 80, 53),
            SvcLocal => (Some("client"), ip(10, 96, 0, 12), 80, 53),
            PodRemote => (Some("client"), ip(10, 244, 1, 20), 8080, 53),
            PodLocal => (Some("client"), ip(10, 244, 0, 20), 8080, 53),
            Egress => (Some("client"), EXTERNAL, 80, 53),
            Egress2 => (Some("client2"), EXTERNAL, 80, 53),
            Hairpin => (Some("web-a"), ip(10, 96, 0, 12), 80, 53),
            NodePortCluster => (None, NODE_A, 30080, 30080),
            NodePortLocal => (None, NODE_A, 30081, 30081),
            NodePortLocalNone => (None, NODE_A, 30082, 30082),
            NoEndpoints => (Some("client"), ip(10, 96, 0, 40), 80, 53),
            NodePortNoEndpoints => (None, NODE_A, 30090, 30090),
        }
    }
}

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The initiator.
    A,
    /// The responder.
    B,
}

/// A flow: a 5-tuple from its initiator, with the ISNs both ends use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Where it goes.
    pub path: Path,
    /// 6, 17 or 1.
    pub proto: u8,
    /// A's source port (ICMP: echo id).
    pub sport: u16,
    /// A's initial sequence number.
    pub isn_a: u32,
    /// B's.
    pub isn_b: u32,
}

/// One packet of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A TCP segment. `seq` is relative to the sender's ISN, `ack` to the peer's (sent as 0
    /// without ACK); SACK blocks in `opts` are relative to the peer's ISN too.
    Tcp {
        /// Flow index.
        flow: usize,
        /// Sender.
        from: Side,
        /// Flags.
        flags: u8,
        /// Sequence offset.
        seq: u32,
        /// Acknowledgment offset.
        ack: u32,
        /// Raw window field.
        win: u16,
        /// Options.
        opts: Vec<TcpOpt>,
        /// Payload length.
        len: u16,
        /// IP TTL.
        ttl: u8,
    },
    /// A UDP datagram.
    Udp {
        /// Flow index.
        flow: usize,
        /// Sender.
        from: Side,
        /// Payload length.
        len: u16,
        /// IP TTL.
        ttl: u8,
    },
    /// An ICMP echo request (from A) or reply (from B) with this sequence number.
    Echo {
        /// Flow index.
        flow: usize,
        /// Sender.
        from: Side,
        /// Echo sequence number.
        seq: u16,
    },
    /// An ICMP error from B's side quoting the last packet B received of the flow; from a
    /// router on the way (`router`) or from B itself.
    IcmpError {
        /// Flow index.
        flow: usize,
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// The 4 bytes after the checksum (MTU of "fragmentation needed").
        rest: [u8; 4],
        /// Sent by a router rather than B.
        router: bool,
    },
}

/// One generated trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// `corpus-S-I-category`.
    pub name: String,
    /// The corpus seed.
    pub seed: u64,
    /// The index in the corpus.
    pub index: usize,
    /// Category.
    pub category: Category,
    /// Base topology.
    pub topo: Topo,
    /// Proxy mode.
    pub mode: Mode,
    /// Flows.
    pub flows: Vec<Flow>,
    /// Packets in order.
    pub ops: Vec<Op>,
}

/// splitmix64: small, seedable, the same everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// True with probability `p` percent.
    pub fn pct(&mut self, p: u64) -> bool {
        self.next_u64() % 100 < p
    }
    /// One of `xs`.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.next_u64() as usize % xs.len()]
    }
}

/// Builds TCP ops for one flow, keeping each side's next sequence offset.
struct Tcp<'a> {
    ops: &'a mut Vec<Op>,
    flow: usize,
    /// Next sequence offset of A, B.
    nxt: [u32; 2],
    /// Raw window each side advertises.
    win: [u16; 2],
}

fn idx(s: Side) -> usize {
    match s {
        Side::A => 0,
        Side::B => 1,
    }
}

fn other(s: Side) -> Side {
    match s {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

impl<'a> Tcp<'a> {
    fn new(ops: &'a mut Vec<Op>, flow: usize) -> Self {
        Tcp {
            ops,
            flow,
            nxt: [0, 0],
            win: [502, 509],
        }
    }
    #[allow(clippy::too_many_arguments)]
    fn raw(
        &mut self,
        from: Side,
        flags: u8,
        seq: u32,
        ack: u32,
        len: u16,
        opts: Vec<TcpOpt>,
        win: u16,
    ) {
        self.ops.push(Op::Tcp {
            flow: self.flow,
            from,
            flags,
            seq,
            ack: if flags & ACK != 0 { ack } else { 0 },
            win,
            opts,
            len,
            ttl: 64,
        });
    }
    /// A segment at the sender's next sequence, acking everything of the peer's.
    fn seg(&mut self, from: Side, flags: u8, len: u16) {
        let (s, o) = (idx(from), idx(other(from)));
        let (seq, ack, win) = (self.nxt[s], self.nxt[o], self.win[s]);
        self.raw(from, flags, seq, ack, len, Vec::new(), win);
        self.nxt[s] = seq.wrapping_add(u32::from(len) + u32::from(flags & (SYN | FIN) != 0));
    }
    fn syn_opts(r: &mut Rng, ws: Option<u8>, sack: bool) -> Vec<TcpOpt> {
        let mut o = vec![TcpOpt::Mss(r.pick(&[1460, 1400, 536]))];
        if sack {
            o.push(TcpOpt::SackPerm);
        }
        if r.pct(50) {
            o.push(TcpOpt::Ts(r.next_u64() as u32, 0));
        }
        if let Some(w) = ws {
            o.push(TcpOpt::Wscale(w));
        }
        o
    }
    fn syn(&mut self, r: &mut Rng, ws: Option<u8>, sack: bool) {
        let o = Self::syn_opts(r, ws, sack);
        let w = self.win[0].max(64240 / 2);
        self.raw(Side::A, SYN, 0, 0, 0, o, w);
        self.nxt[0] = 1;
    }
    fn synack(&mut self, r: &mut Rng, ws: Option<u8>, sack: bool) {
        let o = Self::syn_opts(r, ws, sack);
        self.raw(Side::B, SYN | ACK, 0, 1, 0, o, 65160);
        self.nxt[1] = 1;
    }
    /// SYN, SYN-ACK, ACK with the usual Linux options.
    fn handshake(&mut self, r: &mut Rng) {
        let ws = Some(7);
        self.syn(r, ws, true);
        self.synack(r, ws, true);
        self.seg(Side::A, ACK, 0);
    }
    fn data(&mut self, from: Side, len: u16) {
        self.seg(from, PSH | ACK, len);
    }
    fn ack(&mut self, from: Side) {
        self.seg(from, ACK, 0);
    }
    fn fin(&mut self, from: Side) {
        self.seg(from, FIN | ACK, 0);
    }
    /// Both ends close, `first` first.
    fn close(&mut self, first: Side) {
        self.fin(first);
        self.ack(other(first));
        self.fin(other(first));
        self.ack(first);
    }
}

/// A TCP path, as most TCP categories pick one.
fn tcp_path(r: &mut Rng) -> Path {
    r.pick(&[
        Path::SvcMulti,
        Path::SvcRemote,
        Path::SvcLocal,
        Path::PodRemote,
        Path::PodLocal,
        Path::Egress,
        Path::NodePortCluster,
        Path::Hairpin,
    ])
}

fn flow(r: &mut Rng, path: Path, proto: u8) -> Flow {
    Flow {
        path,
        proto,
        sport: r.range(32768, 60999) as u16,
        isn_a: r.next_u64() as u32,
        isn_b: r.next_u64() as u32,
    }
}

/// The seed of trace `index` of corpus `seed`.
pub fn trace_seed(seed: u64, index: usize) -> u64 {
    let mut r = Rng::new(seed ^ (index as u64).wrapping_mul(0xd134_2543_de82_ef95));
    r.next_u64()
}

/// Generates trace `index` of corpus `seed`; the mode alternates with the index unless
/// `mode` is given.
pub fn generate(seed: u64, index: usize, mode: Option<Mode>) -> Script {
    let category = CATEGORIES[index % CATEGORIES.len()];
    let mut r = Rng::new(trace_seed(seed, index));
    let mode = mode.unwrap_or(if (index / CATEGORIES.len()).is_multiple_of(2) {
        Mode::Iptables
    } else {
        Mode::Nftables
    });
    let mut flows = Vec::new();
    let mut ops = Vec::new();
    let topo = if category == Category::EarlyDrop {
        Topo::Tiny
    } else {
        Topo::Main
    };
    gen_category(category, &mut r, &mut flows, &mut ops);
    Script {
        name: format!("corpus-{seed}-{index}-{}", category.name()),
        seed,
        index,
        category,
        topo,
        mode,
        flows,
        ops,
    }
}

#[allow(clippy::too_many_lines)]
fn gen_category(c: Category, r: &mut Rng, flows: &mut Vec<Flow>, ops: &mut Vec<Op>) {
    use Category::*;
    match c {
        TcpHandshake => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            let ws = r.pct(70).then(|| r.range(0, 14) as u8);
            let sack = r.pct(70);
            t.syn(r, ws, sack);
            if r.pct(30) {
                t.syn(r, ws, sack); // retransmitted SYN
            }
            let wsb = if ws.is_some() && r.pct(80) {
                Some(r.range(0, 14) as u8)
            } else {
                None
            };
            let sb = sack && r.pct(80);
            t.synack(r, wsb, sb);
            if r.pct(25) {
                t.synack(r, wsb, sack); // retransmitted SYN-ACK
            }
            t.ack(Side::A);
            if r.pct(60) {
                t.data(Side::A, r.range(1, 1000) as u16);
                t.data(Side::B, r.range(1, 1400) as u16);
                t.ack(Side::A);
            }
        }
        TcpSimultaneousOpen => {
            let p = r.pick(&[
                Path::PodRemote,
                Path::PodLocal,
                Path::SvcRemote,
                Path::Egress,
            ]);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            let ws = r.pct(60).then_some(7);
            t.syn(r, ws, true);
            let o = Tcp::syn_opts(r, ws, true);
            t.raw(Side::B, SYN, 0, 0, 0, o, 65160);
            t.nxt[1] = 1;
            let variant = r.range(0, 2);
            let o = Tcp::syn_opts(r, ws, true);
            t.raw(Side::A, SYN | ACK, 0, 1, 0, o, 64240);
            if variant >= 1 {
                let o = Tcp::syn_opts(r, ws, true);
                t.raw(Side::B, SYN | ACK, 0, 1, 0, o, 65160);
            }
            if variant != 1 {
                t.ack(Side::B);
            }
            t.ack(Side::A);
            if r.pct(50) {
                t.data(Side::A, r.range(1, 500) as u16);
                t.ack(Side::B);
            }
        }
        TcpRst => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            // The state the RST finds: 0 SYN_SENT, 1 SYN_RECV, 2 ESTABLISHED, 3 FIN_WAIT,
            // 4 CLOSE_WAIT, 5 LAST_ACK, 6 TIME_WAIT.
            let state = r.range(0, 6);
            t.syn(r, Some(7), true);
            if state >= 1 {
                t.synack(r, Some(7), true);
            }
            if state >= 2 {
                t.ack(Side::A);
                t.data(Side::A, r.range(1, 300) as u16);
                t.ack(Side::B);
            }
            let closer = r.pick(&[Side::A, Side::B]);
            if state >= 3 {
                t.fin(closer);
            }
            if state >= 4 {
                t.ack(other(closer));
            }
            if state >= 5 {
                t.fin(other(closer));
            }
            if state >= 6 {
                t.ack(closer);
            }
            let from = if state == 0 {
                Side::B
            } else {
                r.pick(&[Side::A, Side::B])
            };
            let (s, o) = (idx(from), idx(other(from)));
            let seq = match r.range(0, 3) {
                0 | 1 => t.nxt[s],                                    // exact
                2 => t.nxt[s].wrapping_add(r.range(1, 20000) as u32), // in window, not exact
                _ => t.nxt[s].wrapping_add(0x4000_0000),              // out of window
            };
            let (flags, ack) = if state == 0 || r.pct(50) {
                (RST | ACK, t.nxt[o])
            } else {
                (RST, 0)
            };
            // In SYN_SENT the RST answers the SYN: seq 0 with the SYN acked.
            let seq = if state == 0 { 0 } else { seq };
            t.raw(from, flags, seq, ack, 0, Vec::new(), 0);
            if r.pct(50) {
                // What comes after: more data, or the RST again.
                if r.pct(50) {
                    t.data(other(from), 10);
                } else {
                    t.raw(from, RST, seq, 0, 0, Vec::new(), 0);
                }
            }
        }
        TcpFin => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            t.data(Side::A, r.range(1, 800) as u16);
            t.data(Side::B, r.range(1, 800) as u16);
            let first = r.pick(&[Side::A, Side::B]);
            match r.range(0, 4) {
                0 => t.close(first),
                1 => {
                    // Simultaneous close.
                    t.fin(Side::A);
                    let a_fin = t.nxt[0];
                    let keep = a_fin.wrapping_sub(1);
                    // B's FIN does not ack A's.
                    let (bseq, back) = (t.nxt[1], keep);
                    t.raw(Side::B, FIN | ACK, bseq, back, 0, Vec::new(), t.win[1]);
                    t.nxt = [a_fin, bseq.wrapping_add(1)];
                    t.ack(Side::A);
                    t.ack(Side::B);
                }
                2 => {
                    // FIN carrying data, half close, data the other way, then close.
                    let n = r.range(1, 500) as u16;
                    t.seg(first, FIN | PSH | ACK, n);
                    t.ack(other(first));
                    t.data(other(first), r.range(1, 500) as u16);
                    t.ack(first);
                    t.fin(other(first));
                    t.ack(first);
                }
                3 => {
                    // FIN retransmitted before its ACK.
                    let s = idx(first);
                    let seq = t.nxt[s];
                    t.fin(first);
                    let (o, w) = (t.nxt[1 - s], t.win[s]);
                    t.raw(first, FIN | ACK, seq, o, 0, Vec::new(), w);
                    t.ack(other(first));
                    t.fin(other(first));
                    t.ack(first);
                }
                _ => {
                    // Closed, then a late ACK and a late data segment.
                    t.close(first);
                    let (s, o) = (idx(first), idx(other(first)));
                    let (seq, ack) = (t.nxt[s], t.nxt[o]);
                    t.raw(first, ACK, seq, ack, 0, Vec::new(), 502);
                    t.raw(
                        other(first),
                        PSH | ACK,
                        t.nxt[o].wrapping_sub(1),
                        seq,
                        5,
                        Vec::new(),
                        502,
                    );
                }
            }
        }
        TcpRetransmission => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            for _ in 0..r.range(1, 3) {
                let from = r.pick(&[Side::A, Side::B]);
                let s = idx(from);
                let (seq, ack, win) = (t.nxt[s], t.nxt[1 - s], t.win[s]);
                let n = r.range(1, 1200) as u16;
                t.data(from, n);
                for _ in 0..r.range(1, 4) {
                    t.raw(from, PSH | ACK, seq, ack, n, Vec::new(), win);
                }
                t.ack(other(from));
                if r.pct(40) {
                    t.ack(other(from)); // duplicate ACK
                }
            }
        }
        TcpReordering => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            let from = r.pick(&[Side::A, Side::B]);
            let s = idx(from);
            let k = r.range(2, 4) as usize;
            let mut segs = Vec::new();
            for _ in 0..k {
                let n = r.range(1, 1000) as u16;
                segs.push((t.nxt[s], n));
                t.nxt[s] = t.nxt[s].wrapping_add(u32::from(n));
            }
            // A permutation that is not the identity.
            let mut order: Vec<usize> = (0..k).collect();
            order.rotate_left(r.range(1, k as u64 - 1) as usize);
            if r.pct(50) {
                order.swap(0, k - 1);
            }
            let (ack, win) = (t.nxt[1 - s], t.win[s]);
            for i in order {
                t.raw(from, PSH | ACK, segs[i].0, ack, segs[i].1, Vec::new(), win);
            }
            t.ack(other(from));
        }
        TcpLoss => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            let from = r.pick(&[Side::A, Side::B]);
            let s = idx(from);
            let k = r.range(3, 5) as usize;
            let lost = r.range(0, k as u64 - 2) as usize;
            let mut segs = Vec::new();
            for _ in 0..k {
                let n = r.range(100, 1000) as u16;
                segs.push((t.nxt[s], n));
                t.nxt[s] = t.nxt[s].wrapping_add(u32::from(n));
            }
            let (ack, win) = (t.nxt[1 - s], t.win[s]);
            for (i, &(seq, n)) in segs.iter().enumerate() {
                if i != lost {
                    t.raw(from, PSH | ACK, seq, ack, n, Vec::new(), win);
                }
            }
            // Duplicate ACKs at the hole, then the retransmission and the full ACK.
            let hole = segs[lost].0;
            let (oseq, owin) = (t.nxt[1 - s], t.win[1 - s]);
            for _ in 0..3 {
                t.raw(other(from), ACK, oseq, hole, 0, Vec::new(), owin);
            }
            t.raw(from, PSH | ACK, hole, ack, segs[lost].1, Vec::new(), win);
            t.ack(other(from));
            if r.pct(30) {
                // A lost ACK: the next data is acked twice ahead.
                t.data(from, 100);
                t.data(from, 100);
                t.ack(other(from));
            }
        }
        TcpWindowScaling => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            let (wa, wb) = match r.range(0, 3) {
                0 => (None, None),
                1 => (Some(r.range(0, 14) as u8), None),
                2 => (None, Some(r.range(0, 14) as u8)),
                _ => (Some(r.range(0, 14) as u8), Some(r.range(0, 14) as u8)),
            };
            t.syn(r, wa, true);
            t.synack(r, wb, true);
            t.ack(Side::A);
            // The receiver advertises a small raw window; the sender writes up to, and past,
            // its edge as scaled (or not).
            let to = r.pick(&[Side::A, Side::B]);
            let raw = r.range(1, 12) as u16;
            t.win[idx(to)] = raw;
            t.ack(to);
            let from = other(to);
            let shift = match (wa, wb) {
                (Some(a), Some(b)) => u32::from(if to == Side::A { a } else { b }),
                _ => 0,
            };
            let edge = (u32::from(raw) << shift).clamp(1, 1400);
            let n = match r.range(0, 2) {
                0 => edge,
                1 => (edge + r.range(1, 200) as u32).min(1400),
                _ => edge.saturating_sub(r.range(0, 50) as u32).max(1),
            };
            t.data(from, n as u16);
            t.ack(to);
            if r.pct(50) {
                t.data(from, r.range(1, 400) as u16);
            }
        }
        TcpSack => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            let (sa, sb) = (r.pct(80), r.pct(80));
            t.syn(r, Some(7), sa);
            t.synack(r, Some(7), sb);
            t.ack(Side::A);
            let from = r.pick(&[Side::A, Side::B]);
            let s = idx(from);
            let mut segs = Vec::new();
            for _ in 0..3 {
                let n = r.range(100, 800) as u16;
                segs.push((t.nxt[s], n));
                t.nxt[s] = t.nxt[s].wrapping_add(u32::from(n));
            }
            let (ack, win) = (t.nxt[1 - s], t.win[s]);
            for (i, &(seq, n)) in segs.iter().enumerate() {
                if i != 1 {
                    t.raw(from, PSH | ACK, seq, ack, n, Vec::new(), win);
                }
            }
            let (oseq, owin) = (t.nxt[1 - s], t.win[1 - s]);
            let right = if r.pct(20) {
                // A SACK block beyond anything sent.
                t.nxt[s].wrapping_add(5000)
            } else {
                t.nxt[s]
            };
            let block = vec![TcpOpt::Sack(vec![(segs[2].0, right)])];
            t.raw(other(from), ACK, oseq, segs[1].0, 0, block, owin);
            t.raw(from, PSH | ACK, segs[1].0, ack, segs[1].1, Vec::new(), win);
            t.ack(other(from));
        }
        TcpZeroWindow => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            let from = r.pick(&[Side::A, Side::B]);
            let to = other(from);
            t.data(from, r.range(100, 1000) as u16);
            t.win[idx(to)] = 0;
            t.ack(to);
            // Window probes: one byte at the next sequence, or the last byte again.
            for _ in 0..r.range(1, 3) {
                let s = idx(from);
                let (seq, ack, win) = (t.nxt[s], t.nxt[1 - s], t.win[s]);
                if r.pct(50) {
                    t.raw(from, PSH | ACK, seq, ack, 1, Vec::new(), win);
                } else {
                    t.raw(from, ACK, seq.wrapping_sub(1), ack, 0, Vec::new(), win);
                }
                t.ack(to);
            }
            if r.pct(50) {
                // Data into the closed window.
                t.data(from, r.range(1, 500) as u16);
            }
            t.win[idx(to)] = 502;
            t.ack(to);
            t.data(from, r.range(1, 500) as u16);
            t.ack(to);
        }
        TcpOutOfWindow => {
            let p = tcp_path(r);
            flows.push(flow(r, p, 6));
            let mut t = Tcp::new(ops, 0);
            t.handshake(r);
            t.data(Side::A, r.range(1, 1000) as u16);
            t.data(Side::B, r.range(1, 1000) as u16);
            for _ in 0..r.range(1, 3) {
                let from = r.pick(&[Side::A, Side::B]);
                let s = idx(from);
                let (seq, ack, win) = (t.nxt[s], t.nxt[1 - s], t.win[s]);
                match r.range(0, 4) {
                    // Beyond the peer's window.
                    0 => t.raw(
                        from,
                        PSH | ACK,
                        seq.wrapping_add(r.range(70000, 1 << 30) as u32),
                        ack,
                        100,
                        Vec::new(),
                        win,
                    ),
                    // An overly delayed segment: far behind what was acked.
                    1 => t.raw(
                        from,
                        PSH | ACK,
                        seq.wrapping_sub(r.range(70000, 1 << 30) as u32),
                        ack,
                        100,
                        Vec::new(),
                        win,
                    ),
                    // An ACK of data never sent.
                    2 => t.raw(
                        from,
                        ACK,
                        seq,
                        ack.wrapping_add(r.range(1, 1 << 30) as u32),
                        0,
                        Vec::new(),
                        win,
                    ),
                    // An old duplicate just behind the window (inside max_win).
                    3 => t.raw(
                        from,
                        PSH | ACK,
                        seq.wrapping_sub(r.range(1, 3000) as u32),
                        ack,
                        50,
                        Vec::new(),
                        win,
                    ),
                    // A SYN in ESTABLISHED.
                    _ => t.raw(
                        from,
                        SYN,
                        seq.wrapping_add(r.range(0, 100000) as u32),
                        0,
                        0,
                        Vec::new(),
                        win,
                    ),
                }
                if r.pct(50) {
                    t.ack(other(from));
                }
            }
            t.data(Side::A, 10);
            t.ack(Side::B);
        }
        TcpTimeWaitReopen => {
            let p = tcp_path(r);
            let mut f = flow(r, p, 6);
            let f2 = Flow {
                isn_a: f.isn_a.wrapping_add(r.range(100_000, 1 << 30) as u32),
                isn_b: r.next_u64() as u32,
                ..f.clone()
            };
            if r.pct(20) {
                // The new SYN's sequence is below the old connection's.
                f.isn_a = f2.isn_a.wrapping_add(1 << 20);
            }
            flows.push(f);
            flows.push(f2);
            {
                let mut t = Tcp::new(ops, 0);
                t.handshake(r);
                t.data(Side::A, r.range(1, 500) as u16);
                t.ack(Side::B);
                t.close(r.pick(&[Side::A, Side::B]));
            }
            if r.pct(15) {
                // A SYN from the responder's side first, on the connection in TIME_WAIT.
                let o = Tcp::syn_opts(r, Some(7), true);
                let seq = r.range(100_000, 1 << 30) as u32;
                ops.push(Op::Tcp {
                    flow: 0,
                    from: Side::B,
                    flags: SYN,
                    seq,
                    ack: 0,
                    win: 65160,
                    opts: o,
                    len: 0,
                    ttl: 64,
                });
            }
            let mut t = Tcp::new(ops, 1);
            t.handshake(r);
            t.data(Side::A, 20);
        }
        UdpUnreplied | UdpReplied | UdpStream => {
            let path = r.pick(&[
                Path::SvcMulti,
                Path::SvcRemote,
                Path::SvcLocal,
                Path::PodRemote,
                Path::PodLocal,
                Path::Egress,
                Path::Hairpin,
            ]);
            flows.push(flow(r, path, 17));
            let n = r.range(1, 3);
            let len = |r: &mut Rng| r.range(0, 1200) as u16;
            match c {
                UdpUnreplied => {
                    for _ in 0..n {
                        ops.push(Op::Udp {
                            flow: 0,
                            from: Side::A,
                            len: len(r),
                            ttl: 64,
                        });
                    }
                }
                UdpReplied => {
                    ops.push(Op::Udp {
                        flow: 0,
                        from: Side::A,
                        len: len(r),
                        ttl: 64,
                    });
                    for _ in 0..n {
                        ops.push(Op::Udp {
                            flow: 0,
                            from: Side::B,
                            len: len(r),
                            ttl: 64,
                        });
                    }
                }
                _ => {
                    for _ in 0..n + 1 {
                        ops.push(Op::Udp {
                            flow: 0,
                            from: Side::A,
                            len: len(r),
                            ttl: 64,
                        });
                        ops.push(Op::Udp {
                            flow: 0,
                            from: Side::B,
                            len: len(r),
                            ttl: 64,
                        });
                    }
                }
            }
        }
        IcmpEcho => {
            let path = r.pick(&[Path::PodRemote, Path::PodLocal, Path::Egress, Path::Egress2]);
            for _ in 0..r.range(1, 2) {
                flows.push(flow(r, path, 1));
            }
            if flows.len() == 2 && r.pct(30) {
                // Two pings with the same id (one flow's requests again, later).
                flows[1].sport = flows[0].sport;
            }
            for f in 0..flows.len() {
                for s in 0..r.range(1, 3) as u16 {
                    ops.push(Op::Echo {
                        flow: f,
                        from: Side::A,
                        seq: s,
                    });
                    if r.pct(80) {
                        ops.push(Op::Echo {
                            flow: f,
                            from: Side::B,
                            seq: s,
                        });
                    }
                }
            }
        }
        IcmpError => {
            let path = r.pick(&[
                Path::SvcMulti,
                Path::SvcRemote,
                Path::SvcLocal,
                Path::PodRemote,
                Path::Egress,
                Path::NodePortCluster,
            ]);
            let proto = if path == Path::NodePortCluster {
                6
            } else {
                r.pick(&[6, 17])
            };
            flows.push(flow(r, path, proto));
            if r.pct(20) {
                // TTL 1: the node itself answers time exceeded.
                if proto == 6 {
                    let mut t = Tcp::new(ops, 0);
                    t.syn(r, Some(7), true);
                    if let Some(Op::Tcp { ttl, .. }) = t.ops.last_mut() {
                        *ttl = 1;
                    }
                } else {
                    ops.push(Op::Udp {
                        flow: 0,
                        from: Side::A,
                        len: 20,
                        ttl: 1,
                    });
                }
                return;
            }
            if proto == 6 {
                let mut t = Tcp::new(ops, 0);
                t.syn(r, Some(7), true);
                if r.pct(40) {
                    t.synack(r, Some(7), true);
                    t.ack(Side::A);
                    t.data(Side::A, r.range(1, 1400) as u16);
                }
            } else {
                ops.push(Op::Udp {
                    flow: 0,
                    from: Side::A,
                    len: r.range(1, 1400) as u16,
                    ttl: 64,
                });
            }
            let (ty, code, rest) = match r.range(0, 3) {
                0 => (3, 3, [0; 4]),
                1 => (3, 1, [0; 4]),
                2 => (3, 4, [0, 0, 0x05, 0x00]), // fragmentation needed, MTU 1280
                _ => (11, 0, [0; 4]),
            };
            ops.push(Op::IcmpError {
                flow: 0,
                ty,
                code,
                rest,
                router: r.pct(40),
            });
            if r.pct(40) {
                // The flow goes on (or the error comes twice).
                ops.push(Op::IcmpError {
                    flow: 0,
                    ty,
                    code,
                    rest,
                    router: false,
                });
            }
        }
        NatDnat => {
            for _ in 0..r.range(1, 3) {
                let p = r.pick(&[Path::SvcMulti, Path::SvcRemote, Path::SvcLocal]);
                let proto = r.pick(&[6, 6, 17]);
                flows.push(flow(r, p, proto));
            }
            if flows.len() > 1 && r.pct(50) {
                flows[1].sport = flows[0].sport; // same client port, another Service or protocol
            }
            for (f, fl) in flows.iter().enumerate() {
                conversation(r, fl.proto, f, ops);
            }
        }
        NatMasqueradeClash => {
            let proto = r.pick(&[6, 17]);
            let a = flow(r, Path::Egress, proto);
            let b = Flow {
                path: Path::Egress2,
                isn_a: r.next_u64() as u32,
                isn_b: r.next_u64() as u32,
                ..a.clone()
            };
            flows.push(a);
            flows.push(b);
            if r.pct(40) {
                let c = flow(r, Path::Egress, proto);
                flows.push(c);
            }
            // Both open before either answer comes.
            let n = flows.len();
            for f in 0..n {
                first_packet(r, proto, f, ops);
            }
            for f in 0..n {
                rest_of_conversation(r, proto, f, ops);
            }
        }
        NatHairpin => {
            let proto = r.pick(&[6, 17]);
            flows.push(flow(r, Path::Hairpin, proto));
            conversation(r, proto, 0, ops);
        }
        NodePortCluster => {
            for _ in 0..r.range(1, 2) {
                flows.push(flow(r, Path::NodePortCluster, 6));
            }
            for f in 0..flows.len() {
                conversation(r, 6, f, ops);
            }
        }
        NodePortLocal => {
            let p = if r.pct(65) {
                Path::NodePortLocal
            } else {
                Path::NodePortLocalNone
            };
            flows.push(flow(r, p, 6));
            conversation(r, 6, 0, ops);
        }
        RejectNoEndpoints => {
            let p = r.pick(&[
                Path::NoEndpoints,
                Path::NoEndpoints,
                Path::NodePortNoEndpoints,
            ]);
            let proto = if p == Path::NoEndpoints {
                r.pick(&[6, 17])
            } else {
                6
            };
            flows.push(flow(r, p, proto));
            for _ in 0..r.range(1, 2) {
                first_packet(r, proto, 0, ops);
            }
        }
        EarlyDrop => {
            // A table of 6: some connections established (assured), others left at SYN or
            // unreplied, then more new ones than there is room for.
            let n = r.range(7, 10) as usize;
            for _ in 0..n {
                let p = r.pick(&[
                    Path::PodRemote,
                    Path::SvcRemote,
                    Path::Egress,
                    Path::PodLocal,
                ]);
                let proto = r.pick(&[6, 6, 17]);
                flows.push(flow(r, p, proto));
            }
            for (f, fl) in flows.iter().enumerate() {
                if r.pct(40) {
                    conversation(r, fl.proto, f, ops);
                } else {
                    first_packet(r, fl.proto, f, ops);
                }
            }
        }
    }
}

/// A's first packet of flow `f`.
fn first_packet(r: &mut Rng, proto: u8, f: usize, ops: &mut Vec<Op>) {
    if proto == 6 {
        let mut t = Tcp::new(ops, f);
        t.syn(r, Some(7), true);
    } else {
        ops.push(Op::Udp {
            flow: f,
            from: Side::A,
            len: r.range(1, 512) as u16,
            ttl: 64,
        });
    }
}

/// The rest of a short exchange begun by [`first_packet`].
fn rest_of_conversation(r: &mut Rng, proto: u8, f: usize, ops: &mut Vec<Op>) {
    if proto == 6 {
        let mut t = Tcp::new(ops, f);
        t.nxt[0] = 1;
        t.synack(r, Some(7), true);
        t.ack(Side::A);
        t.data(Side::A, r.range(1, 600) as u16);
        t.data(Side::B, r.range(1, 1400) as u16);
        if r.pct(50) {
            t.close(r.pick(&[Side::A, Side::B]));
        } else {
            t.ack(Side::A);
        }
    } else {
        ops.push(Op::Udp {
            flow: f,
            from: Side::B,
            len: r.range(1, 512) as u16,
            ttl: 64,
        });
        if r.pct(50) {
            ops.push(Op::Udp {
                flow: f,
                from: Side::A,
                len: r.range(1, 512) as u16,
                ttl: 64,
            });
        }
    }
}

fn conversation(r: &mut Rng, proto: u8, f: usize, ops: &mut Vec<Op>) {
    first_packet(r, proto, f, ops);
    rest_of_conversation(r, proto, f, ops);
}

/// The corpus seed `cargo xtask kernel-diff` uses unless told otherwise.
pub const DEFAULT_SEED: u64 = 1;

/// The number of traces of the default corpus (21 of each category).
pub const DEFAULT_TRACES: usize = 504;

/// The corpus: traces `0..n` of `seed`.
pub fn corpus(seed: u64, n: usize, mode: Option<Mode>) -> Vec<Script> {
    (0..n).map(|i| generate(seed, i, mode)).collect()
}

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
            .ok_or_else(|| format!("no wire {wire:?}"))?;
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
                .ok_or_else(|| format!("no wire {w:?}"))?;
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
        let smoltcp::wire::IpAddress::Ipv4(ip) = a.ip.address();
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
                let smoltcp::wire::IpAddress::Ipv4(ip) = p.addrs().ip.address();
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
            let smoltcp::wire::IpAddress::Ipv4(ip) = p.addrs().ip.address();
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
    let (mut nodes, ids) = plan::cut(cl, script.mode)?;
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
        },
        fig,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Traces per category and in all the default corpus has at least.
    pub const MIN_PER_CATEGORY: usize = 20;

    #[test]
    fn the_default_corpus_covers_every_category() {
        let c = corpus(DEFAULT_SEED, DEFAULT_TRACES, None);
        assert!(c.len() >= 500);
        for cat in CATEGORIES {
            let n = c.iter().filter(|s| s.category == *cat).count();
            assert!(n >= MIN_PER_CATEGORY, "{}: {n}", cat.name());
        }
        for m in [Mode::Iptables, Mode::Nftables] {
            assert!(c.iter().filter(|s| s.mode == m).count() >= 200);
        }
    }

    #[test]
    fn every_trace_runs_through_podnet_and_reaches_the_other_end() {
        let mut frames = 0;
        let mut skipped = BTreeMap::new();
        for s in corpus(DEFAULT_SEED, DEFAULT_TRACES, None) {
            let (plan, fig) = run(&s).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(plan.nodes.len(), 1, "{}", s.name);
            let steps = &plan.nodes[0].steps;
            frames += steps.len();
            assert!(steps.len() >= s.ops.len() - fig.skipped, "{}", s.name);
            if fig.skipped > 0 {
                eprintln!(
                    "{} {:?} skipped {}",
                    s.name,
                    s.flows.iter().map(|f| f.path).collect::<Vec<_>>(),
                    fig.skipped
                );
            }
            *skipped.entry(s.category).or_insert(0) += fig.skipped;
        }
        // B's end is reached except where the node drops or rejects the first packet.
        for (cat, n) in skipped {
            if n > 0 {
                assert!(
                    matches!(
                        cat,
                        Category::NodePortLocal
                            | Category::RejectNoEndpoints
                            | Category::EarlyDrop
                            | Category::IcmpError
                    ),
                    "{}: {n} ops skipped",
                    cat.name()
                );
            }
        }
        assert!(frames > 5000, "{frames}");
    }

    #[test]
    fn same_seed_same_scripts() {
        assert_eq!(corpus(7, 60, None), corpus(7, 60, None));
        assert_ne!(corpus(7, 30, None), corpus(8, 30, None));
    }
}
