//! The frames compared: what the kernel emitted for each injected frame read from the
//! sockets, matched with what podnet sent, and the frames podnet sent later once ARP resolved.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{disagree, Extra, Kind, Outcome};
use crate::frame::{self, Mask};
use crate::plan::Step;
use crate::sys::{self, PacketSocket};

/// Which of the kernel's unexplained frames (`extras`) is the frame `f` podnet sent on `dev`
/// once ARP resolved: its index, whether it is identical outside the mask (else it is the same
/// packet of the same flow, different in detail), and the mask. Each candidate is masked for
/// the frame that made the kernel send it (`ingress(step)`), which is the frame that caused
/// podnet's too: a reset or ICMP error the node built in answer to it has its IP ID masked.
pub(super) fn match_released<'a>(
    dev: &str,
    f: &[u8],
    extras: &[Extra],
    ingress: impl Fn(usize) -> &'a [u8],
) -> Option<(usize, bool, Mask)> {
    let mask_of = |e: &Extra| Mask::for_frame(f, ingress(e.step));
    let candidates = || extras.iter().enumerate().filter(|(_, e)| e.dev == dev);
    candidates()
        .find_map(|(i, e)| {
            let m = mask_of(e);
            m.equal(f, &e.frame).then_some((i, true, m))
        })
        .or_else(|| {
            candidates().find_map(|(i, e)| {
                let m = mask_of(e);
                m.same_flow(f, &e.frame).then_some((i, false, m))
            })
        })
}

/// Reads frames from every socket: at least `want` (waiting up to `timeout`), then until
/// nothing arrives for `grace`.
pub(super) fn collect(
    socks: &[&PacketSocket],
    wires: &[String],
    want: usize,
    grace: Duration,
    timeout: Duration,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut got = Vec::new();
    let start = Instant::now();
    loop {
        // Whatever is already queued.
        let mut any = false;
        for (i, s) in socks.iter().enumerate() {
            while let Some(f) = s
                .recv()
                .map_err(|e| format!("capture on {}: {e}", wires[i]))?
            {
                got.push((wires[i].clone(), f));
                any = true;
            }
        }
        if any {
            continue;
        }
        let wait = if got.len() < want {
            match timeout.checked_sub(start.elapsed()) {
                Some(left) => left,
                None => return Ok(got),
            }
        } else {
            grace
        };
        if wait.is_zero() {
            return Ok(got);
        }
        let ready =
            sys::poll_readable(socks, wait.as_micros() as u64).map_err(|e| format!("poll: {e}"))?;
        if ready.is_empty() && got.len() >= want {
            return Ok(got);
        }
    }
}

/// Compares podnet's answer to one frame with the kernel's; kernel frames not explained are
/// kept in `extras` (podnet may send them later, after ARP). True when they agree.
#[allow(clippy::too_many_arguments)]
pub(super) fn compare_step(
    node: &str,
    si: usize,
    step: &Step,
    expected: &[(String, Vec<u8>)],
    mut got: Vec<(String, Vec<u8>)>,
    extras: &mut Vec<Extra>,
    vxlan_ports: &mut BTreeMap<u16, u16>,
    out: &mut Outcome,
) -> bool {
    let mut missing: Vec<(String, Vec<u8>, Mask)> = Vec::new();
    for (dev, f) in expected {
        let mask = Mask::for_frame(f, &step.frame);
        match got.iter().position(|(d, g)| d == dev && mask.equal(f, g)) {
            Some(p) => {
                let (_, g) = got.remove(p);
                note_vxlan_port(f, &g, vxlan_ports);
            }
            None => missing.push((dev.clone(), f.clone(), mask)),
        }
    }
    let mut ok = true;
    let head = format!(
        "frame #{si} on {} {}",
        step.dev,
        frame::tcpdump_line(&step.frame)
    );
    for (dev, f, mask) in missing {
        ok = false;
        // The kernel frame on the same wire, if any, differs from it: say where.
        // The kernel frame on the same wire for the same flow, else any on that wire.
        let same = got
            .iter()
            .position(|(d, g)| *d == dev && mask.same_flow(&f, g))
            .or_else(|| got.iter().position(|(d, _)| *d == dev));
        if let Some(p) = same {
            let (_, g) = got.remove(p);
            note_vxlan_port(&f, &g, vxlan_ports);
            disagree(
                out,
                Kind::Frame,
                node,
                format!(
                    "{head}\n    podnet: on {dev}: {}\n    kernel: on {dev}: {}\n    differs: {}",
                    frame::tcpdump_line(&f),
                    frame::tcpdump_line(&g),
                    frame::describe_diff(&f, &g, &mask)
                ),
            );
        } else if let Some((gd, g)) = got.first().cloned() {
            got.remove(0);
            disagree(
                out,
                Kind::Frame,
                node,
                format!(
                    "{head}\n    podnet: on {dev}: {}\n    kernel: on {gd}: {}",
                    frame::tcpdump_line(&f),
                    frame::tcpdump_line(&g)
                ),
            );
        } else {
            let why = if step.dropped.is_empty() {
                String::new()
            } else {
                format!(" (podnet also dropped: {})", step.dropped.join("; "))
            };
            disagree(
                out,
                Kind::Frame,
                node,
                format!(
                    "{head}\n    podnet: on {dev}: {}\n    kernel: sent nothing{why}",
                    frame::tcpdump_line(&f)
                ),
            );
        }
    }
    for (dev, f) in got {
        extras.push(Extra {
            step: si,
            dev,
            frame: f,
        });
        // Decided later (podnet may send it after ARP); count the frame as not agreeing
        // then.
    }
    ok
}

