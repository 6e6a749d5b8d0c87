//! The stub resolver a client runs before it connects: see [`Resolve`].

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint, IpProtocol, Ipv4Address};

use super::*;
use crate::program::client::{pick_port, Outcome};
use crate::program::PodEnv;

/// Name resolution before a client connects: the address it connects to is the first `A`
/// record of the answer instead of [`ClientSpec::to`](super::ClientSpec::to).
///
/// Like glibc's stub resolver with one `nameserver`: the names to try come from
/// [`Resolve::candidates`]; each is asked for its `A` record (only: an `AF_INET` lookup) in a
/// UDP query from a new ephemeral port to `server:53`, sent again on the same socket after
/// [`TIMEOUT`] without an answer, given up after [`ATTEMPTS`] sends. `NXDOMAIN` (or `NOERROR`
/// without an address, or `SERVFAIL`) moves on to the next name; a timeout ends the lookup.
/// Answers from another address or port, with another id or question, are ignored.
///
/// Simplified: the client resolves once, when its first connection is due, and every
/// connection uses that answer (or that failure) for the client's whole life, whatever the
/// TTL; a truncated answer is used as is (glibc would ask again over TCP); only the first
/// address of the answer is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolve {
    /// The name as the application gave it (`web`, `web.prod`, `web.prod.svc.cluster.local`).
    pub name: String,
    /// The nameserver (in a pod: the kube-dns Service's ClusterIP).
    pub server: Ipv4Address,
    /// The search list, in order.
    pub search: Vec<String>,
}

impl Resolve {
    /// What the kubelet writes for a pod in `namespace` (dnsPolicy ClusterFirst): `server` and
    /// `search NAMESPACE.svc.cluster.local svc.cluster.local cluster.local`.
    pub fn cluster(name: &str, server: Ipv4Address, namespace: &str) -> Self {
        Resolve {
            name: String::from(name),
            server,
            search: vec![
                alloc::format!("{namespace}.svc.cluster.local"),
                String::from("svc.cluster.local"),
                String::from("cluster.local"),
            ],
        }
    }

    /// The names queried, in order (glibc `res_search` with `ndots:5`): a name ending in a dot
    /// alone; a name with fewer than [`NDOTS`] dots with each search domain first, then as is;
    /// otherwise as is first, then with each search domain.
    pub fn candidates(&self) -> Vec<String> {
        let name = self.name.trim();
        if let Some(abs) = name.strip_suffix('.') {
            return vec![String::from(abs)];
        }
        let searched = self
            .search
            .iter()
            .map(|d| d.trim().trim_end_matches('.'))
            .filter(|d| !d.is_empty())
            .map(|d| alloc::format!("{name}.{d}"));
        let dots = name.bytes().filter(|b| *b == b'.').count();
        if dots < NDOTS {
            searched
                .chain(core::iter::once(String::from(name)))
                .collect()
        } else {
            core::iter::once(String::from(name))
                .chain(searched)
                .collect()
        }
    }
}

/// How a lookup ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The address to connect to.
    Address(Ipv4Address),
    /// No address: how each connection ends, and the `getaddrinfo` error.
    Failed(Outcome, String),
}

#[derive(Debug)]
struct Asking {
    handle: SocketHandle,
    port: u16,
    id: u16,
    name: String,
    query: Vec<u8>,
    attempt: u8,
    deadline: Instant,
}

/// One client's lookup in progress or done.
#[derive(Debug)]
pub(crate) struct Lookup {
    spec: Resolve,
    candidates: Vec<String>,
    next: usize,
    asking: Option<Asking>,
    nodata: bool,
    servfail: bool,
    /// When it started.
    pub started: Option<Instant>,
    /// When it ended.
    pub ended: Option<Instant>,
    /// How it ended.
    pub result: Option<Resolved>,
}

impl Lookup {
    pub(crate) fn new(spec: Resolve) -> Self {
        Lookup {
            candidates: spec.candidates(),
            spec,
            next: 0,
            asking: None,
            nodata: false,
            servfail: false,
            started: None,
            ended: None,
            result: None,
        }
    }

    fn server(&self) -> IpEndpoint {
        IpEndpoint::new(IpAddress::Ipv4(self.spec.server), PORT)
    }

    /// Starts the lookup if it has not started yet.
    pub(crate) fn start(&mut self, env: &mut PodEnv<'_>) {
        if self.started.is_none() {
            self.started = Some(env.now);
            self.ask_next(env);
        }
    }

    /// When the current attempt gives up.
    pub(crate) fn wake(&self) -> Option<Instant> {
        self.asking.as_ref().map(|a| a.deadline)
    }

    /// Whether the lookup started and has no result yet.
    pub(crate) fn pending(&self) -> bool {
        self.started.is_some() && self.result.is_none()
    }

    fn close(&mut self, env: &mut PodEnv<'_>) {
        if let Some(a) = self.asking.take() {
            env.pool.put(env.sockets.remove(a.handle));
            env.ports.remove(&a.port);
        }
    }

    fn finish(&mut self, result: Resolved, env: &mut PodEnv<'_>) {
        self.close(env);
        self.ended = Some(env.now);
        self.result = Some(result);
    }

