//! What a [`Formatter`] remembers of a frame without printing it: the TCP initial sequence
//! numbers its later lines are relative to. A tail of a long capture (the playground's last
//! few hundred lines) then formats only the tail: the frames before it are learnt.
//!
//! This walks the frame as the line does (Ethernet, IPv4 with tcpdump's reading of a datagram
//! longer than the capture, unfragmented TCP, and UDP into OTV and VXLAN up to the same depth);
//! a test checks that the lines after learning are those after formatting, frame for frame.

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

use super::{be16, Formatter, MAX_ENCAP_DEPTH, OTV_PORT, VXLAN_PORT};

impl Formatter {
    /// Takes in `frame` as [`Formatter::line`] would, without building its line: the lines of
    /// the frames after it come out the same.
    pub fn learn(&mut self, frame: &[u8]) {
        self.learn_ether(frame, 0);
    }

    fn learn_ether(&mut self, frame: &[u8], depth: u8) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        if eth.ethertype() == EthernetProtocol::Ipv4 {
            self.learn_ipv4(eth.payload(), depth);
        }
    }

    fn learn_ipv4(&mut self, data: &[u8], depth: u8) {
        if data.first().map(|b| b >> 4) != Some(4) {
            return;
        }
        if let Ok(ip) = Ipv4Packet::new_checked(data) {
            return self.learn_ipv4_body(&ip, depth);
        }
        // A datagram longer than the captured bytes: the line decodes what is there.
        let (Some(vhl), Some(total), true) = (data.first(), be16(data, 2), data.len() >= 20) else {
            return;
        };
        let (hlen, total) = (usize::from(vhl & 0x0f) * 4, usize::from(total));
        if hlen < 20 || total < hlen {
            return;
        }
        let mut copy = data.to_vec();
        let Ok(len) = u16::try_from(copy.len()) else {
            return;
        };
        Ipv4Packet::new_unchecked(&mut copy[..]).set_total_len(len);
        if let Ok(ip) = Ipv4Packet::new_checked(&copy[..]) {
            self.learn_ipv4_body(&ip, depth);
        }
    }

    fn learn_ipv4_body(&mut self, ip: &Ipv4Packet<&[u8]>, depth: u8) {
        if ip.frag_offset() != 0 {
            return;
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        match ip.next_header() {
            IpProtocol::Tcp => {
                if let Ok(tcp) = TcpPacket::new_checked(ip.payload()) {
                    self.relative(((src, tcp.src_port()), (dst, tcp.dst_port())), &tcp);
                }
            }
            IpProtocol::Udp => {
                let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
                    return;
                };
                let (sport, dport) = (udp.src_port(), udp.dst_port());
                let encap = [OTV_PORT, VXLAN_PORT]
                    .iter()
                    .any(|&p| sport == p || dport == p);
                // OTV's and VXLAN's headers are 8 bytes; the inner frame follows.
                if let (true, Some(inner)) = (encap, udp.payload().get(8..)) {
                    if depth < MAX_ENCAP_DEPTH {
                        self.learn_ether(inner, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}
