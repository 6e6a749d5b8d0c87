//! One tracked packet's protocol step: a TCP segment through the state machine, UDP stream
//! detection, and the entry's timeout refreshed.

use smoltcp::time::Instant;
use smoltcp::wire::TcpPacket;

use super::life::Gone;
use super::table::bits;
use super::tcp::{self, Kind, Segment};
use super::{left_ms, ms, Conntrack, CtDrop, CtInfo, CtState, Dir, MAX_TIMEOUT_SECS};

pub(super) fn flags_of(tcp: &TcpPacket<&[u8]>) -> u8 {
    let mut f = 0;
    for (set, bit) in [
        (tcp.fin(), 0x01),
        (tcp.syn(), 0x02),
        (tcp.rst(), 0x04),
        (tcp.psh(), 0x08),
        (tcp.ack(), 0x10),
        (tcp.urg(), 0x20),
        (tcp.ece(), 0x40),
        (tcp.cwr(), 0x80),
    ] {
        if set {
            f |= bit;
        }
    }
    f
}

pub(super) fn segment(tcp: &TcpPacket<&[u8]>) -> Segment {
    let (syn, ack, fin, rst) = (tcp.syn(), tcp.ack(), tcp.fin(), tcp.rst());
    let kind = if rst {
        Kind::Rst
    } else if syn {
        if ack {
            Kind::SynAck
        } else {
            Kind::Syn
        }
    } else if fin {
        Kind::Fin
    } else if ack {
        Kind::Ack
    } else {
        Kind::None
    };
    let len = tcp.payload().len() as u32 + u32::from(syn) + u32::from(fin);
    Segment {
        kind,
        syn,
        ack,
        fin,
        rst,
        seq: tcp.seq_number().0 as u32,
        ack_no: tcp.ack_number().0 as u32,
        win: u32::from(tcp.window_len()),
        end: (tcp.seq_number().0 as u32).wrapping_add(len),
        opts: tcp::Options::parse(tcp.options()),
    }
}

pub(super) enum Proto<'a> {
    Tcp(TcpPacket<&'a [u8]>),
    Udp,
    Icmp { t: u8 },
    Other,
}

impl Conntrack {
    /// Sets an entry's timeout (at most [`MAX_TIMEOUT_SECS`]); an `IPS_NAT_CLASH` entry keeps
    /// its fixed one. An unconfirmed entry keeps it relative, and [`Conntrack::confirm`] starts
    /// it then (`__nf_ct_refresh_acct`, and `ct->timeout += nfct_time_stamp` in
    /// `__nf_conntrack_confirm`: "relative to confirmation time, not original setting time,
    /// otherwise we'd get timer wrap in weird delay cases").
    fn refresh(&mut self, now: Instant, idx: u32, secs: u32) {
        let e = self.table.get(idx);
        if e.has(bits::NAT_CLASH) {
            return;
        }
        let confirmed = e.has(bits::CONFIRMED);
        let ms_left = secs.min(MAX_TIMEOUT_SECS).saturating_mul(1000);
        self.table.get_mut(idx).expires_ms = if confirmed {
            ms(now).wrapping_add(ms_left)
        } else {
            ms_left
        };
    }

    pub(super) fn packet(
        &mut self,
        now: Instant,
        idx: u32,
        dir: Dir,
        created: bool,
        p: &Proto<'_>,
    ) -> Result<CtInfo, CtDrop> {
        let d = dir as usize;
        let seen_reply = self.table.get(idx).has(bits::SEEN_REPLY);
        match p {
            Proto::Tcp(t) => {
                let seg = segment(t);
                let e = self.table.get(idx);
                let status = tcp::Status {
                    seen_reply,
                    assured: e.has(bits::ASSURED),
                };
                let (e, x) = self.table.tcp_mut(idx);
                if created {
                    tcp::new_entry(e, x, &seg);
                }
                let action = tcp::packet(
                    e,
                    x,
                    d,
                    &seg,
                    status,
                    &self.config.tcp,
                    self.config.tcp_be_liberal,
                );
                match action {
                    tcp::Action::Accept {
                        state: _,
                        timeout,
                        assure,
                    } => {
                        if assure {
                            self.table.get_mut(idx).bits |= bits::ASSURED;
                        }
                        if let Some(secs) = timeout {
                            self.refresh(now, idx, secs);
                        }
                    }
                    tcp::Action::Ignore(_) => {}
                    tcp::Action::Invalid { shrink, .. } => {
                        self.st().invalid += 1;
                        if created {
                            self.free(idx, Gone::Unconfirmed);
                        } else if shrink {
                            // `nf_tcp_handle_invalid`: an ASSURED entry with at least 120 s
                            // left drops to the unacknowledged timeout.
                            let left = left_ms(self.table.get(idx).expires_ms, now);
                            let unack = self.config.tcp.unacknowledged;
                            if left >= 120_000 && left as u32 > unack.saturating_mul(1000) {
                                self.refresh(now, idx, unack);
                            }
                        }
                        return Ok(CtInfo::invalid());
                    }
                    tcp::Action::Reopen => {
                        // A new SYN on a closed connection: the old entry goes and the SYN
                        // starts a new one in its own direction (`nf_conntrack_tcp_packet`:
                        // nf_ct_kill, then -NF_REPEAT looks the packet up again and
                        // `init_conntrack` tracks it afresh, whichever side sent it).
                        let own = match dir {
                            Dir::Original => 0,
                            Dir::Reply => 1,
                        };
                        let tuple = self.table.get(idx).tuple(own);
                        self.free(idx, Gone::Killed);
                        let idx = self.create(now, &tuple)?;
                        return self.packet(now, idx, Dir::Original, true, p);
                    }
                    tcp::Action::Kill => {
                        // "If only reply is a RST, we can consider ourselves not to have an
                        // established connection": `nf_ct_kill_acct` takes the entry out of
                        // the hash at once, but the RST keeps its reference, so NAT at the
                        // later hooks still translates it (a backend's RST leaves as the
                        // Service's); the entry goes when the packet leaves the hooks
                        // ([`Conntrack::discard`]).
                        if self.table.get(idx).has(bits::CONFIRMED) {
                            self.life.killed += 1;
                        }
                        self.table.unlink(idx);
                        return Ok(self.info(idx, dir, false));
                    }
                }
            }
            Proto::Udp => {
                if created {
                    // The stream timestamp: 2 s after the first packet.
                    self.table.get_mut(idx).seen[0].end = ms(now).wrapping_add(2000);
                }
                let e = *self.table.get(idx);
                if e.has(bits::SEEN_REPLY) {
                    let (secs, assure) = if left_ms(e.seen[0].end, now) < 0 {
                        (self.config.udp_stream, true)
                    } else {
                        (self.config.udp, false)
                    };
                    if assure {
                        self.table.get_mut(idx).bits |= bits::ASSURED;
                    }
                    self.refresh(now, idx, secs);
                } else {
                    self.refresh(now, idx, self.config.udp);
                }
            }
            Proto::Icmp { .. } => self.refresh(now, idx, self.config.icmp),
            Proto::Other => self.refresh(now, idx, self.config.generic),
        }
        Ok(self.info(idx, dir, created))
    }

    fn info(&mut self, idx: u32, dir: Dir, created: bool) -> CtInfo {
        let e = self.table.get_mut(idx);
        let state = if dir == Dir::Reply || e.has(bits::SEEN_REPLY) {
            CtState::Established
        } else {
            CtState::New
        };
        if dir == Dir::Reply {
            e.bits |= bits::SEEN_REPLY;
        }
        CtInfo {
            entry: Some(idx),
            dir,
            state,
            created,
        }
    }
}
