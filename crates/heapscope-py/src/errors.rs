//! The one mapping of crate errors to Python exceptions.

use pyo3::create_exception;
use pyo3::prelude::*;

create_exception!(
    _native,
    HeapscopeError,
    pyo3::exceptions::PyException,
    "Base class of heapscope's errors."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HeapscopeError", m.py().get_type::<HeapscopeError>())?;
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
