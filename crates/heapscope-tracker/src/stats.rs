//! Per-traceback counters and the exact high-water mark.
//!
//! The figures at the peak are kept without copying the world at every new peak: a list of
//! the tracebacks changed since the last capture is kept, and the live figures of just those are
//! copied when memory first goes down after a new peak (the moment the peak is known to have
//! been reached). Each change is copied at most once, so this costs O(1) per event.

use crate::intern::TbId;

/// Flags kept in the low byte of [`TbStats::count_flags`], the count above them (byte-sized
/// immediates: testing and setting flags needs no 64-bit constant on the hot path).
const COUNT_SHIFT: u32 = 8;
/// One more block in [`TbStats::count_flags`].
const ONE_BLOCK: u64 = 1 << COUNT_SHIFT;
/// On the list of tracebacks changed since the last peak capture.
const DIRTY: u64 = 1;
/// Live or total figures changed since the profiler last took the changes.
const CHANGED: u64 = 2;
/// Figures at the peak changed since the profiler last took the changes.
const PEAK_CHANGED: u64 = 4;

/// Counters of one traceback: 40 bytes (block counts that no real heap reaches in 32 bits
/// are kept in 32, the flags in the low byte of the total count).
#[derive(Debug, Clone, Copy, Default)]
pub struct TbStats {
    /// Bytes allocated here and not yet freed.
    pub live_bytes: u64,
    /// Bytes ever allocated here.
    pub total_bytes: u64,
    /// Live bytes at the last captured peak.
    pub peak_bytes: u64,
    /// Blocks ever allocated here (high 56 bits) and the flags (low 8).
    count_flags: u64,
    /// Blocks allocated here and not yet freed (saturates: 2^32 live blocks of at least 16
    /// bytes would be 64 GiB from one traceback).
    live_count: u32,
    /// Live blocks at the last captured peak.
    peak_count: u32,
}

impl TbStats {
    /// Blocks allocated here and not yet freed.
    pub fn live_count(&self) -> u64 {
        u64::from(self.live_count)
    }

    /// Blocks ever allocated here.
    pub fn total_count(&self) -> u64 {
        self.count_flags >> COUNT_SHIFT
    }

    /// Live blocks at the last captured peak.
    pub fn peak_count(&self) -> u64 {
        u64::from(self.peak_count)
    }

    /// True if the traceback holds something now or at the last captured peak (one test:
    /// the profiler's sweep asks it of every slot).
    #[inline]
    pub fn holds(&self) -> bool {
        (self.live_bytes | self.peak_bytes | u64::from(self.live_count | self.peak_count)) != 0
    }
}

const _: () = assert!(size_of::<TbStats>() == 40);

