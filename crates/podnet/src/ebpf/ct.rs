//! A connection's entry in the CT maps: what Cilium's `struct ct_entry` records (lifetime,
//! packet and byte counters, closing flags, the reverse-NAT frontend), how a packet refreshes
//! it, and its line in `cilium bpf ct list global`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::Ipv4Address;

use super::config::timeouts;
use crate::conntrack::{proto, Tuple};

/// One connection's CT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtEntry {
    /// When it was created.
    pub created: Instant,
    /// When it expires unless a packet refreshes it.
    pub expires: Instant,
    /// Service entry: the backend (address, port) the frontend tuple is sent to.
    pub backend: Option<(Ipv4Address, u16)>,
    /// Replies get this source (the Service frontend: ClusterIP:port or node:nodePort).
    pub rev_nat: Option<(Ipv4Address, u16)>,
    /// Hairpin: the client's own address, which the source was replaced by
    /// [`HAIRPIN_SOURCE`](super::HAIRPIN_SOURCE) (replies get it back as their destination).
    pub hairpin_client: Option<Ipv4Address>,
    /// NodePort to a backend on another node in SNAT mode: the source is masqueraded at
    /// `to-netdev`.
    pub nodeport_snat: bool,
    /// NodePort in DSR mode: the Service frontend to put in the IPv4 option.
    pub dsr_option: Option<(Ipv4Address, u16)>,
    /// Packets and bytes, original direction.
    pub tx: (u64, u64),
    /// Packets and bytes, reply direction.
    pub rx: (u64, u64),
    /// A reply was seen.
    pub seen_reply: bool,
    /// FIN or RST seen from the original side.
    pub tx_closing: bool,
    /// FIN or RST seen from the reply side.
    pub rx_closing: bool,
    /// Index of its `[NEW]` event in the dataplane's log.
    pub event: Option<u32>,
    /// L7 policy: packets of the original direction go to the node's proxy (the client's
    /// connection, which the proxy terminates).
    pub proxy_redirect: bool,
    /// The proxy's own connection to the backend: replies go to the proxy.
    pub proxy_upstream: bool,
    /// The source's security identity (Cilium policies only).
    pub src_sec_id: Option<u32>,
}

impl CtEntry {
    pub(crate) fn new(now: Instant, proto: u8) -> Self {
        let life = if proto == proto::TCP {
            timeouts::TCP_SYN
        } else {
            timeouts::ANY
        };
        CtEntry {
            created: now,
            expires: now + Duration::from_secs(life),
            backend: None,
            rev_nat: None,
            hairpin_client: None,
            nodeport_snat: false,
            dsr_option: None,
            tx: (0, 0),
            rx: (0, 0),
            seen_reply: false,
            tx_closing: false,
            rx_closing: false,
            event: None,
            proxy_redirect: false,
            proxy_upstream: false,
            src_sec_id: None,
        }
    }

    /// Counts a packet and refreshes the lifetime as Cilium's `ct_update_timeout`.
    pub(crate) fn account(&mut self, now: Instant, proto: u8, reply: bool, len: usize, flags: u8) {
        let c = if reply { &mut self.rx } else { &mut self.tx };
        c.0 += 1;
        c.1 += len as u64;
        if reply {
            self.seen_reply = true;
        }
        let life = if proto == proto::TCP {
            let (fin, rst, syn) = (flags & 0x01 != 0, flags & 0x04 != 0, flags & 0x02 != 0);
            if rst {
                self.tx_closing = true;
                self.rx_closing = true;
            } else if fin {
                if reply {
                    self.rx_closing = true;
                } else {
                    self.tx_closing = true;
                }
            } else if syn && !reply && (self.tx_closing || self.rx_closing) {
                // A new SYN on a closing entry reopens it.
                self.tx_closing = false;
                self.rx_closing = false;
                self.seen_reply = false;
            }
            if self.tx_closing && self.rx_closing {
                timeouts::TCP_FIN
            } else if self.seen_reply {
                timeouts::TCP
            } else {
                timeouts::TCP_SYN
            }
        } else {
            timeouts::ANY
        };
        self.expires = now + Duration::from_secs(life);
    }
}

/// `TCP OUT 10.244.0.5:60916 -> 10.244.1.20:80 expires=59 TxPackets=1 ...`.
pub(crate) fn format_entry(t: &Tuple, e: &CtEntry, now: Instant) -> String {
    let proto = match t.proto {
        proto::TCP => "TCP",
        proto::UDP => "UDP",
        proto::ICMP => "ICMP",
        _ => "ANY",
    };
    let left = if e.expires > now {
        (e.expires - now).secs()
    } else {
        0
    };
    let mut flags: Vec<&str> = Vec::new();
    if e.rx_closing {
        flags.push("RxClosing");
    }
    if e.tx_closing {
        flags.push("TxClosing");
    }
    if e.seen_reply {
        flags.push("SeenReply");
    }
    if e.backend.is_some() {
        flags.push("Service");
    }
    if e.nodeport_snat {
        flags.push("NodePort");
    }
    if e.proxy_redirect {
        flags.push("ProxyRedirect");
    }
    if e.proxy_upstream {
        flags.push("FromProxy");
    }
    let mut s = format!(
        "{proto} OUT {} -> {} expires={left} TxPackets={} TxBytes={} RxPackets={} RxBytes={} Flags=[{}]",
        ep(t.src, t.sport),
        ep(t.dst, t.dport),
        e.tx.0,
        e.tx.1,
        e.rx.0,
        e.rx.1,
        flags.join(" ")
    );
    if let Some((a, p)) = e.backend {
        s.push_str(&format!(" Backend={}", ep(a, p)));
    }
    if let Some((a, p)) = e.rev_nat {
        s.push_str(&format!(" RevNAT={}", ep(a, p)));
    }
    if let Some(c) = e.hairpin_client {
        s.push_str(&format!(" Loopback={c}"));
    }
    if let Some((a, p)) = e.dsr_option {
        s.push_str(&format!(" DSR={}", ep(a, p)));
    }
    if let Some(id) = e.src_sec_id {
        s.push_str(&format!(" SourceSecurityID={id}"));
    }
    s
}

fn ep(a: Ipv4Address, p: u16) -> String {
    format!("{a}:{p}")
}
