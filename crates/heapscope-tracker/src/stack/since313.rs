//! The frame walk shared by CPython 3.13, 3.14 and 3.15 (`_PyInterpreterFrame` behind
//! `tstate->current_frame`, `instr_ptr` at the instruction being executed), parameterised by
//! each version's facts ([`Facts`], in `py313.rs`, `py314.rs`, `py315.rs`), and the check of
//! those facts against the running interpreter's `_Py_DebugOffsets`.
//!
//! Offsets were read with `offsetof` from each version's internal headers
//! (`scripts/frame-offsets.sh 3.X` in the Python root); `start()` compares every one the
//! interpreter publishes in `_PyRuntime.debug_offsets` before installing any hook.

use std::ffi::c_void;

use super::{chain_step, finish_hash, Captured, Check, RawFrame, WalkCache, RELINKED};
use crate::monitor;

/// What differs between the versions this walk serves.
pub trait Facts {
    /// `offsetof(PyThreadState, current_frame)`.
    const TSTATE_CURRENT_FRAME: usize;
    /// `offsetof(PyThreadState, native_thread_id)`.
    const TSTATE_NATIVE_THREAD_ID: usize;
    /// `offsetof(_PyInterpreterFrame, owner)`.
    const FRAME_OWNER: usize;
    /// Tag bits of `f_executable` (a `_PyStackRef` from 3.14 on, a plain pointer in 3.13).
    const EXECUTABLE_TAG_BITS: usize;
    /// `offsetof(PyCodeObject, _co_firsttraceable)`.
    const CODE_FIRSTTRACEABLE: usize;
    /// `offsetof(PyCodeObject, co_code_adaptive)`.
    const CODE_CODE_ADAPTIVE: usize;
    /// `offsetof(_PyRuntimeState, interpreters.head)`.
    const RUNTIME_INTERPRETERS_HEAD: usize;
    /// Offsets inside `_Py_DebugOffsets` of the fields [`check`] compares, with the value each
    /// must hold (the offset this module uses).
    const DEBUG_OFFSETS: &'static [(&'static str, usize, usize)];
}

/// `offsetof(_PyInterpreterFrame, f_executable)` (3.13-3.15).
pub const FRAME_EXECUTABLE: usize = 0;
/// `offsetof(_PyInterpreterFrame, previous)` (3.13-3.15).
pub const FRAME_PREVIOUS: usize = 8;
/// `offsetof(_PyInterpreterFrame, instr_ptr)` (3.13-3.15).
pub const FRAME_INSTR_PTR: usize = 56;
/// `offsetof(PyInterpreterState, ceval.gil)` (3.13-3.15): the GIL the interpreter uses, its
/// own or the main interpreter's.
pub const INTERP_CEVAL_GIL: usize = 16;
/// `offsetof(PyCodeObject, co_filename)` (3.11-3.15).
pub const CODE_FILENAME: usize = 112;
/// `offsetof(PyCodeObject, co_qualname)` (3.11-3.15).
pub const CODE_QUALNAME: usize = 128;
/// `FRAME_OWNED_BY_GENERATOR` (3.11-3.15).
const FRAME_OWNED_BY_GENERATOR: u8 = 1;
/// Owners from this value on are not Python frames: 3.13's `FRAME_OWNED_BY_CSTACK` (3), 3.14's
/// `FRAME_OWNED_BY_INTERPRETER` (3) and `FRAME_OWNED_BY_CSTACK` (4), 3.15's
/// `FRAME_OWNED_BY_INTERPRETER` (3). `_PyFrame_IsIncomplete` treats them as incomplete.
const FIRST_NON_PYTHON_OWNER: u8 = 3;
/// `offsetof(PyThreadState, interp)` (3.11-3.15, the public struct's third field).
const TSTATE_INTERP: usize = 16;
/// `sizeof(_Py_CODEUNIT)`.
const CODE_UNIT: isize = 2;

#[inline(always)]
unsafe fn read<T: Copy>(base: *const c_void, offset: usize) -> T {
    // SAFETY: callers pass a live interpreter struct and an offset of a field of type T.
    unsafe { base.cast::<u8>().add(offset).cast::<T>().read() }
}

