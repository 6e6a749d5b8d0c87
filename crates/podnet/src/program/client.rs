//! The client program: opens `count` connections (or sends `count` datagrams) to one target,
//! at most `concurrency` at a time, the i-th no earlier than `start + i * interval`, and records
//! each one's outcome, connect time and byte counts.
//!
//! A TCP connection is `ok` when the whole answer arrived (an HTTP response with its
//! `Content-Length` body, or every byte echoed back intact); the client then closes it, as curl
//! does, and the FIN exchange goes on without it. It is `refused` when it ended before being
//! established (RST to the SYN, or an ICMP error in SYN-SENT, as `connect()` fails in Linux),
//! `reset` when a RST ended it after that, and `timeout` when `timeout` passed first (the client
//! then drops the socket without sending anything more).
//!
//! With [`ClientSpec::resolve`], the client first looks its target's name up in DNS (see
//! [`Resolve`](super::Resolve)) and connects to the answer. When no address comes back, every connection is
//! recorded without being opened: `refused` with `EAI_NONAME: NAME` (every name tried was
//! `NXDOMAIN`; `EAI_NODATA` when one existed without an `A` record), or `timeout` with
//! `EAI_AGAIN: NAME` (no answer after every attempt).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::pod::Handle;
use crate::window::Window;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

use super::dns::{Lookup, Resolved};
use super::payload::Payload;
use super::server::find;
use super::PodEnv;

/// How long a closed connection may wait for its FIN to be acknowledged (Linux gives up on an
/// orphaned socket after `tcp_orphan_retries` = 8 retransmissions, about this long).
pub const ORPHAN_TIMEOUT: Duration = Duration::from_secs(60);

/// Linux's default `net.ipv4.ip_local_port_range`.
pub const EPHEMERAL_PORTS: (u16, u16) = (32768, 60999);

pub use super::spec::{ClientSpec, Protocol, Request};

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The whole exchange completed.
    Ok,
    /// Rejected before it was established (RST or ICMP unreachable).
    Refused,
    /// Reset after it was established.
    Reset,
    /// Not finished within the timeout.
    Timeout,
    /// Timed out because a NetworkPolicy dropped its first packet.
    Denied,
}

impl Outcome {
    /// The report spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Reset => "reset",
            Outcome::Timeout => "timeout",
            Outcome::Denied => "denied",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One finished connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnRecord {
    /// 0-based index within the flow.
    pub id: u32,
    /// Client address and port.
    pub local: IpEndpoint,
    /// Destination address and port (what the application connected to).
    pub remote: IpEndpoint,
    /// Where the socket really connected when socket-level load balancing translated the
    /// `connect()` (eBPF mode): the backend; `None` when it connected to `remote`.
    pub peer: Option<IpEndpoint>,
    /// When it started.
    pub started: Instant,
    /// Handshake duration (SYN sent to ESTABLISHED), if it got there.
    pub connect_time: Option<Duration>,
    /// When it ended.
    pub ended: Instant,
    /// How it ended.
    pub outcome: Outcome,
    /// Payload bytes the client sent.
    pub bytes_sent: u64,
    /// Payload bytes the client received.
    pub bytes_received: u64,
    /// What the application saw go wrong, Linux style (`ECONNREFUSED: RST`,
    /// `EAI_NONAME: web`), or `None`.
    pub error: Option<String>,
    /// With [`ClientSpec::resolve`]: how long the connection waited for its name to resolve
    /// (from when it was due, or when the lookup started if later, to the answer) when it was
    /// waiting for the lookup; zero when the answer was already known (cached). `None` without
    /// name resolution.
    pub dns_time: Option<Duration>,
    /// With [`ClientSpec::resolve`]: the local UDP ports the lookup's queries left from, in
    /// order (a new socket per name tried, or per reopen); empty without name resolution.
    pub dns_ports: Vec<u16>,
    /// HTTP requests: the status code of the response's status line, if one arrived.
    pub http_status: Option<u16>,
}

#[derive(Debug)]
struct Active {
    id: u32,
    handle: Handle,
    local_port: u16,
    started: Instant,
    connected: Option<Instant>,
    /// The backend the socket-level load balancer connected the socket to.
    peer: Option<IpEndpoint>,
    /// Where the socket is connected: `peer`, or the target.
    remote: IpEndpoint,
    payload: Payload,
    sent: usize,
    received: Vec<u8>,
    received_total: u64,
    complete: bool,
    /// Upload: our FIN was queued after the last byte.
    fin_sent: bool,
    /// The application closed the connection when it timed out (`close()` with nothing
    /// unread: the kernel sends a FIN and finishes on its own).
    closed_on_timeout: bool,
    /// Set when an ICMP error ended the connection.
    error: Option<String>,
    /// Time spent waiting for name resolution.
    dns_time: Option<Duration>,
    /// The socket's version (`Sockets::version`) when `poll_tcp` last looked at it.
    seen: u64,
}

/// A running client.
#[derive(Debug)]
pub struct Client {
    spec: ClientSpec,
    next_id: u32,
    /// Open connections by id: in the order they opened.
    active: Window<alloc::boxed::Box<Active>>,
    /// Scratch list of the connections one `step` looks at.
    look: Vec<u32>,
    /// Its sockets' tag owner (`Sockets::set_tag`; their number is the connection's id).
    owner: u32,
    records: Vec<ConnRecord>,
    lookup: Option<alloc::boxed::Box<Lookup>>,
    /// Records already checked against the NetworkPolicy deny log.
    reviewed: usize,
}

impl Client {
    pub(crate) fn new(spec: ClientSpec, owner: u32) -> Self {
        Client {
            lookup: spec
                .resolve
                .clone()
                .map(|r| alloc::boxed::Box::new(Lookup::new(r))),
            spec,
            next_id: 0,
            active: Window::default(),
            look: Vec::new(),
            owner,
            records: Vec::new(),
            reviewed: 0,
        }
    }

