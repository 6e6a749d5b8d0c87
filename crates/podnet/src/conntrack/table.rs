//! The conntrack table: a fixed-capacity slab of 64-byte entries and a hash of `buckets`
//! chains in which every entry is linked twice, by its ORIGINAL and by its REPLY tuple (Linux's
//! two `tuplehash` nodes). The links live in a parallel array of 8-byte nodes, each with a
//! 32-bit tag of its tuple's hash. Each bucket is one 64-byte line that also holds the first
//! ten nodes of its chain with 16 bits of their tags: a lookup reads the bucket, then an entry
//! only where a tag matches, and walks links only past the tenth node: with chains of three
//! nodes on average (100,000 entries over 65,536 buckets) one bucket in 3,000 has more; in a
//! full table at kube-proxy's `max / 4` buckets (eight nodes a chain) about one in five.
//! All memory is reserved at construction; the packet path never
//! allocates. Entries are referred to by index; a chain node is `index << 1 | direction`.

use alloc::vec::Vec;

use smoltcp::wire::Ipv4Address;

use super::tcp::TcpExt;
use super::tuple::Tuple;

/// End of a chain / no entry.
pub const NIL: u32 = u32::MAX;

/// A tuple without its protocol (stored once per entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// Source address.
    pub src: Ipv4Address,
    /// Destination address.
    pub dst: Ipv4Address,
    /// Source port or ICMP id.
    pub sport: u16,
    /// Destination port or ICMP type/code.
    pub dport: u16,
}

impl Default for Key {
    fn default() -> Self {
        Key {
            src: Ipv4Address::UNSPECIFIED,
            dst: Ipv4Address::UNSPECIFIED,
            sport: 0,
            dport: 0,
        }
    }
}

impl Key {
    fn of(t: &Tuple) -> Key {
        Key {
            src: t.src,
            dst: t.dst,
            sport: t.sport,
            dport: t.dport,
        }
    }

    fn tuple(&self, proto: u8) -> Tuple {
        Tuple {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto,
        }
    }
}

/// What Linux keeps per direction for TCP window tracking (`ip_ct_tcp_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Seen {
    /// Highest sequence end seen.
    pub end: u32,
    /// Highest acceptable end (ack + window) seen from the other side.
    pub maxend: u32,
    /// Largest window seen.
    pub maxwin: u32,
}

/// One connection. 64 bytes (56 used, aligned to a cache line): two keys, expiry, TCP
/// tracking, flag bits.
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(64))]
pub struct Entry {
    /// ORIGINAL and REPLY keys.
    pub keys: [Key; 2],
    /// Expiry, in milliseconds of virtual time.
    pub expires_ms: u32,
    /// TCP per-direction tracking (UDP keeps its stream timestamp in `seen[0].end`).
    pub seen: [Seen; 2],
    /// State and flags, see the `bits` module.
    pub bits: u16,
    /// IP protocol.
    pub proto: u8,
    /// TCP window scale per direction (low nibble ORIGINAL, high nibble REPLY).
    pub scales: u8,
}

/// Bit layout of [`Entry::bits`].
pub mod bits {
    /// TCP state (4 bits).
    pub const STATE_MASK: u16 = 0x000f;
    /// IPS_ASSURED.
    pub const ASSURED: u16 = 1 << 6;
    /// IPS_SEEN_REPLY.
    pub const SEEN_REPLY: u16 = 1 << 7;
    /// Source NAT applied (REPLY dst differs from ORIGINAL src).
    pub const SRC_NAT: u16 = 1 << 8;
    /// Destination NAT applied.
    pub const DST_NAT: u16 = 1 << 9;
    /// In the hash (confirmed).
    pub const CONFIRMED: u16 = 1 << 10;
    /// Slot holds an entry.
    pub const USED: u16 = 1 << 11;
    /// Killed (`nf_ct_kill`): out of the hash, held only by the packet in flight until it
    /// leaves the hooks; never confirmed again.
    pub const DYING: u16 = 1 << 12;
    /// IPS_NAT_CLASH: the loser of a UDP insert race, in the hash by its REPLY tuple only,
    /// with a fixed 1 s timeout; `conntrack -L` does not show it.
    pub const NAT_CLASH: u16 = 1 << 13;
}

impl Entry {
    /// The tuple of direction `dir` (0 ORIGINAL, 1 REPLY).
    pub fn tuple(&self, dir: usize) -> Tuple {
        self.keys[dir].tuple(self.proto)
    }

