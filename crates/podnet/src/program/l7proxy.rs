//! The node's L7 proxy (Envoy's role in Cilium): it terminates the client's TCP connection
//! (the node's datapath hands it the redirected SYN unchanged, as Cilium's TPROXY rule does,
//! so the socket it accepts on has the original destination as its local address), reads the
//! HTTP request, looks the policy up and either answers `403 Forbidden` / `Access denied`
//! itself or opens its own connection to the original destination, from the client's address
//! (Cilium's proxy keeps the source address so the backend sees the client) and a port of its
//! own, and relays the request and the response.
//!
//! The proxy judges the first request of each connection; what follows on an allowed
//! connection is relayed as is.

use alloc::string::String;
use alloc::vec::Vec;
use litemap::LiteMap;

use crate::pod::Handle;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::server::find;
use super::PodEnv;
use crate::cilium::l7::{self, RequestHead};
use crate::policy::{Flow, World};

/// The longest request head the proxy buffers before refusing the request.
const MAX_HEAD: usize = 8192;

/// One request the proxy judged (its access log, as `hubble observe --type l7` shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    /// When the request head was complete.
    pub at: Instant,
    /// The client.
    pub client: IpEndpoint,
    /// The original destination.
    pub server: IpEndpoint,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Whether a rule allowed it.
    pub allowed: bool,
    /// The rule that allowed it, or why none did.
    pub rule: String,
    /// The response status (403 from the proxy; the backend's once it answers).
    pub status: Option<u16>,
    /// The proxy's own connection to the backend: its local port.
    pub upstream_port: Option<u16>,
}

#[derive(Debug)]
struct Conn {
    down: Handle,
    up: Option<(Handle, super::ports::Held)>,
    request: Vec<u8>,
    to_up: Vec<u8>,
    to_down: Vec<u8>,
    judged: bool,
    log: Option<usize>,
    status_seen: bool,
}

/// The proxy program.
#[derive(Debug, Default)]
pub struct L7Proxy {
    node: u32,
    world: Option<World>,
    /// Ports with HTTP rules (a flat sorted map: few entries, and less code in the wasm
    /// module than a B-tree instance).
    ports: LiteMap<u16, ()>,
    listening: LiteMap<u16, Handle>,
    conns: Vec<Conn>,
    log: Vec<AccessLog>,
}

fn v4(a: IpAddress) -> smoltcp::wire::Ipv4Address {
    crate::v4(a)
}

impl L7Proxy {
    /// The policies of node `node` (the ports with L7 rules are listened on).
    pub(crate) fn set_world(&mut self, node: u32, world: Option<World>, env: &mut PodEnv<'_>) {
        self.node = node;
        // Inserted one by one: extending or collecting sorts (one more sort instance).
        self.ports.clear();
        if let Some(e) = world.as_ref().and_then(|w| w.cilium.as_ref()) {
            for (k, _) in e
                .maps
                .values()
                .flat_map(|m| m.entries.iter())
                .filter(|(k, e)| e.http.is_some() && k.port != 0)
            {
                self.ports.insert(k.port, ());
            }
        }
        self.world = world;
        self.rearm(env);
    }

    /// The access log.
    pub fn access_log(&self) -> &[AccessLog] {
        &self.log
    }

    pub(crate) fn rearm(&mut self, env: &mut PodEnv<'_>) {
        let stale: Vec<u16> = self.listening.keys().copied().collect();
        for port in stale {
            let h = self.listening[&port];
            let sock = env.sockets.get_mut::<tcp::Socket>(h);
            if sock.state() == tcp::State::Closed && self.ports.contains_key(&port) {
                let _ = sock.listen(port);
            }
            if !sock.is_listening() {
                self.listening.remove(&port);
                if sock.state() != tcp::State::Closed {
                    self.conns.push(Conn {
                        down: h,
                        up: None,
                        request: Vec::new(),
                        to_up: Vec::new(),
                        to_down: Vec::new(),
                        judged: false,
                        log: None,
                        status_seen: false,
                    });
                } else {
                    env.pool.put(env.sockets.remove(h));
                }
            }
        }
        for &port in self.ports.keys() {
            if let litemap::Entry::Vacant(slot) = self.listening.entry(port) {
                let mut sock = env.pool.tcp();
                if sock.listen(port).is_ok() {
                    slot.insert(env.sockets.add(sock));
                }
            }
        }
    }

