//! The paged part of the live table: small blocks, found by their 4 KiB page and their 16-byte
//! slot in it, with no hashing of the block address and no probing.
//!
//! Why: with one hash entry per block, every free of a block allocated long ago missed the cache
//! twice (hashbrown's control bytes, then the entry), and that was most of the tracer's time
//! (`perf annotate`: ~70% of `remove` on the entry load; records.py spent ~130 ns per
//! allocation in the table). Here a block's figures sit in its page's record at a fixed slot:
//! the page number finds the record (the last page is cached, and pages are few enough for
//! their index to stay in cache), and one 4-byte load finds the figures. Records are handed out
//! in the order pages are first used, so freeing blocks in the order they were allocated walks
//! the records in order, which the hardware prefetcher follows.
//!
//! A slot packs the size (10 bits: up to 1023 bytes) and the traceback id plus one (22 bits; 0
//! is an empty slot). Blocks that do not fit, or whose address is not 16-byte aligned, go to
//! the hashed part. A record whose last block goes is recycled, so memory follows the pages
//! that hold traced blocks: 1 KiB per page, which for pymalloc's small blocks (16 to 512 bytes)
//! is 4 to 128 bytes per block when pages are full.

use hashbrown::HashTable;

use crate::intern::TbId;

const PAGE_BITS: u32 = 12;
const SLOT_BITS: u32 = 4;
const SLOTS: usize = 1 << (PAGE_BITS - SLOT_BITS);
const SIZE_BITS: u32 = 10;
/// Largest size a slot holds (exclusive).
pub const SIZE_LIMIT: u64 = 1 << SIZE_BITS;
/// Largest traceback id a slot holds (exclusive): ids are stored plus one.
pub const TB_LIMIT: u64 = (1 << (32 - SIZE_BITS)) - 1;

/// The figures of the blocks of one page.
struct Record {
    slots: [u32; SLOTS],
    /// Occupied slots.
    live: u32,
    /// The page this record serves (for iteration).
    page: u64,
}

/// Small blocks by page and slot.
#[derive(Default)]
pub struct Pages {
    /// Page number -> record index.
    index: HashTable<(u64, u32)>,
    /// Contiguous, in first-use order (no pointer to chase per lookup).
    records: Vec<Record>,
    /// Records with no live block, ready for another page.
    spare: Vec<u32>,
    /// The last page looked up and its record (`u32::MAX`: none).
    last: (u64, u32),
    len: usize,
}

#[inline(always)]
fn page_hash(page: u64) -> u64 {
    page.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline(always)]
fn split(addr: usize) -> (u64, usize) {
    (
        (addr >> PAGE_BITS) as u64,
        (addr >> SLOT_BITS) & (SLOTS - 1),
    )
}

#[inline(always)]
fn unpack(v: u32) -> (u64, TbId) {
    (u64::from(v & ((1 << SIZE_BITS) - 1)), (v >> SIZE_BITS) - 1)
}

impl Pages {
    /// True if a block of this size and traceback at this address fits a slot.
    #[inline(always)]
    pub fn fits(addr: usize, size: u64, tb: TbId) -> bool {
        addr & ((1 << SLOT_BITS) - 1) == 0 && size < SIZE_LIMIT && u64::from(tb) < TB_LIMIT
    }

    #[inline(always)]
    fn find(&mut self, page: u64) -> Option<u32> {
        if self.last.0 == page && self.last.1 != u32::MAX {
            return Some(self.last.1);
        }
        let &(_, rec) = self.index.find(page_hash(page), |e| e.0 == page)?;
        self.last = (page, rec);
        Some(rec)
    }

    #[inline(never)]
    fn create(&mut self, page: u64) -> u32 {
        let rec = if let Some(rec) = self.spare.pop() {
            self.records[rec as usize].page = page;
            rec
        } else {
            self.records.push(Record {
                slots: [0; SLOTS],
                live: 0,
                page,
            });
            (self.records.len() - 1) as u32
        };
        self.index
            .insert_unique(page_hash(page), (page, rec), |e| page_hash(e.0));
        self.last = (page, rec);
        rec
    }

