//! The per-endpoint policy map (`cilium_policy_<endpoint>`), as `cilium bpf policy get` shows
//! it: entries keyed by (direction, peer identity, protocol, destination port) saying allow,
//! deny, or allow through the L7 proxy (a proxy port). Identity 0, protocol 0 and port 0 are
//! wildcards ("any").
//!
//! A lookup considers every entry covering the packet: a deny entry wins over every allow
//! (Cilium's deny precedence); else the most specific allow decides (identity before port
//! before protocol), which is what Cilium's lookup order (L3+L4, L4 only, L3 only, any) gives.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use litemap::LiteMap;

use super::identity::{Allocator, Identity};
use super::rules::HttpRule;

/// The proxy port of L7 rules at ingress (podnet's choice; Cilium allocates its own).
pub const PROXY_PORT_INGRESS: u16 = 10000;
/// The proxy port of L7 rules at egress.
pub const PROXY_PORT_EGRESS: u16 = 10001;

/// A policy map key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Egress (else ingress).
    pub egress: bool,
    /// The peer's identity (0: any).
    pub identity: Identity,
    /// IP protocol (0: any).
    pub proto: u8,
    /// Destination port (0: any).
    pub port: u16,
    /// Last port of a range (`endPort`), `port` otherwise.
    pub end_port: u16,
}

impl Key {
    fn covers(&self, identity: Identity, proto: u8, port: u16) -> bool {
        (self.identity == 0 || self.identity == identity)
            && (self.proto == 0 || self.proto == proto)
            && (self.port == 0 || (self.port..=self.end_port).contains(&port))
    }

    fn specificity(&self) -> (bool, bool, bool) {
        (self.identity != 0, self.port != 0, self.proto != 0)
    }

    /// `80/TCP`, `8000-8080/TCP`, `ANY`.
    pub fn port_text(&self) -> String {
        let proto = match self.proto {
            0 => "ANY",
            6 => "TCP",
            17 => "UDP",
            132 => "SCTP",
            1 => "ICMP",
            _ => "?",
        };
        match (self.port, self.proto) {
            (0, 0) => "ANY".into(),
            (0, _) => format!("ANY/{proto}"),
            (p, _) if self.end_port != p => format!("{p}-{}/{proto}", self.end_port),
            (p, _) => format!("{p}/{proto}"),
        }
    }
}

/// A policy map value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// A deny entry.
    pub deny: bool,
    /// L7 HTTP rules: the traffic is redirected to the proxy (`None`: not redirected).
    pub http: Option<Vec<HttpRule>>,
    /// An allow without L7 rules covers the same key too: the proxy allows every request.
    pub l7_allow_all: bool,
    /// The rules this entry comes from.
    pub sources: Vec<String>,
}

impl Entry {
    /// The proxy port of a redirecting entry.
    pub fn proxy_port(&self, egress: bool) -> Option<u16> {
        self.http.as_ref().map(|_| {
            if egress {
                PROXY_PORT_EGRESS
            } else {
                PROXY_PORT_INGRESS
            }
        })
    }
}

/// One endpoint's policy map, with whether each direction is enforced (default deny).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyMap {
    /// Entries.
    pub entries: LiteMap<Key, Entry>,
    /// Ingress is default deny.
    pub ingress_enforced: bool,
    /// Egress is default deny.
    pub egress_enforced: bool,
    /// The policies selecting the endpoint.
    pub selected_by: Vec<String>,
}

/// What a lookup found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    /// Every entry covering the packet.
    pub consulted: Vec<(Key, Entry)>,
    /// The entry that decided (a deny entry, or the most specific allow).
    pub decided: Option<(Key, Entry)>,
}

impl Lookup {
    /// A deny entry decided.
    pub fn denied(&self) -> bool {
        self.decided.as_ref().is_some_and(|(_, e)| e.deny)
    }

    /// An allow entry decided.
    pub fn allowed(&self) -> bool {
        self.decided.as_ref().is_some_and(|(_, e)| !e.deny)
    }
}