/// The frame's code object (`_PyFrame_GetCode`: `f_executable` with its tag bits cleared).
#[inline(always)]
unsafe fn code<F: Facts>(frame: *const c_void) -> *mut c_void {
    // SAFETY: `frame` is a live `_PyInterpreterFrame*`.
    let bits: usize = unsafe { read(frame, FRAME_EXECUTABLE) };
    (bits & !F::EXECUTABLE_TAG_BITS) as *mut c_void
}

/// Byte offset of the instruction being executed (`_PyInterpreterFrame_LASTI` times
/// `sizeof(_Py_CODEUNIT)`, what `PyUnstable_InterpreterFrame_GetLine` gives `PyCode_Addr2Line`).
#[inline(always)]
unsafe fn offset<F: Facts>(frame: *const c_void, code: *const c_void) -> isize {
    // SAFETY: `frame` is a live Python frame whose code object is `code`.
    let instr: *const u8 = unsafe { read(frame, FRAME_INSTR_PTR) };
    instr as isize - (code as isize + F::CODE_CODE_ADAPTIVE as isize)
}

/// True for frames the interpreter or the C stack owns (not Python frames).
#[inline(always)]
unsafe fn not_python<F: Facts>(frame: *const c_void) -> bool {
    // SAFETY: `frame` is a live `_PyInterpreterFrame*`.
    unsafe { read::<u8>(frame, F::FRAME_OWNER) >= FIRST_NON_PYTHON_OWNER }
}

/// The offset of `code`'s first traceable instruction (`_co_firsttraceable`).
#[inline(always)]
unsafe fn first_traceable<F: Facts>(code: *const c_void) -> isize {
    // SAFETY: `code` is a live code object.
    unsafe { read::<i32>(code, F::CODE_FIRSTTRACEABLE) as isize * CODE_UNIT }
}

/// The offset from which a Python frame is complete (`_PyFrame_IsIncomplete`): its code's first
/// traceable instruction, 0 for a generator's frame (never incomplete; a running one is at 0 or
/// past it).
#[inline(always)]
unsafe fn first_offset<F: Facts>(frame: *const c_void) -> isize {
    // SAFETY: `frame` is a live Python frame, so `f_executable` is a live code object.
    unsafe {
        if read::<u8>(frame, F::FRAME_OWNER) == FRAME_OWNED_BY_GENERATOR {
            return 0;
        }
        first_traceable::<F>(code::<F>(frame))
    }
}

/// A Python frame (see `not_python`) that has not reached its first traceable instruction
/// (the rest of `_PyFrame_IsIncomplete`).
#[inline(always)]
unsafe fn before_first_instruction<F: Facts>(frame: *const c_void) -> bool {
    // SAFETY: `frame` is a live Python frame, so `f_executable` is a live code object.
    unsafe {
        if read::<u8>(frame, F::FRAME_OWNER) == FRAME_OWNED_BY_GENERATOR {
            return false;
        }
        let code = code::<F>(frame);
        offset::<F>(frame, code) < first_traceable::<F>(code)
    }
}

/// The innermost interpreter frame of `tstate` (null if none).
pub unsafe fn current_frame<F: Facts>(tstate: *mut c_void) -> *const c_void {
    if tstate.is_null() {
        return std::ptr::null();
    }
    // SAFETY: `tstate` is a live thread state.
    unsafe { read(tstate, F::TSTATE_CURRENT_FRAME) }
}

/// The stdlib's `traceback_get_frames`: the complete frames from the innermost outwards,
/// frames of the interpreter or the C stack (anywhere in the chain) skipped and not counted.
///
/// Where this differs from the stdlib: below the first complete frame, a Python frame counts
/// as incomplete (not yet at its first traceable instruction) only if it is at offset 0, and
/// only among the frames kept (those past the limit are counted without a look at their
/// offset). That is the shim frame under a specialized class call's `__init__`
/// (`_Py_InitCleanup`), met at every allocation in such an `__init__`; a frame below another
/// one is otherwise past its first instruction, except when Python code runs in the middle of
/// its prologue (`MAKE_CELL`, `COPY_FREE_VARS`), which needs a finalizer triggered there.
/// Checking every frame costs a read of every frame's code object (a cache miss per frame
/// per allocation: ~0.3x of an untraced run at limit 1, `make bench-versions`).
pub unsafe fn capture<F: Facts>(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
) -> Captured {
    // SAFETY: the caller's contract.
    unsafe { walk::<F, false>(tstate, out, floor, &mut [], &mut []) }
}

