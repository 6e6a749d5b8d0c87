//! Checks that count what the kernel did against podnet's model, outside the replays: the
//! neighbour queue ([`crate::neighq`]) and the ICMP error limits ([`crate::icmplimit`]). Both
//! build small namespaces of their own, send real traffic from a real Linux stack and read a
//! kernel counter.

use crate::netns;

/// One case of a counting check.
#[derive(Debug)]
pub struct Case {
    /// What was sent.
    pub name: String,
    /// Packets sent.
    pub sent: usize,
    /// What the kernel counted (packets kept, errors sent).
    pub kernel: usize,
    /// What podnet's model gives for the same packets.
    pub podnet: usize,
    /// Whether they agree.
    pub agree: bool,
    /// A detail to print beside it (podnet's truesize).
    pub detail: String,
}

/// Runs `cmd` (words split on spaces) in namespace `ns`.
pub fn sh(ns: &str, cmd: &str) -> Result<(), String> {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    netns::ns_run(ns, args[0], &args[1..], None).map(|_| ())
}
