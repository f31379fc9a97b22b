//! The pooled part of the live table: small blocks, found by their pymalloc pool and their
//! block index in it, with no hashing of the block address and no probing.
//!
//! Why: with one hash entry per block, every free of a block allocated long ago missed the cache
//! twice (hashbrown's control bytes, then the entry), and that was most of the tracer's time
//! (`perf annotate`: ~70% of `remove` on the entry load; records.py spent ~130 ns per
//! allocation in the table). Here a block's figures sit in its pool's record at a fixed slot:
//! the pool number finds the record (recent ones are cached, and pools are few enough for their
//! index to stay in cache), and one 4-byte load finds the figures. Records are created in the
//! order pools are first used, so freeing blocks in the order they were allocated walks the
//! records in order, which the hardware prefetcher follows.
//!
//! pymalloc (CPython 3.10+, 64-bit) carves 16 KiB pools, each serving one size class (a multiple
//! of 16 bytes up to 512), into blocks after a 48-byte header. A record has one slot per block
//! of its pool's class, so it costs 4 bytes per block the pool can hold, whatever the class
//! (a slot per 16 bytes cost up to 128 bytes per 512-byte block). The layout is an assumption
//! about where blocks are, never trusted for correctness: a block whose address is not a block
//! start of its pool's record, or whose class differs from the record's (`PYTHONMALLOC=malloc`,
//! another allocator), goes to the hashed part, and the mapping from address to slot is one to
//! one, so two blocks never share a slot.
//!
//! A slot packs the requested size (10 bits) and the traceback id plus one (22 bits; 0 is an
//! empty slot). A record whose last block goes is retired and its slots kept for the next pool
//! of the same class, lazily: an emptied record stays attached to its pool, and when a new
//! record is needed after the number of records grew by an eighth (at least [`SWEEP_MIN`]) since
//! the last sweep, every empty one is retired. So the records stay within about an eighth of the
//! pools that hold traced blocks, and only creating a record pays for the sweep (amortised O(1)).
//! A pool whose one traced block is freed and replaced over and over (json_roundtrip.py: one
//! allocation in ten on Debian's 3.13) otherwise retired and re-created its record each time,
//! ~180 instructions per such allocation (callgrind). An empty record of another class, in a pool
//! pymalloc gave to a new class, is retired on the spot.
//! of the same class.

use hashbrown::HashTable;

use crate::intern::TbId;

const POOL_BITS: u32 = 14;
const POOL_SIZE: usize = 1 << POOL_BITS;
/// `sizeof(struct pool_header)` rounded up to pymalloc's 16-byte alignment.
const POOL_OVERHEAD: usize = 48;
const ALIGN_SHIFT: u32 = 4;
/// Largest request pymalloc serves (`SMALL_REQUEST_THRESHOLD`).
const SMALL_LIMIT: u64 = 512;
const CLASSES: usize = (SMALL_LIMIT >> ALIGN_SHIFT) as usize;
const SIZE_BITS: u32 = 10;
/// Largest traceback id a slot holds (exclusive): ids are stored plus one.
pub const TB_LIMIT: u64 = (1 << (32 - SIZE_BITS)) - 1;
const NONE: u32 = u32::MAX;

/// Pool numbers of addresses below 2^48 (x86-64 and AArch64 user space) fit 34 bits.
const ADDR_LIMIT: usize = 1 << 48;
const REC_BITS: u32 = 30;

/// The figures of the blocks of one pool (24 bytes besides the slots: the records of sparse
/// pools are a visible share of the tracer's memory).
struct Record {
    /// One per block of the class: `(POOL_SIZE - POOL_OVERHEAD) / block`.
    slots: Box<[u32]>,
    /// `ceil(2^32 / block)`, to divide by the block size.
    magic: u32,
    /// Block size of the pool's class (16..=512).
    block: u16,
    /// Occupied slots (at most 1021).
    live: u16,
}

