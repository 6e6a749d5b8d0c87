//! The stub resolver a client runs before it connects: see [`Resolve`].

use alloc::string::String;
use alloc::vec::Vec;

use crate::pod::Handle;
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint, IpProtocol, Ipv4Address};

use super::*;
use crate::program::client::Outcome;
use crate::program::PodEnv;

/// Name resolution before a client connects: the address it connects to is the first `A`
/// record of the answer instead of [`ClientSpec::to`](crate::program::spec::ClientSpec::to).
///
/// Like glibc's stub resolver with one `nameserver`: the names to try come from
/// [`Resolve::candidates`]; each is asked for its `A` record (only: an `AF_INET` lookup) in a
/// UDP query from a new ephemeral port to `server:53`, sent again on the same socket after
/// [`TIMEOUT`] without an answer, given up after [`ATTEMPTS`] sends. `NXDOMAIN` (or `NOERROR`
/// without an address, or `SERVFAIL`) moves on to the next name; a timeout ends the lookup.
/// Answers from another address or port, with another id or question, are ignored.
///
/// With [`ResolvOptions::unspec`] (`getaddrinfo(AF_UNSPEC)`, what most applications call),
/// each name is asked for `A` and `AAAA` at once, from one socket (glibc's `send_dg` sends both
/// with one `sendmmsg`), and the attempt waits for both answers: see [`ResolvOptions`].
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
    /// How the queries are sent: the lookup's family and `resolv.conf`'s `options`.
    pub options: ResolvOptions,
}

/// The `options` line of `resolv.conf` (a pod's `spec.dnsConfig.options`) that change how
/// glibc sends its queries, and the family the application asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvOptions {
    /// `getaddrinfo(AF_UNSPEC)`: ask for `A` and `AAAA` (else `AF_INET`: `A` only).
    pub unspec: bool,
    /// `timeout:N`: how long one attempt waits for its answers ([`TIMEOUT`]).
    pub timeout: Duration,
    /// `attempts:N`: how many times a name is asked before the lookup gives up ([`ATTEMPTS`]).
    pub attempts: u8,
    /// `single-request`: send `AAAA` only once `A` is answered, from the same socket. glibc
    /// also switches to this by itself when an attempt timed out with one answer of two.
    pub single_request: bool,
    /// `single-request-reopen`: the same, but `AAAA` leaves from a new socket (a new source
    /// port, so a new conntrack entry).
    pub single_request_reopen: bool,
}

