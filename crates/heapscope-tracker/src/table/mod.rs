//! The live table: address -> (size, traceback) of every traced block.
//!
//! Small blocks in pymalloc's pools (nearly all of a Python program's) sit in pool records at
//! a fixed slot (`pools.rs`); the others in a hash table (`hashed.rs`). An address is in at most
//! one of the two: where a block goes depends on its size and traceback as well as its address,
//! so an insert that goes to one part clears the address from the other.
//!
//! In sampling mode an address filter sits in front (`filter.rs`): few blocks are held, and
//! frees of the others skip the table.

mod hashed;
mod pools;

use crate::filter::AddrFilter;
use crate::intern::TbId;
use hashed::Hashed;
use pools::{Inserted, Pools};

/// Live traced blocks.
#[derive(Default)]
pub struct LiveTable {
    pools: Pools,
    hashed: Hashed,
    /// In sampling mode: which addresses may be in the table.
    filter: Option<AddrFilter>,
    /// Every block goes to the hashed part: the running allocator does not lay blocks out as
    /// the pool records assume (see [`LiveTable::set_pooled`]).
    unpooled: bool,
}

impl LiveTable {
    /// Record a block; returns the previous figures if the address was already traced.
    /// Inlined into its one hot caller (`State::record`): a call cost ~20 instructions of
    /// register saves a block (callgrind).
    #[inline(always)]
    pub fn insert(&mut self, addr: usize, size: u64, tb: TbId) -> Option<(u64, TbId)> {
        let pooled = if !self.unpooled && Pools::may_fit(addr, size, tb) {
            self.pools.insert(addr, size, tb)
        } else {
            Inserted::Elsewhere
        };
        let old = match pooled {
            Inserted::Here(None) if self.hashed.may_hold(addr) => self.hashed.remove(addr),
            Inserted::Here(old) => old,
            Inserted::Elsewhere => {
                let old = self.hashed.insert(addr, size, tb);
                self.pools.remove(addr).or(old)
            }
        };
        if old.is_none() {
            if let Some(f) = &mut self.filter {
                f.add(addr);
            }
        }
        old
    }

    /// False if `addr` is certainly not traced (a cheap check in sampling mode); true if it
    /// may be.
    #[inline(always)]
    pub fn may_hold(&self, addr: usize) -> bool {
        self.filter.as_ref().is_none_or(|f| f.may_hold(addr))
    }

    /// Forget a block; returns its figures if it was traced (inlined into `State::forget`).
    #[inline(always)]
    pub fn remove(&mut self, addr: usize) -> Option<(u64, TbId)> {
        let old = match self.pools.remove(addr) {
            Some(old) => Some(old),
            None if self.hashed.may_hold(addr) => self.hashed.remove(addr),
            None => None,
        };
        if old.is_some() {
            if let Some(f) = &mut self.filter {
                f.remove(addr);
            }
        }
        old
    }

    /// The figures of a traced block.
    pub fn get(&self, addr: usize) -> Option<(u64, TbId)> {
        self.pools
            .get(addr)
            .or_else(|| self.hashed.may_hold(addr).then(|| self.hashed.get(addr))?)
    }

    /// As `get`, for the hot path (re-attributing objects reused from free lists): caches
    /// the pool lookup, including a pool that holds no record. Inlined into the reference
    /// tracer, which asks it of every object reused from a free list.
    #[inline(always)]
    pub fn lookup(&mut self, addr: usize) -> Option<(u64, TbId)> {
        match self.pools.lookup(addr) {
            Some(found) => Some(found),
            None if self.hashed.may_hold(addr) => self.hashed.get(addr),
            None => None,
        }
    }

