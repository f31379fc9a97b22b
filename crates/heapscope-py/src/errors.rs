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
