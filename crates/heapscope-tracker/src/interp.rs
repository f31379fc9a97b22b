//! Which interpreter's GIL the calling thread holds.
//!
//! From 3.12 on an interpreter may have a GIL of its own (`concurrent.interpreters` in 3.14,
//! `_interpreters` in 3.13): its threads run at the same time as the main interpreter's, and
//! they call the same PyMem hooks, the same reference tracer and the same
//! `PyTraceMalloc_Track`, since those are the runtime's, not an interpreter's. The tracer's
//! state belongs to the holder of the main interpreter's GIL, so what a thread holding another
//! GIL does passes through untraced. So does what the threads of the legacy kind (sharing the
//! main GIL) do: their code objects die without heapscope's code watcher (watchers are
//! per interpreter) seeing them. heapscope traces the interpreter that started it. Before
//! this, a thread of another GIL entered the tracer's tables at the same time as the main
//! interpreter's threads (index out of bounds, heap corruption, within a second).
//!
//! `PyGILState_Check` cannot tell who holds the GIL either: CPython turns its check off for
//! good once a second interpreter is created, and it then answers 1 to every thread, C
//! threads with no thread state included. From 3.13 on the current thread state is a
//! thread-local, non-null exactly while the thread holds its interpreter's GIL, and each
//! interpreter points at the GIL it uses (`ceval.gil`), so that is what is compared here. On
//! 3.11 (one GIL) the current thread state is the GIL holder's: its `thread_id` is compared
//! with the caller's.
//!
//! The hooks pay one compare for it while the main interpreter is alone: the runtime links a
//! new interpreter at the head of its list before the interpreter runs any code, and unlinks
//! it after its last thread is gone, so the head is the main interpreter exactly when it is
//! alone.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::stack::{current_tstate, FrameLayout};

/// `offsetof(PyThreadState, interp)` (3.11-3.15, the public struct's third field).
const TSTATE_INTERP: usize = 16;

/// The pointer field at `offset` in the struct at `base`.
///
/// # Safety
/// `base` is a live struct with a pointer field at `offset`.
#[inline(always)]
unsafe fn read_ptr<T>(base: *mut T, offset: usize) -> *mut c_void {
    // SAFETY: per the contract.
    unsafe { read::<*mut c_void>(base.cast(), offset) }
}

#[inline(always)]
unsafe fn read<T: Copy>(base: *const u8, offset: usize) -> T {
    // SAFETY: callers pass a live struct and the offset of a field of type T.
    unsafe { base.add(offset).cast::<T>().read() }
}

/// Stands in for `_PyRuntime.interpreters.head` before `init`, and on versions where every
/// interpreter shares one GIL: as null as `MAIN` then, so no other interpreter is ever seen.
static NO_HEAD: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
/// The address of `_PyRuntime.interpreters.head`.
static HEAD: AtomicPtr<*mut c_void> =
    AtomicPtr::new(ptr::addr_of!(NO_HEAD).cast::<*mut c_void>().cast_mut());
/// The address of `_PyRuntime.interpreters.mutex` (null before `init` and on 3.11).
static HEAD_LOCK: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
/// The main interpreter (`PyInterpreterState*`).
static MAIN: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
/// The main interpreter's GIL (`struct _gil_runtime_state*`).
static MAIN_GIL: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
/// `offsetof(PyInterpreterState, ceval.gil)`; 0 until `init` on 3.13+, and on 3.11.
static CEVAL_GIL: AtomicUsize = AtomicUsize::new(0);

