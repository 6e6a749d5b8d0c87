//! The values the module hands to JavaScript. Each derives `Tsify`, so the package's
//! `podnet_wasm.d.ts` declares them from these definitions (API.md is the contract).

use serde::{Deserialize, Serialize};
use tsify::Tsify;

/// A load or build problem, or a warning.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[tsify(missing_as_null)]
pub struct Diagnostic {
    /// How bad.
    #[tsify(type = "\"error\" | \"warning\"")]
    pub severity: &'static str,
    /// The file name given to the loader.
    pub file: String,
    /// 1-based line, when the problem has a place.
    pub line: Option<u32>,
    /// 1-based column, when the problem has a place.
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
    /// `file:line:col: message`, as the CLI prints it.
    pub text: String,
}

/// A bundled example scenario (every `examples/*.yaml` of the repository).
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
pub struct Example {
    /// The file name without `.yaml`.
    pub name: String,
    /// The first sentence of its leading comment.
    pub title: String,
    /// The file.
    pub yaml: String,
}

/// Options of `new Sim`.
#[derive(Deserialize, Tsify, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimOptions {
    /// Overrides the Cluster's seed.
    #[tsify(optional)]
    pub seed: Option<u64>,
    /// The name errors give the text (default `scenario.yaml`).
    #[tsify(optional)]
    pub file_name: Option<String>,
    /// Record trace events from the start (default true); `false` runs without recording
    /// (fast, no memory) until `setRecording(true)`.
    #[tsify(optional)]
    pub record: Option<bool>,
    /// How many events to keep at most (default 100,000): past that the oldest quarter goes.
    #[tsify(optional)]
    pub window_events: Option<u32>,
}

/// The cluster's settings.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// The scenario's name.
    pub name: String,
    /// `bridge`, `vxlan` or `native`.
    pub cni: String,
    /// `iptables`, `nftables`, `ebpf`, `none`.
    pub proxy: String,
    /// The pod CIDR.
    pub pod_cidr: String,
    /// The service CIDR.
    pub service_cidr: String,
}

/// A node, or the edge router.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Its underlay address.
    pub ip: String,
    /// Its pod CIDR.
    pub pod_cidr: String,
    /// `node`, or `edge` for the router to external hosts.
    #[tsify(type = "\"node\" | \"edge\"")]
    pub role: &'static str,
    /// Its interfaces (`node-a/eth0`, `node-a/cni0`, `node-a/veth00000000`, ...).
    pub interfaces: Vec<String>,
    /// The pods (and external hosts) it runs.
    pub pods: Vec<String>,
}

/// A pod.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[tsify(hashmap_as_object)]
pub struct PodInfo {
    /// Its name (in the engine: `NAME.NAMESPACE` when two namespaces use one name).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its address.
    pub ip: String,
    /// Its node.
    pub node: String,
    /// Its labels.
    #[tsify(type = "Record<string, string>")]
    pub labels: podnet::policy::Labels,
    /// Its security identity, with Cilium policies (`null` otherwise).
    pub identity: Option<u32>,
}

/// A Service port.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[tsify(missing_as_null)]
pub struct PortInfo {
    /// Its name (`null` when unnamed).
    pub name: Option<String>,
    /// The Service port.
    pub port: u16,
    /// The backends' port.
    pub target_port: u16,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// The node port, for NodePort Services.
    pub node_port: Option<u16>,
}

/// A Service.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[tsify(missing_as_null)]
pub struct ServiceInfo {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its ClusterIP.
    pub cluster_ip: String,
    /// Its ports.
    pub ports: Vec<PortInfo>,
    /// Its backends' pod names, now.
    pub backends: Vec<String>,
}

/// A host outside the cluster.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
pub struct ExternalInfo {
    /// Its name.
    pub name: String,
    /// Its address.
    pub ip: String,
}

/// A link: two interfaces joined by a wire.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
pub struct LinkInfo {
    /// One end (`pod-a/eth0`, `node-a/eth0`).
    pub a: String,
    /// The other end (`node-a/veth00000000`, `underlay/node-a`).
    pub b: String,
}

/// A Traffic flow.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FlowInfo {
    /// Its name.
    pub name: String,
    /// The client pods (or external hosts).
    pub from: Vec<String>,
    /// The address the clients connect to.
    pub to: String,
    /// The port.
    pub port: u16,
    /// `TCP`, `UDP` or `ICMP`.
    pub protocol: String,
    /// The Traffic's `to` as written (`web:80`).
    pub to_text: String,
}

/// What the simulated network is made of, now.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[tsify(missing_as_null, hashmap_as_object)]
pub struct Topology {
    /// The cluster's settings.
    pub cluster: ClusterInfo,
    /// Nodes, then the edge router (when there are external hosts).
    pub nodes: Vec<NodeInfo>,
    /// Pods (external hosts are in `externals`).
    pub pods: Vec<PodInfo>,
    /// Services.
    pub services: Vec<ServiceInfo>,
    /// External hosts.
    pub externals: Vec<ExternalInfo>,
    /// Wires between interfaces (pod veths and node uplinks).
    pub links: Vec<LinkInfo>,
    /// Traffic flows.
    pub flows: Vec<FlowInfo>,
}

