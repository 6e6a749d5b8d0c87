//! The summary the playground shows at every moment, built without the report, is the
//! summary of the report (`podnet run`'s), for every example at moments along its run.

use podnet::trace::TraceConfig;
use podnet::{Duration, Instant};
use podnet_scenario::load_str;
use podnet_scenario::session::{DropRecorder, Session};

mod common;
use common::examples;

#[test]
fn the_summary_now_is_the_summary_of_the_report() {
    let (mut compared, mut listed_dns, mut listed_status) = (0, 0, 0);
    for (name, text) in examples() {
        let sc = load_str(&name, &text).unwrap().scenario;
        // As the playground runs it (nothing recorded, drops kept as they happen), and with
        // everything recorded (the drops replayed from the trace).
        let mut quiet = sc.clone();
        quiet.config.trace = TraceConfig {
            frames: false,
            hooks: false,
            pcap: false,
            ..TraceConfig::default()
        };
        let mut full = sc.clone();
        full.config.trace = TraceConfig::default();
        let observers: Vec<Box<dyn podnet::trace::Observer>> =
            vec![Box::new(DropRecorder::default())];
        let sessions = [
            Session::new_observed(quiet, observers).unwrap(),
            Session::new(full).unwrap(),
        ];
        for mut s in sessions {
            for ms in [1, 5, 20, 100, 1_000, 5_000] {
                s.run_until(Instant::ZERO + Duration::from_millis(ms))
                    .unwrap();
                let want = s.summary(&s.report());
                assert_eq!(s.summary_now(), want, "{name} at {ms} ms");
                compared += 1;
            }
            s.run(Duration::from_secs(30)).unwrap();
            let want = s.summary(&s.report());
            assert_eq!(s.summary_now(), want, "{name} at its end");
            listed_dns += usize::from(want.contains("  dns: "));
            listed_status += usize::from(want.contains(" HTTP "));
            compared += 1;
        }
    }
    assert!(compared > 100, "{compared}");
    // The parts built from the records are exercised.
    assert!(listed_status > 0, "no example lists an HTTP status");
    assert!(listed_dns > 0, "no example lists slow DNS lookups");
    eprintln!("{compared} summaries compared ({listed_dns} with slow DNS lookups)");
}
