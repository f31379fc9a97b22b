//! The one mapping of crate errors to Python exceptions.
//!
//! Crate errors and `PyErr` are both foreign here, so the mappings are functions rather than
//! `From` impls; each matches every variant (no catch-all arm). [`NativeError`] wraps them so
//! bindings can use `?` on crate results.

use heapscope_core::CoreError;
use heapscope_format::FormatError;
use heapscope_tracker::recorder::CaptureError;
use heapscope_tracker::TrackerError;
use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyOSError, PyPermissionError, PyValueError,
};
use pyo3::prelude::*;

create_exception!(
    _native,
    HeapscopeError,
    pyo3::exceptions::PyException,
    "Base class of heapscope's errors."
);
create_exception!(
    _native,
    FileFormatError,
    HeapscopeError,
    "A heapscope file is truncated, corrupted, of another kind or of an unsupported version."
);

/// An I/O error on `path` as the `OSError` subclass `open()` would raise.
fn os_error(path: &std::path::Path, source: &std::io::Error) -> PyErr {
    let filename = path.to_string_lossy().into_owned();
    if let Some(errno) = source.raw_os_error() {
        let text = source.to_string();
        let strerror = text.split(" (os error").next().unwrap_or(&text).to_owned();
        // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError, ...).
        return PyOSError::new_err((errno, strerror, filename));
    }
    let msg = format!("{filename}: {source}");
    match source.kind() {
        std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
        std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
        _ => PyOSError::new_err(msg),
    }
}

/// Map a [`FormatError`] to its Python exception.
pub fn format_err(err: FormatError) -> PyErr {
    match err {
        FormatError::Io(e) => PyErr::from(e),
        FormatError::File { path, source } => os_error(&path, &source),
        e @ (FormatError::WrongMagic { .. }
        | FormatError::PickleRefused
        | FormatError::UnsupportedVersion { .. }
        | FormatError::Truncated { .. }
        | FormatError::ChecksumMismatch { .. }
        | FormatError::Corrupt { .. }
        | FormatError::TruncatedHeader
        | FormatError::CorruptRecord { .. }) => FileFormatError::new_err(e.to_string()),
        FormatError::Unencodable(msg) => PyValueError::new_err(msg),
        e @ FormatError::RecordTooLarge { .. } => HeapscopeError::new_err(e.to_string()),
    }
}

/// Map a [`CoreError`] to its Python exception.
pub fn core_err(err: CoreError) -> PyErr {
    match err {
        CoreError::InvalidArgument(msg) => PyValueError::new_err(msg),
        CoreError::Format(e) => format_err(e),
    }
}

/// A tracer error as the exception the stdlib would raise.
// Taken by value so callers can write `map_err(tracker_error)`.
#[allow(clippy::needless_pass_by_value)]
pub fn tracker_error(e: TrackerError) -> PyErr {
    match e {
        TrackerError::InvalidLimit => PyValueError::new_err(e.to_string()),
        TrackerError::UnsupportedPython { .. }
        | TrackerError::LayoutMismatch(..)
        | TrackerError::NativeUnavailable(..) => HeapscopeError::new_err(e.to_string()),
    }
}

/// Map a [`CaptureError`] to its Python exception.
pub fn capture_err(err: CaptureError) -> PyErr {
    let message = err.to_string();
    match err {
        CaptureError::Exists { .. } => PyFileExistsError::new_err(message),
        CaptureError::Create { path, source } => os_error(&path, &source),
        CaptureError::Write { source, .. } | CaptureError::Read { source, .. } => {
            let err = format_err(source);
            // Same exception class as the bare error, with the path in the message.
            Python::attach(|py| PyErr::from_type(err.get_type(py), message))
        }
        CaptureError::AlreadyCapturing | CaptureError::NotCapturing => {
            HeapscopeError::new_err(message)
        }
        CaptureError::Tracker(e) => tracker_error(e),
    }
}

/// A crate error converted to its Python exception, so bindings can use `?`.
pub struct NativeError(PyErr);

impl From<NativeError> for PyErr {
    fn from(e: NativeError) -> PyErr {
        e.0
    }
}

impl From<FormatError> for NativeError {
    fn from(e: FormatError) -> Self {
        NativeError(format_err(e))
    }
}

impl From<CaptureError> for NativeError {
    fn from(e: CaptureError) -> Self {
        NativeError(capture_err(e))
    }
}

impl From<CoreError> for NativeError {
    fn from(e: CoreError) -> Self {
        NativeError(core_err(e))
    }
}

impl From<PyErr> for NativeError {
    fn from(e: PyErr) -> Self {
        NativeError(e)
    }
}

impl From<heapscope_report::ReportError> for NativeError {
    fn from(e: heapscope_report::ReportError) -> Self {
        NativeError(from_report(e))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HeapscopeError", m.py().get_type::<HeapscopeError>())?;
    m.add("FileFormatError", m.py().get_type::<FileFormatError>())?;
    Ok(())
}

/// Maps a renderer error: bad arguments are `ValueError`, I/O errors their `OSError` subclass.
pub fn from_report(err: heapscope_report::ReportError) -> PyErr {
    use heapscope_report::ReportError as E;
    match err {
        E::Io(io) => io.into(),
        E::UnknownView(_) | E::UnknownFormat(_) | E::Json(_) => {
            pyo3::exceptions::PyValueError::new_err(err.to_string())
        }
    }
}
