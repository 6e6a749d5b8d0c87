//! The event loop: deadlines in virtual time, frame delivery along links, and servicing pods
//! and nodes.

use super::*;

impl Cluster {
    pub(super) fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(at, self.seq, ev);
    }

    /// The time of the next event, if any.
    pub fn next_event(&self) -> Option<Instant> {
        self.queue.peek_at()
    }

    /// Processes the next event; returns false when nothing is left to do.
    pub fn step(&mut self) -> bool {
        let Some((at, _, ev)) = self.queue.pop() else {
            return false;
        };
        if at > self.now {
            self.now = at;
        }
        self.events_run += 1;
        match ev {
            Ev::Deliver { link, dir } => self.deliver(link, dir as usize),
            Ev::PodWake(id) => {
                let due =
                    matches!(self.pods.get(id.0 as usize), Some(Some(s)) if s.wake == Some(at));
                if due {
                    if let Some(Some(s)) = self.pods.get_mut(id.0 as usize) {
                        s.wake = None;
                    }
                    self.service_pod(id);
                }
            }
            Ev::NodeWake(id) => {
                if self.nodes[id.0 as usize].wake == Some(at) {
                    self.nodes[id.0 as usize].wake = None;
                    let mut out = core::mem::take(&mut self.out);
                    self.nodes[id.0 as usize]
                        .node
                        .poll(self.now, &mut out, &mut self.trace);
                    self.flush_node(id, out);
                }
            }
        }
        true
    }

    /// Runs every event up to and including `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Instant) {
        while self.next_event().is_some_and(|t| t <= until) {
            self.step();
        }
        if until > self.now {
            self.now = until;
        }
    }

    /// Runs until every client has finished (true), or until `limit` of virtual time passed or
    /// nothing is left to do (false).
    pub fn run_until_done(&mut self, limit: Duration) -> bool {
        let end = self.now + limit;
        loop {
            if self.clients_done() {
                return true;
            }
            match self.next_event() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => {
                    self.now = self.now.max(end.min(self.next_event().unwrap_or(end)));
                    return self.clients_done();
                }
            }
        }
    }

    /// Whether every client program of every pod has finished.
    pub fn clients_done(&self) -> bool {
        self.unfinished_clients == 0
    }

    fn send(&mut self, link: u32, from: usize, frame: Frame) {
        let l = &mut self.links[link as usize];
        let iface = l.ends[from].1;
        if l.deleted {
            self.trace.dropped(self.now, iface, "pod deleted", &frame);
            return;
        }
        if matches!(l.ends[from].0, Attach::Switch) {
            self.trace.sent_on_wire(self.now, iface, &frame);
        } else {
            self.trace.sent(self.now, iface, &frame);
        }
        let l = &mut self.links[link as usize];
        let idle = l.chans[from].in_flight() == 0;
        match l.chans[from].send(self.now, frame) {
            Ok(sent) => {
                for seg in &sent.lost {
                    self.trace
                        .dropped(self.now, iface, crate::link::LinkDrop::Loss.reason(), seg);
                }
                // One queue entry per busy channel: its head frame. `deliver` schedules the
                // next.
                if idle {
                    let first = self.links[link as usize].chans[from].next_arrival();
                    self.schedule(
                        first.unwrap_or(sent.at),
                        Ev::Deliver {
                            link,
                            dir: from as u8,
                        },
                    );
                }
            }
            Err((why, frame)) => self.trace.dropped(self.now, iface, why.reason(), &frame),
        }
    }

    fn deliver(&mut self, link: u32, dir: usize) {
        let l = &mut self.links[link as usize];
        let Some(frame) = l.chans[dir].receive(self.now) else {
            return;
        };
        if let Some(next) = l.chans[dir].next_arrival() {
            self.schedule(
                next,
                Ev::Deliver {
                    link,
                    dir: dir as u8,
                },
            );
        }
        let l = &self.links[link as usize];
        let (attach, iface) = l.ends[1 - dir];
        if l.deleted {
            // Neither end exists any more: what was on the wire is gone.
            self.trace.dropped(self.now, iface, "pod deleted", &frame);
            return;
        }
        if matches!(attach, Attach::Switch) {
            self.trace.received_on_wire(self.now, iface, &frame);
        } else {
            self.trace.received(self.now, iface, &frame);
        }
        match attach {
            Attach::Pod(id) => {
                if let Some(Some(slot)) = self.pods.get_mut(id.0 as usize) {
                    if self.crafted {
                        slot.pod.deliver(frame);
                    } else {
                        slot.pod.deliver_offloaded(frame);
                    }
                    self.service_pod(id);
                }
            }
            Attach::NodePort(n) => {
                let mut out = core::mem::take(&mut self.out);
                self.nodes[n.0 as usize].node.pod_input(
                    self.now,
                    link,
                    frame,
                    &mut out,
                    &mut self.trace,
                );
                self.flush_node(n, out);
            }
            Attach::Uplink(n) => {
                let mut out = core::mem::take(&mut self.out);
                let node = &mut self.nodes[n.0 as usize].node;
                if self.crafted {
                    node.uplink_input(self.now, frame, &mut out, &mut self.trace);
                } else {
                    node.uplink_input_offloaded(self.now, frame, &mut out, &mut self.trace);
                }
                self.flush_node(n, out);
            }
            Attach::Switch => self.switch_input(link, frame),
        }
    }

    fn switch_input(&mut self, port: u32, frame: Frame) {
        let Ok(eth) = EthernetFrame::new_checked(&frame[..]) else {
            let iface = self.links[port as usize].ends[1].1;
            self.trace.dropped(self.now, iface, "runt frame", &frame);
            return;
        };
        let (src, dst) = (eth.src_addr(), eth.dst_addr());
        match self
            .switch
            .forward(self.now, BridgePort::Port(port), src, dst)
        {
            Forward::One(BridgePort::Port(out)) => self.send(out, 1, frame),
            Forward::Flood(ports) => {
                for p in ports {
                    if let BridgePort::Port(out) = p {
                        self.send(out, 1, frame.clone());
                    }
                }
            }
            Forward::One(BridgePort::Local) | Forward::Filtered => {}
        }
    }

    fn flush_node(&mut self, n: NodeId, mut out: Output) {
        for (egress, frame) in out.drain(..) {
            match egress {
                Egress::Port(link) => self.send(link, 1, frame),
                Egress::Uplink => {
                    let link = self.nodes[n.0 as usize].uplink;
                    self.send(link, 0, frame);
                }
            }
        }
        self.out = out;
        self.schedule_node_wake(n);
    }

    /// Schedules the node's next timer, if it has one and it is not scheduled yet.
    pub(super) fn schedule_node_wake(&mut self, n: NodeId) {
        let slot = &mut self.nodes[n.0 as usize];
        if let Some(t) = slot.node.poll_at() {
            let t = t.max(self.now);
            if slot.wake != Some(t) {
                slot.wake = Some(t);
                self.schedule(t, Ev::NodeWake(n));
            }
        }
    }

    pub(super) fn service_pod(&mut self, id: PodId) {
        let now = self.now;
        let Some(Some(slot)) = self.pods.get_mut(id.0 as usize) else {
            return;
        };
        if slot.instant != now {
            slot.instant = now;
            slot.same_instant = 0;
        }
        slot.same_instant += 1;
        // eBPF mode: the pod's connect()s go through its node's socket-level load balancer.
        let ebpf = self.config.proxy == Proxy::Ebpf;
        let sock_lb = self
            .nodes
            .get_mut(slot.node.0 as usize)
            .filter(|_| ebpf)
            .and_then(|n| {
                n.node.hooks_mut().find_map(|h| {
                    h.as_any_mut()?
                        .downcast_mut::<crate::dataplane::Dataplane>()
                })
            })
            .and_then(|dp| dp.ebpf_mut())
            .map(|b| b.lb_mut() as &mut (dyn crate::ebpf::SocketLb + 'static));
        let mut frames = slot.pod.service_with(now, sock_lb);
        let (config, seed) = (self.config.icmp, self.config.seed);
        let refused = slot.pod.limit_icmp(now, &mut frames, config, || {
            crate::node::icmp_limit::IcmpLimit::new(
                config,
                SimRng::derive(seed, Stream::PodIcmp(id.0)),
            )
        });
        for (f, why) in refused {
            let iface = self.links[slot.link as usize].ends[0].1;
            self.trace.dropped(now, iface, why, &f);
        }
        for syn in slot.pod.take_overflowed() {
            // Linux's drop reason (`kfree_skb` tracepoint) and the counter `nstat` shows.
            let iface = self.links[slot.link as usize].ends[0].1;
            self.trace.dropped(
                now,
                iface,
                "TCP_LISTEN_OVERFLOW: accept queue full (ListenOverflows)",
                &syn,
            );
        }
        if self.netpol.any_denied {
            let nodes = &self.nodes;
            slot.pod
                .review_denied(&|r, proto| netpol::denied_reason(nodes, r, proto));
        }
        let unfinished = slot.pod.clients().filter(|c| !c.done()).count() as u32;
        self.unfinished_clients = self.unfinished_clients + unfinished - slot.unfinished;
        slot.unfinished = unfinished;
        let link = slot.link;
        let mut next = slot.pod.poll_at(now).map(|t| t.max(now));
        if slot.same_instant > MAX_SERVICES_PER_INSTANT {
            next = next.map(|t| t.max(now + Duration::from_micros(1)));
        }
        let reschedule = match next {
            Some(t) if slot.wake.is_none_or(|w| w != t) => {
                slot.wake = Some(t);
                Some(t)
            }
            _ => None,
        };
        for f in frames {
            self.send(link, 0, f);
        }
        if let Some(t) = reschedule {
            self.schedule(t, Ev::PodWake(id));
        }
    }
}