    /// A SYN from `remote` to `port`: a retransmission for a connection already accepted goes
    /// to that connection, not to the listener.
    pub(crate) fn before_syn(&mut self, remote: IpEndpoint, port: u16, env: &mut PodEnv<'_>) {
        let known = self
            .conns
            .iter()
            .any(|c| env.sockets.get::<tcp::Socket>(c.down).remote_endpoint() == Some(remote));
        if let (true, Some(h)) = (known, self.listening.get(&port)) {
            env.sockets.get_mut::<tcp::Socket>(*h).close();
        }
    }

    /// The L7 verdict on a request of `client` to `server`.
    fn judge(&self, client: IpEndpoint, server: IpEndpoint, req: &RequestHead) -> (bool, String) {
        let Some(world) = &self.world else {
            return (true, String::from("no policy"));
        };
        let flow = Flow {
            src: v4(client.addr),
            dst: v4(server.addr),
            proto: 6,
            dport: server.port,
        };
        let local = |ip| world.pods.get(&ip).is_some_and(|p| p.node == self.node);
        let mut why = Vec::new();
        for (on, egress) in [(local(flow.src), true), (local(flow.dst), false)] {
            if !on {
                continue;
            }
            let v = if egress {
                world.egress(&flow)
            } else {
                world.ingress(&flow)
            };
            let Some(red) = v.l7 else { continue };
            let dir = if egress { "egress" } else { "ingress" };
            if red.allow_all {
                why.push(alloc::format!("{dir}: an L3/L4 rule allows every request"));
                continue;
            }
            match red.rules.iter().find(|r| l7::rule_matches(r, req)) {
                Some(r) => why.push(alloc::format!("{dir}: allowed by {}", l7::describe(r))),
                None => {
                    let rules: Vec<String> = red.rules.iter().map(l7::describe).collect();
                    return (
                        false,
                        alloc::format!(
                            "{dir}: no HTTP rule matches {} {} (rules: {})",
                            req.method,
                            req.path,
                            rules.join("; ")
                        ),
                    );
                }
            }
        }
        (true, why.join("; "))
    }

    pub(crate) fn step(&mut self, env: &mut PodEnv<'_>) {
        let mut i = 0;
        while i < self.conns.len() {
            if self.step_conn(i, env) {
                let c = self.conns.remove(i);
                // An accepted socket: its port is the listener's, and no connect() holds it
                // (freeing its key frees nothing).
                let down = env.sockets.get::<tcp::Socket>(c.down);
                let port = down.local_endpoint().map_or(0, |e| e.port);
                let unspecified =
                    IpEndpoint::new(smoltcp::wire::Ipv4Address::UNSPECIFIED.into(), 0);
                let key = (port, down.remote_endpoint().unwrap_or(unspecified));
                env.lingering.push(c.down, key);
                if let Some((up, held)) = c.up {
                    env.lingering.push(up, held);
                }
            } else {
                i += 1;
            }
        }
        self.rearm(env);
    }

