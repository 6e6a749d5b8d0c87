//! `podnet`: run and inspect simulated Kubernetes networks from the command line.

#[macro_use]
mod out;
mod budget;
mod common;
mod demo;
mod malloc;
mod netpol;
mod pcap_files;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use common::{exit, load, parse_duration, run, Failure, ScenarioArgs, Session};
use podnet_scenario::session::{DropRecorder, TcpdumpWriter};

/// The tcpdump writer of `podnet tcpdump`.
type Stdout = TcpdumpWriter<std::io::BufWriter<std::io::Stdout>>;

/// Deterministic userspace Kubernetes networking: watch TCP cross pods, bridges, nodes,
/// conntrack, NAT and kube-proxy, in virtual time.
///
/// Exit codes: 0 success; 1 the scenario ran but an `expect` failed (or, for demo, a
/// connection failed); 2 bad input (unreadable file, invalid YAML, unknown reference), with a
/// message naming file:line:column.
#[derive(Parser, Debug)]
#[command(name = "podnet", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenario files and print a summary, or the JSON report with --json.
    #[command(
        after_help = "Examples:\n  podnet run examples/seed.yaml\n  podnet run examples/three-endpoints.yaml --json\n  podnet run examples/seed.yaml --seed 7 --pcap out/ && tshark -r out/any.pcap"
    )]
    Run {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Print the JSON report (described in the book, "The podnet command").
        #[arg(long)]
        json: bool,
        /// Write one pcap per interface plus any.pcap (Linux cooked, like tcpdump -i any).
        #[arg(long, value_name = "DIR")]
        pcap: Option<PathBuf>,
    },
    /// The packet walk of one connection: every hop and hook, headers before and after each
    /// rewrite, the conntrack entry, the rule that decided.
    #[command(
        after_help = "Examples:\n  podnet trace examples/seed.yaml --flow web\n  podnet trace examples/three-endpoints.yaml --flow load --conn 2"
    )]
    Trace {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// The Traffic flow's name.
        #[arg(long)]
        flow: String,
        /// Which of its connections (0-based, in start order).
        #[arg(long, default_value_t = 0)]
        conn: usize,
        /// Trace the DNS lookup the connection waited for instead (its queries and answers).
        #[arg(long)]
        dns: bool,
    },
    /// tcpdump-style lines (-n, virtual timestamps) for a pcap-filter subset: host, src, dst,
    /// net, port, tcp, udp, icmp, arp, and, or, not, parentheses.
    #[command(
        after_help = "Examples:\n  podnet tcpdump examples/seed.yaml -i any host 10.96.0.10 and port 80\n  podnet tcpdump examples/seed.yaml -i node-a/eth0 tcp\n  podnet tcpdump examples/seed.yaml -i node-b"
    )]
    Tcpdump {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Interface: any, a host (every interface of it), or HOST/IFACE.
        #[arg(short = 'i', default_value = "any")]
        iface: String,
        /// The filter expression.
        #[arg(last = true, allow_hyphen_values = true, num_args = 0..)]
        expr: Vec<String>,
        /// Expression words given without `--`.
        #[arg(long = "expr", hide = true)]
        _unused: Option<String>,
    },
    /// A node's conntrack table in `conntrack -L` format, or its counters with -S.
    #[command(
        after_help = "Examples:\n  podnet conntrack examples/seed.yaml --node node-a\n  podnet conntrack examples/conntrack-full.yaml --node node-a -S\n  podnet conntrack examples/seed.yaml --node node-a --at 200ms"
    )]
    Conntrack {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// The node.
        #[arg(long)]
        node: String,
        /// Show the table at this virtual time instead of the end of the run.
        #[arg(long, value_parser = parse_duration)]
        at: Option<podnet::Duration>,
        /// List the entries (the default).
        #[arg(short = 'L', conflicts_with = "stats")]
        list: bool,
        /// Show the counters.
        #[arg(short = 'S')]
        stats: bool,
    },
    /// A node's generated rules: iptables-save (proxy iptables) or nft list ruleset (nftables);
    /// in eBPF mode the Service map, and with Cilium policies the ipcache and policy maps.
    #[command(
        name = "iptables-save",
        after_help = "Without -c the rules are printed as built, without running the traffic.\n\
With -c the scenario runs (to the end, or to --at) and each rule shows what the packets\n\
left on it, as the kernel counts: a rule counts the packets it matched (packets:bytes,\n\
bytes = IP total length); nat rules see only the first packet of each connection, filter\n\
rules every packet; a builtin chain's [p:b] counts the packets that fell off its end.\n\
In nftables mode, where kube-proxy writes no counter statement, -c lists the table as it\n\
would read with a counter in every rule, after the rule's matches.\n\n\
Examples:\n  podnet iptables-save examples/three-endpoints.yaml --node node-a\n  podnet iptables-save examples/seed.yaml --node node-a -c\n  podnet iptables-save examples/seed.yaml --node node-a -c --at 15ms"
    )]
    IptablesSave {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// The node.
        #[arg(long)]
        node: String,
        /// Print packet and byte counters, as iptables-save -c does: `[packets:bytes]` before
        /// each rule and after each builtin chain's policy.
        #[arg(short = 'c', long)]
        counters: bool,
        /// Run to this virtual time first and show the rules (and counters) then, instead of
        /// the rules as built (or, with -c, the end of the run).
        #[arg(long, value_parser = parse_duration)]
        at: Option<podnet::Duration>,
    },
    /// Why a connection goes where it goes: each node's route, the rules that matched, NAT.
    #[command(
        after_help = "Examples:\n  podnet explain examples/seed.yaml --from pod-a --to web:80\n  podnet explain examples/nodeport.yaml --from internet --to 192.168.1.100:30080\n  podnet explain examples/cilium-l7.yaml --from client --to web:80 --path /public"
    )]
    Explain {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// The client pod (or external host).
        #[arg(long)]
        from: String,
        /// SERVICE:PORT, POD:PORT or IP:PORT.
        #[arg(long)]
        to: String,
        /// The path of the HTTP request the connection sends (`GET PATH`), as L7 policies judge it.
        #[arg(long, default_value = "/")]
        path: String,
    },
    /// The NetworkPolicy connectivity matrix: every pod connects to every pod (and Service)
    /// on each port with a real connection; rows from, columns to; . allowed, X denied.
    #[command(
        after_help = "Every pod runs probe servers on the probed ports instead of its own programs; Traffic and\n\
Fault objects are ignored. Probes run in rounds, each round's connections on distinct\n\
5-tuples, and every node's conntrack is flushed between rounds, so no probe changes\n\
another's outcome. A `kubectl get ns,pod,svc,netpol -A -o yaml` dump loads as it is.\n\n\
Examples:\n  podnet matrix examples/network-policy.yaml\n  podnet matrix dump.yaml --namespace prod --port 80 --json\n  podnet matrix examples/network-policy.yaml --explain-allowed"
    )]
    Matrix {
        /// Files with the pods, namespaces, Services and NetworkPolicies.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        probe: netpol::ProbeArgs,
        /// Print the matrix as JSON.
        #[arg(long)]
        json: bool,
        /// Explain allowed cells too (denied and failed ones always are).
        #[arg(long)]
        explain_allowed: bool,
    },
    /// What a change does: the same probes (as podnet matrix) and the same Traffic in the world
    /// before and the world after, same seed; prints only what changed, with the deciding
    /// policy on each side.
    #[command(
        after_help = "Exit 0, or 1 with --fail-on-change when a probe or connection changed; 2 on bad input.\n\n\
Examples:\n  podnet diff examples/network-policy.yaml examples/network-policy-change.yaml\n  podnet diff base/*.yaml --after new/*.yaml --fail-on-change\n  podnet diff cluster.yaml --policy-change new-policy.yaml\n  podnet diff examples/network-policy.yaml --remove-policy default/allow-frontend"
    )]
    Diff {
        #[command(flatten)]
        diff: netpol::DiffArgs,
        #[command(flatten)]
        probe: netpol::ProbeArgs,
    },
    /// Validate the files and print the resolved cluster: nodes, pods, Services, endpoints.
    #[command(after_help = "Examples:\n  podnet check examples/seed.yaml")]
    Check {
        #[command(flatten)]
        scenario: ScenarioArgs,
    },
    /// The built-in demo: the seed document's Pod A (10.244.0.5 on node 192.168.1.100)
    /// calling Service web (ClusterIP 10.96.0.10:80), backed by a pod (10.244.1.20) on a second
    /// node: DNAT on node-a, conntrack reversing the reply.
    #[command(
        after_help = "Examples:\n  podnet demo\n  podnet demo --count 1 --tcpdump --conntrack\n  podnet demo --masquerade-all --conntrack\n  podnet demo --rules --proxy nftables\n  podnet demo --proxy ebpf --tcpdump --conntrack\n  podnet demo --loss 0.1 --seed 7\n  podnet demo --pcap out/ && tshark -r out/node-a_eth0.pcap"
    )]
    Demo(demo::DemoArgs),
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOC: malloc::Alloc = malloc::Alloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => match demo::run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("podnet: {e}");
                ExitCode::from(2)
            }
        },
        command => exit(scenario_command(command)),
    }
}

