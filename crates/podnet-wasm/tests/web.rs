//! The module in a browser (headless Chromium through chromedriver): `cargo xtask wasm-test`,
//! or `CHROMEDRIVER=/usr/bin/chromedriver
//! CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
//! cargo test --target wasm32-unknown-unknown -p podnet-wasm --test web`.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Reflect, JSON};
use podnet_wasm::{check, examples, Sim};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn get(v: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(v.clone(), |v, k| {
        let key = match k.parse::<u32>() {
            Ok(i) => JsValue::from(i),
            Err(_) => JsValue::from_str(k),
        };
        Reflect::get(&v, &key).unwrap_or(JsValue::UNDEFINED)
    })
}

fn text(v: &JsValue, path: &str) -> Option<String> {
    get(v, path).as_string()
}

fn seed_yaml() -> String {
    let list = examples().unwrap();
    list.iter()
        .map(|e| e.js_value())
        .find(|e| text(e, "name").as_deref() == Some("seed"))
        .and_then(|e| text(&e, "yaml"))
        .expect("the seed example is bundled")
}

/// A thrown error: a real `Error` (not a trap), and its message.
fn error_message(e: wasm_bindgen::JsError) -> String {
    let v = JsValue::from(e);
    assert!(v.is_instance_of::<js_sys::Error>(), "not an Error: {v:?}");
    v.unchecked_into::<js_sys::Error>().message().into()
}

fn events(sim: &mut Sim) -> Vec<JsValue> {
    sim.events(0.0, None, None)
        .unwrap()
        .iter()
        .map(|e| e.js_value())
        .collect()
}

#[wasm_bindgen_test]
fn the_seed_reaches_its_backend_through_node_a_dnat() {
    let mut sim = Sim::new(&seed_yaml(), None).unwrap();
    assert!(sim.run_to_end(None).unwrap());
    let report = sim.report().unwrap().js_value();
    let flows = Array::from(&get(&report, "flows"));
    let web = flows
        .iter()
        .find(|f| text(f, "name").as_deref() == Some("web"))
        .expect("flow web");
    assert_eq!(
        text(&web, "connections.0.backend").as_deref(),
        Some("10.244.1.20:80")
    );
    let evs = events(&mut sim);
    assert_eq!(evs.len() as f64, sim.event_count());
    let dnat = evs.iter().find(|e| {
        text(e, "kind").as_deref() == Some("hook")
            && text(e, "packet.dst").as_deref() == Some("10.96.0.10")
            && get(e, "packet.dport").as_f64() == Some(80.0)
            && text(e, "after.dst").as_deref() == Some("10.244.1.20")
            && get(e, "after.dport").as_f64() == Some(80.0)
    });
    let dnat = dnat.expect("a hook event rewriting 10.96.0.10:80 to 10.244.1.20:80");
    assert_eq!(text(dnat, "conn.flow").as_deref(), Some("web"));
    let ct = sim.conntrack("node-a").unwrap();
    assert!(!ct.is_empty());
    let first = ct[0].js_value();
    assert_eq!(text(&first, "orig.dst").as_deref(), Some("10.96.0.10"));
    assert_eq!(text(&first, "reply.src").as_deref(), Some("10.244.1.20"));
    assert!(sim
        .conntrack_text("node-a")
        .unwrap()
        .contains("dst=10.96.0.10"));
    assert!(sim.trace_text("web", 0).unwrap().contains("10.244.1.20"));
    let pcap = sim.pcap("any", None).unwrap();
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    // The report is the CLI's JSON: `null` where there is no value, no `undefined`.
    let json: String = JSON::stringify(&report).unwrap().into();
    assert!(
        json.starts_with("{\"version\":\"v1alpha1\",\"endTime\":"),
        "{json}"
    );
    assert!(get(&sim.topology().unwrap().js_value(), "nodes.0.name").is_string());
}

