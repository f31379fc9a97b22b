//! The frame-push counter behind the stack-walk cache (CPython 3.13+, `sys.monitoring`).
//!
//! A stack walk reads every frame because, without an event, nothing tells that the frames
//! under the innermost one are still those of the last walk. `sys.monitoring`'s PY_START
//! gives that event cheaply: a C callable that bumps [`EPOCH`] each time a Python function
//! starts, in any thread. If no function started since the last walk and the innermost frame
//! (the thread's current frame, complete or not) is the same (address and code) and not a
//! generator's, no frame was pushed, so none was popped either (a popped frame's place is only
//! taken again by a push): the chain is the last walk's, only the innermost frame's instruction
//! moved. The stack-walk cache (`stack::since313::capture_cached`) reuses the chain then and
//! reads one frame. The innermost frame, not the innermost complete one: a frame is pushed
//! before its PY_START fires, and 3.15 runs a generator expression's first RESUME (where its
//! code is instrumented) in a frame not complete yet.
//!
//! Generators are why the innermost frame must not be a generator's: a generator resumed by
//! another caller (PY_RESUME, PY_THROW) relinks its frame without a PY_START. A generator
//! deeper in the chain cannot move while the frames above it run. Returns need no event: after
//! pops alone, the innermost frame is one further out, a different address.
//!
//! Instrumenting a code object for PY_START allocates its `_co_monitoring` data, at the code's
//! first run after tracing started, while its frame executes a RESUME (3.15 has one before a
//! generator's prologue, where the frame is not complete yet); taking the instrumentation out
//! again, at its next run after events were turned off (the counter gave up), reuses a list
//! from the free list on 3.14 and 3.15. The program would not make those, so they are neither
//! traced nor re-attributed: an allocation or a new object whose innermost Python frame,
//! complete or not, is at a RESUME-family instruction ([`is_resume`], numbers from
//! [`resume_opcodes`]) of a code whose instrumentation version is not the thread's
//! ([`instrumentation_stale`], the comparison RESUME makes) is the interpreter's; a cell made
//! by the prologue of a code's first run (MAKE_CELL) is not. Checked on the walk path only.
//! [`install`] checks the fields' offsets on the running interpreter.
//!
//! Each event costs about what walking a few frames does (CPython's dispatch to the callback),
//! so the counter pays only where allocations outnumber calls or stacks are deep. Every
//! [`WINDOW`] events the callback compares the frames that cache hits spared ([`SAVED`]) with
//! the events: below [`FRAMES_PER_EVENT`] frames an event, it gives up for the rest of the
//! session (events off, the cache unused: a recursion that allocates at every call, as
//! trees.py, runs as without it). Measured in `docs/architecture.md`.
//!
//! Once any tool has been given events, CPython instruments every code object at its next
//! first run, even with no tool left: the `_co_monitoring` skip holds from the first install
//! to the end of the process ([`ever_installed`]).
//!
//! PY_START's offset argument is 0, a cached small int: the callback allocates nothing. The
//! tool id is the first of 4, 3 that no other tool uses (debuggers, coverage and profilers
//! take 0-2 and 5 by convention); if none is free there is no cache and every allocation walks
//! the stack, as before. A program may want the id we hold: while we hold one,
//! `sys.monitoring.use_tool_id` is `yielding_use_tool_id`, which gives ours up first when
//! asked for it (the cache then stops for the session) and calls the original, put back by
//! `uninstall`. Only full tracing installs it (in sampling mode few allocations walk).
//!
//! Installing makes no Python object that could land on a free list (no import, no
//! compile, no walk over `opcode.opmap`): objects made and freed while tracing is suspended
//! wait there untraced, and the program's next objects of that kind are taken from there
//! without an allocation to trace (a test probe lost 124 of its 7,896 traces that way, and a
//! program's peak came out 1.6 % under the stdlib's).
//!
//! `HEAPSCOPE_VERIFY_FRAME_CACHE=1` at start checks every hit against a full walk (a twin of
//! the cached capture, chosen once: [`checked`]), for tests on real programs.
//!
//! **On by default** for full tracing on 3.13-3.15 since 2026-12-07 (`HEAPSCOPE_FRAME_CACHE=0`
//! turns it off): with generator frames cached it takes the 64-frame geomean from 1.59x to
//! 1.5x-ish; it holds a `sys.monitoring` tool id a program may want. See
//! docs/architecture.md, "The stack-walk cache".

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bumped each time a Python function starts (PY_START), while installed.
static EPOCH: AtomicU64 = AtomicU64::new(0);
/// Frames that cache hits did not walk since the last judgement (a hit adds its stack's
/// total frames).
static SAVED: AtomicU64 = AtomicU64::new(0);
/// True while events are counted and walks may be cached.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// True once events were counted in this process (see the module's notes).
static EVER: AtomicBool = AtomicBool::new(false);
/// `HEAPSCOPE_VERIFY_FRAME_CACHE=1` at install: every cache hit is checked against a full walk
/// ([`checked`]), for tests on real programs.
static VERIFY: AtomicBool = AtomicBool::new(false);
/// Hits checked and hits that disagreed with the walk, while verifying.
static CHECKED: AtomicU64 = AtomicU64::new(0);
static MISMATCHED: AtomicU64 = AtomicU64::new(0);
/// Events between two judgements of the counter's worth.
#[cfg_attr(not(Py_3_13), allow(dead_code))]
const WINDOW: u64 = 1 << 14;
/// Frames spared per event under which counting is given up.
#[cfg_attr(not(Py_3_13), allow(dead_code))]
const FRAMES_PER_EVENT: u64 = 5;

