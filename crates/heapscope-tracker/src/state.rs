//! The tracer's state and the two operations of the hot path.
//!
//! Everything here but the RAW table is touched only by the thread holding the GIL: the MEM
//! and OBJ allocators are only called with the GIL held, and RAW allocations take the GIL as
//! the stdlib does. So the hot path takes no lock. RAW frees can come from any thread without
//! the GIL: they go through a spinlocked side table and a queue of pending frees that the next
//! GIL holder applies.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::codes::CodeFrames;
use crate::domains::DomainTable;
use crate::intern::{Interner, TbId};
use crate::sampling::Sampler;
use crate::spin::SpinLock;
use crate::stack::{Captured, FrameLayout, RawFrame, WalkCache};
use crate::stats::Stats;
use crate::table::LiveTable;

/// State owned by the GIL holder.
pub struct State {
    pub layout: &'static FrameLayout,
    /// `layout.capture_cached`, or its checking twin while `HEAPSCOPE_VERIFY_FRAME_CACHE=1`
    /// (`set_frame_cache`): chosen once, so the hot path pays nothing for the check.
    pub capture_cached: crate::stack::CaptureCached,
    pub active: bool,
    /// Key tracebacks by thread too (profile mode).
    pub by_thread: bool,
    /// While true, allocations are not traced (our own work); frees still are.
    pub suspended: bool,
    pub scratch: Vec<RawFrame>,
    /// What the last walk into `scratch` found (3.13+, `monitor.rs`); reset whenever
    /// `scratch` changes otherwise.
    pub walk_cache: WalkCache,
    /// The frames of the native event being applied (`journal::apply_native`), kept between
    /// applications.
    pub native_frames: Vec<RawFrame>,
    pub interner: Interner,
    pub stats: Stats,
    pub table: LiveTable,
    /// Where interned frames name each code object (no reference is held: see `codes.rs`).
    pub codes: CodeFrames,
    /// Up to four threads whose allocations are not traced (e.g. the recorder's flusher).
    pub ignored: [usize; 4],
    /// Poisson sampling of allocations, if on.
    pub sampler: Option<Sampler>,
    /// Stack walks stop before this interpreter frame (the profiler's runner), if set.
    pub floor: usize,
    /// Address and size of the block traced last, until the next `_Py_NewReference`: on the
    /// object just allocated there it needs no second stack walk (an object inside that block
    /// can only be that block's object).
    pub last_traced: usize,
    pub last_size: usize,
    /// Blocks of objects reused from free lists that the table was found not to hold, by a
    /// direct-mapped slot of their address ([`untraced_slot`]): free lists filled before
    /// tracing started keep handing out the same few untraced blocks (strings.py on 3.14:
    /// 6.3M of its 13M new objects), and each lookup in the table missed the cache twice (the
    /// pool's record, then the slot). An entry is cleared when a block is traced at its
    /// address (`record`, the one place the table gains a block).
    pub untraced: Box<[usize; UNTRACED_SLOTS]>,
    /// Tracebacks interned since the profiler's last sweep: a burst of new stacks calls for
    /// an early drain, whose sweep frees what they no longer need.
    pub new_since_sweep: usize,
    /// Tracebacks interned and not written by the profiler yet: what its drain writes,
    /// instead of a scan of every slot at each drain. Listed from a drain's first scan until
    /// the profiler starts over (`drain::reset_drain`); `None` meanwhile, so the in-process
    /// tracer without a profiler keeps no such list.
    pub fresh: Option<Vec<TbId>>,
}

/// Dead tracebacks a sweep may keep beyond half as many as those holding memory before it
/// forgets them even when their last changes are not written yet (`State::sweep`).
pub const SWEEP_SLACK: usize = 16_384;

/// What a sweep forgot.
#[derive(Default)]
pub struct Swept {
    /// Traceback slots freed.
    pub tracebacks: Vec<TbId>,
    /// Of those, the ones with changes the profiler had not taken: the changes and the
    /// final figures.
    pub last_changes: Vec<(TbId, crate::stats::Changes, crate::stats::TbStats)>,
    /// Node slots freed.
    pub nodes: Vec<crate::intern::NodeId>,
}