impl PolicyMap {
    /// Adds an allow (`http`: with L7 rules) or deny entry, merging with an existing one.
    pub fn add(&mut self, key: Key, deny: bool, http: Option<&[HttpRule]>, source: &str) {
        let e = self.entries.entry(key).or_default();
        if !e.sources.iter().any(|s| s == source) {
            e.sources.push(source.into());
        }
        if deny {
            e.deny = true;
            return;
        }
        match http {
            Some(rules) => e.http.get_or_insert_with(Vec::new).extend_from_slice(rules),
            None => e.l7_allow_all = true,
        }
    }

    /// Looks a packet up: peer `identity`, protocol, destination port, direction.
    pub fn lookup(&self, egress: bool, identity: Identity, proto: u8, port: u16) -> Lookup {
        let consulted: Vec<(Key, Entry)> = self
            .entries
            .iter()
            .filter(|(k, _)| k.egress == egress && k.covers(identity, proto, port))
            .map(|(k, e)| (*k, e.clone()))
            .collect();
        let decided = consulted
            .iter()
            .find(|(_, e)| e.deny)
            .or_else(|| consulted.iter().max_by_key(|(k, _)| k.specificity()))
            .cloned();
        Lookup { consulted, decided }
    }

    /// One entry in the columns of `cilium bpf policy get`: POLICY, DIRECTION, IDENTITY,
    /// LABELS, PORT/PROTO, PROXY PORT.
    pub fn line(key: &Key, e: &Entry, ids: &Allocator) -> String {
        format!(
            "{:<6} {:<8} {:<9} {:<58} {:<12} {}",
            if e.deny { "Deny" } else { "Allow" },
            if key.egress { "Egress" } else { "Ingress" },
            key.identity,
            ids.labels_text(key.identity),
            key.port_text(),
            e.proxy_port(key.egress)
                .map_or(String::from("NONE"), |p| format!("{p}"))
        )
    }

    /// The whole map, `cilium bpf policy get` style (header line first).
    pub fn render(&self, ids: &Allocator) -> String {
        let mut out = format!(
            "{:<6} {:<8} {:<9} {:<58} {:<12} {}\n",
            "POLICY", "DIR", "IDENTITY", "LABELS (source:key[=value])", "PORT/PROTO", "PROXY PORT"
        );
        for (k, e) in &self.entries {
            out.push_str(&Self::line(k, e, ids));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(egress: bool, identity: Identity, proto: u8, port: u16) -> Key {
        Key {
            egress,
            identity,
            proto,
            port,
            end_port: port,
        }
    }

    #[test]
    fn deny_wins_then_most_specific_allow() {
        let mut m = PolicyMap::default();
        m.add(key(false, 0, 6, 80), false, None, "l4");
        m.add(key(false, 256, 0, 0), false, None, "l3");
        assert_eq!(
            m.lookup(false, 256, 6, 80).decided.unwrap().0,
            key(false, 256, 0, 0)
        );
        assert_eq!(
            m.lookup(false, 257, 6, 80).decided.unwrap().0,
            key(false, 0, 6, 80)
        );
        assert!(m.lookup(false, 257, 6, 81).decided.is_none());
        assert!(m.lookup(true, 256, 6, 80).decided.is_none());
        m.add(key(false, 256, 6, 80), true, None, "deny");
        let l = m.lookup(false, 256, 6, 80);
        assert!(l.denied());
        assert_eq!(l.consulted.len(), 3);
        assert!(m.lookup(false, 256, 6, 81).allowed());
    }

    #[test]
    fn l7_entries_merge() {
        let mut m = PolicyMap::default();
        let r = HttpRule {
            method: Some("GET".into()),
            ..HttpRule::default()
        };
        m.add(
            key(false, 256, 6, 80),
            false,
            Some(core::slice::from_ref(&r)),
            "a",
        );
        let e = &m.entries[&key(false, 256, 6, 80)];
        assert_eq!(e.proxy_port(false), Some(PROXY_PORT_INGRESS));
        assert!(!e.l7_allow_all);
        m.add(key(false, 256, 6, 80), false, None, "b");
        let e = &m.entries[&key(false, 256, 6, 80)];
        assert!(e.l7_allow_all && e.http.is_some());
        assert_eq!(key(false, 0, 6, 0).port_text(), "ANY/TCP");
        assert_eq!(key(false, 0, 0, 0).port_text(), "ANY");
    }
}