/// Find the runtime's list of interpreters and the main interpreter's GIL.
///
/// # Safety
/// The GIL of the main interpreter is held, by the main interpreter's thread state (PyO3
/// refuses to import heapscope in any other interpreter), and `layout` is the running
/// interpreter's, checked against its `_Py_DebugOffsets`.
pub unsafe fn init(layout: &FrameLayout) {
    let Some(facts) = layout.interpreters else {
        return;
    };
    // SAFETY: dlsym with a NUL-terminated name (the layout check found the symbol too).
    let runtime = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_PyRuntime".as_ptr()) };
    if runtime.is_null() {
        return;
    }
    // SAFETY: the main interpreter lives as long as the runtime; `ceval.gil` is a pointer at
    // the checked offset.
    let (main, gil) = unsafe {
        let main = pyo3_ffi::PyInterpreterState_Main().cast::<c_void>();
        let gil = read_ptr(main, facts.ceval_gil);
        (main, gil)
    };
    MAIN_GIL.store(gil, Ordering::Relaxed);
    CEVAL_GIL.store(facts.ceval_gil, Ordering::Relaxed);
    MAIN.store(main, Ordering::Relaxed);
    // SAFETY: `interpreters.mutex` and `interpreters.head` lie inside `_PyRuntime` at the
    // checked offsets.
    let (lock, head) = unsafe {
        let base = runtime.cast::<u8>();
        (base.add(facts.runtime_mutex), base.add(facts.runtime_head))
    };
    HEAD_LOCK.store(lock, Ordering::Relaxed);
    HEAD.store(head.cast(), Ordering::Release);
}

/// True if an interpreter other than the main one exists (or may have, a moment ago).
#[inline(always)]
fn others() -> bool {
    // SAFETY: HEAD points at `NO_HEAD` or at `_PyRuntime.interpreters.head`, both alive for
    // the whole process. CPython writes the head under its own lock; a word-sized read that
    // races with it sees the old or the new interpreter, and a thread of a new interpreter
    // runs only after the write that linked it.
    let head = unsafe { ptr::read_volatile(HEAD.load(Ordering::Relaxed)) };
    head != MAIN.load(Ordering::Relaxed)
}

/// The GIL the interpreter `interp` uses.
///
/// # Safety
/// `interp` is a live interpreter and `CEVAL_GIL` was set by `init`.
#[inline(always)]
unsafe fn gil_of(interp: *mut c_void) -> *mut c_void {
    let at = CEVAL_GIL.load(Ordering::Relaxed);
    // SAFETY: per the contract.
    unsafe { read_ptr(interp, at) }
}

/// The interpreter of the calling thread's attached thread state, if it has one (3.13+:
/// the thread-local current thread state, set exactly while the thread holds a GIL).
#[inline(always)]
fn attached_interpreter() -> Option<*mut c_void> {
    let tstate = current_tstate();
    if tstate.is_null() {
        return None;
    }
    // SAFETY: the calling thread's attached thread state is alive while attached; `interp`
    // is a pointer field at the same offset on every supported version.
    Some(unsafe { read_ptr(tstate, TSTATE_INTERP) })
}

/// True if `tstate` belongs to the main interpreter, or if heapscope cannot tell them apart
/// (3.11, where every interpreter shares the GIL).
///
/// # Safety
/// `tstate` is a live thread state.
pub unsafe fn of_main(tstate: *mut c_void) -> bool {
    let main = MAIN.load(Ordering::Relaxed);
    // SAFETY: per the contract, a live thread state; `interp` is at the same offset on every
    // supported version.
    main.is_null() || unsafe { read_ptr(tstate, TSTATE_INTERP) } == main
}

/// True if the calling thread runs another interpreter than the main one: the PyMem hooks and
/// the reference tracer pass it through untraced. Costs one compare while the main
/// interpreter is alone.
#[inline(always)]
pub fn foreign() -> bool {
    others() && foreign_thread()
}

/// While other interpreters exist, a thread with no attached thread state is not the main
/// GIL's holder either: it may be one of theirs between two GILs (creating or tearing down an
/// interpreter), and taking the main GIL there could deadlock (see `runtime_locked`).
#[cold]
#[inline(never)]
fn foreign_thread() -> bool {
    attached_interpreter().is_none_or(|interp| interp != MAIN.load(Ordering::Relaxed))
}

/// `offsetof(PyThreadState, thread_id)` on 3.11 (`PyThread_get_thread_ident()`, that is
/// `pthread_self()`, of the thread the state belongs to).
const TSTATE_THREAD_ID_311: usize = 152;

