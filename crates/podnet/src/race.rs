//! Several CPUs per node, and the conntrack race between them.
//!
//! Linux handles packets on every CPU at once. A packet that starts a connection gets an
//! *unconfirmed* entry at its conntrack lookup (PREROUTING / OUTPUT), which no other CPU can
//! see, and the entry enters the hash only at **confirmation**, when the packet leaves
//! POSTROUTING / INPUT (`__nf_conntrack_confirm`). Two packets of the same flow on two CPUs
//! can both miss the lookup and both create an entry; NAT on each CPU chooses its mapping
//! seeing only confirmed entries (`nf_nat_used_tuple`), so two new connections can also pick
//! the same masquerade port. The second confirmation then clashes: what happens depends on
//! the kernel ([`crate::conntrack::Kernel`]): the packet is dropped (`insert_failed`), or the
//! clash is resolved (`clash_resolve`).
//!
//! podnet runs one packet at a time, through all the hooks at once, so it reproduces the
//! interleaving instead: a packet's walk from lookup to confirmation is taken to last
//! [`WINDOW`]. When a packet arrives on one CPU less than [`WINDOW`] after another CPU
//! confirmed an entry, the two walks overlapped: this packet's lookup ran before that
//! confirmation, so the entry is hidden from it ([`crate::conntrack::Conntrack::hide`])
//! until its own confirmation, which sees it. Which CPU a packet runs on comes from the seed
//! ([`crate::node::Node::set_cpus`]); with one CPU nothing changes.

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::time::{Duration, Instant};

use crate::conntrack::table::bits;
use crate::conntrack::{proto, Confirmed, Conntrack, CtDrop, Kernel, Tuple};
use crate::netfilter::Notes;

/// How long a packet's walk from its conntrack lookup to its confirmation takes: two packets
/// arriving on two CPUs closer together than this overlap.
pub const WINDOW: Duration = Duration::from_micros(10);

/// The trace note of confirming entry `idx` (of a `udp` packet) at `now`, which ended as
/// `done`.
pub fn confirm_note(
    ct: &Conntrack,
    now: Instant,
    idx: u32,
    udp: bool,
    done: &Result<Confirmed, CtDrop>,
) -> String {
    match done {
        Err(_) => alloc::format!(
            "conntrack: not resolved ({}, Linux {}): packet dropped, insert_failed and drop counted",
            if udp {
                "UDP with another NAT"
            } else {
                "no clash resolution for this protocol"
            },
            ct.config().kernel
        ),
        Ok(Confirmed::Reused { winner }) => alloc::format!(
            "conntrack: clash resolved: the packet takes the winner's entry {}",
            ct.line(*winner, now)
        ),
        Ok(Confirmed::ReplyOnly { .. }) => alloc::format!(
            "conntrack: clash resolved: inserted by its REPLY tuple only, for 1 s (IPS_NAT_CLASH): {}",
            ct.line(idx, now)
        ),
        Ok(Confirmed::Inserted) => alloc::format!("conntrack: confirmed {}", ct.line(idx, now)),
    }
}

/// An entry confirmed lately.
#[derive(Clone, Copy, Debug)]
struct Recent {
    at: Instant,
    cpu: u32,
    idx: u32,
    orig: Tuple,
}

/// One node's CPUs as the dataplane sees them.
#[derive(Debug)]
pub struct Race {
    /// The node's CPUs (at least 1).
    pub cpus: u32,
    /// The CPU of the packet being handled.
    cpu: u32,
    /// Entries confirmed within the last [`WINDOW`], oldest first.
    recent: Vec<Recent>,
    /// NAT's port rovers (TCP, UDP), kernels before 5.0.
    rover: [u16; 2],
}

impl Default for Race {
    fn default() -> Self {
        Race {
            cpus: 1,
            cpu: 0,
            recent: Vec::new(),
            rover: [0; 2],
        }
    }
}

impl Race {
    /// The next packets run on `cpu`.
    pub fn steer(&mut self, _now: Instant, cpu: u32) {
        self.cpu = cpu;
    }

    /// Before the lookup of a packet arriving at `now`: hides from it the entries another
    /// CPU confirmed less than [`WINDOW`] ago. `notes` (when tracing) tells the CPU, and which
    /// of those entries hold the tuple of `packet` (the race it is in).
    pub fn hide_concurrent(
        &mut self,
        ct: &mut Conntrack,
        now: Instant,
        packet: &[u8],
        notes: Option<&mut Notes>,
    ) {
        if self.cpus <= 1 {
            return;
        }
        self.recent.retain(|r| r.at + WINDOW > now);
        for r in &self.recent {
            let e = ct.entry(r.idx);
            let same = e.has(bits::USED) && e.has(bits::CONFIRMED) && e.tuple(0) == r.orig;
            if r.cpu != self.cpu && same {
                ct.hide(r.idx);
            }
        }
        if let Some(notes) = notes {
            let t = Tuple::of_packet(packet);
            notes.push(alloc::format!("conntrack: cpu {}", self.cpu));
            let mine = |r: &&Recent| {
                let e = ct.entry(r.idx);
                t.is_some_and(|t| e.tuple(0) == t || e.tuple(1) == t)
            };
            for r in self
                .recent
                .iter()
                .filter(|r| ct.hidden().contains(&r.idx))
                .filter(mine)
            {
                notes.push(alloc::format!(
                    "conntrack: this lookup cannot see {}: cpu {} confirms it while this packet is on its way (they arrived {} us apart, less than the {} us from lookup to confirm)",
                    ct.line(r.idx, now),
                    r.cpu,
                    (now - r.at).total_micros(),
                    WINDOW.total_micros()
                ));
            }
        }
    }

    /// Entry `idx` was confirmed at `now` by the packet being handled.
    pub fn confirmed(&mut self, ct: &Conntrack, now: Instant, idx: u32) {
        if self.cpus <= 1 {
            return;
        }
        self.recent.push(Recent {
            at: now,
            cpu: self.cpu,
            idx,
            orig: ct.entry(idx).tuple(0),
        });
    }

    /// Before confirming `idx`: the clash its confirmation will meet, explained (the pair:
    /// this packet's entry and the one that won the race).
    pub fn explain_clash(&self, ct: &Conntrack, now: Instant, idx: u32) -> Option<String> {
        let e = ct.entry(idx);
        let (o, r) = (e.tuple(0), e.tuple(1));
        let table = ct.table();
        let (w, _) = table.lookup(&o).or_else(|| table.lookup(&r))?;
        let by = self
            .recent
            .iter()
            .rev()
            .find(|x| x.idx == w)
            .map(|x| alloc::format!(" by cpu {}", x.cpu))
            .unwrap_or_default();
        Some(alloc::format!(
            "conntrack: insert clash on cpu {}: this packet's entry {o} -> reply {r} meets one confirmed meanwhile{by}: {}",
            self.cpu,
            ct.line(w, now)
        ))
    }

    /// The port rover NAT starts its search at for `proto`, on kernels that had one.
    pub fn rover(&mut self, kernel: Kernel, p: u8) -> Option<&mut u16> {
        if !kernel.nat_port_rover() {
            return None;
        }
        match p {
            proto::TCP => Some(&mut self.rover[0]),
            proto::UDP => Some(&mut self.rover[1]),
            _ => None,
        }
    }
}
