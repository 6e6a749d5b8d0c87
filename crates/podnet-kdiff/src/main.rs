//! `podnet-kdiff [--quick] [--mode iptables|nftables] [-v] [FILES...]`: replays scenarios
//! through the Linux kernel and compares (see the library's documentation). `cargo xtask
//! kernel-diff` builds and runs it.

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("podnet-kdiff: Linux only (network namespaces, AF_PACKET, iptables, nft)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(linux::main());
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use podnet_kdiff::plan::{self, Mode};
    use podnet_kdiff::replay::{self, Kind, Settings};
    use podnet_kdiff::{netns, sys};

    const USAGE: &str = "\
usage: podnet-kdiff [--quick] [--mode iptables|nftables] [-v] [--max-shown N] [FILES...]
       [--corpus N] [--seed S] [--corpus-trace I] [--no-corpus]

Replays each scenario's node traffic through the Linux kernel (one network namespace per
node, podnet's rules loaded with iptables-restore / nft) and compares every frame, the
conntrack tables and counters, the rules and per-rule counters. Without FILES: every
examples/*.yaml and the generated corpus (--quick: the CI subset of both). --corpus N:
only the corpus, N traces of seed S (default 1); --corpus-trace I: only trace I. Without FILES
it also checks how many packets a neighbour's queue holds while ARP goes unanswered
and the limits on a node's ICMP errors, in real time (--neigh-queue: only those two). Must run as root. Exit 0: no disagreement;
1: disagreements; 2: the harness could not run.";

    /// The examples --quick replays (the ones that finish in seconds).
    const QUICK: &[&str] = &[
        "seed.yaml",
        "hairpin.yaml",
        "nodeport.yaml",
        "no-endpoints.yaml",
        "egress-to-internet.yaml",
        "network-policy.yaml",
        "dns.yaml",
        "vxlan.yaml",
        "pod-replaced.yaml",
        "snat-clash.yaml",
        "dns-5s.yaml",
    ];

    struct Args {
        quick: bool,
        modes: Vec<Mode>,
        verbose: bool,
        max_shown: usize,
        files: Vec<PathBuf>,
        // The generated corpus (podnet_kdiff::corpus_run).
        corpus: Option<usize>,
        corpus_trace: Option<usize>,
        seed: u64,
        no_corpus: bool,
        mode_given: bool,
        neigh_only: bool,
    }

    fn parse_args() -> Result<Args, String> {
        let mut a = Args {
            quick: false,
            modes: vec![Mode::Iptables, Mode::Nftables],
            verbose: false,
            max_shown: 20,
            files: Vec::new(),
            corpus: None,
            corpus_trace: None,
            seed: podnet_kdiff::corpus::DEFAULT_SEED,
            no_corpus: false,
            mode_given: false,
            neigh_only: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => a.quick = true,
                "--no-corpus" => a.no_corpus = true,
                "--neigh-queue" => a.neigh_only = true,
                "--corpus" | "--seed" | "--corpus-trace" => {
                    let n = it.next().and_then(|n| n.parse::<u64>().ok());
                    let n = n.ok_or_else(|| format!("{arg} N"))?;
                    match arg.as_str() {
                        "--corpus" => a.corpus = Some(n as usize),
                        "--seed" => a.seed = n,
                        _ => a.corpus_trace = Some(n as usize),
                    }
                }
                "-v" | "--verbose" => a.verbose = true,
                "--mode" => {
                    a.mode_given = true;
                    a.modes = match it.next().as_deref() {
                        Some("iptables") => vec![Mode::Iptables],
                        Some("nftables") => vec![Mode::Nftables],
                        Some("both") => vec![Mode::Iptables, Mode::Nftables],
                        other => return Err(format!("--mode: {other:?}: iptables|nftables|both")),
                    }
                }
                "--max-shown" => {
                    a.max_shown = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--max-shown N")?;
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                f if f.starts_with('-') => return Err(format!("unknown option {f}\n{USAGE}")),
                f => a.files.push(PathBuf::from(f)),
            }
        }
        Ok(a)
    }

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    fn default_files(quick: bool) -> Result<Vec<PathBuf>, String> {
        let dir = examples_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .filter(|p| {
                !quick
                    || p.file_name()
                        .is_some_and(|n| QUICK.contains(&n.to_string_lossy().as_ref()))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    fn tool_versions() -> Result<String, String> {
        let mut v = Vec::new();
        for (prog, args) in [
            ("ip", &["-V"][..]),
            ("bridge", &["-V"][..]),
            ("iptables", &["--version"][..]),
            ("nft", &["--version"][..]),
            ("conntrack", &["--version"][..]),
        ] {
            let out = netns::run(prog, args, None).map_err(|e| {
                format!("{e}\n(install iptables, nftables, conntrack and iproute2: cargo xtask kernel-diff does)")
            })?;
            if matches!(prog, "iptables" | "nft") {
                v.push(out.trim().to_string());
            }
        }
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Ok(format!("Linux {}, {}", kernel.trim(), v.join(", ")))
    }

    pub fn main() -> i32 {
        let args = match parse_args() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("podnet-kdiff: {e}");
                return 2;
            }
        };
        if !sys::is_root() {
            eprintln!(
                "podnet-kdiff: must run as root (it creates network namespaces, veths and \
                 netfilter rules); try sudo"
            );
            return 2;
        }
        let versions = match tool_versions() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("podnet-kdiff: {e}");
                return 2;
            }
        };
        sys::catch_interrupts();
        netns::delete_stale();
        if let Some(line) = podnet_kdiff::ctlimit::restore_stale() {
            println!("kernel-diff: {line}");
        }
        let corpus_only = args.corpus.is_some() || args.corpus_trace.is_some();
        let files = if (corpus_only || args.neigh_only) && args.files.is_empty() {
            Vec::new()
        } else if args.files.is_empty() {
            match default_files(args.quick) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("podnet-kdiff: {e}");
                    return 2;
                }
            }
        } else {
            args.files.clone()
        };
        println!("kernel-diff: {versions}");
        let settings = Settings {
            verbose: args.verbose,
            ..Settings::default()
        };
        let started = Instant::now();
        let mut rows: Vec<String> = Vec::new();
        let mut total_disagreements = 0usize;
        let mut failed = false;
        for file in &files {
            let shown = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("podnet-kdiff: {}: {e}", file.display());
                    failed = true;
                    continue;
                }
            };
            match plan::scenario_proxy(&shown, &text) {
                Ok(podnet::Proxy::Ebpf) => {
                    println!(
                        "\n== {shown}: skipped: proxy: ebpf has no kernel counterpart here (Cilium's \
                         BPF programs and maps are podnet's own model, not iptables/nftables rules \
                         a kernel can load)"
                    );
                    rows.push(format!("{shown:<26} {:<9} skipped (proxy: ebpf)", "-"));
                    continue;
                }
                Ok(podnet::Proxy::None) => {
                    println!("\n== {shown}: skipped: proxy: none (no Service proxy, no conntrack)");
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("podnet-kdiff: {e}");
                    failed = true;
                    continue;
                }
            }
            for &mode in &args.modes {
                if sys::interrupted() {
                    eprintln!("podnet-kdiff: interrupted; namespaces deleted");
                    return 2;
                }
                let t0 = Instant::now();
                println!("\n== {shown} ({})", mode.name());
                let plan = match plan::build(&shown, &text, mode) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("podnet-kdiff: {shown}: {e}");
                        failed = true;
                        continue;
                    }
                };
                let outcome = match replay::replay(&plan, &settings) {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!("podnet-kdiff: {shown} ({}): {e}", mode.name());
                        failed = true;
                        if sys::interrupted() {
                            return 2;
                        }
                        continue;
                    }
                };
                let mut tot = replay::NodeFigures::default();
                for (name, f) in &outcome.nodes {
                    println!(
                        "   {name}: {} frames ({} agree), {} answers, {} conntrack entries, {} rules, {} counters, {} harness rules, {} entries forgotten, {} ARP requests and {} timer frames of podnet's not compared",
                        f.frames,
                        f.frames_agreed,
                        f.answers,
                        f.ct_entries,
                        f.rules,
                        f.counters,
                        f.harness,
                        f.ct_forgotten,
                        f.arp_requests_skipped,
                        f.timer_frames
                    );
                    tot.frames += f.frames;
                    tot.frames_agreed += f.frames_agreed;
                    tot.connections += f.connections;
                    tot.ct_entries += f.ct_entries;
                    tot.rules += f.rules;
                    tot.counters += f.counters;
                }
                for n in &outcome.notes {
                    println!("   note: {n}");
                }
                for n in &outcome.limits {
                    println!("   {n}");
                }
                let d = &outcome.disagreements;
                let by = |k: Kind| d.iter().filter(|x| x.kind == k).count();
                for (i, x) in d.iter().enumerate() {
                    if i == args.max_shown {
                        println!(
                            "   ... {} more disagreements not shown (--max-shown)",
                            d.len() - i
                        );
                        break;
                    }
                    println!("   {}", x.render());
                }
                println!(
                    "   {shown} ({}): frames {} compared, {} agree; connections {}; conntrack entries {}; rules {}; rule counters {}; disagreements {} (frames {}, conntrack {}, ct stats {}, rules {}, counters {}) in {:.1}s",
                    mode.name(),
                    tot.frames,
                    tot.frames_agreed,
                    tot.connections,
                    tot.ct_entries,
                    tot.rules,
                    tot.counters,
                    d.len(),
                    by(Kind::Frame),
                    by(Kind::Conntrack),
                    by(Kind::CtStat),
                    by(Kind::Rules),
                    by(Kind::Counter),
                    t0.elapsed().as_secs_f64()
                );
                rows.push(format!(
                    "{shown:<26} {:<9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9}",
                    mode.name(),
                    tot.frames,
                    tot.frames_agreed,
                    tot.connections,
                    tot.rules,
                    tot.counters,
                    d.len()
                ));
                total_disagreements += d.len();
            }
        }
        if args.files.is_empty() && !corpus_only {
            type Check = fn() -> Result<Vec<podnet_kdiff::counts::Case>, String>;
            let checks: [(&str, &str, Check); 2] = [
                (
                    "neighbour queue (unres_qlen_bytes against skb->truesize): packets kept",
                    "neighbour queue",
                    podnet_kdiff::neighq::run,
                ),
                (
                    "ICMP error limits (icmp_ratelimit, icmp_msgs_per_sec/burst), in real time: errors sent",
                    "ICMP limits",
                    podnet_kdiff::icmplimit::run,
                ),
            ];
            for (title, short, check) in checks {
                let t0 = Instant::now();
                println!("\n== {title}");
                match check() {
                    Ok(cases) => {
                        let d = cases.iter().filter(|c| !c.agree).count();
                        for c in &cases {
                            println!(
                                "   {:<34} sent {:>4}: kernel {:>4}, podnet {:>4}{}: {}",
                                c.name,
                                c.sent,
                                c.kernel,
                                c.podnet,
                                if c.detail.is_empty() {
                                    String::new()
                                } else {
                                    format!(" ({})", c.detail)
                                },
                                if c.agree { "agree" } else { "DISAGREE" }
                            );
                        }
                        println!(
                            "   {short}: {} cases, disagreements {d} in {:.1}s",
                            cases.len(),
                            t0.elapsed().as_secs_f64()
                        );
                        rows.push(format!(
                            "{:<26} {:<9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9}",
                            format!("{short} ({})", cases.len()),
                            "-",
                            cases.iter().map(|c| c.sent).sum::<usize>(),
                            cases
                                .iter()
                                .filter(|c| c.agree)
                                .map(|c| c.sent)
                                .sum::<usize>(),
                            0,
                            0,
                            0,
                            d
                        ));
                        total_disagreements += d;
                    }
                    Err(e) => {
                        eprintln!("podnet-kdiff: {short}: {e}");
                        failed = true;
                    }
                }
            }
        }
        if corpus_only || (args.files.is_empty() && !args.no_corpus && !args.neigh_only) {
            let traces = args.corpus.unwrap_or(if args.quick {
                podnet_kdiff::corpus_run::QUICK_TRACES
            } else {
                podnet_kdiff::corpus::DEFAULT_TRACES
            });
            let o = podnet_kdiff::corpus_run::Options {
                seed: args.seed,
                traces,
                only: args.corpus_trace,
                mode: (args.mode_given && args.modes.len() == 1).then(|| args.modes[0]),
                max_shown: args.max_shown,
            };
            let rep = podnet_kdiff::corpus_run::run(&o, &settings);
            let d: usize = rep.categories.values().map(|f| f.disagreements()).sum();
            rows.push(format!(
                "{:<26} {:<9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9}",
                format!(
                    "corpus ({} traces)",
                    rep.categories.values().map(|f| f.traces).sum::<usize>()
                ),
                "both",
                rep.categories.values().map(|f| f.frames).sum::<usize>(),
                rep.categories
                    .values()
                    .map(|f| f.frames_agreed)
                    .sum::<usize>(),
                rep.categories
                    .values()
                    .map(|f| f.connections)
                    .sum::<usize>(),
                rep.categories.values().map(|f| f.rules).sum::<usize>(),
                rep.categories.values().map(|f| f.counters).sum::<usize>(),
                d
            ));
            total_disagreements += d;
            failed |= rep.errors > 0;
        }
        println!(
            "\n{:<26} {:<9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9}",
            "SCENARIO", "MODE", "FRAMES", "AGREE", "CONNS", "RULES", "CTRS", "DISAGREE"
        );
        for r in &rows {
            println!("{r}");
        }
        println!(
            "\nkernel-diff: {total_disagreements} disagreements in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        if failed {
            2
        } else if total_disagreements > 0 {
            1
        } else {
            0
        }
    }
}
