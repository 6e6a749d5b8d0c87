//! The iptables backend's rules as data, and `syncProxyRules` building them.
//!
//! Rule by rule this follows `syncProxyRules` / `writeServiceToEndpointRules` in
//! `kubernetes/pkg/proxy/iptables/proxier.go` (the 1.30 line: `KUBE-SVC`/`KUBE-SVL`/`KUBE-EXT`
//! chains, `KUBE-PROXY-FIREWALL`, `--localhost-nodeports` on), including the order kube-proxy
//! writes chains and rules to `iptables-restore`, which [`super::ipt_text`] replays. The jump
//! rules from the builtin chains come from `iptablesJumpChains` (inserted with `-I`, so the
//! last listed comes first) and kubelet's `KUBE-FIREWALL` jumps (appended before kube-proxy
//! starts). Flannel's masquerade chain is `masqRules` of flannel's `pkg/trafficmngr/iptables`.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::{Plan, ProxyConfig, ServicePort, L4, MASQ_MARK};
use crate::netfilter::Hook;

/// A chain's index in its table.
pub(crate) type ChainId = u32;

pub(crate) const FILTER_INPUT: ChainId = 0;
pub(crate) const FILTER_FORWARD: ChainId = 1;
pub(crate) const FILTER_OUTPUT: ChainId = 2;
pub(crate) const NAT_PREROUTING: ChainId = 0;
pub(crate) const NAT_INPUT: ChainId = 1;
pub(crate) const NAT_OUTPUT: ChainId = 2;
pub(crate) const NAT_POSTROUTING: ChainId = 3;

/// `largeClusterEndpointsThreshold`: above this many endpoints kube-proxy drops the per-endpoint
/// comments.
pub(crate) const LARGE_CLUSTER_ENDPOINTS: usize = 1000;

/// conntrack states as `--ctstate` lists them.
pub(crate) mod ct {
    pub const INVALID: u8 = 1;
    pub const NEW: u8 = 2;
    pub const RELATED: u8 = 4;
    pub const ESTABLISHED: u8 = 8;
    pub const DNAT: u8 = 16;
}

/// The filter chain for a hook, if the filter table hooks there.
pub(crate) fn filter_chain(hook: Hook) -> Option<ChainId> {
    match hook {
        Hook::Input => Some(FILTER_INPUT),
        Hook::Forward => Some(FILTER_FORWARD),
        Hook::Output => Some(FILTER_OUTPUT),
        Hook::Prerouting | Hook::Postrouting => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableId {
    Filter,
    Nat,
}

/// `-s` / `-d`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Addr {
    pub net: Ipv4Cidr,
    pub neg: bool,
    /// Written by kube-proxy as a bare address (`-s 10.180.0.1`), saved as `/32`.
    pub bare: bool,
}

impl Addr {
    pub(super) fn host(ip: Ipv4Address) -> Self {
        Addr {
            net: Ipv4Cidr::new(ip, 32),
            neg: false,
            bare: true,
        }
    }

    pub(super) fn cidr(net: Ipv4Cidr) -> Self {
        Addr {
            net,
            neg: false,
            bare: false,
        }
    }

    pub(super) fn not(mut self) -> Self {
        self.neg = true;
        self
    }

    pub fn matches(&self, a: Ipv4Address) -> bool {
        self.net.contains_addr(&a) != self.neg
    }
}

/// A comment, rendered from the Service's name when printed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Comment {
    Text(&'static str),
    Svc(u32, SvcText),
}

/// The per-Service comments of `syncProxyRules`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SvcText {
    Name,
    ClusterIp,
    Endpoint(Ipv4Address, u16),
    NoEndpoints,
    NoLocalEndpoints,
    MasqExternal,
    PodExternal,
    MasqLocalExternal,
    RouteLocalExternal,
}

/// One argument of a rule: the IP header part (`-s`, `-d`, `-p`) or a match module.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg {
    Src(Addr),
    Dst(Addr),
    Proto(L4),
    /// `-m tcp` / `-m udp`; a following [`Arg::Dport`] is its `--dport`.
    Module(L4),
    Dport(u16),
    Comment(Comment),
    /// `-m statistic --mode random --probability 1/n`; `prob` is the kernel's 31-bit value.
    Statistic {
        n: u32,
        prob: u32,
    },
    /// `-m recent --set --name <chain>` on affinity list `list`.
    RecentSet {
        list: u32,
        name: ChainId,
    },
    /// `-m recent --rcheck --seconds S --reap --name <chain>`.
    RecentCheck {
        list: u32,
        name: ChainId,
        seconds: u32,
    },
    /// `-m addrtype --src-type LOCAL` (`src`) or `--dst-type LOCAL`.
    AddrType {
        src: bool,
    },
    /// `-m mark [!] --mark value/mask`.
    Mark {
        value: u32,
        mask: u32,
        neg: bool,
    },
    /// `-m conntrack [!] --ctstate ...` (bits of [`ct`]).
    CtState {
        states: u8,
        neg: bool,
    },
}

