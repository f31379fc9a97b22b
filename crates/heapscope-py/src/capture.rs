//! Recording capture files in-process and loading them back. Logic lives in
//! `heapscope_tracker::recorder` and `heapscope_core::capture`; this is conversion only.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use heapscope_core::capture::replay_tree;
use heapscope_format::capture::ExitStatus;
use heapscope_format::FormatError;
use heapscope_tracker::recorder::{self, CaptureError, CaptureOptions};
use pyo3::prelude::*;

use crate::errors::NativeError;

// PyO3 extracts arguments as owned values, hence `needless_pass_by_value` allowances below.
use crate::profile::PyProfile;

use crate::gil;

/// Captures smaller than this load without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 4 << 20;

/// Starts recording a capture to `path` (the file must not exist unless `force`).
#[pyfunction]
#[pyo3(signature = (path, command, trace_limit, force = false, sample_rate = None, ppid = None, native = false))]
#[allow(clippy::too_many_arguments)]
fn start_capture(
    py: Python<'_>,
    path: PathBuf,
    command: Vec<String>,
    trace_limit: u16,
    force: bool,
    sample_rate: Option<u64>,
    ppid: Option<u32>,
    native: bool,
) -> Result<(), NativeError> {
    let v = py.version_info();
    let python_version = format!("{}.{}.{}", v.major, v.minor, v.patch);
    let opts = CaptureOptions {
        path,
        force,
        command,
        python_version,
        trace_limit,
        sample_rate: sample_rate.filter(|&r| r > 0),
        ppid,
        native,
    };
    Ok(recorder::start(gil(py), &opts)?)
}

/// Pieces of a drain written before a complete drain is taken instead.
const MAX_PIECES: usize = 256;

/// Drains the tracer in pieces of at most `recorder::PIECE` new tracebacks, writing each
/// partial piece (its new frames and stacks) without the GIL, and returns the last, complete
/// drain unwritten: a burst of new stacks is never held whole.
fn drain_in_pieces(
    py: Python<'_>,
    thread_names: &[(u64, String)],
) -> Result<recorder::Drained, NativeError> {
    for _ in 0..MAX_PIECES {
        let drained = recorder::drain_piece(gil(py))?;
        if !drained.is_partial() {
            return Ok(drained);
        }
        py.detach(|| recorder::write(drained, thread_names))?;
    }
    Ok(recorder::drain(gil(py))?)
}

/// New tracebacks after which the flush thread drains early: its sweep then frees the
/// tracebacks and nodes a burst of new stacks no longer needs (an import-heavy start makes
/// 100k+ in a second, which the tracer would otherwise hold until the next flush).
const EARLY_DRAIN_AFTER: usize = 8_192;

/// True if so many stacks were interned since the last drain that the flush thread should
/// drain now rather than at its next interval.
#[pyfunction]
fn capture_wants_flush(py: Python<'_>) -> bool {
    heapscope_tracker::new_tracebacks_since_sweep(gil(py)) >= EARLY_DRAIN_AFTER
}

/// Drains the tracer (with the GIL) and writes it to the capture (without the GIL).
#[pyfunction]
#[allow(clippy::needless_pass_by_value)]
fn flush_capture(py: Python<'_>, thread_names: Vec<(u64, String)>) -> Result<(), NativeError> {
    let drained = drain_in_pieces(py, &thread_names)?;
    Ok(py.detach(|| recorder::write(drained, &thread_names))?)
}

/// Final drain, stops the tracer, writes how the process ended (`exit`: `("exit", code)`,
/// `("signal", number)` or `("exec", 0)`) and the closing record; returns (path, size). The
/// path is a `str`: a `PathBuf` would make every followed child import pathlib on its way out.
#[pyfunction]
#[pyo3(signature = (thread_names, exit = None))]
#[allow(clippy::needless_pass_by_value)]
fn stop_capture(
    py: Python<'_>,
    thread_names: Vec<(u64, String)>,
    exit: Option<(String, u32)>,
) -> Result<(String, u64), NativeError> {
    let exit = match exit.as_ref().map(|(how, v)| (how.as_str(), *v)) {
        None => None,
        Some(("exit", code)) => Some(ExitStatus::Code(code)),
        Some(("signal", number)) => Some(ExitStatus::Signal(number)),
        Some(("exec", _)) => Some(ExitStatus::Exec),
        Some((other, _)) => {
            return Err(NativeError::from(pyo3::exceptions::PyValueError::new_err(
                format!("unknown exit kind {other:?}: expected exit, signal or exec"),
            )))
        }
    };
    let drained = drain_in_pieces(py, &thread_names)?;
    recorder::stop_tracer(gil(py));
    let (path, size) = py.detach(|| recorder::finish(drained, &thread_names, exit))?;
    Ok((path.to_string_lossy().into_owned(), size))
}

