//! The PyMem allocator hooks on the RAW, MEM and OBJ domains. Each wraps the allocator that
//! was installed before it (kept in `ORIGINAL`), so heapscope composes with other hooks.
//!
//! A block's trace is removed before the block is freed, so another thread cannot be handed the
//! same address and have its new trace removed by mistake.

use std::cell::{Cell, UnsafeCell};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use pyo3_ffi::{PyMemAllocatorDomain, PyMemAllocatorEx};

use crate::interp;
use crate::state::{state, PENDING, RAW};

mod direct;

struct Originals(UnsafeCell<[PyMemAllocatorEx; 3]>);
// SAFETY: written only by `install`, under the GIL, before any hook can read it.
unsafe impl Sync for Originals {}

const EMPTY: PyMemAllocatorEx = PyMemAllocatorEx {
    ctx: ptr::null_mut(),
    malloc: None,
    calloc: None,
    realloc: None,
    free: None,
};
static ORIGINAL: Originals = Originals(UnsafeCell::new([EMPTY; 3]));

/// Where the installed hooks find the allocators they wrap: `ORIGINAL`, or, once hooks were
/// left in another tracer's chain, a copy of its own (null: `ORIGINAL`). Hooks left behind
/// keep their ctx, pointing at the originals they were installed over, and pass through to
/// them (the state is inactive): overwriting those originals with an allocator that calls
/// them back would loop.
static SLOT: AtomicPtr<PyMemAllocatorEx> = AtomicPtr::new(ptr::null_mut());
/// Hooks of the current slot are in another allocator's chain (stop() found that allocator
/// installed over them, e.g. the stdlib's tracemalloc started while heapscope traced): its
/// originals must stay as they are.
static PINNED: AtomicBool = AtomicBool::new(false);

/// The current slot's three allocators (RAW, MEM, OBJ).
fn slot() -> *mut PyMemAllocatorEx {
    let p = SLOT.load(Ordering::Relaxed);
    if p.is_null() {
        ORIGINAL.0.get().cast()
    } else {
        p
    }
}

const DOMAINS: [PyMemAllocatorDomain; 3] = [
    PyMemAllocatorDomain::PYMEM_DOMAIN_RAW,
    PyMemAllocatorDomain::PYMEM_DOMAIN_MEM,
    PyMemAllocatorDomain::PYMEM_DOMAIN_OBJ,
];

/// Set by the GIL holder while it runs the allocator underneath a MEM/OBJ hook: pymalloc
/// serves large blocks from the RAW allocator, and that nested call must not be traced twice.
/// Only the GIL holder writes it, so a RAW hook that holds the GIL and sees it set is nested.
static IN_GIL_HOOK: AtomicBool = AtomicBool::new(false);

/// Run the wrapped allocator of a GIL domain, marking the nesting.
#[inline(always)]
fn nested<T>(f: impl FnOnce() -> T) -> T {
    IN_GIL_HOOK.store(true, Ordering::Relaxed);
    let r = f();
    IN_GIL_HOOK.store(false, Ordering::Relaxed);
    r
}

/// True if this RAW call comes from inside one of our MEM/OBJ hooks.
#[inline(always)]
fn nested_in_gil_hook() -> bool {
    IN_GIL_HOOK.load(Ordering::Relaxed) && interp::holds_main_gil()
}

