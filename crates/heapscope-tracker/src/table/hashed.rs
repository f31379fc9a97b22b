//! The hashed part of the live table: blocks the page slots cannot hold (large or unaligned
//! blocks, huge traceback ids).
//!
//! An entry is 16 bytes: the address and one word packing the size (40 bits) and the traceback
//! id (24 bits). The rare block that does not fit (over 1 TiB, or past 16M tracebacks) keeps
//! its figures in a side map. With hashbrown's load factor this stays under 40 bytes per block.

use hashbrown::{HashMap, HashTable};

use crate::intern::TbId;

const TB_BITS: u32 = 24;
const TB_MASK: u64 = (1 << TB_BITS) - 1;
const SIZE_LIMIT: u64 = 1 << (64 - TB_BITS);
const OVERFLOW: u64 = u64::MAX;

#[derive(Clone, Copy)]
struct Entry {
    addr: usize,
    packed: u64,
}

/// Blocks keyed by address in a hash table.
#[derive(Default)]
pub struct Hashed {
    entries: HashTable<Entry>,
    overflow: HashMap<usize, (u64, TbId)>,
    /// Entries per 16 KiB region of the address space, by a hash of the region (empty until
    /// the first entry): a zero says an address is certainly not here with one load, instead
    /// of a probe. Nearly every block sits in the pool records, whose inserts must clear the
    /// address from this part and whose lookups of untraced objects (free lists filled before
    /// tracing started) fall through to it: ~40 instructions each without this.
    regions: Vec<u32>,
}

/// log2 of the number of region counters.
const REGION_BITS: u32 = 12;

#[inline(always)]
fn region(addr: usize) -> usize {
    ((addr >> 14) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize >> (64 - REGION_BITS)
}

/// Hash of a block address that keeps neighbours together: blocks of one 4 KiB page (pymalloc
/// hands them out in order from its pools) land in adjacent buckets, so bursts of allocations
/// and frees touch a few cache lines instead of one random line each. The page number is
/// mixed for spread; the block's slot in its page is added to the low bits (bucket position)
/// and folded into the top bits (hashbrown's tag) so neighbours keep distinct tags.
#[inline(always)]
fn hash_addr(addr: usize) -> u64 {
    let page = (addr >> 12) as u64;
    let slot = ((addr >> 4) & 0xff) as u64;
    let x = u128::from(page) * 0x9E37_79B9_7F4A_7C15;
    let mixed = (x as u64) ^ ((x >> 64) as u64);
    mixed.wrapping_add(slot) ^ (slot << 57)
}

impl Hashed {
    /// Record a block; returns the previous figures if the address was already traced.
    #[inline]
    pub fn insert(&mut self, addr: usize, size: u64, tb: TbId) -> Option<(u64, TbId)> {
        let fits = size < SIZE_LIMIT && u64::from(tb) < TB_MASK;
        let packed = if fits {
            (size << TB_BITS) | u64::from(tb)
        } else {
            OVERFLOW
        };
        let hash = hash_addr(addr);
        let old = match self
            .entries
            .entry(hash, |e| e.addr == addr, |e| hash_addr(e.addr))
        {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                let old = o.get().packed;
                o.get_mut().packed = packed;
                Some(if old == OVERFLOW {
                    self.overflow.remove(&addr).unwrap_or((0, 0))
                } else {
                    (old >> TB_BITS, (old & TB_MASK) as TbId)
                })
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(Entry { addr, packed });
                if self.regions.is_empty() {
                    self.regions = vec![0; 1 << REGION_BITS];
                }
                self.regions[region(addr)] += 1;
                None
            }
        };
        if !fits {
            self.overflow.insert(addr, (size, tb));
        }
        old
    }

    /// False if `addr` is certainly not here (one load); true if it may be.
    #[inline(always)]
    pub fn may_hold(&self, addr: usize) -> bool {
        self.regions.get(region(addr)).is_some_and(|&n| n != 0)
    }

    /// Forget a block; returns its figures if it was traced.
    #[inline]
    pub fn remove(&mut self, addr: usize) -> Option<(u64, TbId)> {
        let hash = hash_addr(addr);
        match self.entries.find_entry(hash, |e| e.addr == addr) {
            Ok(o) => {
                let (e, _) = o.remove();
                if let Some(n) = self.regions.get_mut(region(addr)) {
                    *n = n.saturating_sub(1);
                }
                Some(if e.packed == OVERFLOW {
                    self.overflow.remove(&addr).unwrap_or((0, 0))
                } else {
                    (e.packed >> TB_BITS, (e.packed & TB_MASK) as TbId)
                })
            }
            Err(_) => None,
        }
    }

    /// The figures of a traced block.
    pub fn get(&self, addr: usize) -> Option<(u64, TbId)> {
        let e = self.entries.find(hash_addr(addr), |e| e.addr == addr)?;
        if e.packed == OVERFLOW {
            self.overflow.get(&addr).copied()
        } else {
            Some((e.packed >> TB_BITS, (e.packed & TB_MASK) as TbId))
        }
    }

    /// Every traced block as (address, size, traceback).
    pub fn iter(&self) -> impl Iterator<Item = (usize, u64, TbId)> + '_ {
        self.entries.iter().map(move |e| {
            let (size, tb) = if e.packed == OVERFLOW {
                self.overflow.get(&e.addr).copied().unwrap_or((0, 0))
            } else {
                (e.packed >> TB_BITS, (e.packed & TB_MASK) as TbId)
            };
            (e.addr, size, tb)
        })
    }

    /// Number of traced blocks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forget every block and give the memory back.
    pub fn clear(&mut self) {
        self.entries = HashTable::new();
        self.overflow = HashMap::new();
        self.regions = Vec::new();
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.entries.capacity() * (size_of::<Entry>() + 1)
            + self.overflow.capacity() * (size_of::<(usize, (u64, TbId))>() + 1)
            + self.regions.capacity() * size_of::<u32>()
    }
}
