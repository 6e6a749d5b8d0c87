//! Which socket takes a frame: smoltcp's own choice (the first socket in handle order that
//! accepts it), found through the indexes by key instead of a look at each socket.

use smoltcp::iface::Interface;
use smoltcp::socket::Socket;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

use super::*;

impl Sockets {
    /// Brings `index` up to date with the sockets that may have changed.
    #[inline]
    pub(super) fn refresh(&mut self) {
        if self.ix.as_ref().is_some_and(|ix| !ix.stale.is_empty()) {
            self.refresh_stale();
        }
    }

    fn refresh_stale(&mut self) {
        let Some(ix) = &mut self.ix else {
            return;
        };
        let stale = core::mem::take(&mut ix.stale);
        for &i in &stale {
            let Some(Some(s)) = self.slots.get_mut(i as usize) else {
                continue;
            };
            if !s.stale {
                continue;
            }
            s.stale = false;
            let key = Key::of(s.set.get::<Socket<'static>>(s.inner));
            if key != s.key {
                let old = core::mem::replace(&mut s.key, key);
                ix.remove(old, i);
                ix.insert(key, i);
            }
        }
        ix.stale = stale;
        ix.stale.clear();
    }

    /// Starts keeping the indexes: every socket in them.
    pub(super) fn build_index(&mut self) {
        let mut ix = alloc::boxed::Box::<Index>::default();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(s) = s else {
                continue;
            };
            s.stale = false;
            s.key = Key::of(s.set.get::<Socket<'static>>(s.inner));
            ix.insert(s.key, i as u32);
            if let Some(at) = s.at {
                ix.timers.insert(time_key(at), i as u32);
            }
        }
        self.ix = Some(ix);
    }

    /// The first socket, in handle order, that `takes` the frame, by a look at each (as
    /// smoltcp's `process_tcp` and `process_udp` do).
    fn position(&self, mut takes: impl FnMut(&Socket<'static>) -> bool) -> Option<u32> {
        self.slots.iter().enumerate().find_map(|(i, s)| {
            let s = s.as_ref()?;
            takes(s.set.get::<Socket<'static>>(s.inner)).then_some(i as u32)
        })
    }

    /// The first socket, in handle order, under `key` that `takes` the frame.
    fn first(&self, key: Key, mut takes: impl FnMut(&Socket<'static>) -> bool) -> Option<u32> {
        let Some(ix) = &self.ix else {
            return self.position(takes);
        };
        let (udp, k) = key.packed()?;
        let index = if udp { &ix.udp } else { &ix.tcp };
        index.with(k).find(|&i| {
            self.slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| takes(s.set.get::<Socket<'static>>(s.inner)))
        })
    }

    /// The slot whose socket takes `frame`, as smoltcp's `process_tcp` and `process_udp` pick
    /// it (the first in order that `accepts` it); notes an ARP frame.
    pub(super) fn taker(&mut self, iface: &Interface, frame: &[u8]) -> Option<u32> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        match eth.ethertype() {
            EthernetProtocol::Ipv4 => {}
            EthernetProtocol::Arp => {
                self.everything = true;
                return None;
            }
            _ => return None,
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        self.refresh();
        match ip.next_header() {
            IpProtocol::Tcp => {
                let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
                // smoltcp's `TcpControl::Rst` (other flag mixes with RST do not parse).
                let rst = tcp.rst() && !tcp.syn() && !tcp.fin();
                let (sport, dport, ack) = (tcp.src_port(), tcp.dst_port(), tcp.ack());
                let takes = |s: &Socket<'static>| match s {
                    Socket::Tcp(s) => tcp_accepts(s, (src, sport), (dst, dport), ack, rst),
                    _ => false,
                };
                if self.ix.is_none() {
                    return self.position(takes);
                }
                // Every socket that can take it is under one of these two keys.
                let connected = Key::Tcp {
                    raddr: src.to_bits(),
                    rport: sport,
                    lport: dport,
                    laddr: dst.to_bits(),
                };
                let a = self.first(connected, takes);
                let b = self.first(Key::TcpListen(dport), takes);
                a.into_iter().chain(b).min()
            }
            IpProtocol::Udp => {
                let udp = UdpPacket::new_checked(ip.payload()).ok()?;
                let dport = udp.dst_port();
                let broadcast = dst.is_broadcast()
                    || iface.ip_addrs().iter().any(|c| match c {
                        smoltcp::wire::IpCidr::Ipv4(c) => c.broadcast() == Some(dst),
                        smoltcp::wire::IpCidr::Ipv6(_) => false,
                    });
                self.first(Key::Udp(dport), |s| match s {
                    Socket::Udp(s) => udp_accepts(s, dst, dport, broadcast),
                    _ => false,
                })
            }
            _ => None,
        }
    }
}