    /// Every traced block as (address, size, traceback).
    pub fn iter(&self) -> impl Iterator<Item = (usize, u64, TbId)> + '_ {
        self.pools.iter().chain(self.hashed.iter())
    }

    /// Number of traced blocks.
    pub fn len(&self) -> usize {
        self.pools.len() + self.hashed.len()
    }

    /// Forget every block and give the memory back.
    pub fn clear(&mut self) {
        self.pools = Pools::default();
        self.hashed.clear();
        if let Some(f) = &mut self.filter {
            f.rebuild(std::iter::empty());
        }
    }

    /// Keep an address filter in front of the table (sampling mode: few blocks are held, and
    /// frees of the others skip the table) or not (full tracing: every block is held).
    ///
    /// # Safety
    /// The GIL is held and this is the tracer's GIL-domain table (the filter is a static
    /// that only one table may use).
    pub unsafe fn set_filtered(&mut self, on: bool) {
        match (on, self.filter.is_some()) {
            (true, false) => {
                // SAFETY: per the contract, this is the only handle.
                let mut f = unsafe { AddrFilter::new() };
                f.rebuild(self.iter().map(|(addr, _, _)| addr));
                self.filter = Some(f);
            }
            (false, true) => self.filter = None,
            _ => {}
        }
    }

    /// Use the pool records for small blocks (`true`, the default) or only the hashed part.
    /// Takes effect only while the table is empty (at start), so no block changes part.
    pub fn set_pooled(&mut self, on: bool) {
        if self.len() == 0 {
            self.unpooled = !on;
        }
    }

    /// True if every `(address, requested size)` of blocks just allocated sits where the pool
    /// records expect pymalloc to put it (see `pools.rs`).
    pub fn pool_layout_holds(blocks: &[(usize, usize)]) -> bool {
        !blocks.is_empty()
            && blocks
                .iter()
                .all(|&(addr, size)| Pools::on_grid(addr, size as u64))
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.pools.memory()
            + self.hashed.memory()
            + self.filter.as_ref().map_or(0, |_| AddrFilter::memory())
    }
}

#[cfg(test)]
mod tests {
    use super::LiveTable;

    #[test]
    fn pool_layout_probe() {
        let pool = 0x7f00_0000_0000usize;
        // Blocks 0..3 of a 48-byte pool, and of a 496-byte one.
        let good: Vec<_> = (0..4)
            .map(|i| (pool + 48 + i * 48, 48))
            .chain((0..4).map(|i| (pool + 0x4000 + 48 + i * 496, 490)))
            .collect();
        assert!(LiveTable::pool_layout_holds(&good));
        // glibc-like 64-byte spacing, debug-hook offsets, the pool header, oversized requests.
        for bad in [
            vec![(pool + 48, 48), (pool + 112, 48)],
            vec![(pool + 48 + 16, 48)],
            vec![(pool + 16, 16)],
            vec![(pool + 48, 600)],
            vec![],
        ] {
            assert!(!LiveTable::pool_layout_holds(&bad), "{bad:?}");
        }
    }
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Blocks moving between the two parts (a size crossing pymalloc's limit, a class
        /// other than the pool's, an address off the pool's grid) keep the table equal to a
        /// plain map.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(
            (any::<bool>(), 0usize..3000, prop_oneof![1u64..513, 0u64..5000], 0u32..50),
            1..2000)) {
            let mut t = LiveTable::default();
            let mut m: HashMap<usize, (u64, u32)> = HashMap::new();
            for (ins, slot, size, tb) in ops {
                let addr = 0x7f00_0000_0000 + slot * 8;
                if ins {
                    prop_assert_eq!(t.insert(addr, size, tb), m.insert(addr, (size, tb)));
                } else {
                    prop_assert_eq!(t.remove(addr), m.remove(&addr));
                }
                prop_assert_eq!(t.get(addr), m.get(&addr).copied());
                prop_assert_eq!(t.lookup(addr), m.get(&addr).copied());
            }
            prop_assert_eq!(t.len(), m.len());
            let mut all: Vec<_> = t.iter().collect();
            all.sort_unstable();
            let mut want: Vec<_> = m.iter().map(|(&a, &(s, t))| (a, s, t)).collect();
            want.sort_unstable();
            prop_assert_eq!(all, want);
        }
    }
}
