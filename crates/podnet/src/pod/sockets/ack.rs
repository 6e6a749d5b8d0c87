//! The pod's side of `pod::delack`: deciding, before a segment goes in to its socket, when
//! that socket acknowledges it, and sending an ACK due at once.

use smoltcp::iface::Interface;
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::Instant;

use super::{PodDevice, Sockets};
use crate::link::Frame;
use crate::pod::delack::{DelAck, Reply, Segment};

/// What [`Sockets::plan_ack`] decided for an arriving segment, for
/// [`Sockets::settle_ack`] to keep once it is in, or undo if the socket did not take it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AckPlan {
    reply: Reply,
    before: DelAck,
    state: tcp::State,
    recv: usize,
    payload: u32,
}

impl Sockets {
    /// Decides when the socket in `slot` acknowledges `frame`, which is about to go in to it
    /// (`pod::delack`), and sets its delayed-ACK timer to match; `None` for a frame that
    /// leaves that alone (no TCP segment with a SYN, data or a FIN, or no TCP socket).
    pub(crate) fn plan_ack(&mut self, slot: u32, frame: &Frame, now: Instant) -> Option<AckPlan> {
        let seg = Segment::parse(frame, frame.gso_size())?;
        if !seg.syn && !seg.fin && seg.payload == 0 {
            return None;
        }
        let s = self.slots.get_mut(slot as usize)?.as_mut()?;
        let Socket::Tcp(sock) = s.set.get_mut::<Socket<'static>>(s.inner) else {
            return None;
        };
        let before = s.ack;
        let (state, recv) = (sock.state(), sock.recv_queue());
        let reply = s.ack.arriving(&seg, state, sock.recv_capacity(), now);
        if let Some(delay) = reply.ack_delay(now) {
            sock.set_ack_delay(Some(delay));
        }
        Some(AckPlan {
            reply,
            before,
            state,
            recv,
            payload: seg.payload,
        })
    }

    /// Keeps what [`Sockets::plan_ack`] decided if the socket took the segment in order (its
    /// data, or the SYN or FIN that changed its state), else undoes it; whether the socket is
    /// to acknowledge it at once ([`Sockets::ack_at_once`]).
    pub(crate) fn settle_ack(&mut self, slot: u32, plan: AckPlan) -> bool {
        let Some(Some(s)) = self.slots.get_mut(slot as usize) else {
            return false;
        };
        let Socket::Tcp(sock) = s.set.get::<Socket<'static>>(s.inner) else {
            return false;
        };
        let taken = if plan.payload > 0 {
            sock.recv_queue() > plan.recv
        } else {
            sock.state() != plan.state
        };
        if !taken {
            s.ack = plan.before;
            return false;
        }
        plan.reply == Reply::Now
    }

    /// Sends what the socket in `slot` has to send now (its ACK due at once), before the
    /// programs run: one segment, as Linux's softirq sends it before the application is
    /// scheduled. The socket stays marked, so the next egress serves it as usual.
    pub(crate) fn ack_at_once(
        &mut self,
        slot: u32,
        iface: &mut Interface,
        now: Instant,
        device: &mut PodDevice,
    ) {
        if let Some(Some(s)) = self.slots.get_mut(slot as usize) {
            let _ = iface.poll_egress(now, device, &mut s.set);
        }
    }
}
