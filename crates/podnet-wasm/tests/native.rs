//! The module's API logic, natively: what tests/web.rs checks in a browser, on `SimCore`.
#![cfg(not(target_arch = "wasm32"))]

use podnet_wasm::api::SimOptions;
use podnet_wasm::examples::EXAMPLES;
use podnet_wasm::sim::{check, what_if, SimCore, DEFAULT_FILE};

fn seed() -> &'static str {
    EXAMPLES.iter().find(|(n, _)| *n == "seed").unwrap().1
}

fn sim(yaml: &str) -> SimCore {
    SimCore::new(yaml, &SimOptions::default()).unwrap()
}

#[test]
fn the_seed_runs_to_its_backend_and_the_hook_shows_the_dnat() {
    let mut s = sim(seed());
    assert!(s.run_to_end(None).unwrap());
    let r = s.report();
    let web = r.flows.iter().find(|f| f.name == "web").unwrap();
    assert_eq!(
        web.connections[0].backend.as_deref(),
        Some("10.244.1.20:80")
    );
    let events = s.events(0.0, None);
    assert_eq!(events.len() as f64, s.event_count());
    let dnat = events
        .iter()
        .find(|e| {
            e.kind == "hook"
                && e.packet.dst == "10.96.0.10"
                && e.packet.dport == Some(80)
                && e.after
                    .as_ref()
                    .is_some_and(|a| a.dst == "10.244.1.20" && a.dport == Some(80))
        })
        .expect("a hook event rewriting 10.96.0.10:80 to 10.244.1.20:80");
    assert_eq!(dnat.hook, Some("PREROUTING"));
    assert_eq!(dnat.host, "node-a");
    assert!(dnat
        .conn
        .as_ref()
        .is_some_and(|c| c.flow == "web" && c.id == 0));
    let syn = events
        .iter()
        .find(|e| e.kind == "sent" && e.packet.flags.as_deref() == Some("S"))
        .unwrap();
    assert!(
        syn.packet.line.starts_with("IP 10.244.0.5."),
        "{}",
        syn.packet.line
    );
    let ct = s.conntrack("node-a").unwrap();
    assert!(!ct.is_empty());
    let e = &ct[0];
    assert_eq!((e.orig.dst.as_str(), e.orig.dport), ("10.96.0.10", 80));
    assert_eq!((e.reply.src.as_str(), e.reply.sport), ("10.244.1.20", 80));
    assert_eq!(e.proto, "tcp");
    assert!(e.assured);
    assert_eq!(
        e.text,
        s.conntrack_text("node-a").unwrap().lines().next().unwrap()
    );
    assert!(s.trace_text("web", 0).unwrap().contains("10.244.1.20"));
    assert!(s.explain("web", 0).unwrap().contains("NetworkPolicy"));
    assert!(s.rules("node-a").unwrap().contains("KUBE-SERVICES"));
    assert!(!s.tcpdump("any", "tcp", None).unwrap().is_empty());
    let pcap = s.pcap("any", None).unwrap();
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert!(s.pcap("node-a/eth0", None).unwrap().len() > 24);
    assert!(s.interfaces().iter().any(|i| i == "node-a/eth0"));
}

#[test]
fn bad_input_is_an_error_with_the_cli_text() {
    let bad =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - port: eighty\n";
    let e = SimCore::new(bad, &SimOptions::default()).err().unwrap();
    assert!(e.message.starts_with("scenario.yaml:6:"), "{}", e.message);
    let opts = SimOptions {
        file_name: Some("mine.yaml".into()),
        ..Default::default()
    };
    let e = SimCore::new(bad, &opts).err().unwrap();
    assert!(e.message.starts_with("mine.yaml:6:"), "{}", e.message);
    let d = check(bad, "scenario.yaml");
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].severity, d[0].line), ("error", Some(6)));
    assert_eq!(
        d[0].text,
        e.message.replacen("mine.yaml", "scenario.yaml", 1)
    );
    let s = sim(seed());
    assert!(s
        .conntrack("node-z")
        .unwrap_err()
        .message
        .contains("no node \"node-z\""));
    assert!(s.rules("nope").is_err());
    assert!(s.tcpdump("any", "port", None).is_err());
    assert!(s.tcpdump("nope", "", None).is_err());
    assert!(s.pcap("nope/eth0", None).is_err());
    assert!(s.trace_text("nope", 0).is_err());
    assert!(s.trace_text("web", 99).is_err());
    assert!(check(seed(), "seed.yaml")
        .iter()
        .all(|d| d.severity == "warning"));
}

