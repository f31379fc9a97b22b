//! Bindings of the tracer: the functions of the stdlib's `_tracemalloc` module, plus
//! heapscope's extras (figures at the peak, ignored threads).

use heapscope_tracker as tracker;
use std::sync::Arc;

use heapscope_core::profile::{Meta, Profile};
use pyo3::exceptions::{PyRuntimeWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::errors::tracker_error;
use crate::profile::PyProfile;

use crate::gil;

fn options(by_thread: bool, sample_rate: Option<i64>, native: bool) -> PyResult<tracker::Options> {
    let sample_rate = match sample_rate {
        None => None,
        Some(r) if r > 0 => Some(r as u64),
        Some(_) => {
            return Err(PyValueError::new_err(
                "sample_rate must be a positive number of bytes",
            ))
        }
    };
    Ok(tracker::Options {
        by_thread,
        sample_rate,
        native,
    })
}

/// Start tracing Python memory allocations, storing at most `nframe` frames per traceback.
/// With `sample_rate`, record one block per `sample_rate` bytes on average (Poisson sampling)
/// and scale sizes into unbiased estimates. With `native`, also trace what native code takes
/// with the malloc family and `mmap` (`heapscope run --native`).
#[pyfunction]
#[pyo3(signature = (nframe = 1, *, sample_rate = None, native = false))]
fn start(py: Python<'_>, nframe: i64, sample_rate: Option<i64>, native: bool) -> PyResult<()> {
    let limit = u32::try_from(nframe).unwrap_or(0);
    let was_tracing = tracker::is_tracing();
    tracker::start(gil(py), limit, options(false, sample_rate, native)?).map_err(tracker_error)?;
    warn_ref_tracer(py).inspect_err(|_| {
        // The warning was turned into an error (`-W error`): this start() failed, so the
        // tracer it started does not stay on.
        if !was_tracing {
            tracker::stop(gil(py));
        }
    })
}

/// The tracer's one warning about another reference tracer, as a RuntimeWarning.
fn warn_ref_tracer(py: Python<'_>) -> PyResult<()> {
    match tracker::take_warning() {
        Some(message) => PyErr::warn(
            py,
            &py.get_type::<PyRuntimeWarning>(),
            &std::ffi::CString::new(message).unwrap_or_default(),
            1,
        ),
        None => Ok(()),
    }
}

/// Start tracing for the profiler: tracebacks are also keyed by thread.
#[pyfunction]
#[pyo3(signature = (nframe, *, sample_rate = None))]
fn _start_profiling(py: Python<'_>, nframe: i64, sample_rate: Option<i64>) -> PyResult<()> {
    let limit = u32::try_from(nframe).unwrap_or(0);
    tracker::reset_drain(gil(py));
    tracker::start(gil(py), limit, options(true, sample_rate, false)?).map_err(tracker_error)?;
    warn_ref_tracer(py)
}

/// The sampling rate in force (bytes per sample), or None when every block is traced.
#[pyfunction]
fn _get_sample_rate(py: Python<'_>) -> Option<u64> {
    tracker::sample_rate(gil(py))
}

/// Stop tracing and forget every trace.
#[pyfunction]
fn stop(py: Python<'_>) -> PyResult<()> {
    tracker::stop(gil(py));
    warn_ref_tracer(py)
}

/// True while tracing.
#[pyfunction]
fn is_tracing() -> bool {
    tracker::is_tracing()
}

/// Forget every trace, keep tracing.
#[pyfunction]
fn clear_traces(py: Python<'_>) {
    tracker::clear_traces(gil(py));
}

/// (current, peak) traced bytes.
#[pyfunction]
fn get_traced_memory(py: Python<'_>) -> (u64, u64) {
    tracker::traced_memory_exact(gil(py))
}

/// Set the peak to the current traced memory.
#[pyfunction]
fn reset_peak(py: Python<'_>) {
    tracker::reset_peak(gil(py));
}

/// The traceback limit.
#[pyfunction]
fn get_traceback_limit() -> u32 {
    tracker::traceback_limit()
}

/// Bytes used by the tracer itself.
#[pyfunction]
fn get_tracemalloc_memory(py: Python<'_>) -> usize {
    tracker::tracer_memory(gil(py))
}

/// What `get_tracemalloc_memory()` is made of: (structure, bytes) pairs that sum to it.
#[pyfunction]
fn _tracer_memory_parts(py: Python<'_>) -> Vec<(&'static str, usize)> {
    tracker::tracer_memory_parts(gil(py))
}

/// (tracebacks, frame tree nodes, tracebacks distinct without their total depth, profile
/// stacks), for measurements.
#[pyfunction]
fn _tracer_shape(py: Python<'_>) -> (usize, usize, usize, usize) {
    tracker::tracer_shape(gil(py))
}

/// (traceback slots, frame tree node slots), freed slots included, for measurements.
#[pyfunction]
fn _tracer_slots(py: Python<'_>) -> (usize, usize) {
    tracker::tracer_slots(gil(py))
}

/// Number of GOT slots of loaded objects that point at heapscope's replacements
/// (`PyTraceMalloc_Track`, `PyTraceMalloc_Untrack`, `_PyTraceMalloc_GetTraceback`, `dlopen`,
/// `dlclose`); 0 when not tracing.
#[pyfunction]
fn _interposed_slots() -> usize {
    tracker::interposed_slots()
}

/// Number of GOT slots redirected to the `--native` malloc-family hooks (0 when off).
#[pyfunction]
fn _native_slots() -> usize {
    tracker::native_slots()
}

/// True if sampling runs with pymalloc's own frees (sampled blocks taken from RAW). For tests.
#[pyfunction]
fn _sampling_direct() -> bool {
    tracker::sampling_direct()
}

/// Mismatches between heapscope's reader of a code object's location table and
/// `PyCode_Addr2Line` over its instructions (`None`: the table could not be read). For tests.
#[pyfunction]
fn _check_line_table(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    if !code.is_instance_of::<pyo3::types::PyCode>() {
        return Err(PyValueError::new_err("a code object is required"));
    }
    let bytes = code.getattr("co_code")?.len()?;
    // SAFETY: `code` is a live code object held by the caller.
    Ok(unsafe { tracker::check_line_table(gil(py), code.as_ptr().cast(), bytes) })
}

/// How many shared objects this process read to name native frames: none under
/// `heapscope run --native`, whose capture's reader names them. For tests.
#[pyfunction]
fn _objects_symbolized(py: Python<'_>) -> usize {
    tracker::objects_symbolized(gil(py))
}

/// Number of live traced blocks.
#[pyfunction]
fn _trace_count(py: Python<'_>) -> usize {
    tracker::trace_count(gil(py))
}

/// The running tracer's figures as a profile, for the HTML report of a measured block (the
/// `%%heapscope` magic): stacks with function names, memory at the peak (since `reset_peak`),
/// still held now, and allocated since `start`. Empty when not tracing.
#[pyfunction]
fn _profile_of_tracer(py: Python<'_>, command: Vec<String>, duration_ms: u64) -> PyProfile {
    tracker::reset_drain(gil(py));
    let delta = tracker::drain_profile(gil(py));
    tracker::reset_drain(gil(py));
    let v = py.version_info();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let meta = Meta {
        command,
        python_version: format!("{}.{}.{}", v.major, v.minor, v.patch),
        pid: std::process::id(),
        start_time_unix_ms: now_ms.saturating_sub(duration_ms),
        duration_ms,
        trace_limit: tracker::traceback_limit(),
        ..Meta::default()
    };
    PyProfile {
        inner: Arc::new(Profile::from_first_delta(&delta, meta)),
    }
}

/// The RESUME-family opcodes the stack-walk cache uses on this interpreter.
#[pyfunction]
fn _frame_cache_opcodes() -> Vec<u8> {
    tracker::frame_cache_resume_opcodes()
}

/// Stack-walk cache hits checked against a full walk and those that disagreed
/// (`HEAPSCOPE_VERIFY_FRAME_CACHE=1`).
#[pyfunction]
fn _frame_cache_checks() -> (u64, u64) {
    tracker::frame_cache_checks()
}

/// Make the caller's frame the floor of stack walks (`True`), or clear it (`False`).
#[pyfunction]
fn _set_stack_floor(py: Python<'_>, on: bool) {
    tracker::set_stack_floor(gil(py), on);
}

/// (blocks, bytes) allocated since start or `clear_traces`.
#[pyfunction]
fn _allocation_totals(py: Python<'_>) -> (u64, u64) {
    tracker::allocation_totals(gil(py))
}

/// Stop (or resume) tracing allocations made by the calling thread.
#[pyfunction]
fn _set_thread_ignored(py: Python<'_>, ignored: bool) {
    tracker::set_thread_ignored(gil(py), ignored);
}

/// Every live trace as raw tuples (`_tracemalloc._get_traces`).
#[pyfunction]
fn _get_traces(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let snap = tracker::snapshot(gil(py));
    // Untraced, as the stdlib's (`set_reentrant` while it builds them).
    tracker::untraced(gil(py), || crate::raw::raw_traces(py, &snap))
}

/// A snapshot of every live trace, kept native (the fast path of `take_snapshot`).
#[pyfunction]
fn _take_snapshot(py: Python<'_>) -> crate::snapshot::NativeSnapshot {
    crate::snapshot::NativeSnapshot::from_core(tracker::snapshot(gil(py)))
}

/// The raw frames (most recent first) of the block holding `obj`, or None
/// (`_tracemalloc._get_object_traceback`).
#[pyfunction]
fn _get_object_traceback<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    // SAFETY: `obj` is a live object borrowed for this call.
    let found = unsafe { tracker::object_traceback(gil(py), obj.as_ptr().cast()) };
    let Some((frames, _total)) = found else {
        return Ok(None);
    };
    Ok(Some(PyTuple::new(
        py,
        frames.iter().map(|f| (f.filename.as_ref(), f.lineno)),
    )?))
}

