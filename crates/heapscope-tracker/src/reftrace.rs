//! Re-attributing objects reused from free lists (CPython 3.13+), through `PyRefTracer`.
//!
//! An object taken from a free list (floats, tuples, lists, dicts...) is not allocated again:
//! its memory block keeps the traceback of the object that first used it. The stdlib fixes
//! this with a reference tracer (`_PyTraceMalloc_TraceRef`) that `_Py_NewReference` calls for
//! every new object: if the object's block is traced, the block gets the current traceback.
//! heapscope does the same with its own tracer, while tracing every block (sampling mode
//! leaves it out: a call per object creation would cost more than sampling saves, and a
//! sampled block keeps its first traceback, an error sampling already accepts).
//!
//! There is one reference tracer per runtime. If another is installed when tracing starts (the
//! stdlib's `tracemalloc.start()` installs one), heapscope chains to it: ours runs, then
//! theirs with their data, and `stop()` puts theirs back. If another replaces ours while we
//! trace, re-attribution stops there and `stop()` leaves the newcomer in place. Either case
//! gives one warning per process ([`take_warning`]).
//!
//! Fast path: the object just allocated is recognised without a second stack walk
//! (`State::on_new_reference`, shared with 3.11's `newref.rs`). The runtime calls the tracer on
//! every deallocation too: without another tracer to chain to, that event is a compare and a
//! return (`trace_ref`; the creation path is out of line): 6.5 instructions a call instead of
//! ~32 (callgrind, strings.py on 3.13: 1.04M tracer calls, half of them deallocations).

#[cfg(Py_3_13)]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[cfg(Py_3_13)]
static WARNED: AtomicBool = AtomicBool::new(false);
static WARNING: Mutex<Option<String>> = Mutex::new(None);

/// The warning about another reference tracer, once per process (then `None`).
pub fn take_warning() -> Option<String> {
    WARNING.lock().ok().and_then(|mut w| w.take())
}

#[cfg(Py_3_13)]
fn warn_once(message: String) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        if let Ok(mut w) = WARNING.lock() {
            *w = Some(message);
        }
    }
}

#[cfg(Py_3_13)]
mod imp {
    use std::cell::UnsafeCell;
    use std::ffi::{c_int, c_void};
    use std::sync::atomic::{AtomicBool, Ordering};

    use pyo3_ffi::PyObject;

    use super::warn_once;
    use crate::state::state;

    /// `PyRefTracer` (`Include/cpython/object.h`, 3.13+).
    type Tracer = unsafe extern "C" fn(*mut PyObject, c_int, *mut c_void) -> c_int;
    /// `PyRefTracer_CREATE`.
    const CREATE: c_int = 0;

    extern "C" {
        fn PyRefTracer_SetTracer(tracer: Option<Tracer>, data: *mut c_void) -> c_int;
        fn PyRefTracer_GetTracer(data: *mut *mut c_void) -> Option<Tracer>;
    }

    /// The tracer that was installed before ours, called after ours.
    struct Previous(UnsafeCell<(Option<Tracer>, *mut c_void)>);
    // SAFETY: written by `install`/`uninstall` and read by `trace_ref`, all under the GIL
    // (reference tracers run in `_Py_NewReference`, with the GIL held in GIL builds).
    unsafe impl Sync for Previous {}
    static PREVIOUS: Previous = Previous(UnsafeCell::new((None, std::ptr::null_mut())));
    static INSTALLED: AtomicBool = AtomicBool::new(false);

    /// Our tracer when no other was installed before it. Every object deallocation calls it
    /// too (`PyRefTracer_DESTROY`), so that event costs a compare and a return; a creation is
    /// a tail call.
    unsafe extern "C" fn trace_ref(op: *mut PyObject, event: c_int, _data: *mut c_void) -> c_int {
        if event == CREATE {
            // SAFETY: as `on_create`'s contract: called by the runtime with the GIL held.
            unsafe { on_create(op) }
        } else {
            0
        }
    }