    /// Whether a flag bit is set.
    pub fn has(&self, bit: u16) -> bool {
        self.bits & bit != 0
    }
}

/// One direction of an entry in its hash chain: the next node, and a tag (32 more bits of
/// the tuple's hash) that a lookup compares before it reads the entry.
#[derive(Clone, Copy, Debug, Default)]
struct Link {
    tag: u32,
    next: u32,
}

/// Chain nodes a bucket keeps in itself, with their tags.
const WAYS: usize = 10;

/// A bucket: the head of its chain, plus a copy of the first [`WAYS`] nodes of the chain and
/// 16 bits of their tags (`NIL` past the chain's end), in one 64-byte line. A lookup compares
/// these tags without reading any link, and walks the links only past the last node kept; the
/// links stay the chain itself (`nodes[0]` is its head, and each node's `next` is kept), so
/// the chain's order (Linux's, newest first) is what early drop and listings walk.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    nodes: [u32; WAYS],
    tags: [u16; WAYS],
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        nodes: [NIL; WAYS],
        tags: [0; WAYS],
    };
}

/// The table.
#[derive(Debug)]
pub struct Table {
    entries: Vec<Entry>,
    /// The chain links of each entry slot (`links[i]` belongs to `entries[i]`; a free slot's
    /// `[0].next` is the next free one), apart from the entries: a chain walk reads 8 bytes a
    /// node and touches an entry only when its tag matches, so a table holding 100,000
    /// connections costs a lookup little more than an empty one.
    links: Vec<[Link; 2]>,
    /// TCP state beyond the window edges, one per entry slot (`tcp[i]` belongs to
    /// `entries[i]`), apart so that chain walks touch only the 64-byte entries.
    tcp: Vec<TcpExt>,
    free: u32,
    buckets: Vec<Bucket>,
    count: u32,
    capacity: u32,
    seed: u64,
}

impl Table {
    /// A table of `capacity` entries hashed into `buckets` chains (at least 1). The buckets
    /// are allocated now, the entries as they are first needed (as the kernel allocates
    /// `nf_conn`s from its slab on demand): a big `max` costs no memory until it fills.
    pub fn new(capacity: u32, buckets: u32, seed: u64) -> Self {
        Table {
            entries: Vec::new(),
            links: Vec::new(),
            tcp: Vec::new(),
            free: NIL,
            buckets: alloc::vec![Bucket::EMPTY; buckets.max(1) as usize],
            count: 0,
            capacity,
            seed,
        }
    }

    /// Entries in use (confirmed or not).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Capacity.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Number of hash buckets.
    pub fn bucket_count(&self) -> u32 {
        self.buckets.len() as u32
    }

    /// Bytes the table takes when full (entries and their TCP state at capacity, plus buckets).
    pub fn reserved_bytes(&self) -> usize {
        self.capacity as usize
            * (core::mem::size_of::<Entry>()
                + core::mem::size_of::<[Link; 2]>()
                + core::mem::size_of::<TcpExt>())
            + self.buckets.len() * core::mem::size_of::<Bucket>()
    }

    /// The bucket of a tuple.
    pub fn bucket_of(&self, t: &Tuple) -> u32 {
        self.place(t).0
    }

