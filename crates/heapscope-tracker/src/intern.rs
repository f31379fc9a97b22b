//! Interned tracebacks: identical stacks are stored once and named by a dense `u32` id.
//!
//! Frames live in a tree: one node per distinct (parent node, frame), the root side being the
//! outermost frame a traceback keeps. A traceback is its innermost node plus a few words, so
//! memory grows with distinct frames and shared prefixes (the import machinery, framework
//! layers), not with stacks x depth.
//!
//! The hot path does not walk the tree: a stack is found by a 128-bit identity, the 64-bit hash
//! the stack walk folded in and a second, independent 64-bit hash of the frames computed here
//! with one wide multiply per two frames (the frames are in L1 after the walk). Two stacks that
//! differ but agree on both hashes, the depth and the total would be taken for one another (the
//! owner, thread and domain, is folded into the first hash: the same frames of two owners always
//! differ there): a chance of about 2^-128 per pair, far below that of a memory error.
//!
//! Frames name code objects by address, and a code object's address is reused once it dies.
//! When one dies its nodes become tombstones (`codes.rs`) and the interner's epoch moves on: a
//! traceback found by its hashes that was last checked in an earlier epoch is compared with the
//! stack once, along its nodes, before it is trusted again; one that passes through a tombstone
//! is taken out of the index, and the stack gets a traceback of its own.
//!
//! Tracebacks can be evicted (the profiler's drain does it for those that hold nothing and were
//! written: `State::sweep`): their slots, and the nodes no other traceback or node needs
//! (reference counts), are reused. So the memory of a long run follows what is alive and
//! recent, not every stack ever seen.

use hashbrown::HashTable;

use crate::stack::{mix, Check, RawFrame};

/// Id of an interned traceback.
pub type TbId = u32;

/// Id of a node of the frame tree.
pub type NodeId = u32;

/// The parent of an outermost frame.
pub const NO_PARENT: NodeId = NodeId::MAX;

/// The parent word of a free node slot.
const FREE_NODE: NodeId = NodeId::MAX - 1;

/// One frame of the tree: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Node {
    code: usize,
    offset: i32,
    parent: NodeId,
}

impl Node {
    fn frame(&self) -> RawFrame {
        RawFrame {
            code: self.code as *mut std::ffi::c_void,
            offset: self.offset as isize,
        }
    }
}

/// One interned traceback: 32 bytes.
#[derive(Debug, Clone, Copy)]
pub struct TbRecord {
    /// Innermost frame.
    leaf: NodeId,
    len: u16,
    /// Frames the stack had, including those the limit cut off.
    pub total_nframe: u16,
    /// Index of the owner (thread and domain, see [`Interner::owner`]) in the owner table.
    owner: u32,
    /// The interner's epoch when the frames were last known to be alive.
    epoch: u32,
    /// The walk's hash, the owner folded in.
    hash: u64,
    check: u64,
}

const _: () = assert!(size_of::<TbRecord>() == 32);

/// Owners (OS thread id in profile mode, 0 otherwise, and the domain in the high half): few
/// distinct values, so a traceback names its owner by a 4-byte index.
#[derive(Default)]
struct Owners {
    keys: Vec<u64>,
    index: hashbrown::HashMap<u64, u32>,
    /// The owner interned last and its index.
    last: Option<(u64, u32)>,
}

impl Owners {
    fn id(&mut self, owner: u64) -> u32 {
        if let Some((key, id)) = self.last {
            if key == owner {
                return id;
            }
        }
        let next = self.keys.len() as u32;
        let id = *self.index.entry(owner).or_insert(next);
        if id == next {
            self.keys.push(owner);
        }
        self.last = Some((owner, id));
        id
    }
}

