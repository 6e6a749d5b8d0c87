//! The generated corpus: seeded scripts of crafted segments, datagrams and ICMP messages over a
//! few base topologies, run through podnet one frame at a time ([`podnet::Cluster::inject`])
//! and cut into a [`Plan`](crate::plan::Plan) the replay takes like a scenario's.
//!
//! A script is a list of [`Op`]s from either end of one or more flows. The initiating end
//! (`A`: a pod's veth, or an external host behind `eth0`) is fixed by the flow; the other end
//! (`B`) is learned from what the node emitted for A's first packet (the wire it came out of,
//! the addresses and ports after DNAT and SNAT), and B's packets are addressed to that. Every
//! ARP request the node sends is answered on the wire it asked on. Trace `i` of seed `s` is
//! generated from its own seed alone, so a failing trace is named by `s` and `i`.

use smoltcp::wire::Ipv4Address;

use crate::craft::TcpOpt;
use crate::plan::Mode;

mod run;
mod script;
mod tcp;

pub use run::{run, RunFigures};
use script::gen_category;

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

/// The corpus seed `cargo xtask kernel-diff` uses unless told otherwise.
pub const DEFAULT_SEED: u64 = 1;

/// The number of traces of the default corpus (21 of each category).
pub const DEFAULT_TRACES: usize = 504;

/// The corpus: traces `0..n` of `seed`.
pub fn corpus(seed: u64, n: usize, mode: Option<Mode>) -> Vec<Script> {
    (0..n).map(|i| generate(seed, i, mode)).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