    fn fail(&mut self, outcome: Outcome, errno: &str, why: Option<&str>, env: &mut PodEnv<'_>) {
        let mut e = alloc::format!("{errno}: {}", self.spec.name);
        if let Some(why) = why {
            let _ = write!(e, " ({why})");
        }
        self.finish(Resolved::Failed(outcome, e), env);
    }

    /// Opens a socket on a new ephemeral port and sends `query` from it.
    fn open(&self, query: &[u8], env: &mut PodEnv<'_>) -> Option<(SocketHandle, u16)> {
        let port = pick_port(env)?;
        let mut s = env.pool.udp();
        if s.bind(port).is_err() || s.send_slice(query, self.server()).is_err() {
            return None;
        }
        env.ports.insert(port);
        Some((env.sockets.add(s), port))
    }

    /// Asks for the next candidate name, or ends the lookup when none is left.
    fn ask_next(&mut self, env: &mut PodEnv<'_>) {
        self.close(env);
        while let Some(name) = self.candidates.get(self.next).cloned() {
            self.next += 1;
            let id = env.rng.next_u64() as u16;
            let Some(query) = encode_query(id, &name, TYPE_A) else {
                continue; // not a valid name: res_nmkquery fails, the search goes on
            };
            let Some((handle, port)) = self.open(&query, env) else {
                return self.fail(Outcome::Refused, "EAI_SYSTEM", Some("no socket"), env);
            };
            self.asking = Some(Asking {
                handle,
                port,
                id,
                name: normalize(&name),
                query,
                attempt: 1,
                deadline: env.now + TIMEOUT,
            });
            return;
        }
        let errno = if self.nodata {
            "EAI_NODATA"
        } else if self.servfail {
            "EAI_AGAIN"
        } else {
            "EAI_NONAME"
        };
        self.fail(Outcome::Refused, errno, None, env);
    }

    /// Reads answers and handles timeouts.
    pub(crate) fn poll(&mut self, env: &mut PodEnv<'_>) {
        let server = self.server();
        while let Some(a) = &self.asking {
            let sock = env.sockets.get_mut::<udp::Socket>(a.handle);
            let Ok((data, meta)) = sock.recv() else {
                break;
            };
            if meta.endpoint != server {
                continue;
            }
            let Some(m) = Message::parse(data) else {
                continue;
            };
            let matches = m.header.is_response()
                && m.header.id == a.id
                && matches!(m.questions.as_slice(), [q] if q.name == a.name && q.qtype == TYPE_A && q.qclass == CLASS_IN);
            if !matches {
                continue;
            }
            match m.header.rcode() {
                rcode::NOERROR => match m.answers.iter().find_map(Record::a) {
                    Some(ip) => return self.finish(Resolved::Address(ip), env),
                    None => {
                        self.nodata = true;
                        self.ask_next(env);
                    }
                },
                rcode::NXDOMAIN => self.ask_next(env),
                rcode::SERVFAIL => {
                    self.servfail = true;
                    self.ask_next(env);
                }
                other => {
                    let why = alloc::format!("rcode {other}");
                    return self.fail(Outcome::Refused, "EAI_FAIL", Some(&why), env);
                }
            }
        }
        let Some(a) = &mut self.asking else {
            return;
        };
        if env.now < a.deadline {
            return;
        }
        if a.attempt >= ATTEMPTS {
            return self.fail(Outcome::Timeout, "EAI_AGAIN", None, env);
        }
        a.attempt += 1;
        a.deadline = env.now + TIMEOUT;
        let sock = env.sockets.get_mut::<udp::Socket>(a.handle);
        if sock.send_slice(&a.query, server).is_err() {
            self.fail(Outcome::Refused, "EAI_SYSTEM", Some("send failed"), env);
        }
    }

    /// An ICMP error arrived; true when it was about our query. A hard error (port
    /// unreachable: the Service has no endpoints) fails the attempt at once, and glibc tries
    /// again from a new socket until the attempts are used up.
    pub(crate) fn icmp_error(&mut self, err: &crate::pod::IcmpError, env: &mut PodEnv<'_>) -> bool {
        let server = self.server();
        let Some(a) = &self.asking else {
            return false;
        };
        if err.protocol != IpProtocol::Udp || err.local_port != a.port || err.remote != server {
            return false;
        }
        if !err.hard {
            return true;
        }
        let why = alloc::format!("{}: {}", err.errno, err.what);
        if a.attempt >= ATTEMPTS {
            self.fail(Outcome::Refused, "EAI_AGAIN", Some(&why), env);
            return true;
        }
        let (query, attempt) = (a.query.clone(), a.attempt + 1);
        let (id, name) = (a.id, a.name.clone());
        self.close(env);
        match self.open(&query, env) {
            Some((handle, port)) => {
                self.asking = Some(Asking {
                    handle,
                    port,
                    id,
                    name,
                    query,
                    attempt,
                    deadline: env.now + TIMEOUT,
                });
            }
            None => self.fail(Outcome::Refused, "EAI_AGAIN", Some(&why), env),
        }
        true
    }
}
