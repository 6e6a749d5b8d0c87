//! A node's conntrack table size on the kernel side.
//!
//! On Linux 6.x `nf_conntrack_max` is read-only in a namespace other than the initial one: the
//! kernel compares each namespace's own entry count with the *global* value (that of the
//! initial namespace). To give a node the table size of its scenario (`conntrack: {max: 4}`),
//! the harness sets the global value for the duration of that node's replay and restores the
//! previous one afterwards: when the node is done, on an error, on Ctrl-C (the replay stops at
//! the next frame and the [`Guard`] drops), on a panic (unwinding drops it too). A run killed
//! outright (SIGKILL) leaves its previous value in [`STATE_FILE`]; the next run restores it
//! ([`restore_stale`]), as it deletes the namespaces such a run left behind.
//!
//! It does so only when nobody else can be limited by it: this process is in the initial
//! namespace, the initial namespace's `nf_conntrack_count` is 0 (conntrack not in use on the
//! host), no other network namespace holds a conntrack entry, and no other run of the harness
//! is alive. Otherwise [`for_node`] says why, and the node's disagreements are reported as
//! known, with that reason.
//!
//! `nf_conntrack_buckets` is global too, and cannot be matched: the kernel rounds it up to a
//! page of buckets (512 at least) and hashes with siphash and a random boot-time seed, podnet
//! with its own seeded hash. Early drop scans the 8 buckets from the new tuple's own, so *which*
//! unassured entries it evicts, and whether it finds one at all, depends on the hash; see the
//! book's chapter for what is compared then.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;

const SYS: &str = "/proc/sys/net/netfilter";

/// `PROC_NET_INIT_INO` (include/linux/proc_ns.h): the initial network namespace's inode.
const INIT_NET_INO: u32 = 0xEFFF_FFF9;

/// Where a run that changed the global `nf_conntrack_max` records `PID PREVIOUS` until it has
/// restored it.
pub const STATE_FILE: &str = "/run/podnet-kdiff.nf_conntrack_max";

fn read_u32(name: &str) -> Result<u32, String> {
    let path = format!("{SYS}/{name}");
    let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{path}: {:?}: {e}", text.trim()))
}

fn write_u32(name: &str, v: u32) -> Result<(), String> {
    let path = format!("{SYS}/{name}");
    fs::write(&path, format!("{v}\n")).map_err(|e| format!("writing {v} to {path}: {e}"))
}

/// The global `nf_conntrack_max` (read in this process's namespace).
pub fn global_max() -> Result<u32, String> {
    read_u32("nf_conntrack_max")
}

/// The global `nf_conntrack_buckets`.
pub fn global_buckets() -> Result<u32, String> {
    read_u32("nf_conntrack_buckets")
}

/// What was done about a node's table size.
pub enum Limit {
    /// The global value already is the scenario's, or the node never fills either table.
    Same,
    /// Set for this node; restored by [`Guard::restore`] or when the guard drops.
    Set(Guard),
    /// Not set, for this reason (the table size's disagreements are known).
    Refused(String),
}

/// The global `nf_conntrack_max` changed for one node.
pub struct Guard {
    previous: u32,
    set: u32,
    restored: bool,
}

impl Guard {
    /// The value set for the node.
    pub fn set(&self) -> u32 {
        self.set
    }

    /// Restores the previous value; the line to print.
    pub fn restore(mut self) -> Result<String, String> {
        self.restored = true;
        restore_to(self.previous)?;
        Ok(format!(
            "nf_conntrack_max set to {} for this node, restored to {}",
            self.set, self.previous
        ))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.restored {
            self.restored = true;
            match restore_to(self.previous) {
                Ok(()) => eprintln!(
                    "podnet-kdiff: nf_conntrack_max restored to {} (was {} for the node)",
                    self.previous, self.set
                ),
                Err(e) => eprintln!(
                    "podnet-kdiff: CANNOT RESTORE nf_conntrack_max to {}: {e} (the next run \
                     restores it from {STATE_FILE})",
                    self.previous
                ),
            }
        }
    }
}

fn restore_to(previous: u32) -> Result<(), String> {
    write_u32("nf_conntrack_max", previous)?;
    let _ = fs::remove_file(STATE_FILE);
    Ok(())
}

/// `PID PREVIOUS` of a state file.
fn parse_state(text: &str) -> Option<(u32, u32)> {
    let mut w = text.split_whitespace();
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}

