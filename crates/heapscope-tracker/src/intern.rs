//! Interned tracebacks: identical stacks are stored once and named by a dense `u32` id.
//!
//! Frames live in one arena; the index is a `hashbrown::HashTable` of ids keyed by the hash the
//! stack walk already computed, so interning a known stack costs one probe and one slice compare.

use hashbrown::HashTable;

use crate::stack::{frames_eq, RawFrame};

/// Id of an interned traceback.
pub type TbId = u32;

/// One interned traceback: where its frames are in the arena.
#[derive(Debug, Clone, Copy)]
pub struct TbRecord {
    start: u32,
    len: u16,
    /// Frames the stack had, including those the limit cut off.
    pub total_nframe: u16,
    /// OS thread id in profile mode, 0 otherwise (so threads share tracebacks).
    pub thread: u64,
    hash: u64,
}

/// The traceback interner.
#[derive(Default)]
pub struct Interner {
    arena: Vec<RawFrame>,
    records: Vec<TbRecord>,
    index: HashTable<TbId>,
    /// The last traceback interned: loops allocate from the same place again and again, and
    /// checking it first saves the probe.
    last: Option<TbId>,
    /// Recently seen tracebacks by the low bits of their hash: a loop that alternates between
    /// a few allocation sites finds each here without probing the index (perf: the index
    /// probe was a third of `record` on strings.py at limit 1).
    recent: Recent,
}

const RECENT: usize = 256;

struct Recent(Box<[TbId; RECENT]>);

impl Default for Recent {
    fn default() -> Self {
        Recent(Box::new([TbId::MAX; RECENT]))
    }
}

impl Interner {
    /// The id of this traceback, interning it if new; `true` if it was new.
    #[inline]
    pub fn intern(
        &mut self,
        frames: &[RawFrame],
        total_nframe: u16,
        thread: u64,
        hash: u64,
    ) -> (TbId, bool) {
        let hash = hash ^ thread;
        let (arena, records) = (&self.arena, &self.records);
        let same = |id: TbId| {
            let r = &records[id as usize];
            r.hash == hash
                && r.total_nframe == total_nframe
                && r.thread == thread
                && usize::from(r.len) == frames.len()
                && frames_eq(
                    &arena[r.start as usize..r.start as usize + frames.len()],
                    frames,
                )
        };
        if let Some(id) = self.last.filter(|&id| same(id)) {
            return (id, false);
        }
        let slot = (hash >> 32) as usize % RECENT;
        let seen = self.recent.0[slot];
        if seen != TbId::MAX && same(seen) {
            self.last = Some(seen);
            return (seen, false);
        }
        if let Some(&id) = self.index.find(hash, |&id| same(id)) {
            self.last = Some(id);
            self.recent.0[slot] = id;
            return (id, false);
        }
        let id = self.records.len() as TbId;
        self.records.push(TbRecord {
            start: self.arena.len() as u32,
            len: frames.len() as u16,
            total_nframe,
            thread,
            hash,
        });
        self.arena.extend_from_slice(frames);
        let records = &self.records;
        self.index
            .insert_unique(hash, id, |&i| records[i as usize].hash);
        self.recent.0[slot] = id;
        self.last = Some(id);
        (id, true)
    }

    /// Number of interned tracebacks.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The record of an interned traceback.
    pub fn record(&self, id: TbId) -> &TbRecord {
        &self.records[id as usize]
    }

    /// The frames of an interned traceback, most recent first.
    pub fn frames(&self, id: TbId) -> &[RawFrame] {
        let r = &self.records[id as usize];
        &self.arena[r.start as usize..r.start as usize + usize::from(r.len)]
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.records.clear();
        self.index.clear();
        self.last = None;
        self.recent = Recent::default();
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.arena.capacity() * size_of::<RawFrame>()
            + self.records.capacity() * size_of::<TbRecord>()
            + self.index.capacity() * (size_of::<TbId>() + 1)
            + RECENT * size_of::<TbId>()
    }
}
