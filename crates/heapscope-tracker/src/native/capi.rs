//! heapscope's `PyTraceMalloc_Track`, `PyTraceMalloc_Untrack` and `_PyTraceMalloc_GetTraceback`,
//! installed in extensions' GOT slots while tracing. Same contract as the stdlib's
//! (`Python/tracemalloc.c`): -2 when not tracing; `Track` takes the GIL if the caller lacks it
//! and replaces an existing trace of the block; `Untrack` of a block not tracked does nothing
//! and returns 0; `_PyTraceMalloc_GetTraceback` returns a new reference to a tuple of
//! `(filename, lineno)` tuples, most recent first, or `None`.

use std::ffi::{c_int, c_uint};
use std::ptr;

use pyo3_ffi::PyObject;

use crate::hooks::with_gil;
use crate::state::state;
use crate::{is_tracing, Gil};

/// `int PyTraceMalloc_Track(unsigned int domain, uintptr_t ptr, size_t size)`.
pub extern "C" fn track(domain: c_uint, ptr: usize, size: usize) -> c_int {
    // An interpreter with a GIL of its own is not traced (`interp.rs`), and taking the main
    // GIL from one of its threads would be fatal.
    if !is_tracing() || crate::interp::foreign() {
        return -2;
    }
    if super::native_on() && super::journal::holds(ptr) {
        // `--native` saw this block's malloc already (numpy's buffers): counted once.
        return 0;
    }
    with_gil(|| {
        // SAFETY: this thread holds the GIL (with_gil); no other state reference is alive.
        match unsafe { state() } {
            Some(st) if st.active => {
                // SAFETY: as above.
                unsafe { st.track(domain, ptr, size) };
                0
            }
            _ => -2,
        }
    })
}

/// `int PyTraceMalloc_Untrack(unsigned int domain, uintptr_t ptr)`: any thread, no GIL needed.
pub extern "C" fn untrack(domain: c_uint, ptr: usize) -> c_int {
    if !is_tracing() {
        return -2;
    }
    let gil_held = crate::interp::holds_main_gil();
    crate::domains::untrack(domain, ptr, gil_held);
    0
}

/// `PyObject* _PyTraceMalloc_GetTraceback(unsigned int domain, uintptr_t ptr)`, called with
/// the GIL held.
pub extern "C" fn get_traceback(domain: c_uint, ptr: usize) -> *mut PyObject {
    // SAFETY: the function's contract: the caller holds the GIL.
    let gil = unsafe { Gil::assume() };
    let found = if is_tracing() && !crate::interp::foreign() {
        crate::readout::traceback_at(gil, domain, ptr)
    } else {
        None
    };
    let Some((frames, _total)) = found else {
        // SAFETY: GIL held; a new reference to None.
        return unsafe { none() };
    };
    // SAFETY: GIL held; every object made here is owned and handed to the tuple.
    unsafe {
        let tuple = pyo3_ffi::PyTuple_New(frames.len() as isize);
        if tuple.is_null() {
            return ptr::null_mut();
        }
        for (i, f) in frames.iter().enumerate() {
            let name = pyo3_ffi::PyUnicode_FromStringAndSize(
                f.filename.as_ptr().cast(),
                f.filename.len() as isize,
            );
            let line = pyo3_ffi::PyLong_FromUnsignedLong(libc::c_ulong::from(f.lineno));
            let pair = if name.is_null() || line.is_null() {
                ptr::null_mut()
            } else {
                pyo3_ffi::PyTuple_Pack(2, name, line)
            };
            pyo3_ffi::Py_XDECREF(name);
            pyo3_ffi::Py_XDECREF(line);
            if pair.is_null() {
                pyo3_ffi::Py_DECREF(tuple);
                return ptr::null_mut();
            }
            pyo3_ffi::PyTuple_SET_ITEM(tuple, i as isize, pair);
        }
        tuple
    }
}

/// A new reference to `None`.
///
/// # Safety
/// The GIL is held.
unsafe fn none() -> *mut PyObject {
    // SAFETY: per the contract.
    unsafe {
        let none = pyo3_ffi::Py_None();
        pyo3_ffi::Py_INCREF(none);
        none
    }
}
