//! Blocks that C extensions report with `PyTraceMalloc_Track(domain, ptr, size)` (numpy's array
//! buffers in domain 389047, for instance), keyed by (domain, address) as the stdlib keys them.
//!
//! `PyTraceMalloc_Track` takes the GIL (as the stdlib does) before reading the stack, so the
//! traceback and the counters are the GIL holder's; `PyTraceMalloc_Untrack` may come from any
//! thread without it, so the table lives beside the RAW table under its lock, and an untracked
//! block's figures go through the same queue of pending frees the next GIL holder applies.

use std::sync::atomic::Ordering;

use hashbrown::HashMap;

use crate::intern::TbId;
use crate::state::{Dest, State, PENDING, RAW};

/// The interner's per-traceback owner key: the OS thread id (profile mode; a `pid_t`, so 32
/// bits) in the low half, the domain in the high half. Tracebacks of one stack in two domains
/// are two tracebacks, so counters, peaks and the profiler's stacks keep domains apart.
pub fn owner_key(thread: u64, domain: u32) -> u64 {
    debug_assert!(u32::try_from(thread).is_ok(), "thread ids are pid_t");
    thread | (u64::from(domain) << 32)
}

/// `(thread, domain)` of an owner key.
pub fn split_owner(key: u64) -> (u64, u32) {
    (key & u64::from(u32::MAX), (key >> 32) as u32)
}

/// Tracked blocks: (domain, address) -> (size, traceback).
#[derive(Default)]
pub struct DomainTable {
    map: HashMap<(u32, usize), (u64, TbId)>,
}

impl DomainTable {
    /// Record a block; returns the previous figures if it was already tracked.
    pub fn insert(&mut self, domain: u32, addr: usize, size: u64, tb: TbId) -> Option<(u64, TbId)> {
        self.map.insert((domain, addr), (size, tb))
    }

    /// Forget a block; returns its figures if it was tracked.
    pub fn remove(&mut self, domain: u32, addr: usize) -> Option<(u64, TbId)> {
        self.map.remove(&(domain, addr))
    }

    /// The figures of a tracked block.
    pub fn get(&self, domain: u32, addr: usize) -> Option<(u64, TbId)> {
        self.map.get(&(domain, addr)).copied()
    }

    /// Every tracked block as (domain, size, traceback).
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64, TbId)> + '_ {
        self.map.iter().map(|(&(d, _), &(s, tb))| (d, s, tb))
    }

    /// Number of tracked blocks.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Forget every block.
    pub fn clear(&mut self) {
        self.map = HashMap::new();
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.map.capacity() * (size_of::<((u32, usize), (u64, TbId))>() + 1)
    }
}

impl State {
    /// `PyTraceMalloc_Track`: trace `size` bytes at `addr` in `domain` with the caller's stack,
    /// replacing the block's previous trace if it had one (a block tracked twice keeps only the
    /// new trace). Domain 0 is the interpreter's own: a block of the PyMem table at that address
    /// is replaced too.
    ///
    /// # Safety
    /// The GIL is held; `self` is the only live reference to the state.
    pub unsafe fn track(&mut self, domain: u32, addr: usize, size: usize) {
        if !self.active {
            return;
        }
        self.apply_pending();
        // The block's trace in this domain, and the RAW block `Untrack(0, ..)` forgot last
        // (numpy 2.5 untracks its buffers from domain 0 and tracks them in its own right
        // after): one lock for both.
        let (old, untracked_raw) = RAW.lock().as_mut().map_or((None, None), |r| {
            (r.domains.remove(domain, addr), r.untracked_raw.take())
        });
        if let Some((s, tb)) = old {
            self.stats.free(tb, s);
        }
        if domain == 0 {
            let raw_old = RAW.lock().as_mut().and_then(|r| r.table.remove(addr));
            if let Some((s, tb)) = raw_old.or_else(|| self.table.remove(addr)) {
                self.stats.free(tb, s);
            }
        }
        let weight = match (&mut self.sampler, self.suspended) {
            (_, true) => None,
            (None, false) => Some(size as u64),
            (Some(sampler), false) => sampler.sample(size as u64),
        };
        // The same block, just untracked from domain 0: already in the totals once, under the
        // line that allocated it from RAW.
        let moved = untracked_raw.filter(|&(a, s, _)| a == addr && s == size as u64 && domain != 0);
        if let Some(weight) = weight {
            // SAFETY: per this function's contract.
            unsafe { self.record(addr as *mut std::ffi::c_void, weight, Dest::tracked(domain)) };
            if let (Some((_, s, old_tb)), None) = (moved, &self.sampler) {
                self.stats.uncount_total(old_tb, s);
            }
        }
        self.publish();
    }
}

/// `PyTraceMalloc_Untrack`: forget a tracked block (a no-op for a block not tracked). Any
/// thread, with or without the GIL; the counters are updated by the next GIL holder.
///
/// Domain 0 is the interpreter's own, as in the stdlib: untracking there forgets the block the
/// allocator hooks traced too. numpy 2.5 allocates array buffers with `PyMem_RawMalloc` and
/// then calls `PyTraceMalloc_Untrack(0, ptr)` before tracking them in its own domain, so the
/// buffer is counted once. RAW blocks are under the lock; a MEM/OBJ block can only be
/// forgotten by the GIL holder (`gil_held`), as its table is the GIL's.
pub fn untrack(domain: u32, addr: usize, gil_held: bool) {
    {
        let mut raw = RAW.lock();
        if let Some(r) = raw.as_mut() {
            let mut forgotten = r.domains.remove(domain, addr);
            if forgotten.is_none() && domain == 0 {
                forgotten = r.table.remove(addr);
                r.untracked_raw = forgotten.map(|(size, tb)| (addr, size, tb));
            }
            if let Some(entry) = forgotten {
                r.pending.push(entry);
                PENDING.store(true, Ordering::Release);
                return;
            }
        }
    }
    if domain == 0 && gil_held {
        // SAFETY: the caller holds the GIL and no other state reference is alive.
        if let Some(st) = unsafe { crate::state::state() } {
            if st.active {
                st.forget(addr as *mut std::ffi::c_void);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DomainTable;

    #[test]
    fn owner_keys_split_back() {
        use super::{owner_key, split_owner};
        assert_eq!(split_owner(owner_key(0, 0)), (0, 0));
        assert_eq!(owner_key(0, 0), 0);
        assert_eq!(owner_key(77, 0), 77);
        assert_eq!(
            split_owner(owner_key(4_194_303, 389_047)),
            (4_194_303, 389_047)
        );
        assert_eq!(split_owner(owner_key(12, u32::MAX)), (12, u32::MAX));
    }

    #[test]
    fn a_block_is_keyed_by_domain_and_address() {
        let mut t = DomainTable::default();
        assert_eq!(t.insert(5, 0x1000, 10, 1), None);
        assert_eq!(t.insert(6, 0x1000, 20, 2), None);
        assert_eq!(t.insert(5, 0x1000, 30, 3), Some((10, 1)));
        assert_eq!(t.get(6, 0x1000), Some((20, 2)));
        assert_eq!(t.remove(5, 0x1000), Some((30, 3)));
        assert_eq!(t.remove(5, 0x1000), None);
        assert_eq!(t.len(), 1);
        let all: Vec<_> = t.iter().collect();
        assert_eq!(all, vec![(6, 20, 2)]);
    }
}
