//! A pod: a smoltcp [`Interface`] (Ethernet, its own MAC and IP, default route via the node's
//! `cni0` address) with its own sockets (each in a `SocketSet` of its own) and
//! programs, behind its `eth0`.
//!
//! The pod's device is a pair of frame queues: the cluster pushes arriving frames in, and
//! takes the frames smoltcp transmitted out after each [`Pod::service`].

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::iface::{Config, Interface};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress, Icmpv4Packet, IpAddress,
    IpCidr, IpEndpoint, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket, UdpPacket,
};

mod delack;
mod device;
mod icmp_out;
mod ipid;
mod lingering;
mod pool;
mod sockets;
mod sockets_index;
mod timewait;
#[cfg(test)]
mod timewait_tests;
mod transparent;
mod tsopt;

pub use device::{Nic, PodDevice, POD_MTU};
pub(crate) use lingering::Lingering;
pub(crate) use pool::SocketPool;
pub use pool::UDP_QUEUE;
pub(crate) use sockets::{Handle, Sockets};
use timewait::{Answered, Settled, TimeWait};
use tsopt::TsClock;

use crate::link::Frame;
use crate::program::{client::Client, App, PodEnv, Program};
use crate::rng::SimRng;

/// How a pod's network stack is set up: its `eth0` and its TCP settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackConfig {
    /// Receive and send buffer of every TCP socket, in bytes.
    pub tcp_buffer: usize,
    /// The pod's `eth0`.
    pub nic: Nic,
    /// TCP timestamps (`net.ipv4.tcp_timestamps`, on in Linux): offered in every SYN, sent
    /// on every segment of a connection whose peer offered them too.
    pub timestamps: bool,
}

impl StackConfig {
    /// A Linux pod's: 64 KiB TCP buffers, a veth of this IP MTU with TSO, timestamps.
    pub const fn linux(mtu: usize) -> Self {
        StackConfig {
            tcp_buffer: 64 * 1024,
            nic: Nic::veth(mtu),
            timestamps: true,
        }
    }
}

/// An ICMP error about a TCP or UDP packet this pod sent, as the socket layer sees it (smoltcp
/// does not pass ICMP errors to TCP/UDP sockets; the pod does, like Linux's `tcp_v4_err` and
/// `__udp4_lib_err`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// Who sent the error.
    pub from: Ipv4Address,
    /// Protocol of the quoted packet.
    pub protocol: IpProtocol,
    /// Our port in the quoted packet.
    pub local_port: u16,
    /// Its destination.
    pub remote: IpEndpoint,
    /// The errno Linux maps it to (`icmp_err_convert`).
    pub errno: &'static str,
    /// Whether Linux treats it as a hard (fatal) error.
    pub hard: bool,
    /// A description (`ICMP port unreachable from 10.244.1.20`).
    pub what: String,
}

impl IcmpError {
    /// Parses an arriving Ethernet frame; `None` unless it is an ICMP destination unreachable
    /// or time exceeded quoting a TCP or UDP packet.
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        if ip.next_header() != IpProtocol::Icmp {
            return None;
        }
        let icmp = ip.payload();
        let (t, code) = (*icmp.first()?, *icmp.get(1)?);
        let (errno, hard, what) = match (t, code) {
            (11, _) => ("EHOSTUNREACH", false, "ICMP time exceeded"),
            (3, 0) => ("ENETUNREACH", false, "ICMP net unreachable"),
            (3, 1) => ("EHOSTUNREACH", false, "ICMP host unreachable"),
            (3, 2) => ("ENOPROTOOPT", true, "ICMP protocol unreachable"),
            (3, 3) => ("ECONNREFUSED", true, "ICMP port unreachable"),
            (3, 4) => return None, // fragmentation needed: path MTU, not an error
            (3, 6) | (3, 11) => ("ENETUNREACH", true, "ICMP net unreachable"),
            (3, 7) | (3, 8) | (3, 12) => ("EHOSTDOWN", true, "ICMP host unreachable"),
            (3, 9) | (3, 10) => ("ENETUNREACH", true, "ICMP admin prohibited"),
            (3, 13..=15) => ("EHOSTUNREACH", true, "ICMP admin prohibited"),
            (3, _) => ("EHOSTUNREACH", false, "ICMP unreachable"),
            _ => return None,
        };
        let inner = Ipv4Packet::new_checked(icmp.get(8..)?).ok()?;
        let protocol = inner.next_header();
        if !matches!(protocol, IpProtocol::Tcp | IpProtocol::Udp) {
            return None;
        }
        let l4 = inner.payload();
        let sport = u16::from_be_bytes([*l4.first()?, *l4.get(1)?]);
        let dport = u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]);
        Some(IcmpError {
            from: ip.src_addr(),
            protocol,
            local_port: sport,
            remote: IpEndpoint::new(IpAddress::Ipv4(inner.dst_addr()), dport),
            errno,
            hard,
            what: alloc::format!("{what} from {}", ip.src_addr()),
        })
    }
}

