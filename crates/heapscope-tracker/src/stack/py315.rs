//! CPython 3.15's frame facts (`Include/internal/pycore_interpframe_structs.h`,
//! `cpython/pystate.h`, `cpython/code.h`): as 3.14 (tagged `f_executable`, owners from 3 on are
//! the interpreter's), but `native_thread_id` moved; there is no `FRAME_OWNED_BY_CSTACK`.

use super::since313::{self as walk, shared_debug_offsets, Facts};
use super::{FrameLayout, InterpreterFacts};

pub struct Py315;

const SHARED: [(&str, usize, usize); 5] = shared_debug_offsets(320, 328, 336, 384, 400);

impl Facts for Py315 {
    const TSTATE_CURRENT_FRAME: usize = 72;
    const TSTATE_NATIVE_THREAD_ID: usize = 184;
    const FRAME_OWNER: usize = 74;
    const EXECUTABLE_TAG_BITS: usize = 0b11;
    const CODE_FIRSTTRACEABLE: usize = 192;
    const RUNTIME_INTERPRETERS_HEAD: usize = 936;
    const CODE_CODE_ADAPTIVE: usize = 208;
    const DEBUG_OFFSETS: &'static [(&'static str, usize, usize)] = &[
        SHARED[0],
        SHARED[1],
        SHARED[2],
        SHARED[3],
        SHARED[4],
        (
            "thread_state.current_frame",
            208,
            Self::TSTATE_CURRENT_FRAME,
        ),
        (
            "thread_state.native_thread_id",
            248,
            Self::TSTATE_NATIVE_THREAD_ID,
        ),
        ("interpreter_frame.owner", 352, Self::FRAME_OWNER),
        (
            "code_object.co_code_adaptive",
            448,
            Self::CODE_CODE_ADAPTIVE,
        ),
        (
            "runtime_state.interpreters_head",
            40,
            Self::RUNTIME_INTERPRETERS_HEAD,
        ),
        ("interpreter_state.ceval_gil", 120, walk::INTERP_CEVAL_GIL),
    ];
}

pub static LAYOUT: FrameLayout = FrameLayout {
    name: "3.15",
    check: walk::check::<Py315>,
    capture: walk::capture::<Py315>,
    capture_cached: walk::capture_cached::<Py315, false>,
    capture_cached_checked: walk::capture_cached::<Py315, true>,
    capture_segments: walk::capture_segments::<Py315>,
    current_frame: walk::current_frame::<Py315>,
    native_thread_id: walk::native_thread_id::<Py315>,
    code_names: walk::code_names,
    interpreters: Some(InterpreterFacts {
        runtime_head: Py315::RUNTIME_INTERPRETERS_HEAD,
        // `struct pyinterpreters` starts with its PyMutex, then the head pointer.
        runtime_mutex: Py315::RUNTIME_INTERPRETERS_HEAD - 8,
        ceval_gil: walk::INTERP_CEVAL_GIL,
    }),
};
