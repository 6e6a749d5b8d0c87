//! Loads scenario files and prints the resolved scenario, or the error.
//!
//! `cargo run -p podnet-scenario --example check -- FILE...`

fn main() -> std::process::ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    match podnet_scenario::load_files(&files) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            let sc = &loaded.scenario;
            for n in &sc.nodes {
                println!("node {} {} podCIDR {}", n.name, n.ip, n.pod_cidr);
            }
            match podnet_scenario::build(sc) {
                Ok((cluster, index)) => {
                    for (p, id) in sc.pods.iter().zip(&index.pod_ids) {
                        let ip = cluster.pod(*id).map(|x| x.addrs().ip.address());
                        println!(
                            "pod {}/{} on {} ip {:?}",
                            p.namespace, p.name, sc.nodes[p.node].name, ip
                        );
                    }
                    for (s, ip) in sc.services.iter().zip(&index.cluster_ips) {
                        println!(
                            "service {}/{} {:?} backends {}",
                            s.namespace,
                            s.name,
                            ip,
                            s.backends().len()
                        );
                    }
                    for f in &index.flows {
                        println!(
                            "flow {} -> {}:{} ({} clients)",
                            f.name,
                            f.to,
                            f.port,
                            f.clients.len()
                        );
                    }
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}
