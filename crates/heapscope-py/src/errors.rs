//! The one mapping of crate errors to Python exceptions.

use heapscope_tracker::TrackerError;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

create_exception!(
    _native,
    HeapscopeError,
    pyo3::exceptions::PyException,
    "Base class of heapscope's errors."
);

/// A tracer error as the exception the stdlib would raise.
pub fn tracker_error(e: TrackerError) -> PyErr {
    match e {
        TrackerError::InvalidLimit => PyValueError::new_err(e.to_string()),
        TrackerError::UnsupportedPython { .. } | TrackerError::LayoutMismatch(_) => {
            HeapscopeError::new_err(e.to_string())
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HeapscopeError", m.py().get_type::<HeapscopeError>())?;
    Ok(())
}
