//! Network namespaces standing for podnet's nodes: one namespace that *is* the node (its
//! `eth0`, `cni0` with the veth ports, `flannel.1`, routes, neighbours, sysctls, rules) and
//! one holding the other end of every wire (the pods' and the underlay's side), where the
//! harness injects and captures frames.
//!
//! Every namespace is named `pnkd-<pid>-<n>` (node) or `pnkd-<pid>-<n>w` (its wires) and is
//! deleted by name when the [`Namespaces`] guard drops, on errors and after Ctrl-C too.

use std::io::Write;
use std::process::{Command, Stdio};

use smoltcp::wire::EthernetAddress;

use crate::plan::{Mode, NodePlan};
use crate::rules;

/// Runs a program, failing with its stderr.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if let Some(input) = stdin {
        if let Some(mut w) = child.stdin.take() {
            w.write_all(input.as_bytes())
                .map_err(|e| format!("`{program}`: writing its input: {e}"))?;
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{program}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Runs `program args` inside namespace `ns`.
pub fn ns_run(
    ns: &str,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, String> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all, stdin)
}

/// `aa:bb:cc:dd:ee:ff` (smoltcp's Display uses dashes, which `ip` rejects).
pub fn mac(m: EthernetAddress) -> String {
    m.0.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The namespaces of one replay; deleted on drop.
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// No namespaces yet.
    pub fn new() -> Namespaces {
        Namespaces { names: Vec::new() }
    }

    /// Creates namespace `name` (recorded for deletion first).
    pub fn add(&mut self, name: &str) -> Result<(), String> {
        assert!(name.starts_with("pnkd-"));
        self.names.push(name.to_string());
        run("ip", &["netns", "add", name], None).map(|_| ())
    }

    /// Deletes every namespace created, by name.
    pub fn delete_all(&mut self) {
        for n in self.names.drain(..).rev() {
            if let Err(e) = run("ip", &["netns", "del", &n], None) {
                eprintln!("podnet-kdiff: warning: {e}");
            }
        }
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces::new()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.delete_all();
    }
}

/// Deletes namespaces `pnkd-<pid>-...` left by an earlier run of this harness whose process
/// is gone (killed before it could clean up).
pub fn delete_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("pnkd-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !crate::sys::pid_alive(pid) {
            let _ = run("ip", &["netns", "del", &name], None);
        }
    }
}

/// The namespace names of node `i` of this process.
pub fn names(i: usize) -> (String, String) {
    let pid = std::process::id();
    (format!("pnkd-{pid}-{i}"), format!("pnkd-{pid}-{i}w"))
}

/// Turns IPv6 off in namespace `ns` (no router solicitations, MLD or DAD on its links) and
/// brings its `lo` up.
pub fn ipv4_only(ns: &str) -> Result<(), String> {
    ns_run(
        ns,
        "sh",
        &[
            "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; \
             echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; \
             ip link set lo up",
        ],
        None,
    )
    .map(|_| ())
}

fn enslave(dev: &str) -> String {
    format!("link set {dev} master cni0\nlink set {dev} type bridge_slave hairpin on learning on\n")
}

