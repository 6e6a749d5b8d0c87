//! `podnet demo`: the seed document's cluster, built with the library API: Pod A
//! (10.244.0.5 on node-a, 192.168.1.100) calls Service `web` (ClusterIP 10.96.0.10:80), backed
//! by a pod at 10.244.1.20 on node-b.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use podnet::trace::TraceConfig;
use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, LinkConfig, NodeSpec, Outcome, PodSpec, Program,
    Proxy, ServiceSpec,
};
use smoltcp::wire::Ipv4Address;

/// The Service proxy.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProxyArg {
    /// kube-proxy, iptables mode.
    Iptables,
    /// kube-proxy, nftables mode.
    Nftables,
    /// No Service proxy: Pod A calls the backend pod directly.
    None,
    /// No kube-proxy: Cilium-style eBPF (socket-level load balancing: the ClusterIP never
    /// reaches the wire).
    Ebpf,
}

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
    /// The Service proxy on the nodes.
    #[arg(long, value_enum, default_value_t = ProxyArg::Iptables)]
    proxy: ProxyArg,
    /// kube-proxy --masquerade-all: the backend then sees node-a's address, not Pod A's.
    #[arg(long)]
    masquerade_all: bool,
    /// Print every frame on every interface, tcpdump style.
    #[arg(long)]
    tcpdump: bool,
    /// Print node-a's conntrack table (`conntrack -L`) and counters (`conntrack -S`) at the end
    /// (with --proxy ebpf: its CT map, `cilium bpf ct list global`).
    #[arg(long)]
    conntrack: bool,
    /// Print node-a's rules (`iptables-save`, or `nft list ruleset` with --proxy nftables; with
    /// --proxy ebpf the Service map, `cilium bpf lb list`).
    #[arg(long)]
    rules: bool,
    /// Write one pcap per interface into this directory.
    #[arg(long, value_name = "DIR")]
    pcap: Option<PathBuf>,
}

/// Builds and runs the demo cluster; prints the routes, each connection and a summary.
pub fn run(args: &DemoArgs) -> Result<ExitCode, String> {
    if !(0.0..=1.0).contains(&args.loss) {
        return Err(format!("--loss must be between 0 and 1, got {}", args.loss));
    }
    // Frame events only for --tcpdump; no hook events (nothing here prints them).
    let trace = TraceConfig {
        frames: args.tcpdump,
        hooks: false,
        pcap: args.pcap.is_some(),
        ..TraceConfig::default()
    };
    let proxy = match args.proxy {
        ProxyArg::Iptables => Proxy::Iptables,
        ProxyArg::Nftables => Proxy::Nftables,
        ProxyArg::None => Proxy::None,
        ProxyArg::Ebpf => Proxy::Ebpf,
    };
    let config = ClusterConfig {
        seed: args.seed,
        trace,
        proxy,
        masquerade_all: args.masquerade_all,
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(config);
    let err = |e: podnet::Error| e.to_string();
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .map_err(err)?;
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .map_err(err)?;
    let backend_ip = Ipv4Address::new(10, 244, 1, 20);
    let backend = c
        .add_pod(
            PodSpec::new("backend", b)
                .ip(backend_ip)
                .program(Program::HttpServer { port: 80 }),
        )
        .map_err(err)?;
    let target = if proxy == Proxy::None {
        backend_ip
    } else {
        c.add_service(ServiceSpec::new("web", 80, 80, vec![backend]).cluster_ip([10, 96, 0, 10]))
            .map_err(err)?
    };
    let spec = ClientSpec::http("pod-a", target, 80)
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
    // Let the last connection close (FIN, ACK) so the tables show its TIME_WAIT.
    c.run_until(c.now() + Duration::from_secs(1));

    let mut out = String::new();
    let via = if proxy == Proxy::None {
        String::new()
    } else {
        format!("Service web {target}:80 -> ")
    };
    let _ = writeln!(out, "podnet demo (seed {}): pod-a 10.244.0.5 on node-a -> {via}backend {backend_ip}:80 on node-b\n", args.seed);
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
            "  #{:<3} {} -> {}{}  {:<8} connect {:>9}  sent {} B  received {} B",
            r.id,
            r.local,
            r.remote,
            r.peer
                .map(|p| format!(" (socket LB: {p})"))
                .unwrap_or_default(),
            r.outcome,
            connect,
            r.bytes_sent,
            r.bytes_received
        );
        ok += usize::from(r.outcome == Outcome::Ok);
    }
    if let Some(bpf) = c.dataplane(a).and_then(|d| d.ebpf()) {
        if args.conntrack {
            let _ = writeln!(
                out,
                "\nnode-a# cilium bpf ct list global\n{}",
                bpf.ct_list(c.now()).trim_end()
            );
        }
        if args.rules {
            let _ = writeln!(
                out,
                "\nnode-a# cilium bpf lb list   (kube-proxy is not running: no iptables rules)\n{}",
                bpf.lb().lb_list().trim_end()
            );
        }
    } else if let Some(dp) = c.dataplane(a) {
        if args.conntrack {
            let _ = writeln!(
                out,
                "\nnode-a# conntrack -L\n{}",
                dp.conntrack().list(c.now()).trim_end()
            );
            let _ = writeln!(
                out,
                "conntrack v1.4.7 (conntrack-tools): {} flow entries have been shown.",
                dp.conntrack().list(c.now()).lines().count()
            );
            let _ = write!(
                out,
                "\nnode-a# conntrack -S\n{}",
                dp.conntrack().stats_text()
            );
        }
        if args.rules {
            let (cmd, text) = match proxy {
                Proxy::Nftables => ("nft list ruleset", dp.proxy().nft_ruleset()),
                _ => ("iptables-save", dp.proxy().iptables_save()),
            };
            let _ = writeln!(out, "\nnode-a# {cmd}\n{}", text.trim_end());
        }
    }
    let _ = writeln!(
        out,
        "\n{ok}/{} ok, {} frames dropped, virtual time {:.3}ms, {} events",
        flow.records().len(),
        c.trace().drop_count(),
        c.now().total_micros() as f64 / 1000.0,
        c.events_run()
    );
    out!("{out}");
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