    /// Turns the `timeout`s finished since the last call into `denied` when `denied` says a
    /// NetworkPolicy dropped what the connection sent (given the record and the IP protocol
    /// number); the reason goes to the record's `error`.
    pub(crate) fn review_denied(&mut self, denied: &dyn Fn(&ConnRecord, u8) -> Option<String>) {
        let proto = match self.spec.protocol {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        };
        for r in self.records[self.reviewed..].iter_mut() {
            if r.outcome == Outcome::Timeout && r.local.port != 0 {
                if let Some(why) = denied(r, proto) {
                    r.outcome = Outcome::Denied;
                    r.error = Some(alloc::format!("ETIMEDOUT: {why}"));
                }
            }
        }
        self.reviewed = self.records.len();
    }

    /// The configuration.
    pub fn spec(&self) -> &ClientSpec {
        &self.spec
    }

    /// Finished connections, in the order they finished.
    pub fn records(&self) -> &[ConnRecord] {
        &self.records
    }

    /// Whether every connection has finished.
    pub fn done(&self) -> bool {
        self.records.len() as u32 >= self.spec.count
    }

    fn start_time(&self, id: u32) -> Instant {
        self.spec.start + self.spec.interval * id
    }

    pub(crate) fn next_wake(&self) -> Option<Instant> {
        // Connections open in order of their start and leave in any order, so the first one
        // left is the one whose timeout comes first.
        let deadline = self
            .active
            .first()
            .map(|(_, a)| a.started + self.spec.timeout);
        // While the name resolves, connections wait for the answer, not for their start time.
        let resolving = self.lookup.as_deref().is_some_and(Lookup::pending);
        let next_start = (!resolving
            && self.next_id < self.spec.count
            && (self.active.len() as u32) < self.spec.concurrency)
            .then(|| self.start_time(self.next_id));
        let lookup = self.lookup.as_deref().and_then(Lookup::wake);
        [deadline, next_start, lookup].into_iter().flatten().min()
    }

    /// The address connections go to: the resolved one, else `to`.
    fn target(&self) -> Ipv4Address {
        match self.lookup.as_ref().and_then(|l| l.result.as_ref()) {
            Some(Resolved::Address(ip)) => *ip,
            _ => self.spec.to,
        }
    }

    /// How long connection `id`, opening (or failing) `now`, waited for the name to resolve:
    /// from when it was due (or the lookup started, if later) to the answer when the answer
    /// came just now, zero when it was known already (`None`: no resolution).
    fn dns_wait(&self, id: u32, now: Instant) -> Option<Duration> {
        let l = self.lookup.as_ref()?;
        let (Some(started), Some(ended)) = (l.started, l.ended) else {
            return Some(Duration::ZERO);
        };
        let from = self.start_time(id).max(started);
        Some(if ended == now && ended > from {
            ended - from
        } else {
            Duration::ZERO
        })
    }