/// `capture`, and in `segs[i]` how many invocations of `_PyEval_EvalFrameDefault` lie between
/// frame `i` and the innermost one: each pushes an entry frame the interpreter owns, a local
/// variable of its C frame, whose address goes to `bounds` (`--native` interleaves C frames
/// at those places).
pub unsafe fn capture_segments<F: Facts>(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
    segs: &mut [u16],
    bounds: &mut [usize],
) -> Captured {
    // SAFETY: the caller's contract.
    unsafe { walk::<F, true>(tstate, out, floor, segs, bounds) }
}

/// The innermost frame at or above `frame` that the walk keeps first: frames of the
/// interpreter or the C stack, and Python frames not at their first instruction yet, are
/// passed (see [`capture`]). With `SEG`, each frame of the interpreter passed ends a segment.
#[inline(always)]
unsafe fn first_complete<F: Facts, const SEG: bool>(
    mut frame: *const c_void,
    floor: *const c_void,
    mut on_entry: impl FnMut(*const c_void),
) -> *const c_void {
    // SAFETY: `frame` is null or a live frame of the calling thread's chain.
    unsafe {
        while !frame.is_null()
            && frame != floor
            && (not_python::<F>(frame) || before_first_instruction::<F>(frame))
        {
            if SEG && not_python::<F>(frame) {
                on_entry(frame);
            }
            frame = read(frame, FRAME_PREVIOUS);
        }
    }
    frame
}

/// [`capture`] through `cache` (`monitor.rs`): when no Python function started since the last
/// walk of this thread and its current frame is the same frame, the frames under it are those
/// `out` holds from that walk: only the innermost frame's offset is read. Otherwise a walk,
/// remembered if the event counter runs.
///
/// "The same frame" is the same address running the same code past its prologue (the
/// prologue's end is remembered with the walk): a new
/// activation of the same function in the same place (called again, nothing allocated or
/// started between) makes its cells (MAKE_CELL) before its RESUME fires PY_START; the walk
/// skips a frame not at its first instruction yet, as the stdlib does, so that allocation
/// walks (it was given the last walk's caller line: found by checking every hit against a
/// walk, `test_walk_cache.py`'s `prologues`).
///
/// A generator's frame is put back on top by whoever resumes it, relinked under that caller,
/// with no PY_START (PY_RESUME would tell, but its callback's offset argument is an int the
/// interpreter allocates for offsets past 256, traced allocations the program does not make).
/// So when the innermost frame is a generator's, the hit also needs the frames under it down
/// to the first frame of a function that is not a generator (the resumer's caller chain up to
/// a frame that cannot have been relinked: a plain function's frame is left only by a return,
/// and taken again only by a push) at the addresses and instructions the walk saw: only those
/// can have moved without an event. That is a few frames read instead of the whole stack
/// (jinja2 renders in generators, and generator expressions are everywhere).
pub unsafe fn capture_cached<F: Facts, const VERIFY: bool>(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
    cache: &mut WalkCache,
) -> Captured {
    let epoch = monitor::epoch();
    // SAFETY: the caller's contract: `tstate` is the calling thread's, its frames alive.
    unsafe {
        if cache.valid
            && cache.epoch == epoch
            && cache.tstate == tstate as usize
            && cache.floor == floor as usize
            && read::<usize>(tstate, TSTATE_INTERP) == monitor::interpreter()
        {
            // The innermost frame itself, complete or not: 3.15 runs a generator expression's
            // first RESUME (where CPython instruments its code, before PY_START fires) in a frame
            // that is not complete yet, above the cached one; that allocation must walk.
            let top = current_frame::<F>(tstate);
            let cached_code = cache.code as *const c_void;
            if let Some(off) = same_frame::<F>(top, cache) {
                if let Some(f) = out.first_mut() {
                    f.offset = off;
                }
                monitor::saved(cache.total_nframe);
                let hit = Captured {
                    nframe: cache.nframe,
                    total_nframe: cache.total_nframe,
                    hash: finish_hash(cache.chain, cache.total_nframe, off),
                    chain: cache.chain,
                    check: Check::moved_top(cache.check, cached_code, cache.offset0, off),
                    top: cache.top,
                    instrumenting: false,
                };
                if VERIFY {
                    verify_hit::<F>(tstate, out, floor, &hit);
                }
                return hit;
            }
        }
        let mut captured = walk::<F, false>(tstate, out, floor, &mut [], &mut []);
        if monitor::ever_installed() && instrumenting::<F>(tstate, floor) {
            captured.instrumenting = true;
            cache.valid = false;
            return captured;
        }
        cache.valid = captured.nframe > 0
            && monitor::counting()
            && read::<usize>(tstate, TSTATE_INTERP) == monitor::interpreter();
        let mut relinked = [(0, 0); RELINKED];
        let mut relinked_len = 0;
        if cache.valid
            && read::<u8>(captured.top as *const c_void, F::FRAME_OWNER) == FRAME_OWNED_BY_GENERATOR
        {
            match relinked_frames::<F>(captured.top as *const c_void, floor, &mut relinked) {
                Some(n) => relinked_len = n,
                None => cache.valid = false,
            }
        }
        if cache.valid {
            *cache = WalkCache {
                valid: true,
                epoch,
                tstate: tstate as usize,
                floor: floor as usize,
                top: captured.top,
                code: out[0].code as usize,
                nframe: captured.nframe,
                total_nframe: captured.total_nframe,
                chain: captured.chain,
                check: captured.check,
                offset0: out[0].offset,
                first_offset: first_offset::<F>(captured.top as *const c_void),
                relinked,
                relinked_len,
            };
        }
        captured
    }
}