/// The traceback interner.
#[derive(Default)]
pub struct Interner {
    nodes: Vec<Node>,
    /// Per node: the nodes whose parent it is plus the tracebacks whose innermost node it is.
    refs: Vec<u32>,
    node_index: HashTable<NodeId>,
    /// Node slots free for reuse.
    free_nodes: Vec<NodeId>,
    records: Vec<TbRecord>,
    index: HashTable<TbId>,
    /// Traceback slots free for reuse (their records have `len == 0`).
    free_tbs: Vec<TbId>,
    /// The last traceback interned: loops allocate from the same place again and again, and
    /// checking it first saves the probe.
    last: Option<TbId>,
    /// Recently seen tracebacks by the low bits of their hash: a loop that alternates between
    /// a few allocation sites finds each here without probing the index (perf: the index
    /// probe was a third of `record` on strings.py at limit 1).
    recent: Recent,
    /// Nodes made by the last `intern` that returned a new traceback.
    fresh: Vec<NodeId>,
    /// Moves on whenever a code object that nodes name dies.
    epoch: u32,
    /// Moves on at every `clear`: ids given out before mean nothing after.
    clears: u64,
    owners: Owners,
    /// The frames of the last traceback inserted, root first, with their nodes: a new
    /// traceback mostly shares a long root-side prefix with the one before (the same import
    /// chain or framework layers), whose nodes are taken from here instead of one index probe
    /// each (`perf` on `pip list`, 64 frames: inserting was 10 % of the run). Emptied when a
    /// node's frame changes (a dying code object's tombstones).
    path: Vec<(RawFrame, NodeId)>,
}

const RECENT: usize = 256;

struct Recent(Box<[TbId; RECENT]>);

impl Default for Recent {
    fn default() -> Self {
        Recent(Box::new([TbId::MAX; RECENT]))
    }
}

/// The second hash of a stack ([`Check`]), for frames no walk folded it in for.
#[inline(always)]
pub fn check_hash(frames: &[RawFrame]) -> u64 {
    Check::of(frames)
}

fn node_hash(parent: NodeId, frame: RawFrame) -> u64 {
    mix(
        mix(u64::from(parent), frame.code as u64),
        frame.offset as u64,
    )
}

impl Interner {
    /// The id of this traceback, interning it if new; `true` if it was new (its new nodes are
    /// then in [`Interner::fresh`]). `hash` is the walk's, `check` is [`check_hash`] of `frames`.
    #[inline(always)]
    pub fn intern(
        &mut self,
        frames: &[RawFrame],
        total_nframe: u16,
        thread: u64,
        hash: u64,
        check: u64,
    ) -> (TbId, bool) {
        let hash = hash ^ thread;
        if let Some(id) = self.last {
            let r = &self.records[id as usize];
            if r.hash == hash
                && r.check == check
                && r.epoch == self.epoch
                && r.total_nframe == total_nframe
                && usize::from(r.len) == frames.len()
            {
                return (id, false);
            }
        }
        self.find_or_insert(frames, total_nframe, thread, hash, check)
    }

    /// The owner (thread and domain) of an interned traceback.
    pub fn owner(&self, id: TbId) -> u64 {
        self.owners.keys[self.records[id as usize].owner as usize]
    }

    #[inline(always)]
    fn find_or_insert(
        &mut self,
        frames: &[RawFrame],
        total_nframe: u16,
        thread: u64,
        hash: u64,
        check: u64,
    ) -> (TbId, bool) {
        let records = &self.records;
        let same = |id: TbId| {
            let r = &records[id as usize];
            r.hash == hash
                && r.check == check
                && r.total_nframe == total_nframe
                && usize::from(r.len) == frames.len()
        };
        let slot = (hash >> 32) as usize % RECENT;
        let found = if let Some(id) = self.last.filter(|&id| same(id)) {
            Some(id)
        } else {
            let seen = self.recent.0[slot];
            if seen != TbId::MAX && same(seen) {
                Some(seen)
            } else {
                self.index.find(hash, |&id| same(id)).copied()
            }
        };
        if let Some(id) = found {
            if self.records[id as usize].epoch == self.epoch || self.still_alive(id, frames) {
                self.last = Some(id);
                self.recent.0[slot] = id;
                return (id, false);
            }
        }
        let id = self.insert(frames, total_nframe, thread, hash, check);
        self.recent.0[slot] = id;
        self.last = Some(id);
        (id, true)
    }

