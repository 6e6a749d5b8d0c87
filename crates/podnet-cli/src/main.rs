//! `podnet`: run and inspect simulated Kubernetes networks from the command line.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deterministic userspace Kubernetes networking: watch TCP cross pods, bridges and nodes.
#[derive(Parser, Debug)]
#[command(name = "podnet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the built-in demo: the seed document's Pod A (10.244.0.5 on node 192.168.1.100)
    /// calling Service web (ClusterIP 10.96.0.10:80), backed by a pod (10.244.1.20) on a second
    /// node: DNAT on node-a, conntrack reversing the reply.
    #[command(
        after_help = "Examples:\n  podnet demo\n  podnet demo --count 1 --tcpdump --conntrack\n  podnet demo --masquerade-all --conntrack\n  podnet demo --rules --proxy nftables\n  podnet demo --loss 0.1 --seed 7\n  podnet demo --pcap out/ && tshark -r out/node-a_eth0.pcap"
    )]
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podnet: {e}");
            ExitCode::from(2)
        }
    }
}