/// Records podnet's and the kernel's outer source port of one VXLAN packet.
pub(super) fn note_vxlan_port(podnet: &[u8], kernel: &[u8], map: &mut BTreeMap<u16, u16>) {
    if let (Some(p), Some(k)) = (frame::vxlan_sport(podnet), frame::vxlan_sport(kernel)) {
        map.insert(p, k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::ETH;

    /// A TCP segment 10.0.0.2:40000 > 192.168.1.100:30081 (or the node's reset back), IP ID
    /// `id`, with a valid IP header checksum.
    fn tcp(from_client: bool, flags: u8, id: u16) -> Vec<u8> {
        let mut f = vec![0u8; ETH + 40];
        f[12] = 0x08;
        f[ETH] = 0x45;
        f[ETH + 3] = 40;
        f[ETH + 4..ETH + 6].copy_from_slice(&id.to_be_bytes());
        f[ETH + 8] = 64;
        f[ETH + 9] = 6;
        let (client, node) = ([10, 0, 0, 2], [192, 168, 1, 100]);
        let (src, dst, sport, dport) = if from_client {
            (client, node, 40000u16, 30081u16)
        } else {
            (node, client, 30081, 40000)
        };
        f[ETH + 12..ETH + 16].copy_from_slice(&src);
        f[ETH + 16..ETH + 20].copy_from_slice(&dst);
        let mut sum = 0u32;
        for i in (0..20).step_by(2) {
            sum += u32::from(u16::from_be_bytes([f[ETH + i], f[ETH + i + 1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[ETH + 10..ETH + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f[ETH + 20..ETH + 22].copy_from_slice(&sport.to_be_bytes());
        f[ETH + 22..ETH + 24].copy_from_slice(&dport.to_be_bytes());
        f[ETH + 32] = 0x50;
        f[ETH + 33] = flags;
        f
    }

    #[test]
    fn a_reset_sent_after_arp_has_its_ip_id_masked_for_the_frame_that_caused_it() {
        // Frame #3 (the client's SYN) made the kernel send a reset at once; podnet sent the
        // same reset once ARP resolved, with another IP ID.
        let steps = [
            tcp(false, 0x10, 7),
            tcp(false, 0x10, 8),
            tcp(false, 0x10, 9),
            tcp(true, 0x02, 0x1111),
        ];
        let podnet = tcp(false, 0x14, 0);
        let kernel = tcp(false, 0x14, 0x4242);
        let extras = [Extra {
            step: 3,
            dev: "eth0".into(),
            frame: kernel.clone(),
        }];
        let found = match_released("eth0", &podnet, &extras, |s| steps[s].as_slice());
        assert!(matches!(found, Some((0, true, _))));
        // Not on another wire.
        assert!(
            match_released("veth00000000", &podnet, &extras, |s| steps[s].as_slice()).is_none()
        );
        // Without the frame that caused it (as before), the IP ID and checksum differ.
        let found = match_released("eth0", &podnet, &extras, |_| &[][..]);
        let Some((0, false, mask)) = found else {
            panic!("{found:?}", found = found.map(|(i, eq, _)| (i, eq)));
        };
        assert!(frame::describe_diff(&podnet, &kernel, &mask).contains("IP ID"));
        // A frame that is not the node's own answer to its sender keeps its IP ID compared:
        // the client's SYN forwarded unchanged is not node-built.
        let fwd = tcp(true, 0x02, 0x1111);
        let mut fwd_k = fwd.clone();
        fwd_k[ETH + 4] = 0x22;
        let extras = [Extra {
            step: 3,
            dev: "eth0".into(),
            frame: fwd_k,
        }];
        let found = match_released("eth0", &fwd, &extras, |s| steps[s].as_slice());
        assert!(matches!(found, Some((0, false, _))));
    }
}