#[test]
fn garbage_never_panics() {
    let mut x = 1u64;
    for n in 0..300usize {
        let mut text = String::new();
        for _ in 0..(n % 97) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push(char::from(
                (x >> 57) as u8 + if n % 2 == 0 { 0 } else { 30 },
            ));
        }
        let _ = check(&text, "g.yaml");
        if let Ok(mut s) = SimCore::new(&text, &SimOptions::default()) {
            let _ = s.run_until(1000.0);
        }
    }
    assert!(SimCore::new("\u{0}\u{1}\u{2}\u{ff}", &SimOptions::default()).is_err());
}

#[test]
fn replay_to_a_time_gives_the_same_events_and_odd_numbers_are_safe() {
    let mut a = sim(seed());
    let mut b = sim(seed());
    a.run_until(1500.0).unwrap();
    b.run_until(700.0).unwrap();
    b.run_until(1500.0).unwrap();
    assert_eq!(a.now(), 1500.0);
    assert_eq!(a.events(0.0, None), b.events(0.0, None));
    assert!(a.event_count() > 0.0);
    let mut c = sim(seed());
    while c.now() < 1500.0 && c.next_event_time().is_some_and(|t| t <= 1500.0) {
        assert!(c.step().unwrap());
    }
    c.run_until(1500.0).unwrap();
    assert_eq!(a.events(0.0, None), c.events(0.0, None));
    for t in [f64::NAN, -5.0, f64::INFINITY, 1e300] {
        let mut s = sim(seed());
        s.run_until(t).unwrap();
        assert!(s.events(t, Some(t)).is_empty());
        assert!(s.events(-1.0, Some(f64::NAN)).is_empty());
    }
}

#[test]
fn topology_names_what_the_page_draws() {
    let s = sim(seed());
    let t = s.topology();
    assert_eq!(t.cluster.proxy, "iptables");
    let node_a = t.nodes.iter().find(|n| n.name == "node-a").unwrap();
    assert_eq!(node_a.ip, "192.168.1.100");
    assert!(node_a.interfaces.contains(&String::from("node-a/eth0")));
    assert!(node_a.pods.contains(&String::from("pod-a")));
    let web = t.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web.cluster_ip, "10.96.0.10");
    assert_eq!(web.ports[0].port, 80);
    assert!(!web.backends.is_empty());
    assert!(t
        .links
        .iter()
        .any(|l| l.a == "pod-a/eth0" && l.b.starts_with("node-a/veth")));
    assert!(t
        .links
        .iter()
        .any(|l| l.a == "node-a/eth0" && l.b == "underlay/node-a"));
    // The edge router (the underlay's gateway to external hosts) is drawn too.
    let edge = t
        .nodes
        .iter()
        .find(|n| n.role == "edge")
        .expect("the edge router");
    assert_eq!(edge.ip, "192.168.1.254");
    assert!(t
        .links
        .iter()
        .any(|l| l.a == format!("{}/eth0", edge.name) && l.b == format!("underlay/{}", edge.name)));
    let f = t.flows.iter().find(|f| f.name == "web").unwrap();
    assert_eq!((f.to.as_str(), f.port), ("10.96.0.10", 80));
    assert_eq!(f.from, ["pod-a"]);
    for (name, yaml) in EXAMPLES {
        let mut s =
            SimCore::new(yaml, &SimOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = s.topology();
        assert!(!t.nodes.is_empty(), "{name}");
        s.run_until(2000.0).unwrap();
        let _ = s.events(0.0, None);
    }
}

