//! Sockets recycled across connections.
//!
//! A smoltcp socket owns its buffers (two `tcp_buffer`-byte rings for TCP, two 64 KiB packet
//! rings for UDP) and smoltcp offers no way to take them back, so a pod keeps the closed sockets
//! themselves and hands them out again instead of allocating (and zeroing) fresh buffers for
//! every connection. Nothing in a buffer needs clearing for correctness: smoltcp's `connect` and
//! `listen` reset the ring indices and the connection state.
//!
//! What smoltcp 0.14 leaves behind on a closed TCP socket, and how a reused one still behaves
//! as a fresh one:
//! - the options set through its API (timeout, keep-alive, hop limit, Nagle, delayed-ACK,
//!   congestion control): [`SocketPool::tcp`] sets each back to `Socket::new`'s default (Reno,
//!   as every podnet socket uses, with a fresh controller);
//! - four private fields `connect`/`listen` do not reset (`tcp::Socket::reset` is private):
//!   `local_rx_last_ack` and `local_rx_dup_acks` (duplicate-ACK detection; the first ACK of the
//!   new connection replaces them unless it equals the old value, a 2^-32 chance with random
//!   initial sequence numbers), `local_rx_last_seq` (read only while the reassembly buffer,
//!   which `reset` empties, holds data) and `pending_fast_retransmit`, which stays set only when
//!   a fast retransmit was due with nothing left to send (a lost FIN). A socket that carried it
//!   would send its first data segment without the window check; only sockets that closed
//!   cleanly (TIME-WAIT expired, or LAST-ACK acknowledged) are pooled, which is where it can
//!   still happen, so podnet accepts it.
//!
//! A pod's pool never holds more than [`MAX_POOLED`] sockets of each kind.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::socket::{tcp, udp, Socket};
use smoltcp::time::Duration;

/// Closed sockets kept for reuse, per kind and pod.
pub const MAX_POOLED: usize = 1024;
/// Datagrams a UDP socket queues in each direction.
pub const UDP_QUEUE: usize = 64;
/// smoltcp's default delayed-ACK time (`ACK_DELAY_DEFAULT`).
const ACK_DELAY: Duration = Duration::from_millis(10);

/// Closed sockets of one pod, ready for the next connection.
#[derive(Default)]
pub struct SocketPool {
    tcp_buffer: usize,
    /// TCP sockets offer timestamps.
    timestamps: bool,
    tcp: Vec<tcp::Socket<'static>>,
    udp: Vec<udp::Socket<'static>>,
    /// Sockets created (buffers allocated) so far.
    pub created: u64,
    /// Sockets handed out again.
    pub reused: u64,
}

impl core::fmt::Debug for SocketPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SocketPool")
            .field("tcp", &self.tcp.len())
            .field("udp", &self.udp.len())
            .field("created", &self.created)
            .field("reused", &self.reused)
            .finish()
    }
}

/// smoltcp's TSval: zero here, filled in with the pod's clock as the segment leaves
/// (`super::tsopt`), since smoltcp's generator is a function without state.
fn unclocked() -> u32 {
    0
}

impl SocketPool {
    /// A pool for TCP sockets with `tcp_buffer` bytes each way, offering timestamps or not.
    pub fn new(tcp_buffer: usize, timestamps: bool) -> Self {
        SocketPool {
            tcp_buffer,
            timestamps,
            ..SocketPool::default()
        }
    }

    /// A closed TCP socket with `tcp_buffer` bytes each way and Reno congestion control, as
    /// `Socket::new` makes it.
    pub fn tcp(&mut self) -> tcp::Socket<'static> {
        let Some(mut s) = self.tcp.pop() else {
            self.created += 1;
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; self.tcp_buffer]),
                tcp::SocketBuffer::new(vec![0; self.tcp_buffer]),
            );
            s.set_congestion_control(tcp::CongestionControl::Reno);
            s.set_tsval_generator(self.timestamps.then_some(unclocked as fn() -> u32));
            return s;
        };
        self.reused += 1;
        s.set_timeout(None);
        s.set_keep_alive(None);
        s.set_hop_limit(None);
        s.set_nagle_enabled(true);
        s.set_ack_delay(Some(ACK_DELAY));
        s.set_congestion_control(tcp::CongestionControl::Reno);
        // A connection whose peer did not offer timestamps took the generator away.
        s.set_tsval_generator(self.timestamps.then_some(unclocked as fn() -> u32));
        s
    }

    /// An unbound UDP socket queueing [`UDP_QUEUE`] datagrams (64 KiB) each way.
    pub fn udp(&mut self) -> udp::Socket<'static> {
        let Some(mut s) = self.udp.pop() else {
            self.created += 1;
            return udp::Socket::new(
                udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_QUEUE], vec![0; 65536]),
                udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_QUEUE], vec![0; 65536]),
            );
        };
        self.reused += 1;
        s.set_hop_limit(None);
        s
    }

    /// Takes back a socket removed from a `SocketSet`: a TCP socket only when closed (others
    /// are dropped), a UDP socket after unbinding it.
    pub fn put(&mut self, socket: Socket<'static>) {
        match socket {
            Socket::Tcp(s) if s.state() == tcp::State::Closed => self.put_tcp(s),
            Socket::Udp(mut s) if self.udp.len() < MAX_POOLED => {
                s.close();
                self.udp.push(s);
            }
            _ => {}
        }
    }

    /// Takes back a closed TCP socket.
    pub fn put_tcp(&mut self, s: tcp::Socket<'static>) {
        if s.state() == tcp::State::Closed && self.tcp.len() < MAX_POOLED {
            self.tcp.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_socket_has_fresh_options_and_its_buffers() {
        let mut p = SocketPool::new(4096, true);
        let mut s = p.tcp();
        s.set_timeout(Some(Duration::from_secs(1)));
        s.set_hop_limit(Some(3));
        s.set_nagle_enabled(false);
        s.set_ack_delay(None);
        p.put(Socket::Tcp(s));
        let s = p.tcp();
        assert_eq!((p.created, p.reused), (1, 1));
        assert_eq!(s.timeout(), None);
        assert_eq!(s.hop_limit(), None);
        assert!(s.nagle_enabled());
        assert_eq!(s.ack_delay(), Some(ACK_DELAY));
        assert_eq!(s.recv_capacity(), 4096);
        assert_eq!(s.send_capacity(), 4096);
    }

    #[test]
    fn open_tcp_sockets_are_not_pooled_and_udp_ones_are_unbound() {
        let mut p = SocketPool::new(4096, true);
        let mut s = p.tcp();
        s.listen(80).unwrap();
        p.put(Socket::Tcp(s));
        let _ = p.tcp();
        assert_eq!((p.created, p.reused), (2, 0));
        let mut u = p.udp();
        u.bind(53).unwrap();
        p.put(Socket::Udp(u));
        let u = p.udp();
        assert!(!u.is_open());
        assert_eq!(p.reused, 1);
    }
}
