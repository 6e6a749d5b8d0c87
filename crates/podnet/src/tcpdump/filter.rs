//! The pcap-filter subset `podnet tcpdump` understands: `host`, `src`, `dst`, `net`, `port`
//! (each with an optional `src`/`dst` direction), the protocols `ip`, `tcp`, `udp`, `icmp`,
//! `arp`, combined with `and`/`&&`, `or`/`||`, `not`/`!` and parentheses, with pcap-filter's
//! precedence (`not` binds tightest; `and` and `or` have equal precedence and associate to the
//! left, as in libpcap). `host` matches IPv4 addresses and ARP sender/target addresses.
//!
//! ```
//! use podnet::tcpdump::filter::Filter;
//! let f = Filter::parse("host 10.96.0.10 and tcp port 80").unwrap();
//! assert!(!f.matches(&[]));
//! ```

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use smoltcp::wire::{
    ArpPacket, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet,
};

/// Which end of a packet a primitive looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Either end (the default).
    Any,
    /// The source.
    Src,
    /// The destination.
    Dst,
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Matches every frame (the empty expression).
    All,
    /// `[src|dst] host A`.
    Host(Dir, Ipv4Address),
    /// `[src|dst] net A/N`.
    Net(Dir, Ipv4Cidr),
    /// `[src|dst] port N` (TCP or UDP).
    Port(Dir, u16),
    /// `ip`, `tcp`, `udp`, `icmp`, `arp`.
    Proto(Proto),
    /// `not E`.
    Not(Box<Filter>),
    /// `E and E`.
    And(Box<Filter>, Box<Filter>),
    /// `E or E`.
    Or(Box<Filter>, Box<Filter>),
}

/// Protocol primitives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// IPv4.
    Ip,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// ARP.
    Arp,
}

/// A syntax error, with the position (in words) where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcpdump filter: {}", self.message)
    }
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' | ')' | '!' => {
                if !cur.is_empty() {
                    out.push(core::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(core::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
}

fn err<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        message: message.into(),
    })
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(|s| s.as_str())
    }

    fn next(&mut self) -> Option<String> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expr(&mut self) -> Result<Filter, ParseError> {
        let mut left = self.unary()?;
        loop {
            match self.peek() {
                Some("and" | "&&") => {
                    self.pos += 1;
                    left = Filter::And(Box::new(left), Box::new(self.unary()?));
                }
                Some("or" | "||") => {
                    self.pos += 1;
                    left = Filter::Or(Box::new(left), Box::new(self.unary()?));
                }
                _ => return Ok(left),
            }
        }
    }

    fn unary(&mut self) -> Result<Filter, ParseError> {
        match self.peek() {
            Some("not" | "!") => {
                self.pos += 1;
                Ok(Filter::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.pos += 1;
                let e = self.expr()?;
                match self.next().as_deref() {
                    Some(")") => Ok(e),
                    _ => err("missing ')'"),
                }
            }
            Some(_) => self.primitive(),
            None => err("expression ends where a primitive was expected"),
        }
    }

    fn primitive(&mut self) -> Result<Filter, ParseError> {
        let mut proto = None;
        if let Some(p) = self.peek().and_then(proto_of) {
            self.pos += 1;
            proto = Some(p);
            // `tcp`, or `tcp port 80` / `tcp src port 80`.
            if !matches!(self.peek(), Some("port" | "src" | "dst" | "host"))
                || p == Proto::Arp && self.peek() == Some("port")
            {
                return Ok(Filter::Proto(p));
            }
        }
        let mut dir = Dir::Any;
        match self.peek() {
            Some("src") => {
                dir = Dir::Src;
                self.pos += 1;
            }
            Some("dst") => {
                dir = Dir::Dst;
                self.pos += 1;
            }
            _ => {}
        }
        let kw = self.next().ok_or_else(|| ParseError {
            message: "expression ends after a qualifier".into(),
        })?;
        let prim = match kw.as_str() {
            "host" => Filter::Host(dir, self.addr()?),
            "net" => Filter::Net(dir, self.net()?),
            "port" => {
                let p = self.next().unwrap_or_default();
                Filter::Port(
                    dir,
                    p.parse().map_err(|_| ParseError {
                        message: alloc::format!("bad port '{p}'"),
                    })?,
                )
            }
            // `src 10.0.0.1` means `src host 10.0.0.1`.
            other if dir != Dir::Any && other.parse::<Ipv4Address>().is_ok() => {
                Filter::Host(dir, other.parse().unwrap_or(Ipv4Address::UNSPECIFIED))
            }
            other if dir == Dir::Any && other.parse::<Ipv4Address>().is_ok() => {
                Filter::Host(dir, other.parse().unwrap_or(Ipv4Address::UNSPECIFIED))
            }
            other => return err(alloc::format!("unknown primitive '{other}'")),
        };
        Ok(match proto {
            Some(p) => Filter::And(Box::new(Filter::Proto(p)), Box::new(prim)),
            None => prim,
        })
    }

    fn addr(&mut self) -> Result<Ipv4Address, ParseError> {
        let a = self.next().unwrap_or_default();
        a.parse().map_err(|_| ParseError {
            message: alloc::format!("bad IPv4 address '{a}'"),
        })
    }

    fn net(&mut self) -> Result<Ipv4Cidr, ParseError> {
        let s = self.next().unwrap_or_default();
        let (a, len) = s.split_once('/').unwrap_or((s.as_str(), "32"));
        match (a.parse::<Ipv4Address>(), len.parse::<u8>()) {
            (Ok(a), Ok(l)) if l <= 32 => Ok(Ipv4Cidr::new(a, l).network()),
            _ => err(alloc::format!("bad network '{s}'")),
        }
    }
}