thread_local! {
    /// Set while a RAW hook of this thread is running: what it calls (taking the GIL may
    /// allocate) is passed straight through.
    static IN_RAW_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// True if the calling thread is inside one of heapscope's PyMem hooks, running the allocator
/// underneath: what that allocator takes from the C library (pymalloc's arenas, RAW blocks) is
/// Python memory already, so the `--native` hooks let it pass.
#[inline(always)]
pub fn inside_pymem_hook() -> bool {
    IN_RAW_HOOK.get() || nested_in_gil_hook()
}

/// Which MEM/OBJ hooks are installed: the sampling ones or the full-tracing ones.
static SAMPLED_HOOKS: AtomicBool = AtomicBool::new(false);

/// True if the sampling hooks are (or were last) installed.
pub fn installed_sampled() -> bool {
    SAMPLED_HOOKS.load(Ordering::Relaxed)
}

/// True if the MEM/OBJ frees are pymalloc's own (`direct`): the RAW free hook then forgets
/// the sampled blocks, which all come from RAW.
static DIRECT: AtomicBool = AtomicBool::new(false);

/// True if the direct sampling hooks are (or were last) installed (never without sampling).
pub fn installed_direct() -> bool {
    DIRECT.load(Ordering::Relaxed)
}

/// Restart the direct hooks' countdown from `st`'s sampler (just installed, or a new rate).
pub fn arm_direct(st: &mut crate::state::State) {
    if installed_direct() {
        direct::arm(st);
    }
}

/// Install the hooks on the three domains; `sampled` picks MEM/OBJ hooks that skip unsampled
/// blocks before touching the tracer's state. `direct` (sampling only, when nothing is traced
/// yet) leaves the MEM/OBJ frees to pymalloc itself if the probe finds plain pymalloc there:
/// see `direct`.
///
/// # Safety
/// The GIL is held and the hooks are not installed.
pub unsafe fn install(sampled: bool, direct: bool) {
    SAMPLED_HOOKS.store(sampled, Ordering::Relaxed);
    let current = current_allocators();
    let ours_on_top = (0..3).all(|i| is_installed_hook(i, &current[i]));
    if ours_on_top {
        // Another tracer put our hooks back (its stop): they are on top and the slot holds
        // what they were installed over; only their functions change with the mode. Nothing
        // else calls them now.
        PINNED.store(false, Ordering::Relaxed);
    } else {
        if PINNED.swap(false, Ordering::Relaxed) {
            // The slot's originals are read by hooks still in another allocator's chain.
            let fresh: &'static mut [PyMemAllocatorEx; 3] = Box::leak(Box::new([EMPTY; 3]));
            SLOT.store(fresh.as_mut_ptr(), Ordering::Relaxed);
        }
        // SAFETY: the slot is not read by any installed hook of ours (a fresh one, or ours
        // were put back cleanly); GIL held.
        let originals = unsafe { std::slice::from_raw_parts_mut(slot(), 3) };
        originals.copy_from_slice(&current);
    }
    // SAFETY: the slot lives forever; hooks read it only under the GIL or through ctx.
    let originals = unsafe { std::slice::from_raw_parts_mut(slot(), 3) };
    // Direct hooks read `ORIGINAL` itself (`original_of`), and only where it holds what is
    // installed now.
    let direct = sampled
        && direct
        && !ours_on_top
        && SLOT.load(Ordering::Relaxed).is_null()
        // SAFETY: GIL held, hooks not installed; ORIGINAL is filled.
        && unsafe { direct::pymalloc_forwards_to_raw() };
    DIRECT.store(direct, Ordering::Relaxed);
    for (i, domain) in DOMAINS.into_iter().enumerate() {
        let ctx = (&raw mut originals[i]).cast::<c_void>();
        let mut hook = if i == 0 {
            PyMemAllocatorEx {
                ctx,
                malloc: Some(raw_malloc),
                calloc: Some(raw_calloc),
                realloc: Some(raw_realloc),
                free: Some(raw_free),
            }
        } else if direct {
            direct::hooks(i, &originals[i])
        } else if sampled {
            PyMemAllocatorEx {
                ctx,
                malloc: Some(smp_malloc),
                calloc: Some(gil_calloc),
                realloc: Some(gil_realloc),
                free: Some(smp_free),
            }
        } else {
            PyMemAllocatorEx {
                ctx,
                malloc: Some(gil_malloc),
                calloc: Some(gil_calloc),
                realloc: Some(gil_realloc),
                free: Some(gil_free),
            }
        };
        INSTALLED[i]
            .0
            .store(malloc_address(&hook), Ordering::Relaxed);
        INSTALLED[i].1.store(hook.ctx as usize, Ordering::Relaxed);
        // SAFETY: `hook` is a valid allocator whose ctx outlives it (a static, or the
        // original allocator's own ctx).
        unsafe { pyo3_ffi::PyMem_SetAllocator(domain, &raw mut hook) };
    }
}

/// Put back the allocators that were installed before ours, where ours are still the ones
/// installed. Where another allocator was installed over ours since (it calls ours, which
/// now pass through), it is left in place: putting ours' originals back would remove it,
/// and it may have been stopped already, and restoring its stale hooks crashed the process.
///
/// # Safety
/// The GIL is held and the hooks are installed.
pub unsafe fn uninstall() {
    let current = current_allocators();
    // SAFETY: the slot was filled by `install`; the interpreter copies the struct.
    let originals = unsafe { std::slice::from_raw_parts_mut(slot(), 3) };
    for (i, domain) in DOMAINS.into_iter().enumerate() {
        if is_installed_hook(i, &current[i]) {
            // SAFETY: as above.
            unsafe { pyo3_ffi::PyMem_SetAllocator(domain, &raw mut originals[i]) };
        } else {
            PINNED.store(true, Ordering::Relaxed);
        }
    }
}

/// The allocators installed now on the three domains.
fn current_allocators() -> [PyMemAllocatorEx; 3] {
    let mut current = [EMPTY; 3];
    for (i, domain) in DOMAINS.into_iter().enumerate() {
        // SAFETY: `current[i]` is a valid out-parameter; the GIL is held by our callers.
        unsafe { pyo3_ffi::PyMem_GetAllocator(domain, &raw mut current[i]) };
    }
    current
}

/// The (malloc, ctx) of the hooks `install` last gave each domain, as addresses: what
/// `is_installed_hook` recognises (the very values handed to the interpreter).
static INSTALLED: [(AtomicUsize, AtomicUsize); 3] = [
    (AtomicUsize::new(0), AtomicUsize::new(0)),
    (AtomicUsize::new(0), AtomicUsize::new(0)),
    (AtomicUsize::new(0), AtomicUsize::new(0)),
];

fn malloc_address(a: &PyMemAllocatorEx) -> usize {
    a.malloc.map_or(0, |f| f as usize)
}

/// True if `a`, read from domain `i`, is the hook `install` last put there.
fn is_installed_hook(i: usize, a: &PyMemAllocatorEx) -> bool {
    let (malloc, ctx) = &INSTALLED[i];
    let address = malloc_address(a);
    address != 0
        && address == malloc.load(Ordering::Relaxed)
        && a.ctx as usize == ctx.load(Ordering::Relaxed)
}

/// The allocator that was installed on domain `i` (0 RAW, 1 MEM, 2 OBJ) before ours.
#[inline(always)]
fn original_of(i: usize) -> &'static PyMemAllocatorEx {
    // SAFETY: written only by `install` before the hooks that read it are installed.
    unsafe { &(*ORIGINAL.0.get())[i] }
}

