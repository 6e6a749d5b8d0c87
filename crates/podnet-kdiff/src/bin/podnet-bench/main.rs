//! `podnet-bench [--kernel] [--ns3] [--conns N] [--runs R] [--podnet PATH]`: podnet measured
//! against references in the same run, with ratios. `cargo xtask bench compare` builds and
//! runs it.
//!
//! - `--kernel` (root only): sequential HTTP connections through a ClusterIP Service's DNAT,
//!   podnet's engine against the Linux kernel in network namespaces ([`kernel`]).
//! - `--ns3`: the scenarios `bench/ns3-*.yaml` run by the podnet CLI against the same
//!   workloads in ns-3 ([`ns3`]).
//!
//! Neither flag: both. Each measurement is taken `--runs` times, the two sides alternating;
//! the table shows medians and the ratio of the medians.

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("podnet-bench: Linux only");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod kernel;
#[cfg(target_os = "linux")]
mod ns3;

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(linux::main());
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::{Path, PathBuf};

    use super::{kernel, ns3};

    const USAGE: &str = "\
usage: podnet-bench [--kernel] [--ns3] [--conns N] [--batch B] [--runs R] [--podnet PATH]
                    [--root DIR] [--out DIR]

Measures podnet against references in one run and prints a table of ratios:
  --kernel  N sequential HTTP connections (connect, GET /, response, close) through a
            ClusterIP Service's DNAT: podnet's engine (trace off) against the Linux kernel
            in network namespaces (root only; skipped otherwise)
  --ns3     bench/ns3-conns.yaml (10,000 sequential connections) and bench/ns3-bulk.yaml
            (one 64 MiB upload) run by the podnet CLI against the same workloads in ns-3
            (bench/ns3/podnet_compare.cc; libns3-dev is installed with apt when missing)
