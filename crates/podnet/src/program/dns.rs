//! DNS: a minimal RFC 1035 codec, the [`DnsServer`] program (what a `coredns/coredns` pod runs)
//! and the stub resolver a client uses before it connects ([`Resolve`]).
//!
//! The server answers class IN queries from a fixed table of `A` records: the addresses for a
//! known name (TTL [`TTL`]), `NOERROR` with no answer for any other type of a known name (or of
//! a name that only exists as a parent, like `svc.cluster.local`), `NXDOMAIN` for the rest,
//! `FORMERR` for a query it cannot read (no header at all: ignored), `NOTIMP` for opcodes other
//! than QUERY and `REFUSED` for other classes. UDP answers are cut to [`UDP_MAX`] bytes with the
//! TC bit set; TCP (RFC 1035 4.2.2, a 2-byte length before each message) is served on the same
//! port. It does not send SOA records with negative answers, EDNS options, or rotate its
//! answers; nothing is forwarded upstream (names outside the table are `NXDOMAIN`).
//!
//! The resolver does what glibc's `getaddrinfo(AF_INET)` does in a pod with the kubelet's
//! `resolv.conf` (`search NS.svc.cluster.local svc.cluster.local cluster.local`,
//! `options ndots:5`, glibc's `timeout:5 attempts:2`): see [`Resolve`].

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, IpProtocol, Ipv4Address};

use super::client::{pick_port, Outcome};
use super::server::{udp_socket, Mode, TcpServer};
use super::PodEnv;

/// The DNS port.
pub const PORT: u16 = 53;
/// Record type `A`.
pub const TYPE_A: u16 = 1;
/// Record type `AAAA`.
pub const TYPE_AAAA: u16 = 28;
/// QTYPE `*` (any).
pub const TYPE_ANY: u16 = 255;
/// Class `IN`.
pub const CLASS_IN: u16 = 1;
/// QCLASS `*` (any).
pub const CLASS_ANY: u16 = 255;
/// TTL of every answer (what kubeadm's Corefile sets: `kubernetes ... { ttl 30 }`).
pub const TTL: u32 = 30;
/// The largest UDP message without EDNS (RFC 1035 4.2.1).
pub const UDP_MAX: usize = 512;
/// The largest message over TCP (the 2-byte length prefix).
pub const TCP_MAX: usize = 65535;
/// `options ndots:5`, what the kubelet writes into a pod's `resolv.conf`.
pub const NDOTS: usize = 5;
/// glibc's default `timeout:5`: how long one attempt waits for an answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// glibc's default `attempts:2`: how many times a query is sent before giving up on it.
pub const ATTEMPTS: u8 = 2;

/// Response codes (RFC 1035 4.1.1).
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// The server could not read the query.
    pub const FORMERR: u8 = 1;
    /// The server failed.
    pub const SERVFAIL: u8 = 2;
    /// The name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// The server does not do that kind of query.
    pub const NOTIMP: u8 = 4;
    /// The server will not answer.
    pub const REFUSED: u8 = 5;
}

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;

/// A message header (RFC 1035 4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Query id, copied into the answer.
    pub id: u16,
    /// QR, opcode, AA, TC, RD, RA, Z and RCODE.
    pub flags: u16,
    /// Questions.
    pub qdcount: u16,
    /// Answer records.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Additional records.
    pub arcount: u16,
}

impl Header {
    /// Whether this is a response (QR).
    pub fn is_response(&self) -> bool {
        self.flags & QR != 0
    }

    /// The opcode (0: standard query).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The response code.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }

    /// Whether the answer was truncated (TC).
    pub fn truncated(&self) -> bool {
        self.flags & TC != 0
    }