/// Where `record` enters a block: the MEM/OBJ table (GIL holder only), the RAW table, or the
/// table of blocks extensions report (`PyTraceMalloc_Track`) in a domain. One word whose high
/// half is the domain as the interner's owner key wants it (`domains::owner_key`): measured
/// (callgrind, records.py) a few instructions a traced allocation cheaper than an enum.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dest(u64);

impl Dest {
    pub const GIL: Dest = Dest(0);
    pub const RAW: Dest = Dest(1);

    /// The tracked-blocks table, in `domain`.
    pub fn tracked(domain: u32) -> Dest {
        Dest(2 | crate::domains::owner_key(0, domain))
    }

    /// The domain in the high half, the rest zero.
    #[inline(always)]
    fn domain_bits(self) -> u64 {
        self.0 & !u64::from(u32::MAX)
    }

    #[inline(always)]
    fn kind(self) -> u32 {
        self.0 as u32
    }
}

/// Blocks from the RAW domain, whose frees may come without the GIL.
#[derive(Default)]
pub struct RawShared {
    pub table: LiveTable,
    pub pending: Vec<(u64, TbId)>,
    /// Blocks reported by extensions (`PyTraceMalloc_Track`), by domain.
    pub domains: DomainTable,
    /// The RAW block `PyTraceMalloc_Untrack(0, ..)` forgot last: (address, size, traceback).
    /// numpy 2.5 untracks its buffers from domain 0 and tracks them in its own domain right
    /// after; that track moves the block's count in the totals instead of counting it again.
    pub untracked_raw: Option<(usize, u64, TbId)>,
}

pub struct GilCell(UnsafeCell<Option<State>>);
// SAFETY: the cell is only accessed by the thread holding the GIL (see `state`).
unsafe impl Sync for GilCell {}

pub static STATE: GilCell = GilCell(UnsafeCell::new(None));
pub static RAW: SpinLock<Option<RawShared>> = SpinLock::new(None);
pub static PENDING: AtomicBool = AtomicBool::new(false);
/// Mirrors of the GIL-owned totals, readable from any thread (single writer: the GIL holder).
pub static CURRENT: AtomicU64 = AtomicU64::new(0);
pub static PEAK: AtomicU64 = AtomicU64::new(0);

/// Entries of [`State::untraced`] (2 KiB).
pub const UNTRACED_SLOTS: usize = 256;

/// The slot of a block address in [`State::untraced`] (blocks are 16-byte aligned).
#[inline(always)]
fn untraced_slot(addr: usize) -> usize {
    (addr >> 4) & (UNTRACED_SLOTS - 1)
}

/// The state, if the tracer was ever started.
///
/// # Safety
/// The caller holds the GIL and no other reference obtained from this function is alive.
#[inline(always)]
pub unsafe fn state() -> Option<&'static mut State> {
    // SAFETY: per the contract, access is serialised by the GIL and not aliased.
    unsafe { (*STATE.0.get()).as_mut() }
}

