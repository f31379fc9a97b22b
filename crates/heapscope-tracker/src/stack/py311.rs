//! CPython 3.11's frame layout (`Include/internal/pycore_frame.h`, `cpython/pystate.h`,
//! `cpython/code.h`). Offsets were read with `offsetof` against the 3.11 headers; `start()`
//! checks them against the running interpreter before installing any hook.

use std::ffi::c_void;

use super::{chain_step, mix, Captured, Check, FrameLayout, RawFrame, WalkCache};

pub static LAYOUT: FrameLayout = FrameLayout {
    name: "3.11",
    // 3.11 publishes no offsets; `start()` still compares the walk with `PyEval_GetFrame()`.
    check: |_| Ok(()),
    capture,
    capture_cached,
    capture_cached_checked: capture_cached,
    capture_segments,
    current_frame,
    native_thread_id,
    code_names,
    // One GIL for every interpreter: nothing to tell apart (`interp.rs`).
    interpreters: None,
};

const TSTATE_CFRAME: usize = 56;
const TSTATE_NATIVE_THREAD_ID: usize = 160;
const CFRAME_CURRENT_FRAME: usize = 8;
const CFRAME_PREVIOUS: usize = 16;
const FRAME_F_CODE: usize = 32;
const FRAME_PREVIOUS: usize = 48;
const FRAME_PREV_INSTR: usize = 56;
/// `bool is_entry`: the outermost frame of a `_PyEval_EvalFrameDefault` invocation.
const FRAME_IS_ENTRY: usize = 68;
const FRAME_OWNER: usize = 69;
const FRAME_OWNED_BY_GENERATOR: u8 = 1;
const CODE_FIRSTTRACEABLE: usize = 168;
const CODE_CODE_ADAPTIVE: usize = 184;
const CODE_FILENAME: usize = 112;
const CODE_QUALNAME: usize = 128;
/// `sizeof(_Py_CODEUNIT)`.
const CODE_UNIT: isize = 2;

#[inline(always)]
unsafe fn read<T: Copy>(base: *const c_void, offset: usize) -> T {
    // SAFETY: callers pass a live interpreter struct and an offset of a field of type T.
    unsafe { base.cast::<u8>().add(offset).cast::<T>().read() }
}

/// Byte offset of the frame's current instruction (`_PyInterpreterFrame_LASTI` in bytes).
#[inline(always)]
unsafe fn offset(frame: *const c_void, code: *const c_void) -> isize {
    // SAFETY: `frame` is a live `_PyInterpreterFrame*` whose `f_code` is `code`; both pointers
    // are into memory the interpreter owns, so the difference is well defined as integers.
    unsafe {
        let prev_instr: *const u8 = read(frame, FRAME_PREV_INSTR);
        prev_instr as isize - (code as isize + CODE_CODE_ADAPTIVE as isize)
    }
}

/// `_PyFrame_IsIncomplete`: the frame has not reached its first traceable instruction.
#[inline(always)]
unsafe fn incomplete(frame: *const c_void, code: *const c_void) -> bool {
    // SAFETY: as in `offset`.
    unsafe {
        let owner: u8 = read(frame, FRAME_OWNER);
        let firsttraceable = read::<i32>(code, CODE_FIRSTTRACEABLE) as isize;
        owner != FRAME_OWNED_BY_GENERATOR && offset(frame, code) < firsttraceable * CODE_UNIT
    }
}

unsafe fn current_frame(tstate: *mut c_void) -> *const c_void {
    if tstate.is_null() {
        return std::ptr::null();
    }
    // SAFETY: `tstate` is a live thread state; cframe may be null before any frame ran.
    unsafe {
        let cframe: *const c_void = read(tstate, TSTATE_CFRAME);
        if cframe.is_null() {
            std::ptr::null()
        } else {
            read(cframe, CFRAME_CURRENT_FRAME)
        }
    }
}

unsafe fn capture(tstate: *mut c_void, out: &mut [RawFrame], floor: *const c_void) -> Captured {
    // SAFETY: the caller's contract.
    unsafe { walk::<false>(tstate, out, floor, &mut []) }
}

/// No `sys.monitoring` before 3.12, so no cache: every allocation walks.
unsafe fn capture_cached(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
    _cache: &mut WalkCache,
) -> Captured {
    // SAFETY: the caller's contract.
    unsafe { walk::<false>(tstate, out, floor, &mut []) }
}

