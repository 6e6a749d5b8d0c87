//! Two-CPU races, replayed as races. podnet handles one packet at a time; on a node with
//! several CPUs, a packet `L` whose conntrack lookup came before another CPU confirmed the
//! entry of the packet `W` just before it cannot see that entry (see podnet's `race` module),
//! creates its own, and its confirmation then clashes. Injected one after the other, the
//! kernel would confirm `W` before `L`'s lookup and never race. So the replay holds both in
//! an NFQUEUE between their lookup (and DNAT) and their confirmation: `iptables -t mangle ...
//! -j NFQUEUE` rules for each packet (its flow's original tuple and its IP ID) in `POSTROUTING`
//! and `INPUT` (priority -150, after DNAT, before SNAT at 100 and the confirmation last),
//! loaded once for the node; `W` injected and held, `L`
//! injected and held (its lookup misses `W`'s unconfirmed entry, as podnet's did), then `W`
//! released (it confirms), then `L` released: the kernel's own `__nf_conntrack_confirm` meets
//! the clash and resolves it, or drops the packet, as the kernel it is does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use podnet::conntrack::Tuple;

use crate::frame;
use crate::netns::ns_run;
use crate::plan::NodePlan;
use crate::sys;

/// The NFQUEUE number the harness uses.
const QUEUE: u16 = 4711;

/// The races of `node` to replay held: raced step `l` by the latest step `w` before it that
/// created an entry of the same tuple (the one its lookup could not see), with no re-sync
/// between them and neither in another pair, as `w -> l`; and the packets to hold, each by
/// its flow's original tuple and its [`hold_key`].
pub fn pairs(node: &NodePlan) -> (BTreeMap<usize, usize>, Vec<(Tuple, u32)>) {
    let mut pairs: BTreeMap<usize, usize> = BTreeMap::new();
    let mut held = Vec::new();
    let key = |si: usize| hold_key(&node.steps[si].frame);
    for (l, ls) in node.steps.iter().enumerate().filter(|(_, s)| s.raced) {
        let Some((w, t)) = (0..l).rev().find_map(|w| {
            let t = ls
                .ct_new
                .iter()
                .find(|t| node.steps[w].ct_new.contains(t))?;
            Some((w, *t))
        }) else {
            continue;
        };
        let resync_between = node
            .resyncs
            .iter()
            .any(|r| r.before_step > w && r.before_step <= l);
        let in_pair = pairs.contains_key(&w) || pairs.values().any(|&x| x == w);
        if resync_between || in_pair {
            continue;
        }
        if let (Some(a), Some(b)) = (key(w), key(l)) {
            if a != b {
                pairs.insert(w, l);
                held.extend([(t, a), (t, b)]);
            }
        }
    }
    (pairs, held)
}

/// What tells a packet from the other packets of its flow and survives NAT (a pod's stack
/// leaves the IP ID at 0): a TCP segment's sequence number, a UDP datagram's first four
/// payload bytes (a DNS query's id and flags).
fn hold_key(frame: &[u8]) -> Option<u32> {
    let ip = frame::hooked_ip(frame)?;
    let l4 = usize::from(ip[0] & 0x0f) * 4;
    let at = match ip[9] {
        6 => l4 + 4,
        17 => l4 + 8,
        _ => return None,
    };
    Some(u32::from_be_bytes(ip.get(at..at + 4)?.try_into().ok()?))
}

/// A held packet.
pub struct Held(nfq::Message);

/// The queue of one node's namespace.
pub struct Racer {
    q: nfq::Queue,
    node_ns: String,
}

impl Racer {
    /// Opens and binds the queue in `node_ns`.
    pub fn open(node_ns: &str) -> Result<Racer, String> {
        let mut q = {
            let _g = sys::enter_netns(node_ns).map_err(|e| format!("setns {node_ns}: {e}"))?;
            nfq::Queue::open().map_err(|e| format!("{node_ns}: NFQUEUE socket: {e}"))?
        };
        q.bind(QUEUE)
            .map_err(|e| format!("{node_ns}: binding NFQUEUE {QUEUE}: {e}"))?;
        q.set_nonblocking(true);
        let r = Racer {
            q,
            node_ns: node_ns.to_string(),
        };
        Ok(r)
    }

    /// Loads the rules that hold the packets of `held`, each given by its connection's
    /// original tuple and the four bytes NAT leaves alone that tell it from the flow's other
    /// packets (a TCP sequence number, a UDP payload's first four bytes), in one
    /// `iptables-restore`.
    pub fn hold(&self, held: &[(Tuple, u32)]) -> Result<(), String> {
        let mut input = String::from("*mangle\n");
        for (t, id) in held {
            let (proto, at) = match t.proto {
                6 => ("tcp", 4),
                17 => ("udp", 8),
                p => return Err(format!("no race replay for protocol {p}")),
            };
            for chain in ["POSTROUTING", "INPUT"] {
                input += &format!(
                    "-A {chain} -p {proto} -m conntrack --ctorigsrc {} --ctorigdst {} \
                     --ctorigsrcport {} --ctorigdstport {} --ctdir ORIGINAL -m u32 --u32 \
                     \"0x0>>0x16&0x3c@{at:#x}={id:#x}\" -j NFQUEUE --queue-num {QUEUE}\n",
                    t.src, t.dst, t.sport, t.dport
                );
            }
        }
        input += "COMMIT\n";
        ns_run(
            &self.node_ns,
            "iptables-restore",
            &["--noflush"],
            Some(&input),
        )
        .map(|_| ())
        .map_err(|e| format!("{}: loading the NFQUEUE rules: {e}", self.node_ns))
    }

    /// The next packet the queue holds, within `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<Held>, String> {
        let start = Instant::now();
        loop {
            match self.q.recv() {
                Ok(m) => return Ok(Some(Held(m))),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("{}: NFQUEUE recv: {e}", self.node_ns)),
            }
            if start.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Lets a held packet go on (`NF_ACCEPT`: the hooks after the queue's).
    pub fn release(&mut self, h: Held) -> Result<(), String> {
        let mut m = h.0;
        m.set_verdict(nfq::Verdict::Accept);
        self.q
            .verdict(m)
            .map_err(|e| format!("{}: NFQUEUE verdict: {e}", self.node_ns))
    }
}
