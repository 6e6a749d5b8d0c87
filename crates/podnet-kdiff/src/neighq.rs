//! How many packets a neighbour's queue holds while ARP goes unanswered: the kernel against
//! podnet's model of `skb->truesize` (`podnet::node::truesize`).
//!
//! The replays give every node static neighbours, so they never queue a packet. This check
//! builds a node of its own: a pod namespace whose real Linux stack sends SYNs (a
//! non-blocking `connect` each) or UDP datagrams to `10.244.1.2`, a node namespace that
//! forwards them from `cni0` (a bridge with the pod's veth) to a next hop on `eth0` that
//! never answers ARP, directly or through a VXLAN device (flannel's `flannel.1`, UDP 8472),
//! and a third namespace holding the other end of `eth0`, with ARP off. Each case sends more
//! packets than the queue can hold within the first ARP probe's second; the kernel's
//! `unresolved_discards` (`/proc/net/stat/arp_cache`) says how many it dropped. podnet's
//! count is `unres_qlen_bytes` over the truesize of the same packet as podnet's node holds
//! it (the frame leaving `eth0`, VXLAN-encapsulated for the tunnel cases).
//!
//! The discard counter is the ARP table's, shared by every namespace of the host: another
//! namespace overflowing a neighbour queue during the check would show as a disagreement.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use smoltcp::wire::{EthernetAddress, Ipv4Address};

use crate::counts::{sh, Case};
use crate::craft;
use crate::netns::{self, Namespaces};
use crate::sys;

/// One kind of packet sent into the queue.
#[derive(Clone, Copy, Debug)]
pub enum Packet {
    /// A TCP SYN from `connect`.
    Syn,
    /// A UDP datagram with this many payload bytes.
    Udp(usize),
}

const POD: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
const DST: Ipv4Address = Ipv4Address::new(10, 244, 1, 2);
const NODE_A: Ipv4Address = Ipv4Address::new(192, 168, 1, 100);
const NODE_B: Ipv4Address = Ipv4Address::new(192, 168, 1, 101);
const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

/// How the packets reach the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// From the pod, routed by the node to `eth0`.
    Plain,
    /// From the pod, into the node's VXLAN device.
    Vxlan,
    /// From the node itself, through its VXLAN device.
    NodeVxlan,
}

/// The node's VXLAN address (its `flannel.1`), the source of what it sends through it.
const VTEP: Ipv4Address = Ipv4Address::new(10, 244, 0, 0);

/// The cases `run` checks.
pub const CASES: &[(Packet, Path)] = &[
    (Packet::Syn, Path::Plain),
    (Packet::Udp(100), Path::Plain),
    (Packet::Udp(400), Path::Plain),
    (Packet::Udp(1000), Path::Plain),
    (Packet::Syn, Path::Vxlan),
    (Packet::Udp(100), Path::Vxlan),
    (Packet::Udp(400), Path::Vxlan),
    (Packet::Udp(1000), Path::Vxlan),
    (Packet::Udp(100), Path::NodeVxlan),
    (Packet::Udp(600), Path::NodeVxlan),
    (Packet::Udp(1000), Path::NodeVxlan),
];

fn discards() -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/net/stat/arp_cache")
        .map_err(|e| format!("/proc/net/stat/arp_cache: {e}"))?;
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = head
        .iter()
        .position(|h| *h == "unresolved_discards")
        .ok_or("/proc/net/stat/arp_cache: no unresolved_discards column")?;
    let mut total = 0;
    for l in lines {
        if let Some(v) = l.split_whitespace().nth(col) {
            total += u64::from_str_radix(v, 16).map_err(|e| format!("arp_cache: {v}: {e}"))?;
        }
    }
    Ok(total)
}

/// The frame podnet's node would hold in the queue for `packet`.
fn podnet_frame(packet: Packet, path: Path) -> Vec<u8> {
    let src = if path == Path::NodeVxlan { VTEP } else { POD };
    let l4 = match packet {
        Packet::Syn => craft::tcp(
            src,
            DST,
            40000,
            80,
            1,
            0,
            craft::SYN,
            64240,
            &[craft::TcpOpt::Mss(1460)],
            0,
        ),
        Packet::Udp(n) => craft::udp(src, DST, 40000, 53, n),
    };
    let proto = if matches!(packet, Packet::Syn) { 6 } else { 17 };
    let inner = craft::eth(
        MAC_B,
        MAC_A,
        0x0800,
        &craft::ipv4(src, DST, proto, 63, 1, &l4),
    );
    if path != Path::Plain {
        podnet::node::vxlan::encap(&inner, NODE_A, NODE_B, 1).into_bytes()
    } else {
        inner
    }
}

