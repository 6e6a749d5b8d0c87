//! The node's netfilter-style packet path.
//!
//! Every IPv4 packet a node handles crosses the same five hooks as in Linux:
//!
//! ```text
//!  in ──► PREROUTING ──► routing ──► FORWARD ──► POSTROUTING ──► out
//!                           │                        ▲
//!                           ▼                        │
//!                         INPUT ──► local ──► OUTPUT ┘
//! ```
//!
//! Modules (conntrack, NAT, kube-proxy rules, policy) implement [`NetfilterHook`] and are
//! registered on a node; at each hook they run in ascending [`NetfilterHook::priority`] order
//! (Linux's `NF_IP_PRI_*` numbers: conntrack -200, DNAT -100, filter 0, SNAT 100) and the first
//! verdict other than [`Verdict::Accept`] ends the walk.

use alloc::borrow::Cow;
use core::fmt;

use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;

use crate::route::Dev;

/// A netfilter hook point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// Every packet arriving at the node, before routing.
    Prerouting,
    /// Packets for the node itself.
    Input,
    /// Packets routed through the node.
    Forward,
    /// Packets the node itself sends.
    Output,
    /// Every packet leaving the node, after routing.
    Postrouting,
}

impl Hook {
    /// The iptables chain name.
    pub fn chain(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.chain())
    }
}

/// What an ICMP or TCP rejection sends back (`-j REJECT --reject-with ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectWith {
    /// ICMP destination unreachable, port unreachable (the iptables default).
    IcmpPortUnreachable,
    /// ICMP destination unreachable, host unreachable.
    IcmpHostUnreachable,
    /// A TCP RST.
    TcpReset,
}

/// A hook's decision on a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Continue (to the next hook module, then on along the path).
    Accept,
    /// Discard silently, with the reason shown in traces and reports.
    Drop(Cow<'static, str>),
    /// Discard and answer the sender, with the reason shown in traces.
    Reject(RejectWith, Cow<'static, str>),
}

/// What a hook module knows about the packet's place in the node.
#[derive(Clone, Copy, Debug)]
pub struct HookCtx<'a> {
    /// Virtual time.
    pub now: Instant,
    /// The node's name.
    pub node: &'a str,
    /// The node's address on its uplink (the masquerade address).
    pub node_ip: Ipv4Address,
    /// The hook being crossed.
    pub hook: Hook,
    /// The interface the packet came in on (`None` for locally generated packets).
    pub in_dev: Option<Dev>,
    /// The interface it will leave by, once routed (FORWARD, OUTPUT after routing, POSTROUTING).
    pub out_dev: Option<Dev>,
    /// The node's address on `out_dev` (what MASQUERADE uses).
    pub out_addr: Option<Ipv4Address>,
    /// The node's own addresses (iptables `--dst-type LOCAL`).
    pub local_addrs: [Ipv4Address; 2],
    /// Whether the packet is bridged between two ports of `cni0` (br_netfilter) rather than
    /// routed.
    pub bridged: bool,
    /// Whether notes are wanted (tracing is on); modules skip building them otherwise.
    pub explain: bool,
    /// Whether the packet's checksums need no verification: filled in by the sending pod's
    /// own stack and handed on by its veth (the kernel's `CHECKSUM_PARTIAL`), or verified by
    /// the NIC of the node's uplink (`CHECKSUM_UNNECESSARY`): conntrack does not verify them
    /// at PREROUTING, as `nf_ip_checksum` does not. Crafted frames
    /// ([`crate::cluster::Cluster::inject`]), every uplink frame once one has been injected,
    /// and a VXLAN packet's inner frame are verified.
    pub csum_partial: bool,
}

/// Lines a module writes about what it did to a packet (`DNAT 10.96.0.10:80 -> 10.244.1.20:80`),
/// shown with the hook event in the trace.
pub type Notes = alloc::vec::Vec<alloc::string::String>;

/// A module plugged into a node's packet path.
pub trait NetfilterHook {
    /// A short name shown in traces (`conntrack`, `nat`, ...).
    fn name(&self) -> &str;

    /// Order among modules at the same hook, lowest first (Linux `NF_IP_PRI_*`).
    fn priority(&self) -> i32 {
        0
    }

    /// Looks at (and may rewrite) one IPv4 packet at `ctx.hook`. `packet` is the whole IP packet,
    /// header included; a module that rewrites it must leave every checksum valid.
    fn process(&mut self, ctx: &HookCtx<'_>, packet: &mut [u8], notes: &mut Notes) -> Verdict;

    /// [`NetfilterHook::process`] given the whole frame (the IP packet at `l3`), for modules
    /// that change the packet's length (an IPv4 option added, as Cilium's DSR does). The
    /// default runs `process` on the IP packet.
    fn process_frame(
        &mut self,
        ctx: &HookCtx<'_>,
        frame: &mut alloc::vec::Vec<u8>,
        l3: usize,
        notes: &mut Notes,
    ) -> Verdict {
        match frame.get_mut(l3..) {
            Some(packet) => self.process(ctx, packet, notes),
            None => Verdict::Accept,
        }
    }

    /// The node is about to send, from OUTPUT, a packet it built itself about the packet
    /// these modules saw last (an ICMP error from the forwarding path or a REJECT, a reset):
    /// as `nf_ct_attach` (`icmp_glue_bits`, `nf_send_reset`), that packet carries the other's
    /// connection, RELATED in the other direction, even unconfirmed, instead of being looked
    /// up. Called only when that packet is sent.
    fn attach(&mut self) {}

    /// The next packet (until the next call) arrived at `now` and runs on CPU `cpu` of the
    /// node (see [`crate::node::Node::set_cpus`]). Packets the node builds itself run on the
    /// CPU of the packet that caused them.
    fn steer(&mut self, _now: Instant, _cpu: u32) {}

    /// After an accepted walk of PREROUTING: whether the packet goes to the node's L7 proxy
    /// instead of being routed (Cilium's TPROXY redirect); clears the request.
    fn take_redirect(&mut self) -> bool {
        false
    }

    /// Lets callers reach the concrete module (`node.hooks()` then downcast), e.g. to read a
    /// conntrack table.
    fn as_any(&self) -> Option<&dyn core::any::Any> {
        None
    }

    /// Mutable access to the concrete module.
    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        None
    }
}
