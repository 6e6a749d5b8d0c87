//! Connection tracking, as Linux `nf_conntrack`: every packet a node handles is matched to a
//! connection (or starts one), classified NEW / ESTABLISHED / RELATED / INVALID, and moves that
//! connection's state and timeout forward in virtual time.
//!
//! The table has a fixed capacity and `buckets` hash chains; when it is full a NEW packet
//! triggers early drop (the first of 8 buckets from its own that holds unassured entries loses
//! all of them), else the packet is dropped. New entries stay unconfirmed until the packet
//! leaves the hooks ([`Conntrack::confirm`]), so a packet dropped on the way leaves no entry.
//! `conntrack -L` and `conntrack -S` renderings follow conntrack-tools.

mod clash;
mod csum;
mod kernel;
mod life;
mod packet;
pub mod table;
pub mod tcp;
pub mod tuple;

pub use clash::Confirmed;
pub use kernel::Kernel;
pub use life::CtLife;
use life::Gone;
use packet::{flags_of, segment, Proto};

use alloc::string::String;
use core::fmt::Write as _;

use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

use table::{bits, Entry, Table};
use tcp::{Kind, Next, State, TcpTimeouts};
pub use tuple::{proto, Tuple};

/// Buckets scanned by early drop (`NF_CT_EVICTION_RANGE`).
pub const EVICTION_RANGE: u32 = 8;

/// Settings, Linux defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtConfig {
    /// `nf_conntrack_max`.
    pub max: u32,
    /// `nf_conntrack_buckets`.
    pub buckets: u32,
    /// `nf_conntrack_tcp_be_liberal`: out-of-window segments are not INVALID.
    pub tcp_be_liberal: bool,
    /// `nf_conntrack_tcp_loose`: pick up connections from a mid-stream ACK.
    pub tcp_loose: bool,
    /// `nf_conntrack_checksum`: bad TCP/UDP/ICMP checksums are INVALID.
    pub checksum: bool,
    /// TCP timeouts.
    pub tcp: TcpTimeouts,
    /// `udp_timeout` (unreplied), seconds.
    pub udp: u32,
    /// `udp_timeout_stream`, seconds.
    pub udp_stream: u32,
    /// `icmp_timeout`, seconds.
    pub icmp: u32,
    /// `generic_timeout`, seconds.
    pub generic: u32,
    /// The kernel's version: how an insert clash is handled ([`Kernel`]).
    pub kernel: Kernel,
}

impl Default for CtConfig {
    fn default() -> Self {
        CtConfig {
            max: 262_144,
            buckets: 65_536,
            tcp_be_liberal: false,
            tcp_loose: true,
            checksum: true,
            tcp: TcpTimeouts::default(),
            udp: 30,
            udp_stream: 120,
            icmp: 30,
            generic: 600,
            kernel: Kernel::default(),
        }
    }
}

/// `conntrack -S` counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Tuples NAT found taken while choosing a binding (`nf_conntrack_tuple_taken`; Linux no
    /// longer counts regular lookups here).
    pub found: u64,
    /// Packets classified INVALID.
    pub invalid: u64,
    /// Entries inserted from user space (ctnetlink). Linux 6.x no longer counts packet-path
    /// confirmations here (`__nf_conntrack_confirm` has no `insert` increment), so this stays 0.
    pub insert: u64,
    /// Confirmations that clashed with an existing entry.
    pub insert_failed: u64,
    /// Packets dropped by conntrack (table full, clash).
    pub drop: u64,
    /// Entries evicted by early drop.
    pub early_drop: u64,
    /// Packets conntrack could not parse.
    pub error: u64,
    /// Lookups restarted (never here).
    pub search_restart: u64,
    /// Clashes resolved by reusing the existing entry (UDP).
    pub clash_resolve: u64,
    /// Chains too long (never here).
    pub chaintoolong: u64,
}

/// Direction of a packet relative to its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Same direction as the connection's first packet.
    Original = 0,
    /// The other way.
    Reply = 1,
}

/// What `--ctstate` matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtState {
    /// First packet (or no reply seen yet).
    New,
    /// Part of a connection that has seen traffic both ways.
    Established,
    /// An ICMP error about a tracked connection.
    Related,
    /// Not trackable (bad flags, out of window, bad checksum, ...).
    Invalid,
}

impl CtState {
    /// The `--ctstate` spelling.
    pub fn name(self) -> &'static str {
        match self {
            CtState::New => "NEW",
            CtState::Established => "ESTABLISHED",
            CtState::Related => "RELATED",
            CtState::Invalid => "INVALID",
        }
    }
}

