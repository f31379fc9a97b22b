//! CPython 3.13's frame facts (`Include/internal/pycore_frame.h`, `cpython/pystate.h`,
//! `cpython/code.h`): `f_executable` is a plain `PyObject*`, `FRAME_OWNED_BY_CSTACK` is 3.

use super::since313::{self as walk, shared_debug_offsets, Facts};
use super::{FrameLayout, InterpreterFacts};

pub struct Py313;

const SHARED: [(&str, usize, usize); 5] = shared_debug_offsets(232, 240, 248, 280, 296);

impl Facts for Py313 {
    const TSTATE_CURRENT_FRAME: usize = 72;
    const TSTATE_NATIVE_THREAD_ID: usize = 160;
    const FRAME_OWNER: usize = 70;
    const EXECUTABLE_TAG_BITS: usize = 0;
    const CODE_FIRSTTRACEABLE: usize = 184;
    const RUNTIME_INTERPRETERS_HEAD: usize = 632;
    const CODE_CODE_ADAPTIVE: usize = 200;
    const DEBUG_OFFSETS: &'static [(&'static str, usize, usize)] = &[
        SHARED[0],
        SHARED[1],
        SHARED[2],
        SHARED[3],
        SHARED[4],
        (
            "thread_state.current_frame",
            184,
            Self::TSTATE_CURRENT_FRAME,
        ),
        (
            "thread_state.native_thread_id",
            200,
            Self::TSTATE_NATIVE_THREAD_ID,
        ),
        ("interpreter_frame.owner", 264, Self::FRAME_OWNER),
        (
            "code_object.co_code_adaptive",
            344,
            Self::CODE_CODE_ADAPTIVE,
        ),
        (
            "runtime_state.interpreters_head",
            40,
            Self::RUNTIME_INTERPRETERS_HEAD,
        ),
        ("interpreter_state.ceval_gil", 112, walk::INTERP_CEVAL_GIL),
    ];
}

pub static LAYOUT: FrameLayout = FrameLayout {
    name: "3.13",
    check: walk::check::<Py313>,
    capture: walk::capture::<Py313>,
    capture_cached: walk::capture_cached::<Py313, false>,
    capture_cached_checked: walk::capture_cached::<Py313, true>,
    capture_segments: walk::capture_segments::<Py313>,
    current_frame: walk::current_frame::<Py313>,
    native_thread_id: walk::native_thread_id::<Py313>,
    code_names: walk::code_names,
    interpreters: Some(InterpreterFacts {
        runtime_head: Py313::RUNTIME_INTERPRETERS_HEAD,
        // `struct pyinterpreters` starts with its PyMutex, then the head pointer.
        runtime_mutex: Py313::RUNTIME_INTERPRETERS_HEAD - 8,
        ceval_gil: walk::INTERP_CEVAL_GIL,
    }),
};