/// Set by `init_311` once the offset above was seen to hold for the starting thread.
static THREAD_ID_311_CHECKED: AtomicBool = AtomicBool::new(false);

/// 3.11: check `TSTATE_THREAD_ID_311` against the calling thread, which holds the GIL.
pub fn init_311() {
    if cfg!(Py_3_13) {
        return;
    }
    let tstate = current_tstate();
    // SAFETY: the GIL holder's (our) thread state is alive; `thread_id` is an unsigned long.
    let ok = !tstate.is_null()
        && unsafe { read::<libc::c_ulong>(tstate.cast(), TSTATE_THREAD_ID_311) }
            == unsafe { libc::pthread_self() };
    THREAD_ID_311_CHECKED.store(ok, Ordering::Relaxed);
}

/// 3.11, one GIL for every interpreter: the runtime's current thread state is the GIL
/// holder's (not the calling thread's, as from 3.12 on), so the calling thread holds the GIL
/// exactly when that state's `thread_id` is its own. `PyGILState_Check` cannot say: CPython
/// turns its check off for good once a subinterpreter was created, and it then answers 1 to
/// every thread (seen: C threads calling `PyMem_RawMalloc` without the GIL left the books
/// wrong on every run after one `_xxsubinterpreters.create()`). The holder may delete its
/// state meanwhile: CPython clears the current state before freeing it, and a stale read of
/// a freed block only answers "not ours", which is right.
fn holds_the_gil_311() -> bool {
    if !THREAD_ID_311_CHECKED.load(Ordering::Relaxed) {
        // SAFETY: a plain C-API query, valid from any thread.
        return unsafe { pyo3_ffi::PyGILState_Check() } != 0;
    }
    let holder = current_tstate();
    // SAFETY: see above; `thread_id` is an unsigned long at the checked offset.
    !holder.is_null()
        && unsafe { read::<libc::c_ulong>(holder.cast(), TSTATE_THREAD_ID_311) }
            == unsafe { libc::pthread_self() }
}

/// True if the runtime's interpreter list stays locked (`HEAD_LOCK`, 3.13+) for longer than
/// another thread needs it. A thread creating an interpreter holds it, with no GIL, while it
/// allocates the interpreter with `PyMem_RawCalloc`; meanwhile the main GIL's holder may wait
/// for the lock without releasing the GIL (CPython takes it with `_Py_LOCK_DONT_DETACH`). The
/// RAW hooks must not wait for the GIL then: what such a thread allocates passes through
/// untraced. Other threads hold the lock for microseconds (creating or deleting a thread
/// state), so a lock seen held is watched for [`LOCK_PATIENCE`] first: a RAW allocation of
/// another thread made at that moment is still traced.
pub fn runtime_locked() -> bool {
    if !head_lock_held() {
        return false;
    }
    let since = std::time::Instant::now();
    while since.elapsed() < LOCK_PATIENCE {
        std::thread::yield_now();
        if !head_lock_held() {
            return false;
        }
    }
    true
}

/// How long a RAW hook without the GIL waits for `HEAD_LOCK` to be released.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_micros(200);

fn head_lock_held() -> bool {
    let lock = HEAD_LOCK.load(Ordering::Relaxed);
    // SAFETY: the one-byte `PyMutex` inside `_PyRuntime`, alive for the whole process; a
    // racy read only decides whether to trace one allocation.
    !lock.is_null() && unsafe { ptr::read_volatile(lock) } & 1 != 0
}

/// True if the calling thread, any thread, holds the main interpreter's GIL (what
/// `PyGILState_Check` answers while one interpreter exists; see the module's comment).
#[inline(always)]
pub fn holds_main_gil() -> bool {
    if CEVAL_GIL.load(Ordering::Relaxed) == 0 {
        return holds_the_gil_311();
    }
    attached_interpreter().is_some_and(|interp| {
        // SAFETY: as in `foreign_thread`.
        interp == MAIN.load(Ordering::Relaxed)
            || unsafe { gil_of(interp) } == MAIN_GIL.load(Ordering::Relaxed)
    })
}
