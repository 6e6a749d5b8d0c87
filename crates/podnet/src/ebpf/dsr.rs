//! Cilium's DSR IPv4 option: the Service frontend (address and port) a NodePort's receiving
//! node sends along with the packet to the backend's node, which answers the client from it.

use alloc::vec::Vec;

use smoltcp::wire::Ipv4Address;

use super::config::{DSR_OPTION_LEN, DSR_OPTION_TYPE};

/// The frontend carried by a DSR IPv4 option, if the packet has one.
pub(crate) fn dsr_option(ip: &[u8]) -> Option<(Ipv4Address, u16)> {
    let hl = usize::from(*ip.first()? & 0x0f) * 4;
    let mut i = 20;
    while i + 1 < hl.min(ip.len()) {
        match ip[i] {
            0 => return None,
            1 => i += 1,
            DSR_OPTION_TYPE if usize::from(ip[i + 1]) == DSR_OPTION_LEN && i + 8 <= hl => {
                let port = u16::from_be_bytes([ip[i + 2], ip[i + 3]]);
                let a = Ipv4Address::new(ip[i + 4], ip[i + 5], ip[i + 6], ip[i + 7]);
                return Some((a, port));
            }
            _ => {
                let l = usize::from(ip[i + 1]);
                if l < 2 {
                    return None;
                }
                i += l;
            }
        }
    }
    None
}

/// Inserts the DSR option after the IPv4 header's fixed part (IHL, total length and header
/// checksum updated). False if the header has no room for it.
pub(crate) fn insert_dsr_option(frame: &mut Vec<u8>, l3: usize, front: (Ipv4Address, u16)) -> bool {
    let Some(&vihl) = frame.get(l3) else {
        return false;
    };
    let hl = usize::from(vihl & 0x0f) * 4;
    if hl + DSR_OPTION_LEN > 60 || frame.len() < l3 + hl {
        return false;
    }
    let mut opt = [0u8; DSR_OPTION_LEN];
    opt[0] = DSR_OPTION_TYPE;
    opt[1] = DSR_OPTION_LEN as u8;
    opt[2..4].copy_from_slice(&front.1.to_be_bytes());
    opt[4..8].copy_from_slice(&front.0.octets());
    let at = l3 + hl;
    frame.splice(at..at, opt);
    let ip = &mut frame[l3..];
    ip[0] = 0x40 | ((hl + DSR_OPTION_LEN) / 4) as u8;
    let total = u16::from_be_bytes([ip[2], ip[3]]) + DSR_OPTION_LEN as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[10] = 0;
    ip[11] = 0;
    let sum = ipv4_checksum(&ip[..hl + DSR_OPTION_LEN]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    true
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for c in h.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_option_reads_back_and_keeps_the_header_valid() {
        let mut frame = alloc::vec![0u8; 14];
        // A 20-byte IPv4 header (TCP, 10.0.0.1 -> 10.0.0.2) and 4 bytes of payload.
        let mut ip = alloc::vec![
            0x45, 0, 0, 24, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0xde, 0xad, 0xbe,
            0xef,
        ];
        let sum = ipv4_checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        let front = (Ipv4Address::new(192, 168, 1, 100), 30080);
        assert_eq!(dsr_option(&frame[14..]), None);
        assert!(insert_dsr_option(&mut frame, 14, front));
        let ip = &frame[14..];
        assert_eq!(ip[0], 0x47, "IHL 7");
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 32);
        assert_eq!(&ip[20..28], &[0x9a, 8, 0x75, 0x80, 192, 168, 1, 100]);
        assert_eq!(
            &ip[28..],
            &[0xde, 0xad, 0xbe, 0xef],
            "payload after the option"
        );
        assert_eq!(ipv4_checksum(&ip[..28]), 0, "header checksum valid");
        assert_eq!(dsr_option(ip), Some(front));
        // A header with no room left (IHL 15 already) is left alone.
        let mut full = alloc::vec![0u8; 14 + 60];
        full[14] = 0x4f;
        assert!(!insert_dsr_option(&mut full, 14, front));
        assert_eq!(dsr_option(&[]), None);
    }
}