/// An arriving TCP segment: its sender (address and port), destination port and flags
/// (SYN, ACK).
pub(crate) fn tcp_of(frame: &[u8]) -> Option<(IpEndpoint, u16, bool, bool)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let from = IpEndpoint::new(IpAddress::Ipv4(ip.src_addr()), tcp.src_port());
    Some((from, tcp.dst_port(), tcp.syn(), tcp.ack()))
}

/// Whether the checksums smoltcp verifies with its default capabilities hold: the IPv4
/// header's, then the TCP segment's, UDP datagram's (an unused 0 holds) or ICMP message's,
/// over the packet's payload as it stands (smoltcp here does not reassemble fragments).
/// A frame that does not parse that far holds: the stack drops it for what it is.
pub(crate) fn checksums_hold(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return true;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return true;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return true;
    };
    if !ip.verify_checksum() {
        return false;
    }
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    match ip.next_header() {
        IpProtocol::Tcp => {
            TcpPacket::new_checked(ip.payload()).map_or(true, |t| t.verify_checksum(&src, &dst))
        }
        IpProtocol::Udp => {
            UdpPacket::new_checked(ip.payload()).map_or(true, |u| u.verify_checksum(&src, &dst))
        }
        IpProtocol::Icmp => {
            Icmpv4Packet::new_checked(ip.payload()).map_or(true, |i| i.verify_checksum())
        }
        _ => true,
    }
}

/// The sender and destination port of a TCP SYN without ACK.
fn syn_of(frame: &[u8]) -> Option<(IpEndpoint, u16)> {
    let (from, port, syn, ack) = tcp_of(frame)?;
    (syn && !ack).then_some((from, port))
}

/// A pod's network identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodAddrs {
    /// `eth0`'s address with the node's pod prefix.
    pub ip: IpCidr,
    /// `eth0`'s MAC.
    pub mac: EthernetAddress,
    /// The default gateway (the node's `cni0`).
    pub gateway: Ipv4Address,
}

/// Up to this many connections, a program (and the pod, its lingering sockets) looks at each
/// of them on every step rather than at those that changed: cheaper for a few, and the same
/// result (a look at an unchanged one does nothing).
pub(crate) const FEW: usize = 16;

/// The tag owner (`Sockets::set_tag`) of lingering sockets; programs are 1 and up.
const LINGERING: u32 = 0;

/// One pod.
pub struct Pod {
    name: String,
    addrs: PodAddrs,
    iface: Interface,
    sockets: Sockets,
    device: PodDevice,
    apps: Vec<App>,
    ports: crate::program::ports::Ports,
    lingering: Lingering,
    timewait: TimeWait,
    pool: SocketPool,
    /// TSval for the segments the pod sends.
    ts: TsClock,
    rng: SimRng,
    /// The sockets served since the programs last ran (scratch, reused).
    changed: Vec<Handle>,
    /// The tag owner of the next program started.
    next_owner: u32,
    /// SYNs dropped because a server's accept queue was full (Linux's `ListenOverflows`).
    listen_overflows: u64,
    /// The SYNs dropped that way since the cluster last took them (for its trace).
    overflowed: Vec<Frame>,
    /// The limits on the ICMP errors the pod sends, made on its first one.
    icmp: Option<alloc::boxed::Box<crate::node::icmp_limit::IcmpLimit>>,
}