/// One decoded packet (IPv4 or ARP) of a frame or hook snapshot.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[tsify(missing_as_null)]
pub struct PacketInfo {
    /// The protocol.
    #[tsify(type = "\"tcp\" | \"udp\" | \"icmp\" | \"arp\" | \"other\"")]
    pub proto: &'static str,
    /// Source IP (ARP: sender protocol address; empty for other frames).
    pub src: String,
    /// Destination IP (ARP: target protocol address).
    pub dst: String,
    /// TCP/UDP source port.
    pub sport: Option<u16>,
    /// TCP/UDP destination port.
    pub dport: Option<u16>,
    /// tcpdump-style TCP flags: `S`, `S.`, `.`, `P.`, `F.`, `R`, `R.`.
    pub flags: Option<String>,
    /// The IP packet's length (the frame's for non-IP frames).
    pub len: u32,
    /// The inner packet of a VXLAN packet (UDP 8472 or 4789).
    pub vxlan: Option<Box<PacketInfo>>,
    /// The `tcpdump -n -S` line, without the timestamp.
    pub line: String,
}

/// The connection a packet belongs to.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
pub struct ConnRef {
    /// The Traffic flow's name.
    pub flow: String,
    /// The connection's index in the flow (start order, as in the report).
    pub id: u32,
}

/// One trace event.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[tsify(missing_as_null)]
pub struct SimEvent {
    /// Its number: events are numbered from 0 at the moment recording began
    /// (`recordingSince`), and stay numbered so while the oldest are let go (`eventBase`).
    pub index: f64,
    /// Virtual time, µs.
    pub time: f64,
    /// What happened.
    #[tsify(type = "\"sent\" | \"received\" | \"dropped\" | \"hook\"")]
    pub kind: &'static str,
    /// The interface (`node-a/cni0`).
    pub iface: String,
    /// The host the interface belongs to (`node-a`, `client`, `underlay`).
    pub host: String,
    /// The netfilter hook, for hook events.
    #[tsify(
        type = "\"PREROUTING\" | \"INPUT\" | \"FORWARD\" | \"OUTPUT\" | \"POSTROUTING\" | null"
    )]
    pub hook: Option<&'static str>,
    /// The hook's verdict, for hook events.
    #[tsify(type = "\"accept\" | \"drop\" | \"reject\" | null")]
    pub verdict: Option<&'static str>,
    /// Why the packet was dropped (drop events, and hook events that dropped or rejected it).
    pub reason: Option<String>,
    /// The packet (before the hook, for hook events).
    pub packet: PacketInfo,
    /// The packet after a hook that rewrote it.
    pub after: Option<PacketInfo>,
    /// What the hook's modules did (rules matched, NAT, conntrack).
    pub notes: Vec<String>,
    /// The connection of a Traffic flow this packet belongs to, when known.
    pub conn: Option<ConnRef>,
}

/// The addresses and ports of one direction of a conntrack entry.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq, Default)]
pub struct CtTuple {
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// Source port (ICMP: the query id).
    pub sport: u16,
    /// Destination port (ICMP: the query id).
    pub dport: u16,
}

/// One conntrack entry, as `conntrack -L` shows it.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[tsify(missing_as_null)]
pub struct ConntrackEntry {
    /// `tcp`, `udp`, `icmp`.
    pub proto: String,
    /// The TCP state (`ESTABLISHED`, `TIME_WAIT`, ...), `null` for other protocols.
    pub state: Option<String>,
    /// Seconds left.
    pub timeout: u32,
    /// `[ASSURED]`.
    pub assured: bool,
    /// `[UNREPLIED]`.
    pub unreplied: bool,
    /// The original direction.
    pub orig: CtTuple,
    /// The reply direction (the translated addresses when NAT applies).
    pub reply: CtTuple,
    /// The `conntrack -L` line.
    pub text: String,
}

/// A frame on a wire at some moment: sent on one end of a link and not yet received on the
/// other.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Flight {
    /// The `sent` event's number.
    pub sent: f64,
    /// The `received` event's number (on the link's other end), when it is known (null for
    /// a frame still on the wire in the simulation: it is received in its future).
    pub received: Option<f64>,
    /// When it was sent, µs.
    pub sent_time: f64,
    /// When it is received, µs.
    pub received_time: f64,
    /// The interface it left.
    pub from: String,
    /// The interface it reaches.
    pub to: String,
    /// The frame.
    pub packet: PacketInfo,
}

/// The frames on the wires at one moment, and the drops just before it.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq, Default)]
pub struct Flights {
    /// The frames in flight, in the order they are received.
    pub flights: Vec<Flight>,
    /// The latest drops at or before the moment among the events looked at (at most
    /// [`crate::sim::MAX_DROPS`], oldest first), without their connections (`conn` null).
    pub drops: Vec<SimEvent>,
}

/// The first lines of a node's `conntrack -L`, and how many lines it has in all.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
pub struct ConntrackHead {
    /// Lines (entries) in all.
    pub count: u32,
    /// The first ones, in `conntrack -L` order.
    pub lines: Vec<String>,
    /// The lines of the entries asked for (whose original or reply tuple is one of those
    /// given), wherever they are in the list, in its order.
    pub selected: Vec<String>,
}

/// The last lines of a tcpdump, and how many lines it has in all.
#[derive(Serialize, Tsify, Clone, Debug, PartialEq)]
pub struct TcpdumpTail {
    /// Lines in all.
    pub count: u32,
    /// The last ones, oldest first.
    pub lines: Vec<String>,
}
