//! Golden renderings of a small cluster: one Service with 3 endpoints, one without endpoints,
//! a NodePort with externalTrafficPolicy Local and one with session affinity.

extern crate std;

use smoltcp::wire::Ipv4Cidr;

use super::tests::{config, ip, small_cluster};
use super::*;

fn iptables_node() -> KubeProxy {
    let mut kp = KubeProxy::new(config(Mode::Iptables), small_cluster());
    kp.set_node_pod_cidr(Some(Ipv4Cidr::new(ip(10, 244, 1, 0), 24)));
    kp
}

fn nftables_node() -> KubeProxy {
    let mut kp = KubeProxy::new(config(Mode::Nftables), small_cluster());
    kp.set_service_cidr(Some(Ipv4Cidr::new(ip(10, 96, 0, 0), 12)));
    kp
}

/// `iptables-save` on node-a (kube-proxy's tables plus flannel's masquerade chain).
const IPTABLES_SAVE: &str = r#"*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/empty has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FLANNEL-POSTRTG - [0:0]
:KUBE-EXT-QUMPV5Z3SF2IMFUJ - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-SEP-3OLK2YUW6LHBC4UX - [0:0]
:KUBE-SEP-AFGSLHOD2HFNCBX4 - [0:0]
:KUBE-SEP-AUOS3UTQC2EQKWJ4 - [0:0]
:KUBE-SEP-DXFPG46MA7OGJNNB - [0:0]
:KUBE-SEP-GWQABTP5GBYXHJY5 - [0:0]
:KUBE-SEP-HYNUWRIEHJNEW6ZI - [0:0]
:KUBE-SEP-IECWYB4QVMDKRT3A - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-BJWR5DPVIKTHVKZU - [0:0]
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SVC-QUMPV5Z3SF2IMFUJ - [0:0]
:KUBE-SVL-QUMPV5Z3SF2IMFUJ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
-A KUBE-EXT-QUMPV5Z3SF2IMFUJ -s 10.244.0.0/16 -m comment --comment "pod traffic for default/np:http external destinations" -j KUBE-SVC-QUMPV5Z3SF2IMFUJ
-A KUBE-EXT-QUMPV5Z3SF2IMFUJ -m comment --comment "masquerade LOCAL traffic for default/np:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-QUMPV5Z3SF2IMFUJ -m comment --comment "route LOCAL traffic for default/np:http external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-QUMPV5Z3SF2IMFUJ
-A KUBE-EXT-QUMPV5Z3SF2IMFUJ -j KUBE-SVL-QUMPV5Z3SF2IMFUJ
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/np:http" -m tcp --dport 30080 -j KUBE-EXT-QUMPV5Z3SF2IMFUJ
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-3OLK2YUW6LHBC4UX -s 10.244.2.6/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-3OLK2YUW6LHBC4UX -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.2.6:8080
-A KUBE-SEP-AFGSLHOD2HFNCBX4 -s 10.244.1.5/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-AFGSLHOD2HFNCBX4 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SEP-AUOS3UTQC2EQKWJ4 -s 10.244.2.8/32 -m comment --comment "default/np:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-AUOS3UTQC2EQKWJ4 -p tcp -m comment --comment "default/np:http" -m tcp -j DNAT --to-destination 10.244.2.8:8080
-A KUBE-SEP-DXFPG46MA7OGJNNB -s 10.244.1.9/32 -m comment --comment "default/sticky" -j KUBE-MARK-MASQ
-A KUBE-SEP-DXFPG46MA7OGJNNB -p tcp -m comment --comment "default/sticky" -m recent --set --name KUBE-SEP-DXFPG46MA7OGJNNB --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.9:9090
-A KUBE-SEP-GWQABTP5GBYXHJY5 -s 10.244.1.10/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-GWQABTP5GBYXHJY5 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.10:8080
-A KUBE-SEP-HYNUWRIEHJNEW6ZI -s 10.244.1.7/32 -m comment --comment "default/np:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-HYNUWRIEHJNEW6ZI -p tcp -m comment --comment "default/np:http" -m tcp -j DNAT --to-destination 10.244.1.7:8080
-A KUBE-SEP-IECWYB4QVMDKRT3A -s 10.244.2.9/32 -m comment --comment "default/sticky" -j KUBE-MARK-MASQ
-A KUBE-SEP-IECWYB4QVMDKRT3A -p tcp -m comment --comment "default/sticky" -m recent --set --name KUBE-SEP-IECWYB4QVMDKRT3A --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.2.9:9090
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-SERVICES -d 10.96.0.30/32 -p tcp -m comment --comment "default/np:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-QUMPV5Z3SF2IMFUJ
-A KUBE-SERVICES -d 10.96.0.40/32 -p tcp -m comment --comment "default/sticky cluster IP" -m tcp --dport 80 -j KUBE-SVC-BJWR5DPVIKTHVKZU
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-BJWR5DPVIKTHVKZU ! -s 10.244.0.0/16 -d 10.96.0.40/32 -p tcp -m comment --comment "default/sticky cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.1.9:9090" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-DXFPG46MA7OGJNNB --mask 255.255.255.255 --rsource -j KUBE-SEP-DXFPG46MA7OGJNNB
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.2.9:9090" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-IECWYB4QVMDKRT3A --mask 255.255.255.255 --rsource -j KUBE-SEP-IECWYB4QVMDKRT3A
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.1.9:9090" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-DXFPG46MA7OGJNNB
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.2.9:9090" -j KUBE-SEP-IECWYB4QVMDKRT3A
-A KUBE-SVC-CDGGSHYLG3RE2FKL ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.10:8080" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-GWQABTP5GBYXHJY5
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.5:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-AFGSLHOD2HFNCBX4
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.2.6:8080" -j KUBE-SEP-3OLK2YUW6LHBC4UX
-A KUBE-SVC-QUMPV5Z3SF2IMFUJ ! -s 10.244.0.0/16 -d 10.96.0.30/32 -p tcp -m comment --comment "default/np:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-QUMPV5Z3SF2IMFUJ -m comment --comment "default/np:http -> 10.244.1.7:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-HYNUWRIEHJNEW6ZI
-A KUBE-SVC-QUMPV5Z3SF2IMFUJ -m comment --comment "default/np:http -> 10.244.2.8:8080" -j KUBE-SEP-AUOS3UTQC2EQKWJ4
-A KUBE-SVL-QUMPV5Z3SF2IMFUJ -m comment --comment "default/np:http -> 10.244.1.7:8080" -j KUBE-SEP-HYNUWRIEHJNEW6ZI
COMMIT
"#;

