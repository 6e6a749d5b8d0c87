//! In-memory libpcap capture files.
//!
//! [`PcapBuffer`] collects frames into a classic libpcap ("tcpdump") file held
//! in a `Vec<u8>`, ready to be written to disk and opened with `tcpdump -r` or
//! Wireshark. The bytes are produced by smoltcp's own pcap support: the buffer
//! implements [`PcapSink`] (only `write` is ours) and uses the trait's
//! provided `global_header` and `packet` methods.
//!
//! # Format
//!
//! * A 24-byte global header: magic `0xa1b2c3d4`, version 2.4, time zone 0,
//!   accuracy 0, snapshot length 262144, link type 1 (`LINKTYPE_ETHERNET`).
//! * Per packet, a 16-byte record header: timestamp seconds, timestamp
//!   microseconds, captured length, original length; then the frame bytes.
//!   Frames longer than the snapshot length are cut to it (the original
//!   length still records the full size).
//!
//! All header fields are written in the *native* byte order of the machine
//! that wrote them, exactly as smoltcp's `PcapSink` does. Readers detect the
//! order from the magic number (`d4 c3 b2 a1` on little-endian hosts), so the
//! files are portable.
//!
//! # Timestamps
//!
//! Timestamps are the simulator's *virtual* [`Instant`]s, not wall-clock time:
//! a frame recorded at virtual time 1.5 s has `ts_sec = 1, ts_usec = 500000`,
//! so tools show captures as starting on 1970-01-01. Virtual time is expected
//! to start at zero; a negative instant would be written with its two's
//! complement bits. Runs with the same seed therefore produce byte-identical
//! capture files.

use alloc::vec::Vec;

use smoltcp::phy::{PcapLinkType, PcapSink};
use smoltcp::time::Instant;

/// A libpcap capture file of Ethernet frames, built in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapBuffer {
    bytes: Vec<u8>,
    packets: usize,
}

impl PcapBuffer {
    /// Starts an empty capture with link type Ethernet (the global header is
    /// written immediately).
    pub fn ethernet() -> Self {
        let mut buffer = PcapBuffer {
            bytes: Vec::new(),
            packets: 0,
        };
        buffer.global_header(PcapLinkType::Ethernet);
        buffer
    }

    /// Starts an empty capture in Linux cooked format (`LINKTYPE_LINUX_SLL`, 113), what
    /// `tcpdump -i any` writes: every interface in one file, each packet with a 16-byte SLL
    /// header (direction, link-layer address, protocol) instead of its Ethernet header.
    pub fn linux_cooked() -> Self {
        let mut buffer = PcapBuffer {
            bytes: Vec::new(),
            packets: 0,
        };
        buffer.global_header(PcapLinkType::Unknown(LINKTYPE_LINUX_SLL));
        buffer
    }

    /// Appends an Ethernet frame to a cooked capture: `outgoing` for a frame sent by the
    /// interface (SLL packet type 4), else received (0 to us, 1 broadcast, 2 multicast).
    /// Frames shorter than an Ethernet header are skipped.
    pub fn record_cooked(&mut self, at: Instant, outgoing: bool, frame: &[u8]) {
        if frame.len() < 14 {
            return;
        }
        let dst = &frame[0..6];
        let packet_type: u16 = if outgoing {
            4
        } else if dst == [0xff; 6] {
            1
        } else if dst[0] & 1 == 1 {
            2
        } else {
            0
        };
        let mut sll = [0u8; 16];
        sll[0..2].copy_from_slice(&packet_type.to_be_bytes());
        sll[2..4].copy_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
        sll[4..6].copy_from_slice(&6u16.to_be_bytes());
        sll[6..12].copy_from_slice(&frame[6..12]); // the sender's MAC
        sll[14..16].copy_from_slice(&frame[12..14]); // EtherType
        let payload = &frame[14..];
        self.packet_header(at, sll.len() + payload.len());
        self.write(&sll);
        self.write(payload);
        self.packets += 1;
    }

    /// Appends one Ethernet frame seen at virtual time `at`.
    ///
    /// smoltcp's writer panics on a frame longer than `u32::MAX` bytes, which no
    /// Ethernet link produces.
    pub fn record(&mut self, at: Instant, frame: &[u8]) {
        self.packet(at, frame);
        self.packets += 1;
    }

    /// The capture file so far (global header and every record).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Forgets the bytes so far (saved elsewhere, say appended to a file): what follows
    /// continues the same capture, so [`PcapBuffer::as_bytes`] is then only the part not
    /// saved yet. The packet count stays.
    pub fn clear_bytes(&mut self) {
        self.bytes.clear();
    }

    /// Consumes the buffer, returning the capture file.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Number of frames recorded.
    pub fn packets(&self) -> usize {
        self.packets
    }
}

/// `LINKTYPE_LINUX_SLL`: Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: u32 = 113;

impl PcapSink for PcapBuffer {
    fn write(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr};