/// What changed in one traceback's counters since the profiler last took the changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// Live or total figures.
    pub counters: bool,
    /// Figures at the peak.
    pub peak: bool,
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
    /// Zero counters for a newly interned traceback (a new slot, or one an evicted traceback
    /// left).
    pub fn ensure_tb(&mut self, tb: TbId) {
        if let Some(s) = self.per_tb.get_mut(tb as usize) {
            // A slot still on the dirty list stays marked so: it is never listed twice.
            *s = TbStats {
                count_flags: s.count_flags & DIRTY,
                ..TbStats::default()
            };
        } else {
            self.per_tb.resize(tb as usize + 1, TbStats::default());
        }
    }

    /// True if a traceback holds nothing and held nothing at the last captured peak; with
    /// `only_written`, also only if the profiler has taken its last changes. Forgetting such a
    /// traceback loses nothing once its figures are written (a later peak would find it at
    /// zero; if it is met again it is a new traceback).
    pub fn is_spent(&self, tb: TbId, only_written: bool) -> bool {
        let Some(s) = self.per_tb.get(tb as usize) else {
            return false;
        };
        let unwritten = s.count_flags & (CHANGED | PEAK_CHANGED) != 0;
        !(self.is_holding(tb) || only_written && unwritten)
    }

    /// True if a traceback holds something now or at the last captured peak.
    pub fn is_holding(&self, tb: TbId) -> bool {
        self.per_tb.get(tb as usize).is_some_and(TbStats::holds)
    }

    /// Say that a traceback's counters and figures at the peak changed (the profiler writes a
    /// traceback it sees for the first time whole).
    pub fn mark_changed(&mut self, tb: TbId) {
        if let Some(s) = self.per_tb.get_mut(tb as usize) {
            s.count_flags |= CHANGED;
            if s.peak_bytes != 0 || s.peak_count != 0 {
                s.count_flags |= PEAK_CHANGED;
            }
        }
    }

    /// Flag a traceback whose live figures changed (dirty for the peak capture, changed for
    /// the profiler). Both flags are usually set already: then this is a load and a test.
    #[inline(always)]
    fn touch(&mut self, tb: TbId) {
        let flags = self.per_tb[tb as usize].count_flags;
        if flags & (DIRTY | CHANGED) != DIRTY | CHANGED {
            self.mark(tb, flags);
        }
    }

    #[inline(never)]
    fn mark(&mut self, tb: TbId, flags: u64) {
        self.per_tb[tb as usize].count_flags = flags | DIRTY | CHANGED;
        if flags & DIRTY == 0 {
            self.dirty.push(tb);
        }
    }

    /// Account for a new block.
    #[inline(always)]
    pub fn alloc(&mut self, tb: TbId, size: u64) {
        let s = &mut self.per_tb[tb as usize];
        s.live_bytes += size;
        // Wraps only past 2^32 live blocks from one traceback (64 GiB of 16-byte blocks).
        s.live_count = s.live_count.wrapping_add(1);
        s.total_bytes += size;
        // The count and the flags in one read-modify-write (the count never reaches 2^56).
        let flags = s.count_flags;
        s.count_flags = (flags + ONE_BLOCK) | DIRTY | CHANGED;
        if flags & DIRTY == 0 {
            self.dirty.push(tb);
        }
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
        let after = u32::try_from(blocks_after).unwrap_or(u32::MAX);
        s.live_count = s.live_count.saturating_add(after).saturating_sub(1);
        self.touch(tb);
        self.current = self.current.saturating_sub(bytes);
    }

    /// A block counted in the totals under `tb` is counted again elsewhere (re-reported in
    /// another domain): it leaves `tb`'s totals and the process's.
    pub fn uncount_total(&mut self, tb: TbId, size: u64) {
        let s = &mut self.per_tb[tb as usize];
        s.total_bytes = s.total_bytes.saturating_sub(size);
        if s.count_flags >> COUNT_SHIFT > 0 {
            s.count_flags -= ONE_BLOCK;
        }
        self.touch(tb);
        self.total_bytes = self.total_bytes.saturating_sub(size);
        self.total_count = self.total_count.saturating_sub(1);
    }

    /// A live block moves from one traceback to another (an object reused from a free list
    /// is re-attributed, as the stdlib does): the object was made at `to`, so it counts as
    /// allocated there too (in `to`'s totals and the process's), and what a traceback
    /// allocated in total is never less than what it holds at any time (the peak included).
    /// `from` keeps its totals: the block was allocated there first. The current figure does
    /// not move, so the peak does not either.
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
        s.live_count = s.live_count.wrapping_add(1);
        s.total_bytes += size;
        s.count_flags += ONE_BLOCK;
        self.touch(to);
        self.total_bytes += size;
        self.total_count += 1;
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
            if (s.peak_bytes, s.peak_count) != (s.live_bytes, s.live_count) {
                s.peak_bytes = s.live_bytes;
                s.peak_count = s.live_count;
                s.count_flags |= PEAK_CHANGED;
            }
            s.count_flags &= !DIRTY;
        }
        self.dirty.clear();
    }

    /// What changed in a traceback's figures since the last call for it (the profiler's
    /// drain), and forget it.
    #[inline]
    pub fn take_changes(&mut self, tb: TbId) -> Changes {
        let s = &mut self.per_tb[tb as usize];
        let flags = s.count_flags;
        // The drain asks this of every written traceback, most of them unchanged: those
        // are only read, not written.
        if flags & (CHANGED | PEAK_CHANGED) != 0 {
            s.count_flags = flags & !(CHANGED | PEAK_CHANGED);
        }
        Changes {
            counters: flags & CHANGED != 0,
            peak: flags & PEAK_CHANGED != 0,
        }
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

    /// Bytes of memory held, per structure.
    pub fn memory_parts(&self, out: &mut Vec<(&'static str, usize)>) {
        out.push((
            "stats.per_tb",
            self.per_tb.capacity() * size_of::<TbStats>(),
        ));
        out.push(("stats.dirty", self.dirty.capacity() * size_of::<TbId>()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_figures_are_those_at_the_high_water_mark() {
        let mut s = Stats::default();
        s.ensure_tb(0);
        s.ensure_tb(1);
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

    /// One operation on the counters: (kind, traceback, other traceback, size).
    #[derive(Debug, Clone)]
    enum Op {
        Alloc(TbId, u64),
        Free(TbId, u64),
        Retag(TbId, TbId, u64),
        CapturePeak,
        TakeChanges,
    }

    fn op(ntb: TbId) -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..ntb, 1u64..1000).prop_map(|(t, n)| Op::Alloc(t, n)),
            3 => (0..ntb, 1u64..1000).prop_map(|(t, n)| Op::Free(t, n)),
            1 => (0..ntb, 0..ntb, 1u64..1000).prop_map(|(a, b, n)| Op::Retag(a, b, n)),
            1 => Just(Op::CapturePeak),
            1 => Just(Op::TakeChanges),
        ]
    }

    /// Plain per-traceback figures: (live bytes, live blocks, total bytes, total blocks).
    type Figures = (u64, u64, u64, u64);

    proptest::proptest! {
        /// The packed counters agree with plain per-traceback figures; the change flags report
        /// exactly the tracebacks touched since the last take, and every traceback whose
        /// figures at the peak differ from those at the last take.
        #[test]
        fn packed_counters_and_flags_agree_with_a_plain_model(
            ops in proptest::collection::vec(op(6), 1..400)
        ) {
            const N: usize = 6;
            let mut s = Stats::default();
            for tb in 0..N {
                s.ensure_tb(tb as TbId);
            }
            let mut live: Vec<Figures> = vec![(0, 0, 0, 0); N];
            let mut touched = [false; N];
            // Figures at the peak: the live figures when `current` was highest.
            let (mut current, mut peak) = (0u64, 0u64);
            let mut at_peak: Vec<(u64, u64)> = vec![(0, 0); N];
            let mut peak_at_take: Vec<(u64, u64)> = vec![(0, 0); N];
            for op in ops {
                match op {
                    Op::Alloc(tb, n) => {
                        s.alloc(tb, n);
                        let f = &mut live[tb as usize];
                        *f = (f.0 + n, f.1 + 1, f.2 + n, f.3 + 1);
                        touched[tb as usize] = true;
                        current += n;
                    }
                    Op::Free(tb, n) => {
                        s.free(tb, n);
                        let f = &mut live[tb as usize];
                        current -= n.min(current);
                        *f = (f.0.saturating_sub(n), f.1.saturating_sub(1), f.2, f.3);
                        touched[tb as usize] = true;
                    }
                    Op::Retag(a, b, n) => {
                        s.retag(a, b, n);
                        let f = &mut live[a as usize];
                        *f = (f.0.saturating_sub(n), f.1.saturating_sub(1), f.2, f.3);
                        // The object was made at `b`: allocated there too.
                        let f = &mut live[b as usize];
                        *f = (f.0 + n, f.1 + 1, f.2 + n, f.3 + 1);
                        touched[a as usize] = true;
                        touched[b as usize] = true;
                    }
                    Op::CapturePeak => s.capture_peak(),
                    Op::TakeChanges => {
                        s.capture_peak();
                        for tb in 0..N {
                            let c = s.take_changes(tb as TbId);
                            proptest::prop_assert_eq!(c.counters, touched[tb]);
                            if at_peak[tb] != peak_at_take[tb] {
                                proptest::prop_assert!(c.peak);
                            }
                            touched[tb] = false;
                            peak_at_take[tb] = at_peak[tb];
                        }
                    }
                }
                if s.current > peak {
                    peak = s.current;
                    at_peak = live.iter().map(|f| (f.0, f.1)).collect();
                }
                proptest::prop_assert_eq!(s.current, current);
                for (t, want) in s.per_tb.iter().zip(&live) {
                    let got = (t.live_bytes, t.live_count(), t.total_bytes, t.total_count());
                    proptest::prop_assert_eq!(&got, want);
                    // Nothing is held that was not allocated there.
                    proptest::prop_assert!(t.live_bytes <= t.total_bytes);
                    proptest::prop_assert!(t.live_count() <= t.total_count());
                }
            }
            s.capture_peak();
            proptest::prop_assert_eq!(s.peak, peak);
            for (t, want) in s.per_tb.iter().zip(&at_peak) {
                proptest::prop_assert_eq!(&(t.peak_bytes, t.peak_count()), want);
                proptest::prop_assert!(t.peak_bytes <= t.total_bytes);
                proptest::prop_assert!(t.peak_count() <= t.total_count());
            }
        }
    }
}