/// Small blocks by pool and block index.
pub struct Pools {
    /// Pool number (34 bits) and record index (30 bits) in one word.
    index: HashTable<u64>,
    records: Vec<Record>,
    /// Retired records (all slots zero) by class, ready for another pool.
    spare: Vec<Vec<u32>>,
    /// Recently used pools and their records, direct-mapped by pool number (`EMPTY`: none).
    /// A program allocates from a pool per size class at once, so a one-entry cache missed
    /// whenever consecutive blocks differed in class, and each miss probed the index.
    cache: Box<[(u64, u32); CACHE]>,
    /// Number of records from which creating one first retires the empty ones.
    sweep_at: usize,
    len: usize,
}

/// Fewest records before empty ones are swept.
const SWEEP_MIN: usize = 64;

/// Entries of the pool cache (1 KiB).
const CACHE: usize = 64;
/// An empty cache entry: no pool number is this large (addresses are below 2^64).
const EMPTY: (u64, u32) = (u64::MAX, NONE);

#[inline(always)]
fn cache_slot(pool: u64) -> usize {
    // Pools of one arena are consecutive numbers: the low bits spread them; the next bits keep
    // the same pool of different arenas apart.
    ((pool ^ (pool >> 6)) as usize) & (CACHE - 1)
}

impl Default for Pools {
    fn default() -> Self {
        Pools {
            index: HashTable::new(),
            records: Vec::new(),
            spare: Vec::new(),
            cache: Box::new([EMPTY; CACHE]),
            sweep_at: SWEEP_MIN,
            len: 0,
        }
    }
}

#[inline(always)]
fn pool_hash(pool: u64) -> u64 {
    pool.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline(always)]
fn entry_pool(e: u64) -> u64 {
    e >> REC_BITS
}

#[inline(always)]
fn entry_rec(e: u64) -> u32 {
    (e & ((1 << REC_BITS) - 1)) as u32
}

#[inline(always)]
fn unpack(v: u32) -> (u64, TbId) {
    (u64::from(v & ((1 << SIZE_BITS) - 1)), (v >> SIZE_BITS) - 1)
}

/// pymalloc's size class of a request of `size` bytes (1..=512).
#[inline(always)]
fn class_of(size: u64) -> usize {
    ((size - 1) >> ALIGN_SHIFT) as usize
}

impl Record {
    /// The slot of the block at `addr` (in this record's pool), if `addr` starts a block.
    #[inline(always)]
    fn slot(&self, addr: usize) -> Option<usize> {
        let off = (addr & (POOL_SIZE - 1)).checked_sub(POOL_OVERHEAD)? as u64;
        // Exact for off < 2^14 and block <= 2^9: the error of the reciprocal stays below one.
        let q = (off * u64::from(self.magic)) >> 32;
        // The last block may end before the pool does: past it is no block.
        (q * u64::from(self.block) == off && (q as usize) < self.slots.len()).then_some(q as usize)
    }
}

/// What `Pools::insert` did.
#[derive(Debug, Clone, Copy)]
pub enum Inserted {
    /// Recorded; the previous figures if the address was already traced here.
    Here(Option<(u64, TbId)>),
    /// The block has no slot here (see the module docs): it belongs to the hashed part.
    Elsewhere,
}

impl Pools {
    /// True if a block of this size and traceback could be a pymalloc block with a slot.
    #[inline(always)]
    pub fn may_fit(addr: usize, size: u64, tb: TbId) -> bool {
        addr & ((1 << ALIGN_SHIFT) - 1) == 0
            && addr < ADDR_LIMIT
            && size.wrapping_sub(1) < SMALL_LIMIT
            && u64::from(tb) < TB_LIMIT
    }

    /// True if `addr` is a block start of the pool class serving `size`-byte requests.
    pub fn on_grid(addr: usize, size: u64) -> bool {
        if size == 0 || size > SMALL_LIMIT || addr & ((1 << ALIGN_SHIFT) - 1) != 0 {
            return false;
        }
        let block = (size.div_ceil(1 << ALIGN_SHIFT) << ALIGN_SHIFT) as usize;
        let offset = addr & (POOL_SIZE - 1);
        offset >= POOL_OVERHEAD && (offset - POOL_OVERHEAD) % block == 0
    }

    #[inline(always)]
    fn find(&mut self, pool: u64) -> Option<u32> {
        let slot = cache_slot(pool);
        let cached = self.cache[slot];
        if cached.0 == pool {
            return (cached.1 != NONE).then_some(cached.1);
        }
        self.find_missed(pool, slot)
    }

