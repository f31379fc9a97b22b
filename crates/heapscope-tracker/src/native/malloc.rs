//! The malloc family and `mmap`/`munmap` as other objects call them while `--native` traces:
//! each replacement calls the real function (heapscope's own module is never patched, so its
//! calls reach the C library, or whatever allocator the process preloaded) and journals the
//! block with the calling thread's native and Python stacks (`journal.rs`).
//!
//! Re-entrancy: a thread-local flag is set while a hook records, so whatever the unwinder, the
//! journal or a signal handler allocates on this thread passes through untraced. Blocks the
//! interpreter's allocators take while heapscope's PyMem hooks run (pymalloc's arenas, the RAW
//! domain's mallocs, the GIL's state) are already Python memory and pass through too
//! (`hooks::inside_pymem_hook`).
//!
//! Stopping: `stop` clears `ON` and waits until no hook is between its check of `ON` and the
//! end of its stack walk (`INFLIGHT`), so that once tracing stopped no hook reads a Python
//! thread state the interpreter may be tearing down.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::{journal, unwind};
use crate::interp;
use crate::sampling::Sampler;
use crate::stack::{FrameLayout, RawFrame};

/// Python frames a native event keeps at most (the traceback limit, capped: the frames are
/// captured on the hook's stack).
const MAX_PY: usize = 128;
/// Native frames a native event keeps at most (C frames and interpreter invocations).
const MAX_NATIVE: usize = 128;

static ON: AtomicBool = AtomicBool::new(false);
static INFLIGHT: AtomicUsize = AtomicUsize::new(0);
static LAYOUT: AtomicUsize = AtomicUsize::new(0);
static FLOOR: AtomicUsize = AtomicUsize::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// Mean bytes between sampled native blocks (0: every block is recorded).
static RATE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set while this thread records a native event.
    static GUARD: Cell<bool> = const { Cell::new(false) };
    /// This thread's sampler when native blocks are sampled (`--sample-rate`): hooks run in
    /// any thread, without the GIL, so each thread draws its own sample points.
    static SAMPLER: Cell<Option<Sampler>> = const { Cell::new(None) };
    /// This thread's id (0: not asked yet): `gettid` is a system call, one per block was
    /// 1-2% of a numpy run's samples.
    static TID: Cell<u64> = const { Cell::new(0) };
}

/// The calling thread's id, asked of the kernel once per thread.
#[inline(always)]
fn thread_id() -> u64 {
    let t = TID.get();
    if t != 0 {
        return t;
    }
    // SAFETY: gettid has no failure mode.
    let t = u64::try_from(unsafe { libc::gettid() }).unwrap_or(0);
    TID.set(t);
    t
}

/// Sample native blocks at one per `rate` bytes on average (0: record every block), as the
/// tracer samples Python's (`sampling.rs`): unsampled blocks cost a subtraction, no stack walk.
pub fn set_sample_rate(rate: u64) {
    RATE.store(rate, Ordering::Relaxed);
}

/// The bytes a block of `size` stands for, or `None` if it is not sampled.
#[inline(always)]
fn sampled_size(size: usize) -> Option<usize> {
    let rate = RATE.load(Ordering::Relaxed);
    if rate == 0 {
        return Some(size);
    }
    let mut s = match SAMPLER.get() {
        Some(s) if s.rate() == rate => s,
        _ => {
            let tid = thread_id().max(1);
            Sampler::new(rate, tid.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ size as u64)
        }
    };
    let weight = s.sample(size as u64);
    SAMPLER.set(Some(s));
    weight.map(|w| usize::try_from(w).unwrap_or(usize::MAX))
}

extern "C" {
    fn valloc(size: usize) -> *mut c_void;
    fn pvalloc(size: usize) -> *mut c_void;
    fn PyGILState_GetThisThreadState() -> *mut c_void;
}

/// Number of functions replaced.
const TARGETS: usize = 13;

