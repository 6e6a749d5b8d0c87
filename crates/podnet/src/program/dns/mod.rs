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

use crate::pod::Handle;
use smoltcp::socket::udp;
use smoltcp::time::Duration;
use smoltcp::wire::Ipv4Address;

use super::server::{Mode, TcpServer};
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
    udp: Handle,
    pub(crate) tcp: TcpServer,
    zone: Zone,
    /// UDP queries answered.
    pub answered: u64,
}

impl DnsServer {
    pub(crate) fn new(port: u16, records: &[(String, Ipv4Address)], env: &mut PodEnv<'_>) -> Self {
        let zone = Zone::new(records);
        let mut sock = env.pool.udp();
        let _ = sock.bind(port);
        let udp = env.sockets.add(sock);
        env.sockets.set_unconnected(udp);
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
        while sock.can_recv() && sock.can_send() {
            let Ok((query, meta)) = sock.recv() else {
                break;
            };
            let Some(answer) = self.zone.respond(query, UDP_MAX) else {
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

mod resolver;
pub(crate) use resolver::{Lookup, Resolved};
pub use resolver::{ResolvOptions, Resolve};

#[cfg(test)]
mod tests;
