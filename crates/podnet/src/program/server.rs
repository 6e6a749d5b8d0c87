//! Servers: TCP (HTTP/1.1, echo, discard or DNS) on a pool of listening sockets, and UDP echo.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::pod::Handle;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpEndpoint;

use super::PodEnv;

/// Listening sockets kept armed per port. Frames are fed to smoltcp one at a time and the pool
/// is refilled after each, so one idle listener absorbs any burst of SYNs (each listener holds
/// its 2 x `tcp_buffer` bytes from the start, so more would only cost memory).
pub const LISTEN_POOL: usize = 1;
/// Connections a server holds open at once (a bound on its memory: each holds two socket
/// buffers). Beyond them it accepts no more, as a server at its connection limit stops
/// calling `accept()`, and a new SYN to its port is dropped, as Linux drops a SYN to a
/// listener whose accept queue is full (`ListenOverflows`, with `tcp_abort_on_overflow` 0):
/// the client retransmits it. (Linux would first fill the accept queue, up to the listen
/// backlog, with handshakes that complete; podnet's server has no such queue.)
pub const MAX_CONNECTIONS: usize = 4096;
/// The longest HTTP request head accepted (nginx's default `large_client_header_buffers`).
const MAX_REQUEST_HEAD: usize = 8192;

/// What a TCP server does with a connection.
#[derive(Debug)]
pub enum Mode {
    /// Answer each HTTP request with `200 OK` and this body; keep the connection alive.
    Http(Vec<u8>),
    /// Send back every byte received.
    Echo,
    /// Read and forget every byte received.
    Discard,
    /// DNS over TCP from this zone (RFC 1035 4.2.2: a 2-byte length before each message).
    Dns(super::dns::Zone),
}

#[derive(Debug, Default)]
struct ConnState {
    request: Vec<u8>,
    pending: Vec<u8>,
    /// The socket's version (`Sockets::version`) when `step` last looked at it.
    seen: u64,
}

/// A TCP server on one port.
#[derive(Debug)]
pub struct TcpServer {
    mode: Mode,
    port: u16,
    listening: Vec<Handle>,
    conns: BTreeMap<Handle, ConnState>,
    /// Connections added to `conns` since the last `step` (it has not looked at them yet).
    fresh: Vec<Handle>,
    /// Scratch list of the connections one `step` looks at (their handles' numbers).
    look: Vec<u32>,
    /// Its connections' tag owner (`Sockets::set_tag`).
    owner: u32,
    /// Connections accepted so far.
    pub accepted: u64,
}

impl TcpServer {
    pub(crate) fn new(mode: Mode, port: u16, env: &mut PodEnv<'_>) -> Self {
        env.ports.bind_tcp(port);
        let mut s = TcpServer {
            mode,
            port,
            listening: Vec::new(),
            conns: BTreeMap::new(),
            fresh: Vec::new(),
            look: Vec::new(),
            owner: env.owner,
            accepted: 0,
        };
        s.rearm(env);
        s
    }

    /// Moves sockets that left LISTEN to the connection list and refills the pool.
    pub(crate) fn rearm(&mut self, env: &mut PodEnv<'_>) {
        let mut i = 0;
        while i < self.listening.len() {
            let h = self.listening[i];
            let sock = env.sockets.get_mut::<tcp::Socket>(h);
            if sock.state() == tcp::State::Closed {
                // Stood down by `before_syn`: listen again.
                let _ = sock.listen(self.port);
            }
            if sock.is_listening() {
                i += 1;
            } else {
                self.listening.swap_remove(i);
                self.conns.insert(h, ConnState::default());
                self.fresh.push(h);
                env.sockets.set_tag(h, (self.owner, 0));
                self.accepted += 1;
            }
        }
        while self.listening.len() < LISTEN_POOL
            && self.conns.len() + self.listening.len() < MAX_CONNECTIONS
        {
            let mut sock = env.pool.tcp();
            if sock.listen(self.port).is_err() {
                return;
            }
            self.listening.push(env.sockets.add(sock));
        }
    }

    /// A SYN from `remote` to `port` is about to be processed. If a connection with that peer
    /// already exists (a retransmitted SYN whose SYN-ACK was lost), the idle listeners stand
    /// down for this one frame so that smoltcp hands the SYN to that connection, as Linux finds
    /// the request socket before the listener; otherwise a second listener would accept it and
    /// two sockets would answer one peer. Returns true when the SYN is to be dropped: a new
    /// connection while the server holds [`MAX_CONNECTIONS`].
    pub(crate) fn before_syn(
        &mut self,
        remote: IpEndpoint,
        port: u16,
        env: &mut PodEnv<'_>,
    ) -> bool {
        if port != self.port {
            return false;
        }
        // Its connections all have local port `port`.
        let (conns, owner) = (&self.conns, self.owner);
        let known = env
            .sockets
            .tcp_peers(remote, port)
            .any(|(h, (o, _))| o == owner && conns.contains_key(&h));
        if known {
            for h in &self.listening {
                env.sockets.get_mut::<tcp::Socket>(*h).close();
            }
        }
        !known && self.listening.is_empty() && self.conns.len() >= MAX_CONNECTIONS
    }