#[inline(always)]
fn original(ctx: *mut c_void) -> &'static PyMemAllocatorEx {
    // SAFETY: every hook's ctx points into ORIGINAL, which lives forever.
    unsafe { &*ctx.cast::<PyMemAllocatorEx>() }
}

fn call_malloc(a: &PyMemAllocatorEx, size: usize) -> *mut c_void {
    a.malloc.map_or(ptr::null_mut(), |f| f(a.ctx, size))
}
fn call_calloc(a: &PyMemAllocatorEx, nelem: usize, elsize: usize) -> *mut c_void {
    a.calloc
        .map_or(ptr::null_mut(), |f| f(a.ctx, nelem, elsize))
}
fn call_realloc(a: &PyMemAllocatorEx, p: *mut c_void, size: usize) -> *mut c_void {
    a.realloc.map_or(ptr::null_mut(), |f| f(a.ctx, p, size))
}
fn call_free(a: &PyMemAllocatorEx, p: *mut c_void) {
    if let Some(f) = a.free {
        f(a.ctx, p);
    }
}

// ---- MEM and OBJ: always called with the GIL held ----

extern "C" fn gil_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    if interp::foreign() {
        return call_malloc(original(ctx), size);
    }
    let p = nested(|| call_malloc(original(ctx), size));
    if !p.is_null() {
        // SAFETY: MEM/OBJ allocators are called with the GIL held; no state reference is live.
        if let Some(st) = unsafe { state() } {
            // SAFETY: as above.
            unsafe { st.on_alloc(p, size, false) };
        }
    }
    p
}

extern "C" fn gil_calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    if interp::foreign() {
        return call_calloc(original(ctx), nelem, elsize);
    }
    let p = nested(|| call_calloc(original(ctx), nelem, elsize));
    if !p.is_null() {
        // SAFETY: as in gil_malloc.
        if let Some(st) = unsafe { state() } {
            // SAFETY: as above; calloc succeeded, so the product did not overflow.
            unsafe { st.on_alloc(p, nelem.wrapping_mul(elsize), false) };
        }
    }
    p
}

extern "C" fn gil_realloc(ctx: *mut c_void, old: *mut c_void, size: usize) -> *mut c_void {
    if interp::foreign() {
        return call_realloc(original(ctx), old, size);
    }
    let p = nested(|| call_realloc(original(ctx), old, size));
    if !p.is_null() {
        // SAFETY: as in gil_malloc.
        if let Some(st) = unsafe { state() } {
            if !old.is_null() {
                st.on_free(old);
            }
            // SAFETY: as above.
            unsafe { st.on_alloc(p, size, false) };
        }
    }
    p
}

extern "C" fn gil_free(ctx: *mut c_void, p: *mut c_void) {
    if interp::foreign() {
        return call_free(original(ctx), p);
    }
    if !p.is_null() {
        // SAFETY: as in gil_malloc.
        if let Some(st) = unsafe { state() } {
            st.on_free(p);
        }
    }
    nested(|| call_free(original(ctx), p));
}

// ---- MEM and OBJ in sampling mode: most blocks are neither sampled nor freed sampled ----