/// Runs the scenario to the end (`--until`), or to `--at` exactly: the clock stops at `at`
/// even when the clients finished earlier (as `conntrack --at` and `iptables-save --at` want).
fn run_to(
    l: &mut Session,
    scenario: &ScenarioArgs,
    at: Option<podnet::Duration>,
) -> Result<(), Failure> {
    run(l, scenario, at.unwrap_or(scenario.until), scenario.quiet)?;
    if let Some(at) = at {
        let t = podnet::Instant::ZERO + at;
        if t > l.cluster.now() {
            l.cluster.run_until(t);
        }
    }
    Ok(())
}

fn scenario_command(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Run {
            scenario,
            json,
            pcap,
        } => {
            // No frame or hook is recorded: the report's drops are kept as they happen, and
            // the pcap records appended to their files as the frames pass.
            let mut observers: Vec<Box<dyn podnet::trace::Observer>> =
                vec![Box::new(DropRecorder::default())];
            if let Some(dir) = &pcap {
                observers.push(Box::new(pcap_files::PcapFiles::new(dir)?));
            }
            let mut l = common::load_observed(&scenario, observers)?;
            run(&mut l, &scenario, scenario.until, scenario.quiet || json)?;
            let r = l.report();
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&r).map_err(|e| Failure::input(e.to_string()))?
                );
            } else {
                out!("{}", l.summary(&r));
            }
            if let Some(dir) = pcap {
                let ifaces = l.cluster.trace().iface_table().clone();
                let n = l
                    .cluster
                    .observer_mut::<pcap_files::PcapFiles>()
                    .map_or(Ok(0), |p| p.finish(&ifaces))?;
                if !scenario.quiet {
                    eprintln!("{n} pcaps written to {}", dir.display());
                }
            }
            let failed = l.failed_expectations(&r);
            for f in &failed {
                eprintln!("expectation failed: {f}");
            }
            Ok(if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Trace {
            scenario,
            flow,
            conn,
            dns,
        } => {
            // First the run recording nothing, to find the connection and the tuples its
            // packets carry; then the same world again, recording only those packets.
            let mut first = load(&scenario)?;
            run(&mut first, &scenario, scenario.until, scenario.quiet)?;
            let (proto, r) = first.connection(&flow, conn)?;
            let tuples = if dns {
                first.dns_tuples(&r)
            } else {
                first.connection_tuples(&r, proto)
            };
            let mut l = first.rebuild_recording(tuples)?;
            run(&mut l, &scenario, scenario.until, scenario.quiet)?;
            if dns {
                out!("{}", l.trace_dns(&flow, conn)?);
            } else {
                out!("{}", l.trace(&flow, conn)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tcpdump {
            mut scenario,
            iface,
            expr,
            ..
        } => {
            // As with tcpdump, the filter may follow without `--`: the words after the
            // scenario files that are not files (`host 10.96.0.10 and port 80`) are the filter.
            let split = scenario
                .files
                .iter()
                .position(|p| {
                    !p.exists() && !p.extension().is_some_and(|e| e == "yaml" || e == "yml")
                })
                .unwrap_or(scenario.files.len());
            let mut words: Vec<String> = scenario
                .files
                .split_off(split.max(1).min(scenario.files.len()))
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            words.extend(expr);
            // Lines are formatted, filtered and written as the packets pass.
            let out = std::io::BufWriter::new(std::io::stdout());
            let writer = TcpdumpWriter::new(&iface, &words.join(" "), out)?;
            let mut l = common::load_observed(&scenario, vec![Box::new(writer)])?;
            run(&mut l, &scenario, scenario.until, scenario.quiet)?;
            let ifaces = l.cluster.trace().iface_table().clone();
            if let Some(w) = l.cluster.observer_mut::<Stdout>() {
                w.flush()?;
                w.check_iface(&ifaces)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Conntrack {
            scenario,
            node,
            at,
            stats,
            ..
        } => {
            let mut l = load(&scenario)?;
            run_to(&mut l, &scenario, at)?;
            if let Some(bpf) = l.ebpf(&node)? {
                // proxy: ebpf: the CT maps, as `cilium bpf ct list global` prints them.
                if stats {
                    let st = bpf.stats();
                    outln!(
                        "ct_tcp {}/{} ct_any {}/{} snat {}/{} created={} evicted={} expired={} nat_evicted={}",
                        bpf.ct_tcp().len(),
                        bpf.config().ct_tcp_max,
                        bpf.ct_any().len(),
                        bpf.config().ct_any_max,
                        bpf.snat_map().len(),
                        bpf.config().nat_max,
                        st.ct_created,
                        st.ct_evicted,
                        st.ct_expired,
                        st.nat_evicted
                    );
                } else {
                    out!("{}", l.conntrack_text(&node)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let ct = l.conntrack(&node)?;
            if stats {
                out!("{}", ct.stats_text());
            } else {
                let list = ct.list(l.cluster.now());
                out!("{list}");
                eprintln!(
                    "conntrack v1.4.7 (conntrack-tools): {} flow entries have been shown.",
                    list.lines().count()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::IptablesSave {
            scenario,
            node,
            counters,
            at,
        } => {
            let mut l = load(&scenario)?;
            if counters || at.is_some() {
                run_to(&mut l, &scenario, at)?;
            }
            if counters {
                out!("{}", l.rules_with_counters(&node)?);
            } else {
                out!("{}", l.rules(&node)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain {
            scenario,
            from,
            to,
            path,
        } => {
            // As for trace: a first run finds the connection, a second records its packets.
            let mut first = load(&scenario)?;
            let r = first.explain_start_path(&from, &to, &path, scenario.until)?;
            let tuples = first.connection_tuples(&r, 6);
            let mut l = first.rebuild_recording(tuples)?;
            let r = l.explain_start_path(&from, &to, &path, scenario.until)?;
            out!("{}", l.explain_text(&r, &from, &to));
            Ok(ExitCode::SUCCESS)
        }
        Command::Matrix {
            files,
            probe,
            json,
            explain_allowed,
        } => netpol::matrix_cmd(&files, &probe, json, explain_allowed),
        Command::Diff { diff, probe } => netpol::diff_cmd(&diff, &probe),
        Command::Check { scenario } => {
            let l = load(&scenario)?;
            out!("{}", l.check());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(_) => unreachable!("handled in main"),
    }
}
