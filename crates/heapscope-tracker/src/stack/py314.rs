//! CPython 3.14's frame facts (`Include/internal/pycore_interpframe_structs.h`,
//! `cpython/pystate.h`, `cpython/code.h`): `f_executable` is a `_PyStackRef` whose low two bits
//! are tags, `FRAME_OWNED_BY_INTERPRETER` is 3 and `FRAME_OWNED_BY_CSTACK` 4.

use super::since313::{self as walk, shared_debug_offsets, Facts};
use super::{FrameLayout, InterpreterFacts};

pub struct Py314;

const SHARED: [(&str, usize, usize); 5] = shared_debug_offsets(256, 264, 272, 320, 336);

impl Facts for Py314 {
    const TSTATE_CURRENT_FRAME: usize = 72;
    const TSTATE_NATIVE_THREAD_ID: usize = 160;
    const FRAME_OWNER: usize = 74;
    const EXECUTABLE_TAG_BITS: usize = 0b11;
    const CODE_FIRSTTRACEABLE: usize = 192;
    const RUNTIME_INTERPRETERS_HEAD: usize = 808;
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
            224,
            Self::TSTATE_NATIVE_THREAD_ID,
        ),
        ("interpreter_frame.owner", 288, Self::FRAME_OWNER),
        (
            "code_object.co_code_adaptive",
            384,
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
    name: "3.14",
    check: walk::check::<Py314>,
    capture: walk::capture::<Py314>,
    capture_cached: walk::capture_cached::<Py314, false>,
    capture_cached_checked: walk::capture_cached::<Py314, true>,
    capture_segments: walk::capture_segments::<Py314>,
    current_frame: walk::current_frame::<Py314>,
    native_thread_id: walk::native_thread_id::<Py314>,
    code_names: walk::code_names,
    interpreters: Some(InterpreterFacts {
        runtime_head: Py314::RUNTIME_INTERPRETERS_HEAD,
        // `struct pyinterpreters` starts with its PyMutex, then the head pointer.
        runtime_mutex: Py314::RUNTIME_INTERPRETERS_HEAD - 8,
        ceval_gil: walk::INTERP_CEVAL_GIL,
    }),
};
