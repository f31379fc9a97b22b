//! Sampling with pymalloc's own free on MEM and OBJ: the cheapest hooks that keep the books.
//!
//! In sampling mode almost no block is sampled, yet a free hook still runs for every free
//! (callgrind, json_roundtrip on 3.13: half of the hooks' cost is on the free side, counting
//! pymalloc's free called out of line through the hook). So the free slot keeps the original
//! allocator's function and ctx, untouched, and a sampled block is made to come from the RAW
//! allocator instead: pymalloc serves requests above 512 bytes with `PyMem_RawMalloc` and
//! frees them with `PyMem_RawFree`, which is heapscope's RAW hook, and that forgets them. A
//! sampled block asks for at least `MIN_SIZE` bytes (the trace keeps the size asked for): at
//! one sample per 512 KiB by default that is under 0.1 % more memory, and pymalloc's own
//! counts (`sys.getallocatedblocks`) stay balanced, as the block goes out through pymalloc too.
//!
//! Only used where a probe at start sees MEM and OBJ behave like that (plain pymalloc, or
//! hooks over it that pass blocks through unchanged); under `PYTHONMALLOC=malloc`,
//! `pymalloc_debug` or a foreign allocator the ordinary sampling hooks are installed.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicI64, AtomicPtr, Ordering};

use pyo3_ffi::{PyMemAllocatorDomain, PyMemAllocatorEx};

use super::{
    call_calloc, call_free, call_malloc, call_realloc, forget_sampled, nested, original,
    original_of, ORIGINAL,
};
use crate::interp;
use crate::state::state;

/// pymalloc's small-request threshold is 512 bytes on every supported version (64-bit):
/// anything larger goes to RAW.
const MIN_SIZE: usize = 513;

/// True if pymalloc serves a request of `size` bytes from its pools, never calling RAW (its
/// arenas come from the arena allocator, not RAW; 0 bytes go to RAW; only a failed arena
/// allocation, out of memory, would fall back to RAW). Such a call needs no nesting mark, so
/// the hook ends in a tail call: `d_malloc` went from 22 to 18 instructions a call (callgrind).
/// The mark also tells `--native`'s hooks an arena's mmap is Python's: direct sampling is
/// never installed with `--native` (`lib.rs`).
#[inline(always)]
fn pool_sized(size: usize) -> bool {
    size.wrapping_sub(1) < MIN_SIZE - 1
}

/// The hooks of GIL domain `i` (1 MEM, 2 OBJ): ours for malloc, calloc and realloc, reading
/// the original through `i`, since the ctx is the original's own.
pub(super) fn hooks(i: usize, orig: &PyMemAllocatorEx) -> PyMemAllocatorEx {
    let (malloc, calloc, realloc): (MallocFn, CallocFn, ReallocFn) = if i == 1 {
        (d_malloc::<1>, d_calloc::<1>, d_realloc::<1>)
    } else {
        (d_malloc::<2>, d_calloc::<2>, d_realloc::<2>)
    };
    PyMemAllocatorEx {
        ctx: orig.ctx,
        malloc: Some(malloc),
        calloc: Some(calloc),
        realloc: Some(realloc),
        free: orig.free,
    }
}

type MallocFn = extern "C" fn(*mut c_void, usize) -> *mut c_void;
type CallocFn = extern "C" fn(*mut c_void, usize, usize) -> *mut c_void;
type ReallocFn = extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void;

/// Bytes to the next sample point of the MEM/OBJ allocations, here rather than in the
/// tracer's state: `take` is then a subtraction and a test, without first finding the state
/// and its sampler (four instructions of the ~20 each allocation pays). The RAW hooks keep
/// drawing from the state's sampler: two independent streams of exponential gaps, each
/// block on one of them, so every block is still sampled with probability
/// `1 - exp(-size / rate)`. Only the main GIL's holder changes it.
static COUNTDOWN: AtomicI64 = AtomicI64::new(i64::MAX);

/// Draw the first countdown of the direct hooks just installed (GIL held).
pub(super) fn arm(st: &mut crate::state::State) {
    COUNTDOWN.store(st.first_direct_interval(), Ordering::Relaxed);
}

/// Move the sampler past a block of `size` bytes; true if it is sampled.
#[inline(always)]
fn take(size: usize) -> bool {
    let left = COUNTDOWN.load(Ordering::Relaxed).wrapping_sub(size as i64);
    COUNTDOWN.store(left, Ordering::Relaxed);
    left <= 0
}

/// Trace a block `take` selected (unless its allocation failed) and draw the next point.
#[cold]
#[inline(never)]
fn sampled(p: *mut c_void, size: usize) {
    // SAFETY: MEM/OBJ allocators are called with the GIL held; the reference ends here.
    let next = unsafe { state() }.map_or(i64::MAX, |st| {
        // SAFETY: GIL held; `st` is the only live state reference.
        unsafe { st.on_direct_sample_point(p, size) }
    });
    COUNTDOWN.store(next, Ordering::Relaxed);
}

extern "C" fn d_malloc<const I: usize>(_ctx: *mut c_void, size: usize) -> *mut c_void {
    let a = original_of(I);
    // Not `nested`: IN_GIL_HOOK is the main GIL holder's.
    if interp::foreign() {
        return call_malloc(a, size);
    }
    if !take(size) {
        if pool_sized(size) {
            return call_malloc(a, size);
        }
        return nested(|| call_malloc(a, size));
    }
    let p = nested(|| call_malloc(a, size.max(MIN_SIZE)));
    sampled(p, size);
    p
}

