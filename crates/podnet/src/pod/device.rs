//! A pod's `eth0` as its stack sees it: a pair of frame queues, with a veth's offloads.
//!
//! Linux gives a veth TCP segmentation offload (`ethtool -k`: `tcp-segmentation-offload:
//! on`), so a pod's TCP hands it super-segments of many MSS-sized segments, one packet for
//! the whole path to wherever it meets a wire. The device here says the same to smoltcp
//! (its `segmentation-offload` feature), with Linux's limit on their size
//! ([`crate::gso::tso_payload_max`]), and keeps the segment size on the frame.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::num::NonZeroUsize;

use smoltcp::phy::{self, Checksum, Device, DeviceCapabilities, Medium, PacketMeta};
use smoltcp::time::Instant;

use crate::link::Frame;

/// IP MTU of a pod's `eth0` with the default (`host-gw`) CNI; VXLAN lowers it to
/// [`crate::node::vxlan::POD_MTU`].
pub const POD_MTU: usize = 1500;

/// The pod's network device: frames in, frames out.
#[derive(Debug)]
pub struct PodDevice {
    pub(super) rx: VecDeque<Frame>,
    pub(super) tx: Vec<Frame>,
    /// Buffers of frames the pod has received, kept for the next frames it sends (a bulk
    /// transfer then allocates and frees no buffer per frame). Shared by the receive and the
    /// transmit token of one `receive`, hence the cell.
    spare: RefCell<Vec<Frame>>,
    /// IP MTU.
    mtu: usize,
    /// The largest TCP payload of a super-segment; `None` with TSO off.
    tso_max: Option<NonZeroUsize>,
    /// Bytes of TCP options in a segment after the handshake (12 with timestamps).
    tcp_options: usize,
}

/// A pod's `eth0`: its IP MTU and whether it offloads TCP segmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nic {
    /// IP MTU.
    pub mtu: usize,
    /// TCP segmentation offload (a veth's default; `ethtool -K eth0 tso off gso off` turns
    /// it off).
    pub tso: bool,
}

impl Nic {
    /// A veth of this IP MTU with TSO on, as Linux creates it.
    pub const fn veth(mtu: usize) -> Self {
        Nic { mtu, tso: true }
    }

    /// A device of this IP MTU without segmentation offload.
    pub const fn plain(mtu: usize) -> Self {
        Nic { mtu, tso: false }
    }
}

/// Spare buffers a pod keeps at most ([`PodDevice`]).
const SPARE_FRAMES: usize = 16;

impl Default for PodDevice {
    fn default() -> Self {
        PodDevice::with_mtu(POD_MTU)
    }
}

impl PodDevice {
    /// A device with this IP MTU (its Ethernet MTU is 14 bytes more), without TSO.
    pub fn with_mtu(mtu: usize) -> Self {
        PodDevice::new(Nic::plain(mtu), false)
    }

    /// A device like `nic`, for a stack that sends TCP timestamps or not (what a segment's
    /// options take from its MSS).
    pub fn new(nic: Nic, timestamps: bool) -> Self {
        let tcp_options = if timestamps { 12 } else { 0 };
        let tso_max = match nic.tso {
            true => crate::gso::tso_payload_max(nic.mtu - tcp_options),
            false => None,
        };
        PodDevice {
            rx: VecDeque::new(),
            tx: Vec::new(),
            spare: RefCell::new(Vec::new()),
            mtu: nic.mtu,
            tso_max,
            tcp_options,
        }
    }

    /// Keeps the buffer of a frame the pod is done with for a frame it sends.
    fn recycle(spare: &RefCell<Vec<Frame>>, frame: Frame, mtu: usize) {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARE_FRAMES && frame.capacity() >= mtu + 14 {
            spare.push(frame);
        }
    }
}

/// Receive token: owns one arriving frame; its buffer goes to the device's spares after.
pub struct RxToken<'a> {
    frame: Frame,
    spare: &'a RefCell<Vec<Frame>>,
    mtu: usize,
}

/// Transmit token: appends one frame to the device's output, in a spare buffer if there is
/// one. Every buffer holds a whole Ethernet frame of the MTU, so any can be reused.
pub struct TxToken<'a> {
    tx: &'a mut Vec<Frame>,
    spare: &'a RefCell<Vec<Frame>>,
    mtu: usize,
    /// The segment size smoltcp asked for ([`PacketMeta`]), 0 for an ordinary frame.
    gso_size: u16,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.frame);
        PodDevice::recycle(self.spare, self.frame, self.mtu);
        r
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = self
            .spare
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Frame::new(Vec::with_capacity(len.max(self.mtu + 14))));
        // Zeroed as a fresh buffer would be: smoltcp leaves some bytes alone (the padding
        // after a TCP option list's end, for one).
        frame.clear();
        frame.resize(len, 0);
        frame.set_gso_size(self.gso_size);
        let r = f(&mut frame);
        self.tx.push(frame);
        r
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.gso_size = meta.segmentation_offload_size.map_or(0, |s| s.get());
    }
}