    pub(crate) fn step(&mut self, env: &mut PodEnv<'_>) {
        let mut closed = Vec::new();
        // The connections not looked at yet and those served since the last step, in handle
        // order: every other one is unchanged since the last look.
        let mut look = core::mem::take(&mut self.look);
        look.clear();
        if self.conns.len() <= crate::pod::FEW {
            // A few: all of them (in handle order).
            self.fresh.clear();
            look.extend(self.conns.keys().map(|h| h.index()));
        } else {
            look.extend(self.fresh.drain(..).map(Handle::index));
            let owner = self.owner;
            look.extend(
                env.changed
                    .iter()
                    .filter(|&&h| env.sockets.tag(h).is_some_and(|(o, _)| o == owner))
                    .map(|h| h.index()),
            );
            crate::sort::sort_dedup_u32(&mut look);
        }
        for &i in &look {
            let h = Handle::from_index(i);
            let Some(st) = self.conns.get_mut(&h) else {
                continue;
            };
            // Unchanged since the last look, which read, answered and closed all it could.
            let version = env.sockets.version(h);
            if version == st.seen {
                continue;
            }
            st.seen = version;
            let sock = env.sockets.get_mut::<tcp::Socket>(h);
            if sock.state() == tcp::State::Closed {
                closed.push(h);
                continue;
            }
            match &self.mode {
                Mode::Echo => echo(sock, st),
                Mode::Discard => {
                    while sock.recv(|b| (b.len(), ())).is_ok_and(|()| sock.can_recv()) {}
                }
                Mode::Http(body) => http(sock, st, body),
                Mode::Dns(zone) => dns(sock, st, zone),
            }
            if !sock.may_recv()
                && st.pending.is_empty()
                && sock.send_queue() == 0
                && sock.may_send()
            {
                sock.close();
            }
        }
        for h in closed {
            self.conns.remove(&h);
            env.pool.put(env.sockets.remove(h));
        }
        self.look = look;
        self.rearm(env);
    }
}

fn flush(sock: &mut tcp::Socket<'_>, st: &mut ConnState) {
    if !st.pending.is_empty() && sock.can_send() {
        if let Ok(n) = sock.send_slice(&st.pending) {
            st.pending.drain(..n);
        }
    }
}

fn echo(sock: &mut tcp::Socket<'_>, st: &mut ConnState) {
    flush(sock, st);
    while st.pending.is_empty() && sock.can_recv() && sock.can_send() {
        let room = sock.send_capacity() - sock.send_queue();
        let want = room.min(4096);
        let read = sock.recv(|data| {
            let n = data.len().min(want);
            st.pending.extend_from_slice(&data[..n]);
            (n, n)
        });
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
        flush(sock, st);
    }
}

fn http(sock: &mut tcp::Socket<'_>, st: &mut ConnState, body: &[u8]) {
    flush(sock, st);
    while sock.can_recv() {
        let read = sock.recv(|data| {
            st.request.extend_from_slice(data);
            (data.len(), data.len())
        });
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
    }
    while let Some(end) = find(&st.request, b"\r\n\r\n") {
        st.request.drain(..end + 4);
        let mut head = alloc::string::String::new();
        let _ = write!(
            head,
            "HTTP/1.1 200 OK\r\nServer: podnet\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        st.pending.extend_from_slice(head.as_bytes());
        st.pending.extend_from_slice(body);
    }
    if st.request.len() > MAX_REQUEST_HEAD {
        // Like nginx: 400 and close.
        st.request.clear();
        st.pending.extend_from_slice(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        flush(sock, st);
        sock.close();
        return;
    }
    flush(sock, st);
}

fn dns(sock: &mut tcp::Socket<'_>, st: &mut ConnState, zone: &super::dns::Zone) {
    flush(sock, st);
    while sock.can_recv() {
        let read = sock.recv(|data| {
            st.request.extend_from_slice(data);
            (data.len(), data.len())
        });
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
    }
    super::dns::serve_tcp(zone, &mut st.request, &mut st.pending);
    flush(sock, st);
}

/// The first position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A UDP echo server.
#[derive(Debug)]
pub struct UdpEcho {
    handle: Handle,
    /// Datagrams answered.
    pub answered: u64,
}

pub use crate::pod::UDP_QUEUE;

impl UdpEcho {
    pub(crate) fn new(port: u16, env: &mut PodEnv<'_>) -> Self {
        let mut sock = env.pool.udp();
        let _ = sock.bind(port);
        env.ports.bind_udp(port);
        let handle = env.sockets.add(sock);
        env.sockets.set_unconnected(handle);
        UdpEcho {
            handle,
            answered: 0,
        }
    }

    pub(crate) fn step(&mut self, env: &mut PodEnv<'_>) {
        let sock = env.sockets.get_mut::<udp::Socket>(self.handle);
        while sock.can_recv() && sock.can_send() {
            let Ok((data, meta)) = sock.recv() else {
                break;
            };
            let data = data.to_vec();
            if sock.send_slice(&data, meta.endpoint).is_ok() {
                self.answered += 1;
            }
        }
    }
}