/// The functions replaced, with their replacements.
pub fn targets() -> [(&'static CStr, usize); TARGETS] {
    [
        (c"malloc", malloc as *const () as usize),
        (c"calloc", calloc as *const () as usize),
        (c"realloc", realloc as *const () as usize),
        (c"free", free as *const () as usize),
        (c"posix_memalign", posix_memalign as *const () as usize),
        (c"aligned_alloc", aligned_alloc as *const () as usize),
        (c"memalign", memalign as *const () as usize),
        (c"valloc", valloc_hook as *const () as usize),
        (c"pvalloc", pvalloc_hook as *const () as usize),
        (c"mmap", mmap as *const () as usize),
        (c"mmap64", mmap as *const () as usize),
        (c"munmap", munmap as *const () as usize),
        (c"cfree", free as *const () as usize),
    ]
}

/// Two addresses per target (its global definition, and the C library's own when that is the
/// one in use) with the replacement each stands for: what `dlsym` on a handle turns into a
/// replacement (`dl.rs`). Written by `start` before any slot is patched; 0: empty.
static LOOKED_UP: [(AtomicUsize, AtomicUsize); 2 * TARGETS] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; 2 * TARGETS];

/// The replacement of the allocator function at `addr`, while recording.
pub fn replacement_of(addr: usize) -> Option<usize> {
    if addr == 0 || !is_on() {
        return None;
    }
    LOOKED_UP
        .iter()
        .find(|(real, _)| real.load(Ordering::Relaxed) == addr)
        .map(|(_, replacement)| replacement.load(Ordering::Relaxed))
}

/// True if an object whose name says it is an allocator (jemalloc, tcmalloc, mimalloc) is
/// loaded: then the C library's own `malloc` is not the one the program's blocks come from.
fn allocator_preloaded() -> bool {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _: usize,
        found: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid info whose name is null or NUL-terminated, and
        // `found` is the bool `allocator_preloaded` passed.
        unsafe {
            let name = (*info).dlpi_name;
            if !name.is_null() {
                let path = CStr::from_ptr(name).to_bytes();
                let file = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
                if [&b"libjemalloc"[..], b"libtcmalloc", b"libmimalloc"]
                    .iter()
                    .any(|p| file.starts_with(p))
                {
                    *found.cast::<bool>() = true;
                }
            }
        }
        0
    }
    let mut found = false;
    // SAFETY: the callback only reads what the loader passes it and writes `found`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut found).cast()) };
    found
}

/// Fill `LOOKED_UP`: each target's global definition (`dlsym(RTLD_DEFAULT)`, what the
/// replacements call) and, unless another allocator was preloaded, the C library's own (what
/// `dlsym` on libc's handle gives, which differs when the executable holds the canonical
/// address of `malloc`, as Debian's 3.13+ do).
fn look_up_targets() {
    // SAFETY: dlopen with RTLD_NOLOAD only returns a handle of an object already loaded.
    let libc_handle =
        unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    let use_libc = !libc_handle.is_null() && !allocator_preloaded();
    for (i, (name, replacement)) in targets().iter().enumerate() {
        // SAFETY: dlsym with a NUL-terminated name.
        let global = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
        let own = if use_libc {
            // SAFETY: as above, on a live handle.
            unsafe { libc::dlsym(libc_handle, name.as_ptr()) as usize }
        } else {
            0
        };
        for (j, addr) in [global, own].into_iter().enumerate() {
            let (found, stands_for) = &LOOKED_UP[2 * i + j];
            found.store(addr, Ordering::Relaxed);
            stands_for.store(if addr == 0 { 0 } else { *replacement }, Ordering::Relaxed);
        }
    }
    if !libc_handle.is_null() {
        // SAFETY: the handle RTLD_NOLOAD gave; the object stays loaded (libc).
        unsafe { libc::dlclose(libc_handle) };
    }
}