/// The result of tracking one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtInfo {
    /// The connection, when there is one.
    pub entry: Option<u32>,
    /// The packet's direction.
    pub dir: Dir,
    /// Its state.
    pub state: CtState,
    /// Whether the entry was created by this packet (and awaits confirmation).
    pub created: bool,
}

impl CtInfo {
    /// What a packet the node builds about this one (an ICMP error, a reset) carries
    /// (`nf_ct_attach` from `icmp_glue_bits`, `nf_send_reset`): the same entry, confirmed or
    /// not, RELATED in the other direction (`nf_conntrack_attach`). Conntrack does not look
    /// such a packet up again, and never confirms an entry from the REPLY side
    /// (`__nf_conntrack_confirm`), so an entry only this packet created dies with the two.
    /// `None` when this packet has no entry (INVALID).
    pub fn attached(&self) -> Option<CtInfo> {
        Some(CtInfo {
            entry: Some(self.entry?),
            dir: match self.dir {
                Dir::Original => Dir::Reply,
                Dir::Reply => Dir::Original,
            },
            state: CtState::Related,
            created: false,
        })
    }

    fn invalid() -> Self {
        CtInfo {
            entry: None,
            dir: Dir::Original,
            state: CtState::Invalid,
            created: false,
        }
    }
}

/// Why conntrack dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtDrop {
    /// `nf_conntrack: table full, dropping packet`.
    TableFull,
    /// Confirmation clashed with an entry inserted meanwhile.
    InsertClash,
}

impl CtDrop {
    /// The reason shown in traces.
    pub fn reason(self) -> &'static str {
        match self {
            CtDrop::TableFull => "nf_conntrack: table full, dropping packet",
            CtDrop::InsertClash => "nf_conntrack: insert clash (insert_failed)",
        }
    }
}

/// One node's connection tracker.
#[derive(Debug)]
pub struct Conntrack {
    config: CtConfig,
    table: Table,
    /// `conntrack -S` counters, one set per CPU (at least one).
    stats: alloc::vec::Vec<CtStats>,
    /// The CPU the packet being handled runs on (an index into `stats`).
    cpu: usize,
    /// Entries the packet being handled cannot see: another CPU confirmed them after this
    /// packet's lookup had begun ([`Conntrack::hide`]).
    hidden: alloc::vec::Vec<u32>,
    life: CtLife,
    /// The latest time the table was used at. Expiries are kept on a wrapping millisecond
    /// clock (like jiffies), valid while no entry is looked at more than 24.8 days after it
    /// expired; after a longer quiet spell every entry has certainly expired, and the table is
    /// emptied instead (Linux's GC worker would have done it meanwhile).
    last: Instant,
    /// When every entry was last checked for expiry (a daily sweep keeps the wrapping clock
    /// valid for entries nobody looks at).
    last_sweep: Instant,
}

/// The longest timeout a configuration may set (the wrapping clock's reach, with margin).
pub const MAX_TIMEOUT_SECS: u32 = 20 * 86_400;

fn ms(now: Instant) -> u32 {
    // A wrapping 32-bit millisecond clock, compared with `before`/`left_ms` like Linux's
    // jiffies and `nf_ct_is_expired`: fine for any run length as long as timeouts stay under
    // 24.8 days (the longest, ESTABLISHED, is 5 days).
    now.total_millis() as u64 as u32
}

/// Milliseconds from `now` until `deadline` (negative once passed), on the wrapping clock.
fn left_ms(deadline: u32, now: Instant) -> i32 {
    deadline.wrapping_sub(ms(now)) as i32
}

impl Conntrack {
    /// An empty tracker; `seed` keys the hash.
    pub fn new(config: CtConfig, seed: u64) -> Self {
        Conntrack {
            table: Table::new(config.max, config.buckets, seed),
            config,
            stats: alloc::vec![CtStats::default()],
            cpu: 0,
            hidden: alloc::vec::Vec::new(),
            life: CtLife::default(),
            last: Instant::ZERO,
            last_sweep: Instant::ZERO,
        }
    }

    /// Whether `now` is so long after the last use that every entry has expired.
    fn stale(&self, now: Instant) -> bool {
        now - self.last > smoltcp::time::Duration::from_secs(u64::from(MAX_TIMEOUT_SECS))
    }

    /// Frees entry `idx`, counting why.
    fn free(&mut self, idx: u32, why: Gone) {
        let e = self.table.get(idx);
        if !e.has(bits::USED) {
            return;
        }
        let why = if why == Gone::Unconfirmed && e.has(bits::DYING) {
            // Killed in flight (unlinked by [`Table::unlink`]); counted there.
            None
        } else {
            Some(why)
        };
        if let Some(why) = why {
            self.life.count(why);
        }
        self.table.free(idx);
    }