    const GLOBAL_HEADER_LEN: usize = 24;
    const RECORD_HEADER_LEN: usize = 16;

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([bytes[at], bytes[at + 1]])
    }

    fn frame(payload_len: usize, ethertype: EthernetProtocol) -> Vec<u8> {
        let repr = EthernetRepr {
            src_addr: EthernetAddress([0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x05]),
            dst_addr: EthernetAddress([0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x01]),
            ethertype,
        };
        let mut bytes = alloc::vec![0u8; repr.buffer_len() + payload_len];
        let mut view = EthernetFrame::new_unchecked(&mut bytes[..]);
        repr.emit(&mut view);
        for (i, b) in view.payload_mut().iter_mut().enumerate() {
            *b = i as u8;
        }
        bytes
    }

    #[test]
    fn empty_capture_is_just_the_global_header() {
        let pcap = PcapBuffer::ethernet();
        assert_eq!(pcap.packets(), 0);
        assert_eq!(pcap.as_bytes().len(), GLOBAL_HEADER_LEN);
    }

    #[test]
    fn global_header_fields() {
        let bytes = PcapBuffer::ethernet().into_bytes();
        assert_eq!(u32_at(&bytes, 0), 0xa1b2_c3d4, "magic");
        assert_eq!(u16_at(&bytes, 4), 2, "major version");
        assert_eq!(u16_at(&bytes, 6), 4, "minor version");
        assert_eq!(u32_at(&bytes, 8), 0, "thiszone");
        assert_eq!(u32_at(&bytes, 12), 0, "sigfigs");
        assert_eq!(u32_at(&bytes, 16), 262_144, "snaplen");
        assert_eq!(u32_at(&bytes, 20), 1, "LINKTYPE_ETHERNET");
        #[cfg(target_endian = "little")]
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    }

    #[test]
    fn records_two_frames_with_virtual_timestamps() {
        let first = frame(46, EthernetProtocol::Ipv4);
        let second = frame(28, EthernetProtocol::Arp);
        let mut pcap = PcapBuffer::ethernet();
        pcap.record(Instant::from_micros(412), &first);
        pcap.record(Instant::from_micros(3_000_007), &second);
        assert_eq!(pcap.packets(), 2);

        let bytes = pcap.as_bytes();
        assert_eq!(
            bytes.len(),
            GLOBAL_HEADER_LEN + 2 * RECORD_HEADER_LEN + first.len() + second.len()
        );

        let r1 = GLOBAL_HEADER_LEN;
        assert_eq!(u32_at(bytes, r1), 0, "ts_sec");
        assert_eq!(u32_at(bytes, r1 + 4), 412, "ts_usec");
        assert_eq!(u32_at(bytes, r1 + 8), 60, "incl_len");
        assert_eq!(u32_at(bytes, r1 + 12), 60, "orig_len");
        let d1 = r1 + RECORD_HEADER_LEN;
        assert_eq!(&bytes[d1..d1 + first.len()], &first[..]);

        let r2 = d1 + first.len();
        assert_eq!(u32_at(bytes, r2), 3, "ts_sec");
        assert_eq!(u32_at(bytes, r2 + 4), 7, "ts_usec");
        assert_eq!(u32_at(bytes, r2 + 8), 42, "incl_len");
        assert_eq!(u32_at(bytes, r2 + 12), 42, "orig_len");
        let d2 = r2 + RECORD_HEADER_LEN;
        assert_eq!(&bytes[d2..], &second[..]);

        assert_eq!(pcap.clone().into_bytes(), bytes.to_vec());
    }

    #[test]
    fn oversized_frames_are_cut_to_the_snapshot_length() {
        let big = alloc::vec![0xabu8; 262_144 + 10];
        let mut pcap = PcapBuffer::ethernet();
        pcap.record(Instant::from_secs(1), &big);
        let bytes = pcap.as_bytes();
        let r = GLOBAL_HEADER_LEN;
        assert_eq!(u32_at(bytes, r + 8), 262_144, "incl_len");
        assert_eq!(u32_at(bytes, r + 12), 262_154, "orig_len");
        assert_eq!(bytes.len(), r + RECORD_HEADER_LEN + 262_144);
    }

    #[test]
    fn cooked_capture_has_sll_headers() {
        let mut p = PcapBuffer::linux_cooked();
        let mut frame = alloc::vec![0xffu8; 6];
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 1, 2, 3]);
        p.record_cooked(Instant::from_micros(5), false, &frame);
        p.record_cooked(Instant::from_micros(6), true, &frame);
        p.record_cooked(Instant::from_micros(7), true, &[1, 2]);
        let b = p.as_bytes();
        assert_eq!(u32_at(b, 20), LINKTYPE_LINUX_SLL);
        assert_eq!(p.packets(), 2);
        let rec = &b[GLOBAL_HEADER_LEN + RECORD_HEADER_LEN..];
        assert_eq!(&rec[0..2], &[0, 1], "broadcast, received");
        assert_eq!(&rec[14..16], &[0x08, 0x06], "the EtherType");
        assert_eq!(
            &rec[16..19],
            &[1, 2, 3],
            "the payload without its Ethernet header"
        );
    }
}
