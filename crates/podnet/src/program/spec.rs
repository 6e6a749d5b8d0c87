//! What a client program is asked to do: [`ClientSpec`], its protocol and its request.

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::Ipv4Address;

use super::dns::Resolve;

/// Transport protocol of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP connections.
    Tcp,
    /// UDP datagrams, each expecting one answer.
    Udp,
}

/// What the client sends on each connection, and so what it expects back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET path HTTP/1.1` with a `Host` header; expects a complete HTTP response.
    Http {
        /// Host header.
        host: String,
        /// Request path.
        path: String,
    },
    /// These bytes; expects them echoed back.
    Echo(Vec<u8>),
    /// `n` bytes of a deterministic pattern; expects them echoed back intact.
    Bulk(usize),
    /// `n` bytes of a pattern, then a half-close (FIN); done when the server closes too (a
    /// discard server: all data was read).
    Upload(usize),
    /// Nothing: done once the handshake completes, then closed (a connectivity probe, like
    /// `agnhost connect` or `nc -z`). Over UDP, one empty datagram that expects an answer.
    Connect,
}

/// A client program's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSpec {
    /// The flow's name, as reported.
    pub name: String,
    /// Destination address.
    pub to: Ipv4Address,
    /// Destination port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// What to send.
    pub request: Request,
    /// Connections (or datagrams).
    pub count: u32,
    /// At most this many open at once.
    pub concurrency: u32,
    /// When the first one starts.
    pub start: Instant,
    /// Minimum time between starts.
    pub interval: Duration,
    /// How long one connection may take in all.
    pub timeout: Duration,
    /// IP TTL of outgoing packets (`None`: 64).
    pub ttl: Option<u8>,
    /// Resolve a name over DNS first and connect to its address instead of `to` (`None`:
    /// connect to `to`).
    pub resolve: Option<Resolve>,
}

impl ClientSpec {
    /// One HTTP GET to `to:port`, starting at time zero, 5 s timeout.
    pub fn http(name: &str, to: Ipv4Address, port: u16) -> Self {
        ClientSpec {
            name: String::from(name),
            to,
            port,
            protocol: Protocol::Tcp,
            request: Request::Http {
                host: alloc::format!("{to}"),
                path: String::from("/"),
            },
            count: 1,
            concurrency: 1,
            start: Instant::ZERO,
            interval: Duration::ZERO,
            timeout: Duration::from_secs(5),
            ttl: None,
            resolve: None,
        }
    }

    /// Sets the number of connections.
    pub fn count(mut self, n: u32) -> Self {
        self.count = n;
        self
    }

    /// Sets the concurrency.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets what is sent.
    pub fn request(mut self, r: Request) -> Self {
        self.request = r;
        self
    }

    /// Sets the protocol.
    pub fn protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }

    /// Sets the start time.
    pub fn start(mut self, at: Instant) -> Self {
        self.start = at;
        self
    }

    /// Sets the interval between starts.
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Sets the per-connection timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Sets the TTL of outgoing packets.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Resolves a name over DNS before connecting (see [`Resolve`]).
    pub fn resolve(mut self, r: Resolve) -> Self {
        self.resolve = Some(r);
        self
    }
}