    /// `find` past the cache: out of line, so that the reference tracer's lookup, inlined
    /// into it, stays small.
    #[inline(never)]
    fn find_missed(&mut self, pool: u64, slot: usize) -> Option<u32> {
        // A pool without a record is cached too (`NONE`): objects reused from free lists that
        // were filled before tracing started sit in such pools, and are looked up at every
        // reuse. `create` overwrites the entry.
        let rec = self.find_indexed(pool);
        self.cache[slot] = (pool, rec.unwrap_or(NONE));
        rec
    }

    #[inline(always)]
    fn find_indexed(&self, pool: u64) -> Option<u32> {
        let &e = self
            .index
            .find(pool_hash(pool), |&e| entry_pool(e) == pool)?;
        Some(entry_rec(e))
    }

    #[inline(never)]
    fn create(&mut self, pool: u64, class: usize) -> u32 {
        let block = ((class + 1) << ALIGN_SHIFT) as u32;
        if self.spare.is_empty() {
            self.spare.resize_with(CLASSES, Vec::new);
        }
        if self.spare[class].is_empty() && self.records.len() >= self.sweep_at {
            self.sweep();
        }
        let rec = if let Some(rec) = self.spare[class].pop() {
            rec
        } else {
            let n = (POOL_SIZE - POOL_OVERHEAD) / block as usize;
            if self.records.len() == self.records.capacity() {
                // Grow by an eighth, not by doubling: the slack is tracer memory too.
                self.records.reserve_exact(self.records.len() / 8 + 16);
            }
            self.records.push(Record {
                slots: vec![0; n].into_boxed_slice(),
                magic: (1u64 << 32).div_ceil(u64::from(block)) as u32,
                block: block as u16,
                live: 0,
            });
            (self.records.len() - 1) as u32
        };
        self.index
            .insert_unique(pool_hash(pool), (pool << REC_BITS) | u64::from(rec), |&e| {
                pool_hash(entry_pool(e))
            });
        self.cache[cache_slot(pool)] = (pool, rec);
        rec
    }

    /// Record a block that `may_fit`.
    #[inline(always)]
    pub fn insert(&mut self, addr: usize, size: u64, tb: TbId) -> Inserted {
        let pool = (addr >> POOL_BITS) as u64;
        let class = class_of(size);
        let rec = match self.find(pool) {
            Some(rec) => rec,
            None => self.create(pool, class),
        };
        let mut r = &mut self.records[rec as usize];
        if r.block as usize != (class + 1) << ALIGN_SHIFT {
            if r.live != 0 {
                return Inserted::Elsewhere;
            }
            // An emptied record of the pool's former class: the pool serves another now.
            self.retire(pool, rec);
            let rec = self.create(pool, class);
            r = &mut self.records[rec as usize];
        }
        let Some(slot) = r.slot(addr) else {
            return Inserted::Elsewhere;
        };
        let old = std::mem::replace(&mut r.slots[slot], ((tb + 1) << SIZE_BITS) | size as u32);
        Inserted::Here(if old == 0 {
            r.live += 1;
            self.len += 1;
            None
        } else {
            Some(unpack(old))
        })
    }

    /// Forget a block; returns its figures if it was traced here.
    #[inline(always)]
    pub fn remove(&mut self, addr: usize) -> Option<(u64, TbId)> {
        let pool = (addr >> POOL_BITS) as u64;
        let rec = self.find(pool)?;
        let r = &mut self.records[rec as usize];
        let slot = r.slot(addr)?;
        let old = std::mem::take(&mut r.slots[slot]);
        if old == 0 {
            return None;
        }
        r.live -= 1;
        self.len -= 1;
        Some(unpack(old))
    }

    /// Retire every empty record; the next sweep comes when the records grew by an eighth.
    fn sweep(&mut self) {
        let empty: Vec<u64> = self
            .index
            .iter()
            .copied()
            .filter(|&e| self.records[entry_rec(e) as usize].live == 0)
            .collect();
        for e in empty {
            self.retire(entry_pool(e), entry_rec(e));
        }
        self.sweep_at = SWEEP_MIN.max(self.records.len() + self.records.len() / 8);
    }