impl Device for PodDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        let rx = RxToken {
            frame,
            spare: &self.spare,
            mtu: self.mtu,
        };
        let tx = TxToken {
            tx: &mut self.tx,
            spare: &self.spare,
            mtu: self.mtu,
            gso_size: 0,
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            tx: &mut self.tx,
            spare: &self.spare,
            mtu: self.mtu,
            gso_size: 0,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        // Filled in on transmit, never verified on receive: a frame reaches a pod's stack
        // verified or trusted, as a veth or an offloading NIC hands the kernel's TCP a
        // `CHECKSUM_PARTIAL` or `CHECKSUM_UNNECESSARY` skb ([`Pod::deliver`] verifies the
        // rest).
        caps.checksum.ipv4 = Checksum::Tx;
        // TCP's when the pod finishes the segment on its way out, after its timestamp
        // (`super::tsopt::finish`); smoltcp leaves it to a device that segments anyway.
        caps.checksum.tcp = Checksum::None;
        caps.checksum.udp = Checksum::Tx;
        caps.checksum.icmpv4 = Checksum::Tx;
        // smoltcp's limit is the whole frame: Ethernet, IP and TCP headers with the options
        // of a segment (the timestamp's 12 bytes, which it takes off itself) and the payload.
        caps.segmentation.tcpv4 = self
            .tso_max
            .and_then(|max| NonZeroUsize::new(max.get() + 14 + 20 + 20 + self.tcp_options));
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};

    #[test]
    fn a_frame_sent_in_a_reused_buffer_starts_zeroed_like_a_fresh_one() {
        let mut dev = PodDevice::default();
        dev.rx.push_back(Frame::new(alloc::vec![0xff; 1514]));
        let (rx, tx) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.len()), 1514);
        // The received buffer is now the spare one the next frame is built in.
        let spare = tx.spare.borrow().len();
        tx.consume(60, |f| f[..14].fill(1));
        assert_eq!((spare, dev.spare.borrow().len()), (1, 0));
        let sent = &dev.tx[0];
        assert_eq!(sent.len(), 60);
        assert!(sent[..14].iter().all(|&b| b == 1));
        assert!(sent[14..].iter().all(|&b| b == 0), "{sent:?}");
        // A frame too small to hold a whole one of the MTU is not kept.
        dev.rx.push_back(Frame::new(alloc::vec![0; 60]));
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        rx.consume(|_| ());
        assert_eq!(dev.spare.borrow().len(), 0);
    }

    #[test]
    fn tso_on_a_veth() {
        let veth = PodDevice::new(Nic::veth(1500), true).capabilities();
        // 45 segments of 1448 bytes (1460 less the timestamp option), with the headers and
        // options smoltcp counts in.
        assert_eq!(
            veth.segmentation.tcpv4.map(|n| n.get()),
            Some(45 * 1448 + 54 + 12)
        );
        assert!(!veth.checksum.tcp.tx(), "the pod finishes TCP checksums");
        let no_ts = PodDevice::new(Nic::veth(1500), false).capabilities();
        assert_eq!(
            no_ts.segmentation.tcpv4.map(|n| n.get()),
            Some(44 * 1460 + 54)
        );
        let plain = PodDevice::new(Nic::plain(1500), true).capabilities();
        assert_eq!(plain.segmentation.tcpv4, None);
    }

    #[test]
    fn the_device_keeps_the_segment_size() {
        let mut dev = PodDevice::new(Nic::veth(1500), true);
        let mut tx = dev.transmit(Instant::ZERO).unwrap();
        let mut meta = PacketMeta::default();
        meta.segmentation_offload_size = core::num::NonZeroU16::new(1448);
        tx.set_meta(meta);
        tx.consume(3054, |f| f.fill(1));
        assert_eq!(dev.tx[0].gso_size(), 1448);
        let tx = dev.transmit(Instant::ZERO).unwrap();
        tx.consume(60, |f| f.fill(1));
        assert_eq!(dev.tx[1].gso_size(), 0);
    }
}