#[wasm_bindgen_test]
fn bad_yaml_throws_an_error_naming_file_line_and_column() {
    let bad =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - port: eighty\n";
    let msg = error_message(Sim::new(bad, None).err().expect("an error"));
    let mut parts = msg.splitn(4, ':');
    assert_eq!(parts.next(), Some("scenario.yaml"), "{msg}");
    assert_eq!(parts.next(), Some("6"), "{msg}");
    assert!(
        parts.next().is_some_and(|c| c.parse::<u32>().is_ok()),
        "{msg}"
    );
    let diags = check(bad).unwrap();
    assert_eq!(diags.len(), 1);
    let d = diags[0].js_value();
    assert_eq!(text(&d, "severity").as_deref(), Some("error"));
    assert_eq!(get(&d, "line").as_f64(), Some(6.0));
    assert_eq!(text(&d, "text"), Some(msg));
}

#[wasm_bindgen_test]
fn unknown_names_and_garbage_throw_errors_not_traps() {
    let sim = Sim::new(&seed_yaml(), None).unwrap();
    let msg = error_message(sim.conntrack("node-z").err().unwrap());
    assert!(msg.contains("no node \"node-z\""), "{msg}");
    assert!(sim.rules("nope").is_err());
    assert!(sim.tcpdump("any", "port", None).is_err());
    assert!(sim.pcap("nope/eth0", None).is_err());
    assert!(sim.explain("nope", 0).is_err());
    let mut x = 9u64;
    for n in 0..40usize {
        let bytes: String = (0..(n * 7 % 200))
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                char::from((x >> 56) as u8)
            })
            .collect();
        if let Err(e) = Sim::new(&bytes, None) {
            let _ = error_message(e);
        }
        let _ = check(&bytes).unwrap();
    }
    let msg = error_message(Sim::new("\u{0}\u{1}\u{fffd}\u{ff}", None).err().unwrap());
    assert!(!msg.is_empty());
}

#[wasm_bindgen_test]
fn replay_to_the_same_time_gives_the_same_events() {
    let yaml = seed_yaml();
    let mut a = Sim::new(&yaml, None).unwrap();
    let mut b = Sim::new(&yaml, None).unwrap();
    a.run_until(1500.0).unwrap();
    b.run_until(400.0).unwrap();
    b.run_until(1500.0).unwrap();
    assert_eq!(a.now(), 1500.0);
    let ja = JSON::stringify(&Array::from_iter(events(&mut a))).unwrap();
    let jb = JSON::stringify(&Array::from_iter(events(&mut b))).unwrap();
    assert!(a.event_count() > 0.0);
    assert_eq!(String::from(ja), String::from(jb));
    assert!(a.step().unwrap());
}

#[wasm_bindgen_test]
fn frames_in_flight_and_the_tcpdump_tail_reach_the_page() {
    let mut sim = Sim::new(&seed_yaml(), None).unwrap();
    // Step through the seed until a frame is on a wire.
    let mut found = None;
    while found.is_none() && sim.step().unwrap() {
        let now = sim.flights_now(4_000).unwrap().js_value();
        let first = get(&now, "flights.0");
        if !first.is_undefined() {
            found = Some((sim.now(), first));
        }
    }
    let (t, f) = found.expect("a frame on a wire in the seed");
    assert!(get(&f, "sentTime").as_f64().unwrap() <= t);
    assert!(get(&f, "receivedTime").as_f64().unwrap() > t);
    assert!(get(&f, "received").is_null() || get(&f, "received").is_undefined());
    assert!(text(&f, "from").unwrap().contains('/'));
    assert!(text(&f, "packet.line").is_some());
    let tail = sim.tcpdump_tail("any", "", None, 2).unwrap().js_value();
    let count = get(&tail, "count").as_f64().unwrap();
    let lines = Array::from(&get(&tail, "lines"));
    assert_eq!(lines.length() as f64, count.min(2.0));
    assert!(count >= 1.0);
    let head = sim.conntrack_head("node-a", 1, None).unwrap().js_value();
    let entries = get(&head, "count").as_f64().unwrap();
    let lines = Array::from(&get(&head, "lines"));
    assert_eq!(lines.length() as f64, entries.min(1.0));
}