fn proto_of(t: &str) -> Option<Proto> {
    match t {
        "ip" => Some(Proto::Ip),
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        "icmp" => Some(Proto::Icmp),
        "arp" => Some(Proto::Arp),
        _ => None,
    }
}

/// Source, destination, protocol and (TCP/UDP) ports of an IPv4 packet.
type Ipv4View = (Ipv4Address, Ipv4Address, u8, Option<(u16, u16)>);

/// What a frame offers to primitives.
struct View {
    ipv4: Option<Ipv4View>,
    arp: Option<(Ipv4Address, Ipv4Address)>,
}

fn view(frame: &[u8]) -> View {
    let mut v = View {
        ipv4: None,
        arp: None,
    };
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return v;
    };
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            if let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) {
                let p = ip.payload();
                let ports = match ip.next_header() {
                    IpProtocol::Tcp | IpProtocol::Udp if p.len() >= 4 => Some((
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    )),
                    _ => None,
                };
                v.ipv4 = Some((
                    ip.src_addr(),
                    ip.dst_addr(),
                    u8::from(ip.next_header()),
                    ports,
                ));
            }
        }
        EthernetProtocol::Arp => {
            if let Ok(a) = ArpPacket::new_checked(eth.payload()) {
                let sp = a.source_protocol_addr();
                let tp = a.target_protocol_addr();
                if sp.len() == 4 && tp.len() == 4 {
                    v.arp = Some((
                        Ipv4Address::new(sp[0], sp[1], sp[2], sp[3]),
                        Ipv4Address::new(tp[0], tp[1], tp[2], tp[3]),
                    ));
                }
            }
        }
        _ => {}
    }
    v
}

fn pick<T: PartialEq + Copy>(dir: Dir, src: T, dst: T, f: impl Fn(T) -> bool) -> bool {
    match dir {
        Dir::Any => f(src) || f(dst),
        Dir::Src => f(src),
        Dir::Dst => f(dst),
    }
}

impl Filter {
    /// Parses an expression; the empty string matches everything.
    pub fn parse(s: &str) -> Result<Filter, ParseError> {
        let toks = tokens(s);
        if toks.is_empty() {
            return Ok(Filter::All);
        }
        let mut p = Parser { toks, pos: 0 };
        let f = p.expr()?;
        match p.peek() {
            None => Ok(f),
            Some(t) => err(alloc::format!("unexpected '{t}'")),
        }
    }

    /// Whether an Ethernet frame matches.
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.eval(&view(frame))
    }

    fn eval(&self, v: &View) -> bool {
        match self {
            Filter::All => true,
            Filter::Not(e) => !e.eval(v),
            Filter::And(a, b) => a.eval(v) && b.eval(v),
            Filter::Or(a, b) => a.eval(v) || b.eval(v),
            Filter::Proto(p) => match p {
                Proto::Arp => v.arp.is_some(),
                Proto::Ip => v.ipv4.is_some(),
                Proto::Tcp => v.ipv4.is_some_and(|i| i.2 == 6),
                Proto::Udp => v.ipv4.is_some_and(|i| i.2 == 17),
                Proto::Icmp => v.ipv4.is_some_and(|i| i.2 == 1),
            },
            Filter::Host(d, a) => {
                v.ipv4.is_some_and(|(s, t, ..)| pick(*d, s, t, |x| x == *a))
                    || v.arp.is_some_and(|(s, t)| pick(*d, s, t, |x| x == *a))
            }
            Filter::Net(d, n) => {
                v.ipv4
                    .is_some_and(|(s, t, ..)| pick(*d, s, t, |x| n.contains_addr(&x)))
                    || v.arp
                        .is_some_and(|(s, t)| pick(*d, s, t, |x| n.contains_addr(&x)))
            }
            Filter::Port(d, p) => v
                .ipv4
                .is_some_and(|(.., ports)| ports.is_some_and(|(s, t)| pick(*d, s, t, |x| x == *p))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::tests::{tcp, udp};

    fn eth(ip: &[u8]) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 14];
        f[12] = 0x08;
        f.extend_from_slice(ip);
        f
    }

    const A: Ipv4Address = Ipv4Address::new(10, 244, 0, 5);
    const V: Ipv4Address = Ipv4Address::new(10, 96, 0, 10);

    #[test]
    fn primitives_and_combinations() {
        let syn = eth(&tcp(A, 40000, V, 80, "S", 1, 0, 0));
        let dns = eth(&udp(A, 5353, V, 53));
        let m = |e: &str, f: &[u8]| Filter::parse(e).unwrap().matches(f);
        assert!(m("", &syn));
        assert!(m("host 10.96.0.10 and port 80", &syn));
        assert!(m("tcp port 80", &syn) && !m("tcp port 80", &dns));
        assert!(m("src 10.244.0.5 and dst port 80", &syn));
        assert!(!m("dst host 10.244.0.5", &syn));
        assert!(m("net 10.96.0.0/12", &syn) && !m("src net 10.96.0.0/12", &syn));
        assert!(m("udp and not port 80", &dns));
        assert!(m("( tcp or udp ) and host 10.96.0.10", &dns));
        assert!(m("!tcp", &dns));
        assert!(!m("icmp or arp", &syn));
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        for bad in [
            "host",
            "port x",
            "net 10.0.0.0/40",
            "tcp and",
            "(tcp",
            "frobnicate",
            "host 1.2.3",
            "tcp )",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