    /// A code object died since the traceback was last checked: true if its frames are still
    /// the stack's (none is a tombstone), else it is taken out of the index for good.
    #[cold]
    fn still_alive(&mut self, id: TbId, frames: &[RawFrame]) -> bool {
        if self.frames(id).eq(frames.iter().copied()) {
            self.records[id as usize].epoch = self.epoch;
            return true;
        }
        let hash = self.records[id as usize].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == id) {
            entry.remove();
        }
        self.last = None;
        for seen in self.recent.0.iter_mut() {
            if *seen == id {
                *seen = TbId::MAX;
            }
        }
        false
    }

    /// A code object that nodes name has died (its nodes are tombstones now).
    pub fn on_code_death(&mut self) {
        self.path.clear();
        self.epoch = self.epoch.wrapping_add(1);
    }

    #[cold]
    fn insert(
        &mut self,
        frames: &[RawFrame],
        total_nframe: u16,
        thread: u64,
        hash: u64,
        check: u64,
    ) -> TbId {
        self.fresh.clear();
        let n = frames.len();
        let shared = self
            .path
            .iter()
            .zip(frames.iter().rev())
            .take_while(|((known, _), frame)| known == *frame)
            .count();
        self.path.truncate(shared);
        let mut parent = self.path.last().map_or(NO_PARENT, |&(_, node)| node);
        for &frame in frames[..n - shared].iter().rev() {
            parent = self.node(parent, frame);
            self.path.push((frame, parent));
        }
        let owner = self.owners.id(thread);
        let record = TbRecord {
            leaf: parent,
            len: frames.len() as u16,
            total_nframe,
            owner,
            epoch: self.epoch,
            hash,
            check,
        };
        self.refs[parent as usize] += 1;
        let id = if let Some(id) = self.free_tbs.pop() {
            self.records[id as usize] = record;
            id
        } else {
            self.records.push(record);
            (self.records.len() - 1) as TbId
        };
        let records = &self.records;
        self.index
            .insert_unique(hash, id, |&i| records[i as usize].hash);
        id
    }

    /// The node for `frame` under `parent`, made if new.
    fn node(&mut self, parent: NodeId, frame: RawFrame) -> NodeId {
        let hash = node_hash(parent, frame);
        let nodes = &self.nodes;
        let found = self.node_index.find(hash, |&n| {
            let node = &nodes[n as usize];
            node.parent == parent
                && node.code == frame.code as usize
                && node.offset as isize == frame.offset
        });
        if let Some(&n) = found {
            return n;
        }
        let node = Node {
            code: frame.code as usize,
            offset: frame.offset as i32,
            parent,
        };
        let n = if let Some(n) = self.free_nodes.pop() {
            self.nodes[n as usize] = node;
            self.refs[n as usize] = 0;
            n
        } else {
            self.nodes.push(node);
            self.refs.push(0);
            (self.nodes.len() - 1) as NodeId
        };
        if parent != NO_PARENT {
            self.refs[parent as usize] += 1;
        }
        let nodes = &self.nodes;
        self.node_index.insert_unique(hash, n, |&m| {
            let node = &nodes[m as usize];
            node_hash(node.parent, node.frame())
        });
        self.fresh.push(n);
        n
    }

    /// The nodes made by the last `intern` that returned a new traceback.
    pub fn fresh(&self) -> &[NodeId] {
        &self.fresh
    }

    /// (tracebacks, nodes, distinct (innermost node, depth, owner) among the tracebacks).
    pub fn shape(&self) -> (usize, usize, usize) {
        let distinct: std::collections::HashSet<(NodeId, u16, u32)> = self
            .records
            .iter()
            .filter(|r| r.len != 0)
            .map(|r| (r.leaf, r.len, r.owner))
            .collect();
        (
            self.records.len() - self.free_tbs.len(),
            self.nodes.len() - self.free_nodes.len(),
            distinct.len(),
        )
    }

    /// Number of traceback slots (ids are below it; evicted slots among them are free).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Number of node slots (ids are below it).
    pub fn node_slots(&self) -> usize {
        self.nodes.len()
    }

    /// For every slot in id order, true if it holds a traceback (not evicted).
    pub fn live_slots(&self) -> impl Iterator<Item = bool> + '_ {
        self.records.iter().map(|r| r.len != 0)
    }

    /// True if the slot holds a traceback (not evicted).
    pub fn is_live(&self, id: TbId) -> bool {
        self.records.get(id as usize).is_some_and(|r| r.len != 0)
    }

    /// The innermost node of a traceback.
    pub fn leaf(&self, id: TbId) -> NodeId {
        self.records[id as usize].leaf
    }

    /// The parent of a node ([`NO_PARENT`] for an outermost frame).
    pub fn node_parent(&self, node: NodeId) -> NodeId {
        self.nodes[node as usize].parent
    }

    /// Forget a traceback: its slot and the nodes nothing else needs become free for reuse
    /// (`freed` hears of each such node, with the frame it had). The caller guarantees no block and no pending
    /// event names it. The caches of recent tracebacks need no change: every hit is checked
    /// against the record (hashes, depth), which a freed or reused slot fails.
    pub fn evict(&mut self, id: TbId, freed: &mut impl FnMut(NodeId, RawFrame)) {
        let r = self.records[id as usize];
        if r.len == 0 {
            return;
        }
        if let Ok(entry) = self.index.find_entry(r.hash, |&i| i == id) {
            entry.remove();
        }
        self.records[id as usize].len = 0;
        self.free_tbs.push(id);
        let mut node = r.leaf;
        while node != NO_PARENT {
            let refs = &mut self.refs[node as usize];
            *refs -= 1;
            if *refs != 0 {
                break;
            }
            let n = self.nodes[node as usize];
            let hash = node_hash(n.parent, n.frame());
            if let Ok(entry) = self.node_index.find_entry(hash, |&m| m == node) {
                entry.remove();
            }
            self.nodes[node as usize].parent = FREE_NODE;
            self.free_nodes.push(node);
            // The insert path's cache names nodes by slot: one of them may be gone.
            self.path.clear();
            freed(node, n.frame());
            node = n.parent;
        }
    }

    /// The record of an interned traceback.
    pub fn record(&self, id: TbId) -> &TbRecord {
        &self.records[id as usize]
    }

    /// The frames of an interned traceback, most recent first.
    pub fn frames(&self, id: TbId) -> impl Iterator<Item = RawFrame> + '_ {
        let r = &self.records[id as usize];
        let mut node = r.leaf;
        (0..r.len).map(move |_| {
            let n = &self.nodes[node as usize];
            node = n.parent;
            n.frame()
        })
    }

    /// The frame of a node.
    pub fn node_frame(&self, node: NodeId) -> RawFrame {
        self.nodes[node as usize].frame()
    }

    /// Replace the frame of a node (a dying code object's tombstone). The node leaves the index
    /// (no live frame can match it any more); the tracebacks through it keep it.
    pub fn set_node_frame(&mut self, node: NodeId, frame: RawFrame) {
        self.path.clear();
        // Out of the index: no live frame can match a tombstone, and its entry's hash would
        // no longer be the one a resize or an eviction computes from the node.
        let old = self.nodes[node as usize];
        if let Ok(entry) = self
            .node_index
            .find_entry(node_hash(old.parent, old.frame()), |&m| m == node)
        {
            entry.remove();
        }
        let n = &mut self.nodes[node as usize];
        n.code = frame.code as usize;
        n.offset = frame.offset as i32;
    }

    /// Forget everything (the epoch goes on, so no cache can outlive the clear unnoticed).
    pub fn clear(&mut self) {
        let epoch = self.epoch.wrapping_add(1);
        let clears = self.clears + 1;
        *self = Interner {
            epoch,
            clears,
            ..Interner::default()
        };
    }

    /// How many times the interner was cleared.
    pub fn clears(&self) -> u64 {
        self.clears
    }

    /// Bytes of memory held.
    #[cfg(test)]
    pub fn memory(&self) -> usize {
        let mut parts = Vec::new();
        self.memory_parts(&mut parts);
        parts.iter().map(|&(_, b)| b).sum()
    }

    /// Bytes of memory held, per structure.
    pub fn memory_parts(&self, out: &mut Vec<(&'static str, usize)>) {
        out.push((
            "interner.nodes",
            self.nodes.capacity() * size_of::<Node>()
                + self.refs.capacity() * size_of::<u32>()
                + self.free_nodes.capacity() * size_of::<NodeId>(),
        ));
        out.push((
            "interner.path",
            self.path.capacity() * size_of::<(RawFrame, NodeId)>(),
        ));
        out.push((
            "interner.node_index",
            self.node_index.capacity() * (size_of::<NodeId>() + 1),
        ));
        out.push((
            "interner.records",
            self.records.capacity() * size_of::<TbRecord>()
                + self.free_tbs.capacity() * size_of::<TbId>(),
        ));
        out.push((
            "interner.index",
            self.index.capacity() * (size_of::<TbId>() + 1),
        ));
        out.push((
            "interner.fresh+recent",
            self.fresh.capacity() * size_of::<NodeId>() + RECENT * size_of::<TbId>(),
        ));
        out.push((
            "interner.owners",
            self.owners.keys.capacity() * size_of::<u64>()
                + self.owners.index.capacity() * (size_of::<(u64, u32)>() + 1),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn frame(code: usize, offset: isize) -> RawFrame {
        RawFrame {
            code: (code * 16) as *mut std::ffi::c_void,
            offset,
        }
    }

    fn walk_hash(frames: &[RawFrame], total: u16) -> u64 {
        let h = frames
            .iter()
            .fold(0, |h, f| crate::stack::chain_step(h, f.code, f.offset));
        mix(h, u64::from(total))
    }

    proptest! {
        /// The interner agrees with a plain map from stacks to ids, gives every stack back,
        /// and keeps one node per distinct root-side prefix (few frame values, so stacks
        /// share prefixes often, as the insert path's cache of the last path expects).
        #[test]
        fn agrees_with_a_map_of_stacks(
            stacks in prop::collection::vec(
                (prop::collection::vec((0usize..4, -2isize..6), 1..12), 0u64..3),
                1..300,
            )
        ) {
            let mut interner = Interner::default();
            let mut model: HashMap<(Vec<RawFrame>, u64), TbId> = HashMap::new();
            for (stack, thread) in &stacks {
                let frames: Vec<RawFrame> = stack.iter().map(|&(c, o)| frame(c, o)).collect();
                let total = frames.len() as u16 + 1;
                let (id, new) =
                    interner.intern(&frames, total, *thread, walk_hash(&frames, total), check_hash(&frames));
                let key = (frames.clone(), *thread);
                if let Some(&known) = model.get(&key) {
                    prop_assert_eq!((id, new), (known, false));
                } else {
                    prop_assert!(new);
                    prop_assert_eq!(id as usize, model.len());
                    model.insert(key, id);
                }
            }
            for ((frames, thread), id) in &model {
                prop_assert_eq!(&interner.frames(*id).collect::<Vec<_>>(), frames);
                prop_assert_eq!(interner.owner(*id), *thread);
            }
            let prefixes: std::collections::HashSet<Vec<RawFrame>> = model
                .keys()
                .flat_map(|(frames, _)| {
                    let root_first: Vec<RawFrame> = frames.iter().rev().copied().collect();
                    (1..=root_first.len()).map(move |k| root_first[..k].to_vec())
                })
                .collect();
            prop_assert_eq!(interner.nodes.len(), prefixes.len());
        }
    }

    proptest! {
        /// With evictions: the interner agrees with a plain map of the stacks not evicted
        /// (an evicted stack comes back as new), frees exactly the nodes no remaining stack
        /// needs, and reuses the slots it freed.
        #[test]
        fn evictions_agree_with_a_map_of_the_remaining_stacks(
            ops in prop::collection::vec(
                prop_oneof![
                    3 => prop::collection::vec((0usize..4, -2isize..6), 1..10)
                        .prop_map(Some),
                    1 => Just(None),
                ],
                1..300,
            ),
            pick in 0usize..1000,
        ) {
            let mut interner = Interner::default();
            let mut model: HashMap<Vec<RawFrame>, TbId> = HashMap::new();
            let mut most_slots = 0;
            for (step, op) in ops.iter().enumerate() {
                match op {
                    Some(stack) => {
                        let frames: Vec<RawFrame> =
                            stack.iter().map(|&(c, o)| frame(c, o)).collect();
                        let total = frames.len() as u16;
                        let (id, new) =
                            interner.intern(&frames, total, 0, walk_hash(&frames, total), check_hash(&frames));
                        if let Some(&known) = model.get(&frames) {
                            prop_assert_eq!((id, new), (known, false));
                        } else {
                            prop_assert!(new);
                            prop_assert!(!model.values().any(|&v| v == id));
                            model.insert(frames, id);
                        }
                    }
                    None if !model.is_empty() => {
                        let mut keys: Vec<_> = model.keys().cloned().collect();
                        keys.sort_by_key(|k| model[k]);
                        let victim = keys[(pick + step) % keys.len()].clone();
                        let id = model.remove(&victim).unwrap_or(TbId::MAX);
                        interner.evict(id, &mut |_, _| {});
                        prop_assert!(!interner.is_live(id));
                    }
                    None => {}
                }
                most_slots = most_slots.max(model.len());
                prop_assert!(interner.len() <= most_slots);
            }
            for (frames, id) in &model {
                prop_assert!(interner.is_live(*id));
                prop_assert_eq!(&interner.frames(*id).collect::<Vec<_>>(), frames);
            }
            let prefixes: std::collections::HashSet<Vec<RawFrame>> = model
                .keys()
                .flat_map(|frames| {
                    let root_first: Vec<RawFrame> = frames.iter().rev().copied().collect();
                    (1..=root_first.len()).map(move |k| root_first[..k].to_vec())
                })
                .collect();
            prop_assert_eq!(interner.shape().1, prefixes.len());
        }
    }

    #[test]
    fn stacks_deeper_than_the_limit_share_their_kept_frames() {
        // A recursion 1,000 deep seen with a limit of 64: each depth is a distinct traceback
        // (its total differs) but they all keep the same 64 frames, stored once.
        let mut interner = Interner::default();
        let frames: Vec<RawFrame> = (0..64).map(|_| frame(1, 10)).collect();
        for total in 64..1000u16 {
            let (id, new) = interner.intern(
                &frames,
                total,
                0,
                walk_hash(&frames, total),
                check_hash(&frames),
            );
            assert!(new);
            assert_eq!(interner.record(id).total_nframe, total);
        }
        assert_eq!(interner.nodes.len(), 64);
    }

    #[test]
    fn memory_grows_with_distinct_frames_not_stacks_times_depth() {
        // One million distinct 64-frame stacks that share a 62-frame prefix: two new nodes
        // each, so about 100 bytes a stack instead of 64 x 16 = 1 KiB.
        let mut interner = Interner::default();
        let prefix: Vec<RawFrame> = (0..62).map(|i| frame(100 + i, 8)).collect();
        let mut frames = vec![frame(0, 0), frame(0, 0)];
        frames.extend_from_slice(&prefix);
        for i in 0..1_000_000usize {
            frames[0] = frame(1 + i % 1000, 2);
            frames[1] = frame(2000 + i / 1000, 4);
            let h = walk_hash(&frames, 64);
            assert!(interner.intern(&frames, 64, 0, h, check_hash(&frames)).1);
        }
        let per_stack = interner.memory() / 1_000_000;
        assert!(per_stack < 110, "{per_stack} bytes per stack");
    }
}