    /// Where every entry went so far.
    pub fn life(&self) -> CtLife {
        self.life
    }

    /// Called before any use at `now`.
    fn touch(&mut self, now: Instant) {
        if self.stale(now) {
            // Every confirmed entry has expired; unconfirmed ones belong to packets in flight.
            let confirmed: alloc::vec::Vec<u32> = self
                .table
                .used()
                .filter(|i| self.table.get(*i).has(bits::CONFIRMED))
                .collect();
            for i in confirmed {
                self.free(i, Gone::Expired);
            }
            self.last_sweep = now;
        }
        if now > self.last {
            self.last = now;
        }
        if now - self.last_sweep >= smoltcp::time::Duration::from_secs(86_400) {
            self.last_sweep = now;
            self.sweep(now);
        }
    }

    /// Frees every expired entry.
    fn sweep(&mut self, now: Instant) {
        let dead: alloc::vec::Vec<u32> = self
            .table
            .used()
            .filter(|i| self.is_expired(*i, now))
            .collect();
        for i in dead {
            self.free(i, Gone::Expired);
        }
    }

    /// Settings.
    pub fn config(&self) -> &CtConfig {
        &self.config
    }

    /// Counters, summed over the CPUs.
    pub fn stats(&self) -> CtStats {
        self.stats.iter().fold(CtStats::default(), |t, s| t.plus(s))
    }

    /// Entries in the table.
    pub fn count(&self) -> u32 {
        self.table.count()
    }

    /// The table (read-only).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// An entry.
    pub fn entry(&self, idx: u32) -> &Entry {
        self.table.get(idx)
    }

    /// Changes `nf_conntrack_max`.
    pub fn set_max(&mut self, max: u32) {
        self.config.max = max;
        self.table.set_capacity(max);
    }

    /// `conntrack -F`.
    pub fn flush(&mut self) {
        self.life.flushed += u64::from(self.table.count());
        self.table.clear();
    }

    fn is_expired(&self, idx: u32, now: Instant) -> bool {
        let e = self.table.get(idx);
        e.has(bits::CONFIRMED) && left_ms(e.expires_ms, now) <= 0
    }

    /// Removes every expired entry (Linux's GC worker).
    pub fn expire(&mut self, now: Instant) {
        self.touch(now);
        self.sweep(now);
    }

    fn find(&mut self, now: Instant, t: &Tuple) -> Option<(u32, Dir)> {
        let (idx, dir) = self.table.lookup_except(t, &self.hidden)?;
        if self.is_expired(idx, now) {
            self.free(idx, Gone::Expired);
            return None;
        }
        Some((idx, if dir == 0 { Dir::Original } else { Dir::Reply }))
    }

    /// Whether some connection already uses `t` in either direction (`nf_conntrack_tuple_taken`,
    /// which counts each taken tuple in `found`).
    pub fn tuple_taken(&mut self, now: Instant, t: &Tuple) -> bool {
        self.touch(now);
        let taken = self.find(now, t).is_some();
        self.st().found += u64::from(taken);
        taken
    }