    /// Our tracer chained to the one installed before it (`PREVIOUS`), called after ours.
    unsafe extern "C" fn trace_ref_chained(
        op: *mut PyObject,
        event: c_int,
        _data: *mut c_void,
    ) -> c_int {
        if event == CREATE {
            // SAFETY: as in `trace_ref`.
            unsafe { on_create(op) };
        }
        // SAFETY: GIL held; PREVIOUS is only written under the GIL.
        let (previous, data) = unsafe { *PREVIOUS.0.get() };
        match previous {
            // SAFETY: the other tracer with the data it registered, as the runtime would.
            Some(f) => unsafe { f(op, event, data) },
            None => 0,
        }
    }

    /// A new object (`PyRefTracer_CREATE`): re-attribute its block if it came from a free
    /// list. Returns 0 (the tracer's success).
    ///
    /// # Safety
    /// Called by the runtime's reference tracer with the GIL held (see `Previous`).
    #[inline(never)]
    unsafe fn on_create(op: *mut PyObject) -> c_int {
        // The reference tracer is the runtime's: threads of interpreters with a GIL of their
        // own call it too (`interp.rs`).
        if !op.is_null() && !crate::interp::foreign() {
            // SAFETY: the GIL is held (see `Previous`); the allocation hooks are not running
            // (this is `_Py_NewReference`, after any allocation returned).
            if let Some(st) = unsafe { state() } {
                // SAFETY: `op` is an object being initialised, its type set; GIL held.
                unsafe { st.on_new_reference(op.cast()) };
            }
        }
        0
    }

    fn is_ours(f: Tracer) -> bool {
        std::ptr::fn_addr_eq(f, trace_ref as Tracer)
            || std::ptr::fn_addr_eq(f, trace_ref_chained as Tracer)
    }

    /// Install our reference tracer, chaining to any other (no-op if installed).
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn install() {
        if INSTALLED.load(Ordering::Relaxed) {
            return;
        }
        let mut data: *mut c_void = std::ptr::null_mut();
        // SAFETY: GIL held; `data` is a valid out-parameter.
        let previous = unsafe { PyRefTracer_GetTracer(&raw mut data) };
        let chained = previous.is_some_and(|f| !is_ours(f));
        if chained {
            warn_once(
                "another reference tracer (PyRefTracer, e.g. the stdlib's tracemalloc) is \
                 installed: heapscope calls it after its own and restores it on stop()"
                    .to_string(),
            );
            // SAFETY: GIL held; our tracer is not installed yet, so nothing reads PREVIOUS.
            unsafe { *PREVIOUS.0.get() = (previous, data) };
        } else {
            // SAFETY: as above.
            unsafe { *PREVIOUS.0.get() = (None, std::ptr::null_mut()) };
        }
        let ours: Tracer = if chained {
            trace_ref_chained
        } else {
            trace_ref
        };
        // SAFETY: GIL held; both tracers live forever.
        if unsafe { PyRefTracer_SetTracer(Some(ours), std::ptr::null_mut()) } == 0 {
            INSTALLED.store(true, Ordering::Relaxed);
        }
    }

    /// Remove our reference tracer and put back the one it replaced; if another replaced ours
    /// meanwhile, leave that one in place.
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn uninstall() {
        if !INSTALLED.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut data: *mut c_void = std::ptr::null_mut();
        // SAFETY: GIL held; `data` is a valid out-parameter.
        let current = unsafe { PyRefTracer_GetTracer(&raw mut data) };
        // SAFETY: GIL held.
        let (previous, previous_data) = unsafe { *PREVIOUS.0.get() };
        if current.is_some_and(is_ours) {
            // SAFETY: GIL held; restoring what `install` found.
            unsafe { PyRefTracer_SetTracer(previous, previous_data) };
        } else {
            warn_once(
                "heapscope's reference tracer (PyRefTracer) was replaced by another while \
                 tracing: objects reused from free lists since then kept their old traceback"
                    .to_string(),
            );
        }
        // SAFETY: GIL held; ours is no longer installed.
        unsafe { *PREVIOUS.0.get() = (None, std::ptr::null_mut()) };
    }
}

#[cfg(not(Py_3_13))]
mod imp {
    // Before 3.13 there is no reference tracer API: 3.11 is served by `newref.rs`.
    pub unsafe fn install() {}
    pub unsafe fn uninstall() {}
}

pub use imp::{install, uninstall};