/// Restores the value a killed run left in [`STATE_FILE`]; what was done, if anything.
pub fn restore_stale() -> Option<String> {
    let text = fs::read_to_string(STATE_FILE).ok()?;
    let Some((pid, previous)) = parse_state(&text) else {
        let _ = fs::remove_file(STATE_FILE);
        return None;
    };
    if pid == std::process::id() || crate::sys::pid_alive(pid) {
        return None;
    }
    let now = global_max().unwrap_or(0);
    Some(match restore_to(previous) {
        Ok(()) => format!(
            "nf_conntrack_max restored to {previous} (run {pid} was killed with it at {now})"
        ),
        Err(e) => format!("nf_conntrack_max left at {now} by run {pid}: cannot restore: {e}"),
    })
}

fn link(path: &str) -> Option<String> {
    fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Why changing the global value could limit somebody else's connections, if it could.
fn why_unsafe() -> Option<String> {
    let me = std::process::id();
    // The initial namespace's inode number is fixed (`PROC_NET_INIT_INO`, 0xEFFFFFF9);
    // /proc/1/ns/net may not be readable, even as root (a container's init).
    let init = Some(format!("net:[{INIT_NET_INO}]"));
    let own = link("/proc/self/ns/net");
    if own != init {
        return Some(
            "this process is not in the initial network namespace, where nf_conntrack_max is \
             writable"
                .into(),
        );
    }
    match read_u32("nf_conntrack_count") {
        Ok(0) => {}
        Ok(n) => {
            return Some(format!(
                "conntrack is in use on the host (nf_conntrack_count {n} in the initial \
                 namespace): a lower global nf_conntrack_max would limit it too"
            ))
        }
        Err(e) => return Some(e),
    }
    if let Ok(text) = fs::read_to_string(STATE_FILE) {
        if let Some((pid, _)) = parse_state(&text) {
            if pid != me && crate::sys::pid_alive(pid) {
                return Some(format!(
                    "another podnet-kdiff run (pid {pid}) has changed nf_conntrack_max"
                ));
            }
        }
    }
    // Another run of the harness (also an older build, which knows nothing of the state
    // file): its namespaces would be limited too.
    let mut namespaces: Vec<(String, String)> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    if let Ok(dir) = fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix("pnkd-") {
                let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|p| p != me && crate::sys::pid_alive(p)) {
                    return Some(format!(
                        "another podnet-kdiff run is replaying (namespace {name})"
                    ));
                }
                if pid == Some(me) {
                    continue;
                }
            }
            namespaces.push((format!("/run/netns/{name}"), format!("namespace {name}")));
        }
    }
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(pid) = name.parse::<u32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.contains("kdiff") {
                return Some(format!(
                    "another run of the harness is alive (pid {pid}, {})",
                    comm.trim()
                ));
            }
            let path = format!("/proc/{pid}/ns/net");
            if let Some(l) = link(&path) {
                if Some(&l) != init.as_ref() && seen.insert(l) {
                    namespaces.push((path, format!("the network namespace of pid {pid}")));
                }
            }
        }
    }
    // Each namespace's own entry count, read from inside it, on a thread of its own.
    std::thread::spawn(move || {
        for (path, what) in namespaces {
            let Ok(_g) = crate::sys::enter_netns_path(&path) else {
                continue;
            };
            if let Ok(n) = read_u32("nf_conntrack_count") {
                if n > 0 {
                    return Some(format!(
                        "{what} holds {n} conntrack entries: a lower global nf_conntrack_max \
                         would limit it too"
                    ));
                }
            }
        }
        None
    })
    .join()
    .unwrap_or_else(|_| Some("checking the other namespaces failed".into()))
}

/// Sets the global `nf_conntrack_max` to `want` for one node, when it is safe (see the
/// module's documentation).
pub fn for_node(want: u32) -> Limit {
    let previous = match global_max() {
        Ok(v) => v,
        Err(e) => return Limit::Refused(e),
    };
    if previous == want {
        return Limit::Same;
    }
    if let Some(why) = why_unsafe() {
        return Limit::Refused(why);
    }
    let state = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(STATE_FILE)
        .and_then(|mut f| writeln!(f, "{} {previous}", std::process::id()));
    if let Err(e) = state {
        return Limit::Refused(format!("{STATE_FILE}: {e}"));
    }
    let guard = Guard {
        previous,
        set: want,
        restored: false,
    };
    let refused = match write_u32("nf_conntrack_max", want).and_then(|()| global_max()) {
        Ok(v) if v == want => return Limit::Set(guard),
        Ok(v) => format!("nf_conntrack_max reads {v} after writing {want}"),
        Err(e) => e,
    };
    let mut guard = guard;
    guard.restored = true;
    if let Err(e) = restore_to(previous) {
        return Limit::Refused(format!("{refused}; restoring {previous}: {e}"));
    }
    Limit::Refused(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_lines() {
        assert_eq!(parse_state("1234 262144\n"), Some((1234, 262144)));
        assert_eq!(parse_state("1234\n"), None);
        assert_eq!(parse_state(""), None);
    }
}
