//! A transparent stack, as the node's L7 proxy has (Cilium's Envoy with TPROXY and
//! `IP_TRANSPARENT` sockets): it accepts packets for any address, sends from any address,
//! reaches everything through its gateway, and answers ARP for its own addresses only.

use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;

use super::Pod;
use crate::program::App;

impl Pod {
    /// A transparent stack (the node's L7 proxy) answers ARP for its own address only.
    pub(super) fn own_arp(&self, frame: &[u8]) -> bool {
        let eth = smoltcp::wire::EthernetFrame::new_unchecked(frame);
        if frame.len() < 14 || eth.ethertype() != smoltcp::wire::EthernetProtocol::Arp {
            return true;
        }
        smoltcp::wire::ArpPacket::new_checked(eth.payload()).is_ok_and(|a| {
            self.iface
                .ip_addrs()
                .iter()
                .any(|c| a.target_protocol_addr() == crate::v4(c.address()).octets())
        })
    }

    /// Makes the stack transparent, as the node's L7 proxy is: it accepts packets for any
    /// address (smoltcp's AnyIP, what `IP_TRANSPARENT` sockets get from TPROXY), may send from
    /// any address, and reaches everything through its gateway: its address becomes a /32, and
    /// the gateway is on-link through a second address, the /31 of the pod CIDR's network
    /// address (which no pod has).
    pub fn make_transparent(&mut self) {
        self.iface.set_any_ip(true);
        let ip = self.addrs.ip.address();
        let gw = self.addrs.gateway;
        let link = smoltcp::wire::Ipv4Cidr::new(Ipv4Address::from(u32::from(gw) & !1), 31);
        self.addrs.ip = smoltcp::wire::IpCidr::new(ip, 32);
        let cidr = self.addrs.ip;
        self.iface.update_ip_addrs(|a| {
            a.clear();
            let _ = a.push(cidr);
            let _ = a.push(smoltcp::wire::IpCidr::Ipv4(link));
        });
    }

    /// Gives the L7 proxy program of this pod the policies of node `node`.
    pub fn set_l7_world(&mut self, now: Instant, node: u32, world: Option<crate::policy::World>) {
        let mut apps = core::mem::take(&mut self.apps);
        {
            let mut env = self.env(now, None);
            for app in apps.iter_mut() {
                if let App::L7Proxy(p) = app {
                    p.set_world(node, world.clone(), &mut env);
                }
            }
        }
        self.apps = apps;
    }

    /// The access log of the L7 proxy program of this pod (empty for other pods).
    pub fn l7_access_log(&self) -> &[crate::program::l7proxy::AccessLog] {
        self.apps
            .iter()
            .find_map(|a| match a {
                App::L7Proxy(p) => Some(p.access_log()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}
