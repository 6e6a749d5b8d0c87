//! `syncProxyRules` of `kubernetes/pkg/proxy/iptables/proxier.go`, building the
//! [`super::iptables`] tables: the jump rules from the builtin chains, `KUBE-POSTROUTING`,
//! `KUBE-MARK-MASQ`, then per Service port the ClusterIP and NodePort captures, the
//! masquerade rules, `KUBE-EXT-*`, `writeServiceToEndpointRules` for `KUBE-SVC-*` /
//! `KUBE-SVL-*` and the `KUBE-SEP-*` chains, and finally `KUBE-FORWARD` — each rule also logged
//! in the order kube-proxy writes it to `iptables-restore`.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use super::iptables::{
    ct, Addr, Arg, ChainId, Comment, Ruleset, SvcText, Target, FILTER_FORWARD, FILTER_INPUT,
    FILTER_OUTPUT, LARGE_CLUSTER_ENDPOINTS, NAT_OUTPUT, NAT_POSTROUTING, NAT_PREROUTING,
};
use super::names::{ipt_endpoint_chain, ipt_service_chain};
use super::{EpText, Plan, ProxyConfig, ServicePort, MASQ_MARK};

/// `computeProbability(n)` printed `%0.10f` and parsed back by iptables into the kernel's
/// `lround(0x80000000 * p)` (`libxt_statistic.c`).
fn probability(n: u32) -> u32 {
    let text = format!("{:.10}", 1.0 / f64::from(n));
    let p: f64 = text.parse().unwrap_or(0.0);
    (p * 2_147_483_648.0 + 0.5) as u32
}

pub(super) struct Builder<'a> {
    cfg: &'a ProxyConfig,
    rs: &'a mut Ruleset,
    affinity: &'a mut Vec<String>,
    large: bool,
    probs: Vec<u32>,
    f_svc: ChainId,
    f_ext: ChainId,
    f_fwd: ChainId,
    n_svc: ChainId,
    n_np: ChainId,
    n_mm: ChainId,
}

