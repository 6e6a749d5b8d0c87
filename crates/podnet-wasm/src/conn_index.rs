//! Which connection a packet belongs to, kept up to date as a simulation runs.
//!
//! A packet's tuple can belong to several connections (ports are reused, and a translation
//! gives one connection several tuples); of those whose packets carry it, a packet belongs to
//! the last one started by its time. Both things the index reads only grow: the clients'
//! finished connections ([`podnet::ConnRecord`]s, appended as they finish) and the nodes'
//! conntrack NEW events (appended as they are confirmed). So an update takes in the
//! connections finished since the last one, and looks again only at the connections already
//! in whose tuples a new NEW event starts from: the cost is that of what happened since, not
//! of the whole run (a 30,000-connection run took about a second to index in the browser on
//! every new event before).

use std::collections::{BTreeMap, BTreeSet};

use podnet::conntrack::Tuple;
use podnet::{ConnRecord, Instant};
use podnet_scenario::session::{NewConnections, Session};

/// A finished connection: where its record is (flow, client of the flow, position among that
/// client's records) and what orders it (start time, then id, then client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Conn {
    started: Instant,
    flow: u32,
    id: u32,
    client: u32,
    pos: u32,
}

/// The tuple-to-connection index of one simulation.
#[derive(Default)]
pub struct ConnIndex {
    nc: NewConnections,
    /// Per flow, per client: how many of its records are in.
    seen: Vec<Vec<usize>>,
    /// Per flow, the connections in (start time, id, client) order: a connection's number
    /// (`podnet trace --conn N`) is its position here.
    order: Vec<Vec<(Instant, u32, u32)>>,
    /// Each tuple to the connections carrying it, in (start time, flow, number) order.
    conns: BTreeMap<Tuple, Vec<Conn>>,
}

impl ConnIndex {
    /// Takes in what `session` did since the last update.
    pub fn update(&mut self, session: &Session) {
        // Connections already in whose tuples a new NEW event starts from: their sets grow.
        let mut again = BTreeSet::new();
        let conns = &self.conns;
        self.nc.update(session, |t| {
            if let Some(list) = conns.get(t) {
                again.extend(list.iter().copied());
            }
        });
        for c in again {
            let client = session
                .index
                .client(&session.cluster, c.flow as usize, c.client as usize);
            if let Some(r) = client.and_then(|cl| cl.records().get(c.pos as usize)) {
                self.add(c, r, session.connections_proto(c.flow as usize));
            }
        }
        // Connections finished since.
        let flows = &session.index.flows;
        self.seen.resize(flows.len(), Vec::new());
        self.order.resize(flows.len(), Vec::new());
        for (fi, f) in flows.iter().enumerate() {
            let proto = session.connections_proto(fi);
            self.seen[fi].resize(f.clients.len(), 0);
            for ci in 0..f.clients.len() {
                let Some(client) = session.index.client(&session.cluster, fi, ci) else {
                    continue;
                };
                let records = client.records();
                for (pos, r) in records.iter().enumerate().skip(self.seen[fi][ci]) {
                    let c = Conn {
                        started: r.started,
                        flow: fi as u32,
                        id: r.id,
                        client: ci as u32,
                        pos: pos as u32,
                    };
                    let order = &mut self.order[fi];
                    let key = (c.started, c.id, c.client);
                    let at = order.partition_point(|k| *k < key);
                    order.insert(at, key);
                    self.add(c, r, proto);
                }
                self.seen[fi][ci] = records.len();
            }
        }
    }

    /// Files connection `c` (record `r`) under each tuple its packets carry that it is not
    /// filed under yet.
    fn add(&mut self, c: Conn, r: &ConnRecord, proto: u8) {
        for t in self.nc.tuples(r, proto) {
            let list = self.conns.entry(t).or_default();
            if let Err(at) = list.binary_search(&c) {
                list.insert(at, c);
            }
        }
    }

    /// The connection (flow index, number in the flow) a packet with tuple `t` at `time`
    /// belongs to: of those whose packets carry `t`, the last one started by then (else the
    /// first).
    pub fn conn_of(&self, t: &Tuple, time: Instant) -> Option<(usize, u32)> {
        let list = self.conns.get(t)?;
        let c = list
            .iter()
            .rev()
            .find(|c| c.started <= time)
            .or(list.first())?;
        let order = self.order.get(c.flow as usize)?;
        let n = order.partition_point(|k| *k < (c.started, c.id, c.client));
        Some((c.flow as usize, n as u32))
    }
}