    /// Moves one connection on; true when it is over (both sockets closing or closed).
    fn step_conn(&mut self, i: usize, env: &mut PodEnv<'_>) -> bool {
        let now = env.now;
        let c = &mut self.conns[i];
        let down = env.sockets.get_mut::<tcp::Socket>(c.down);
        let mut buf = [0u8; 2048];
        while down.can_recv() {
            match down.recv_slice(&mut buf) {
                Ok(n) if n > 0 => {
                    if c.judged {
                        c.to_up.extend_from_slice(&buf[..n]);
                    } else {
                        c.request.extend_from_slice(&buf[..n]);
                    }
                }
                _ => break,
            }
        }
        let (client, server) = (down.remote_endpoint(), down.local_endpoint());
        let client_done = !down.may_recv() && down.state() != tcp::State::SynReceived;
        if !c.judged {
            let end = find(&c.request, b"\r\n\r\n");
            if let (Some(end), Some(client), Some(server)) = (end, client, server) {
                c.judged = true;
                let head = RequestHead::parse(&c.request[..end + 4]);
                let (allowed, rule, method, path) = match &head {
                    None => (
                        false,
                        String::from("not an HTTP request"),
                        String::new(),
                        String::new(),
                    ),
                    Some(h) => {
                        let (ok, why) = self.judge(client, server, h);
                        (ok, why, h.method.clone(), h.path.clone())
                    }
                };
                let c = &mut self.conns[i];
                let mut entry = AccessLog {
                    at: now,
                    client,
                    server,
                    method,
                    path,
                    allowed,
                    rule,
                    status: None,
                    upstream_port: None,
                };
                if allowed {
                    c.to_up = core::mem::take(&mut c.request);
                    // The upstream sockets borrow their clients' addresses; their ports are
                    // chosen per server, as if the proxy had one address.
                    if let Some(choice) = env.ports.choose_tcp(env.rng, server) {
                        let mut s = env.pool.tcp();
                        let local = IpEndpoint::new(client.addr, choice.port);
                        if s.connect(env.iface.context(), server, local).is_ok() {
                            env.ports.take_tcp(choice);
                            c.up = Some((env.sockets.add(s), (choice.port, server)));
                            entry.upstream_port = Some(choice.port);
                        } else {
                            env.pool.put_tcp(s);
                        }
                    }
                } else {
                    c.request.clear();
                    c.to_down = l7::forbidden_response();
                    entry.status = Some(403);
                    c.status_seen = true;
                }
                c.log = Some(self.log.len());
                self.log.push(entry);
            } else if c.request.len() > MAX_HEAD {
                c.judged = true;
                c.to_down = l7::forbidden_response();
            }
        }
        let c = &mut self.conns[i];
        let mut up_done = c.up.is_none() && c.judged;
        if let Some((h, _)) = c.up {
            let up = env.sockets.get_mut::<tcp::Socket>(h);
            if up.can_send() && !c.to_up.is_empty() {
                if let Ok(n) = up.send_slice(&c.to_up) {
                    c.to_up.drain(..n);
                }
            }
            while up.can_recv() {
                match up.recv_slice(&mut buf) {
                    Ok(n) if n > 0 => c.to_down.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            if !c.status_seen && c.to_down.len() >= 12 {
                c.status_seen = true;
                let status = core::str::from_utf8(&c.to_down[9..12])
                    .ok()
                    .and_then(|s| s.parse().ok());
                if let Some(e) = c.log.and_then(|l| self.log.get_mut(l)) {
                    e.status = status;
                }
            }
            if client_done && c.to_up.is_empty() {
                up.close();
            }
            up_done = !up.is_open() || (!up.may_recv() && up.state() != tcp::State::SynSent);
        }
        let down = env.sockets.get_mut::<tcp::Socket>(c.down);
        if down.can_send() && !c.to_down.is_empty() {
            if let Ok(n) = down.send_slice(&c.to_down) {
                c.to_down.drain(..n);
            }
        }
        if (client_done || up_done) && c.to_down.is_empty() && c.to_up.is_empty() {
            down.close();
            if let Some((h, _)) = c.up {
                env.sockets.get_mut::<tcp::Socket>(h).close();
            }
            return true;
        }
        !down.is_open()
            && c.up
                .is_none_or(|(h, _)| !env.sockets.get::<tcp::Socket>(h).is_open())
    }
}