/// A pod created during the run: its port (made, up, outside the bridge since the start)
/// joins `cni0`, with the static forwarding entry of its MAC.
pub fn attach_port(n: &NodePlan, node_ns: &str, dev: &str) -> Result<(), String> {
    run("ip", &["-n", node_ns, "-batch", "-"], Some(&enslave(dev)))?;
    // The port forwards at once (no STP, carrier up since the start); checked.
    let start = std::time::Instant::now();
    while !run("bridge", &["-n", node_ns, "link", "show", "dev", dev], None)?
        .contains("state forwarding")
    {
        if start.elapsed() > std::time::Duration::from_secs(10) {
            return Err(format!(
                "{node_ns}: {dev} not forwarding 10s after joining cni0"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if let Some((_, m)) = n.ports.iter().find(|p| p.dev == dev).and_then(|p| p.pod) {
        let b = format!("fdb replace {} dev {dev} master static\n", mac(m));
        run("bridge", &["-n", node_ns, "-batch", "-"], Some(&b))?;
    }
    Ok(())
}

/// A pod deleted during the run: its port leaves `cni0` (the CNI deletes the veth; its
/// forwarding entries go with it).
pub fn detach_port(node_ns: &str, dev: &str) -> Result<(), String> {
    run("ip", &["-n", node_ns, "link", "set", dev, "nomaster"], None).map(|_| ())
}

/// Builds node `n` in namespace `node_ns` with its wires' other ends in `wire_ns`, and loads
/// its rules. Returns the wire interface names (same names on both sides).
pub fn build_node(
    n: &NodePlan,
    mode: Mode,
    node_ns: &str,
    wire_ns: &str,
) -> Result<Vec<String>, String> {
    // IPv6 off everywhere first: no router solicitations, MLD or DAD on the wires.
    for ns in [node_ns, wire_ns] {
        ipv4_only(ns)?;
    }
    let mut b = String::new();
    let mut wires = Vec::new();
    // cni0 first, so the ports can be enslaved.
    b += &format!(
        "link add cni0 type bridge stp_state 0 mcast_snooping 0\nlink set cni0 address {} mtu {}\naddr add {}/{} dev cni0\n",
        mac(n.cni0_mac),
        n.pod_mtu,
        n.cni0.0,
        n.cni0.1
    );
    // Wires: created in the wire namespace, their node ends moved into the node's.
    let mut wb = String::new();
    wb += &format!("link add eth0 type veth peer name eth0 netns {node_ns}\n");
    wires.push("eth0".to_string());
    for (i, p) in n.ports.iter().enumerate() {
        wb += &format!(
            "link add {d} type veth peer name {d} netns {node_ns}\n",
            d = p.dev
        );
        b += &format!(
            "link set {d} address 02:6b:64:00:{:02x}:{:02x} mtu {}\n",
            (i >> 8) & 0xff,
            i & 0xff,
            n.pod_mtu,
            d = p.dev
        );
        // A pod created during the run joins the bridge then (`attach_port`).
        if p.at_start {
            b += &enslave(&p.dev);
        }
        wires.push(p.dev.clone());
    }
    for w in &wires {
        wb += &format!("link set {w} up promisc on\n");
    }
    run("ip", &["-n", wire_ns, "-batch", "-"], Some(&wb))?;
    b += &format!(
        "link set eth0 address {}\naddr add {}/{} dev eth0\nlink set eth0 up\nlink set cni0 up\n",
        mac(n.eth0_mac),
        n.eth0.0,
        n.eth0.1
    );
    for p in &n.ports {
        b += &format!("link set {} up\n", p.dev);
    }
    if let Some(v) = &n.vxlan {
        b += &format!(
            "link add flannel.1 type vxlan id 1 local {} dev eth0 dstport 8472 nolearning\nlink set flannel.1 address {} mtu 1450\naddr add {}/32 dev flannel.1\nlink set flannel.1 up\n",
            n.eth0.0,
            mac(v.mac),
            v.vtep
        );
    }
    run("ip", &["-n", node_ns, "-batch", "-"], Some(&b))?;

    // Static forwarding entries for the pods (the counterpart of the static neighbours: the
    // bridge never floods a frame for a pod that has not spoken yet), VXLAN FDB, routes,
    // neighbours.
    let mut b = String::new();
    for p in n.ports.iter().filter(|p| p.at_start) {
        if let Some((_, m)) = p.pod {
            b += &format!("fdb replace {} dev {} master static\n", mac(m), p.dev);
        }
    }
    if let Some(v) = &n.vxlan {
        for (m, ip) in &v.fdb {
            b += &format!(
                "fdb append {} dev flannel.1 dst {ip} self permanent\n",
                mac(*m)
            );
        }
    }
    if !b.is_empty() {
        run("bridge", &["-n", node_ns, "-batch", "-"], Some(&b))?;
    }
    let mut b = String::new();
    for r in &n.routes {
        b += &format!("route replace {}\n", r.spec);
    }
    for (dev, ip, m) in &n.neigh {
        b += &format!(
            "neigh replace {ip} lladdr {} dev {dev} nud permanent\n",
            mac(*m)
        );
    }
    if !b.is_empty() {
        run("ip", &["-n", node_ns, "-batch", "-"], Some(&b))?;
    }

    // sysctls: forwarding, bridged IPv4 through iptables, strict TCP window tracking,
    // podnet's conntrack timeouts.
    let mut sh = String::from(
        "set -e\n\
         echo 1 > /proc/sys/net/ipv4/ip_forward\n\
         echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables\n\
         echo 0 > /proc/sys/net/bridge/bridge-nf-call-arptables\n\
         echo 0 > /proc/sys/net/ipv4/icmp_ratemask\n",
    );
    // Conntrack's sysctls appear once the module is in use in this namespace.
    sh += "conntrack -L >/dev/null 2>&1 || true\n";
    sh += "echo 0 > /proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal\n";
    sh += "echo 6 > /proc/sys/net/netfilter/nf_conntrack_log_invalid\n";
    for (k, v) in &n.ct_sysctls {
        sh += &format!(
            "[ -w /proc/sys/net/netfilter/{k} ] && echo {v} > /proc/sys/net/netfilter/{k} || true\n"
        );
    }
    ns_run(node_ns, "sh", &["-c", &sh], None)?;
    for w in &wires {
        let _g = crate::sys::enter_netns(node_ns).map_err(|e| format!("setns {node_ns}: {e}"))?;
        crate::sys::set_tx_checksum(w, false)
            .map_err(|e| format!("{node_ns}: tx off on {w}: {e}"))?;
    }

    let at_start = n.ports.iter().filter(|p| p.at_start).count();
    wait_ready(node_ns, wire_ns, &wires, at_start)?;

    // Rules.
    let r = &n.rules;
    if !r.iptables.trim().is_empty() {
        ns_run(node_ns, "iptables-restore", &[], Some(&r.iptables))
            .map_err(|e| format!("{}: loading podnet's iptables rules: {e}", n.name))?;
    }
    if mode == Mode::Nftables {
        if let Some(nft) = r.nft_load.as_ref().or(r.nft.as_ref()) {
            ns_run(
                node_ns,
                "nft",
                &["-f", "-"],
                Some(&rules::nft_loadable(nft)),
            )
            .map_err(|e| format!("{}: loading podnet's nftables rules: {e}", n.name))?;
        }
    }
    Ok(wires)
}

/// Waits until every wire is up on both sides and every bridge port forwards: a new veth's
/// carrier reaches the bridge through linkwatch, up to a second later, and until then the
/// port drops what it receives.
fn wait_ready(node_ns: &str, wire_ns: &str, wires: &[String], ports: usize) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        let node_links = run("ip", &["-n", node_ns, "-o", "link", "show"], None)?;
        let wire_links = run("ip", &["-n", wire_ns, "-o", "link", "show"], None)?;
        let up = |text: &str, w: &str| {
            text.lines().any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|n| n.trim_end_matches(':').split('@').next() == Some(w))
                    && l.contains("LOWER_UP")
                    && l.contains("state UP")
            })
        };
        let links_up = wires
            .iter()
            .all(|w| up(&node_links, w) && up(&wire_links, w));
        let ports_ok = ports == 0 || {
            let listed = run("bridge", &["-n", node_ns, "link", "show"], None)?;
            listed.lines().filter(|l| l.contains("master cni0")).count() >= ports
                && listed
                    .lines()
                    .filter(|l| l.contains("master cni0"))
                    .all(|l| l.contains("state forwarding"))
        };
        if links_up && ports_ok {
            return Ok(());
        }
        if start.elapsed() > std::time::Duration::from_secs(10) {
            return Err(format!(
                "{node_ns}: wires not up or bridge ports not forwarding after 10s:\n{node_links}"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
