//! Engine scripts: when pods acknowledge, as Linux's TCP does (`pod::delack`). The expected
//! exchanges were captured with `tcpdump` between two Linux 6.18 network namespaces running
//! the same application pattern (Python sockets; `bench/linux-acks/run.sh MODE` captures them
//! again, as root): the handshake's ACK and the first data's ACKs leave at once, before the
//! application answers.

#[path = "support/sent.rs"]
mod sent;

use podnet::{ClientSpec, Cluster, ClusterConfig, PodSpec, Program, Request, TraceConfig};
use smoltcp::wire::{IpProtocol, Ipv4Address, TcpPacket};

const WEB: Ipv4Address = Ipv4Address::new(10, 244, 1, 2);

/// tcpdump's flags of every TCP segment the two pods sent, in time order, with `>` for the
/// client's and `<` for the server's (`> S`, `< S.`, ...).
fn exchange(server: Program, request: Request, port: u16) -> Vec<String> {
    let (mut c, a, b) = Cluster::two_nodes(ClusterConfig {
        trace: TraceConfig::frames(1 << 17),
        ..ClusterConfig::default()
    })
    .unwrap();
    c.add_pod(PodSpec::new("web", b).program(server)).unwrap();
    c.add_pod(PodSpec::new("client", a).program(Program::Client(
        ClientSpec::http("c", WEB, port).request(request),
    )))
    .unwrap();
    assert!(c.run_until_done(podnet::Duration::from_secs(5)));
    let later = c.now() + podnet::Duration::from_secs(1);
    c.run_until(later);
    let which = |name: &str| match name {
        "client/eth0" => Some('>'),
        "web/eth0" => Some('<'),
        _ => None,
    };
    sent::sent_ipv4(c.trace(), which)
        .into_iter()
        .filter_map(|(dir, ip)| {
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            let mut f = String::new();
            for (on, c) in [
                (t.syn(), 'S'),
                (t.fin(), 'F'),
                (t.rst(), 'R'),
                (t.psh(), 'P'),
            ] {
                if on {
                    f.push(c);
                }
            }
            if t.ack() {
                f.push('.');
            }
            Some(format!("{dir} {f}"))
        })
        .collect()
}

fn linux(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_http_exchange_is_the_ten_packets_linux_sends() {
    let got = exchange(
        Program::HttpServer { port: 80 },
        Request::Http {
            host: "web".into(),
            path: "/".into(),
        },
        80,
    );
    let want = linux(&[
        "> S", "< S.", "> .", "> P.", "< .", "< P.", "> .", "> F.", "< F.", "> .",
    ]);
    assert_eq!(got, want);
}

#[test]
fn an_echo_is_acknowledged_before_it_is_answered() {
    // Linux, 1,000 bytes echoed: S, S., ., P., ., P., ., F., F., .
    let got = exchange(
        Program::TcpEcho { port: 7 },
        Request::Echo(vec![b'e'; 1000]),
        7,
    );
    let want = linux(&[
        "> S", "< S.", "> .", "> P.", "< .", "< P.", "> .", "> F.", "< F.", "> .",
    ]);
    assert_eq!(got, want);
}

#[test]
fn a_probe_acknowledges_the_handshake_then_closes() {
    // Linux, connect() then close(): S, S., ., F., F., .
    let got = exchange(Program::HttpServer { port: 80 }, Request::Connect, 80);
    let want = linux(&["> S", "< S.", "> .", "> F.", "< F.", "> ."]);
    assert_eq!(got, want);
}

#[test]
fn an_upload_is_acknowledged_a_super_segment_at_a_time() {
    // Linux, 100,000 bytes then shutdown(SHUT_WR) to a discard server: every super-segment
    // (more than one full segment) acknowledged at once, the last one (with the FIN) too,
    // then the server's own FIN when its application has read the end.
    // podnet's pods send smaller super-segments (smoltcp's congestion window starts at two
    // segments), each of more than one segment, so each has its ACK.
    let got = exchange(Program::TcpDiscard { port: 9 }, Request::Upload(20_000), 9);
    let want = linux(&[
        "> S", "< S.", "> .", "> .", "< .", "> .", "< .", "> .", "< .", "> .", "< .", "> F.",
        "< .", "< F.", "> .",
    ]);
    assert_eq!(got, want);
}
