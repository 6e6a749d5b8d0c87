//! podnet's engine against the Linux kernel: sequential HTTP connections (connect, `GET /`,
//! the whole response, close) from a pod on node-a to a web pod on node-b through a ClusterIP
//! Service that node-a's kube-proxy rules DNAT to the pod.
//!
//! Kernel side: four network namespaces, node-a and node-b (each a `cni0` bridge, an `eth0`
//! to the other node, a route for the other node's pod CIDR) and one per pod (`eth0`, a veth
//! whose other end is a port of its node's `cni0`). node-a holds kube-proxy's DNAT chain for
//! the ClusterIP. The server and the client are threads of this process, each moved into its
//! pod's namespace with `setns(2)`; std::net does the rest.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use podnet::{
    ClientSpec, Cluster, ClusterConfig, Duration, NodeSpec, Outcome, PodSpec, Program, ServiceSpec,
    TraceConfig,
};
use podnet_kdiff::{netns, sys};

/// The Service's ClusterIP, on both sides.
const CLUSTER_IP: [u8; 4] = [10, 96, 0, 10];
/// The web pod's address on both sides (node-b's first pod address in podnet).
const WEB_IP: &str = "10.244.1.2";
/// podnet connections per cluster by default, as in the criterion bench (`engine.rs`): each
/// batch starts fresh, so that sockets lingering in TIME-WAIT (two 64 KiB buffers each, and
/// every socket of a pod is polled) do not pile up. 1,000 per cluster is about 4x slower.
pub const PODNET_BATCH: u64 = 100;