/// What each traceback held at the peak: `[(size, count, frames, total_nframe)]`, frames
/// `(filename, lineno, function)` most recent first, largest first.
#[pyfunction]
fn _peak_traces(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for t in tracker::peak_traces(gil(py)) {
        let frames = PyTuple::new(
            py,
            t.frames
                .iter()
                .map(|f| (f.filename.as_ref(), f.lineno, f.function.as_ref())),
        )?;
        list.append((t.bytes, t.count, frames, t.total_nframe))?;
    }
    Ok(list)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(_start_profiling, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(is_tracing, m)?)?;
    m.add_function(wrap_pyfunction!(clear_traces, m)?)?;
    m.add_function(wrap_pyfunction!(get_traced_memory, m)?)?;
    m.add_function(wrap_pyfunction!(reset_peak, m)?)?;
    m.add_function(wrap_pyfunction!(get_traceback_limit, m)?)?;
    m.add_function(wrap_pyfunction!(get_tracemalloc_memory, m)?)?;
    m.add_function(wrap_pyfunction!(_trace_count, m)?)?;
    m.add_function(wrap_pyfunction!(_objects_symbolized, m)?)?;
    m.add_function(wrap_pyfunction!(_interposed_slots, m)?)?;
    m.add_function(wrap_pyfunction!(_tracer_memory_parts, m)?)?;
    m.add_function(wrap_pyfunction!(_tracer_shape, m)?)?;
    m.add_function(wrap_pyfunction!(_tracer_slots, m)?)?;
    m.add_function(wrap_pyfunction!(_native_slots, m)?)?;
    m.add_function(wrap_pyfunction!(_sampling_direct, m)?)?;
    m.add_function(wrap_pyfunction!(_check_line_table, m)?)?;
    m.add_function(wrap_pyfunction!(_allocation_totals, m)?)?;
    m.add_function(wrap_pyfunction!(_set_stack_floor, m)?)?;
    m.add_function(wrap_pyfunction!(_frame_cache_opcodes, m)?)?;
    m.add_function(wrap_pyfunction!(_frame_cache_checks, m)?)?;
    m.add_function(wrap_pyfunction!(_profile_of_tracer, m)?)?;
    m.add_function(wrap_pyfunction!(_set_thread_ignored, m)?)?;
    m.add_function(wrap_pyfunction!(_get_traces, m)?)?;
    m.add_function(wrap_pyfunction!(_take_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(_get_object_traceback, m)?)?;
    m.add_function(wrap_pyfunction!(_peak_traces, m)?)?;
    m.add_function(wrap_pyfunction!(_get_sample_rate, m)?)?;
    m.add("SUPPORTED_PYTHON", tracker::SUPPORTED)?;
    Ok(())
}