#[test]
fn ebpf_mode_conntrack_entries_read_the_ct_map() {
    let Some((_, yaml)) = EXAMPLES.iter().find(|(n, _)| *n == "ebpf") else {
        return;
    };
    let mut s = sim(yaml);
    s.run_to_end(None).unwrap();
    let ct = s.conntrack("node-a").unwrap();
    assert!(!ct.is_empty());
    let e = ct
        .iter()
        .find(|e| e.orig.src == "10.244.0.5")
        .expect("pod-a's connection");
    assert_eq!(e.proto, "tcp");
    assert_eq!((e.orig.dst.as_str(), e.orig.dport), ("10.244.1.20", 80));
    assert_eq!((e.reply.src.as_str(), e.reply.sport), ("10.244.1.20", 80));
    assert!(e.assured && !e.unreplied);
    assert!(e.state.as_deref().is_some_and(|f| f.contains("SeenReply")));
}

#[test]
fn a_bounded_window_keeps_the_latest_events_numbered_from_the_recording_start() {
    let three = EXAMPLES
        .iter()
        .find(|(n, _)| *n == "three-endpoints")
        .unwrap()
        .1;
    let opts = SimOptions {
        window_events: Some(5_000),
        ..Default::default()
    };
    // Recording from the start, with a small window: the oldest events go.
    let mut a = SimCore::new(three, &opts).unwrap();
    a.run_until(20_000.0).unwrap();
    let (base, count) = (a.event_base(), a.event_count());
    assert!(base > 0.0, "the oldest events went");
    assert!(count - base <= 5_000.0, "{base}..{count}");
    let evs = a.events(0.0, None);
    assert_eq!(evs.len() as f64, count - base);
    assert_eq!(evs[0].index, base);
    assert!(a.events(0.0, Some(base)).is_empty());
    // The same moment reached unrecorded, then recording: the same events from there on.
    let last = evs.last().unwrap().time;
    let cut = evs[evs.len() / 2].time;
    let no_record = SimOptions {
        record: Some(false),
        ..opts.clone()
    };
    let mut b = SimCore::new(three, &no_record).unwrap();
    assert!(!b.recording() && b.event_count() == 0.0);
    b.run_until(cut - 1.0).unwrap();
    assert!(b.frames_delivered() > 0.0);
    b.set_recording(true);
    assert_eq!(b.recording_since(), Some(cut - 1.0));
    b.run_until(last).unwrap();
    let from_a: Vec<_> = evs
        .iter()
        .filter(|e| e.time >= cut)
        .map(|e| (e.time, e.kind, e.packet.line.clone()))
        .collect();
    let from_b: Vec<_> = b
        .events(0.0, None)
        .into_iter()
        .map(|e| (e.time, e.kind, e.packet.line))
        .collect();
    assert_eq!(from_a, from_b);
    assert_eq!(a.frames_delivered(), b.frames_delivered());
    assert_eq!(
        a.conntrack_text("node-a").unwrap(),
        b.conntrack_text("node-a").unwrap()
    );
    // tcpdump and the pcap read the window, up to a time when told.
    let all = b.tcpdump("any", "", None).unwrap().len();
    assert!(b.tcpdump("any", "", Some(cut + 100.0)).unwrap().len() < all);
    b.set_recording(false);
    assert!(b.events(0.0, None).is_empty());
    assert!(b.tcpdump("any", "", None).unwrap().is_empty());
}

fn network_policy() -> &'static str {
    EXAMPLES
        .iter()
        .find(|(n, _)| *n == "network-policy")
        .unwrap()
        .1
}

/// network-policy with allow-frontend's ingress rule taken out (`ingress: []`).
fn without_frontend_rule() -> String {
    let yaml = network_policy();
    let rule = "  ingress:\n    - from: [{podSelector: {matchLabels: {role: frontend}}}]\n      ports: [{port: http}]\n";
    assert!(yaml.contains(rule), "the example's allow-frontend rule");
    yaml.replace(rule, "  ingress: []\n")
}