    /// Record a block that `fits`; returns the previous figures if the address was traced.
    #[inline(always)]
    pub fn insert(&mut self, addr: usize, size: u64, tb: TbId) -> Option<(u64, TbId)> {
        let (page, slot) = split(addr);
        let rec = match self.find(page) {
            Some(rec) => rec,
            None => self.create(page),
        };
        let r = &mut self.records[rec as usize];
        let old = r.slots[slot];
        r.slots[slot] = ((tb + 1) << SIZE_BITS) | size as u32;
        if old == 0 {
            r.live += 1;
            self.len += 1;
            None
        } else {
            Some(unpack(old))
        }
    }

    /// Forget a block; returns its figures if it was traced here.
    #[inline(always)]
    pub fn remove(&mut self, addr: usize) -> Option<(u64, TbId)> {
        if addr & ((1 << SLOT_BITS) - 1) != 0 {
            return None;
        }
        let (page, slot) = split(addr);
        let rec = self.find(page)?;
        let r = &mut self.records[rec as usize];
        let old = r.slots[slot];
        if old == 0 {
            return None;
        }
        r.slots[slot] = 0;
        r.live -= 1;
        self.len -= 1;
        if r.live == 0 {
            self.retire(page, rec);
        }
        Some(unpack(old))
    }

    /// Give back the record of a page whose last block went (all its slots are zero again).
    #[cold]
    fn retire(&mut self, page: u64, rec: u32) {
        if let Ok(e) = self.index.find_entry(page_hash(page), |e| e.0 == page) {
            e.remove();
        }
        self.spare.push(rec);
        if self.last.0 == page {
            self.last = (0, u32::MAX);
        }
    }

    /// The figures of a traced block.
    pub fn get(&self, addr: usize) -> Option<(u64, TbId)> {
        if addr & ((1 << SLOT_BITS) - 1) != 0 {
            return None;
        }
        let (page, slot) = split(addr);
        let &(_, rec) = self.index.find(page_hash(page), |e| e.0 == page)?;
        let v = self.records[rec as usize].slots[slot];
        (v != 0).then(|| unpack(v))
    }

    /// Every block as (address, size, traceback).
    pub fn iter(&self) -> impl Iterator<Item = (usize, u64, TbId)> + '_ {
        self.index.iter().flat_map(move |&(page, rec)| {
            let r = &self.records[rec as usize];
            debug_assert_eq!(r.page, page);
            r.slots
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0)
                .map(move |(slot, &v)| {
                    let (size, tb) = unpack(v);
                    (
                        ((page as usize) << PAGE_BITS) | (slot << SLOT_BITS),
                        size,
                        tb,
                    )
                })
        })
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.index.capacity() * (size_of::<(u64, u32)>() + 1)
            + self.records.capacity() * size_of::<Record>()
            + self.spare.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::{Pages, SIZE_LIMIT, TB_LIMIT};
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn fits_only_aligned_small_blocks() {
        assert!(Pages::fits(0x1000, 1023, 5));
        assert!(!Pages::fits(0x1008, 8, 5));
        assert!(!Pages::fits(0x1000, SIZE_LIMIT, 5));
        assert!(!Pages::fits(0x1000, 8, TB_LIMIT as u32));
    }

    #[test]
    fn records_are_recycled_when_their_page_empties() {
        let mut p = Pages::default();
        for i in 0..256 {
            assert_eq!(p.insert(0x7000_0000 + i * 16, 16, 1), None);
        }
        for i in 0..256 {
            assert_eq!(p.remove(0x7000_0000 + i * 16), Some((16, 1)));
        }
        assert_eq!(p.len(), 0);
        assert_eq!(p.insert(0x9000_0000, 32, 2), None);
        assert_eq!(p.records.len(), 1, "the spare record serves the new page");
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![(0x9000_0000, 32, 2)]);
        assert_eq!(p.remove(0x7000_0000), None);
    }

    proptest! {
        /// Any sequence of inserts and removes agrees with a plain map.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(
            (any::<bool>(), 0usize..3000, 0u64..1024, 0u32..1000), 1..2000)) {
            let mut p = Pages::default();
            let mut m: HashMap<usize, (u64, u32)> = HashMap::new();
            for (ins, slot, size, tb) in ops {
                let addr = 0x5555_0000_0000 + slot * 16;
                if ins {
                    prop_assert_eq!(p.insert(addr, size, tb), m.insert(addr, (size, tb)));
                } else {
                    prop_assert_eq!(p.remove(addr), m.remove(&addr));
                }
                prop_assert_eq!(p.get(addr), m.get(&addr).copied());
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
