//! Ephemeral ports for a pod's outgoing connections.

use super::client::EPHEMERAL_PORTS;
use super::PodEnv;

/// A free ephemeral port, from a random offset in [`EPHEMERAL_PORTS`].
///
/// The first port not in use from that offset on, wrapping around once: what probing each
/// port in turn finds, but read off the ordered set of ports in use (walking the run of taken
/// ports after the offset rather than looking each one up), so a pod whose range is nearly
/// full of TIME-WAIT sockets finds a port in a few steps per taken one.
pub(crate) fn pick_port(env: &mut PodEnv<'_>) -> Option<u16> {
    let (lo, hi) = EPHEMERAL_PORTS;
    let span = u32::from(hi - lo) + 1;
    let first = lo + env.rng.range_inclusive(0, span - 1) as u16;
    first_free(env.ports, first, hi).or_else(|| first_free(env.ports, lo, first - 1))
}

/// The lowest port in `from..=to` not in `used`.
fn first_free(used: &alloc::collections::BTreeSet<u16>, from: u16, to: u16) -> Option<u16> {
    if from > to {
        return None;
    }
    let mut want = from;
    for &p in used.range(from..=to) {
        if p != want {
            return Some(want);
        }
        if want == to {
            return None;
        }
        want += 1;
    }
    Some(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_free_port_is_what_probing_each_in_turn_finds() {
        use alloc::collections::BTreeSet;
        let probe =
            |used: &BTreeSet<u16>, from: u16, to: u16| (from..=to).find(|p| !used.contains(p));
        let mut used: BTreeSet<u16> = [5, 6, 7, 9, 10, 12, 20].into_iter().collect();
        for from in 0..25 {
            for to in from..25 {
                assert_eq!(
                    first_free(&used, from, to),
                    probe(&used, from, to),
                    "{from}..={to}"
                );
            }
        }
        used.extend(0..=u16::MAX);
        assert_eq!(first_free(&used, 0, u16::MAX), None);
        assert_eq!(first_free(&used, 7, 3), None);
        used.remove(&u16::MAX);
        assert_eq!(first_free(&used, 60_000, u16::MAX), Some(u16::MAX));
    }
}