extern "C" fn d_calloc<const I: usize>(
    _ctx: *mut c_void,
    nelem: usize,
    elsize: usize,
) -> *mut c_void {
    let a = original_of(I);
    if interp::foreign() {
        return call_calloc(a, nelem, elsize);
    }
    // An overflowing product passes through: the allocator fails it.
    let Some(size) = nelem.checked_mul(elsize) else {
        return nested(|| call_calloc(a, nelem, elsize));
    };
    if !take(size) {
        if pool_sized(size) {
            return call_calloc(a, nelem, elsize);
        }
        return nested(|| call_calloc(a, nelem, elsize));
    }
    let (n, each) = if size < MIN_SIZE {
        (1, MIN_SIZE)
    } else {
        (nelem, elsize)
    };
    let p = nested(|| call_calloc(a, n, each));
    sampled(p, size);
    p
}

extern "C" fn d_realloc<const I: usize>(
    _ctx: *mut c_void,
    old: *mut c_void,
    size: usize,
) -> *mut c_void {
    let a = original_of(I);
    if interp::foreign() {
        return call_realloc(a, old, size);
    }
    let sample = take(size);
    // A sampled result must come from RAW: pymalloc moves a pool block asked to grow past
    // its threshold to RAW, and keeps a RAW block in RAW whatever the new size.
    let ask = if sample { size.max(MIN_SIZE) } else { size };
    let p = nested(|| call_realloc(a, old, ask));
    if !p.is_null() && !old.is_null() {
        // SAFETY: as in `take`.
        if let Some(st) = unsafe { state() } {
            st.on_free(old);
        }
    }
    if sample {
        sampled(p, size);
    }
    p
}

/// A RAW block was freed by a thread that may be pymalloc freeing a sampled block: forget it.
#[inline(always)]
pub(super) fn forget(p: *mut c_void) {
    if interp::holds_main_gil() {
        // SAFETY: the GIL is held, and DIRECT is set only in sampling mode; no state
        // reference is live on this path.
        unsafe { forget_sampled(p) };
    }
}

/// What the probe's RAW allocator saw last.
static LAST_ALLOC: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static LAST_FREE: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

extern "C" fn probe_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let p = call_malloc(original(ctx), size);
    LAST_ALLOC.store(p, Ordering::Relaxed);
    p
}
extern "C" fn probe_calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    let p = call_calloc(original(ctx), nelem, elsize);
    LAST_ALLOC.store(p, Ordering::Relaxed);
    p
}
extern "C" fn probe_realloc(ctx: *mut c_void, old: *mut c_void, size: usize) -> *mut c_void {
    // Not expected from the probe's calls; a realloc seen means the chain is not plain.
    LAST_ALLOC.store(ptr::null_mut(), Ordering::Relaxed);
    call_realloc(original(ctx), old, size)
}
extern "C" fn probe_free(ctx: *mut c_void, p: *mut c_void) {
    LAST_FREE.store(p, Ordering::Relaxed);
    call_free(original(ctx), p);
}

/// True if MEM and OBJ, as installed now, hand a `MIN_SIZE` block (from malloc and calloc)
/// straight from the RAW allocator, unchanged, and give it back to RAW when freed: then
/// every sampled block's free reaches the RAW hook.
///
/// # Safety
/// The GIL is held, heapscope's hooks are not installed and ORIGINAL holds the allocators
/// installed now.
pub(super) unsafe fn pymalloc_forwards_to_raw() -> bool {
    // SAFETY: per the contract ORIGINAL is filled and no hook reads it.
    let originals = unsafe { &mut *ORIGINAL.0.get() };
    let mut probe = PyMemAllocatorEx {
        ctx: (&raw mut originals[0]).cast(),
        malloc: Some(probe_malloc),
        calloc: Some(probe_calloc),
        realloc: Some(probe_realloc),
        free: Some(probe_free),
    };
    // SAFETY: a valid allocator over the current RAW one; put back below. A RAW call from
    // another thread meanwhile passes through (and at worst fails the probe).
    unsafe { pyo3_ffi::PyMem_SetAllocator(PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &raw mut probe) };
    let mut ok = true;
    for a in &originals[1..] {
        for use_calloc in [false, true] {
            LAST_ALLOC.store(ptr::null_mut(), Ordering::Relaxed);
            let p = if use_calloc {
                call_calloc(a, 1, MIN_SIZE)
            } else {
                call_malloc(a, MIN_SIZE)
            };
            if p.is_null() {
                ok = false;
                continue;
            }
            ok &= LAST_ALLOC.load(Ordering::Relaxed) == p;
            LAST_FREE.store(ptr::null_mut(), Ordering::Relaxed);
            call_free(a, p);
            ok &= LAST_FREE.load(Ordering::Relaxed) == p;
        }
    }
    // SAFETY: restoring the RAW allocator read by `install`.
    unsafe {
        pyo3_ffi::PyMem_SetAllocator(
            PyMemAllocatorDomain::PYMEM_DOMAIN_RAW,
            &raw mut originals[0],
        );
    }
    ok
}
