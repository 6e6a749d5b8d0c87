//! Random byte mutations of valid scenario files must load to `Ok` or `Err`, never panic; the
//! ones that load must build to `Ok` or `Err` too.

use std::panic::{catch_unwind, AssertUnwindSafe};

const FIXTURES: [(&str, &str); 4] = [
    ("seed.yaml", include_str!("fixtures/seed.yaml")),
    ("faults.yaml", include_str!("fixtures/faults.yaml")),
    ("dump.yaml", include_str!("fixtures/kubectl-dump.yaml")),
    (
        "dump-traffic.yaml",
        include_str!("fixtures/dump-traffic.yaml"),
    ),
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b"{}[]:-,'\"\n #&*!|>~.0123456789 \tabcxyz/%\\";

fn mutate(rng: &mut Rng, text: &[u8]) -> Vec<u8> {
    let mut b = text.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let i = rng.below(b.len());
        match rng.below(6) {
            0 => b[i] = INTERESTING[rng.below(INTERESTING.len())],
            1 => b[i] = rng.next() as u8,
            2 => {
                let end = (i + 1 + rng.below(16)).min(b.len());
                b.drain(i..end);
            }
            3 => b.insert(i, INTERESTING[rng.below(INTERESTING.len())]),
            4 => {
                // Duplicate a chunk (a line or a value) somewhere else.
                let end = (i + 1 + rng.below(64)).min(b.len());
                let chunk = b[i..end].to_vec();
                let at = rng.below(b.len());
                b.splice(at..at, chunk);
            }
            _ => {
                // A digit becomes a large or negative number.
                if b[i].is_ascii_digit() {
                    let n = ["-1", "99999", "0", "4294967296", "65536", "1e9"][rng.below(6)];
                    b.splice(i..i + 1, n.bytes());
                }
            }
        }
    }
    b
}

#[test]
fn mutated_files_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let iterations = std::env::var("PODNET_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let (mut ok, mut err) = (0, 0);
    for (name, text) in FIXTURES {
        for _ in 0..iterations {
            let bytes = mutate(&mut rng, text.as_bytes());
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let result = catch_unwind(AssertUnwindSafe(|| {
                let loaded = podnet_scenario::load_str(name, &text)?;
                podnet_scenario::build(&loaded.scenario).map(|_| ())
            }));
            match result {
                Ok(Ok(())) => ok += 1,
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with(&format!("{name}:")),
                        "an error without its file: {msg}\n--- input ---\n{text}"
                    );
                    err += 1;
                }
                Err(_) => panic!("panicked on a mutation of {name}:\n{text}"),
            }
        }
    }
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
}