#[test]
fn what_if_without_the_frontend_rule_denies_the_frontend_connections() {
    let d = what_if(network_policy(), &without_frontend_rule(), DEFAULT_FILE).unwrap();
    let ids: Vec<(&str, u32)> = d
        .connections
        .iter()
        .map(|c| (c.flow.as_str(), c.id))
        .collect();
    assert_eq!(ids, [("frontend", 0), ("frontend", 1)]);
    assert_eq!(
        d.connections_compared, 3,
        "two frontend and one intruder connection"
    );
    for c in &d.connections {
        assert_eq!((c.before.as_str(), c.after.as_str()), ("ok", "denied"));
        assert!(
            c.why_before.contains("default/allow-frontend"),
            "{}",
            c.why_before
        );
        assert!(
            c.why_after.contains("no policy allows it"),
            "{}",
            c.why_after
        );
        assert!(c.to.starts_with("10.96.0.50:80"), "{}", c.to);
    }
    // The probe from pod-a to backend (and to the Service) changed the same way.
    let cells: Vec<(&str, &str)> = d
        .probes
        .iter()
        .map(|c| (c.from.as_str(), c.to.as_str()))
        .collect();
    assert!(
        cells.contains(&("default/pod-a", "default/backend")),
        "{cells:?}"
    );
    for c in &d.probes {
        assert_eq!((c.before.result, c.after.result), ("allowed", "denied"));
        assert!(
            c.before.why.contains("default/allow-frontend"),
            "{}",
            c.before.why
        );
    }
    assert!(d.changed());
}

#[test]
fn what_if_of_an_edit_that_changes_nothing_is_empty() {
    let after = format!("# only a comment\n{}", network_policy());
    let d = what_if(network_policy(), &after, DEFAULT_FILE).unwrap();
    assert!(!d.changed(), "{d:?}");
    assert_eq!(d.connections_compared, 3);
    assert!(d.probes_compared > 0);
}

#[test]
fn what_if_of_bad_yaml_fails_with_the_line_of_the_error() {
    let good = "spec: {from: pod-a, to: \"web:80\", count: 2, expect: {outcome: ok}}";
    let after = network_policy().replace(good, &good.replace("count: 2", "count: two"));
    let line = network_policy().lines().position(|l| l == good).unwrap() + 1;
    let e = what_if(network_policy(), &after, DEFAULT_FILE).unwrap_err();
    assert!(
        e.message.starts_with(&format!("scenario.yaml:{line}:")),
        "{}",
        e.message
    );
    // The same text check() gives for it.
    let diags = check(&after, DEFAULT_FILE);
    assert_eq!(diags.last().unwrap().text, e.message);
}

/// The packet-to-connection index kept up to date as a run goes (read after every slice)
/// gives every event the same connection as one built once, at the same moment; and most
/// events have one (hairpin: DNAT and masquerade on one node; nodeport: a tuple translated on
/// two nodes; three-endpoints: ports reused).
#[test]
fn the_connection_index_read_as_the_run_goes_equals_one_built_at_once() {
    for name in [
        "three-endpoints",
        "hairpin",
        "nodeport",
        "masquerade-all",
        "pod-replaced",
    ] {
        let yaml = EXAMPLES.iter().find(|(n, _)| *n == name).unwrap().1;
        let yaml = yaml.replace("count: 3000\n", "count: 400\n");
        let mut step = sim(&yaml);
        let mut t = 0.0;
        while !step.finished() && t < 30e6 {
            t += 700.0;
            step.run_until(t).unwrap();
            let n = step.event_count();
            step.events(n - 1.0, None);
        }
        let mut once = sim(&yaml);
        once.run_until(t).unwrap();
        let a = step.events(0.0, None);
        let b = once.events(0.0, None);
        assert_eq!(a.len(), b.len(), "{name}");
        let with = a.iter().filter(|e| e.conn.is_some()).count();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.conn, y.conn, "{name}: event {}", x.index);
        }
        assert!(
            with > a.len() / 2,
            "{name}: only {with} of {} events with a connection",
            a.len()
        );
    }
}