    /// The bucket of a tuple and its tag.
    fn place(&self, t: &Tuple) -> (u32, u32) {
        let a = u64::from(u32::from(t.src)) | u64::from(u32::from(t.dst)) << 32;
        let b = u64::from(t.sport) | u64::from(t.dport) << 16 | u64::from(t.proto) << 32;
        let mut h = (a ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        h = (h ^ b).wrapping_mul(0xd6e8_feb8_6659_fd93);
        let tag = (h >> 32) as u32;
        h ^= h >> 32;
        let bucket = ((u64::from(h as u32) * self.buckets.len() as u64) >> 32) as u32;
        (bucket, tag)
    }

    /// An entry by index.
    pub fn get(&self, idx: u32) -> &Entry {
        &self.entries[idx as usize]
    }

    /// An entry by index, mutably. Do not change `keys` of a confirmed entry (use
    /// [`Table::set_reply`]).
    pub fn get_mut(&mut self, idx: u32) -> &mut Entry {
        &mut self.entries[idx as usize]
    }

    /// An entry and its TCP state, mutably.
    pub fn tcp_mut(&mut self, idx: u32) -> (&mut Entry, &mut TcpExt) {
        (&mut self.entries[idx as usize], &mut self.tcp[idx as usize])
    }

    /// The TCP state of an entry.
    pub fn tcp(&self, idx: u32) -> &TcpExt {
        &self.tcp[idx as usize]
    }

    /// Takes a free slot for a new, unconfirmed entry; `None` when the table is full.
    pub fn alloc(&mut self, orig: &Tuple, reply: &Tuple) -> Option<u32> {
        if self.count >= self.capacity {
            return None;
        }
        let entry = Entry {
            keys: [Key::of(orig), Key::of(reply)],
            proto: orig.proto,
            bits: bits::USED,
            ..Entry::default()
        };
        let idx = if self.free != NIL {
            let idx = self.free;
            self.free = self.links[idx as usize][0].next;
            self.entries[idx as usize] = entry;
            self.links[idx as usize] = [Link::default(); 2];
            self.tcp[idx as usize] = TcpExt::default();
            idx
        } else {
            // Within the capacity reserved at construction: no reallocation.
            self.entries.push(entry);
            self.links.push([Link::default(); 2]);
            self.tcp.push(TcpExt::default());
            self.entries.len() as u32 - 1
        };
        self.count += 1;
        Some(idx)
    }

    /// Links a new entry into both chains (confirmation).
    pub fn link(&mut self, idx: u32) {
        for dir in 0..2 {
            self.push_front(idx, dir);
        }
        self.entries[idx as usize].bits |= bits::CONFIRMED;
    }

    /// Links one direction of an entry at the head of its chain (`hlist_nulls_add_head`).
    fn push_front(&mut self, idx: u32, dir: usize) {
        let (b, tag) = self.place(&self.entries[idx as usize].tuple(dir));
        let bucket = &mut self.buckets[b as usize];
        let next = bucket.nodes[0];
        bucket.tags.copy_within(..WAYS - 1, 1);
        bucket.nodes.copy_within(..WAYS - 1, 1);
        bucket.tags[0] = tag as u16;
        bucket.nodes[0] = idx << 1 | dir as u32;
        self.links[idx as usize][dir] = Link { tag, next };
    }

    /// The link of a chain node.
    fn node_link(&self, node: u32) -> &Link {
        &self.links[(node >> 1) as usize][(node & 1) as usize]
    }

    /// The link of a chain node, to change it.
    fn link_of(&mut self, node: u32) -> &mut Link {
        &mut self.links[(node >> 1) as usize][(node & 1) as usize]
    }

    fn unlink_dir(&mut self, idx: u32, dir: usize) {
        let node = idx << 1 | dir as u32;
        let b = self.bucket_of(&self.entries[idx as usize].tuple(dir)) as usize;
        let after = self.links[idx as usize][dir].next;
        let bucket = self.buckets[b];
        let Some(at) = bucket.nodes.iter().position(|&n| n == node) else {
            // Past the nodes the bucket keeps: only a link changes.
            let mut cur = bucket.nodes[WAYS - 1];
            while cur != NIL {
                let link = self.link_of(cur);
                if link.next == node {
                    link.next = after;
                    return;
                }
                cur = link.next;
            }
            return;
        };
        if at > 0 {
            self.link_of(bucket.nodes[at - 1]).next = after;
        }
        // The bucket keeps the chain's first nodes: close the gap and take in the node that
        // now comes last of those kept.
        let last = if at == WAYS - 1 {
            after
        } else if bucket.nodes[WAYS - 1] == NIL {
            NIL
        } else {
            self.node_link(bucket.nodes[WAYS - 1]).next
        };
        let last_tag = if last == NIL {
            0
        } else {
            self.node_link(last).tag as u16
        };
        let bucket = &mut self.buckets[b];
        bucket.tags.copy_within(at + 1.., at);
        bucket.nodes.copy_within(at + 1.., at);
        bucket.tags[WAYS - 1] = last_tag;
        bucket.nodes[WAYS - 1] = last;
    }

    /// Takes a confirmed entry out of the hash (`nf_ct_kill`): no lookup finds it any more,
    /// but the slot stays in use (marked [`bits::DYING`]) until [`Table::free`].
    pub fn unlink(&mut self, idx: u32) {
        let e = &self.entries[idx as usize];
        if !e.has(bits::USED) {
            return;
        }
        if e.has(bits::CONFIRMED) {
            self.unlink_dir(idx, 0);
            self.unlink_dir(idx, 1);
        }
        let e = &mut self.entries[idx as usize];
        e.bits = (e.bits & !bits::CONFIRMED) | bits::DYING;
    }

    /// Frees an entry (unlinking it first if it was confirmed).
    pub fn free(&mut self, idx: u32) {
        let e = &self.entries[idx as usize];
        if !e.has(bits::USED) {
            return;
        }
        if e.has(bits::CONFIRMED) {
            self.unlink_dir(idx, 0);
            self.unlink_dir(idx, 1);
        }
        self.entries[idx as usize].bits = 0;
        self.links[idx as usize] = [
            Link {
                tag: 0,
                next: self.free,
            },
            Link::default(),
        ];
        self.free = idx;
        self.count -= 1;
    }

    /// Changes the REPLY tuple of an unconfirmed entry (a NAT binding).
    pub fn set_reply(&mut self, idx: u32, reply: &Tuple) {
        debug_assert!(!self.entries[idx as usize].has(bits::CONFIRMED));
        self.entries[idx as usize].keys[1] = Key::of(reply);
    }

    /// Finds the confirmed entry holding `t` in either direction: (index, direction).
    pub fn lookup(&self, t: &Tuple) -> Option<(u32, usize)> {
        self.lookup_except(t, &[])
    }

    /// [`Table::lookup`] that does not see the entries in `skip` (entries another CPU confirmed
    /// after this packet's lookup began: see [`super::Conntrack::hide`]).
    pub fn lookup_except(&self, t: &Tuple, skip: &[u32]) -> Option<(u32, usize)> {
        let key = Key::of(t);
        let (b, tag) = self.place(t);
        // A node whose tag matched: its entry holds `t` in its direction (and is not skipped).
        let found = |node: u32| {
            let (ci, cd) = (node >> 1, (node & 1) as usize);
            let e = &self.entries[ci as usize];
            (e.proto == t.proto && e.keys[cd] == key && !skip.contains(&ci)).then_some((ci, cd))
        };
        let bucket = &self.buckets[b as usize];
        for (&node, &node_tag) in bucket.nodes.iter().zip(&bucket.tags) {
            if node == NIL {
                return None;
            }
            if node_tag == tag as u16 {
                if let Some(hit) = found(node) {
                    return Some(hit);
                }
            }
        }
        let mut cur = self.node_link(bucket.nodes[WAYS - 1]).next;
        while cur != NIL {
            let link = self.node_link(cur);
            if link.tag == tag {
                if let Some(hit) = found(cur) {
                    return Some(hit);
                }
            }
            cur = link.next;
        }
        None
    }

    /// Confirms an entry by its REPLY tuple only (`nf_ct_resolve_clash_harder`: the ORIGINAL
    /// tuple is another entry's), marked [`bits::NAT_CLASH`].
    pub fn link_reply_only(&mut self, idx: u32) {
        self.links[idx as usize][0] = Link { tag: 0, next: NIL };
        self.push_front(idx, 1);
        self.entries[idx as usize].bits |= bits::CONFIRMED | bits::NAT_CLASH;
    }

    /// The entries (index) linked in bucket `b`, each once, in chain order.
    pub fn bucket_entries(&self, b: u32, out: &mut [u32; 64]) -> usize {
        let mut n = 0;
        let mut cur = self.buckets[b as usize].nodes[0];
        while cur != NIL && n < out.len() {
            let ci = cur >> 1;
            if !out[..n].contains(&ci) {
                out[n] = ci;
                n += 1;
            }
            cur = self.links[ci as usize][(cur & 1) as usize].next;
        }
        n
    }

    /// Indexes of every entry in use, in slot order.
    pub fn used(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has(bits::USED))
            .map(|(i, _)| i as u32)
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.links.clear();
        self.tcp.clear();
        self.free = NIL;
        self.buckets.iter_mut().for_each(|b| *b = Bucket::EMPTY);
        self.count = 0;
    }