/// Start recording (before any slot is patched).
pub fn start(layout: &'static FrameLayout) {
    look_up_targets();
    // SAFETY: sysconf is always safe to call.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    PAGE.store(page, Ordering::Relaxed);
    LAYOUT.store(std::ptr::from_ref(layout) as usize, Ordering::Relaxed);
    unwind::prepare();
    journal::open();
    ON.store(true, Ordering::SeqCst);
}

/// Stop recording and wait for hooks that are reading stacks.
pub fn stop() {
    ON.store(false, Ordering::SeqCst);
    while INFLIGHT.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    journal::close();
}

/// True while recording.
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The interpreter frame below which Python stacks stop (the runner's), as `set_stack_floor`.
pub fn set_floor(frame: usize) {
    FLOOR.store(frame, Ordering::Relaxed);
}

/// After `fork()` in the child: the threads that were inside hooks are gone.
pub fn after_fork_in_child() {
    INFLIGHT.store(0, Ordering::SeqCst);
    // The child's one thread is a new thread with the forking thread's thread-locals.
    TID.set(0);
}

/// Enter a recording hook, or `false` if this call must pass through.
#[inline(always)]
fn enter() -> bool {
    if !ON.load(Ordering::Relaxed) || GUARD.get() || crate::hooks::inside_pymem_hook() {
        return false;
    }
    INFLIGHT.fetch_add(1, Ordering::SeqCst);
    if !ON.load(Ordering::SeqCst) {
        INFLIGHT.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    GUARD.set(true);
    true
}

fn leave() {
    GUARD.set(false);
    INFLIGHT.fetch_sub(1, Ordering::SeqCst);
}

/// Journal a new block with the calling thread's stacks.
#[inline(never)]
fn record(addr: *mut c_void, size: usize, mapping: bool) {
    if addr.is_null()
        || !ON.load(Ordering::Relaxed)
        || GUARD.get()
        || crate::hooks::inside_pymem_hook()
    {
        return;
    }
    // Mappings are kept whole (partial unmaps carve them by their real size).
    let size = if mapping {
        size
    } else if let Some(weight) = sampled_size(size) {
        weight
    } else {
        return;
    };
    if !enter() {
        return;
    }
    let mut py = [RawFrame::UNKNOWN; MAX_PY];
    let mut segs = [0u16; MAX_PY];
    let mut bounds = [0usize; MAX_PY];
    let limit = (crate::traceback_limit() as usize).min(MAX_PY);
    // SAFETY: a TSS read of this thread's state (null if it has none); valid with or without
    // the GIL.
    let tstate = unsafe { PyGILState_GetThisThreadState() };
    let layout = LAYOUT.load(Ordering::Relaxed) as *const FrameLayout;
    // A thread state of another interpreter (a thread started inside one) names code objects
    // whose death heapscope's code watcher does not see: native frames only (`interp.rs`).
    // SAFETY: `tstate` is this thread's, alive while the thread runs.
    let foreign = !tstate.is_null() && !unsafe { interp::of_main(tstate) };
    let (npy, total_py) = if tstate.is_null() || layout.is_null() || foreign {
        (0, 0)
    } else {
        // SAFETY: `layout` was stored from a `&'static FrameLayout` by `start`. `tstate` is
        // this thread's, and its frames cannot change while this thread is in the hook (a
        // thread's own frames are only pushed and popped by itself); `stop` waits for this
        // walk before the interpreter can go away.
        let c = unsafe {
            ((*layout).capture_segments)(
                tstate,
                &mut py[..limit],
                FLOOR.load(Ordering::Relaxed) as *const c_void,
                &mut segs[..limit],
                &mut bounds,
            )
        };
        (c.nframe, c.total_nframe)
    };
    // The C frames up to the interpreter invocation that runs the outermost Python frame
    // kept (all of them on a thread without Python frames).
    let needed = if npy == 0 {
        0
    } else {
        (usize::from(segs[npy - 1]) + 1).min(MAX_PY)
    };
    let mut ips = [0usize; MAX_NATIVE];
    let nnative = unwind::capture(&mut ips, &bounds[..needed]);
    let thread = thread_id();
    let here = journal::Site {
        thread,
        py: &py[..npy],
        segs: &segs[..npy],
        total_py,
        native: &ips[..nnative],
    };
    journal::alloc(addr as usize, size, &here, mapping);
    leave();
}

/// Journal the free of a block (before it is freed: see `hooks.rs`).
#[inline(always)]
fn forget(addr: *mut c_void) {
    if addr.is_null() || !ON.load(Ordering::Relaxed) || GUARD.get() {
        return;
    }
    GUARD.set(true);
    journal::free(addr as usize);
    GUARD.set(false);
}

unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: the caller's call, passed on.
    let p = unsafe { libc::malloc(size) };
    record(p, size, false);
    p
}

unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: as above.
    let p = unsafe { libc::calloc(n, size) };
    record(p, n.wrapping_mul(size), false);
    p
}