fn setup(ns: &mut Namespaces, vxlan: bool) -> Result<[String; 3], String> {
    let pid = std::process::id();
    let names = ["p", "n", "x"].map(|s| format!("pnkd-{pid}-neigh{s}"));
    for n in &names {
        ns.add(n)?;
        netns::ipv4_only(n)?;
    }
    let [p, n, x] = &names;
    netns::run(
        "ip",
        &[
            "link", "add", "veth0", "netns", n, "type", "veth", "peer", "name", "eth0", "netns", p,
        ],
        None,
    )?;
    netns::run(
        "ip",
        &[
            "link", "add", "eth0", "netns", n, "type", "veth", "peer", "name", "eth0", "netns", x,
        ],
        None,
    )?;
    for c in [
        "ip link add cni0 type bridge",
        "ip link set veth0 master cni0",
        "ip addr add 10.244.0.1/24 dev cni0",
        "ip link set cni0 up",
        "ip link set veth0 up",
        "ip addr add 192.168.1.100/24 dev eth0",
        "ip link set eth0 up",
        "sysctl -qw net.ipv4.ip_forward=1",
    ] {
        sh(n, c)?;
    }
    if vxlan {
        for c in [
            "ip link add flannel.1 type vxlan id 1 local 192.168.1.100 dev eth0 dstport 8472",
            "ip link set flannel.1 up",
            "ip addr add 10.244.0.0/32 dev flannel.1",
            "bridge fdb append 00:00:00:00:00:00 dev flannel.1 dst 192.168.1.101",
            "ip neigh replace 10.244.1.0 lladdr 02:00:00:00:00:02 dev flannel.1 nud permanent",
            "ip route add 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink",
        ] {
            sh(n, c)?;
        }
    } else {
        sh(n, "ip route add 10.244.1.0/24 via 192.168.1.101 dev eth0")?;
    }
    let cni0 = netns::ns_run(n, "cat", &["/sys/class/net/cni0/address"], None)?;
    for c in [
        "ip addr add 10.244.0.2/24 dev eth0",
        "ip link set eth0 up",
        "ip route add default via 10.244.0.1",
        &format!(
            "ip neigh replace 10.244.0.1 lladdr {} dev eth0 nud permanent",
            cni0.trim()
        ),
    ] {
        sh(p, c)?;
    }
    sh(x, "ip link set eth0 arp off")?;
    sh(x, "ip link set eth0 up")?;
    Ok(names)
}

/// Sends `count` packets from namespace `from` (the pod or the node), within the first ARP
/// probe's second.
fn send(from: &str, packet: Packet, count: usize) -> Result<(), String> {
    let guard = sys::enter_netns(from).map_err(|e| format!("entering {from}: {e}"))?;
    let to = SocketAddr::from((Ipv4Addr::from(DST.octets()), 80));
    let started = Instant::now();
    let udp = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("UDP socket: {e}"))?;
    let mut syns = Vec::new();
    for _ in 0..count {
        match packet {
            // Each connect sends a SYN and returns; the sockets close (sending nothing in
            // SYN-SENT) once all are sent.
            Packet::Syn => syns.push(
                sys::tcp_connect_nowait(DST.octets(), 80).map_err(|e| format!("connect: {e}"))?,
            ),
            Packet::Udp(n) => {
                udp.send_to(&vec![b'x'; n], SocketAddr::from((to.ip(), 53)))
                    .map_err(|e| format!("send_to: {e}"))?;
            }
        }
    }
    drop(guard);
    if started.elapsed() > Duration::from_millis(900) {
        return Err(format!(
            "sending {count} packets took {:?}, past the first ARP retransmission",
            started.elapsed()
        ));
    }
    Ok(())
}

/// Runs every case of [`CASES`] (the kernel's count: packets kept, sent less
/// `unresolved_discards`); namespaces are deleted afterwards, on errors too.
pub fn run() -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    for &(packet, path) in CASES {
        let mut ns = Namespaces::new();
        let [p, n, _] = setup(&mut ns, path != Path::Plain)?;
        let vtep = (path != Path::Plain).then_some(VTEP);
        let frame = podnet_frame(packet, path);
        let truesize = podnet::node::truesize::truesize(&frame, false, vtep);
        // The node's own packets are charged to its sending socket until they leave, so with
        // the default limit its send buffer (212,992 bytes, as much as the queue holds) would
        // block the sender first: a smaller queue for them.
        let qlen = if path == Path::NodeVxlan {
            sh(&n, "sysctl -qw net.ipv4.neigh.eth0.unres_qlen_bytes=100000")?;
            100_000
        } else {
            podnet::node::UNRES_QLEN_BYTES
        };
        let fits = qlen / truesize;
        let sent = fits + fits / 2 + 20;
        let before = discards()?;
        send(if path == Path::NodeVxlan { &n } else { &p }, packet, sent)?;
        std::thread::sleep(Duration::from_millis(50));
        let dropped = discards()?.saturating_sub(before);
        out.push(Case {
            name: format!(
                "{}{}",
                match packet {
                    Packet::Syn => "SYN".to_string(),
                    Packet::Udp(b) => format!("UDP {b} B"),
                },
                match path {
                    Path::Plain => "",
                    Path::Vxlan => " via VXLAN",
                    Path::NodeVxlan => " from node, VXLAN",
                }
            ),
            sent,
            kernel: sent.saturating_sub(dropped as usize),
            podnet: fits.min(sent),
            agree: sent.saturating_sub(dropped as usize) == fits.min(sent),
            detail: format!("truesize {truesize}"),
        });
    }
    Ok(out)
}