/// For a process ending by `exit()`: final drain, stops the tracer, and leaves EXIT (with the
/// status the process really exits with) and END to the C library's exit; `fallback` is the
/// status written at once where the C library has no such hook. Returns (path, size).
#[pyfunction]
#[allow(clippy::needless_pass_by_value)]
fn stop_capture_at_exit(
    py: Python<'_>,
    thread_names: Vec<(u64, String)>,
    fallback: u32,
) -> Result<(String, u64), NativeError> {
    let drained = drain_in_pieces(py, &thread_names)?;
    recorder::stop_tracer(gil(py));
    let (path, size) = py.detach(|| recorder::finish_at_exit(drained, &thread_names, fallback))?;
    Ok((path.to_string_lossy().into_owned(), size))
}

/// The process dies by `signal` after `stop_capture_at_exit` left EXIT and END to the C
/// library's exit, which a signal never reaches: writes them now with the signal. False if
/// no stream of this process was waiting.
#[pyfunction]
fn end_capture_by_signal(py: Python<'_>, signal: u32) -> bool {
    py.detach(|| recorder::end_waiting_by_signal(signal))
}

/// After `stop_capture_at_exit`: until the process exits, `signal` (its Python handler set
/// back to the default first) writes EXIT with that signal and END before the process dies
/// by it. False if no stream of this process waits for its status.
#[pyfunction]
fn arm_exit_signal(signal: i32) -> bool {
    recorder::arm_exit_signal(signal)
}

/// Die by `signal` once the interpreter has finalized, as Python does after an uncaught
/// KeyboardInterrupt; false if that could not be arranged.
#[pyfunction]
fn die_by_signal_at_exit(py: Python<'_>, signal: i32) -> bool {
    recorder::die_by_signal_at_exit(gil(py), signal)
}

/// Note when `signal` comes, around the C-level handler Python just installed for it (main
/// thread); false if it has none. A signal whose Python handler has not run for 200 ms is
/// sent again to the main thread by `nudge_signal` (`signal_watch.rs`).
#[pyfunction]
fn watch_signal(signal: i32) -> bool {
    recorder::watch_signal(signal)
}

/// The Python handler of the watched signal runs.
#[pyfunction]
fn signal_taken() {
    recorder::signal_taken();
}

/// Send the watched signal again to the main thread if its Python handler has not run for
/// 200 ms (the flush thread calls it as it polls); true if sent.
#[pyfunction]
fn nudge_signal() -> bool {
    recorder::nudge_signal()
}

/// True while a capture is being recorded.
#[pyfunction]
fn capture_active() -> bool {
    recorder::is_capturing()
}

/// Stops tracing the calling thread's allocations (for heapscope's own threads).
#[pyfunction]
fn ignore_current_thread(py: Python<'_>) {
    recorder::ignore_current_thread(gil(py));
}

/// Reads a capture (the root file and the streams of its child processes, merged) into a
/// profile; `pid` keeps one process. A progress bar on a terminal for big captures.
#[pyfunction]
#[pyo3(signature = (path, pid = None, hide_native = false))]
#[allow(clippy::needless_pass_by_value)]
fn load_capture(
    py: Python<'_>,
    path: PathBuf,
    pid: Option<u32>,
    hide_native: bool,
) -> Result<PyProfile, NativeError> {
    let profile = py.detach(|| {
        let size = capture_size(&path);
        let bar = (size >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(size);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "reading {msg} {bar:30} {bytes}/{total_bytes} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(path.display().to_string());
            bar
        });
        let result = replay_tree(&path, &mut |offset| {
            if let Some(bar) = &bar {
                bar.set_position(offset);
            }
        });
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        result
    });
    let profile = profile.map_err(|source| match source {
        // Already names the path.
        FormatError::File { .. } => NativeError::from(source),
        source => NativeError::from(CaptureError::Read {
            path: path.clone(),
            source,
        }),
    })?;
    let profile = match pid {
        Some(pid) => profile.only_process(pid).map_err(NativeError::from)?,
        None => profile,
    };
    let profile = if hide_native {
        profile.without_native_frames()
    } else {
        profile
    };
    Ok(PyProfile {
        inner: Arc::new(profile),
    })
}

/// Bytes of a capture: its root file and its children's streams.
fn capture_size(path: &std::path::Path) -> u64 {
    let root = std::fs::metadata(path).map_or(0, |m| m.len());
    let children = std::fs::read_dir(heapscope_core::capture::children_dir(path)).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    });
    root + children
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start_capture, m)?)?;
    m.add_function(wrap_pyfunction!(flush_capture, m)?)?;
    m.add_function(wrap_pyfunction!(capture_wants_flush, m)?)?;
    m.add_function(wrap_pyfunction!(stop_capture, m)?)?;
    m.add_function(wrap_pyfunction!(stop_capture_at_exit, m)?)?;
    m.add_function(wrap_pyfunction!(end_capture_by_signal, m)?)?;
    m.add_function(wrap_pyfunction!(arm_exit_signal, m)?)?;
    m.add_function(wrap_pyfunction!(watch_signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal_taken, m)?)?;
    m.add_function(wrap_pyfunction!(nudge_signal, m)?)?;
    m.add_function(wrap_pyfunction!(die_by_signal_at_exit, m)?)?;
    m.add_function(wrap_pyfunction!(capture_active, m)?)?;
    m.add_function(wrap_pyfunction!(ignore_current_thread, m)?)?;
    m.add_function(wrap_pyfunction!(load_capture, m)?)?;
    Ok(())
}