    fn read(r: &mut Reader<'_>) -> Option<Self> {
        Some(Header {
            id: r.u16()?,
            flags: r.u16()?,
            qdcount: r.u16()?,
            ancount: r.u16()?,
            nscount: r.u16()?,
            arcount: r.u16()?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        for v in [
            self.id,
            self.flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// A question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The name, lower case, without the final dot (`""`: the root); bytes other than printable
    /// ASCII, `.` and `\` are written `\DDD`.
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

/// A resource record of the answer section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner name, as in [`Question::name`].
    pub name: String,
    /// TYPE.
    pub rtype: u16,
    /// CLASS.
    pub class: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// RDATA.
    pub data: Vec<u8>,
}

impl Record {
    /// The address of an `IN A` record.
    pub fn a(&self) -> Option<Ipv4Address> {
        match (self.rtype, self.class, self.data.as_slice()) {
            (TYPE_A, CLASS_IN, &[a, b, c, d]) => Some(Ipv4Address::new(a, b, c, d)),
            _ => None,
        }
    }
}

/// A message: header, questions and answers (authority and additional records are not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The question section.
    pub questions: Vec<Question>,
    /// The answer section.
    pub answers: Vec<Record>,
}

impl Message {
    /// Reads a message; `None` when anything is out of bounds or malformed.
    pub fn parse(buf: &[u8]) -> Option<Message> {
        let mut r = Reader {
            buf,
            pos: 0,
            jumped: false,
        };
        let header = Header::read(&mut r)?;
        let mut questions = Vec::new();
        for _ in 0..header.qdcount {
            questions.push(Question::read(&mut r)?);
        }
        let mut answers = Vec::new();
        for _ in 0..header.ancount {
            let name = r.name()?;
            let rtype = r.u16()?;
            let class = r.u16()?;
            let ttl = r.u32()?;
            let len = usize::from(r.u16()?);
            let data = r.bytes(len)?.to_vec();
            answers.push(Record {
                name,
                rtype,
                class,
                ttl,
                data,
            });
        }
        Some(Message {
            header,
            questions,
            answers,
        })
    }
}

impl Question {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        Some(Question {
            name: r.name()?,
            qtype: r.u16()?,
            qclass: r.u16()?,
        })
    }
}

/// A cursor over a message; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Whether a name read so far followed a compression pointer.
    jumped: bool,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        match *self.bytes(2)? {
            [a, b] => Some(u16::from_be_bytes([a, b])),
            _ => None,
        }
    }

    fn u32(&mut self) -> Option<u32> {
        match *self.bytes(4)? {
            [a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }

    /// A domain name, following compression pointers (RFC 1035 4.1.4) only backwards.
    fn name(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut resume = None;
        let mut wire = 1usize;
        loop {
            let len = *self.buf.get(pos)?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    pos += 1;
                    break;
                }
                0x00 => {
                    let n = usize::from(len);
                    let label = self.buf.get(pos + 1..pos + 1 + n)?;
                    wire += n + 1;
                    if wire > MAX_NAME {
                        return None;
                    }
                    if !out.is_empty() {
                        out.push('.');
                    }
                    push_label(&mut out, label);
                    pos += 1 + n;
                }
                0xc0 => {
                    let lo = *self.buf.get(pos + 1)?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                    if target >= pos {
                        return None; // forward or self pointer: could loop
                    }
                    resume.get_or_insert(pos + 2);
                    self.jumped = true;
                    pos = target;
                }
                _ => return None, // 0x40 and 0x80 label types are not defined
            }
        }
        self.pos = resume.unwrap_or(pos);
        Some(out)
    }
}

fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => {
                let _ = write!(out, "\\{b:03}");
            }
            0x21..=0x7e => out.push(char::from(b.to_ascii_lowercase())),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
}

/// The lower-case name without its final dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Appends `name` in wire format; false when it is no valid name (an empty label, a label over
/// 63 bytes, more than 255 bytes in all).
fn write_name(name: &str, out: &mut Vec<u8>) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut wire = 1;
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL {
                return false;
            }
            wire += label.len() + 1;
            if wire > MAX_NAME {
                return false;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    true
}

/// A standard query (RD set) for the `qtype` records of `name`, class IN; `None` when `name` is
/// no valid domain name.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(12 + name.len() + 6);
    Header {
        id,
        flags: RD,
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    }
    .write(&mut out);
    if !write_name(name, &mut out) {
        return None;
    }
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Some(out)
}

/// The names a server answers for, and their addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zone {
    names: BTreeMap<String, Vec<Ipv4Address>>,
}