/// Install the state on first use.
///
/// # Safety
/// The caller holds the GIL and no reference obtained from `state` is alive.
#[allow(clippy::mut_from_ref)] // the state is a GIL-guarded global, not borrowed from `layout`
pub unsafe fn init_state(layout: &'static FrameLayout) -> &'static mut State {
    // SAFETY: per the contract.
    let slot = unsafe { &mut *STATE.0.get() };
    slot.get_or_insert_with(|| State {
        layout,
        capture_cached: layout.capture_cached,
        active: false,
        by_thread: false,
        suspended: false,
        scratch: Vec::new(),
        walk_cache: WalkCache::default(),
        native_frames: Vec::new(),
        interner: Interner::default(),
        stats: Stats::default(),
        table: LiveTable::default(),
        codes: CodeFrames::default(),
        ignored: [0; 4],
        sampler: None,
        floor: 0,
        last_traced: 0,
        last_size: 0,
        untraced: Box::new([0; UNTRACED_SLOTS]),
        new_since_sweep: 0,
        fresh: None,
    })
}

/// The thread state of the thread holding the GIL (the caller, when it holds it); the symbol
/// depends on the version (`stack/mod.rs`).
pub use crate::stack::current_tstate;

impl State {
    /// Publish the totals for readers without the GIL.
    #[inline(always)]
    pub fn publish(&self) {
        CURRENT.store(self.stats.current, Ordering::Relaxed);
        PEAK.store(self.stats.peak, Ordering::Relaxed);
    }

    /// Apply RAW frees that arrived without the GIL.
    #[inline(always)]
    pub fn apply_pending(&mut self) {
        if PENDING.load(Ordering::Acquire) {
            self.apply_pending_slow();
        }
    }

    #[cold]
    fn apply_pending_slow(&mut self) {
        let pending = {
            let mut raw = RAW.lock();
            PENDING.store(false, Ordering::Release);
            raw.as_mut()
                .map(|r| std::mem::take(&mut r.pending))
                .unwrap_or_default()
        };
        for (size, tb) in pending {
            if (tb as usize) < self.stats.per_tb.len() {
                self.stats.free(tb, size);
            }
        }
        if self.active {
            self.apply_native();
        }
        self.publish();
    }

    /// Trace a new block at `ptr` (the calling thread holds the GIL). Only the checks that
    /// end most calls in sampling mode are inlined into the hooks; the rest is `record`.
    ///
    /// # Safety
    /// The GIL is held; `self` is the only live reference to the state.
    #[inline(always)]
    pub unsafe fn on_alloc(&mut self, ptr: *mut c_void, size: usize, raw: bool) {
        if !self.active || self.suspended {
            return;
        }
        let size = match &mut self.sampler {
            None => size as u64,
            Some(sampler) => match sampler.sample(size as u64) {
                Some(weight) => weight,
                None => return,
            },
        };
        // SAFETY: per this function's contract.
        unsafe { self.record(ptr, size, if raw { Dest::RAW } else { Dest::GIL }) };
    }

    /// Sampling hooks: move the sampler past a new block; true if the block must go to
    /// `on_sample_point` (a sample point fell inside it, or the tracer is not sampling).
    #[inline(always)]
    pub fn take_sample_point(&mut self, size: usize) -> bool {
        match &mut self.sampler {
            Some(sampler) => sampler.take(size as u64),
            None => true,
        }
    }

    /// A sample point fell in the block at `ptr` (null: its allocation failed): trace it,
    /// unless tracing is off or suspended, and return the bytes to the next sample point,
    /// drawn from the sampler. Direct sampling (`hooks/direct.rs`) keeps that countdown
    /// itself; `on_sample_point` puts it back in the sampler.
    ///
    /// # Safety
    /// As `on_alloc`.
    #[inline(never)]
    pub unsafe fn on_direct_sample_point(&mut self, ptr: *mut c_void, size: usize) -> i64 {
        let Some(sampler) = &mut self.sampler else {
            return i64::MAX;
        };
        let next = sampler.next_interval();
        if !ptr.is_null() && self.active && !self.suspended {
            let weight = sampler.weight(size as u64);
            // SAFETY: per this function's contract.
            unsafe { self.record(ptr, weight, Dest::GIL) };
        }
        next
    }

    /// Direct sampling's first countdown, drawn when its hooks are installed.
    pub fn first_direct_interval(&mut self) -> i64 {
        self.sampler
            .as_mut()
            .map_or(i64::MAX, crate::sampling::Sampler::next_interval)
    }

    /// Sampling hooks: trace a block that `take_sample_point` selected.
    ///
    /// # Safety
    /// As `on_alloc`.
    #[inline(never)]
    pub unsafe fn on_sample_point(&mut self, ptr: *mut c_void, size: usize) {
        if self.sampler.is_none() {
            // SAFETY: per this function's contract.
            return unsafe { self.on_alloc(ptr, size, false) };
        }
        // The same work as direct sampling's, the next point kept in the sampler.
        // SAFETY: per this function's contract.
        let next = unsafe { self.on_direct_sample_point(ptr, size) };
        if let Some(sampler) = &mut self.sampler {
            sampler.set_countdown(next);
        }
    }

    /// Walk the stack, intern it and enter the block in the table `dest`. The one caller of
    /// the interner on the allocation path (a second call site made LLVM stop inlining it:
    /// ~2% more instructions per traced allocation, callgrind on records.py).
    ///
    /// # Safety
    /// As `on_alloc`.
    #[inline(never)]
    pub(crate) unsafe fn record(&mut self, ptr: *mut c_void, size: u64, dest: Dest) {
        #[cfg(feature = "ablation")]
        let stage = crate::ablation::stage();
        #[cfg(feature = "ablation")]
        if stage == 0 {
            return;
        }
        self.apply_pending();
        // SAFETY: per this function's contract.
        let Some(tb) = (unsafe { self.traceback_here(dest.domain_bits()) }) else {
            return;
        };
        #[cfg(feature = "ablation")]
        if stage == 2 {
            return;
        }
        let addr = ptr as usize;
        self.last_traced = addr;
        self.last_size = size as usize;
        let old = if dest == Dest::GIL {
            let slot = untraced_slot(addr);
            if self.untraced[slot] == addr {
                self.untraced[slot] = 0;
            }
            self.table.insert(addr, size, tb)
        } else {
            Self::record_elsewhere(addr, size, tb, dest)
        };
        if let Some((old_size, old_tb)) = old {
            self.stats.free(old_tb, old_size);
        }
        self.stats.alloc(tb, size);
        self.publish();
    }

    /// Enter a block in the RAW or the tracked-blocks table; the previous figures of the
    /// address, if any.
    #[inline(never)]
    fn record_elsewhere(addr: usize, size: u64, tb: TbId, dest: Dest) -> Option<(u64, TbId)> {
        let mut raw = RAW.lock();
        let r = raw.as_mut()?;
        if dest.kind() == Dest::RAW.kind() {
            r.table.insert(addr, size, tb)
        } else {
            r.domains
                .insert((dest.domain_bits() >> 32) as u32, addr, size, tb)
        }
    }

    /// The interned traceback of the calling thread's stack for a block whose domain is
    /// `domain_bits` (the domain in the high half of the word, as `domains::owner_key` puts
    /// it), or `None` if the thread is ignored (or an ablation build stops before interning).
    ///
    /// # Safety
    /// As `on_alloc`.
    #[inline(always)]
    unsafe fn traceback_here(&mut self, domain_bits: u64) -> Option<TbId> {
        #[cfg(feature = "ablation")]
        let stage = crate::ablation::stage();
        // We hold the GIL, so the current thread state is ours and alive.
        let tstate = current_tstate();
        if self.ignores(tstate) {
            return None;
        }
        // SAFETY: `tstate` is the calling thread's; its frames are alive during this call.
        // The cached walk's bookkeeping cost ~18 instructions a walk (callgrind,
        // json_roundtrip.py on 3.13): only a process that ever counted frame pushes pays it.
        let mut captured = unsafe {
            if crate::monitor::ever_installed() {
                (self.capture_cached)(
                    tstate,
                    &mut self.scratch,
                    self.floor as *const c_void,
                    &mut self.walk_cache,
                )
            } else {
                (self.layout.capture)(tstate, &mut self.scratch, self.floor as *const c_void)
            }
        };
        if captured.instrumenting {
            return None;
        }
        if captured.nframe == 0 {
            self.scratch[0] = RawFrame::UNKNOWN;
            captured = Captured {
                nframe: 1,
                total_nframe: 1,
                hash: 1,
                chain: 0,
                check: crate::intern::check_hash(&[RawFrame::UNKNOWN]),
                top: 0,
                instrumenting: false,
            };
        }
        #[cfg(feature = "ablation")]
        if stage == 1 {
            std::hint::black_box(captured);
            return None;
        }
        let thread = if self.by_thread {
            // SAFETY: as above.
            unsafe { (self.layout.native_thread_id)(tstate) }
        } else {
            0
        };
        let frames = &self.scratch[..captured.nframe];
        // The domain goes into the interner's owner key beside the thread (`domains.rs`).
        let owner = thread | domain_bits;
        let (tb, new) = self.interner.intern(
            frames,
            captured.total_nframe,
            owner,
            captured.hash,
            captured.check,
        );
        if new {
            self.on_new_traceback(tb);
        }
        Some(tb)
    }

    /// An object got its first reference (`_Py_NewReference`): if its memory block is traced
    /// and was not just allocated here (an object reused from a free list), it now belongs to
    /// the current stack, as the stdlib's tracemalloc re-attributes it.
    ///
    /// # Safety
    /// As `on_alloc`; `obj` is an object whose type is set.
    #[inline(always)]
    pub unsafe fn on_new_reference(&mut self, obj: *mut c_void) {
        if !self.active || self.suspended || self.sampler.is_some() {
            return;
        }
        if (obj as usize).wrapping_sub(self.last_traced) < self.last_size {
            // The object lies in the block just traced: it is the object allocated there, and
            // its trace already has this stack. Consumed, so that the block's reuse from a
            // free list later is not mistaken for it.
            self.last_size = 0;
            return;
        }
        // SAFETY: per the contract, the object's type is set and alive.
        let addr = obj as usize - unsafe { crate::stack::object_presize(obj) };
        // Most objects reused from free lists that are not traced (filled before tracing
        // started, cycling since) end here, without a call or a table lookup.
        let slot = untraced_slot(addr);
        if self.untraced[slot] == addr || !self.table.may_hold(addr) {
            return;
        }
        match self.table.lookup(addr) {
            // SAFETY: as above.
            Some((size, old_tb)) => unsafe { self.reattribute(addr, size, old_tb) },
            None => self.untraced[slot] = addr,
        }
    }

    /// True if the thread of `tstate` is one whose allocations are not traced (heapscope's
    /// own: `set_thread_ignored`).
    #[inline(always)]
    pub(crate) fn ignores(&self, tstate: *mut c_void) -> bool {
        self.ignored[0] != 0 && self.ignored.contains(&(tstate as usize))
    }

    /// The traced block at `addr` (`size` bytes, traceback `old_tb`) holds an object reused
    /// here: it now belongs to the current stack.
    #[inline(never)]
    unsafe fn reattribute(&mut self, addr: usize, size: u64, old_tb: TbId) {
        self.apply_pending();
        // SAFETY: per `on_new_reference`'s contract.
        let Some(tb) = (unsafe { self.traceback_here(0) }) else {
            // Made by a thread that is not the program's (heapscope's own, ignored): the
            // object is no longer the program's, whatever line made its block first. (Not
            // for the other refusals: an object made while the interpreter instruments a
            // code object is the program's, and keeps its line, as the stdlib counts it.)
            if self.ignores(current_tstate()) {
                self.forget(addr as *mut c_void);
            }
            return;
        };
        if tb != old_tb {
            self.table.insert(addr, size, tb);
            self.stats.retag(old_tb, tb, size);
        }
    }

    /// A traceback just interned (Python or native stack): its counters, the profiler's
    /// bookkeeping and the code objects its new nodes name.
    #[cold]
    pub(crate) fn on_new_traceback(&mut self, tb: TbId) {
        self.stats.ensure_tb(tb);
        self.new_since_sweep += 1;
        if let Some(fresh) = &mut self.fresh {
            fresh.push(tb);
        }
        for &node in self.interner.fresh() {
            self.codes.add(node, self.interner.node_frame(node));
        }
    }

    /// Forget the tracebacks `written` accepts that hold nothing and held nothing at the
    /// peak (`Stats::is_spent`), and the nodes only they needed. For the profiler's drain,
    /// which has written them: a traceback met again later is interned afresh. Normally only
    /// those whose last changes the profiler has taken go (a traceback allocated from again
    /// and again is kept); when most slots hold such dead tracebacks (a burst of new stacks:
    /// more than half as many as those holding something, plus [`SWEEP_SLACK`]) the others go too, and
    /// their last changes are returned for the profiler to write. Returns the tracebacks
    /// forgotten, with their changes not taken and their figures, and the node slots freed.
    pub fn sweep(&mut self, written: impl Fn(TbId) -> bool) -> Swept {
        self.apply_pending();
        self.stats.capture_peak();
        self.new_since_sweep = 0;
        // One pass over the slots: the written tracebacks holding nothing are the candidates.
        let (candidates, pressure) = self.sweep_candidates(&written);
        let mut swept = Swept::default();
        for tb in candidates {
            if self.stats.is_spent(tb, !pressure) {
                let changes = self.stats.take_changes(tb);
                if changes.counters || changes.peak {
                    swept
                        .last_changes
                        .push((tb, changes, self.stats.per_tb[tb as usize]));
                }
                let codes = &mut self.codes;
                self.interner.evict(tb, &mut |n, frame| {
                    codes.remove(n, frame);
                    swept.nodes.push(n);
                });
                swept.tracebacks.push(tb);
            }
        }
        swept
    }

    /// The written tracebacks holding nothing, and whether dead tracebacks outnumber those
    /// holding memory ([`State::sweep`]'s pressure): one pass over every slot.
    fn sweep_candidates(&self, written: &impl Fn(TbId) -> bool) -> (Vec<TbId>, bool) {
        let (mut in_use, mut holding) = (0usize, 0usize);
        let mut candidates = Vec::new();
        for (tb, live) in self.interner.live_slots().enumerate() {
            if live {
                in_use += 1;
                if self.stats.is_holding(tb as TbId) {
                    holding += 1;
                } else if written(tb as TbId) {
                    candidates.push(tb as TbId);
                }
            }
        }
        (candidates, in_use > holding + holding / 2 + SWEEP_SLACK)
    }

    /// Forget the block at `ptr` if it is traced (GIL domains).
    #[inline(always)]
    pub fn on_free(&mut self, ptr: *mut c_void) {
        if self.active && self.table.may_hold(ptr as usize) {
            self.forget(ptr);
        }
    }

    /// Forget the block at `ptr` if the table holds it (the filter, if any, already said it
    /// may).
    #[inline(never)]
    pub fn forget(&mut self, ptr: *mut c_void) {
        #[cfg(feature = "ablation")]
        if crate::ablation::stage() < 3 {
            return;
        }
        self.apply_pending();
        if let Some((size, tb)) = self.table.remove(ptr as usize) {
            self.stats.free(tb, size);
            self.publish();
        }
    }

    /// Forget every trace and traceback.
    pub fn clear(&mut self) {
        self.interner.clear();
        self.codes.clear();
        self.stats.clear();
        // No traceback is left to write: a list stays complete, empty.
        if let Some(fresh) = &mut self.fresh {
            *fresh = Vec::new();
        }
        self.table.clear();
        if let Some(r) = RAW.lock().as_mut() {
            r.table.clear();
            r.pending.clear();
            r.domains.clear();
        }
        crate::native::journal::clear();
        PENDING.store(false, Ordering::Release);
        self.publish();
    }

    /// Bytes of memory the tracer holds, per structure.
    pub fn memory_parts(&self, out: &mut Vec<(&'static str, usize)>) {
        let (raw_table, raw_domains) = RAW
            .lock()
            .as_ref()
            .map_or((0, 0), |r| (r.table.memory(), r.domains.memory()));
        self.interner.memory_parts(out);
        self.stats.memory_parts(out);
        out.push(("table", self.table.memory()));
        out.push(("table.raw", raw_table));
        out.push(("table.domains", raw_domains));
        out.push(("codes", self.codes.memory()));
        out.push(("scratch", self.scratch.capacity() * size_of::<RawFrame>()));
        out.push((
            "fresh",
            self.fresh.as_ref().map_or(0, Vec::capacity) * size_of::<TbId>(),
        ));
        out.push((
            "native frames",
            self.native_frames.capacity() * size_of::<RawFrame>(),
        ));
        out.push(("native journal", crate::native::journal::memory()));
    }
}