/// What kube-proxy hands to `iptables-restore` for the same node.
const IPTABLES_RESTORE: &str = r#"*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-SERVICES -m comment --comment "default/empty has no endpoints" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j REJECT
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SEP-GWQABTP5GBYXHJY5 - [0:0]
:KUBE-SEP-AFGSLHOD2HFNCBX4 - [0:0]
:KUBE-SEP-3OLK2YUW6LHBC4UX - [0:0]
:KUBE-EXT-QUMPV5Z3SF2IMFUJ - [0:0]
:KUBE-SVC-QUMPV5Z3SF2IMFUJ - [0:0]
:KUBE-SVL-QUMPV5Z3SF2IMFUJ - [0:0]
:KUBE-SEP-HYNUWRIEHJNEW6ZI - [0:0]
:KUBE-SEP-AUOS3UTQC2EQKWJ4 - [0:0]
:KUBE-SVC-BJWR5DPVIKTHVKZU - [0:0]
:KUBE-SEP-DXFPG46MA7OGJNNB - [0:0]
:KUBE-SEP-IECWYB4QVMDKRT3A - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.10:8080" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-GWQABTP5GBYXHJY5
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.5:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-AFGSLHOD2HFNCBX4
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.2.6:8080" -j KUBE-SEP-3OLK2YUW6LHBC4UX
-A KUBE-SEP-GWQABTP5GBYXHJY5 -m comment --comment default/web:http -s 10.244.1.10 -j KUBE-MARK-MASQ
-A KUBE-SEP-GWQABTP5GBYXHJY5 -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.10:8080
-A KUBE-SEP-AFGSLHOD2HFNCBX4 -m comment --comment default/web:http -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-AFGSLHOD2HFNCBX4 -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SEP-3OLK2YUW6LHBC4UX -m comment --comment default/web:http -s 10.244.2.6 -j KUBE-MARK-MASQ
-A KUBE-SEP-3OLK2YUW6LHBC4UX -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.244.2.6:8080
-A KUBE-SERVICES -m comment --comment "default/np:http cluster IP" -m tcp -p tcp -d 10.96.0.30 --dport 80 -j KUBE-SVC-QUMPV5Z3SF2IMFUJ
-A KUBE-NODEPORTS -m comment --comment default/np:http -m tcp -p tcp --dport 30080 -j KUBE-EXT-QUMPV5Z3SF2IMFUJ
-A KUBE-SVC-QUMPV5Z3SF2IMFUJ -m comment --comment "default/np:http cluster IP" -m tcp -p tcp -d 10.96.0.30 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-EXT-QUMPV5Z3SF2IMFUJ -m comment --comment "pod traffic for default/np:http external destinations" -s 10.244.0.0/16 -j KUBE-SVC-QUMPV5Z3SF2IMFUJ
-A KUBE-EXT-QUMPV5Z3SF2IMFUJ -m comment --comment "masquerade LOCAL traffic for default/np:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-QUMPV5Z3SF2IMFUJ -m comment --comment "route LOCAL traffic for default/np:http external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-QUMPV5Z3SF2IMFUJ
-A KUBE-EXT-QUMPV5Z3SF2IMFUJ -j KUBE-SVL-QUMPV5Z3SF2IMFUJ
-A KUBE-SVC-QUMPV5Z3SF2IMFUJ -m comment --comment "default/np:http -> 10.244.1.7:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-HYNUWRIEHJNEW6ZI
-A KUBE-SVC-QUMPV5Z3SF2IMFUJ -m comment --comment "default/np:http -> 10.244.2.8:8080" -j KUBE-SEP-AUOS3UTQC2EQKWJ4
-A KUBE-SVL-QUMPV5Z3SF2IMFUJ -m comment --comment "default/np:http -> 10.244.1.7:8080" -j KUBE-SEP-HYNUWRIEHJNEW6ZI
-A KUBE-SEP-HYNUWRIEHJNEW6ZI -m comment --comment default/np:http -s 10.244.1.7 -j KUBE-MARK-MASQ
-A KUBE-SEP-HYNUWRIEHJNEW6ZI -m comment --comment default/np:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.7:8080
-A KUBE-SEP-AUOS3UTQC2EQKWJ4 -m comment --comment default/np:http -s 10.244.2.8 -j KUBE-MARK-MASQ
-A KUBE-SEP-AUOS3UTQC2EQKWJ4 -m comment --comment default/np:http -m tcp -p tcp -j DNAT --to-destination 10.244.2.8:8080
-A KUBE-SERVICES -m comment --comment "default/sticky cluster IP" -m tcp -p tcp -d 10.96.0.40 --dport 80 -j KUBE-SVC-BJWR5DPVIKTHVKZU
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky cluster IP" -m tcp -p tcp -d 10.96.0.40 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.1.9:9090" -m recent --name KUBE-SEP-DXFPG46MA7OGJNNB --rcheck --seconds 10800 --reap -j KUBE-SEP-DXFPG46MA7OGJNNB
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.2.9:9090" -m recent --name KUBE-SEP-IECWYB4QVMDKRT3A --rcheck --seconds 10800 --reap -j KUBE-SEP-IECWYB4QVMDKRT3A
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.1.9:9090" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-DXFPG46MA7OGJNNB
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.2.9:9090" -j KUBE-SEP-IECWYB4QVMDKRT3A
-A KUBE-SEP-DXFPG46MA7OGJNNB -m comment --comment default/sticky -s 10.244.1.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-DXFPG46MA7OGJNNB -m comment --comment default/sticky -m recent --name KUBE-SEP-DXFPG46MA7OGJNNB --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.9:9090
-A KUBE-SEP-IECWYB4QVMDKRT3A -m comment --comment default/sticky -s 10.244.2.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-IECWYB4QVMDKRT3A -m comment --comment default/sticky -m recent --name KUBE-SEP-IECWYB4QVMDKRT3A --set -m tcp -p tcp -j DNAT --to-destination 10.244.2.9:9090
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
"#;

