//! The native side of `cargo xtask wasm-bench`: runs a scenario to its end RUNS times through
//! the module's own logic (`SimCore`, as `new Sim(yaml).runToEnd()`), and prints
//! `ms <best wall time>` then the report's JSON (compact, as `JSON.stringify` prints it).
//!
//! `cargo run --release -p podnet-wasm --example bench -- examples/three-endpoints.yaml 5`

use std::time::Instant;

use podnet_wasm::api::SimOptions;
use podnet_wasm::sim::SimCore;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: bench SCENARIO.yaml [RUNS]");
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let yaml = std::fs::read_to_string(&path).expect("read the scenario");
    let opts = SimOptions {
        file_name: Some(path.clone()),
        ..Default::default()
    };
    let mut best = f64::INFINITY;
    let mut report = String::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let mut sim = SimCore::new(&yaml, &opts).unwrap_or_else(|e| panic!("{e}"));
        sim.run_to_end(None).unwrap_or_else(|e| panic!("{e}"));
        best = best.min(t0.elapsed().as_secs_f64() * 1000.0);
        report = serde_json::to_string(&sim.report()).expect("report as JSON");
    }
    println!("ms {best}");
    println!("{report}");
}