    /// Tracks one IPv4 packet (`nf_conntrack_in`). `verify` asks for checksum verification
    /// (Linux checks at PREROUTING only). An `Err` means the packet must be dropped.
    pub fn track(&mut self, now: Instant, ip: &[u8], verify: bool) -> Result<CtInfo, CtDrop> {
        self.touch(now);
        let Ok(pkt) = Ipv4Packet::new_checked(ip) else {
            self.st().error += 1;
            return Ok(CtInfo::invalid());
        };
        let Some(tuple) = Tuple::of_packet(ip) else {
            self.st().invalid += 1;
            return Ok(CtInfo::invalid());
        };
        let l4 = &ip[usize::from(pkt.header_len())..usize::from(pkt.total_len()).min(ip.len())];
        let (src, dst) = (
            IpAddress::Ipv4(pkt.src_addr()),
            IpAddress::Ipv4(pkt.dst_addr()),
        );
        // Bad TCP flags and TCP/UDP checksums are found by the protocol's `*_error` check,
        // which Linux 6.x runs after the lookup (in `nf_conntrack_handle_packet`): a packet
        // without an entry is allocated one first, so on a full table it is dropped, not
        // INVALID.
        let mut bad = false;
        let p = match pkt.next_header() {
            IpProtocol::Tcp => match TcpPacket::new_checked(l4) {
                Ok(t) => {
                    let bad_sum = verify
                        && self.config.checksum
                        && !csum::valid(6, pkt.src_addr(), pkt.dst_addr(), l4);
                    bad = !tcp::valid_flags(flags_of(&t)) || bad_sum;
                    Proto::Tcp(t)
                }
                Err(_) => {
                    self.st().invalid += 1;
                    return Ok(CtInfo::invalid());
                }
            },
            IpProtocol::Udp => match UdpPacket::new_checked(l4) {
                Ok(u) => {
                    bad = verify
                        && self.config.checksum
                        && u.checksum() != 0
                        && !u.verify_checksum(&src, &dst);
                    Proto::Udp
                }
                Err(_) => {
                    self.st().invalid += 1;
                    return Ok(CtInfo::invalid());
                }
            },
            IpProtocol::Icmp => {
                if verify
                    && self.config.checksum
                    && smoltcp::wire::Icmpv4Packet::new_checked(l4)
                        .is_ok_and(|i| !i.verify_checksum())
                {
                    self.st().invalid += 1;
                    return Ok(CtInfo::invalid());
                }
                Proto::Icmp { t: l4[0] }
            }
            _ => Proto::Other,
        };
        if let Proto::Icmp { t } = p {
            if tuple::icmp_is_error(t) {
                return Ok(self.related(now, l4));
            }
        }
        let (idx, dir, created) = match self.find(now, &tuple) {
            Some(_) if bad => {
                self.st().invalid += 1;
                return Ok(CtInfo::invalid());
            }
            Some((idx, dir)) => (idx, dir, false),
            None => {
                // `init_conntrack` allocates (and on a full table early-drops or drops)
                // before the protocol judges whether the packet may start a connection.
                let idx = self.create(now, &tuple)?;
                let ok_new = match &p {
                    Proto::Tcp(t) => {
                        let seg = segment(t);
                        matches!(
                            tcp::next(0, seg.kind, State::None),
                            Next::To(State::SynSent)
                        ) || (self.config.tcp_loose && seg.kind == Kind::Ack)
                    }
                    Proto::Icmp { t } => tuple::icmp_reply_type(*t).is_some(),
                    Proto::Udp | Proto::Other => true,
                };
                if bad || !ok_new {
                    self.free(idx, Gone::Unconfirmed);
                    self.st().invalid += 1;
                    return Ok(CtInfo::invalid());
                }
                (idx, Dir::Original, true)
            }
        };
        self.packet(now, idx, dir, created, &p)
    }

    fn create(&mut self, now: Instant, tuple: &Tuple) -> Result<u32, CtDrop> {
        if self.table.count() >= self.config.max && !self.early_drop(now, tuple) {
            self.st().drop += 1;
            return Err(CtDrop::TableFull);
        }
        let idx = self.table.alloc(tuple, &tuple.invert()).ok_or_else(|| {
            self.st().drop += 1;
            CtDrop::TableFull
        })?;
        self.life.created += 1;
        Ok(idx)
    }

    /// `early_drop`: frees room in one of the 8 buckets from the new tuple's; true if it did.
    fn early_drop(&mut self, now: Instant, tuple: &Tuple) -> bool {
        let first = self.table.bucket_of(tuple);
        let n = self.table.bucket_count();
        let mut ids = [0u32; 64];
        for i in 0..EVICTION_RANGE.min(n) {
            let b = (first + i) % n;
            let k = self.table.bucket_entries(b, &mut ids);
            let mut dropped = 0;
            for &idx in &ids[..k] {
                if self.is_expired(idx, now) {
                    self.free(idx, Gone::Expired);
                    continue;
                }
                if !self.table.get(idx).has(bits::ASSURED) {
                    self.free(idx, Gone::EarlyDropped);
                    dropped += 1;
                }
            }
            if dropped > 0 {
                self.st().early_drop += dropped;
                return true;
            }
            if self.table.count() < self.config.max {
                return true; // expired entries made room
            }
        }
        false
    }

    fn related(&mut self, now: Instant, icmp: &[u8]) -> CtInfo {
        let Some(inner) = icmp.get(8..).and_then(Tuple::of_packet) else {
            return CtInfo::invalid();
        };
        match self.find(now, &inner.invert()) {
            Some((idx, dir)) => CtInfo {
                entry: Some(idx),
                dir,
                state: CtState::Related,
                created: false,
            },
            None => CtInfo::invalid(),
        }
    }

