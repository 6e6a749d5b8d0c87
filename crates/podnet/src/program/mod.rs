//! The built-in programs a pod runs: an HTTP/1.1 server, TCP and UDP echo servers, a DNS
//! server, and a client that opens connections (after resolving its target's name, if asked)
//! and records how each one ended.
//!
//! Programs only use the pod's smoltcp sockets, like an application uses the socket API.
//! smoltcp has no listen backlog, so servers keep a small pool of listening sockets per port
//! and re-arm it after every incoming frame (see [`server::LISTEN_POOL`]).

pub mod client;
pub mod dns;
pub mod l7proxy;
mod payload;
pub(crate) mod ports;
pub mod server;
mod spec;

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::iface::Interface;
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;

pub use client::{Client, ClientSpec, ConnRecord, Outcome, Protocol, Request};
pub use dns::{ResolvOptions, Resolve};

use crate::rng::SimRng;

/// A program to run in a pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Program {
    /// An HTTP/1.1 server answering every request with `200 OK` and a body naming the pod.
    HttpServer {
        /// TCP port.
        port: u16,
    },
    /// A TCP echo server.
    TcpEcho {
        /// TCP port.
        port: u16,
    },
    /// A TCP discard server (RFC 863): reads everything, answers nothing, closes after the
    /// client does.
    TcpDiscard {
        /// TCP port.
        port: u16,
    },
    /// A UDP echo server.
    UdpEcho {
        /// UDP port.
        port: u16,
    },
    /// A DNS server (UDP, and TCP on the same port) answering `A` queries from `records`;
    /// see [`dns`].
    DnsServer {
        /// UDP and TCP port (53).
        port: u16,
        /// Fully qualified names (`web.default.svc.cluster.local`, with or without the final
        /// dot) and their addresses; a name given several times answers with every address.
        records: Vec<(String, Ipv4Address)>,
    },
    /// A client.
    Client(ClientSpec),
    /// The node's L7 proxy (Cilium's Envoy): see [`l7proxy`].
    L7Proxy,
}

/// What a program sees of its pod.
pub(crate) struct PodEnv<'a> {
    pub now: Instant,
    /// In [`App::step`]: the sockets served since the programs last ran, in no order (a
    /// superset of those whose `Sockets::version` changed); empty elsewhere.
    pub changed: &'a [crate::pod::Handle],
    /// In [`App::start`]: the program's tag owner (`Sockets::set_tag`), unique in the pod.
    pub owner: u32,
    pub iface: &'a mut Interface,
    pub sockets: &'a mut crate::pod::Sockets,
    pub rng: &'a mut SimRng,
    pub pod_name: &'a str,
    /// Closed sockets for reuse (and where new ones are made).
    pub pool: &'a mut crate::pod::SocketPool,
    /// Local ports in use by any program of the pod.
    pub ports: &'a mut ports::Ports,
    /// Sockets closed by a program and left to finish (TIME-WAIT), with their local port and
    /// peer.
    pub lingering: &'a mut crate::pod::Lingering,
    /// The node's socket-level load balancer (`cgroup/connect4`), in eBPF mode.
    pub sock_lb: Option<&'a mut (dyn crate::ebpf::SocketLb + 'static)>,
}

/// A running program.
#[derive(Debug)]
pub(crate) enum App {
    Tcp(server::TcpServer),
    UdpEcho(server::UdpEcho),
    Dns(dns::DnsServer),
    Client(client::Client),
    L7Proxy(alloc::boxed::Box<l7proxy::L7Proxy>),
}

impl App {
    pub fn start(program: &Program, env: &mut PodEnv<'_>) -> Self {
        match program {
            Program::HttpServer { port } => App::Tcp(server::TcpServer::new(
                server::Mode::Http(http_body(env.pod_name)),
                *port,
                env,
            )),
            Program::TcpEcho { port } => {
                App::Tcp(server::TcpServer::new(server::Mode::Echo, *port, env))
            }
            Program::TcpDiscard { port } => {
                App::Tcp(server::TcpServer::new(server::Mode::Discard, *port, env))
            }
            Program::UdpEcho { port } => App::UdpEcho(server::UdpEcho::new(*port, env)),
            Program::DnsServer { port, records } => {
                App::Dns(dns::DnsServer::new(*port, records, env))
            }
            Program::Client(spec) => App::Client(client::Client::new(spec.clone(), env.owner)),
            Program::L7Proxy => App::L7Proxy(alloc::boxed::Box::default()),
        }
    }

    /// Called before an incoming SYN (no ACK) from `remote` to local `port` is processed;
    /// true when the SYN is to be dropped (a server whose accept queue is full).
    pub fn before_syn(
        &mut self,
        remote: smoltcp::wire::IpEndpoint,
        port: u16,
        env: &mut PodEnv<'_>,
    ) -> bool {
        match self {
            App::Tcp(s) => s.before_syn(remote, port, env),
            App::Dns(d) => d.tcp.before_syn(remote, port, env),
            App::L7Proxy(p) => {
                p.before_syn(remote, port, env);
                false
            }
            App::UdpEcho(_) | App::Client(_) => false,
        }
    }

    /// Called after every ingress frame: servers re-arm their listeners.
    pub fn after_ingress(&mut self, env: &mut PodEnv<'_>) {
        match self {
            App::Tcp(s) => s.rearm(env),
            App::Dns(d) => d.tcp.rearm(env),
            App::L7Proxy(p) => p.rearm(env),
            App::UdpEcho(_) | App::Client(_) => {}
        }
    }

    /// Moves the program forward at `env.now`.
    pub fn step(&mut self, env: &mut PodEnv<'_>) {
        match self {
            App::Tcp(s) => s.step(env),
            App::UdpEcho(s) => s.step(env),
            App::Dns(d) => d.step(env),
            App::Client(c) => c.step(env),
            App::L7Proxy(p) => p.step(env),
        }
    }

    /// An ICMP error about a packet of this pod arrived.
    pub fn icmp_error(&mut self, err: &crate::pod::IcmpError, env: &mut PodEnv<'_>) {
        if let App::Client(c) = self {
            c.icmp_error(err, env);
        }
    }

    /// The next time the program needs to run without any frame arriving.
    pub fn next_wake(&self) -> Option<Instant> {
        match self {
            App::Client(c) => c.next_wake(),
            _ => None,
        }
    }

    pub fn client(&self) -> Option<&client::Client> {
        match self {
            App::Client(c) => Some(c),
            _ => None,
        }
    }

    pub fn client_mut(&mut self) -> Option<&mut client::Client> {
        match self {
            App::Client(c) => Some(c),
            _ => None,
        }
    }
}

fn http_body(pod: &str) -> Vec<u8> {
    let mut s = String::from(pod);
    s.push('\n');
    s.into_bytes()
}