/// Recording turned off lets the connection index go; turned on again later, the events read
/// get the same connections as those of a simulation that only began recording then.
#[test]
fn a_recording_begun_again_indexes_connections_as_a_fresh_one() {
    let yaml = EXAMPLES
        .iter()
        .find(|(n, _)| *n == "three-endpoints")
        .unwrap()
        .1
        .replace("count: 3000\n", "count: 600\n");
    let mut a = sim(&yaml);
    a.run_until(3_000.0).unwrap();
    assert!(!a.events(0.0, None).is_empty());
    a.set_recording(false);
    a.run_until(6_000.0).unwrap();
    a.set_recording(true);
    a.run_until(9_000.0).unwrap();
    let opts = SimOptions {
        record: Some(false),
        ..Default::default()
    };
    let mut b = SimCore::new(&yaml, &opts).unwrap();
    b.run_until(6_000.0).unwrap();
    b.set_recording(true);
    b.run_until(9_000.0).unwrap();
    let (ea, eb) = (a.events(0.0, None), b.events(0.0, None));
    assert_eq!(ea.len(), eb.len());
    assert!(ea.iter().filter(|e| e.conn.is_some()).count() > ea.len() / 2);
    for (x, y) in ea.iter().zip(&eb) {
        assert_eq!(x.conn, y.conn, "event {}", x.index);
    }
}

/// The frames in flight at `t` as the page paired them before the module did: sent events
/// matched to received events on the link's other end by interface, tcpdump line and length.
fn flights_by_lines(
    links: &[podnet_wasm::api::LinkInfo],
    evs: &[podnet_wasm::api::SimEvent],
    t: f64,
    max_us: f64,
) -> Vec<(f64, f64)> {
    let peer = |i: &str| {
        links.iter().find_map(|l| {
            (l.a == i)
                .then(|| l.b.clone())
                .or((l.b == i).then(|| l.a.clone()))
        })
    };
    let mut open: Vec<(String, String, u32, f64)> = Vec::new();
    for e in evs.iter().filter(|e| e.time <= t && e.time > t - max_us) {
        match e.kind {
            "sent" => {
                if let Some(p) = peer(&e.iface) {
                    open.push((p, e.packet.line.clone(), e.packet.len, e.index));
                }
            }
            "received" => {
                if let Some(at) = open
                    .iter()
                    .position(|o| o.0 == e.iface && o.1 == e.packet.line && o.2 == e.packet.len)
                {
                    open.remove(at);
                }
            }
            _ => {}
        }
    }
    let last = evs
        .iter()
        .rev()
        .find(|e| e.time <= t)
        .map_or(0.0, |e| e.time);
    let mut out = Vec::new();
    for e in evs.iter().filter(|e| e.time > t && e.time <= last + max_us) {
        if e.kind != "received" {
            continue;
        }
        if let Some(at) = open
            .iter()
            .position(|o| o.0 == e.iface && o.1 == e.packet.line && o.2 == e.packet.len)
        {
            out.push((open.remove(at).3, e.index));
        }
    }
    out
}

#[test]
fn flights_pair_each_frame_sent_with_its_receipt_on_the_other_end() {
    for name in ["seed", "three-endpoints"] {
        let yaml = EXAMPLES.iter().find(|(n, _)| *n == name).unwrap().1;
        let mut s = sim(yaml);
        s.run_until(30_000.0).unwrap();
        let evs = s.events(0.0, None);
        let links = s.topology().links;
        let mut seen = 0;
        let step = evs.len() / 200 + 1;
        for t in evs
            .iter()
            .step_by(step)
            .map(|e| e.time)
            .chain([0.0, 29_999.0])
        {
            let got = s.flights(t, 10_000.0, 100_000);
            for f in &got.flights {
                assert!(
                    f.sent_time <= t && f.received_time > t,
                    "{name} at {t}: {f:?}"
                );
                assert!(Some(f.sent) < f.received);
            }
            let pairs: Vec<(f64, f64)> = got
                .flights
                .iter()
                .map(|f| (f.sent, f.received.unwrap()))
                .collect();
            assert_eq!(
                pairs,
                flights_by_lines(&links, &evs, t, 10_000.0),
                "{name} at {t}"
            );
            seen += pairs.len();
        }
        assert!(seen > 0, "{name}: no frame ever in flight");
    }
}