/// `-j ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Jump(ChainId),
    Return,
    Accept,
    Drop,
    Reject,
    Dnat(Ipv4Address, u16),
    Masquerade {
        random_fully: bool,
    },
    /// `-j MARK --or-mark` (saved as `--set-xmark v/v`).
    OrMark(u32),
    /// `-j MARK --xor-mark` (saved as `--set-xmark v/0x0`).
    XorMark(u32),
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub args: Vec<Arg>,
    pub target: Target,
    /// Whether `args` has an IP header part (`-s`, `-d`, `-p`), checked before the matches.
    pub ip_part: bool,
}

#[derive(Debug)]
pub(crate) struct Chain {
    pub name: String,
    pub builtin: bool,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    pub chains: Vec<Chain>,
    /// The chains kube-proxy declares in its restore input, in its order.
    pub restore_chains: Vec<ChainId>,
    /// The rules kube-proxy writes in its restore input, in its order (chain, index).
    pub restore_rules: Vec<(ChainId, u32)>,
}

impl Table {
    pub(super) fn chain(&mut self, name: String, builtin: bool, restore: bool) -> ChainId {
        let id = self.chains.len() as ChainId;
        self.chains.push(Chain {
            name,
            builtin,
            rules: Vec::new(),
        });
        if restore {
            self.restore_chains.push(id);
        }
        id
    }

    pub(super) fn push(&mut self, chain: ChainId, args: Vec<Arg>, target: Target, restore: bool) {
        let rules = &mut self.chains[chain as usize].rules;
        if restore {
            self.restore_rules.push((chain, rules.len() as u32));
        }
        let ip_part = args
            .iter()
            .any(|a| matches!(a, Arg::Src(_) | Arg::Dst(_) | Arg::Proto(_)));
        rules.push(Rule {
            args,
            target,
            ip_part,
        });
    }

    fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

/// The `filter` and `nat` tables.
#[derive(Debug)]
pub(crate) struct Ruleset {
    pub filter: Table,
    pub nat: Table,
}

const MASQ: Comment = Comment::Text("flanneld masq");

impl Ruleset {
    pub fn empty() -> Self {
        Ruleset {
            filter: Table::default(),
            nat: Table::default(),
        }
    }

    pub fn table(&self, t: TableId) -> &Table {
        match t {
            TableId::Filter => &self.filter,
            TableId::Nat => &self.nat,
        }
    }

    pub fn rule_count(&self) -> usize {
        self.filter.rule_count() + self.nat.rule_count()
    }

    /// The tables: kube-proxy's rules when `kube` (iptables mode), flannel's always.
    /// Affinity lists are named in `affinity` (index = list id).
    pub fn build(
        cfg: &ProxyConfig,
        node_pod_cidr: Option<Ipv4Cidr>,
        services: &[ServicePort],
        plans: &[Plan],
        kube: bool,
        affinity: &mut Vec<String>,
    ) -> Self {
        let mut rs = Ruleset::empty();
        for name in ["INPUT", "FORWARD", "OUTPUT"] {
            rs.filter.chain(String::from(name), true, false);
        }
        for name in ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] {
            rs.nat.chain(String::from(name), true, false);
        }
        if kube {
            super::ipt_build::Builder::new(cfg, &mut rs, affinity).build(services, plans);
        }
        flannel(cfg, node_pod_cidr, &mut rs.nat);
        rs
    }
}

/// flannel's `FLANNEL-POSTRTG` (`masqRules`, with `--random-fully` when iptables has it).
fn flannel(cfg: &ProxyConfig, node_pod_cidr: Option<Ipv4Cidr>, nat: &mut Table) {
    let c = nat.chain(String::from("FLANNEL-POSTRTG"), false, false);
    nat.push(
        NAT_POSTROUTING,
        vec![Arg::Comment(MASQ)],
        Target::Jump(c),
        false,
    );
    let cluster = Addr::cidr(cfg.cluster_cidr);
    let mark = Arg::Mark {
        value: MASQ_MARK,
        mask: MASQ_MARK,
        neg: false,
    };
    nat.push(c, vec![mark, Arg::Comment(MASQ)], Target::Return, false);
    let masq = Target::Masquerade {
        random_fully: cfg.random_fully,
    };
    match node_pod_cidr {
        Some(pod) => {
            let pod = Addr::cidr(pod);
            nat.push(
                c,
                vec![Arg::Src(pod), Arg::Dst(cluster), Arg::Comment(MASQ)],
                Target::Return,
                false,
            );
            nat.push(
                c,
                vec![Arg::Src(cluster), Arg::Dst(pod), Arg::Comment(MASQ)],
                Target::Return,
                false,
            );
            nat.push(
                c,
                vec![Arg::Src(cluster.not()), Arg::Dst(pod), Arg::Comment(MASQ)],
                Target::Return,
                false,
            );
        }
        None => {
            nat.push(
                c,
                vec![Arg::Src(cluster), Arg::Dst(cluster), Arg::Comment(MASQ)],
                Target::Return,
                false,
            );
        }
    }
    let multicast = Addr::cidr(Ipv4Cidr::new(Ipv4Address::new(224, 0, 0, 0), 4)).not();
    nat.push(
        c,
        vec![Arg::Src(cluster), Arg::Dst(multicast), Arg::Comment(MASQ)],
        masq,
        false,
    );
    if node_pod_cidr.is_some() {
        nat.push(
            c,
            vec![
                Arg::Src(cluster.not()),
                Arg::Dst(cluster),
                Arg::Comment(MASQ),
            ],
            masq,
            false,
        );
    }
}