/// podnet's request and answer for pod "web" (see `ClientSpec::http` and the HTTP server).
fn request() -> String {
    let host = CLUSTER_IP.map(|b| b.to_string()).join(".");
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: podnet\r\nAccept: */*\r\n\r\n")
}

fn response() -> &'static [u8] {
    b"HTTP/1.1 200 OK\r\nServer: podnet\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nweb\n"
}

// ---------------------------------------------------------------------------------------------
// podnet

/// Seconds podnet takes for `n` connections through the Service (the runs alone, in batches
/// of `batch` connections on fresh two-node clusters, trace off; building the clusters is not
/// counted).
pub fn podnet_seconds(n: u64, batch: u64) -> Result<f64, String> {
    let mut total = StdDuration::ZERO;
    let mut left = n;
    while left > 0 {
        let b = left.min(batch.max(1));
        total += podnet_batch(b)?;
        left -= b;
    }
    Ok(total.as_secs_f64())
}

fn podnet_batch(n: u64) -> Result<StdDuration, String> {
    let mut c = Cluster::new(ClusterConfig {
        trace: TraceConfig::off(),
        ..ClusterConfig::default()
    });
    let err = |e: podnet::Error| format!("podnet cluster: {e:?}");
    let a = c
        .add_node(NodeSpec::new("node-a", [192, 168, 1, 100]))
        .map_err(err)?;
    let b = c
        .add_node(NodeSpec::new("node-b", [192, 168, 1, 101]))
        .map_err(err)?;
    let web = c
        .add_pod(PodSpec::new("web", b).program(Program::HttpServer { port: 80 }))
        .map_err(err)?;
    c.add_service(ServiceSpec::new("web", 80, 80, vec![web]).cluster_ip(CLUSTER_IP))
        .map_err(err)?;
    let client = c
        .add_pod(PodSpec::new("client", a).program(Program::Client(
            ClientSpec::http("web", CLUSTER_IP.into(), 80).count(n as u32),
        )))
        .map_err(err)?;
    let start = StdInstant::now();
    let done = c.run_until_done(Duration::from_secs(600));
    let elapsed = start.elapsed();
    let recs = c
        .pod(client)
        .and_then(|p| p.clients().next())
        .map(|cl| cl.records())
        .unwrap_or_default();
    let ok = recs.iter().filter(|r| r.outcome == Outcome::Ok).count() as u64;
    if !done || ok != n {
        return Err(format!("podnet: {ok} of {n} connections ok"));
    }
    if c.dataplane(a).map(|d| d.stats().dnat) != Some(n) {
        return Err("podnet: the connections were not DNATed on node-a".into());
    }
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// The kernel

/// The kernel's topology; its namespaces are deleted when it drops.
pub struct KernelNet {
    _ns: netns::Namespaces,
    client_ns: String,
    web_ns: String,
}

impl KernelNet {
    /// Builds the two nodes, the two pods and node-a's DNAT rules.
    pub fn build() -> Result<KernelNet, String> {
        netns::delete_stale();
        let pid = std::process::id();
        let [na, nb, pc, pw] = ["bna", "bnb", "bpc", "bpw"].map(|s| format!("pnkd-{pid}-{s}"));
        let mut ns = netns::Namespaces::new();
        for n in [&na, &nb, &pc, &pw] {
            ns.add(n)?;
            netns::ipv4_only(n)?;
        }
        let ip = |args: &str| {
            let v: Vec<&str> = args.split_whitespace().collect();
            netns::run("ip", &v, None).map(|_| ())
        };
        // The underlay (one cable, node to node) and the pods' veths.
        ip(&format!(
            "link add name eth0 netns {na} type veth peer name eth0 netns {nb}"
        ))?;
        ip(&format!(
            "link add name eth0 netns {pc} type veth peer name vethc netns {na}"
        ))?;
        ip(&format!(
            "link add name eth0 netns {pw} type veth peer name vethw netns {nb}"
        ))?;
        for (node, port, me, other, cidr, other_cidr) in [
            (
                &na,
                "vethc",
                "192.168.1.100",
                "192.168.1.101",
                "10.244.0",
                "10.244.1",
            ),
            (
                &nb,
                "vethw",
                "192.168.1.101",
                "192.168.1.100",
                "10.244.1",
                "10.244.0",
            ),
        ] {
            let batch = format!(
                "link add cni0 type bridge stp_state 0\n\
                 addr add {cidr}.1/24 dev cni0\n\
                 link set {port} master cni0\n\
                 link set {port} up\n\
                 link set cni0 up\n\
                 addr add {me}/24 dev eth0\n\
                 link set eth0 up\n\
                 route add {other_cidr}.0/24 via {other}\n"
            );
            netns::run("ip", &["-n", node, "-batch", "-"], Some(&batch))?;
            netns::ns_run(
                node,
                "sh",
                &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
                None,
            )?;
        }
        for (pod, addr, gw) in [
            (&pc, "10.244.0.2", "10.244.0.1"),
            (&pw, WEB_IP, "10.244.1.1"),
        ] {
            let batch = format!(
                "addr add {addr}/24 dev eth0\nlink set eth0 up\nroute add default via {gw}\n"
            );
            netns::run("ip", &["-n", pod, "-batch", "-"], Some(&batch))?;
        }
        // Room for the client's TIME-WAIT sockets: a wide port range, and ports in TIME-WAIT
        // reused for new connections (timestamps make that safe). Without reuse, connect()
        // slows down to a few hundred per second once some 40,000 ports linger.
        netns::ns_run(
            &pc,
            "sh",
            &[
                "-c",
                "echo '1024 65535' > /proc/sys/net/ipv4/ip_local_port_range; \
                 echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse",
            ],
            None,
        )?;
        // kube-proxy's chains for one ClusterIP Service with one endpoint.
        let vip = CLUSTER_IP.map(|b| b.to_string()).join(".");
        let rules = format!(
            "*nat\n\
             :PREROUTING ACCEPT [0:0]\n\
             :OUTPUT ACCEPT [0:0]\n\
             :KUBE-SERVICES - [0:0]\n\
             :KUBE-SVC-WEB - [0:0]\n\
             :KUBE-SEP-WEB - [0:0]\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A KUBE-SERVICES -d {vip}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-WEB\n\
             -A KUBE-SVC-WEB -j KUBE-SEP-WEB\n\
             -A KUBE-SEP-WEB -p tcp -m tcp -j DNAT --to-destination {WEB_IP}:80\n\
             COMMIT\n"
        );
        netns::ns_run(&na, "iptables-restore", &[], Some(&rules))
            .map_err(|e| format!("node-a's DNAT rules: {e}"))?;
        Ok(KernelNet {
            _ns: ns,
            client_ns: pc,
            web_ns: pw,
        })
    }

    /// Seconds the kernel takes for `n` sequential connections to the ClusterIP, after
    /// `warmup` untimed ones (which also wait for the links and bridge ports to come up).
    pub fn seconds(&self, n: u64, warmup: u64) -> Result<f64, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let web_ns = self.web_ns.clone();
        let server_stop = stop.clone();
        let server = thread::spawn(move || -> Result<u64, String> {
            let _in = sys::enter_netns(&web_ns).map_err(|e| format!("setns {web_ns}: {e}"))?;
            let listener =
                TcpListener::bind(("0.0.0.0", 80)).map_err(|e| format!("web pod: bind :80: {e}"));
            let ok = listener.is_ok();
            let _ = ready_tx.send(ok);
            serve(listener?, &server_stop)
        });
        if ready_rx.recv() != Ok(true) {
            return Err(server_result(server).err().unwrap_or_default());
        }
        let client_ns = self.client_ns.clone();
        let client = thread::spawn(move || -> Result<f64, String> {
            let _in =
                sys::enter_netns(&client_ns).map_err(|e| format!("setns {client_ns}: {e}"))?;
            let to = SocketAddr::from((CLUSTER_IP, 80));
            let req = request();
            let deadline = StdInstant::now() + StdDuration::from_secs(10);
            let mut warm = 0;
            while warm < warmup {
                match fetch(to, &req) {
                    Ok(()) => warm += 1,
                    Err(e) if StdInstant::now() > deadline => {
                        return Err(format!("kernel: no answer from the ClusterIP: {e}"))
                    }
                    Err(_) => thread::sleep(StdDuration::from_millis(20)),
                }
            }
            let start = StdInstant::now();
            for i in 0..n {
                fetch(to, &req).map_err(|e| format!("kernel: connection {i}: {e}"))?;
            }
            Ok(start.elapsed().as_secs_f64())
        });
        let measured = client
            .join()
            .map_err(|_| "kernel client thread panicked".to_string())?;
        // Wake the server's accept() with a last connection so that it sees `stop`.
        stop.store(true, Ordering::SeqCst);
        let client_ns = self.client_ns.clone();
        let _ = thread::spawn(move || {
            let _in = sys::enter_netns(&client_ns).ok()?;
            TcpStream::connect_timeout(
                &SocketAddr::from((CLUSTER_IP, 80)),
                StdDuration::from_secs(2),
            )
            .ok()
        })
        .join();
        let served = server_result(server)?;
        let secs = measured?;
        if served < n + warmup {
            return Err(format!(
                "kernel: the server saw {served} of {} connections",
                n + warmup
            ));
        }
        Ok(secs)
    }
}

fn server_result(h: thread::JoinHandle<Result<u64, String>>) -> Result<u64, String> {
    h.join()
        .map_err(|_| "kernel server thread panicked".to_string())?
}

/// Answers each connection's request, then waits for the client's close; until `stop`.
fn serve(listener: TcpListener, stop: &AtomicBool) -> Result<u64, String> {
    let mut served = 0;
    let mut buf = [0u8; 2048];
    loop {
        let (mut s, _) = listener
            .accept()
            .map_err(|e| format!("web pod: accept: {e}"))?;
        if stop.load(Ordering::SeqCst) {
            return Ok(served);
        }
        let mut head = Vec::new();
        loop {
            let n = s
                .read(&mut buf)
                .map_err(|e| format!("web pod: read: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                s.write_all(response())
                    .map_err(|e| format!("web pod: write: {e}"))?;
                head.clear();
            }
        }
        served += 1;
    }
}

/// One connection: connect, send the request, read the whole answer, close.
fn fetch(to: SocketAddr, req: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&to, StdDuration::from_secs(2))?;
    s.set_read_timeout(Some(StdDuration::from_secs(2)))?;
    s.write_all(req.as_bytes())?;
    let want = response().len();
    let mut got = 0;
    let mut buf = [0u8; 512];
    while got < want {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the whole answer",
            ));
        }
        got += n;
    }
    Ok(())
}