/// True while walks may be cached (events counted, not given up).
#[inline(always)]
pub fn counting() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

/// True if events were ever counted in this process.
#[inline(always)]
pub fn ever_installed() -> bool {
    EVER.load(Ordering::Relaxed)
}

/// True if every cache hit is to be checked against a full walk (`VERIFY`).
#[inline(always)]
pub fn verifying() -> bool {
    VERIFY.load(Ordering::Relaxed)
}

/// One cache hit checked against a full walk; `agreed`: the same stack.
pub fn record_check(agreed: bool) {
    CHECKED.fetch_add(1, Ordering::Relaxed);
    if !agreed {
        MISMATCHED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Cache hits checked against a full walk since the process started, and those that
/// disagreed (both 0 unless `HEAPSCOPE_VERIFY_FRAME_CACHE=1`).
pub fn checked() -> (u64, u64) {
    (
        CHECKED.load(Ordering::Relaxed),
        MISMATCHED.load(Ordering::Relaxed),
    )
}

/// A cache hit spared walking `frames` frames (GIL held: a plain add).
#[inline(always)]
pub fn saved(frames: u16) {
    SAVED.store(
        SAVED
            .load(Ordering::Relaxed)
            .wrapping_add(u64::from(frames)),
        Ordering::Relaxed,
    );
}

/// `offsetof(PyCodeObject, _co_monitoring)` (3.13-3.15, `scripts/frame-offsets.sh`).
#[cfg_attr(not(Py_3_13), allow(dead_code))]
pub const CODE_MONITORING: usize = 176;
/// `offsetof(PyCodeObject, _co_instrumentation_version)` (3.13-3.15).
pub const CODE_INSTRUMENTATION_VERSION: usize = 168;
/// `offsetof(PyThreadState, eval_breaker)` (3.13-3.15): its bits above the low
/// [`EVAL_EVENTS_BITS`] are the instrumentation version every code object must have.
pub const TSTATE_EVAL_BREAKER: usize = 24;
/// `_PY_EVAL_EVENTS_BITS` (3.13-3.15).
const EVAL_EVENTS_BITS: u32 = 8;

/// True if `code` is not instrumented for the current version (`tstate`'s): its next RESUME
/// (re-)instruments it, as RESUME compares the two (`_Py_Instrument`). That happens at a
/// code's first run after events were turned on, and at its next run after they were turned
/// off (the counter gave up, tracing stopped), or changed by another tool.
///
/// # Safety
/// `code` is a live code object and `tstate` a live thread state (3.13-3.15).
#[inline(always)]
pub unsafe fn instrumentation_stale(code: *const c_void, tstate: *const c_void) -> bool {
    // SAFETY: per the contract; both fields are `uintptr_t`.
    unsafe {
        let version = code
            .cast::<u8>()
            .add(CODE_INSTRUMENTATION_VERSION)
            .cast::<usize>()
            .read_unaligned();
        let breaker = tstate
            .cast::<u8>()
            .add(TSTATE_EVAL_BREAKER)
            .cast::<usize>()
            .read_unaligned();
        version != breaker & !((1 << EVAL_EVENTS_BITS) - 1)
    }
}

/// The RESUME-family opcodes of the running interpreter (a bit per opcode), set by `install`.
static RESUME_OPS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// The RESUME-family opcodes (RESUME, RESUME_CHECK, INSTRUMENTED_RESUME, 3.15's
/// RESUME_CHECK_JIT) of the interpreter of `version_hex` (`PY_VERSION_HEX`), empty for a version
/// not known. A table rather than `opcode.opmap`: reading that module imports it if the program
/// has not, and walking its items makes hundreds of tuples; made and freed while tracing is
/// suspended, they go to the interpreter's free lists untraced, and the program's next tuples
/// are taken from there without an allocation to trace (`tuple(x for x in xs)` on 3.15,
/// `compile()` on 3.13 lost traces that way). `tests/integration/test_walk_cache.py` compares
/// the table with `opcode` on each version.
pub fn resume_opcodes(version_hex: u64) -> &'static [u8] {
    match version_hex >> 16 {
        0x030d => &[149, 207, 236],
        0x030e => &[128, 196, 245],
        0x030f => &[128, 200, 201, 244],
        _ => &[],
    }
}

/// True if `op` is one of the running interpreter's RESUME-family opcodes.
#[inline(always)]
pub fn is_resume(op: u8) -> bool {
    RESUME_OPS[usize::from(op >> 6)].load(Ordering::Relaxed) & (1 << (op & 63)) != 0
}

/// The current epoch.
#[inline(always)]
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}

