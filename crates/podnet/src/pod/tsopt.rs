//! TCP timestamps and option layout as a Linux pod sends them.
//!
//! Linux's TCP sends timestamps (RFC 7323, `net.ipv4.tcp_timestamps` 1) on every segment of
//! a connection whose SYN and SYN-ACK both offered them. TSval is the millisecond clock
//! (`tcp_clock_ms`) plus an offset per address pair (`secure_tcp_ts_off`, a keyed hash of
//! source and destination address); a SYN's TSecr is 0. smoltcp sends and echoes
//! timestamps, but its generator is a plain function with no clock, so podnet has smoltcp
//! write zeros and fills TSval in here, on the way out of the pod, with the virtual clock.
//!
//! Options go out in Linux's order (`tcp_options_write`), which tcpdump shows: a SYN's
//! `mss 1460,sackOK,TS val 1873 ecr 0,nop,wscale 7`; a segment's `nop,nop,TS val 1874 ecr 9`.
//! smoltcp writes the same options in another order with EOL padding, in as many bytes;
//! when the layouts would differ in length (a segment with SACK blocks), smoltcp's stays.

use smoltcp::time::Instant;
use smoltcp::wire::{IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket};

use crate::rng::splitmix;

const NOP: u8 = 1;
const EOL: u8 = 0;

/// A pod's timestamp clock: the virtual clock in milliseconds, and the secret its offsets
/// per address pair derive from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TsClock {
    secret: u64,
}

impl TsClock {
    /// A clock whose offsets derive from `secret` (drawn from the pod's seeded stream).
    pub(crate) fn new(secret: u64) -> Self {
        TsClock { secret }
    }

    /// TSval at `now` for a segment from `src` to `dst`.
    pub(crate) fn tsval(&self, now: Instant, src: Ipv4Address, dst: Ipv4Address) -> u32 {
        let pair = u64::from(src.to_bits()) << 32 | u64::from(dst.to_bits());
        let off = splitmix(self.secret ^ pair) as u32;
        (now.total_millis() as u32).wrapping_add(off)
    }
}

/// The options of a segment, as far as Linux's layout needs them.
#[derive(Default)]
struct Options {
    mss: Option<[u8; 2]>,
    wscale: Option<u8>,
    sack_perm: bool,
    ts: Option<[u8; 8]>,
    /// SACK blocks, or an option Linux's layout does not place: keep smoltcp's layout.
    other: bool,
}

fn parse(opts: &[u8]) -> Option<Options> {
    let mut o = Options::default();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            EOL => break,
            NOP => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                let body = opts.get(i + 2..i + len.max(2))?;
                match (kind, len) {
                    (2, 4) => o.mss = Some([body[0], body[1]]),
                    (3, 3) => o.wscale = Some(body[0]),
                    (4, 2) => o.sack_perm = true,
                    (8, 10) => o.ts = Some(body.try_into().ok()?),
                    _ => o.other = true,
                }
                i += len.max(2);
            }
        }
    }
    Some(o)
}

/// The options in Linux's order (`tcp_options_write`), in `buf`; their length.
fn linux_layout(o: &Options, buf: &mut [u8; 24]) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    if let Some(m) = o.mss {
        put(&[2, 4, m[0], m[1]]);
    }
    match (o.ts, o.sack_perm) {
        (Some(ts), true) => {
            put(&[4, 2, 8, 10]);
            put(&ts);
        }
        (Some(ts), false) => {
            put(&[NOP, NOP, 8, 10]);
            put(&ts);
        }
        (None, true) => put(&[NOP, NOP, 4, 2]),
        (None, false) => {}
    }
    if let Some(w) = o.wscale {
        put(&[NOP, 3, 3, w]);
    }
    n
}