Neither: both. --conns N: connections of --kernel (default 10000), --batch B: podnet's
connections per fresh cluster there (default 100, as in the criterion bench); --runs R: measurements
per side, alternating, medians shown (default 3); --podnet: the release CLI (default: next
to this program); --root: the workspace; --out: where the ns-3 program is built.";

    struct Args {
        kernel: bool,
        ns3: bool,
        conns: u64,
        batch: u64,
        runs: usize,
        podnet: PathBuf,
        root: PathBuf,
        out: PathBuf,
    }

    fn parse_args() -> Result<Args, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut a = Args {
            kernel: false,
            ns3: false,
            conns: 10_000,
            batch: kernel::PODNET_BATCH,
            runs: 3,
            podnet: dir.join("podnet"),
            out: dir.join("../ns3"),
            root,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--kernel" => a.kernel = true,
                "--ns3" => a.ns3 = true,
                "--conns" => {
                    a.conns = value("--conns")?
                        .parse()
                        .map_err(|e| format!("--conns: {e}"))?
                }
                "--batch" => {
                    a.batch = value("--batch")?
                        .parse::<u64>()
                        .map_err(|e| format!("--batch: {e}"))?
                        .max(1)
                }
                "--runs" => {
                    a.runs = value("--runs")?
                        .parse::<usize>()
                        .map_err(|e| format!("--runs: {e}"))?
                        .max(1)
                }
                "--podnet" => a.podnet = value("--podnet")?.into(),
                "--root" => a.root = value("--root")?.into(),
                "--out" => a.out = value("--out")?.into(),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if !a.kernel && !a.ns3 {
            a.kernel = true;
            a.ns3 = true;
        }
        Ok(a)
    }

    pub fn main() -> i32 {
        let args = match parse_args() {
            Ok(a) => a,
            Err(e) => {
                if !e.is_empty() {
                    eprintln!("podnet-bench: {e}");
                }
                eprintln!("{USAGE}");
                return 2;
            }
        };
        podnet_kdiff::sys::catch_interrupts();
        let mut table = Table::default();
        let mut failed = false;
        if args.kernel {
            if !podnet_kdiff::sys::is_root() {
                println!("kernel comparison skipped: it needs root (network namespaces, iptables)");
            } else if let Err(e) = kernel_compare(&args, &mut table) {
                eprintln!("podnet-bench: kernel comparison: {e}");
                failed = true;
            }
        }
        if args.ns3 {
            if let Err(e) = ns3_compare(&args, &mut table) {
                eprintln!("podnet-bench: ns-3 comparison: {e}");
                failed = true;
            }
        }
        table.print();
        i32::from(failed)
    }

    fn median(v: &[f64]) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }

    fn list(v: &[f64], f: impl Fn(f64) -> String) -> String {
        v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(", ")
    }

    fn kernel_compare(a: &Args, t: &mut Table) -> Result<(), String> {
        eprintln!("podnet-bench: kernel: building the namespaces");
        let net = kernel::KernelNet::build()?;
        // Untimed warm-up of podnet (page faults of the first buffers, code paths).
        kernel::podnet_seconds(100, a.batch)?;
        let (mut p, mut k) = (Vec::new(), Vec::new());
        for round in 0..a.runs {
            let mut sides = [true, false];
            if round % 2 == 1 {
                sides.reverse();
            }
            for podnet_side in sides {
                if podnet_kdiff::sys::interrupted() {
                    return Err("interrupted".into());
                }
                if podnet_side {
                    p.push(a.conns as f64 / kernel::podnet_seconds(a.conns, a.batch)?);
                } else {
                    k.push(a.conns as f64 / net.seconds(a.conns, 100)?);
                }
            }
            eprintln!(
                "podnet-bench: kernel round {}: podnet {:.0} conn/s, kernel {:.0} conn/s",
                round + 1,
                p[round],
                k[round]
            );
        }
        drop(net);
        let (pm, km) = (median(&p), median(&k));
        let rate = |x: f64| format!("{x:.0}");
        t.row(
            &format!(
                "{} connect/GET/close via ClusterIP DNAT (podnet: {} per cluster)",
                a.conns, a.batch
            ),
            format!("{} conn/s", rate(pm)),
            format!("kernel {} conn/s", rate(km)),
            format!("podnet/kernel {:.2}x (target >= 50x)", pm / km),
        );
        t.note(format!(
            "  runs: podnet {} conn/s; kernel {} conn/s",
            list(&p, rate),
            list(&k, rate)
        ));
        Ok(())
    }

    fn ns3_compare(a: &Args, t: &mut Table) -> Result<(), String> {
        ns3::ensure_ns3()?;
        let exe = ns3::build(&a.root, &a.out)?;
        if !a.podnet.exists() {
            return Err(format!(
                "{} not found (cargo build --release -p podnet-cli)",
                a.podnet.display()
            ));
        }
        let conns = a.root.join("bench/ns3-conns.yaml");
        let bulk = a.root.join("bench/ns3-bulk.yaml");
        // The connections' request and response sizes come from podnet's report (an untimed
        // run, which also warms the page cache).
        let (_, req, resp) = ns3::podnet_run(&a.podnet, &conns)?;
        let workloads = [
            ("bench/ns3-conns.yaml", conns),
            ("bench/ns3-bulk.yaml", bulk),
        ];
        for (short, file) in workloads {
            let ns3_args = ns3::ns3_args(&file, req, resp)?;
            let name = match ns3_args[0].as_str() {
                "conns" => format!("{} sequential connections ({short})", ns3_args[1]),
                _ => format!(
                    "one {} MiB upload ({short})",
                    ns3_args[1].parse::<u64>().unwrap_or(0) >> 20
                ),
            };
            let (mut p, mut n) = (Vec::new(), Vec::new());
            for round in 0..a.runs {
                if podnet_kdiff::sys::interrupted() {
                    return Err("interrupted".into());
                }
                let podnet = || ns3::podnet_run(&a.podnet, &file).map(|r| r.0);
                if round % 2 == 0 {
                    p.push(podnet()?);
                    n.push(ns3::ns3_run(&exe, &ns3_args)?);
                } else {
                    n.push(ns3::ns3_run(&exe, &ns3_args)?);
                    p.push(podnet()?);
                }
                eprintln!(
                    "podnet-bench: {name}, round {}: podnet {:.2} s, ns-3 {:.2} s",
                    round + 1,
                    p[round].wall,
                    n[round].wall
                );
            }
            let pw: Vec<f64> = p.iter().map(|s| s.wall).collect();
            let nw: Vec<f64> = n.iter().map(|s| s.wall).collect();
            let pc: Vec<f64> = p.iter().map(|s| s.cpu).collect();
            let nc: Vec<f64> = n.iter().map(|s| s.cpu).collect();
            let secs = |x: f64| format!("{x:.2} s");
            for (what, pv, nv) in [("wall", &pw, &nw), ("CPU", &pc, &nc)] {
                let (pm, nm) = (median(pv), median(nv));
                t.row(
                    &format!("ns-3: {name}, {what}"),
                    secs(pm),
                    format!("ns-3 {}", secs(nm)),
                    format!("ns-3/podnet {:.2}x", nm / pm),
                );
            }
            let frames = |s: &ns3::Sample| {
                s.frames
                    .map_or("not in the report".to_string(), |f| f.to_string())
            };
            t.note(format!(
                "  {name}: wall podnet {}, ns-3 {}; simulated podnet {:.3} s, ns-3 {:.3} s; \
                 frames delivered by links: podnet {}, ns-3 {}",
                list(&pw, secs),
                list(&nw, secs),
                p[0].simulated,
                n[0].simulated,
                frames(&p[0]),
                frames(&n[0])
            ));
        }
        t.note(format!(
            "  ns-3 connections: {req}-byte request, {resp}-byte response (podnet's GET and 200 OK)"
        ));
        Ok(())
    }

    /// The report: rows of four columns, then notes.
    #[derive(Default)]
    struct Table {
        rows: Vec<[String; 4]>,
        notes: Vec<String>,
    }

    impl Table {
        fn row(&mut self, what: &str, podnet: String, reference: String, ratio: String) {
            self.rows.push([what.to_string(), podnet, reference, ratio]);
        }

        fn note(&mut self, n: String) {
            self.notes.push(n);
        }

        fn print(&self) {
            if self.rows.is_empty() {
                return;
            }
            let head = ["comparison", "podnet", "reference", "ratio"].map(String::from);
            let mut w = [0usize; 4];
            for r in std::iter::once(&head).chain(&self.rows) {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
            println!();
            for r in std::iter::once(&head).chain(&self.rows) {
                let cells: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<width$}", width = w[i]))
                    .collect();
                println!("{}", cells.join("  ").trim_end());
            }
            for n in &self.notes {
                println!("{n}");
            }
        }
    }
}
