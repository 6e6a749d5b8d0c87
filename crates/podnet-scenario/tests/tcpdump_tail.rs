//! A tail of a tcpdump formats only its last lines: the packets before them are only learnt
//! (their TCP initial sequence numbers, which later lines are relative to). The lines after
//! learning are those after formatting, for every example and for damaged frames.

use podnet::tcpdump::Formatter;
use podnet::trace::{EventRef, Observer, TraceConfig};
use podnet::{Duration, Instant};
use podnet_scenario::load_str;
use podnet_scenario::session::{Session, TcpdumpWriter};

mod common;

fn examples() -> Vec<(String, Session)> {
    common::examples()
        .into_iter()
        .map(|(name, text)| {
            let mut sc = load_str(&name, &text).unwrap().scenario;
            sc.config.trace = TraceConfig::default();
            let mut s = Session::new(sc).unwrap();
            s.run(Duration::from_secs(30)).unwrap();
            (name, s)
        })
        .collect()
}

/// The output of `w` after `events`, of which the first `skip` that have a line are only
/// learnt.
fn tail(s: &Session, mut w: TcpdumpWriter<Vec<u8>>, skip: usize) -> String {
    let ifaces = s.cluster.trace().iface_table();
    let mut left = skip;
    for e in s.cluster.trace().events() {
        if left == 0 {
            w.observe(ifaces, e.time, e.view());
        } else if w.skip(ifaces, e.view()) {
            left -= 1;
        }
    }
    String::from_utf8(w.finish().unwrap()).unwrap()
}

#[test]
fn the_lines_after_learning_are_the_lines_after_formatting() {
    let (mut cases, mut relative) = (0, 0);
    for (name, s) in examples() {
        let ifaces = s.cluster.trace().iface_table();
        let mut asked = vec!["any".to_string()];
        asked.extend(s.cluster.nodes().map(|(_, n)| n.name().to_string()));
        asked.extend(s.interfaces().into_iter().step_by(3));
        for iface in &asked {
            for expr in ["", "tcp"] {
                let w = TcpdumpWriter::new(iface, expr, Vec::new()).unwrap();
                let count = s
                    .cluster
                    .trace()
                    .events()
                    .iter()
                    .filter(|e| w.selects(ifaces, e.view()))
                    .count();
                let all = tail(&s, w, 0);
                for skip in [1, 2, count / 3, count / 2, count.saturating_sub(1), count] {
                    let w = TcpdumpWriter::new(iface, expr, Vec::new()).unwrap();
                    let got = tail(&s, w, skip);
                    assert!(
                        all.ends_with(&got),
                        "{name} {iface} {expr:?}, {skip} of {count} learnt:\n{got}"
                    );
                    // Every packet after the first `skip` has its line (one, or two for an
                    // encapsulated frame).
                    let lines = got.lines().count();
                    assert!(lines >= count.saturating_sub(skip), "{name} {iface}");
                    assert!(lines <= 2 * count.saturating_sub(skip), "{name} {iface}");
                    relative += usize::from(skip > 0 && got.contains(", ack 1,"));
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 1000, "{cases}");
    // Tails that start after a handshake print relative numbers learnt from it.
    assert!(relative > 100, "{relative}");
}

/// A small deterministic generator for the damaged frames.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn damaged_frames_are_learnt_as_they_are_formatted() {
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for (name, s) in examples() {
        if ![
            "seed.yaml",
            "vxlan.yaml",
            "three-endpoints.yaml",
            "reject-ratelimit.yaml",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        for e in s.cluster.trace().events() {
            if let EventRef::Received { frame, .. } = e.view() {
                frames.push(frame.to_vec());
            }
        }
    }
    assert!(frames.len() > 10_000, "{}", frames.len());
    let mut rng = Lcg(7);
    // Every third frame cut short or with a byte changed (in its headers, mostly).
    for f in frames.iter_mut().step_by(3) {
        if rng.next(2) == 0 {
            let at = rng.next(f.len());
            f.truncate(at);
        } else if !f.is_empty() {
            let at = rng.next(f.len().min(120));
            f[at] ^= 1 << rng.next(8);
        }
    }
    let at = Instant::ZERO;
    let mut all = Formatter::new();
    let lines: Vec<String> = frames.iter().map(|f| all.line(at, f)).collect();
    for skip in [1, 100, 1_000, frames.len() / 2, frames.len() - 5] {
        let mut f = Formatter::new();
        frames[..skip].iter().for_each(|fr| f.learn(fr));
        for (i, fr) in frames.iter().enumerate().skip(skip) {
            assert_eq!(f.line(at, fr), lines[i], "frame {i} after {skip} learnt");
        }
    }
}
