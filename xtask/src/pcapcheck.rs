//! Wireshark must find nothing wrong in podnet's pcaps: run `podnet demo` with loss (so the
//! captures hold retransmissions too), write every interface's pcap, and ask tshark for
//! malformed frames, bad IPv4/TCP/UDP/ICMP checksums or expert errors in each. UDP 8472
//! (flannel's VXLAN port; Wireshark only knows the IANA 4789) is decoded as VXLAN, so the inner
//! frames of `cni: vxlan` are checked too, and the VXLAN example's node-a uplink must hold the
//! inner TCP handshake.

use std::process::Command;

use crate::ensure::ensure_tshark;
use crate::{cargo_with, display, run, workspace_root, Result};

pub fn tshark_validates_pcaps() -> Result {
    ensure_tshark()?;
    let dir = workspace_root().join("target/pcap-check");
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_string_lossy().into_owned();
    let args = [
        "run",
        "-q",
        "-p",
        "podnet-cli",
        "--",
        "demo",
        "--count",
        "5",
        "--loss",
        "0.1",
        // A seed whose five connections all complete through the loss (the demo fails
        // otherwise), with retransmissions in the captures.
        "--seed",
        "2",
        "--pcap",
        &dir_arg,
    ];
    run(cargo_with(&args).stdout(std::process::Stdio::null()))?;
    // Every example scenario too, with its any.pcap in Linux cooked format.
    let examples = workspace_root().join("examples");
    let mut scenarios: Vec<_> = std::fs::read_dir(&examples)
        .map_err(|e| format!("{}: {e}", examples.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    scenarios.sort();
    for sc in &scenarios {
        let stem = sc
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out = dir.join(format!("example-{stem}"));
        let (sc, out) = (
            sc.to_string_lossy().into_owned(),
            out.to_string_lossy().into_owned(),
        );
        let args = [
            "run",
            "-q",
            "-p",
            "podnet-cli",
            "--",
            "run",
            sc.as_str(),
            "--quiet",
            "--pcap",
            out.as_str(),
        ];
        run(cargo_with(&args).stdout(std::process::Stdio::null()))?;
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .flat_map(|p| {
            if p.is_dir() {
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect()
            } else {
                vec![p]
            }
        })
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("podnet demo wrote no pcap".into());
    }
    let mut frames = 0;
    let mut vxlan_checked = false;
    for file in &files {
        let tshark = |filter: Option<&str>| -> Result<usize> {
            let mut cmd = Command::new("tshark");
            cmd.arg("-r").arg(file);
            cmd.args(["-d", "udp.port==8472,vxlan"]);
            for pref in [
                "ip.check_checksum:TRUE",
                "tcp.check_checksum:TRUE",
                "udp.check_checksum:TRUE",
            ] {
                cmd.args(["-o", pref]);
            }
            if let Some(f) = filter {
                cmd.args(["-Y", f]);
            }
            let shown = display(&cmd);
            let out = cmd
                .output()
                .map_err(|e| format!("could not start `{shown}`: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "`{shown}` failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).lines().count())
        };
        let total = tshark(None)?;
        let bad = tshark(Some(
            "_ws.malformed || _ws.expert.severity == error || ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" || udp.checksum.status == \"Bad\" || icmp.checksum.status == \"Bad\"",
        ))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("  {name:<28} {total:>4} frames, {bad} bad");
        if bad > 0 {
            return Err(format!(
                "{}: {bad} of {total} frames malformed or with a bad checksum",
                file.display()
            ));
        }
        frames += total;
        if file.ends_with("example-vxlan/node-a_eth0.pcap") {
            let syn = tshark(Some("vxlan && tcp.flags.syn == 1 && tcp.flags.ack == 0"))?;
            let syn_ack = tshark(Some("vxlan && tcp.flags.syn == 1 && tcp.flags.ack == 1"))?;
            println!("  {name:<28} inner SYN {syn}, SYN-ACK {syn_ack} inside VXLAN");
            if syn == 0 || syn_ack == 0 {
                return Err(format!(
                    "{}: tshark finds no TCP handshake inside VXLAN",
                    file.display()
                ));
            }
            vxlan_checked = true;
        }
    }
    if scenarios.iter().any(|p| p.ends_with("vxlan.yaml")) && !vxlan_checked {
        return Err("examples/vxlan.yaml wrote no node-a_eth0.pcap".into());
    }
    if frames == 0 {
        return Err("the pcaps hold no frame at all".into());
    }
    Ok(())
}