fn jump_rule(ct_new: bool, comment: &'static str) -> Vec<Arg> {
    let mut args = Vec::with_capacity(2);
    if ct_new {
        args.push(Arg::CtState {
            states: ct::NEW,
            neg: false,
        });
    }
    args.push(Arg::Comment(Comment::Text(comment)));
    args
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        cfg: &'a ProxyConfig,
        rs: &'a mut Ruleset,
        affinity: &'a mut Vec<String>,
    ) -> Self {
        let f = &mut rs.filter;
        let f_svc = f.chain(String::from("KUBE-SERVICES"), false, true);
        let f_ext = f.chain(String::from("KUBE-EXTERNAL-SERVICES"), false, true);
        let f_fwd = f.chain(String::from("KUBE-FORWARD"), false, true);
        let f_np = f.chain(String::from("KUBE-NODEPORTS"), false, true);
        let f_pfw = f.chain(String::from("KUBE-PROXY-FIREWALL"), false, true);
        let f_fw = f.chain(String::from("KUBE-FIREWALL"), false, true);
        f.chain(String::from("KUBE-PROXY-CANARY"), false, false);
        const LB_FW: &str = "kubernetes load balancer firewall";
        const PORTALS: &str = "kubernetes service portals";
        const EXTERNAL: &str = "kubernetes externally-visible service portals";
        f.push(
            FILTER_INPUT,
            jump_rule(true, LB_FW),
            Target::Jump(f_pfw),
            false,
        );
        f.push(
            FILTER_INPUT,
            jump_rule(false, "kubernetes health check service ports"),
            Target::Jump(f_np),
            false,
        );
        f.push(
            FILTER_INPUT,
            jump_rule(true, EXTERNAL),
            Target::Jump(f_ext),
            false,
        );
        f.push(FILTER_INPUT, Vec::new(), Target::Jump(f_fw), false);
        f.push(
            FILTER_FORWARD,
            jump_rule(true, LB_FW),
            Target::Jump(f_pfw),
            false,
        );
        f.push(
            FILTER_FORWARD,
            jump_rule(false, "kubernetes forwarding rules"),
            Target::Jump(f_fwd),
            false,
        );
        f.push(
            FILTER_FORWARD,
            jump_rule(true, PORTALS),
            Target::Jump(f_svc),
            false,
        );
        f.push(
            FILTER_FORWARD,
            jump_rule(true, EXTERNAL),
            Target::Jump(f_ext),
            false,
        );
        f.push(
            FILTER_OUTPUT,
            jump_rule(true, LB_FW),
            Target::Jump(f_pfw),
            false,
        );
        f.push(
            FILTER_OUTPUT,
            jump_rule(true, PORTALS),
            Target::Jump(f_svc),
            false,
        );
        f.push(FILTER_OUTPUT, Vec::new(), Target::Jump(f_fw), false);
        // The localhost-nodeports guard kube-proxy duplicates from kubelet.
        let lo = Ipv4Cidr::new(Ipv4Address::new(127, 0, 0, 0), 8);
        f.push(
            f_fw,
            vec![
                Arg::Comment(Comment::Text("block incoming localnet connections")),
                Arg::Dst(Addr::cidr(lo)),
                Arg::Src(Addr::cidr(lo).not()),
                Arg::CtState {
                    states: ct::RELATED | ct::ESTABLISHED | ct::DNAT,
                    neg: true,
                },
            ],
            Target::Drop,
            true,
        );

        let n = &mut rs.nat;
        let n_svc = n.chain(String::from("KUBE-SERVICES"), false, true);
        let n_np = n.chain(String::from("KUBE-NODEPORTS"), false, true);
        let n_post = n.chain(String::from("KUBE-POSTROUTING"), false, true);
        let n_mm = n.chain(String::from("KUBE-MARK-MASQ"), false, true);
        n.chain(String::from("KUBE-PROXY-CANARY"), false, false);
        n.push(
            NAT_PREROUTING,
            jump_rule(false, PORTALS),
            Target::Jump(n_svc),
            false,
        );
        n.push(
            NAT_OUTPUT,
            jump_rule(false, PORTALS),
            Target::Jump(n_svc),
            false,
        );
        n.push(
            NAT_POSTROUTING,
            jump_rule(false, "kubernetes postrouting rules"),
            Target::Jump(n_post),
            false,
        );
        n.push(
            n_post,
            vec![Arg::Mark {
                value: MASQ_MARK,
                mask: MASQ_MARK,
                neg: true,
            }],
            Target::Return,
            true,
        );
        n.push(n_post, Vec::new(), Target::XorMark(MASQ_MARK), true);
        n.push(
            n_post,
            vec![Arg::Comment(Comment::Text(
                "kubernetes service traffic requiring SNAT",
            ))],
            Target::Masquerade {
                random_fully: cfg.random_fully,
            },
            true,
        );
        n.push(n_mm, Vec::new(), Target::OrMark(MASQ_MARK), true);
        Builder {
            cfg,
            rs,
            affinity,
            large: false,
            probs: Vec::new(),
            f_svc,
            f_ext,
            f_fwd,
            n_svc,
            n_np,
            n_mm,
        }
    }

    fn probability(&mut self, n: u32) -> u32 {
        let n = n as usize;
        if self.probs.len() <= n {
            let from = self.probs.len();
            self.probs
                .extend((from..=n).map(|i| if i == 0 { 0 } else { probability(i as u32) }));
        }
        self.probs[n]
    }

    pub(super) fn build(mut self, services: &[ServicePort], plans: &[Plan]) {
        let total: usize = services.iter().map(|s| s.endpoints.len()).sum();
        self.large = total > LARGE_CLUSTER_ENDPOINTS;
        for (i, (svc, plan)) in services.iter().zip(plans).enumerate() {
            self.service(i as u32, svc, plan);
        }
        let nat = &mut self.rs.nat;
        nat.push(
            self.n_svc,
            vec![
                Arg::Comment(Comment::Text(
                    "kubernetes service nodeports; NOTE: this must be the last rule in this chain",
                )),
                Arg::AddrType { src: false },
            ],
            Target::Jump(self.n_np),
            true,
        );
        let f = &mut self.rs.filter;
        if !self.cfg.tcp_be_liberal {
            f.push(
                self.f_fwd,
                vec![Arg::CtState {
                    states: ct::INVALID,
                    neg: false,
                }],
                Target::Drop,
                true,
            );
        }
        f.push(
            self.f_fwd,
            vec![
                Arg::Comment(Comment::Text("kubernetes forwarding rules")),
                Arg::Mark {
                    value: MASQ_MARK,
                    mask: MASQ_MARK,
                    neg: false,
                },
            ],
            Target::Accept,
            true,
        );
        f.push(
            self.f_fwd,
            vec![
                Arg::Comment(Comment::Text("kubernetes forwarding conntrack rule")),
                Arg::CtState {
                    states: ct::RELATED | ct::ESTABLISHED,
                    neg: false,
                },
            ],
            Target::Accept,
            true,
        );
    }

    /// `appendServiceCommentLocked`: per-endpoint comments only outside large-cluster mode.
    fn opt_comment(&self, args: &mut Vec<Arg>, c: Comment) {
        if !self.large {
            args.push(Arg::Comment(c));
        }
    }

    fn service(&mut self, si: u32, svc: &ServicePort, plan: &Plan) {
        let spn = svc.port_name_string();
        let p = svc.protocol;
        let pname = p.name();
        let cip = Addr::host(svc.cluster_ip);
        let svc_comment = |t| Arg::Comment(Comment::Svc(si, t));
        let nat = &mut self.rs.nat;

        // Chain declarations, in the order syncProxyRules writes them.
        let ext = plan
            .uses_external_chain
            .then(|| nat.chain(ipt_service_chain("KUBE-EXT-", &spn, pname), false, true));
        let mut svc_c = plan
            .uses_cluster_chain
            .then(|| nat.chain(ipt_service_chain("KUBE-SVC-", &spn, pname), false, true));
        let svl_c = plan
            .uses_local_chain
            .then(|| nat.chain(ipt_service_chain("KUBE-SVL-", &spn, pname), false, true));
        let mut seps = Vec::with_capacity(plan.reachable.len());
        let mut lists = Vec::new();
        for &e in &plan.reachable {
            let ep = &svc.endpoints[e as usize];
            let name = ipt_endpoint_chain(&spn, pname, &EpText::new(ep.ip, ep.port));
            if svc.session_affinity.is_some() {
                lists.push(self.affinity.len() as u32);
                self.affinity.push(name.clone());
            }
            seps.push(nat.chain(name, false, true));
        }
        let internal = if plan.int_local { svl_c } else { svc_c };
        let no_eps = if plan.has_endpoints {
            SvcText::NoLocalEndpoints
        } else {
            SvcText::NoEndpoints
        };
        let no_eps_target = if plan.has_endpoints {
            Target::Drop
        } else {
            Target::Reject
        };
        let l4 = [Arg::Module(p), Arg::Proto(p)];

        // Capture the ClusterIP.
        let vip = |c: Arg| vec![c, l4[0], l4[1], Arg::Dst(cip), Arg::Dport(svc.port)];
        match internal.filter(|_| plan.has_internal) {
            Some(chain) => nat.push(
                self.n_svc,
                vip(svc_comment(SvcText::ClusterIp)),
                Target::Jump(chain),
                true,
            ),
            None => self
                .rs
                .filter
                .push(self.f_svc, vip(svc_comment(no_eps)), no_eps_target, true),
        }
        // Capture the node port.
        if let Some(np) = svc.node_port {
            if let Some(ext) = ext {
                let args = vec![svc_comment(SvcText::Name), l4[0], l4[1], Arg::Dport(np)];
                nat.push(self.n_np, args, Target::Jump(ext), true);
            }
            if !plan.has_external {
                let args = vec![
                    svc_comment(no_eps),
                    Arg::AddrType { src: false },
                    l4[0],
                    l4[1],
                    Arg::Dport(np),
                ];
                self.rs.filter.push(self.f_ext, args, no_eps_target, true);
            }
        }
        // Masquerade off-cluster traffic to the ClusterIP (or all of it).
        if let Some(chain) = internal.filter(|_| plan.has_internal) {
            let mut args = vip(svc_comment(SvcText::ClusterIp));
            if !self.cfg.masquerade_all {
                args.push(Arg::Src(Addr::cidr(self.cfg.cluster_cidr).not()));
            }
            nat.push(chain, args, Target::Jump(self.n_mm), true);
        }
        // External destinations.
        if let Some(ext) = ext {
            if !plan.ext_local {
                nat.push(
                    ext,
                    vec![svc_comment(SvcText::MasqExternal)],
                    Target::Jump(self.n_mm),
                    true,
                );
            } else {
                // The cluster chain may not exist (both policies Local); declare it so the
                // jumps resolve.
                let cluster = *svc_c.get_or_insert_with(|| {
                    nat.chain(ipt_service_chain("KUBE-SVC-", &spn, pname), false, true)
                });
                let pods = Arg::Src(Addr::cidr(self.cfg.cluster_cidr));
                nat.push(
                    ext,
                    vec![svc_comment(SvcText::PodExternal), pods],
                    Target::Jump(cluster),
                    true,
                );
                let local_src = Arg::AddrType { src: true };
                nat.push(
                    ext,
                    vec![svc_comment(SvcText::MasqLocalExternal), local_src],
                    Target::Jump(self.n_mm),
                    true,
                );
                nat.push(
                    ext,
                    vec![svc_comment(SvcText::RouteLocalExternal), local_src],
                    Target::Jump(cluster),
                    true,
                );
            }
            let policy = if plan.ext_local { svl_c } else { svc_c };
            if let Some(policy) = policy.filter(|_| plan.has_external) {
                nat.push(ext, Vec::new(), Target::Jump(policy), true);
            }
        }
        // Load balancing.
        if let (Some(chain), true) = (svc_c, plan.uses_cluster_chain) {
            self.endpoint_rules(
                si,
                svc,
                chain,
                &plan.cluster,
                &plan.reachable,
                &seps,
                &lists,
            );
        }
        if let Some(chain) = svl_c {
            self.endpoint_rules(si, svc, chain, &plan.local, &plan.reachable, &seps, &lists);
        }
        // Endpoint chains.
        for (k, &e) in plan.reachable.iter().enumerate() {
            let ep = &svc.endpoints[e as usize];
            let mut args = Vec::with_capacity(2);
            self.opt_comment(&mut args, Comment::Svc(si, SvcText::Name));
            args.push(Arg::Src(Addr::host(ep.ip)));
            self.rs
                .nat
                .push(seps[k], args, Target::Jump(self.n_mm), true);
            let mut args = Vec::with_capacity(4);
            self.opt_comment(&mut args, Comment::Svc(si, SvcText::Name));
            if let Some(&list) = lists.get(k) {
                args.push(Arg::RecentSet {
                    list,
                    name: seps[k],
                });
            }
            args.extend_from_slice(&l4);
            self.rs
                .nat
                .push(seps[k], args, Target::Dnat(ep.ip, ep.port), true);
        }
    }

    /// `writeServiceToEndpointRules`: affinity checks, then one rule per endpoint with
    /// probability 1/(n-i), the last unconditional. `eps` is a subsequence of `reachable`.
    #[allow(clippy::too_many_arguments)]
    fn endpoint_rules(
        &mut self,
        si: u32,
        svc: &ServicePort,
        chain: ChainId,
        eps: &[u32],
        reachable: &[u32],
        seps: &[ChainId],
        lists: &[u32],
    ) {
        // Positions of `eps` in `reachable` (same sort order).
        let mut pos = Vec::with_capacity(eps.len());
        let mut j = 0;
        for &e in eps {
            while j < reachable.len() && reachable[j] != e {
                j += 1;
            }
            pos.push(j.min(reachable.len().saturating_sub(1)));
        }
        let comment = |e: u32| {
            let ep = &svc.endpoints[e as usize];
            Comment::Svc(si, SvcText::Endpoint(ep.ip, ep.port))
        };
        if let Some(seconds) = svc.session_affinity {
            for (&e, &k) in eps.iter().zip(&pos) {
                let mut args = Vec::with_capacity(2);
                self.opt_comment(&mut args, comment(e));
                if let Some(&list) = lists.get(k) {
                    args.push(Arg::RecentCheck {
                        list,
                        name: seps[k],
                        seconds,
                    });
                }
                self.rs.nat.push(chain, args, Target::Jump(seps[k]), true);
            }
        }
        let n = eps.len() as u32;
        for (i, (&e, &k)) in eps.iter().zip(&pos).enumerate() {
            let mut args = Vec::with_capacity(2);
            self.opt_comment(&mut args, comment(e));
            let i = i as u32;
            if i + 1 < n {
                let prob = self.probability(n - i);
                args.push(Arg::Statistic { n: n - i, prob });
            }
            self.rs.nat.push(chain, args, Target::Jump(seps[k]), true);
        }
    }
}
