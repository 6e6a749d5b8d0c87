//! `podnet demo`: the seed document's two-node cluster, built with the library API.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use podnet::trace::TraceConfig;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, LinkConfig, NodeSpec, Outcome, PodSpec, Program,
};
use smoltcp::wire::Ipv4Address;

/// Options of `podnet demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Seed of every random choice (ports, sequence numbers, loss).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// HTTP connections Pod A opens, one after the other.
    #[arg(long, default_value_t = 3)]
    count: u32,
    /// Loss probability on Pod A's veth, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Print every frame on every interface, tcpdump style.
    #[arg(long)]
    tcpdump: bool,
    /// Write one pcap per interface into this directory.
    #[arg(long, value_name = "DIR")]
    pcap: Option<PathBuf>,
}

/// Builds and runs the demo cluster; prints the routes, each connection and a summary.
pub fn run(args: &DemoArgs) -> Result<ExitCode, String> {
    if !(0.0..=1.0).contains(&args.loss) {
        return Err(format!("--loss must be between 0 and 1, got {}", args.loss));
    }
    let trace = TraceConfig {
        pcap: args.pcap.is_some(),
        ..TraceConfig::default()
    };
    let mut c = Cluster::new(ClusterConfig {
        seed: args.seed,
        trace,
        ..ClusterConfig::default()
    });
    let err = |e: podnet::Error| e.to_string();
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .map_err(err)?;
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .map_err(err)?;
    let backend = Ipv4Address::new(10, 244, 1, 20);
    c.add_pod(
        PodSpec::new("backend", b)
            .ip(backend)
            .program(Program::HttpServer { port: 80 }),
    )
    .map_err(err)?;
    let spec = ClientSpec::http("pod-a", backend, 80)
        .count(args.count)
        .interval(Duration::from_millis(10));
    let pod_a = c
        .add_pod(
            PodSpec::new("pod-a", a)
                .ip([10, 244, 0, 5])
                .program(Program::Client(spec)),
        )
        .map_err(err)?;
    if args.loss > 0.0 {
        c.set_pod_link(
            pod_a,
            LinkConfig {
                loss: args.loss,
                ..LinkConfig::default()
            },
        );
    }
    let finished = c.run_until_done(Duration::from_secs(60));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "podnet demo (seed {}): pod-a 10.244.0.5 on node-a -> backend {backend}:80 on node-b\n",
        args.seed
    );
    for (_, node) in c.nodes() {
        let addrs = node.addrs();
        let _ = writeln!(
            out,
            "{}: eth0 {}  cni0 {}/{}",
            node.name(),
            addrs.eth0,
            addrs.gateway(),
            addrs.pod_cidr.prefix_len()
        );
        for r in node.routes().iter() {
            let _ = writeln!(out, "    {r}");
        }
    }
    if args.tcpdump {
        let _ = writeln!(out, "\n{}", c.trace().tcpdump().trim_end());
    }
    let _ = writeln!(out, "\nconnections:");
    let flow = c
        .pod(pod_a)
        .and_then(|p| p.clients().next())
        .ok_or("demo client missing")?;
    let mut ok = 0;
    for r in flow.records() {
        let connect = r.connect_time.map_or("-".to_string(), |d| {
            format!("{:.3}ms", d.total_micros() as f64 / 1000.0)
        });
        let _ = writeln!(
            out,
            "  #{:<3} {} -> {}  {:<8} connect {:>9}  sent {} B  received {} B",
            r.id, r.local, r.remote, r.outcome, connect, r.bytes_sent, r.bytes_received
        );
        ok += usize::from(r.outcome == Outcome::Ok);
    }
    let _ = writeln!(
        out,
        "\n{ok}/{} ok, {} frames dropped, virtual time {:.3}ms, {} events",
        flow.records().len(),
        c.trace().drop_count(),
        c.now().total_micros() as f64 / 1000.0,
        c.events_run()
    );
    print!("{out}");
    if let Some(dir) = &args.pcap {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (id, name) in c.trace().ifaces() {
            if let Some(p) = c.trace().pcap(id) {
                let path = dir.join(format!("{}.pcap", name.replace('/', "_")));
                std::fs::write(&path, p.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        eprintln!("pcaps written to {}", dir.display());
    }
    Ok(if finished && ok == flow.records().len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