    /// Changes the capacity, keeping the entries (like writing `nf_conntrack_max`: the entries
    /// above a smaller maximum stay until they expire; new ones are refused meanwhile).
    pub fn set_capacity(&mut self, capacity: u32) {
        self.capacity = capacity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(i: u16) -> Tuple {
        Tuple {
            src: Ipv4Address::new(10, 0, 0, 1),
            dst: Ipv4Address::new(10, 0, 0, 2),
            sport: i,
            dport: 80,
            proto: 6,
        }
    }

    #[test]
    fn entries_are_64_bytes() {
        assert_eq!(core::mem::size_of::<Entry>(), 64);
    }

    #[test]
    fn buckets_are_64_bytes() {
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
    }

    #[test]
    fn both_directions_are_found_and_freed() {
        let mut tab = Table::new(4, 2, 7);
        let a = tab.alloc(&t(1), &t(1).invert()).unwrap();
        assert_eq!(
            tab.lookup(&t(1)),
            None,
            "unconfirmed entries are not in the hash"
        );
        tab.link(a);
        assert_eq!(tab.lookup(&t(1)), Some((a, 0)));
        assert_eq!(tab.lookup(&t(1).invert()), Some((a, 1)));
        let b = tab.alloc(&t(2), &t(2).invert()).unwrap();
        tab.link(b);
        tab.free(a);
        assert_eq!(tab.lookup(&t(1)), None);
        assert_eq!(tab.lookup(&t(2).invert()), Some((b, 1)));
        assert_eq!(tab.count(), 1);
    }

    #[test]
    fn capacity_is_fixed_and_slots_are_reused() {
        let mut tab = Table::new(2, 1, 0);
        let a = tab.alloc(&t(1), &t(1).invert()).unwrap();
        let _b = tab.alloc(&t(2), &t(2).invert()).unwrap();
        assert!(tab.alloc(&t(3), &t(3).invert()).is_none());
        tab.free(a);
        assert_eq!(tab.alloc(&t(3), &t(3).invert()), Some(a));
    }

    #[test]
    fn nat_binding_changes_the_reply_key() {
        let mut tab = Table::new(2, 8, 0);
        let a = tab.alloc(&t(1), &t(1).invert()).unwrap();
        let mut r = t(1).invert();
        r.dst = Ipv4Address::new(192, 168, 1, 100);
        tab.set_reply(a, &r);
        tab.link(a);
        assert_eq!(tab.lookup(&r), Some((a, 1)));
        assert_eq!(tab.lookup(&t(1).invert()), None);
    }

    /// The nodes of bucket `b`'s chain, walked by the links alone.
    fn chain(tab: &Table, b: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = tab.buckets[b].nodes[0];
        while cur != NIL {
            out.push(cur);
            cur = tab.links[(cur >> 1) as usize][(cur & 1) as usize].next;
        }
        out
    }

    proptest::proptest! {
        /// Against a model (a list per bucket, newest first, as `hlist_nulls_add_head` keeps
        /// it), through links and frees in any order, some as reply-only: every chain holds
        /// what the model holds in the model's order, each bucket's copy is its chain's first
        /// nodes with their tags, and a lookup finds every linked tuple.
        #[test]
        fn buckets_keep_the_first_nodes_of_their_chains(
            ops in proptest::collection::vec((0u16..40, 0u8..4), 1..300),
            buckets in 1u32..6,
        ) {
            let mut tab = Table::new(64, buckets, 3);
            let mut model: Vec<Vec<u32>> = alloc::vec![Vec::new(); buckets as usize];
            let mut live: alloc::collections::BTreeMap<u16, u32> = Default::default();
            for (port, op) in ops {
                if let Some(idx) = live.remove(&port) {
                    tab.free(idx);
                    for chain in &mut model {
                        chain.retain(|n| n >> 1 != idx);
                    }
                    continue;
                }
                let orig = t(port);
                let mut reply = orig.invert();
                reply.dport = 1000 + port;
                let idx = tab.alloc(&orig, &reply).unwrap();
                let dirs: &[usize] = if op == 0 {
                    tab.link_reply_only(idx);
                    &[1]
                } else {
                    tab.link(idx);
                    &[0, 1]
                };
                for &dir in dirs {
                    let b = tab.bucket_of(&tab.get(idx).tuple(dir)) as usize;
                    model[b].insert(0, idx << 1 | dir as u32);
                }
                live.insert(port, idx);
            }
            for (b, want) in model.iter().enumerate() {
                let got = chain(&tab, b);
                proptest::prop_assert_eq!(&got, want);
                let bucket = tab.buckets[b];
                for (i, &node) in bucket.nodes.iter().enumerate() {
                    proptest::prop_assert_eq!(node, got.get(i).copied().unwrap_or(NIL));
                    if node != NIL {
                        let link = tab.links[(node >> 1) as usize][(node & 1) as usize];
                        proptest::prop_assert_eq!(bucket.tags[i], link.tag as u16);
                    }
                }
            }
            for (&port, &idx) in &live {
                let e = *tab.get(idx);
                if !e.has(bits::NAT_CLASH) {
                    proptest::prop_assert_eq!(tab.lookup(&t(port)), Some((idx, 0)));
                }
                proptest::prop_assert_eq!(tab.lookup(&e.tuple(1)), Some((idx, 1)));
            }
        }
    }
}