    /// Give back the record of a pool whose last block went (all its slots are zero again).
    #[cold]
    fn retire(&mut self, pool: u64, rec: u32) {
        if let Ok(e) = self
            .index
            .find_entry(pool_hash(pool), |&e| entry_pool(e) == pool)
        {
            e.remove();
        }
        let class = (self.records[rec as usize].block >> ALIGN_SHIFT) as usize - 1;
        self.spare[class].push(rec);
        let slot = cache_slot(pool);
        if self.cache[slot].0 == pool {
            self.cache[slot] = EMPTY;
        }
    }

    /// The figures of a traced block.
    pub fn get(&self, addr: usize) -> Option<(u64, TbId)> {
        let pool = (addr >> POOL_BITS) as u64;
        let cached = self.cache[cache_slot(pool)];
        let rec = if cached.0 == pool {
            (cached.1 != NONE).then_some(cached.1)?
        } else {
            self.find_indexed(pool)?
        };
        self.figures(rec, addr)
    }

    /// As `get`, caching the pool's lookup (the hot path's version).
    #[inline(always)]
    pub fn lookup(&mut self, addr: usize) -> Option<(u64, TbId)> {
        let rec = self.find((addr >> POOL_BITS) as u64)?;
        self.figures(rec, addr)
    }

    #[inline(always)]
    fn figures(&self, rec: u32, addr: usize) -> Option<(u64, TbId)> {
        let r = &self.records[rec as usize];
        let v = r.slots[r.slot(addr)?];
        (v != 0).then(|| unpack(v))
    }