unsafe extern "C" fn realloc(old: *mut c_void, size: usize) -> *mut c_void {
    forget(old);
    // SAFETY: as above.
    let p = unsafe { libc::realloc(old, size) };
    record(p, size, false);
    p
}

unsafe extern "C" fn free(p: *mut c_void) {
    forget(p);
    // SAFETY: as above.
    unsafe { libc::free(p) };
}

unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: as above.
    let r = unsafe { libc::posix_memalign(out, align, size) };
    if r == 0 && !out.is_null() {
        // SAFETY: on success the C library wrote the block's address to `out`.
        record(unsafe { *out }, size, false);
    }
    r
}

unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: as above.
    let p = unsafe { libc::aligned_alloc(align, size) };
    record(p, size, false);
    p
}

unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: as above.
    let p = unsafe { libc::memalign(align, size) };
    record(p, size, false);
    p
}

unsafe extern "C" fn valloc_hook(size: usize) -> *mut c_void {
    // SAFETY: as above.
    let p = unsafe { valloc(size) };
    record(p, size, false);
    p
}

unsafe extern "C" fn pvalloc_hook(size: usize) -> *mut c_void {
    // SAFETY: as above.
    let p = unsafe { pvalloc(size) };
    let page = PAGE.load(Ordering::Relaxed);
    record(p, size.div_ceil(page).max(1) * page, false);
    p
}

unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    offset: libc::off_t,
) -> *mut c_void {
    if flags & libc::MAP_FIXED != 0 && ON.load(Ordering::Relaxed) && !GUARD.get() {
        // The new mapping replaces whatever was there.
        GUARD.set(true);
        journal::unmap(addr as usize, len, PAGE.load(Ordering::Relaxed));
        GUARD.set(false);
    }
    // SAFETY: as above.
    let p = unsafe { libc::mmap(addr, len, prot, flags, fd, offset) };
    // Only anonymous mappings take memory of their own; a file mapping is the page cache. A
    // mapping no page of which can be touched (PROT_NONE: guard pages, a reservation) or one
    // that reserves no swap for its pages (MAP_NORESERVE: mimalloc, built into pyarrow,
    // reserves 1 GiB so) is address space, not memory: its pages are committed later, by
    // means not seen here (mprotect, first touch).
    let reservation = prot == libc::PROT_NONE || flags & libc::MAP_NORESERVE != 0;
    if p != libc::MAP_FAILED && flags & libc::MAP_ANONYMOUS != 0 && !reservation {
        let page = PAGE.load(Ordering::Relaxed);
        record(p, len.div_ceil(page) * page, true);
    }
    p
}

unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    if !addr.is_null() && ON.load(Ordering::Relaxed) && !GUARD.get() {
        GUARD.set(true);
        journal::unmap(addr as usize, len, PAGE.load(Ordering::Relaxed));
        GUARD.set(false);
    }
    // SAFETY: as above.
    unsafe { libc::munmap(addr, len) }
}
