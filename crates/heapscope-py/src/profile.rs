//! The Python handle on a profile read from a capture file; renderers take it.

use std::sync::Arc;

use heapscope_core::profile::Profile;
use pyo3::prelude::*;

/// A profile replayed from a capture file (`heapscope._native.Profile`).
#[pyclass(name = "Profile", module = "heapscope._native", frozen)]
pub struct PyProfile {
    pub inner: Arc<Profile>,
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyProfile>()?;
    Ok(())
}