/// `nft list table ip kube-proxy` on node-a.
const NFT_LIST: &str = r#"table ip kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips {
		type ipv4_addr
		comment "Active ClusterIPs"
		elements = { 10.96.0.10, 10.96.0.20,
			     10.96.0.30, 10.96.0.40 }
	}

	set nodeport-ips {
		type ipv4_addr
		comment "IPs that accept NodePort traffic"
		elements = { 192.168.0.2 }
	}

	map no-endpoint-services {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to services with no endpoints"
		elements = { 10.96.0.20 . tcp . 80 comment "default/empty" : goto reject-chain }
	}

	map no-endpoint-nodeports {
		type inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to service nodeports with no endpoints"
	}

	map firewall-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "destinations that are subject to LoadBalancerSourceRanges"
	}

	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = { 10.96.0.10 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http,
			     10.96.0.30 . tcp . 80 : goto service-ASNVMIOD-default/np/tcp/http,
			     10.96.0.40 . tcp . 80 : goto service-EDE2N7RF-default/sticky/tcp/ }
	}

	map service-nodeports {
		type inet_proto . inet_service : verdict
		comment "NodePort traffic"
		elements = { tcp . 30080 : goto external-ASNVMIOD-default/np/tcp/http }
	}

	set affinity-V5TKWTJA-default/sticky/tcp/__10.244.1.9/9090 {
		type ipv4_addr
		flags dynamic,timeout
		timeout 3h
	}

	set affinity-4R55MYV2-default/sticky/tcp/__10.244.2.9/9090 {
		type ipv4_addr
		flags dynamic,timeout
		timeout 3h
	}

	chain filter-prerouting {
		type filter hook prerouting priority dstnat - 10; policy accept;
		ct state new jump firewall-check
	}

	chain filter-input {
		type filter hook input priority -110; policy accept;
		ct state new jump nodeport-endpoints-check
		ct state new jump service-endpoints-check
	}

	chain filter-forward {
		type filter hook forward priority -110; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump cluster-ips-check
	}

	chain filter-output {
		type filter hook output priority dstnat - 10; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump firewall-check
	}

	chain filter-output-post-dnat {
		type filter hook output priority dstnat + 10; policy accept;
		ct state new jump cluster-ips-check
	}

	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}

	chain nat-output {
		type nat hook output priority dstnat; policy accept;
		jump services
	}

	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}

	chain nodeport-endpoints-check {
		ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
	}

	chain service-endpoints-check {
		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
	}

	chain firewall-check {
		ip daddr . meta l4proto . th dport vmap @firewall-ips
	}

	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
		ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
	}

	chain masquerading {
		meta mark & 0x00004000 == 0x00000000 return
		meta mark set meta mark ^ 0x00004000
		masquerade fully-random
	}

	chain cluster-ips-check {
		ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
		ip daddr 10.96.0.0/12 drop comment "Drop traffic to unallocated ClusterIPs"
	}

	chain mark-for-masquerade {
		meta mark set meta mark | 0x00004000
	}

	chain reject-chain {
		comment "helper for @no-endpoint-services / @no-endpoint-nodeports"
		reject
	}

	chain endpoint-FLXOMXXM-default/web/tcp/http__10.244.1.10/8080 {
		ip saddr 10.244.1.10 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.1.10:8080
	}

	chain endpoint-HGNPOIJ5-default/web/tcp/http__10.244.1.5/8080 {
		ip saddr 10.244.1.5 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.1.5:8080
	}

	chain endpoint-LRPR4IZA-default/web/tcp/http__10.244.2.6/8080 {
		ip saddr 10.244.2.6 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.2.6:8080
	}

	chain service-SUSTUHLJ-default/web/tcp/http {
		ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 3 vmap { 0 : goto endpoint-FLXOMXXM-default/web/tcp/http__10.244.1.10/8080, 1 : goto endpoint-HGNPOIJ5-default/web/tcp/http__10.244.1.5/8080, 2 : goto endpoint-LRPR4IZA-default/web/tcp/http__10.244.2.6/8080 }
	}

	chain endpoint-I5B7ZJP4-default/np/tcp/http__10.244.1.7/8080 {
		ip saddr 10.244.1.7 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.1.7:8080
	}

	chain endpoint-UG3WTMPQ-default/np/tcp/http__10.244.2.8/8080 {
		ip saddr 10.244.2.8 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.2.8:8080
	}

	chain service-ASNVMIOD-default/np/tcp/http {
		ip daddr 10.96.0.30 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 2 vmap { 0 : goto endpoint-I5B7ZJP4-default/np/tcp/http__10.244.1.7/8080, 1 : goto endpoint-UG3WTMPQ-default/np/tcp/http__10.244.2.8/8080 }
	}

	chain local-ASNVMIOD-default/np/tcp/http {
		numgen random mod 1 vmap { 0 : goto endpoint-I5B7ZJP4-default/np/tcp/http__10.244.1.7/8080 }
	}

	chain external-ASNVMIOD-default/np/tcp/http {
		ip saddr 10.244.0.0/16 goto service-ASNVMIOD-default/np/tcp/http comment "short-circuit pod traffic"
		fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
		fib saddr type local goto service-ASNVMIOD-default/np/tcp/http comment "short-circuit local traffic"
		goto local-ASNVMIOD-default/np/tcp/http
	}

	chain endpoint-V5TKWTJA-default/sticky/tcp/__10.244.1.9/9090 {
		ip saddr 10.244.1.9 jump mark-for-masquerade
		update @affinity-V5TKWTJA-default/sticky/tcp/__10.244.1.9/9090 { ip saddr }
		meta l4proto tcp dnat to 10.244.1.9:9090
	}

	chain endpoint-4R55MYV2-default/sticky/tcp/__10.244.2.9/9090 {
		ip saddr 10.244.2.9 jump mark-for-masquerade
		update @affinity-4R55MYV2-default/sticky/tcp/__10.244.2.9/9090 { ip saddr }
		meta l4proto tcp dnat to 10.244.2.9:9090
	}

	chain service-EDE2N7RF-default/sticky/tcp/ {
		ip daddr 10.96.0.40 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		ip saddr @affinity-V5TKWTJA-default/sticky/tcp/__10.244.1.9/9090 goto endpoint-V5TKWTJA-default/sticky/tcp/__10.244.1.9/9090
		ip saddr @affinity-4R55MYV2-default/sticky/tcp/__10.244.2.9/9090 goto endpoint-4R55MYV2-default/sticky/tcp/__10.244.2.9/9090
		numgen random mod 2 vmap { 0 : goto endpoint-V5TKWTJA-default/sticky/tcp/__10.244.1.9/9090, 1 : goto endpoint-4R55MYV2-default/sticky/tcp/__10.244.2.9/9090 }
	}
}
"#;

fn assert_same(got: &str, want: &str) {
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {}", i + 1);
    }
    assert_eq!(got, want);
}

#[test]
fn golden_iptables_save() {
    assert_same(&iptables_node().iptables_save(), IPTABLES_SAVE);
}

#[test]
fn golden_iptables_restore() {
    assert_same(&iptables_node().iptables_restore(), IPTABLES_RESTORE);
}

#[test]
fn golden_nft_list() {
    assert_same(&nftables_node().nft_ruleset(), NFT_LIST);
}

#[test]
fn modes_render_only_their_own_tables() {
    assert_eq!(iptables_node().nft_ruleset(), "");
    assert_eq!(nftables_node().iptables_restore(), "");
    // flannel's chain stays in iptables with the nftables backend.
    let save = nftables_node().iptables_save();
    assert!(!save.contains("KUBE-"));
    assert!(save.contains("-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully\n"));
}