    /// Runs the lookup; true once connections may open (no lookup, or it found the address).
    fn resolve(&mut self, env: &mut PodEnv<'_>) -> bool {
        let due = self.next_id < self.spec.count && self.start_time(self.next_id) <= env.now;
        let Some(l) = &mut self.lookup else {
            return true;
        };
        if due {
            l.start(env);
        }
        if l.pending() {
            l.poll(env);
        }
        let failed = match &l.result {
            None => return false,
            Some(Resolved::Address(_)) => return true,
            Some(Resolved::Failed(outcome, error)) => (*outcome, error.clone()),
        };
        // No address: every connection that is due fails without a packet sent.
        while self.next_id < self.spec.count && self.start_time(self.next_id) <= env.now {
            let id = self.next_id;
            self.next_id += 1;
            let dns_time = self.dns_wait(id, env.now);
            let started = env.now - dns_time.unwrap_or(Duration::ZERO);
            let mut rec = self.record(id, 0, started, None, env.now, failed.0, 0, 0);
            rec.remote = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), self.spec.port);
            rec.error = Some(failed.1.clone());
            rec.dns_time = dns_time;
            self.records.push(rec);
        }
        false
    }

    fn payload(&self, id: u32) -> Payload {
        Payload::Bytes(match &self.spec.request {
            Request::Http { host, path } => alloc::format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: podnet\r\nAccept: */*\r\n\r\n"
            )
            .into_bytes(),
            Request::Echo(b) => b.clone(),
            Request::Bulk(n) | Request::Upload(n) => {
                return Payload::pattern(*n, id);
            }
            Request::Connect => Vec::new(),
        })
    }

    pub(crate) fn step(&mut self, env: &mut PodEnv<'_>) {
        let ready = self.resolve(env);
        let opened = self.next_id;
        while ready
            && self.next_id < self.spec.count
            && (self.active.len() as u32) < self.spec.concurrency
            && self.start_time(self.next_id) <= env.now
        {
            let id = self.next_id;
            self.next_id += 1;
            self.open(id, env);
        }
        // The connections to look at, in the order they opened: those past their deadline
        // (they opened first), those opened just now and those whose socket was served since
        // the last step. Any other TCP connection is as the last look left it. A UDP
        // client looks at all of them (a handful).
        let mut look = core::mem::take(&mut self.look);
        look.clear();
        match self.spec.protocol {
            Protocol::Udp => look.extend(self.active.iter().map(|(id, _)| id)),
            Protocol::Tcp if self.active.len() <= crate::pod::FEW => {
                look.extend(self.active.iter().map(|(id, _)| id));
            }
            Protocol::Tcp => {
                let timeout = self.spec.timeout;
                look.extend(
                    self.active
                        .iter()
                        .take_while(|(_, a)| env.now >= a.started + timeout)
                        .map(|(id, _)| id),
                );
                look.extend(self.active.iter_from(opened).map(|(id, _)| id));
                for &h in env.changed {
                    if let Some((owner, id)) = env.sockets.tag(h) {
                        if owner == self.owner {
                            look.push(id);
                        }
                    }
                }
                crate::sort::sort_dedup_u32(&mut look);
            }
        }
        for &id in &look {
            let Some(a) = self.active.get_mut(id) else {
                continue;
            };
            let finished = match self.spec.protocol {
                Protocol::Tcp => {
                    // A socket unchanged since the last look, before the deadline: that look
                    // read and sent all it could and found the connection going on (the
                    // look is a function of the socket, the connection and the deadline).
                    let version = env.sockets.version(a.handle);
                    if version == a.seen && env.now < a.started + self.spec.timeout {
                        None
                    } else {
                        a.seen = version;
                        Self::poll_tcp(&self.spec, a, env)
                    }
                }
                Protocol::Udp => Self::poll_udp(&self.spec, a, env),
            };
            if let Some(outcome) = finished {
                if let Some(a) = self.active.remove(id) {
                    self.finish(*a, outcome, env);
                }
            }
        }
        self.look = look;
    }

    /// An ICMP error about one of our packets arrived. Like Linux's `tcp_v4_err`, any
    /// destination unreachable or time exceeded ends a connection still in SYN-SENT (the
    /// application's `connect()` fails); like `__udp4_lib_err`, only hard errors reach a
    /// connected UDP socket. Established TCP connections ignore them (soft errors).
    pub(crate) fn icmp_error(&mut self, err: &crate::pod::IcmpError, env: &mut PodEnv<'_>) {
        if let Some(l) = &mut self.lookup {
            if l.icmp_error(err, env) {
                return;
            }
        }
        // The connection it is about: at most one is open from that port to that peer (the
        // port is held until it ends). A TCP socket with a peer is found by it; one that has
        // lost it (closed) is not in SYN-SENT, which is all an error can end.
        let found = match self.spec.protocol {
            Protocol::Tcp => env
                .sockets
                .tcp_peers(err.remote, err.local_port)
                .find(|&(_, (owner, _))| owner == self.owner)
                .map(|(_, (_, id))| id),
            Protocol::Udp => self
                .active
                .iter()
                .find(|(_, a)| a.local_port == err.local_port && err.remote == a.remote)
                .map(|(id, _)| id),
        };
        let Some(id) = found.filter(|&id| {
            self.active
                .get(id)
                .is_some_and(|a| a.local_port == err.local_port && err.remote == a.remote)
        }) else {
            return;
        };
        let applies = match (self.spec.protocol, err.protocol) {
            (Protocol::Tcp, smoltcp::wire::IpProtocol::Tcp) => {
                let Some(a) = self.active.get(id) else {
                    return;
                };
                let sock = env.sockets.get::<tcp::Socket>(a.handle);
                matches!(sock.state(), tcp::State::SynSent | tcp::State::SynReceived)
            }
            (Protocol::Udp, smoltcp::wire::IpProtocol::Udp) => err.hard,
            _ => false,
        };
        if applies {
            let Some(mut a) = self.active.remove(id) else {
                return;
            };
            a.error = Some(alloc::format!("{}: {}", err.errno, err.what));
            // connect() failed: the kernel forgets the socket without sending anything, as
            // finish() does by dropping it.
            self.finish(*a, Outcome::Refused, env);
        }
    }

    fn remote(&self) -> IpEndpoint {
        IpEndpoint::new(IpAddress::Ipv4(self.target()), self.spec.port)
    }

    fn open(&mut self, id: u32, env: &mut PodEnv<'_>) {
        let payload = self.payload(id);
        let dns_time = self.dns_wait(id, env.now);
        // cgroup/connect4: the socket-level load balancer may connect the socket elsewhere.
        // It runs before the socket has a port (`sport` 0), as in Linux, where the port is
        // chosen for the destination the hook left.
        let mut peer = None;
        let client_addr = pod_addr(env);
        let now = env.now;
        if let Some(lb) = env.sock_lb.as_deref_mut() {
            let remote = self.remote();
            let dst = crate::v4(remote.addr);
            let req = crate::ebpf::ConnectReq {
                client: crate::v4(client_addr),
                sport: 0,
                proto: match self.spec.protocol {
                    Protocol::Tcp => 6,
                    Protocol::Udp => 17,
                },
                dst,
                dport: remote.port,
            };
            match lb.connect4(now, req) {
                crate::ebpf::SockXlate::Backend(sel) => {
                    peer = Some(IpEndpoint::new(IpAddress::Ipv4(sel.addr), sel.port));
                }
                crate::ebpf::SockXlate::Reject { error } => {
                    return self.failed(id, 0, env.now, &error);
                }
                crate::ebpf::SockXlate::Pass | crate::ebpf::SockXlate::SameNetns(_) => {}
            }
        }
        let to = peer.unwrap_or(self.remote());
        let no_port = "EADDRNOTAVAIL: every ephemeral port is in use";
        let (handle, port) = match self.spec.protocol {
            Protocol::Tcp => {
                let Some(choice) = env.ports.choose_tcp(env.rng, to) else {
                    return self.failed(id, 0, env.now, no_port);
                };
                let mut s = env.pool.tcp();
                s.set_hop_limit(self.spec.ttl);
                if s.connect(env.iface.context(), to, choice.port).is_err() {
                    env.pool.put_tcp(s);
                    return self.failed(id, choice.port, env.now, "ENETUNREACH: no route");
                }
                env.ports.take_tcp(choice);
                (env.sockets.add(s), choice.port)
            }
            Protocol::Udp => {
                let Some(port) = env.ports.choose_udp(env.rng) else {
                    return self.failed(id, 0, env.now, no_port);
                };
                let mut s = env.pool.udp();
                s.set_hop_limit(self.spec.ttl);
                if s.bind(port).is_err() || s.send_slice(&payload.to_vec(), to).is_err() {
                    return self.failed(id, port, env.now, "ENETUNREACH: no route");
                }
                env.ports.bind_udp(port);
                (env.sockets.add(s), port)
            }
        };
        let sent = if self.spec.protocol == Protocol::Udp {
            payload.len()
        } else {
            0
        };
        if self.spec.protocol == Protocol::Tcp {
            env.sockets.set_tag(handle, (self.owner, id));
        }
        let pushed = self.active.push(
            id,
            alloc::boxed::Box::new(Active {
                id,
                handle,
                local_port: port,
                started: env.now,
                connected: None,
                peer,
                remote: to,
                payload,
                sent,
                received: Vec::new(),
                received_total: 0,
                complete: false,
                fin_sent: false,
                closed_on_timeout: false,
                error: None,
                dns_time,
                seen: 0,
            }),
        );
        debug_assert!(pushed.is_ok(), "connections open in the order of their ids");
    }

    /// Returns the outcome once the connection is over.
    fn poll_tcp(spec: &ClientSpec, a: &mut Active, env: &mut PodEnv<'_>) -> Option<Outcome> {
        let deadline = a.started + spec.timeout;
        let http = matches!(spec.request, Request::Http { .. });
        let upload = matches!(spec.request, Request::Upload(_));
        let connect = matches!(spec.request, Request::Connect);
        let sock = env.sockets.get_mut::<tcp::Socket>(a.handle);
        let state = sock.state();
        if a.connected.is_none()
            && !matches!(
                state,
                tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Closed
            )
        {
            a.connected = Some(env.now);
        }
        while a.sent < a.payload.len() && sock.can_send() {
            // Straight into the socket's buffer (as `send_slice` would copy it, in one or two
            // pieces).
            let (payload, sent) = (&a.payload, a.sent);
            match sock.send(|buf| {
                let n = payload.fill(sent, buf);
                (n, n)
            }) {
                Ok(0) | Err(_) => break,
                Ok(n) => a.sent += n,
            }
        }
        // Read in place from the socket's buffer (no scratch buffer to zero on every poll).
        while sock.can_recv() {
            let read = sock.recv(|data| {
                let n = data.len();
                if http {
                    a.received_total += n as u64;
                    a.received.extend_from_slice(data);
                } else if a.received_total == u64::MAX {
                    // After a corrupt echo only the count goes on.
                    a.received.extend_from_slice(data);
                } else {
                    // An echo is checked against the payload as it arrives, not kept.
                    let at = a.received_total as usize;
                    a.received_total += n as u64;
                    if !a.payload.holds(at, data) {
                        a.received.clear();
                        a.received_total = u64::MAX; // corrupt echo: never completes
                    }
                }
                (n, n)
            });
            if !matches!(read, Ok(n) if n > 0) {
                break;
            }
        }
        if upload && !a.fin_sent && a.sent == a.payload.len() {
            sock.close();
            a.fin_sent = true;
        }
        if !a.complete {
            a.complete = if connect {
                a.connected.is_some()
            } else if http {
                http_complete(&a.received)
            } else if upload {
                // Both FINs exchanged: the server read everything and closed.
                a.fin_sent && matches!(sock.state(), tcp::State::TimeWait | tcp::State::Closing)
            } else {
                a.received_total == a.payload.len() as u64
            };
        }
        if a.complete {
            // The answer is in: the application closes and is done, like curl. The kernel
            // finishes the FIN exchange on its own (the pod reaps the socket after TIME-WAIT);
            // an orphan whose FIN is never acknowledged is dropped after ORPHAN_TIMEOUT.
            sock.close();
            sock.set_timeout(Some(ORPHAN_TIMEOUT));
            return Some(Outcome::Ok);
        }
        let state = sock.state();
        if state == tcp::State::Closed {
            return Some(if a.connected.is_some() {
                Outcome::Reset
            } else {
                Outcome::Refused
            });
        }
        if env.now >= deadline {
            // The application gives up and closes. Before the handshake completed that sends
            // nothing (Linux's `tcp_close` in SYN-SENT) and finish() drops the socket. After
            // it, everything received has been read, so the kernel sends a FIN (a RST only
            // for unread data) and finishes the exchange on its own, as after an answer.
            if a.connected.is_some() && !matches!(state, tcp::State::SynReceived) {
                sock.close();
                sock.set_timeout(Some(ORPHAN_TIMEOUT));
                a.closed_on_timeout = true;
            }
            return Some(Outcome::Timeout);
        }
        None
    }

    fn poll_udp(spec: &ClientSpec, a: &mut Active, env: &mut PodEnv<'_>) -> Option<Outcome> {
        let deadline = a.started + spec.timeout;
        let sock = env.sockets.get_mut::<udp::Socket>(a.handle);
        while let Ok((data, _)) = sock.recv() {
            a.received_total += data.len() as u64;
            a.received.extend_from_slice(data);
            // Any answer counts, an empty datagram too (the probe of `Request::Connect`).
            a.connected.get_or_insert(env.now);
        }
        if a.connected.is_some() {
            return Some(Outcome::Ok);
        }
        (env.now >= deadline).then_some(Outcome::Timeout)
    }

    /// Records a connection that failed before anything was sent.
    fn failed(&mut self, id: u32, port: u16, now: Instant, error: &str) {
        let mut rec = self.record(id, port, now, None, now, Outcome::Refused, 0, 0);
        rec.error = Some(String::from(error));
        self.records.push(rec);
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        id: u32,
        port: u16,
        started: Instant,
        connected: Option<Instant>,
        ended: Instant,
        outcome: Outcome,
        sent: u64,
        received: u64,
    ) -> ConnRecord {
        ConnRecord {
            id,
            local: IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), port),
            remote: self.remote(),
            peer: None,
            started,
            connect_time: connected.map(|c| c - started),
            ended,
            outcome,
            bytes_sent: sent,
            bytes_received: received,
            error: None,
            dns_time: None,
            dns_ports: self
                .lookup
                .as_deref()
                .map(|l| l.ports.clone())
                .unwrap_or_default(),
            http_status: None,
        }
    }

    fn finish(&mut self, a: Active, outcome: Outcome, env: &mut PodEnv<'_>) {
        let local = match self.spec.protocol {
            Protocol::Tcp => env.sockets.get::<tcp::Socket>(a.handle).local_endpoint(),
            Protocol::Udp => None,
        };
        let sent = match self.spec.protocol {
            Protocol::Tcp => {
                a.sent as u64 - env.sockets.get::<tcp::Socket>(a.handle).send_queue() as u64
            }
            Protocol::Udp => a.sent as u64,
        };
        let received = if a.received_total == u64::MAX {
            a.received.len() as u64
        } else {
            a.received_total
        };
        let mut rec = self.record(
            a.id,
            a.local_port,
            a.started,
            a.connected,
            env.now,
            outcome,
            sent,
            received,
        );
        rec.local = local.unwrap_or_else(|| IpEndpoint::new(pod_addr(env), a.local_port));
        rec.dns_time = a.dns_time;
        rec.peer = a.peer;
        if matches!(self.spec.request, Request::Http { .. }) {
            // `HTTP/1.1 403 Forbidden`: the three digits after the version.
            rec.http_status = a
                .received
                .get(9..12)
                .filter(|_| a.received.starts_with(b"HTTP/"))
                .and_then(|d| core::str::from_utf8(d).ok()?.parse().ok());
        }
        rec.error = a.error.or_else(|| match outcome {
            Outcome::Ok => None,
            Outcome::Refused => Some(String::from("ECONNREFUSED: RST")),
            Outcome::Reset => Some(String::from("ECONNRESET")),
            Outcome::Timeout | Outcome::Denied => Some(String::from("ETIMEDOUT")),
        });
        self.records.push(rec);
        // A socket in TIME-WAIT stays until smoltcp closes it; the pod reaps it then. So does
        // one closed when it timed out.
        let lingers = outcome == Outcome::Ok || a.closed_on_timeout;
        if !lingers || self.spec.protocol == Protocol::Udp {
            env.pool.put(env.sockets.remove(a.handle));
            match self.spec.protocol {
                Protocol::Tcp => env.ports.release_tcp((a.local_port, a.remote)),
                Protocol::Udp => env.ports.unbind_udp(a.local_port),
            }
        } else {
            env.lingering.push(a.handle, (a.local_port, a.remote));
        }
    }
}

fn pod_addr(env: &PodEnv<'_>) -> IpAddress {
    env.iface
        .ip_addrs()
        .first()
        .map_or(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), |c| c.address())
}

/// Whether `buf` holds a complete HTTP response (head plus `Content-Length` bytes of body).
fn http_complete(buf: &[u8]) -> bool {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = core::str::from_utf8(&buf[..head_end]).unwrap_or("");
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= head_end + 4 + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_completeness() {
        assert!(!http_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"));
        assert!(!http_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"
        ));
        assert!(http_complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabcd"
        ));
        assert!(http_complete(b"HTTP/1.1 204 No Content\r\n\r\n"));
    }
}