/// Check a cache hit against a full walk (`HEAPSCOPE_VERIFY_FRAME_CACHE=1`, for tests): the
/// same frames, hash and totals. Limits past 256 frames are not checked.
#[cold]
#[inline(never)]
unsafe fn verify_hit<F: Facts>(
    tstate: *mut c_void,
    out: &[RawFrame],
    floor: *const c_void,
    hit: &Captured,
) {
    const MOST: usize = 256;
    if out.len() > MOST {
        return;
    }
    let mut frames = [RawFrame::UNKNOWN; MOST];
    // SAFETY: the caller's contract (the calling thread's live frames).
    let walked =
        unsafe { walk::<F, false>(tstate, &mut frames[..out.len()], floor, &mut [], &mut []) };
    monitor::record_check(
        walked.nframe == hit.nframe
            && walked.total_nframe == hit.total_nframe
            && walked.hash == hit.hash
            && walked.check == hit.check
            && frames[..walked.nframe] == out[..walked.nframe],
    );
}

/// The offset of the innermost frame `top` if it is the cached one (see [`capture_cached`]):
/// the same address running the same code past its prologue, with the frames `relinked`
/// lists still under it.
#[inline(always)]
unsafe fn same_frame<F: Facts>(top: *const c_void, cache: &WalkCache) -> Option<isize> {
    if top as usize != cache.top {
        return None;
    }
    // SAFETY: `top` is the calling thread's innermost frame (equal to the cached one, so not
    // null), live during the call.
    unsafe {
        let cached = cache.code as *const c_void;
        if code::<F>(top) != cached.cast_mut() {
            return None;
        }
        let off = offset::<F>(top, cached);
        (off >= cache.first_offset && relinked_same(top, cache)).then_some(off)
    }
}

/// The frames under the generator frame `top` that a resumption can relink (see
/// [`capture_cached`]), into `out`: each frame down to the first Python frame not owned by a
/// generator, inclusive. `None` if they do not fit or the chain ends first (the last frame
/// listed would then be one whose `previous` a resumption can set again).
#[inline(never)]
unsafe fn relinked_frames<F: Facts>(
    top: *const c_void,
    floor: *const c_void,
    out: &mut [(usize, usize); RELINKED],
) -> Option<u8> {
    let mut n = 0;
    // SAFETY: `top` is a live frame of the calling thread's chain, and so are those under it.
    unsafe {
        let mut frame: *const c_void = read(top, FRAME_PREVIOUS);
        while !frame.is_null() && frame != floor {
            let slot = out.get_mut(n)?;
            *slot = (frame as usize, read(frame, FRAME_INSTR_PTR));
            n += 1;
            let owner = read::<u8>(frame, F::FRAME_OWNER);
            if owner != FRAME_OWNED_BY_GENERATOR && owner < FIRST_NON_PYTHON_OWNER {
                return Some(n as u8);
            }
            frame = read(frame, FRAME_PREVIOUS);
        }
    }
    None
}