impl core::fmt::Debug for Pod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pod")
            .field("name", &self.name)
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Pod {
    /// A pod with its interface configured and its programs started at `now`.
    pub fn new(
        name: String,
        addrs: PodAddrs,
        programs: &[Program],
        mut rng: SimRng,
        stack: StackConfig,
        now: Instant,
    ) -> Self {
        let mut device = PodDevice::new(stack.nic, stack.timestamps);
        let mut config = Config::new(HardwareAddress::Ethernet(addrs.mac));
        config.random_seed = rng.next_u64();
        // The timestamp offsets' secret, from the seed without a draw of its own.
        let ts = TsClock::new(crate::rng::splitmix(config.random_seed ^ 0x7473_6f66));
        let mut sockets = Sockets::default();
        // The IP IDs' random starts, likewise (`pod::ipid`).
        sockets.seed_ip_ids(crate::rng::splitmix(config.random_seed ^ 0x6970_6964));
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|a| {
            let _ = a.push(addrs.ip);
        });
        let _ = iface.routes_mut().add_default_ipv4_route(addrs.gateway);
        let mut pod = Pod {
            name,
            addrs,
            iface,
            sockets,
            device,
            apps: Vec::new(),
            ports: Default::default(),
            lingering: Lingering::default(),
            timewait: TimeWait::default(),
            pool: SocketPool::new(stack.tcp_buffer, stack.timestamps),
            ts,
            rng,
            changed: Vec::new(),
            next_owner: LINGERING + 1,
            listen_overflows: 0,
            overflowed: Vec::new(),
            icmp: None,
        };
        for p in programs {
            pod.start(p, now);
        }
        pod
    }

    /// Starts a program.
    pub fn start(&mut self, program: &Program, now: Instant) {
        let owner = self.next_owner;
        self.next_owner += 1;
        let app = {
            let mut env = self.env(now, None);
            env.owner = owner;
            App::start(program, &mut env)
        };
        self.apps.push(app);
    }

    fn env<'a>(
        &'a mut self,
        now: Instant,
        sock_lb: Option<&'a mut (dyn crate::ebpf::SocketLb + 'static)>,
    ) -> PodEnv<'a> {
        PodEnv {
            changed: &[],
            owner: LINGERING,
            now,
            iface: &mut self.iface,
            sockets: &mut self.sockets,
            rng: &mut self.rng,
            pod_name: &self.name,
            pool: &mut self.pool,
            ports: &mut self.ports,
            lingering: &mut self.lingering,
            sock_lb,
        }
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's addresses.
    pub fn addrs(&self) -> &PodAddrs {
        &self.addrs
    }

    /// Queues an arriving frame; [`Pod::service`] processes it. A frame whose IPv4 header,
    /// TCP, UDP or ICMP checksum does not hold is dropped here, silently, as the stack would
    /// drop it (a NIC hands the kernel such a frame `CHECKSUM_NONE`, and its software check
    /// fails).
    pub fn deliver(&mut self, frame: Frame) {
        if checksums_hold(&frame) {
            self.deliver_offloaded(frame);
        }
    }

    /// [`Pod::deliver`] for a frame whose checksums are known to hold: written by a stack of
    /// this world, which fills them in correctly, and rewritten since only by NAT, which
    /// keeps them correct. Linux's TCP does not verify such a segment either: a veth hands
    /// it on `CHECKSUM_PARTIAL`, a NIC that verified it on `CHECKSUM_UNNECESSARY`. The
    /// cluster delivers this way until a crafted frame has been injected.
    pub fn deliver_offloaded(&mut self, frame: Frame) {
        if self.iface.any_ip() && !self.own_arp(&frame) {
            return;
        }
        self.device.rx.push_back(frame);
    }

    /// Runs the stack and the programs at `now`; returns the frames transmitted.
    pub fn service(&mut self, now: Instant) -> Vec<Frame> {
        self.service_with(now, None)
    }

    /// [`Pod::service`] with the node's socket-level load balancer, which the pod's
    /// `connect()`s go through (Cilium's `cgroup/connect4`).
    pub fn service_with(
        &mut self,
        now: Instant,
        mut sock_lb: Option<&mut (dyn crate::ebpf::SocketLb + 'static)>,
    ) -> Vec<Frame> {
        self.iface.poll_maintenance(now);
        while let Some(frame) = self.device.rx.front() {
            let icmp = IcmpError::parse(frame);
            let tw_key = self.timewait.key_of(frame);
            if let Some((remote, port)) = syn_of(frame) {
                let mut apps = core::mem::take(&mut self.apps);
                let mut full = false;
                {
                    let mut env = self.env(now, None);
                    for app in apps.iter_mut() {
                        full |= app.before_syn(remote, port, &mut env);
                    }
                }
                self.apps = apps;
                if full {
                    // The listener's accept queue is full: Linux drops the SYN.
                    if let Some(syn) = self.device.rx.pop_front() {
                        self.overflowed.push(syn);
                    }
                    self.listen_overflows += 1;
                    continue;
                }
            }
            // A segment for a connection in TIME-WAIT goes to its record, or to its socket
            // alone.
            let answered = match (tw_key, self.device.rx.front()) {
                (Some(k), Some(frame)) => {
                    let me = (self.addrs.mac, self.addrs.ip.address());
                    let tx = &mut self.device.tx;
                    self.timewait.answer(k, frame, me, now, tx)
                }
                _ => Answered::No,
            };
            match answered {
                Answered::No => {
                    // The slot of the socket that takes the frame (none for a TIME-WAIT
                    // connection's scratch socket or smoltcp alone).
                    let (slot, scratch) = match tw_key.and_then(|k| self.timewait.claim(k)) {
                        Some(scratch) => (None, Some(scratch)),
                        None => match self.device.rx.front() {
                            Some(frame) => (self.sockets.take_frame(&self.iface, frame), None),
                            None => break,
                        },
                    };
                    let sent = self.device.tx.len();
                    // A datagram (IPv4, protocol 17) no socket takes is answered with an ICMP
                    // error, which quotes it.
                    let orig = match (slot, self.device.rx.front()) {
                        (None, Some(f))
                            if f.get(12..14) == Some(&[8, 0]) && f.get(23) == Some(&17) =>
                        {
                            Some(f.to_vec())
                        }
                        _ => None,
                    };
                    // When the socket acknowledges it, as Linux's TCP would (`pod::delack`).
                    let plan = match (slot, self.device.rx.front()) {
                        (Some(i), Some(f)) => self.sockets.plan_ack(i, f, now),
                        _ => None,
                    };
                    let sockets = match scratch {
                        Some(s) => s,
                        None => self.sockets.set_of(slot),
                    };
                    self.iface
                        .poll_ingress_single(now, &mut self.device, sockets);
                    if let (Some(i), Some(plan)) = (slot, plan) {
                        if self.sockets.settle_ack(i, plan) {
                            self.sockets
                                .ack_at_once(i, &mut self.iface, now, &mut self.device);
                        }
                    }
                    if let Some(orig) = orig {
                        Pod::linux_icmp_errors(&orig, &mut self.device.tx, sent);
                    }
                    self.sockets
                        .stamp_ingress(&mut self.device.tx[sent..], now, slot);
                }
                Answered::Yes => {
                    self.device.rx.pop_front();
                }
                Answered::Closed(key) => {
                    self.device.rx.pop_front();
                    self.ports.release_tcp(key);
                }
            }
            let mut apps = core::mem::take(&mut self.apps);
            {
                let mut env = self.env(now, sock_lb.as_deref_mut());
                for app in apps.iter_mut() {
                    if let Some(err) = &icmp {
                        app.icmp_error(err, &mut env);
                    }
                    app.after_ingress(&mut env);
                }
            }
            self.apps = apps;
        }
        self.run_apps(now, sock_lb);
        self.sockets.egress(&mut self.iface, now, &mut self.device);
        self.timewait
            .poll_egress(&mut self.iface, now, &mut self.device);
        self.reap(now);
        let mut tx = core::mem::take(&mut self.device.tx);
        for f in tx.iter_mut() {
            tsopt::finish(f, now, &self.ts);
        }
        tx
    }

    fn run_apps(
        &mut self,
        now: Instant,
        sock_lb: Option<&mut (dyn crate::ebpf::SocketLb + 'static)>,
    ) {
        let mut apps = core::mem::take(&mut self.apps);
        let mut changed = core::mem::take(&mut self.changed);
        self.sockets.take_changed(&mut changed);
        {
            let mut env = self.env(now, sock_lb);
            env.changed = &changed;
            for app in apps.iter_mut() {
                app.step(&mut env);
            }
        }
        self.apps = apps;
        self.changed = changed;
    }

    /// Moves sockets that reached TIME-WAIT to the store, frees those that closed (their port
    /// and their socket, for reuse).
    fn reap(&mut self, now: Instant) {
        let mut settled = Vec::new();
        for key in self.timewait.take_ended() {
            self.ports.release_tcp(key);
        }
        let tx = &self.device.tx;
        self.timewait
            .put_back(&mut self.iface, now, tx, &mut settled);
        // The lingering sockets to look at, in the order they came: those handed over since
        // the last reap and those served since (by the ingress the programs saw, or by the
        // egress just done). Any other is as the last reap found it: neither closed nor in
        // TIME-WAIT.
        if let Some(mut ling) = self.lingering.0.take() {
            self.reap_lingering(&mut ling, now, &mut settled);
            self.lingering.0 = Some(ling);
        }
        for s in settled {
            match s {
                Settled::Closed(sock, key) => {
                    self.ports.release_tcp(key);
                    self.pool.put_tcp(sock);
                }
                Settled::Recorded(sock) => self.pool.put_tcp(sock),
                Settled::Active(sock, key) => {
                    let h = self.sockets.add(sock);
                    self.lingering.push(h, key);
                }
            }
        }
    }

    /// When the pod next needs [`Pod::service`] without any frame arriving (a time in the
    /// past means now).
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let stack = self.sockets.poll_at(&mut self.iface, now);
        [
            stack,
            self.apps.iter().filter_map(|a| a.next_wake()).min(),
            self.timewait.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// SYNs dropped because a server of the pod held all the connections it accepts
    /// (Linux's `ListenOverflows` in `nstat`).
    pub fn listen_overflows(&self) -> u64 {
        self.listen_overflows
    }

    /// The SYNs dropped for a full accept queue since the last call.
    pub(crate) fn take_overflowed(&mut self) -> Vec<Frame> {
        core::mem::take(&mut self.overflowed)
    }

    /// Every finished connection of every client program of the pod.
    pub fn connections(&self) -> impl Iterator<Item = &crate::program::ConnRecord> {
        self.clients().flat_map(|c| c.records())
    }

    /// Removes the client programs that have finished and returns them, in start order.
    pub(crate) fn take_finished_clients(&mut self) -> Vec<Client> {
        let mut out = Vec::new();
        let mut kept = Vec::with_capacity(self.apps.len());
        for app in core::mem::take(&mut self.apps) {
            match app {
                App::Client(c) if c.done() => out.push(c),
                other => kept.push(other),
            }
        }
        self.apps = kept;
        out
    }

    /// The pod's client programs.
    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.apps.iter().filter_map(|a| a.client())
    }

    /// Reclassifies finished `timeout`s its clients' connections as `denied` (see
    /// `Client::review_denied`).
    pub(crate) fn review_denied(
        &mut self,
        denied: &dyn Fn(&crate::program::ConnRecord, u8) -> Option<alloc::string::String>,
    ) {
        for c in self.apps.iter_mut().filter_map(|a| a.client_mut()) {
            c.review_denied(denied);
        }
    }

    /// Open sockets (listening, connected and lingering).
    pub fn socket_count(&self) -> usize {
        self.sockets.len() + self.timewait.len()
    }

    /// Sockets in TIME-WAIT (kept out of the stack's socket set, see `pod::timewait`).
    pub fn time_wait_count(&self) -> usize {
        self.timewait.len()
    }

    /// Segments that arrived for sockets in TIME-WAIT (a FIN retransmitted because the last
    /// ACK was lost, an RST) and were processed by them.
    pub fn time_wait_segments(&self) -> u64 {
        self.timewait.segments
    }

    /// Sockets created so far (buffers allocated) and sockets reused from the pod's pool.
    pub fn sockets_created_reused(&self) -> (u64, u64) {
        (self.pool.created, self.pool.reused)
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;
    use crate::program::Program;
    use crate::rng::Stream;
    use smoltcp::wire::{EthernetRepr, Ipv4Cidr};

    const CLIENT: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
    const SERVER: Ipv4Address = Ipv4Address::new(10, 244, 0, 3);
    const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 10, 244, 0, 3]);

    /// `ip` in an Ethernet frame from the client to the server.
    fn framed(ip: &[u8]) -> Frame {
        let mut f = alloc::vec![0; 14 + ip.len()];
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 10, 244, 0, 2]),
            dst_addr: SERVER_MAC,
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        f[14..].copy_from_slice(ip);
        f.into()
    }

    fn syn() -> Frame {
        framed(&crate::packet::tcp(
            CLIENT, 40000, SERVER, 80, "S", 1000, 0, 0,
        ))
    }

    /// The frames a fresh HTTP server pod sends after `frame` arrives (its SYN-ACK, or first
    /// the ARP request for the client).
    fn answers(frame: Frame, offloaded: bool) -> usize {
        let now = Instant::ZERO;
        let mut pod = Pod::new(
            String::from("server"),
            PodAddrs {
                ip: IpCidr::Ipv4(Ipv4Cidr::new(SERVER, 24)),
                mac: SERVER_MAC,
                gateway: Ipv4Address::new(10, 244, 0, 1),
            },
            &[Program::HttpServer { port: 80 }],
            SimRng::derive(1, Stream::Pod(1)),
            StackConfig::linux(POD_MTU),
            now,
        );
        pod.service(now);
        if offloaded {
            pod.deliver_offloaded(frame);
        } else {
            pod.deliver(frame);
        }
        pod.service(now).len()
    }

    #[test]
    fn checksums_are_those_smoltcp_verifies() {
        let good = syn();
        assert!(checksums_hold(&good));
        // The TCP checksum, over the segment; the IPv4 header's.
        let mut bad_tcp = good.clone();
        bad_tcp[14 + 20 + 4] ^= 1;
        assert!(!checksums_hold(&bad_tcp));
        let mut bad_ip = good.clone();
        bad_ip[14 + 8] ^= 1;
        assert!(!checksums_hold(&bad_ip));
        // UDP: a 0 checksum is none, a wrong one fails.
        let mut udp = framed(&crate::packet::udp(CLIENT, 5353, SERVER, 53));
        assert!(checksums_hold(&udp));
        udp[14 + 20 + 6..14 + 20 + 8].fill(0);
        assert!(checksums_hold(&udp));
        udp[14 + 20 + 7] = 1;
        assert!(!checksums_hold(&udp));
        // What does not parse that far is the stack's to drop.
        assert!(checksums_hold(&good[..30]));
        assert!(checksums_hold(&[0u8; 60]));
    }

    #[test]
    fn a_segment_with_a_bad_checksum_is_dropped_unless_offloaded() {
        let mut bad = syn();
        bad[14 + 20 + 16] ^= 0x40;
        // Verified: the SYN is answered, the corrupt one is not even refused.
        assert_eq!(answers(syn(), false), 1);
        assert_eq!(answers(bad.clone(), false), 0);
        // Trusted as the cluster's own frames are: the stack itself checks nothing.
        assert_eq!(answers(bad, true), 1);
    }
}