#[test]
fn flights_give_the_latest_drops_and_nothing_before_recording() {
    // A full conntrack table drops SYNs.
    let yaml = EXAMPLES
        .iter()
        .find(|(n, _)| *n == "conntrack-full")
        .unwrap()
        .1;
    let mut s = sim(yaml);
    s.run_until(2_000_000.0).unwrap();
    let all: Vec<f64> = s
        .events(0.0, None)
        .iter()
        .filter(|e| e.kind == "dropped")
        .map(|e| e.time)
        .collect();
    let Some(&t) = all.last() else {
        panic!("conntrack-full drops nothing in 2 s")
    };
    let got = s.flights(t, 10_000.0, 1_000_000);
    assert!(!got.drops.is_empty() && got.drops.len() <= podnet_wasm::sim::MAX_DROPS);
    assert!(got
        .drops
        .iter()
        .all(|d| d.kind == "dropped" && d.time <= t && d.time > t - 10_000.0));
    assert_eq!(got.drops.last().unwrap().time, t);
    let mut off = SimCore::new(
        yaml,
        &SimOptions {
            record: Some(false),
            ..SimOptions::default()
        },
    )
    .unwrap();
    off.run_until(1_000.0).unwrap();
    assert_eq!(off.flights(500.0, 10_000.0, 4_000), Default::default());
}

#[test]
fn connections_with_keeps_exactly_the_report_connections_that_match() {
    let mut matched = 0;
    for (name, yaml) in EXAMPLES {
        let mut s = sim(yaml);
        s.run_until(3_000_000.0).unwrap();
        let flows = s.report().flows.clone();
        let outcomes: std::collections::BTreeSet<&str> = flows
            .iter()
            .flat_map(|f| f.connections.iter().map(|c| c.outcome))
            .collect();
        let statuses: std::collections::BTreeSet<u16> = flows
            .iter()
            .flat_map(|f| f.connections.iter().filter_map(|c| c.http_status))
            .collect();
        let mut asks: Vec<(Option<&str>, Option<u16>)> =
            vec![(None, None), (Some("nonesuch"), None)];
        asks.extend(outcomes.iter().map(|o| (Some(*o), None)));
        asks.extend(statuses.iter().map(|h| (None, Some(*h))));
        for (o, h) in asks {
            let want: Vec<_> = flows
                .iter()
                .map(|f| podnet_scenario::session::Flow {
                    name: f.name.clone(),
                    connections: f
                        .connections
                        .iter()
                        .filter(|c| {
                            o.is_none_or(|o| c.outcome == o)
                                && h.is_none_or(|h| c.http_status == Some(h))
                        })
                        .cloned()
                        .collect(),
                })
                .filter(|f| !f.connections.is_empty())
                .collect();
            let got = s.connections_with(o, h);
            assert_eq!(
                format!("{got:?}"),
                format!("{want:?}"),
                "{name}: {o:?} {h:?}"
            );
            matched += got.iter().map(|f| f.connections.len()).sum::<usize>();
        }
    }
    assert!(matched > 0);
}

