//! The limits on a node's ICMP errors (`net.ipv4.icmp_ratelimit`, `icmp_msgs_per_sec`,
//! `icmp_msgs_burst`): the kernel against podnet's model (`podnet::node::icmp_limit`), in
//! real time.
//!
//! The replays cannot compare them: podnet's virtual time runs for seconds where the replay
//! takes milliseconds, and the limits refill with time. So the replays turn them off on both
//! sides (`icmp_ratemask` 0), and this check sends UDP datagrams from a pod namespace to a
//! closed port of a node namespace, with the spacing each case asks for, and counts the port
//! unreachables the node sent (`OutDestUnreachs` in the node's `/proc/net/snmp`). podnet's
//! count is its limiter's answer for the same sends at the same times.
//!
//! The host limit draws 0 to 2 credits per error at random on both sides, so its case
//! compares ranges: what the kernel sent must be a count the model can give (25 at least,
//! when every error takes two credits), and far below what was sent.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use podnet::node::icmp_limit::{IcmpConfig, IcmpLimit};
use podnet::rng::{SimRng, Stream};
use smoltcp::wire::Ipv4Address;

use crate::counts::{sh, Case};
use crate::netns::{self, Namespaces};
use crate::sys;

const NODE: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

fn out_dest_unreachs(ns: &str) -> Result<usize, String> {
    let snmp = netns::ns_run(ns, "cat", &["/proc/net/snmp"], None)?;
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next(), icmp.next());
    let (Some(names), Some(values)) = (names, values) else {
        return Err("/proc/net/snmp: no Icmp lines".into());
    };
    let i = names
        .split_whitespace()
        .position(|n| n == "OutDestUnreachs")
        .ok_or("/proc/net/snmp: no OutDestUnreachs")?;
    values
        .split_whitespace()
        .nth(i)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "/proc/net/snmp: bad OutDestUnreachs".into())
}

/// A pod namespace with `sources` addresses (10.244.0.10 on) and a node namespace at
/// 10.244.0.1, joined by a veth.
fn setup(ns: &mut Namespaces, tag: &str, sources: usize) -> Result<(String, String), String> {
    let pid = std::process::id();
    let (p, n) = (format!("pnkd-{pid}-{tag}p"), format!("pnkd-{pid}-{tag}n"));
    for x in [&p, &n] {
        ns.add(x)?;
        netns::ipv4_only(x)?;
    }
    netns::run(
        "ip",
        &[
            "link", "add", "eth0", "netns", &p, "type", "veth", "peer", "name", "veth0", "netns",
            &n,
        ],
        None,
    )?;
    sh(&n, "ip addr add 10.244.0.1/16 dev veth0")?;
    sh(&n, "ip link set veth0 up")?;
    let mut batch = String::new();
    for i in 0..sources {
        let a = 10 + i;
        batch += &format!("addr add 10.244.{}.{}/16 dev eth0\n", a / 250, a % 250 + 2);
    }
    netns::run("ip", &["-n", &p, "-batch", "-"], Some(&batch))?;
    sh(&p, "ip link set eth0 up")?;
    Ok((p, n))
}

fn source(i: usize) -> Ipv4Addr {
    let a = 10 + i;
    Ipv4Addr::new(10, 244, (a / 250) as u8, (a % 250 + 2) as u8)
}

/// Datagrams to send: the source's number and the pause before each.
type Plan = Vec<(usize, Duration)>;

/// Sends one datagram from each `(source, delay before it)`; returns when each left.
fn send(pod: &str, plan: &[(usize, Duration)]) -> Result<Vec<Duration>, String> {
    let _guard = sys::enter_netns(pod).map_err(|e| format!("entering {pod}: {e}"))?;
    let mut socks = std::collections::BTreeMap::new();
    for &(s, _) in plan {
        if let std::collections::btree_map::Entry::Vacant(v) = socks.entry(s) {
            let sock = UdpSocket::bind(SocketAddr::from((source(s), 0)))
                .map_err(|e| format!("bind {}: {e}", source(s)))?;
            v.insert(sock);
        }
    }
    let start = Instant::now();
    let mut at = Vec::new();
    for &(s, delay) in plan {
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        at.push(start.elapsed());
        socks[&s]
            .send_to(b"x", SocketAddr::from((NODE, 9)))
            .map_err(|e| format!("send_to: {e}"))?;
    }
    Ok(at)
}

/// podnet's count for datagrams sent at `at` from sources `plan`.
fn model(plan: &[(usize, Duration)], at: &[Duration]) -> usize {
    let mut l = IcmpLimit::new(IcmpConfig::default(), SimRng::derive(1, Stream::Icmp(0)));
    plan.iter()
        .zip(at)
        .filter(|((s, _), t)| {
            let dst = Ipv4Address::from(source(*s).octets());
            let now = podnet::Instant::from_micros(t.as_micros() as i64);
            l.allow(now, 3, 3, dst, false).is_ok()
        })
        .count()
}

/// Runs the three cases (the counts: port unreachables sent; they agree when equal, or for
/// the host limit when both lie in its range); namespaces are deleted afterwards, on errors
/// too.
pub fn run() -> Result<Vec<Case>, String> {
    let cases: [(&str, usize, Plan); 3] = [
        (
            "20 at once from one address",
            1,
            (0..20).map(|_| (0, Duration::ZERO)).collect(),
        ),
        (
            "30 from one address, 100 ms apart",
            1,
            (0..30)
                .map(|i| (0, Duration::from_millis(if i == 0 { 0 } else { 100 })))
                .collect(),
        ),
        (
            "200 at once from 200 addresses",
            200,
            (0..200).map(|i| (i, Duration::ZERO)).collect(),
        ),
    ];
    let mut out = Vec::new();
    for (i, (name, sources, plan)) in cases.into_iter().enumerate() {
        let mut ns = Namespaces::new();
        let (p, n) = setup(&mut ns, &format!("icmp{i}"), sources)?;
        let before = out_dest_unreachs(&n)?;
        let at = send(&p, &plan)?;
        std::thread::sleep(Duration::from_millis(50));
        let kernel = out_dest_unreachs(&n)? - before;
        let podnet = model(&plan, &at);
        let agree = if sources == 1 {
            kernel == podnet
        } else {
            let range = 25..plan.len() / 2;
            range.contains(&kernel) && range.contains(&podnet)
        };
        out.push(Case {
            name: name.to_string(),
            sent: plan.len(),
            kernel,
            podnet,
            agree,
            detail: String::new(),
        });
    }
    Ok(out)
}