impl Zone {
    /// A zone of `A` records (names with or without the final dot, any case; a name given
    /// several times gets every address, in order).
    pub fn new(records: &[(String, Ipv4Address)]) -> Self {
        let mut names: BTreeMap<String, Vec<Ipv4Address>> = BTreeMap::new();
        for (name, ip) in records {
            let list = names.entry(normalize(name)).or_default();
            if !list.contains(ip) {
                list.push(*ip);
            }
        }
        Zone { names }
    }

    /// The addresses of `name`.
    pub fn lookup(&self, name: &str) -> Option<&[Ipv4Address]> {
        self.names.get(&normalize(name)).map(Vec::as_slice)
    }

    /// Whether `name` exists only as the parent of a name with records (an empty
    /// non-terminal, RFC 8020): `NOERROR` without answers rather than `NXDOMAIN`.
    fn is_parent(&self, name: &str) -> bool {
        let name = normalize(name);
        name.is_empty()
            || self.names.keys().any(|k| {
                k.len() > name.len()
                    && k.ends_with(name.as_str())
                    && k.as_bytes().get(k.len() - name.len() - 1) == Some(&b'.')
            })
    }

    /// The answer to `query`, at most `limit` bytes (the rest of the answers are left out and
    /// TC set); `None` when the query is to be ignored (shorter than a header, or a response).
    pub fn respond(&self, query: &[u8], limit: usize) -> Option<Vec<u8>> {
        let mut r = Reader {
            buf: query,
            pos: 0,
            jumped: false,
        };
        let h = Header::read(&mut r)?;
        if h.is_response() {
            return None;
        }
        let flags = QR | (u16::from(h.opcode()) << 11) | (h.flags & RD) | RA;
        let reply = |rcode: u8, question: &[u8], answers: &[Ipv4Address]| {
            let mut flags = flags | u16::from(rcode);
            if matches!(rcode, rcode::NOERROR | rcode::NXDOMAIN) {
                flags |= AA;
            }
            let mut out = Vec::with_capacity(12 + question.len() + 16 * answers.len());
            Header {
                id: h.id,
                flags,
                qdcount: u16::from(!question.is_empty()),
                ancount: 0,
                nscount: 0,
                arcount: 0,
            }
            .write(&mut out);
            out.extend_from_slice(question);
            let mut n: u16 = 0;
            for ip in answers {
                if out.len() + 16 > limit || n == u16::MAX {
                    flags |= TC;
                    break;
                }
                out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
                out.extend_from_slice(&TYPE_A.to_be_bytes());
                out.extend_from_slice(&CLASS_IN.to_be_bytes());
                out.extend_from_slice(&TTL.to_be_bytes());
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&ip.octets());
                n += 1;
            }
            out[2..4].copy_from_slice(&flags.to_be_bytes());
            out[6..8].copy_from_slice(&n.to_be_bytes());
            out
        };
        if h.opcode() != 0 {
            return Some(reply(rcode::NOTIMP, &[], &[]));
        }
        if h.qdcount != 1 {
            return Some(reply(rcode::FORMERR, &[], &[]));
        }
        let start = r.pos;
        let q = match Question::read(&mut r) {
            // A compressed question is legal but never sent; answering it would copy a pointer
            // into a header that changed.
            Some(q) if !r.jumped => q,
            _ => return Some(reply(rcode::FORMERR, &[], &[])),
        };
        let question = query.get(start..r.pos)?;
        if question.len() + 12 > limit {
            return Some(reply(rcode::FORMERR, &[], &[]));
        }
        if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
            return Some(reply(rcode::REFUSED, question, &[]));
        }
        Some(match self.names.get(&q.name) {
            Some(ips) if matches!(q.qtype, TYPE_A | TYPE_ANY) => {
                reply(rcode::NOERROR, question, ips)
            }
            Some(_) => reply(rcode::NOERROR, question, &[]),
            None if self.is_parent(&q.name) => reply(rcode::NOERROR, question, &[]),
            None => reply(rcode::NXDOMAIN, question, &[]),
        })
    }
}

/// The DNS server program: UDP and TCP on one port.
#[derive(Debug)]
pub struct DnsServer {
    udp: SocketHandle,
    pub(crate) tcp: TcpServer,
    zone: Zone,
    /// UDP queries answered.
    pub answered: u64,
}