#[test]
fn flights_now_are_the_frames_a_later_run_sees_in_flight() {
    for name in ["seed", "three-endpoints", "conntrack-full"] {
        let yaml = EXAMPLES.iter().find(|(n, _)| *n == name).unwrap().1;
        // Every event kept: the later run must still hold the sendings the earlier one pairs.
        let all = SimOptions {
            window_events: Some(10_000_000),
            ..SimOptions::default()
        };
        let mut later = SimCore::new(yaml, &all).unwrap();
        later.run_until(40_000.0).unwrap();
        let times: Vec<f64> = later.events(0.0, None).iter().map(|e| e.time).collect();
        let mut now = SimCore::new(yaml, &all).unwrap();
        let mut seen = 0;
        let step = times.len() / 150 + 1;
        for t in times
            .iter()
            .step_by(step)
            .copied()
            .filter(|t| *t < 30_000.0)
        {
            if t <= now.now() {
                continue;
            }
            now.run_until(t).unwrap();
            let key = |f: &podnet_wasm::api::Flight| {
                (
                    f.sent as u64,
                    f.received_time as u64,
                    f.from.clone(),
                    f.to.clone(),
                    f.sent_time as u64,
                )
            };
            let got = now.flights_now(1_000_000).flights;
            for f in &got {
                assert!(
                    f.sent_time <= t && f.received_time > t && f.received.is_none(),
                    "{name} at {t}: {f:?}"
                );
            }
            let got: Vec<_> = got.iter().map(key).collect();
            // Each frame the later run saw sent by then and received after is on a wire now.
            // (The later run pairs by the bytes received, so it misses what arrives otherwise:
            // a super-segment on a wire arrives as segments.)
            for w in later.flights(t, 1e9, 1_000_000).flights.iter().map(key) {
                assert!(
                    got.contains(&w),
                    "{name} at {t}: {w:?} not in flight: {got:?}"
                );
            }
            seen += got.len();
        }
        assert!(seen > 0, "{name}: nothing in flight");
    }
}

#[test]
fn the_tcpdump_tail_and_the_conntrack_head_are_cut_from_the_whole() {
    let (mut tails, mut heads, mut selected) = (0, 0, 0);
    for (name, yaml) in EXAMPLES {
        let mut s = sim(yaml);
        for t in [2_000.0, 40_000.0, 3_000_000.0] {
            s.run_until(t).unwrap();
            for (iface, filter) in [("any", ""), ("node-a", "tcp"), ("node-a/eth0", "")] {
                let Ok(all) = s.tcpdump(iface, filter, None) else {
                    continue;
                };
                let until = Some(t - 500.0);
                let upto = s.tcpdump(iface, filter, until).unwrap();
                for last in [0, 1, 5, 400] {
                    let tail = s.tcpdump_tail(iface, filter, until, last).unwrap();
                    // Lines: those of the last `last` packets (two for an encapsulated frame).
                    assert!(upto.ends_with(&tail.lines), "{name} {iface} at {t}: {last}");
                    let packets = tail.lines.iter().filter(|l| !l.starts_with("IP ")).count();
                    assert_eq!(packets, last.min(tail.count as usize), "{name} {iface}");
                    assert!(tail.count as usize <= upto.len() && upto.len() <= all.len());
                    tails += 1;
                }
            }
            for node in ["node-a", "node-b"] {
                let Ok(text) = s.conntrack_text(node) else {
                    continue;
                };
                let lines: Vec<&str> = text.lines().collect();
                for limit in [0, 3, 200, usize::MAX] {
                    let head = s.conntrack_head(node, limit, &[]).unwrap();
                    assert_eq!(head.count as usize, lines.len(), "{name} {node}");
                    assert_eq!(head.lines, lines[..limit.min(lines.len())], "{name} {node}");
                    assert!(head.selected.is_empty());
                    heads += usize::from(limit < lines.len());
                }
                // The entries of some tuples, as the page lit them from every entry: those
                // whose original or reply tuple is one of them.
                let entries = s.conntrack(node).unwrap();
                let key = |t: &podnet_wasm::api::CtTuple| {
                    format!("{}:{}>{}:{}", t.src, t.sport, t.dst, t.dport)
                };
                let mut asked: Vec<String> =
                    entries.iter().step_by(7).map(|e| key(&e.orig)).collect();
                asked.extend(entries.iter().skip(3).step_by(11).map(|e| key(&e.reply)));
                asked.extend(["junk".to_string(), "10.0.0.1>10.0.0.2".to_string()]);
                let want: Vec<String> = entries
                    .iter()
                    .filter(|e| asked.contains(&key(&e.orig)) || asked.contains(&key(&e.reply)))
                    .map(|e| e.text.clone())
                    .collect();
                let head = s.conntrack_head(node, 3, &asked).unwrap();
                assert_eq!(head.selected, want, "{name} {node} at {t}");
                selected += want.len();
            }
        }
    }
    assert!(
        tails > 500 && heads > 20 && selected > 50,
        "{tails} {heads} {selected}"
    );
}