impl Default for ResolvOptions {
    /// `AF_INET`, glibc's defaults.
    fn default() -> Self {
        ResolvOptions {
            unspec: false,
            timeout: TIMEOUT,
            attempts: ATTEMPTS,
            single_request: false,
            single_request_reopen: false,
        }
    }
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
            options: ResolvOptions::default(),
        }
    }

    /// Sets the options.
    pub fn options(mut self, options: ResolvOptions) -> Self {
        self.options = options;
        self
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

/// One query of an attempt (`A`, or `AAAA`).
#[derive(Debug)]
struct Query {
    id: u16,
    qtype: u16,
    query: Vec<u8>,
    sent: bool,
    /// The answer's rcode and first address, once it came.
    answer: Option<(u8, Option<Ipv4Address>)>,
}

#[derive(Debug)]
struct Asking {
    handle: Handle,
    port: u16,
    name: String,
    queries: Vec<Query>,
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
    /// glibc's `RES_SNGLKUP` / `RES_SNGLKUPREOP`: from the options, or switched on after an
    /// attempt timed out with one answer of two (they stay on, as in `_res.options`).
    single_request: bool,
    reopen: bool,
    /// When it started.
    pub started: Option<Instant>,
    /// When it ended.
    pub ended: Option<Instant>,
    /// How it ended.
    pub result: Option<Resolved>,
    /// Every local port a query left from, in order.
    pub ports: Vec<u16>,
}

impl Lookup {
    pub(crate) fn new(spec: Resolve) -> Self {
        let o = spec.options;
        Lookup {
            candidates: spec.candidates(),
            single_request: o.single_request || o.single_request_reopen,
            reopen: o.single_request_reopen,
            spec,
            next: 0,
            asking: None,
            nodata: false,
            servfail: false,
            started: None,
            ended: None,
            result: None,
            ports: Vec::new(),
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
            Self::close_socket(a.handle, a.port, env);
        }
    }

    fn close_socket(handle: Handle, port: u16, env: &mut PodEnv<'_>) {
        env.pool.put(env.sockets.remove(handle));
        env.ports.unbind_udp(port);
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
    fn open(&mut self, query: &[u8], env: &mut PodEnv<'_>) -> Option<(Handle, u16)> {
        let port = env.ports.choose_udp(env.rng)?;
        let mut s = env.pool.udp();
        if s.bind(port).is_err() || s.send_slice(query, self.server()).is_err() {
            return None;
        }
        env.ports.bind_udp(port);
        self.ports.push(port);
        Some((env.sockets.add(s), port))
    }

    /// Sends the queries of the current attempt not sent yet: all of them at once (parallel),
    /// or the next one once the previous is answered (single request). False if a send failed.
    fn send_due(&mut self, env: &mut PodEnv<'_>) -> bool {
        let server = self.server();
        let single = self.single_request;
        let Some(a) = self.asking.as_mut() else {
            return true;
        };
        for q in a.queries.iter_mut() {
            if q.sent {
                if single && q.answer.is_none() {
                    break;
                }
                continue;
            }
            let sock = env.sockets.get_mut::<udp::Socket>(a.handle);
            if sock.send_slice(&q.query, server).is_err() {
                return false;
            }
            q.sent = true;
            if single {
                break;
            }
        }
        true
    }

    /// Asks for the next candidate name, or ends the lookup when none is left.
    fn ask_next(&mut self, env: &mut PodEnv<'_>) {
        self.close(env);
        while let Some(name) = self.candidates.get(self.next).cloned() {
            self.next += 1;
            let types: &[u16] = if self.spec.options.unspec {
                &[TYPE_A, TYPE_AAAA]
            } else {
                &[TYPE_A]
            };
            let mut queries = Vec::new();
            for &qtype in types {
                let id = env.rng.next_u64() as u16;
                let Some(query) = encode_query(id, &name, qtype) else {
                    break; // not a valid name: res_nmkquery fails, the search goes on
                };
                queries.push(Query {
                    id,
                    qtype,
                    query,
                    sent: false,
                    answer: None,
                });
            }
            if queries.len() < types.len() {
                continue;
            }
            let Some((handle, port)) = self.open(&queries[0].query, env) else {
                return self.fail(Outcome::Refused, "EAI_SYSTEM", Some("no socket"), env);
            };
            queries[0].sent = true;
            self.asking = Some(Asking {
                handle,
                port,
                name: normalize(&name),
                queries,
                attempt: 1,
                deadline: env.now + self.spec.options.timeout,
            });
            if !self.send_due(env) {
                self.fail(Outcome::Refused, "EAI_SYSTEM", Some("send failed"), env);
            }
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

    /// Every query answered: the `A` answer decides.
    fn answered(&mut self, env: &mut PodEnv<'_>) {
        let Some((rcode, addr)) = self
            .asking
            .as_ref()
            .and_then(|a| a.queries.iter().find(|q| q.qtype == TYPE_A))
            .and_then(|q| q.answer)
        else {
            return;
        };
        match rcode {
            rcode::NOERROR => match addr {
                Some(ip) => self.finish(Resolved::Address(ip), env),
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
                self.fail(Outcome::Refused, "EAI_FAIL", Some(&why), env);
            }
        }
    }

    /// The attempt starts over (glibc's `retry`): every query unanswered and unsent again,
    /// the first sent now, a new deadline.
    fn restart(&mut self, env: &mut PodEnv<'_>) -> bool {
        let timeout = self.spec.options.timeout;
        let Some(a) = self.asking.as_mut() else {
            return true;
        };
        a.deadline = env.now + timeout;
        for q in a.queries.iter_mut() {
            q.sent = false;
            q.answer = None;
        }
        self.send_due(env)
    }

    /// Reads answers and handles timeouts.
    pub(crate) fn poll(&mut self, env: &mut PodEnv<'_>) {
        let server = self.server();
        let reopen = self.reopen;
        while let Some(a) = &mut self.asking {
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
            let name = &a.name;
            let Some(q) = a.queries.iter_mut().find(|q| {
                q.sent
                    && q.answer.is_none()
                    && m.header.is_response()
                    && m.header.id == q.id
                    && matches!(m.questions.as_slice(), [x] if x.name == *name && x.qtype == q.qtype && x.qclass == CLASS_IN)
            }) else {
                continue;
            };
            q.answer = Some((m.header.rcode(), m.answers.iter().find_map(Record::a)));
            if a.queries.iter().all(|q| q.answer.is_some()) {
                return self.answered(env);
            }
            if self.single_request && reopen {
                // `single-request-reopen`: the next query leaves from a new socket.
                let (old, port) = (a.handle, a.port);
                let Some(next) = a.queries.iter().find(|q| !q.sent) else {
                    continue;
                };
                let query = next.query.clone();
                let Some((handle, port2)) = self.open(&query, env) else {
                    return self.fail(Outcome::Refused, "EAI_SYSTEM", Some("no socket"), env);
                };
                Self::close_socket(old, port, env);
                let a = self.asking.as_mut().expect("asking");
                (a.handle, a.port) = (handle, port2);
                if let Some(q) = a.queries.iter_mut().find(|q| !q.sent) {
                    q.sent = true;
                }
            } else if !self.send_due(env) {
                return self.fail(Outcome::Refused, "EAI_SYSTEM", Some("send failed"), env);
            }
        }
        let attempts = self.spec.options.attempts;
        let Some(a) = &mut self.asking else {
            return;
        };
        if env.now < a.deadline {
            return;
        }
        if a.queries.iter().any(|q| q.answer.is_some()) {
            // Timed out with one answer of two: "there are quite a few broken name servers
            // out there which don't handle two outstanding requests from the same source"
            // (`send_dg`): switch to single-request mode and start over on the same socket,
            // then, if that times out again, on a new socket.
            if !self.single_request {
                self.single_request = true;
            } else if !self.reopen {
                self.reopen = true;
                let query = a.queries[0].query.clone();
                let (old, port) = (a.handle, a.port);
                let Some((handle, port2)) = self.open(&query, env) else {
                    return self.fail(Outcome::Refused, "EAI_SYSTEM", Some("no socket"), env);
                };
                Self::close_socket(old, port, env);
                let timeout = self.spec.options.timeout;
                let a = self.asking.as_mut().expect("asking");
                (a.handle, a.port) = (handle, port2);
                a.deadline = env.now + timeout;
                for (i, q) in a.queries.iter_mut().enumerate() {
                    q.sent = i == 0;
                    q.answer = None;
                }
                return;
            } else {
                // Both modes tried: glibc returns the answer it has.
                for q in a.queries.iter_mut().filter(|q| q.answer.is_none()) {
                    q.answer = Some((rcode::NOERROR, None));
                }
                return self.answered(env);
            }
            if !self.restart(env) {
                self.fail(Outcome::Refused, "EAI_SYSTEM", Some("send failed"), env);
            }
            return;
        }
        if a.attempt >= attempts {
            return self.fail(Outcome::Timeout, "EAI_AGAIN", None, env);
        }
        a.attempt += 1;
        if !self.restart(env) {
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
        if a.attempt >= self.spec.options.attempts {
            self.fail(Outcome::Refused, "EAI_AGAIN", Some(&why), env);
            return true;
        }
        let Some(mut a) = self.asking.take() else {
            return true;
        };
        Self::close_socket(a.handle, a.port, env);
        match self.open(&a.queries[0].query, env) {
            Some((handle, port)) => {
                a.handle = handle;
                a.port = port;
                a.attempt += 1;
                a.deadline = env.now + self.spec.options.timeout;
                for (i, q) in a.queries.iter_mut().enumerate() {
                    q.sent = i == 0;
                    q.answer = None;
                }
                self.asking = Some(a);
                if !self.send_due(env) {
                    self.fail(Outcome::Refused, "EAI_SYSTEM", Some("send failed"), env);
                }
            }
            None => self.fail(Outcome::Refused, "EAI_AGAIN", Some(&why), env),
        }
        true
    }
}