/// Each `_PyEval_EvalFrameDefault` invocation links a `_PyCFrame`, a local variable of its C
/// frame, into `tstate->cframe`, innermost first: their addresses are the `bounds`.
unsafe fn capture_segments(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
    segs: &mut [u16],
    bounds: &mut [usize],
) -> Captured {
    // SAFETY: the caller's contract.
    let captured = unsafe { walk::<true>(tstate, out, floor, segs) };
    if !tstate.is_null() {
        // SAFETY: `tstate` is the calling thread's; its cframe chain is live while it runs.
        let mut cframe: *const c_void = unsafe { read(tstate, TSTATE_CFRAME) };
        for b in bounds.iter_mut() {
            if cframe.is_null() {
                break;
            }
            *b = cframe as usize;
            // SAFETY: as above.
            cframe = unsafe { read(cframe, CFRAME_PREVIOUS) };
        }
    }
    captured
}

/// One more `_PyEval_EvalFrameDefault` invocation lies beyond `frame` (it is an entry frame).
#[inline(always)]
unsafe fn entry(frame: *const c_void) -> u16 {
    // SAFETY: `frame` is a live `_PyInterpreterFrame*`.
    u16::from(unsafe { read::<u8>(frame, FRAME_IS_ENTRY) } != 0)
}

#[inline(always)]
unsafe fn walk<const SEG: bool>(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
    segs: &mut [u16],
) -> Captured {
    let mut seg = 0u16;
    let mut captured = Captured {
        nframe: 0,
        total_nframe: 0,
        hash: 0,
        chain: 0,
        check: 0,
        top: 0,
        instrumenting: false,
    };
    if tstate.is_null() {
        return captured;
    }
    // SAFETY: `tstate` is the calling thread's live thread state; the interpreter keeps the
    // cframe and frame chain valid while this thread is inside an allocator call.
    unsafe {
        let cframe: *const c_void = read(tstate, TSTATE_CFRAME);
        if cframe.is_null() {
            return captured;
        }
        let mut frame: *const c_void = read(cframe, CFRAME_CURRENT_FRAME);
        // Only the innermost frames can be incomplete (a frame is set up before it calls
        // anything), so the check stops at the first complete frame.
        while !frame.is_null() && frame != floor && incomplete(frame, read(frame, FRAME_F_CODE)) {
            if SEG {
                seg = seg.saturating_add(entry(frame));
            }
            frame = read(frame, FRAME_PREVIOUS);
        }
        let mut hash = 0u64;
        let mut check = Check::default();
        let mut n = 0usize;
        let mut total = 0u32;
        let limit = out.len();
        while !frame.is_null() && frame != floor && n < limit {
            let code: *mut c_void = read(frame, FRAME_F_CODE);
            let off = offset(frame, code);
            out[n] = RawFrame { code, offset: off };
            if SEG && n < segs.len() {
                segs[n] = seg;
                seg = seg.saturating_add(entry(frame));
            }
            hash = chain_step(hash, code, off);
            check.push(code, off);
            n += 1;
            frame = read(frame, FRAME_PREVIOUS);
        }
        total += n as u32;
        while !frame.is_null() && frame != floor {
            total += 1;
            frame = read(frame, FRAME_PREVIOUS);
        }
        captured.nframe = n;
        captured.total_nframe = total.min(u32::from(u16::MAX)) as u16;
        captured.hash = mix(hash, u64::from(captured.total_nframe));
        captured.check = check.finish(n);
    }
    captured
}

unsafe fn native_thread_id(tstate: *mut c_void) -> u64 {
    if tstate.is_null() {
        return 0;
    }
    // SAFETY: `tstate` is a live `PyThreadState*`; `native_thread_id` is an `unsigned long`.
    unsafe { read::<u64>(tstate, TSTATE_NATIVE_THREAD_ID) }
}

unsafe fn code_names(code: *mut c_void) -> (*mut c_void, *mut c_void) {
    // SAFETY: `code` is a live `PyCodeObject*`; both fields are `PyObject*` (str).
    unsafe { (read(code, CODE_FILENAME), read(code, CODE_QUALNAME)) }
}