impl DnsServer {
    pub(crate) fn new(port: u16, records: &[(String, Ipv4Address)], env: &mut PodEnv<'_>) -> Self {
        let zone = Zone::new(records);
        let mut sock = udp_socket();
        let _ = sock.bind(port);
        let udp = env.sockets.add(sock);
        let tcp = TcpServer::new(Mode::Dns(zone.clone()), port, env);
        DnsServer {
            udp,
            tcp,
            zone,
            answered: 0,
        }
    }

    pub(crate) fn step(&mut self, env: &mut PodEnv<'_>) {
        let sock = env.sockets.get_mut::<udp::Socket>(self.udp);
        let mut buf = vec![0u8; 65536];
        while sock.can_recv() && sock.can_send() {
            let Ok((n, meta)) = sock.recv_slice(&mut buf) else {
                break;
            };
            let Some(answer) = buf.get(..n).and_then(|q| self.zone.respond(q, UDP_MAX)) else {
                continue;
            };
            if sock.send_slice(&answer, meta.endpoint).is_ok() {
                self.answered += 1;
            }
        }
        self.tcp.step(env);
    }
}

/// Serves DNS over one TCP connection: 2-byte length, message; answers in the same framing.
pub(crate) fn serve_tcp(zone: &Zone, request: &mut Vec<u8>, pending: &mut Vec<u8>) {
    loop {
        let len = match request.as_slice() {
            [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => return,
        };
        let Some(msg) = request.get(2..2 + len) else {
            return;
        };
        if let Some(answer) = zone.respond(msg, TCP_MAX) {
            pending.extend_from_slice(&(answer.len() as u16).to_be_bytes());
            pending.extend_from_slice(&answer);
        }
        request.drain(..2 + len);
    }
}

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
            env.sockets.remove(a.handle);
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
        let mut s = udp_socket();
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
            let mut buf = vec![0u8; 65536];
            let Ok((n, meta)) = sock.recv_slice(&mut buf) else {
                break;
            };
            if meta.endpoint != server {
                continue;
            }
            let Some(m) = buf.get(..n).and_then(Message::parse) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{SimRng, Stream};

    fn zone() -> Zone {
        Zone::new(&[
            (
                String::from("web.default.svc.cluster.local."),
                Ipv4Address::new(10, 96, 0, 20),
            ),
            (
                String::from("db.prod.svc.cluster.local"),
                Ipv4Address::new(10, 244, 1, 5),
            ),
            (
                String::from("DB.prod.svc.cluster.local"),
                Ipv4Address::new(10, 244, 2, 5),
            ),
        ])
    }

    #[test]
    fn query_bytes() {
        let q = encode_query(0x1234, "web.default.svc.cluster.local", TYPE_A).unwrap();
        let mut want = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["web", "default", "svc", "cluster", "local"] {
            want.push(l.len() as u8);
            want.extend_from_slice(l.as_bytes());
        }
        want.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(q, want);
        // The final dot changes nothing; invalid names are refused.
        assert_eq!(
            encode_query(0x1234, "web.default.svc.cluster.local.", TYPE_A),
            Some(q)
        );
        assert_eq!(encode_query(1, "a..b", TYPE_A), None);
        assert_eq!(encode_query(1, &"x".repeat(64), TYPE_A), None);
        let long = ["abcdefghij"; 25].join(".");
        assert_eq!(encode_query(1, &long, TYPE_A), None, "over 255 bytes");
        assert_eq!(encode_query(1, ".", TYPE_A).unwrap()[12..], [0, 0, 1, 0, 1]);
    }

    #[test]
    fn answer_bytes() {
        let q = encode_query(0xbeef, "Web.Default.svc.cluster.local", TYPE_A).unwrap();
        let a = zone().respond(&q, UDP_MAX).unwrap();
        // id, QR AA RD RA NOERROR, 1 question, 1 answer.
        assert_eq!(a[..12], [0xbe, 0xef, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        // The question comes back as sent.
        assert_eq!(a[12..q.len()], q[12..]);
        let rr = &a[q.len()..];
        assert_eq!(
            rr,
            [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, 20]
        );
        let m = Message::parse(&a).unwrap();
        assert_eq!(m.header.rcode(), rcode::NOERROR);
        assert_eq!(m.questions[0].name, "web.default.svc.cluster.local");
        assert_eq!(m.answers[0].name, "web.default.svc.cluster.local");
        assert_eq!(m.answers[0].ttl, TTL);
        assert_eq!(m.answers[0].a(), Some(Ipv4Address::new(10, 96, 0, 20)));
    }

    #[test]
    fn several_addresses_and_truncation() {
        let q = encode_query(7, "db.prod.svc.cluster.local", TYPE_A).unwrap();
        let m = Message::parse(&zone().respond(&q, UDP_MAX).unwrap()).unwrap();
        let ips: Vec<_> = m.answers.iter().filter_map(Record::a).collect();
        assert_eq!(
            ips,
            [
                Ipv4Address::new(10, 244, 1, 5),
                Ipv4Address::new(10, 244, 2, 5)
            ]
        );
        assert!(!m.header.truncated());
        // Room for one answer only.
        let m = Message::parse(&zone().respond(&q, q.len() + 16).unwrap()).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert!(m.header.truncated());
        // Many addresses over UDP: cut at 512 bytes.
        let many: Vec<(String, Ipv4Address)> = (0..100u8)
            .map(|i| (String::from("big.x"), Ipv4Address::new(10, 0, 0, i)))
            .collect();
        let q = encode_query(8, "big.x", TYPE_A).unwrap();
        let a = Zone::new(&many).respond(&q, UDP_MAX).unwrap();
        assert!(a.len() <= UDP_MAX);
        let m = Message::parse(&a).unwrap();
        assert!(m.header.truncated() && m.answers.len() == (UDP_MAX - q.len()) / 16);
        let m = Message::parse(&Zone::new(&many).respond(&q, TCP_MAX).unwrap()).unwrap();
        assert!(!m.header.truncated() && m.answers.len() == 100);
    }

    #[test]
    fn nxdomain_nodata_and_errors() {
        let z = zone();
        let ask = |q: &[u8]| Message::parse(&z.respond(q, UDP_MAX).unwrap()).unwrap();
        let nx = ask(&encode_query(
            1,
            "web.default.svc.cluster.local.default.svc.cluster.local",
            TYPE_A,
        )
        .unwrap());
        assert_eq!(nx.header.rcode(), rcode::NXDOMAIN);
        assert_eq!(nx.header.flags & AA, AA);
        assert!(nx.answers.is_empty());
        assert_eq!(nx.questions.len(), 1);
        // AAAA of a known name: NOERROR, no answer.
        let aaaa = ask(&encode_query(2, "web.default.svc.cluster.local", TYPE_AAAA).unwrap());
        assert_eq!(aaaa.header.rcode(), rcode::NOERROR);
        assert!(aaaa.answers.is_empty());
        // A parent of names: NOERROR, no answer.
        let parent = ask(&encode_query(3, "svc.cluster.local", TYPE_A).unwrap());
        assert_eq!(parent.header.rcode(), rcode::NOERROR);
        assert!(parent.answers.is_empty());
        // Opcode STATUS (2): NOTIMP.
        let mut status = encode_query(4, "web.default.svc.cluster.local", TYPE_A).unwrap();
        status[2] |= 2 << 3;
        let m = ask(&status);
        assert_eq!(m.header.rcode(), rcode::NOTIMP);
        assert_eq!(m.header.opcode(), 2);
        // Class CH: REFUSED.
        let mut chaos = encode_query(5, "web.default.svc.cluster.local", TYPE_A).unwrap();
        let n = chaos.len();
        chaos[n - 1] = 3;
        assert_eq!(ask(&chaos).header.rcode(), rcode::REFUSED);
        // Two questions, or a question cut short: FORMERR with the id.
        let mut two = encode_query(6, "a", TYPE_A).unwrap();
        two[5] = 2;
        let m = ask(&two);
        assert_eq!((m.header.id, m.header.rcode()), (6, rcode::FORMERR));
        let q = encode_query(9, "web.default.svc.cluster.local", TYPE_A).unwrap();
        let m = ask(&q[..q.len() - 1]);
        assert_eq!((m.header.id, m.header.rcode()), (9, rcode::FORMERR));
        // No header, or a response: ignored.
        assert_eq!(z.respond(&q[..11], UDP_MAX), None);
        let answer = z.respond(&q, UDP_MAX).unwrap();
        assert_eq!(z.respond(&answer, UDP_MAX), None);
    }

    #[test]
    fn compression_pointers_only_go_back() {
        // A pointer to itself, and one forward: malformed, not a loop.
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(Message::parse(&m), None);
        m[13] = 14;
        assert_eq!(Message::parse(&m), None);
        assert_eq!(
            zone().respond(&m, UDP_MAX).map(|a| a[3] & 0xf),
            Some(rcode::FORMERR)
        );
        // Reserved label types.
        m[12] = 0x40;
        assert_eq!(Message::parse(&m), None);
    }

    #[test]
    fn tcp_framing() {
        let z = zone();
        let q = encode_query(0x0102, "web.default.svc.cluster.local", TYPE_A).unwrap();
        let mut request = Vec::new();
        for _ in 0..2 {
            request.extend_from_slice(&(q.len() as u16).to_be_bytes());
            request.extend_from_slice(&q);
        }
        request.push(0); // the start of a third length
        let mut pending = Vec::new();
        serve_tcp(&z, &mut request, &mut pending);
        assert_eq!(request, [0]);
        let one = z.respond(&q, TCP_MAX).unwrap();
        let mut want = Vec::new();
        for _ in 0..2 {
            want.extend_from_slice(&(one.len() as u16).to_be_bytes());
            want.extend_from_slice(&one);
        }
        assert_eq!(pending, want);
    }

    #[test]
    fn search_list_like_glibc_with_ndots_5() {
        let r = Resolve::cluster("web", Ipv4Address::new(10, 96, 0, 10), "default");
        assert_eq!(
            r.candidates(),
            [
                "web.default.svc.cluster.local",
                "web.svc.cluster.local",
                "web.cluster.local",
                "web"
            ]
        );
        let fqdn = Resolve {
            name: String::from("web.default.svc.cluster.local"),
            ..r.clone()
        };
        assert_eq!(
            fqdn.candidates()[0],
            "web.default.svc.cluster.local.default.svc.cluster.local"
        );
        assert_eq!(fqdn.candidates()[3], "web.default.svc.cluster.local");
        let abs = Resolve {
            name: String::from("web.default.svc.cluster.local."),
            ..r.clone()
        };
        assert_eq!(abs.candidates(), ["web.default.svc.cluster.local"]);
        let deep = Resolve {
            name: String::from("a.b.c.d.e.f"),
            ..r
        };
        assert_eq!(deep.candidates()[0], "a.b.c.d.e.f");
        assert_eq!(deep.candidates().len(), 4);
    }

    #[test]
    fn garbage_never_panics() {
        let z = zone();
        let mut rng = SimRng::derive(7, Stream::Node(0));
        let seeds = [
            encode_query(1, "web.default.svc.cluster.local", TYPE_A).unwrap(),
            z.respond(
                &encode_query(2, "db.prod.svc.cluster.local", TYPE_A).unwrap(),
                UDP_MAX,
            )
            .unwrap(),
        ];
        // Every truncation of valid messages.
        for s in &seeds {
            for n in 0..=s.len() {
                let _ = Message::parse(&s[..n]);
                let _ = z.respond(&s[..n], UDP_MAX);
                let mut req = s[..n].to_vec();
                let mut out = Vec::new();
                serve_tcp(&z, &mut req, &mut out);
            }
        }
        for round in 0..20_000u32 {
            let mut buf = if round % 2 == 0 {
                let len = rng.range_inclusive(0, 80) as usize;
                (0..len).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>()
            } else {
                seeds[(round as usize / 2) % 2].clone()
            };
            // Flip a few bytes.
            for _ in 0..rng.range_inclusive(0, 4) {
                if !buf.is_empty() {
                    let i = rng.range_inclusive(0, buf.len() as u32 - 1) as usize;
                    buf[i] = rng.next_u64() as u8;
                }
            }
            let _ = Message::parse(&buf);
            if let Some(a) = z.respond(&buf, UDP_MAX) {
                assert!(a.len() <= UDP_MAX);
                assert!(a.len() >= 12);
                assert!(Message::parse(&a).is_some(), "our answers always parse");
            }
            let mut req = buf.clone();
            let mut out = Vec::new();
            serve_tcp(&z, &mut req, &mut out);
        }
    }
}
