//! Transport checksum verification for `nf_conntrack_checksum`, summing sixteen bytes at a step
//! (the same ones' complement sum as smoltcp's `verify_checksum`, which sums two at a time: a
//! routed TCP segment is verified at each node's PREROUTING, so this runs twice per packet).

use smoltcp::wire::Ipv4Address;

/// The ones' complement sum of `data` as 16-bit words in memory order (RFC 1071: the byte
/// order does not change whether the folded sum is all ones), as 32-bit words added into four
/// independent 64-bit lanes (no carry is lost below 2^32 words), not yet folded.
fn sum(data: &[u8]) -> u64 {
    let (chunks, rest) = data.as_chunks::<16>();
    let mut lanes = [0u64; 4];
    for c in chunks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let w = [c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]];
            *lane += u64::from(u32::from_ne_bytes(w));
        }
    }
    let (words, tail) = rest.as_chunks::<4>();
    let mut last = [0u8; 4];
    last[..tail.len()].copy_from_slice(tail);
    let rest_sum: u64 = words
        .iter()
        .chain(core::iter::once(&last))
        .map(|w| u64::from(u32::from_ne_bytes(*w)))
        .sum();
    lanes.iter().sum::<u64>() + rest_sum
}

fn fold(mut acc: u64) -> u64 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Whether a transport segment (`proto`: 6 TCP, 17 UDP) between `src` and `dst` sums to all
/// ones with its pseudo-header, i.e. carries a valid checksum.
pub(super) fn valid(proto: u8, src: Ipv4Address, dst: Ipv4Address, segment: &[u8]) -> bool {
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = proto;
    pseudo[10..].copy_from_slice(&(segment.len() as u16).to_be_bytes());
    fold(sum(&pseudo) + sum(segment)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use smoltcp::wire::{IpAddress, TcpPacket};

    proptest! {
        /// Agrees with smoltcp's TCP verification, on segments with their right checksum and
        /// with any other.
        #[test]
        fn agrees_with_smoltcp(
            mut seg in proptest::collection::vec(any::<u8>(), 20..1600),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            fill in any::<bool>(),
        ) {
            let (s, d) = (Ipv4Address::from(src), Ipv4Address::from(dst));
            let (si, di) = (IpAddress::Ipv4(s), IpAddress::Ipv4(d));
            if fill {
                TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(&si, &di);
            }
            let smoltcp = TcpPacket::new_unchecked(&seg[..]).verify_checksum(&si, &di);
            prop_assert_eq!(valid(6, s, d, &seg), smoltcp);
            if fill {
                prop_assert!(smoltcp);
            }
        }
    }
}