#[cfg(Py_3_13)]
mod imp {
    use std::cell::UnsafeCell;
    use std::ffi::CStr;
    use std::ptr;
    use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

    use pyo3_ffi::{
        PyMethodDef, PyMethodDefPointer, PyObject, Py_DECREF, Py_ssize_t, METH_FASTCALL,
    };

    use super::{COUNTING, EPOCH, EVER, FRAMES_PER_EVENT, RESUME_OPS, SAVED, VERIFY, WINDOW};

    /// The tool id we hold, or -1.
    static TOOL: AtomicI32 = AtomicI32::new(-1);
    /// The interpreter whose functions the events count (`PyInterpreterState_Main`).
    static INTERP: AtomicUsize = AtomicUsize::new(0);

    /// PY_START's callback: count the push. Called by the interpreter with the GIL held, so
    /// a plain load and store suffice (no locked add on the path of every call).
    unsafe extern "C" fn on_py_start(
        _slf: *mut PyObject,
        _args: *mut *mut PyObject,
        _nargs: Py_ssize_t,
    ) -> *mut PyObject {
        let epoch = EPOCH.load(Ordering::Relaxed).wrapping_add(1);
        EPOCH.store(epoch, Ordering::Relaxed);
        if epoch % WINDOW == 0 && COUNTING.load(Ordering::Relaxed) {
            // SAFETY: a monitoring callback runs with the GIL held.
            unsafe { judge() };
        }
        // SAFETY: None is immortal from 3.12 on; a new reference as the protocol wants.
        unsafe { pyo3_ffi::Py_NewRef(pyo3_ffi::Py_None()) }
    }

    /// Give counting up if the last window's hits spared too few frames: events off (from
    /// inside the callback, which `sys.monitoring` allows) and one last bump, so that no
    /// cached walk is trusted again. Our allocations meanwhile are not traced.
    #[cold]
    unsafe fn judge() {
        if SAVED.swap(0, Ordering::Relaxed) >= WINDOW * FRAMES_PER_EVENT {
            return;
        }
        // SAFETY: GIL held (a callback).
        unsafe { stop_counting(TOOL.load(Ordering::Relaxed), false) };
    }