extern "C" fn smp_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    if interp::foreign() {
        return call_malloc(original(ctx), size);
    }
    let p = nested(|| call_malloc(original(ctx), size));
    if !p.is_null() {
        // SAFETY: as in gil_malloc.
        if let Some(st) = unsafe { state() } {
            if st.take_sample_point(size) {
                // SAFETY: as above.
                unsafe { st.on_sample_point(p, size) };
            }
        }
    }
    p
}

extern "C" fn smp_free(ctx: *mut c_void, p: *mut c_void) {
    if interp::foreign() {
        return call_free(original(ctx), p);
    }
    if !p.is_null() {
        // SAFETY: GIL held (MEM/OBJ); these hooks are installed only in sampling mode.
        unsafe { forget_sampled(p) };
    }
    nested(|| call_free(original(ctx), p));
}

/// Forget `p` if the sampling tracer holds it: the address filter first, then the table.
///
/// # Safety
/// The GIL is held, the tracer is sampling (the filter is in use) and no state reference is
/// live.
#[inline(always)]
unsafe fn forget_sampled(p: *mut c_void) {
    // SAFETY: per the contract.
    if unsafe { crate::filter::may_hold(p as usize) } {
        // SAFETY: per the contract.
        if let Some(st) = unsafe { state() } {
            // The filter was just consulted: go straight to the table.
            if st.active {
                st.forget(p);
            }
        }
    }
}

// ---- RAW: may be called from any thread, with or without the GIL ----

/// Run `alloc` and trace its result, taking the GIL if this thread lacks it (as the stdlib
/// does: the stack of a thread is only read under the GIL).
fn raw_traced(size: usize, alloc: impl FnOnce() -> *mut c_void) -> *mut c_void {
    if IN_RAW_HOOK.get() || nested_in_gil_hook() || interp::foreign() {
        return alloc();
    }
    IN_RAW_HOOK.set(true);
    let has_gil = interp::holds_main_gil();
    if !has_gil && interp::runtime_locked() {
        IN_RAW_HOOK.set(false);
        return alloc();
    }
    let gil = if has_gil {
        None
    } else {
        // SAFETY: taking the GIL from a thread that does not hold it; re-entrant allocations
        // it makes are passed through by IN_RAW_HOOK.
        Some(unsafe { pyo3_ffi::PyGILState_Ensure() })
    };
    let p = alloc();
    if !p.is_null() {
        // SAFETY: this thread now holds the GIL; no state reference is live.
        if let Some(st) = unsafe { state() } {
            // SAFETY: as above.
            unsafe { st.on_alloc(p, size, true) };
        }
    }
    if let Some(g) = gil {
        // SAFETY: releasing what we took above.
        unsafe { pyo3_ffi::PyGILState_Release(g) };
    }
    IN_RAW_HOOK.set(false);
    p
}

/// Run `f` holding the GIL, taking it first if this thread lacks it (as the stdlib's
/// `PyTraceMalloc_Track` does); what taking it allocates passes through untraced.
pub fn with_gil<T>(f: impl FnOnce() -> T) -> T {
    let was_in_hook = IN_RAW_HOOK.replace(true);
    let gil = if interp::holds_main_gil() {
        None
    } else {
        // SAFETY: taking the GIL from a thread that does not hold it; re-entrant allocations
        // are passed through by IN_RAW_HOOK.
        Some(unsafe { pyo3_ffi::PyGILState_Ensure() })
    };
    let r = f();
    if let Some(g) = gil {
        // SAFETY: releasing what we took above.
        unsafe { pyo3_ffi::PyGILState_Release(g) };
    }
    IN_RAW_HOOK.set(was_in_hook);
    r
}

/// Untrace a RAW block; the counters are updated by the next GIL holder.
fn raw_untrace(p: *mut c_void) {
    let mut raw = RAW.lock();
    if let Some(r) = raw.as_mut() {
        if let Some(entry) = r.table.remove(p as usize) {
            r.pending.push(entry);
            PENDING.store(true, Ordering::Release);
        }
    }
}

extern "C" fn raw_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    raw_traced(size, || call_malloc(original(ctx), size))
}

extern "C" fn raw_calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    raw_traced(nelem.wrapping_mul(elsize), || {
        call_calloc(original(ctx), nelem, elsize)
    })
}

extern "C" fn raw_realloc(ctx: *mut c_void, old: *mut c_void, size: usize) -> *mut c_void {
    if !old.is_null() && !IN_RAW_HOOK.get() && !nested_in_gil_hook() {
        raw_untrace(old);
    }
    raw_traced(size, || call_realloc(original(ctx), old, size))
}

extern "C" fn raw_free(ctx: *mut c_void, p: *mut c_void) {
    if !p.is_null() && !nested_in_gil_hook() {
        raw_untrace(p);
        if DIRECT.load(Ordering::Relaxed) {
            direct::forget(p);
        }
    }
    call_free(original(ctx), p);
}