/// True if the frames under `top` that `cache.relinked` lists are still there, at the same
/// instructions (trivially when it lists none: the innermost frame is not a generator's).
#[inline(always)]
unsafe fn relinked_same(top: *const c_void, cache: &WalkCache) -> bool {
    let mut frame = top;
    for &(addr, instr) in &cache.relinked[..usize::from(cache.relinked_len)] {
        // SAFETY: `frame` is a live frame of the calling thread's chain (the innermost, then
        // each one checked equal to a frame the walk saw, whose `previous` is live).
        unsafe {
            frame = read(frame, FRAME_PREVIOUS);
            if frame as usize != addr || read::<usize>(frame, FRAME_INSTR_PTR) != instr {
                return false;
            }
        }
    }
    true
}

/// True if the innermost Python frame (complete or not) is at a RESUME of a code object whose
/// instrumentation is not the current version's: the interpreter is instrumenting it, at its
/// first run after events were turned on, or taking the instrumentation out, at its next run
/// after they were turned off (`monitor.rs`). What it makes then is not the program's.
#[inline(always)]
unsafe fn instrumenting<F: Facts>(tstate: *mut c_void, floor: *const c_void) -> bool {
    // SAFETY: the caller's contract: the calling thread's live frames.
    unsafe {
        let mut frame = current_frame::<F>(tstate);
        while !frame.is_null() && frame != floor && not_python::<F>(frame) {
            frame = read(frame, FRAME_PREVIOUS);
        }
        if frame.is_null() || frame == floor {
            return false;
        }
        let instr: *const u8 = read(frame, FRAME_INSTR_PTR);
        monitor::is_resume(instr.read()) && monitor::instrumentation_stale(code::<F>(frame), tstate)
    }
}

#[inline(always)]
unsafe fn walk<F: Facts, const SEG: bool>(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
    segs: &mut [u16],
    bounds: &mut [usize],
) -> Captured {
    let mut seg = 0u16;
    // The entry frame ending segment `seg`.
    let mut bound = |seg: u16, frame: *const c_void| {
        if let Some(b) = bounds.get_mut(usize::from(seg)) {
            *b = frame as usize;
        }
    };
    let mut captured = Captured {
        nframe: 0,
        total_nframe: 0,
        hash: 0,
        chain: 0,
        check: 0,
        top: 0,
        instrumenting: false,
    };
    // SAFETY: `tstate` is the calling thread's live thread state (or null); the interpreter
    // keeps its frame chain valid while this thread is inside an allocator call.
    unsafe {
        let mut frame = first_complete::<F, SEG>(current_frame::<F>(tstate), floor, |f| {
            bound(seg, f);
            seg = seg.saturating_add(1);
        });
        let mut hash = 0u64;
        let mut check = Check::default();
        let mut n = 0usize;
        let mut offset0 = 0isize;
        let limit = out.len();
        // The innermost frame (a complete Python frame, as `first_complete` stops there):
        // its offset goes into the hash last (`finish_hash`).
        if !frame.is_null() && frame != floor && limit > 0 {
            let code = code::<F>(frame);
            offset0 = offset::<F>(frame, code);
            out[0] = RawFrame {
                code,
                offset: offset0,
            };
            if SEG && !segs.is_empty() {
                segs[0] = seg;
            }
            hash = chain_step(hash, code, 0);
            check.push(code, offset0);
            captured.top = frame as usize;
            n = 1;
            frame = read(frame, FRAME_PREVIOUS);
        }
        // Up to the limit, Python frames are written and hashed...
        while n < limit && !frame.is_null() && frame != floor {
            if !not_python::<F>(frame) {
                let code = code::<F>(frame);
                let off = offset::<F>(frame, code);
                if off == 0 && before_first_instruction::<F>(frame) {
                    // The shim frame under `__init__` when a class call is specialized
                    // (`_Py_InitCleanup`, at its first instruction while `__init__` runs):
                    // incomplete, as the stdlib skips it.
                    frame = read(frame, FRAME_PREVIOUS);
                    continue;
                }
                out[n] = RawFrame { code, offset: off };
                if SEG && n < segs.len() {
                    segs[n] = seg;
                }
                hash = chain_step(hash, code, off);
                check.push(code, off);
                n += 1;
            } else if SEG {
                bound(seg, frame);
                seg = seg.saturating_add(1);
            }
            frame = read(frame, FRAME_PREVIOUS);
        }
        // ...past it only counted (the stdlib's `total_nframe`).
        let mut total = n as u32;
        while !frame.is_null() && frame != floor {
            if !not_python::<F>(frame) {
                total += 1;
            } else if SEG {
                bound(seg, frame);
                seg = seg.saturating_add(1);
            }
            frame = read(frame, FRAME_PREVIOUS);
        }
        captured.nframe = n;
        captured.total_nframe = total.min(u32::from(u16::MAX)) as u16;
        captured.chain = hash;
        captured.check = check.finish(n);
        captured.hash = finish_hash(hash, captured.total_nframe, offset0);
    }
    captured
}