    /// Every block as (address, size, traceback).
    pub fn iter(&self) -> impl Iterator<Item = (usize, u64, TbId)> + '_ {
        self.index.iter().flat_map(move |&e| {
            let (pool, r) = (entry_pool(e), &self.records[entry_rec(e) as usize]);
            let base = ((pool as usize) << POOL_BITS) + POOL_OVERHEAD;
            r.slots
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0)
                .map(move |(slot, &v)| {
                    let (size, tb) = unpack(v);
                    (base + slot * r.block as usize, size, tb)
                })
        })
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.index.capacity() * (size_of::<u64>() + 1)
            + self.records.capacity() * size_of::<Record>()
            + self
                .records
                .iter()
                .map(|r| r.slots.len() * size_of::<u32>())
                .sum::<usize>()
            + self
                .spare
                .iter()
                .map(|s| s.capacity() * size_of::<u32>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::{Inserted, Pools, POOL_OVERHEAD, SWEEP_MIN, TB_LIMIT};
    use proptest::prelude::*;
    use std::collections::HashMap;

    const POOL: usize = 0x7f00_0000_0000;

    fn here(i: Inserted) -> Option<(u64, u32)> {
        match i {
            Inserted::Here(old) => old,
            Inserted::Elsewhere => panic!("expected a slot"),
        }
    }

    #[test]
    fn may_fit_only_aligned_small_blocks() {
        assert!(Pools::may_fit(0x1000, 512, 5));
        assert!(!Pools::may_fit(0x1000, 0, 5));
        assert!(!Pools::may_fit(0x1008, 8, 5));
        assert!(!Pools::may_fit(0x1000, 513, 5));
        assert!(!Pools::may_fit(0x1000, 8, TB_LIMIT as u32));
    }

    #[test]
    fn blocks_of_another_class_or_off_the_grid_go_elsewhere() {
        let mut p = Pools::default();
        let first = POOL + POOL_OVERHEAD;
        assert_eq!(here(p.insert(first, 40, 1)), None); // class of 48-byte blocks
        assert_eq!(here(p.insert(first + 48, 33, 2)), None);
        assert!(matches!(p.insert(first + 96, 20, 3), Inserted::Elsewhere));
        assert!(matches!(p.insert(first + 16, 40, 3), Inserted::Elsewhere));
        assert!(matches!(p.insert(POOL, 40, 3), Inserted::Elsewhere)); // the pool header
        assert_eq!(p.remove(first + 16), None);
        assert_eq!(p.get(first + 48), Some((33, 2)));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn records_are_recycled_when_their_pool_empties() {
        let mut p = Pools::default();
        let n = (16384 - POOL_OVERHEAD) / 64;
        for i in 0..n {
            assert_eq!(here(p.insert(POOL + POOL_OVERHEAD + i * 64, 64, 1)), None);
        }
        for i in 0..n {
            assert_eq!(p.remove(POOL + POOL_OVERHEAD + i * 64), Some((64, 1)));
        }
        assert_eq!(p.len(), 0);
        assert_eq!(p.records.len(), 1, "an emptied record stays until a sweep");
        p.sweep();
        let other = POOL + 5 * 16384 + POOL_OVERHEAD;
        assert_eq!(here(p.insert(other, 50, 2)), None);
        assert_eq!(p.records.len(), 1, "the spare record serves the new pool");
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![(other, 50, 2)]);
        assert_eq!(p.remove(POOL + POOL_OVERHEAD), None);
    }

    #[test]
    fn a_pool_emptied_and_refilled_keeps_its_record() {
        let mut p = Pools::default();
        let block = POOL + POOL_OVERHEAD;
        for tb in 0..1000 {
            assert_eq!(here(p.insert(block, 64, tb)), None);
            assert_eq!(p.remove(block), Some((64, tb)));
        }
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn an_emptied_pool_serving_another_class_gets_a_record_of_that_class() {
        let mut p = Pools::default();
        let first = POOL + POOL_OVERHEAD;
        assert_eq!(here(p.insert(first, 48, 1)), None);
        assert_eq!(p.remove(first), Some((48, 1)));
        // pymalloc gave the empty pool to the 64-byte class.
        assert_eq!(here(p.insert(first + 64, 64, 2)), None);
        assert_eq!(p.get(first + 64), Some((64, 2)));
        assert_eq!(
            p.index.len(),
            1,
            "the pool has one record, of its new class"
        );
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![(first + 64, 64, 2)]);
    }

    #[test]
    fn empty_records_are_swept_when_records_grow() {
        let mut p = Pools::default();
        // Pools used one after another, each emptied before the next: records are created
        // until the sweep, which recycles the empty ones.
        for i in 0..10 * SWEEP_MIN {
            let block = POOL + i * 16384 + POOL_OVERHEAD;
            assert_eq!(here(p.insert(block, 64, 1)), None);
            assert_eq!(p.remove(block), Some((64, 1)));
        }
        assert!(
            p.records.len() <= 2 * SWEEP_MIN,
            "{} records",
            p.records.len()
        );
        assert_eq!(p.iter().count(), 0);
    }

    proptest! {
        /// Inserts and removes of blocks laid out as pymalloc lays them out agree with a map.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(
            (any::<bool>(), 0usize..4, 0usize..40, 0u64..16, 0u32..1000), 1..2000),
            far in any::<bool>()) {
            let mut p = Pools::default();
            let mut m: HashMap<usize, (u64, u32)> = HashMap::new();
            for (ins, pool, block, extra, tb) in ops {
                // Pool i serves class i*5+1 (blocks of 32, 112, 192, 272 bytes).
                let size = ((pool * 5 + 1) as u64) * 16 + 16 - extra;
                let stride = (size as usize).div_ceil(16) * 16;
                // `far`: pools 4096 apart, which share one entry of the pool cache.
                let apart = if far { 4096 * 16384 } else { 16384 };
                let addr = POOL + pool * apart + POOL_OVERHEAD + block * stride;
                if ins {
                    prop_assert_eq!(here(p.insert(addr, size, tb)), m.insert(addr, (size, tb)));
                } else {
                    prop_assert_eq!(p.remove(addr), m.remove(&addr));
                }
                prop_assert_eq!(p.get(addr), m.get(&addr).copied());
                prop_assert_eq!(p.lookup(addr), m.get(&addr).copied());
            }
            prop_assert_eq!(p.len(), m.len());
            let mut all: Vec<_> = p.iter().collect();
            all.sort_unstable();
            let mut want: Vec<_> = m.iter().map(|(&a, &(s, t))| (a, s, t)).collect();
            want.sort_unstable();
            prop_assert_eq!(all, want);
        }
    }
}
