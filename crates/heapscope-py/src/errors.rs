//! The one mapping of crate errors to Python exceptions.
//!
//! Bindings return `Result<T, NativeError>`; `?` converts each crate's error through the
//! exhaustive `From` impls below (a local type, since `PyErr` and the crate errors are both
//! foreign here).

use heapscope_core::CoreError;
use heapscope_format::FormatError;
use heapscope_report::ReportError;
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
    CaptureFileError,
    HeapscopeError,
    "A file is not a readable heapscope capture."
);

/// A crate error converted to the Python exception it maps to.
pub struct NativeError(PyErr);

impl From<NativeError> for PyErr {
    fn from(e: NativeError) -> PyErr {
        e.0
    }
}

fn io_error(e: &std::io::Error, message: String) -> PyErr {
    match e.kind() {
        std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
        std::io::ErrorKind::AlreadyExists => PyFileExistsError::new_err(message),
        _ => PyOSError::new_err(message),
    }
}

impl From<FormatError> for NativeError {
    fn from(e: FormatError) -> Self {
        let message = e.to_string();
        NativeError(match &e {
            FormatError::Io(io) => io_error(io, message),
            FormatError::NotACapture
            | FormatError::UnsupportedVersion { .. }
            | FormatError::TruncatedHeader
            | FormatError::Corrupt { .. } => CaptureFileError::new_err(message),
            FormatError::RecordTooLarge { .. } => HeapscopeError::new_err(message),
        })
    }
}

impl From<CaptureError> for NativeError {
    fn from(e: CaptureError) -> Self {
        let message = e.to_string();
        NativeError(match e {
            CaptureError::Exists { .. } => PyFileExistsError::new_err(message),
            CaptureError::Create { source, .. } => io_error(&source, message),
            CaptureError::Write { source, .. } | CaptureError::Read { source, .. } => {
                let mut err = NativeError::from(source).0;
                Python::with_gil(|py| {
                    // Same exception class as the bare error, with the path in the message.
                    err = PyErr::from_type(err.get_type(py), message);
                });
                err
            }
            CaptureError::AlreadyCapturing | CaptureError::NotCapturing => {
                HeapscopeError::new_err(message)
            }
            CaptureError::Tracker(t) => NativeError::from(t).0,
        })
    }
}

impl From<TrackerError> for NativeError {
    fn from(e: TrackerError) -> Self {
        let message = e.to_string();
        NativeError(match e {
            TrackerError::InvalidLimit => PyValueError::new_err(message),
            TrackerError::UnsupportedPython { .. } | TrackerError::LayoutMismatch(_) => {
                HeapscopeError::new_err(message)
            }
        })
    }
}

/// A tracer error as the exception the stdlib would raise.
pub fn tracker_error(e: TrackerError) -> PyErr {
    NativeError::from(e).0
}

impl From<ReportError> for NativeError {
    fn from(e: ReportError) -> Self {
        let message = e.to_string();
        NativeError(match &e {
            ReportError::Io(io) => io_error(io, message),
        })
    }
}

impl From<CoreError> for NativeError {
    fn from(e: CoreError) -> Self {
        NativeError(match e {
            CoreError::InvalidArgument(message) => PyValueError::new_err(message),
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HeapscopeError", m.py().get_type::<HeapscopeError>())?;
    m.add("CaptureFileError", m.py().get_type::<CaptureFileError>())?;
    Ok(())
}
