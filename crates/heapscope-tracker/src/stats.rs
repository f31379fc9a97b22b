//! Per-traceback counters and the exact high-water mark.
//!
//! The figures at the peak are kept without copying the world at every new peak: a list of
//! the tracebacks changed since the last capture is kept, and the live figures of just those are
//! copied when memory first goes down after a new peak (the moment the peak is known to have
//! been reached). Each change is copied at most once, so this costs O(1) per event.

use crate::intern::TbId;

/// Counters of one traceback.
#[derive(Debug, Clone, Copy, Default)]
pub struct TbStats {
    /// Bytes allocated here and not yet freed.
    pub live_bytes: u64,
    /// Blocks allocated here and not yet freed.
    pub live_count: u64,
    /// Bytes ever allocated here.
    pub total_bytes: u64,
    /// Blocks ever allocated here.
    pub total_count: u64,
    /// Live bytes at the last captured peak.
    pub peak_bytes: u64,
    /// Live blocks at the last captured peak.
    pub peak_count: u64,
    dirty: bool,
}

/// Counters of every traceback plus current / peak totals.
#[derive(Default)]
pub struct Stats {
    /// Indexed by traceback id.
    pub per_tb: Vec<TbStats>,
    dirty: Vec<TbId>,
    /// True when the live figures are the figures at the peak (current == peak) and have not
    /// been copied yet.
    peak_pending: bool,
    /// Traced bytes now.
    pub current: u64,
    /// Highest traced bytes since start / clear / reset_peak.
    pub peak: u64,
    /// Bytes allocated since start / clear.
    pub total_bytes: u64,
    /// Blocks allocated since start / clear.
    pub total_count: u64,
}

impl Stats {
    /// Make room for a newly interned traceback.
    pub fn push_tb(&mut self) {
        self.per_tb.push(TbStats::default());
    }

    #[inline(always)]
    fn touch(&mut self, tb: TbId) {
        let s = &mut self.per_tb[tb as usize];
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(tb);
        }
    }

    /// Account for a new block.
    #[inline(always)]
    pub fn alloc(&mut self, tb: TbId, size: u64) {
        let s = &mut self.per_tb[tb as usize];
        s.live_bytes += size;
        s.live_count += 1;
        s.total_bytes += size;
        s.total_count += 1;
        self.touch(tb);
        self.current += size;
        self.total_bytes += size;
        self.total_count += 1;
        if self.current > self.peak {
            self.peak = self.current;
            self.peak_pending = true;
        }
    }

    /// Account for a freed block.
    #[inline(always)]
    pub fn free(&mut self, tb: TbId, size: u64) {
        if self.peak_pending {
            self.capture_peak();
        }
        let s = &mut self.per_tb[tb as usize];
        s.live_bytes = s.live_bytes.saturating_sub(size);
        s.live_count = s.live_count.saturating_sub(1);
        self.touch(tb);
        self.current = self.current.saturating_sub(size);
    }

    /// Part of a live block is released (a partial `munmap`): `bytes` fewer live bytes, and
    /// the block is now `blocks_after` blocks (0: it is gone). Totals stay.
    pub fn shrink(&mut self, tb: TbId, bytes: u64, blocks_after: usize) {
        if self.peak_pending {
            self.capture_peak();
        }
        let s = &mut self.per_tb[tb as usize];
        s.live_bytes = s.live_bytes.saturating_sub(bytes);
        s.live_count = (s.live_count + blocks_after as u64).saturating_sub(1);
        self.touch(tb);
        self.current = self.current.saturating_sub(bytes);
    }

    /// A live block moves from one traceback to another (an object reused from a free list
    /// is re-attributed): totals and the allocation counts stay.
    pub fn retag(&mut self, from: TbId, to: TbId, size: u64) {
        if self.peak_pending {
            self.capture_peak();
        }
        let s = &mut self.per_tb[from as usize];
        s.live_bytes = s.live_bytes.saturating_sub(size);
        s.live_count = s.live_count.saturating_sub(1);
        self.touch(from);
        let s = &mut self.per_tb[to as usize];
        s.live_bytes += size;
        s.live_count += 1;
        self.touch(to);
    }

    /// Copy the live figures of the tracebacks changed since the last capture into their
    /// figures at the peak, if the peak is now.
    pub fn capture_peak(&mut self) {
        if !self.peak_pending {
            return;
        }
        self.peak_pending = false;
        for &tb in &self.dirty {
            let s = &mut self.per_tb[tb as usize];
            s.peak_bytes = s.live_bytes;
            s.peak_count = s.live_count;
            s.dirty = false;
        }
        self.dirty.clear();
    }

    /// The peak becomes the current figure (`tracemalloc.reset_peak`).
    pub fn reset_peak(&mut self) {
        // Tracebacks not on the dirty list have not changed since the last capture, so their
        // figures at the peak already equal their live figures: marking the peak as pending
        // is enough.
        self.peak = self.current;
        self.peak_pending = true;
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        *self = Stats::default();
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.per_tb.capacity() * size_of::<TbStats>() + self.dirty.capacity() * size_of::<TbId>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_figures_are_those_at_the_high_water_mark() {
        let mut s = Stats::default();
        s.push_tb();
        s.push_tb();
        s.alloc(0, 100);
        s.alloc(1, 50); // peak 150: tb0 100, tb1 50
        s.free(1, 50);
        s.free(0, 100);
        s.alloc(1, 120); // 120 < 150
        s.capture_peak();
        assert_eq!(s.peak, 150);
        assert_eq!((s.per_tb[0].peak_bytes, s.per_tb[1].peak_bytes), (100, 50));
        s.alloc(0, 40); // 160: new peak, tb0 40, tb1 120
        s.free(0, 40);
        assert_eq!(s.peak, 160);
        assert_eq!((s.per_tb[0].peak_bytes, s.per_tb[1].peak_bytes), (40, 120));
        s.reset_peak(); // peak = 120: tb0 0, tb1 120
        s.alloc(0, 1);
        s.free(0, 1);
        assert_eq!(s.peak, 121);
        assert_eq!((s.per_tb[0].peak_bytes, s.per_tb[1].peak_bytes), (1, 120));
    }
}
