//! What a client sends on a connection: given bytes, or a pattern made as it is sent.

use alloc::vec::Vec;

fn pattern(len: usize, id: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(id) as u8)
        .collect()
}

/// What a connection sends: its bytes, or a bulk pattern made as it is sent (a 64 MiB
/// upload never holds its 64 MiB). The pattern repeats every 256 bytes: two periods are kept,
/// so any offset starts a run of 256 bytes.
#[derive(Debug)]
pub(super) enum Payload {
    Bytes(Vec<u8>),
    Pattern {
        len: usize,
        id: u32,
        periods: alloc::boxed::Box<[u8; 512]>,
    },
}

impl Payload {
    pub(super) fn pattern(len: usize, id: u32) -> Self {
        let mut periods = alloc::boxed::Box::new([0u8; 512]);
        periods.copy_from_slice(&pattern(512, id));
        Payload::Pattern { len, id, periods }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Payload::Bytes(b) => b.len(),
            Payload::Pattern { len, .. } => *len,
        }
    }

    /// The payload's bytes from offset `at` on, at most `max` of them (one period for a
    /// pattern).
    pub(super) fn run(&self, at: usize, max: usize) -> &[u8] {
        let n = max.min(self.len().saturating_sub(at));
        match self {
            Payload::Bytes(b) => &b[at..at + n],
            Payload::Pattern { periods, .. } => &periods[at % 256..][..n.min(256)],
        }
    }

    /// Writes the bytes from offset `at` into `buf`; returns how many.
    pub(super) fn fill(&self, at: usize, buf: &mut [u8]) -> usize {
        let mut done = 0;
        while done < buf.len() {
            let run = self.run(at + done, buf.len() - done);
            if run.is_empty() {
                break;
            }
            buf[done..done + run.len()].copy_from_slice(run);
            done += run.len();
        }
        done
    }

    /// Whether `data` is what the payload holds at offset `at`.
    pub(super) fn holds(&self, at: usize, data: &[u8]) -> bool {
        let mut done = 0;
        while done < data.len() {
            let run = self.run(at + done, data.len() - done);
            if run.is_empty() || data[done..done + run.len()] != *run {
                return false;
            }
            done += run.len();
        }
        true
    }

    pub(super) fn to_vec(&self) -> Vec<u8> {
        match self {
            Payload::Bytes(b) => b.clone(),
            Payload::Pattern { len, id, .. } => pattern(*len, *id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_differs_per_connection() {
        assert_ne!(pattern(16, 0), pattern(16, 1));
        assert_eq!(pattern(16, 3), pattern(16, 3));
    }

    #[test]
    fn a_pattern_is_filled_and_checked_across_its_period() {
        let p = Payload::pattern(1000, 7);
        let mut buf = [0u8; 700];
        assert_eq!(p.fill(300, &mut buf), 700);
        assert_eq!(&buf[..], &p.to_vec()[300..]);
        assert!(p.holds(300, &buf));
        buf[5] ^= 1;
        assert!(!p.holds(300, &buf));
        assert_eq!(p.fill(990, &mut buf), 10);
    }
}
