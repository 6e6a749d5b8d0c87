//! The sockets a program closed and left to finish their FIN exchange, and the part of the
//! pod's reap that looks at them.

use alloc::vec::Vec;

use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use super::timewait::Settled;
use super::{Handle, Pod, FEW, LINGERING};

/// Sockets a program closed and left to finish (to TIME-WAIT or closed), with their local
/// port and peer (nothing until the first one: an idle pod carries a pointer).
#[derive(Default)]
pub(crate) struct Lingering(pub(super) Option<alloc::boxed::Box<LingerState>>);

#[derive(Default)]
pub(super) struct LingerState {
    /// In the order they came; each socket's tag (`Sockets::set_tag`) is its number here.
    by_order: crate::window::Window<(Handle, crate::program::ports::Held)>,
    /// The next number.
    next: u32,
    /// Handed over since the last reap.
    new: Vec<(Handle, crate::program::ports::Held)>,
    /// Scratch list of the numbers one reap looks at.
    look: Vec<u32>,
}

impl Lingering {
    /// Hands over a socket (closed by its program) with its local port and peer.
    pub(crate) fn push(&mut self, h: Handle, held: crate::program::ports::Held) {
        self.0
            .get_or_insert_with(Default::default)
            .new
            .push((h, held));
    }
}

impl Pod {
    /// The lingering part of [`Pod::reap`].
    pub(super) fn reap_lingering(
        &mut self,
        ling: &mut LingerState,
        now: Instant,
        settled: &mut Vec<Settled>,
    ) {
        let mut look = core::mem::take(&mut ling.look);
        look.clear();
        let mut waiting = Vec::new();
        for (h, key) in ling.new.drain(..) {
            let n = ling.next;
            ling.next = ling.next.wrapping_add(1);
            self.sockets.set_tag(h, (LINGERING, n));
            // Numbers only grow. After 2^32 sockets they wrap, and a socket waits here until
            // the old numbers are all gone.
            match ling.by_order.push(n, (h, key)) {
                Ok(()) => look.push(n),
                Err(back) => waiting.push(back),
            }
        }
        ling.new = waiting;
        if ling.by_order.len() <= FEW {
            // A few: all of them.
            look.clear();
            look.extend(ling.by_order.iter().map(|(n, _)| n));
        } else {
            for h in self
                .changed
                .iter()
                .copied()
                .chain(self.sockets.changed_since_taken())
            {
                if let Some((LINGERING, n)) = self.sockets.tag(h) {
                    if ling.by_order.get(n).is_some_and(|&(mine, _)| mine == h) {
                        look.push(n);
                    }
                }
            }
            crate::sort::sort_dedup_u32(&mut look);
        }
        for &n in &look {
            let Some(&(h, key)) = ling.by_order.get(n) else {
                continue;
            };
            let sock = self.sockets.get::<tcp::Socket>(h);
            let waiting = sock.state() == tcp::State::TimeWait;
            if sock.state() == tcp::State::Closed {
                ling.by_order.remove(n);
                self.ports.release_tcp(key);
                self.pool.put(self.sockets.remove(h));
            } else if waiting {
                ling.by_order.remove(n);
                let smoltcp::socket::Socket::Tcp(sock) = self.sockets.remove(h) else {
                    continue;
                };
                let tx = &self.device.tx;
                if let Some(s) = self.timewait.settle(&mut self.iface, now, sock, key, tx) {
                    settled.push(s);
                }
            }
        }
        ling.look = look;
    }
}