/// Finishes a TCP segment in Ethernet frame `frame` leaving a pod at `now`: TSval from
/// `clock` (TSecr 0 on a SYN), options in Linux's order, and the TCP checksum. Anything
/// that is not IPv4 TCP, or a segment without timestamps, only gets its checksum.
pub(crate) fn finish(frame: &mut [u8], now: Instant, clock: &TsClock) {
    if frame.get(12..14) != Some(&[0x08, 0x00]) {
        return;
    }
    let Ok(ip) = Ipv4Packet::new_checked(&frame[14..]) else {
        return;
    };
    if ip.next_header() != IpProtocol::Tcp {
        return;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let hl = usize::from(ip.header_len());
    let end = 14 + usize::from(ip.total_len());
    let Some(l4) = frame.get_mut(14 + hl..end) else {
        return;
    };
    let Ok(mut tcp) = TcpPacket::new_checked(l4) else {
        return;
    };
    let syn_only = tcp.syn() && !tcp.ack();
    let opts = tcp.options_mut();
    if let Some(mut o) = parse(opts).filter(|o| o.ts.is_some()) {
        if let Some(ts) = o.ts.as_mut() {
            ts[..4].copy_from_slice(&clock.tsval(now, src, dst).to_be_bytes());
            if syn_only {
                ts[4..].fill(0);
            }
        }
        let mut linux = [0; 24];
        let n = linux_layout(&o, &mut linux);
        if !o.other && n == opts.len() {
            opts.copy_from_slice(&linux[..n]);
        } else if let Some(at) = ts_at(opts) {
            if let Some(ts) = o.ts {
                opts[at..at + 8].copy_from_slice(&ts);
            }
        }
    }
    tcp.fill_checksum(&src.into(), &dst.into());
}

/// Where the 8 bytes of TSval and TSecr are in `opts`.
fn ts_at(opts: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            EOL => return None,
            NOP => i += 1,
            8 => return (opts.get(i + 1) == Some(&10)).then_some(i + 2),
            _ => i += usize::from(*opts.get(i + 1)?).max(2),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpAddress, TcpControl, TcpRepr, TcpSeqNumber, TcpTimestampRepr};

    const A: Ipv4Address = Ipv4Address::new(10, 244, 0, 2);
    const B: Ipv4Address = Ipv4Address::new(10, 244, 1, 2);

    /// smoltcp's own emission of `repr` from A to B, in an Ethernet frame.
    fn frame(repr: &TcpRepr) -> alloc::vec::Vec<u8> {
        let mut l4 = alloc::vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut l4[..]),
            &IpAddress::Ipv4(A),
            &IpAddress::Ipv4(B),
            &ChecksumCapabilities::default(),
        );
        let mut f = alloc::vec![0u8; 14];
        f[12] = 0x08;
        f.extend(crate::packet::ip(A, B, IpProtocol::Tcp, &l4));
        f
    }

    fn repr(control: TcpControl, ack: Option<u32>, ts: Option<(u32, u32)>) -> TcpRepr<'static> {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            control,
            seq_number: TcpSeqNumber(1),
            ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: 65535,
            window_scale: (control == TcpControl::Syn).then_some(1),
            max_seg_size: (control == TcpControl::Syn).then_some(1460),
            sack_permitted: control == TcpControl::Syn,
            sack_ranges: [None; 3],
            timestamp: ts.map(|(v, e)| TcpTimestampRepr::new(v, e)),
            payload: &[],
        }
    }

    fn options(f: &[u8]) -> alloc::vec::Vec<u8> {
        let tcp = TcpPacket::new_checked(&f[34..]).unwrap();
        assert!(tcp.verify_checksum(&A.into(), &B.into()));
        tcp.options().to_vec()
    }

    #[test]
    fn a_syn_gets_linux_s_layout_and_clock() {
        let clock = TsClock::new(7);
        // smoltcp's SYN: its TSecr is whatever a reused socket last saw.
        let mut f = frame(&repr(TcpControl::Syn, None, Some((0, 99))));
        finish(&mut f, Instant::from_millis(1500), &clock);
        let val = clock.tsval(Instant::from_millis(1500), A, B).to_be_bytes();
        let want = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, val[0], val[1], val[2], val[3], 0, 0, 0, 0, NOP, 3, 3, 1,
        ];
        assert_eq!(options(&f), want);
        // The clock ticks in milliseconds; the offset is per address pair.
        assert_eq!(
            clock.tsval(Instant::from_millis(1501), A, B),
            clock
                .tsval(Instant::from_millis(1500), A, B)
                .wrapping_add(1)
        );
        assert_ne!(
            clock.tsval(Instant::ZERO, A, B),
            clock.tsval(Instant::ZERO, B, A)
        );
    }

    #[test]
    fn a_segment_gets_nop_nop_ts_and_keeps_its_echo() {
        let clock = TsClock::new(7);
        let mut f = frame(&repr(TcpControl::None, Some(5), Some((0, 1234))));
        finish(&mut f, Instant::from_millis(20), &clock);
        let val = clock.tsval(Instant::from_millis(20), A, B).to_be_bytes();
        let mut want = alloc::vec![NOP, NOP, 8, 10];
        want.extend_from_slice(&val);
        want.extend_from_slice(&1234u32.to_be_bytes());
        assert_eq!(options(&f), want);
    }

    #[test]
    fn without_timestamps_only_the_checksum() {
        let clock = TsClock::new(7);
        let orig = frame(&repr(TcpControl::Syn, None, None));
        let mut f = orig.clone();
        f[50] ^= 0xff;
        finish(&mut f, Instant::ZERO, &clock);
        assert_eq!(f, orig);
    }
}