    /// Counting off for good: no cached walk is trusted again (one last bump), events off for
    /// `tool`, and with `release_tool` the id given back. Our allocations meanwhile are not
    /// traced.
    ///
    /// # Safety
    /// The GIL is held.
    unsafe fn stop_counting(tool: i32, release_tool: bool) {
        COUNTING.store(false, Ordering::Relaxed);
        EPOCH.store(
            EPOCH.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        // SAFETY: GIL held (contract); the state reference ends in this block.
        unsafe {
            let suspended =
                crate::state::state().map(|s| std::mem::replace(&mut s.suspended, true));
            let m = monitoring();
            if !m.is_null() {
                events_off(m, tool, release_tool);
                Py_DECREF(m);
            }
            if let (Some(s), Some(was)) = (crate::state::state(), suspended) {
                s.suspended = was;
            }
        }
    }

    /// `sys.monitoring.use_tool_id` as it was before `install` put [`yielding_use_tool_id`]
    /// in its place (a strong reference), or null.
    static ORIGINAL_USE: AtomicPtr<PyObject> = AtomicPtr::new(ptr::null_mut());
    /// The wrapper `install` put there (a strong reference), or null.
    static WRAPPER_USE: AtomicPtr<PyObject> = AtomicPtr::new(ptr::null_mut());

    /// `sys.monitoring.use_tool_id` while we hold an id: a program that asks for the id we
    /// hold gets it (tool ids 3 and 4 are free for anyone by convention): we give it up first,
    /// and the cache is off for the rest of the session, every allocation walking as without
    /// it. Then the original, with the program's arguments.
    unsafe extern "C" fn yielding_use_tool_id(
        _slf: *mut PyObject,
        args: *mut *mut PyObject,
        nargs: Py_ssize_t,
    ) -> *mut PyObject {
        // SAFETY: called by the interpreter with the GIL held and `nargs` arguments.
        unsafe {
            let ours = TOOL.load(Ordering::Relaxed);
            if nargs >= 1 && ours >= 0 {
                let asked = pyo3_ffi::PyLong_AsLong(*args);
                if asked == -1 && !pyo3_ffi::PyErr_Occurred().is_null() {
                    pyo3_ffi::PyErr_Clear();
                } else if asked == std::ffi::c_long::from(ours) {
                    TOOL.store(-1, Ordering::Relaxed);
                    stop_counting(ours, true);
                }
            }
            let original = ORIGINAL_USE.load(Ordering::Relaxed);
            if original.is_null() {
                pyo3_ffi::PyErr_SetString(
                    pyo3_ffi::PyExc_RuntimeError,
                    c"sys.monitoring.use_tool_id is gone".as_ptr(),
                );
                return ptr::null_mut();
            }
            pyo3_ffi::PyObject_Vectorcall(original, args, nargs as usize, ptr::null_mut())
        }
    }

    static USE_DEF: Def = Def(UnsafeCell::new(PyMethodDef {
        ml_name: c"use_tool_id".as_ptr(),
        ml_meth: PyMethodDefPointer {
            PyCFunctionFast: yielding_use_tool_id,
        },
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    }));

    /// Put [`yielding_use_tool_id`] in `sys.monitoring` (no-op if there).
    ///
    /// # Safety
    /// The GIL is held; `m` is sys.monitoring.
    unsafe fn wrap_use_tool_id(m: *mut PyObject) {
        if !WRAPPER_USE.load(Ordering::Relaxed).is_null() {
            return;
        }
        // SAFETY: per the contract; on failure nothing is kept and the error is cleared.
        unsafe {
            let original = attr(m, c"use_tool_id");
            let wrapper = pyo3_ffi::PyCFunction_New(USE_DEF.0.get(), ptr::null_mut());
            if original.is_null()
                || wrapper.is_null()
                || pyo3_ffi::PyObject_SetAttrString(m, c"use_tool_id".as_ptr(), wrapper) != 0
            {
                pyo3_ffi::PyErr_Clear();
                decref_all(&[original, wrapper]);
                return;
            }
            ORIGINAL_USE.store(original, Ordering::Relaxed);
            WRAPPER_USE.store(wrapper, Ordering::Relaxed);
        }
    }

    /// Put the original `use_tool_id` back, unless the program replaced ours meanwhile.
    ///
    /// # Safety
    /// The GIL is held; `m` is sys.monitoring.
    unsafe fn unwrap_use_tool_id(m: *mut PyObject) {
        let wrapper = WRAPPER_USE.swap(ptr::null_mut(), Ordering::Relaxed);
        let original = ORIGINAL_USE.swap(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: per the contract; both are our strong references, released here.
        unsafe {
            let current = attr(m, c"use_tool_id");
            if !current.is_null()
                && current == wrapper
                && !original.is_null()
                && pyo3_ffi::PyObject_SetAttrString(m, c"use_tool_id".as_ptr(), original) != 0
            {
                pyo3_ffi::PyErr_Clear();
            }
            decref_all(&[current, wrapper, original]);
        }
    }

    struct Def(UnsafeCell<PyMethodDef>);
    // SAFETY: handed to the runtime once, under the GIL, and never written after.
    unsafe impl Sync for Def {}
    static DEF: Def = Def(UnsafeCell::new(PyMethodDef {
        ml_name: c"heapscope_py_start".as_ptr(),
        ml_meth: PyMethodDefPointer {
            PyCFunctionFast: on_py_start,
        },
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    }));

    /// `getattr(obj, name)(*args)`, consuming nothing; null with the error cleared on failure.
    ///
    /// # Safety
    /// The GIL is held; `obj` and `args` are live objects.
    unsafe fn call(obj: *mut PyObject, name: &CStr, args: &[*mut PyObject]) -> *mut PyObject {
        // SAFETY: per the contract.
        unsafe {
            let f = pyo3_ffi::PyObject_GetAttrString(obj, name.as_ptr());
            if f.is_null() {
                pyo3_ffi::PyErr_Clear();
                return ptr::null_mut();
            }
            let r = pyo3_ffi::PyObject_Vectorcall(f, args.as_ptr(), args.len(), ptr::null_mut());
            Py_DECREF(f);
            if r.is_null() {
                pyo3_ffi::PyErr_Clear();
            }
            r
        }
    }

    /// `obj.name`, a new reference, or null with the error cleared.
    ///
    /// # Safety
    /// The GIL is held; `obj` is null or a live object (null gives null).
    unsafe fn attr(obj: *mut PyObject, name: &CStr) -> *mut PyObject {
        if obj.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: per the contract.
        unsafe {
            let a = pyo3_ffi::PyObject_GetAttrString(obj, name.as_ptr());
            if a.is_null() {
                pyo3_ffi::PyErr_Clear();
            }
            a
        }
    }

    /// Release each non-null reference.
    ///
    /// # Safety
    /// The GIL is held; each pointer is null or a reference the caller owns.
    unsafe fn decref_all(objs: &[*mut PyObject]) {
        for &o in objs {
            if !o.is_null() {
                // SAFETY: per the contract.
                unsafe { Py_DECREF(o) };
            }
        }
    }

    /// `sys.monitoring`, a new reference, or null. Read from `sys` without an import call:
    /// `PyImport_ImportModule` runs `__import__`, whose argument tuples and dicts, freed while
    /// tracing is suspended, would wait on the free lists untraced for the program's next ones.
    unsafe fn monitoring() -> *mut PyObject {
        // SAFETY: GIL held by the callers; a borrowed reference made strong here.
        unsafe {
            let m = pyo3_ffi::PySys_GetObject(c"monitoring".as_ptr());
            if m.is_null() {
                pyo3_ffi::PyErr_Clear();
                return ptr::null_mut();
            }
            pyo3_ffi::Py_NewRef(m)
        }
    }

    /// `sys.monitoring.events.PY_START`, a new reference, or null.
    unsafe fn py_start_event(m: *mut PyObject) -> *mut PyObject {
        // SAFETY: GIL held; `m` is sys.monitoring; `events` is released here.
        unsafe {
            let events = attr(m, c"events");
            let e = attr(events, c"PY_START");
            decref_all(&[events]);
            e
        }
    }

    /// `set_events(tool, 0)`, and with `release_tool` also the callback dropped and the id
    /// freed. Failures are cleared (nothing more can be done).
    ///
    /// # Safety
    /// The GIL is held; `m` is sys.monitoring.
    unsafe fn events_off(m: *mut PyObject, tool: i32, release_tool: bool) {
        // SAFETY: per the contract; every object made here is released here.
        unsafe {
            let id_obj = pyo3_ffi::PyLong_FromLong(tool.into());
            let zero = pyo3_ffi::PyLong_FromLong(0);
            let event = if release_tool {
                py_start_event(m)
            } else {
                ptr::null_mut()
            };
            if !id_obj.is_null() && !zero.is_null() {
                release(call(m, c"set_events", &[id_obj, zero]));
                if release_tool && !event.is_null() {
                    let none = pyo3_ffi::Py_None();
                    release(call(m, c"register_callback", &[id_obj, event, none]));
                    release(call(m, c"free_tool_id", &[id_obj]));
                }
            }
            decref_all(&[id_obj, zero, event]);
            pyo3_ffi::PyErr_Clear();
        }
    }

    /// On unless `HEAPSCOPE_FRAME_CACHE=0` (docs/architecture.md, "The stack-walk cache").
    fn enabled_by_env() -> bool {
        std::env::var_os("HEAPSCOPE_FRAME_CACHE").is_none_or(|v| v != "0")
    }

    /// Take a tool id and count PY_START events; false (nothing installed) if no id is free
    /// or anything fails. No-op if installed.
    ///
    /// # Safety
    /// The GIL is held; the caller keeps its own allocations out of the traces meanwhile.
    pub unsafe fn install() -> bool {
        if TOOL.load(Ordering::Relaxed) >= 0 {
            return true;
        }
        if !enabled_by_env() || super::resume_opcodes(crate::python_version_hex()).is_empty() {
            return false;
        }
        VERIFY.store(
            std::env::var_os("HEAPSCOPE_VERIFY_FRAME_CACHE").is_some_and(|v| v == "1"),
            Ordering::Relaxed,
        );
        // Before any event: from the first `set_events` on, CPython instruments code at RESUME.
        set_resume_ops();
        // SAFETY: GIL held (contract); every object made here is released here.
        unsafe {
            let m = monitoring();
            if m.is_null() {
                return false;
            }
            let event = py_start_event(m);
            let name = pyo3_ffi::PyUnicode_FromString(c"heapscope".as_ptr());
            let func = pyo3_ffi::PyCFunction_New(DEF.0.get(), ptr::null_mut());
            let mut tool = -1;
            if !event.is_null() && !name.is_null() && !func.is_null() {
                for id in [4, 3] {
                    let id_obj = pyo3_ffi::PyLong_FromLong(id);
                    if id_obj.is_null() {
                        pyo3_ffi::PyErr_Clear();
                        continue;
                    }
                    let mut ok = release(call(m, c"use_tool_id", &[id_obj, name]));
                    if ok {
                        // From the first set_events on, CPython instruments code at first run.
                        EVER.store(true, Ordering::Relaxed);
                        ok = release(call(m, c"register_callback", &[id_obj, event, func]))
                            && release(call(m, c"set_events", &[id_obj, event]));
                        if ok {
                            tool = id as i32;
                        } else {
                            release(call(m, c"free_tool_id", &[id_obj]));
                        }
                    }
                    Py_DECREF(id_obj);
                    if ok {
                        break;
                    }
                }
            }
            if tool >= 0 {
                wrap_use_tool_id(m);
            }
            decref_all(&[event, name, func, m]);
            if tool >= 0 && !offset_holds() {
                TOOL.store(tool, Ordering::Relaxed);
                uninstall();
                return false;
            }
            if tool >= 0 {
                INTERP.store(
                    pyo3_ffi::PyInterpreterState_Main() as usize,
                    Ordering::Relaxed,
                );
                TOOL.store(tool, Ordering::Relaxed);
                SAVED.store(0, Ordering::Relaxed);
                COUNTING.store(true, Ordering::Relaxed);
            }
            tool >= 0
        }
    }

    /// [`super::CODE_MONITORING`] names `_co_monitoring` and the version check
    /// ([`super::instrumentation_stale`]) holds: a code object never run has no
    /// `_co_monitoring` and a stale version; the caller's, which `set_events` instrumented, has
    /// both (the caller has a frame when `start()` is called from Python; without one only the
    /// first half is checked).
    unsafe fn offset_holds() -> bool {
        let read = |code: *mut PyObject| {
            // SAFETY: a live code object, larger than the offset (3.13-3.15 headers).
            unsafe {
                code.cast::<u8>()
                    .add(super::CODE_MONITORING)
                    .cast::<usize>()
                    .read_unaligned()
            }
        };
        let tstate = crate::stack::current_tstate();
        // SAFETY: live code objects; the calling thread's state (GIL held).
        let stale = |code: *mut PyObject| unsafe {
            !tstate.is_null() && super::instrumentation_stale(code.cast(), tstate)
        };
        // SAFETY: GIL held by the caller; references released here.
        unsafe {
            // Not compiled: the compiler's tuples and lists would go to the free lists
            // untraced (see `resume_opcodes`).
            let fresh = pyo3_ffi::PyCode_NewEmpty(c"<heapscope>".as_ptr(), c"fresh".as_ptr(), 1)
                .cast::<PyObject>();
            if fresh.is_null() {
                pyo3_ffi::PyErr_Clear();
                return false;
            }
            let unset = read(fresh) == 0 && stale(fresh);
            Py_DECREF(fresh);
            let frame = pyo3_ffi::PyEval_GetFrame();
            if frame.is_null() {
                return unset;
            }
            let code = pyo3_ffi::PyFrame_GetCode(frame).cast::<PyObject>();
            let set = read(code) != 0 && !stale(code);
            Py_DECREF(code);
            unset && set
        }
    }

    /// Fill [`RESUME_OPS`] from [`super::resume_opcodes`] (`install` refuses a version without
    /// an entry).
    fn set_resume_ops() {
        for &op in super::resume_opcodes(crate::python_version_hex()) {
            RESUME_OPS[usize::from(op >> 6)].fetch_or(1 << (op & 63), Ordering::Relaxed);
        }
    }

    /// Drop a call's result; true if there was one (the call succeeded).
    unsafe fn release(r: *mut PyObject) -> bool {
        if r.is_null() {
            return false;
        }
        // SAFETY: a new reference returned by `call`, GIL held.
        unsafe { Py_DECREF(r) };
        true
    }

    /// Stop counting and give the tool id back. No-op if not installed.
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn uninstall() {
        let tool = TOOL.swap(-1, Ordering::Relaxed);
        COUNTING.store(false, Ordering::Relaxed);
        // SAFETY: GIL held (contract); `m` is released here.
        unsafe {
            let m = monitoring();
            if !m.is_null() {
                if tool >= 0 {
                    events_off(m, tool, true);
                }
                unwrap_use_tool_id(m);
                Py_DECREF(m);
            }
        }
    }

    /// The interpreter the events are counted for (0 when not installed).
    #[inline(always)]
    pub fn interpreter() -> usize {
        INTERP.load(Ordering::Relaxed)
    }
}

#[cfg(not(Py_3_13))]
mod imp {
    // Before 3.12 there is no sys.monitoring: every allocation walks the stack.
    pub unsafe fn install() -> bool {
        false
    }
    pub unsafe fn uninstall() {}
    #[inline(always)]
    pub fn interpreter() -> usize {
        0
    }
}

pub use imp::{install, interpreter, uninstall};