/// The OS thread id stored in a `PyThreadState*`.
pub unsafe fn native_thread_id<F: Facts>(tstate: *mut c_void) -> u64 {
    if tstate.is_null() {
        return 0;
    }
    // SAFETY: `tstate` is a live `PyThreadState*`; `native_thread_id` is an `unsigned long`.
    unsafe { read::<u64>(tstate, F::TSTATE_NATIVE_THREAD_ID) }
}

/// Borrowed `co_filename` and `co_qualname` of a live code object.
pub unsafe fn code_names(code: *mut c_void) -> (*mut c_void, *mut c_void) {
    // SAFETY: `code` is a live `PyCodeObject*`; both fields are `PyObject*` (str).
    unsafe { (read(code, CODE_FILENAME), read(code, CODE_QUALNAME)) }
}

/// The shared fields' places in `_Py_DebugOffsets`, for [`Facts::DEBUG_OFFSETS`] lists.
pub const fn shared_debug_offsets(
    frame_previous: usize,
    frame_executable: usize,
    frame_instr_ptr: usize,
    code_filename: usize,
    code_qualname: usize,
) -> [(&'static str, usize, usize); 5] {
    [
        ("interpreter_frame.previous", frame_previous, FRAME_PREVIOUS),
        (
            "interpreter_frame.executable",
            frame_executable,
            FRAME_EXECUTABLE,
        ),
        (
            "interpreter_frame.instr_ptr",
            frame_instr_ptr,
            FRAME_INSTR_PTR,
        ),
        ("code_object.filename", code_filename, CODE_FILENAME),
        ("code_object.qualname", code_qualname, CODE_QUALNAME),
    ]
}

/// Compare this module's offsets with those the running interpreter publishes in
/// `_PyRuntime.debug_offsets` (3.13+): the cookie, the version (major.minor), a GIL build,
/// then every listed field. Returns what differs, for the error message.
pub fn check<F: Facts>(version_hex: u64) -> Result<(), String> {
    const COOKIE: &[u8; 8] = b"xdebugpy";
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches the process's globals,
    // where the interpreter's `_PyRuntime` is when a Python runs this code.
    let runtime = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_PyRuntime".as_ptr()) };
    if runtime.is_null() {
        return Err("no _PyRuntime symbol".to_string());
    }
    let runtime = runtime.cast_const();
    // SAFETY: `_Py_DebugOffsets` is the first member of `_PyRuntimeState` from 3.13 on and
    // starts with an 8-byte cookie then u64 fields; the caller chose this check because the
    // running version is 3.13+, and every offset read lies inside the struct (the lists come
    // from offsetof on that version's headers).
    unsafe {
        let cookie: [u8; 8] = read(runtime, 0);
        if &cookie != COOKIE {
            return Err("no _Py_DebugOffsets cookie in _PyRuntime".to_string());
        }
        let version: u64 = read(runtime, 8);
        if version >> 16 != version_hex >> 16 {
            return Err(format!(
                "_Py_DebugOffsets is for version {version:#x}, not {version_hex:#x}"
            ));
        }
        let free_threaded: u64 = read(runtime, 16);
        if free_threaded != 0 {
            return Err("a free-threaded build".to_string());
        }
        for &(name, at, expected) in F::DEBUG_OFFSETS {
            let found: u64 = read(runtime, at);
            if found != expected as u64 {
                return Err(format!("{name} is at {found}, expected {expected}"));
            }
        }
    }
    Ok(())
}