    /// Sets the REPLY tuple of an unconfirmed entry (a NAT binding) and the NAT flags.
    pub fn bind_nat(&mut self, idx: u32, reply: &Tuple) {
        self.table.set_reply(idx, reply);
        let e = self.table.get_mut(idx);
        let (o, r) = (e.tuple(0), e.tuple(1));
        e.bits &= !(bits::SRC_NAT | bits::DST_NAT);
        // ICMP: both tuples hold the query id in `sport`; a changed id is a source
        // manipulation's (MASQUERADE, null binding).
        let icmp = o.proto == proto::ICMP;
        if r.dst != o.src || (if icmp { r.sport } else { r.dport }) != o.sport {
            e.bits |= bits::SRC_NAT;
        }
        if r.src != o.dst || (!icmp && r.sport != o.dport) {
            e.bits |= bits::DST_NAT;
        }
    }

    /// Called when the last packet holding entry `idx` leaves the hooks: frees it unless it
    /// is in the hash. That is an entry never confirmed (its packet was dropped on the way,
    /// or it rode on an error the node built about that packet, [`CtInfo::attached`]) or one
    /// killed while its packet was in flight (the RST that was a SYN's only reply).
    pub fn discard(&mut self, idx: u32) {
        if !self.table.get(idx).has(bits::CONFIRMED) {
            self.free(idx, Gone::Unconfirmed);
        }
    }

    /// One `conntrack -L` line.
    pub fn line(&self, idx: u32, now: Instant) -> String {
        let e = self.table.get(idx);
        let mut s = String::new();
        let t = e.tuple(0);
        // An unconfirmed entry's timeout has not started (see `refresh`).
        let left = if e.has(bits::CONFIRMED) {
            left_ms(e.expires_ms, now)
        } else {
            e.expires_ms as i32
        };
        let left = left.max(0) / 1000;
        let _ = write!(s, "{:<8} {} {} ", t.proto_name(), t.proto, left);
        if e.proto == proto::TCP {
            let _ = write!(s, "{} ", State::from_bits(e.bits).name());
        }
        let _ = write!(s, "{} ", e.tuple(0));
        if !e.has(bits::SEEN_REPLY) {
            s.push_str("[UNREPLIED] ");
        }
        let _ = write!(s, "{} ", e.tuple(1));
        if e.has(bits::ASSURED) {
            s.push_str("[ASSURED] ");
        }
        s.push_str("mark=0 use=1");
        s
    }

    /// `conntrack -L`: every live, confirmed entry at `now`, one line each.
    pub fn list(&self, now: Instant) -> String {
        self.list_head(now, usize::MAX).1
    }

    /// The entries [`Conntrack::list`] shows at `now`, in its order.
    fn listed(&self, now: Instant) -> impl Iterator<Item = u32> + '_ {
        let stale = self.stale(now);
        self.table.used().filter(move |&idx| {
            let e = self.table.get(idx);
            // `IPS_NAT_CLASH` entries are hidden from ctnetlink dumps.
            !stale
                && e.has(bits::CONFIRMED)
                && !e.has(bits::NAT_CLASH)
                && left_ms(e.expires_ms, now) > 0
        })
    }

    /// How many lines [`Conntrack::list`] has at `now`, and the first `limit` of them (only
    /// those are formatted: cheap with a full table).
    pub fn list_head(&self, now: Instant, limit: usize) -> (usize, String) {
        let mut out = String::new();
        let mut count = 0;
        for idx in self.listed(now) {
            if count < limit {
                out.push_str(&self.line(idx, now));
                out.push('\n');
            }
            count += 1;
        }
        (count, out)
    }

    /// The lines of [`Conntrack::list`] at `now` whose entries `pick` picks, given each
    /// entry's original and reply tuples (only those lines are formatted), in list order.
    pub fn list_picked(&self, now: Instant, pick: impl Fn(&Tuple, &Tuple) -> bool) -> String {
        let mut out = String::new();
        for idx in self.listed(now) {
            let e = self.table.get(idx);
            if pick(&e.tuple(0), &e.tuple(1)) {
                out.push_str(&self.line(idx, now));
                out.push('\n');
            }
        }
        out
    }

    /// `conntrack -S`: one line per CPU.
    pub fn stats_text(&self) -> String {
        let mut out = String::new();
        for (cpu, s) in self.stats.iter().enumerate() {
            let _ = writeln!(
                out,
                "cpu={cpu:<4}\tfound={} invalid={} insert={} insert_failed={} drop={} early_drop={} error={} search_restart={} clash_resolve={} chaintoolong={} ",
                s.found, s.invalid, s.insert, s.insert_failed, s.drop, s.early_drop, s.error, s.search_restart, s.clash_resolve, s.chaintoolong
            );
        }
        out
    }
}

#[cfg(test)]
mod clash_tests;
#[cfg(test)]
pub(crate) mod tests;
